//! The gateway's own SSH private keys (its host key, its user CA for the
//! sshd backend): loaded from an OpenSSH private key file, or generated
//! (Ed25519) on first start. Like sshd, a key file readable by group or
//! others is refused; a generated key is created with mode 0600 from the
//! start (no window where it is readable by others), with a `.pub` file
//! beside it.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::TryRngCore;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey, PublicKey};

use crate::private_files::{self, SecretFileError};

/// Key files larger than this are refused (an OpenSSH RSA-16384 key
/// is about 12 KiB).
const MAX_KEY_FILE: u64 = 64 * 1024;

impl From<SecretFileError> for KeyFileError {
    fn from(e: SecretFileError) -> Self {
        match e {
            SecretFileError::Io {
                path,
                action,
                source,
            } => Self::Io {
                path,
                action,
                source,
            },
            SecretFileError::TooOpen { path, mode } => Self::TooOpen { path, mode },
            SecretFileError::NotAFile { path, why } => Self::NotAKeyFile { path, reason: why },
        }
    }
}

/// Why a key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading, creating or writing a file failed.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done (`read`, `create`, …).
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The key file is readable or writable by group or others.
    #[error(
        "permissions {mode:04o} for {} are too open: a private key must not be accessible by group or others (chmod 600 it)",
        path.display()
    )]
    TooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not a regular file, or too large to be a key.
    #[error("{}: not a key file ({reason})", path.display())]
    NotAKeyFile {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The contents are not an OpenSSH private key.
    #[error("{}: not an OpenSSH private key ({reason})", path.display())]
    Parse {
        /// The key file.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// The key is passphrase-protected; the gateway cannot prompt.
    #[error("{}: the key is encrypted with a passphrase, which is not supported", path.display())]
    Encrypted {
        /// The key file.
        path: PathBuf,
    },
    /// The OS random number generator failed, or the key could not be encoded.
    #[error("cannot generate a key: {0}")]
    Generate(String),
}

/// Loads the key at `path`, or generates an Ed25519 key there (with
/// `comment`) if the file does not exist (creating parent directories with
/// mode 0700). The flag is true when the key was generated.
pub fn load_or_generate(path: &Path, comment: &str) -> Result<(PrivateKey, bool), KeyFileError> {
    match load(path) {
        Ok(key) => Ok((key, false)),
        Err(KeyFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            match generate(path, comment) {
                Ok(key) => Ok((key, true)),
                // Another process created it meanwhile: use theirs.
                Err(KeyFileError::Io { source, .. })
                    if source.kind() == io::ErrorKind::AlreadyExists =>
                {
                    load(path).map(|key| (key, false))
                }
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Loads an OpenSSH private key, refusing files accessible by group or
/// others and encrypted keys.
pub fn load(path: &Path) -> Result<PrivateKey, KeyFileError> {
    let pem = private_files::read_secret(path, MAX_KEY_FILE).map_err(KeyFileError::from)?;
    let key = PrivateKey::from_openssh(&pem).map_err(|e| KeyFileError::Parse {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if key.is_encrypted() {
        return Err(KeyFileError::Encrypted {
            path: path.to_owned(),
        });
    }
    Ok(key)
}

/// Generates an Ed25519 key, writes it to `path` (mode 0600, failing if the
/// file exists) and its public half to `path.pub`.
fn generate(path: &Path, comment: &str) -> Result<PrivateKey, KeyFileError> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| KeyFileError::Generate(e.to_string()))?;
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    seed.fill(0);
    key.set_comment(comment);
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| KeyFileError::Generate(e.to_string()))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| KeyFileError::Generate(e.to_string()))?;

    private_files::write_new_secret(path, pem.as_bytes()).map_err(KeyFileError::from)?;

    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&pub_path)
        .and_then(|mut f| f.write_all(format!("{public}\n").as_bytes()))
        .map_err(|source| KeyFileError::Io {
            path: pub_path,
            action: "write",
            source,
        })?;
    Ok(key)
}

/// The key's SHA-256 fingerprint as OpenSSH prints it (`SHA256:…`).
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::process::Command;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn generate_then_load_gives_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/ssmgate/host_key");
        let (key, generated) = load_or_generate(&path, "test key").unwrap();
        assert!(generated);
        assert_eq!(key.algorithm(), russh::keys::Algorithm::Ed25519);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("etc/ssmgate")), 0o700);
        let (again, generated) = load_or_generate(&path, "test key").unwrap();
        assert!(!generated);
        let fp = fingerprint(key.public_key());
        assert!(fp.starts_with("SHA256:"), "{fp}");
        assert_eq!(fingerprint(again.public_key()), fp);

        // The .pub file and OpenSSH agree on the fingerprint.
        let pub_path = dir.path().join("etc/ssmgate/host_key.pub");
        let pub_line = std::fs::read_to_string(&pub_path).unwrap();
        assert_eq!(
            fingerprint(&PublicKey::from_openssh(pub_line.trim()).unwrap()),
            fp
        );
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains(&fp));
    }

    #[test]
    fn two_generations_differ() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = load_or_generate(&dir.path().join("a"), "test key").unwrap();
        let (b, _) = load_or_generate(&dir.path().join("b"), "test key").unwrap();
        assert_ne!(fingerprint(a.public_key()), fingerprint(b.public_key()));
    }

    #[test]
    fn loads_keys_made_by_ssh_keygen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ecdsa_key");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ecdsa", "-N", "", "-C", "test", "-f"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let (key, generated) = load_or_generate(&path, "test key").unwrap();
        assert!(!generated);
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&path)
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(listed.contains(&fingerprint(key.public_key())), "{listed}");
    }

    #[test]
    fn too_open_permissions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host_key");
        load_or_generate(&path, "test key").unwrap();
        for bad in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bad)).unwrap();
            let err = load_or_generate(&path, "test key").unwrap_err();
            assert!(matches!(err, KeyFileError::TooOpen { mode, .. } if mode == bad));
            let text = err.to_string();
            assert!(
                text.contains(&format!("permissions 0{bad:o} for"))
                    && text.contains("are too open"),
                "{text}"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(load_or_generate(&path, "test key").is_ok());
    }

    #[test]
    fn corrupted_or_odd_files_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host_key");
        let write = |contents: &[u8]| {
            let _ = std::fs::remove_file(&path);
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .unwrap()
                .write_all(contents)
                .unwrap();
        };
        write(b"-----BEGIN OPENSSH PRIVATE KEY-----\nnot base64 at all!\n-----END OPENSSH PRIVATE KEY-----\n");
        let err = load_or_generate(&path, "test key").unwrap_err();
        assert!(matches!(err, KeyFileError::Parse { .. }), "{err}");
        assert!(
            err.to_string().contains("not an OpenSSH private key"),
            "{err}"
        );
        write(b"");
        assert!(matches!(
            load_or_generate(&path, "test key"),
            Err(KeyFileError::Parse { .. })
        ));
        // The bad file is left alone, never replaced by a new key.
        assert_eq!(std::fs::read(&path).unwrap(), b"");

        // A passphrase-protected key.
        std::fs::remove_file(&path).unwrap();
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "secret-pass", "-f"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let err = load_or_generate(&path, "test key").unwrap_err();
        assert!(matches!(err, KeyFileError::Encrypted { .. }), "{err}");

        // A directory where the key should be.
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = load_or_generate(&sub, "test key").unwrap_err();
        assert!(matches!(err, KeyFileError::NotAKeyFile { .. }), "{err}");
    }
}
