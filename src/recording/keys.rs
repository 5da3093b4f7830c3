//! The recording keys: the HMAC-SHA256 keys that seal recordings
//! ([`super::seal`]), read from a key file that lives outside the database
//! (`[recording] key_file`), generated on first start when missing.
//!
//! File format (text, UTF-8):
//! ```text
//! # comments and blank lines are skipped
//! k20261102-3f9a:4c1d…64 hex digits…e07b
//! k20250101-77aa:9e0b…64 hex digits…5a21
//! ```
//! One key per line, `ID:HEX`: the id is 1–32 of `A-Z a-z 0-9 _ . -`, the
//! key 32 bytes as 64 hex digits. The **first** key seals new recordings;
//! **every** key listed verifies (each stored seal names the id of the key
//! that made it). Rotate by adding a new line at the top and keeping the
//! old lines for as long as their recordings must verify. Ids are unique.
//!
//! Like the host key, the file must not be accessible by group or others
//! (mode 0600): a file that is is refused. A generated file is created
//! with mode 0600 from the start (its directory 0700 when created). Key
//! material is never logged or shown: [`SealKeys`]'s `Debug` lists ids only.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use rand::TryRngCore;

use crate::private_files::{self, SecretFileError};

/// Key files larger than this are refused (thousands of keys).
const MAX_KEY_FILE: u64 = 256 * 1024;

/// Why the recording keys could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading, creating or writing the file failed.
    #[error("recording key file {}: cannot {action}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The file is accessible by group or others.
    #[error(
        "recording key file {}: permissions {mode:04o} are too open: it must not be accessible by group or others (chmod 600 it)",
        path.display()
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A line is not `ID:HEX` (the line is not quoted: it may hold a key).
    #[error("recording key file {}:{line}: {why}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The file lists no key.
    #[error("recording key file {}: holds no key (expected lines ID:HEX)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Not a regular file, or too large.
    #[error("recording key file {}: {why}", path.display())]
    NotAKeyFile {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// No randomness for a new key.
    #[error("cannot generate a recording key: {0}")]
    Random(String),
}

impl From<SecretFileError> for KeyError {
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
            SecretFileError::NotAFile { path, why } => Self::NotAKeyFile { path, why },
        }
    }
}

impl KeyError {
    /// True when the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// One key: its id and its 32 bytes.
#[derive(Clone)]
pub struct SealKey {
    id: String,
    bytes: [u8; 32],
}

impl SealKey {
    /// A key with this id (checked like a key file's ids).
    pub fn new(id: &str, bytes: [u8; 32]) -> Result<Self, String> {
        check_id(id)?;
        Ok(Self {
            id: id.to_owned(),
            bytes,
        })
    }

    /// The key's id, stored with every seal it makes.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key material (for the HMAC only).
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The keys of a key file: the first seals, all verify.
#[derive(Clone)]
pub struct SealKeys {
    keys: Vec<SealKey>,
}

impl fmt::Debug for SealKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.id))
            .finish()
    }
}

impl SealKeys {
    /// Keys from a list (first seals); `None` when empty or ids repeat.
    pub fn from_keys(keys: Vec<SealKey>) -> Option<Self> {
        let unique = keys
            .iter()
            .enumerate()
            .all(|(i, k)| keys.iter().take(i).all(|o| o.id != k.id));
        (!keys.is_empty() && unique).then_some(Self { keys })
    }

    /// A fresh random key with id `id`, alone (for tests and generation).
    pub fn random(id: &str) -> Result<Self, KeyError> {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| KeyError::Random(e.to_string()))?;
        let key = SealKey::new(id, bytes).map_err(KeyError::Random)?;
        Ok(Self { keys: vec![key] })
    }

    /// The key new seals are made with.
    pub fn signer(&self) -> &SealKey {
        // `keys` is never empty (checked by every constructor).
        &self.keys[0]
    }

    /// The key with this id, if listed.
    pub fn get(&self, id: &str) -> Option<&SealKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Every key id, in file order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// The file text for these keys (mode and location are the caller's).
    pub fn to_file_text(&self) -> String {
        let mut out = String::from(
            "# ssmgate recording keys (HMAC-SHA256), one ID:HEX per line.\n\
             # The first key seals new recordings; every key listed verifies.\n\
             # Rotate by adding a new line at the top; keep old lines while\n\
             # their recordings must verify. Keep this file out of the database\n\
             # host's reach and readable by the gateway only (mode 0600).\n",
        );
        for k in &self.keys {
            out.push_str(&k.id);
            out.push(':');
            out.push_str(&hex::encode(k.bytes));
            out.push('\n');
        }
        out
    }

    /// Parses key file text; `path` is only for messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, KeyError> {
        let mut keys: Vec<SealKey> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: String| KeyError::Parse {
                path: path.to_owned(),
                line: n + 1,
                why,
            };
            let (id, hex_key) = line
                .split_once(':')
                .ok_or_else(|| bad("expected ID:HEX".into()))?;
            let bytes = hex::decode(hex_key.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                .ok_or_else(|| bad("the key must be 64 hex digits (32 bytes)".into()))?;
            let key = SealKey::new(id.trim(), bytes).map_err(bad)?;
            if keys.iter().any(|k| k.id == key.id) {
                return Err(bad(format!("key id {:?} is listed twice", key.id)));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(KeyError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Self { keys })
    }

    /// Loads a key file, refusing one accessible by group or others.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let bytes = private_files::read_secret(path, MAX_KEY_FILE).map_err(KeyError::from)?;
        let text = String::from_utf8(bytes).map_err(|_| KeyError::NotAKeyFile {
            path: path.to_owned(),
            why: "not UTF-8 text".into(),
        })?;
        Self::parse(&text, path)
    }

    /// Loads the key file, or generates one (a single random key) when it
    /// does not exist; true when generated.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), KeyError> {
        match Self::load(path) {
            Ok(keys) => Ok((keys, false)),
            Err(e) if e.is_not_found() => {
                let keys = Self::random(&new_key_id()?)?;
                match keys.write_new(path) {
                    Ok(()) => Ok((keys, true)),
                    // Another process created it meanwhile: use theirs.
                    Err(KeyError::Io { source, .. })
                        if source.kind() == io::ErrorKind::AlreadyExists =>
                    {
                        Self::load(path).map(|k| (k, false))
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Writes these keys to a new file (mode 0600; parent directories are
    /// created with mode 0700); fails if the file exists.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        private_files::write_new_secret(path, self.to_file_text().as_bytes())
            .map_err(KeyError::from)
    }
}

/// An id for a generated key: `k` + today's UTC date + 4 random hex digits
/// (`k20261102-3f9a`), so keys generated on different replicas differ.
fn new_key_id() -> Result<String, KeyError> {
    let mut suffix = [0u8; 2];
    rand::rngs::OsRng
        .try_fill_bytes(&mut suffix)
        .map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(format!(
        "k{}-{}",
        chrono::Utc::now().format("%Y%m%d"),
        hex::encode(suffix)
    ))
}

/// Checks a key id: 1–32 of `A-Z a-z 0-9 _ . -`.
fn check_id(id: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "key ids are 1-32 of A-Z a-z 0-9 _ . - (got {id:?})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn generated_files_are_private_and_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/dir/recording.key");
        let (keys, generated) = SealKeys::load_or_generate(&path).unwrap();
        assert!(generated);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap()).unwrap().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let (again, generated) = SealKeys::load_or_generate(&path).unwrap();
        assert!(!generated);
        assert_eq!(again.signer().id(), keys.signer().id());
        assert_eq!(again.signer().bytes(), keys.signer().bytes());
        assert!(keys.signer().id().starts_with('k'));
        // Debug output never shows key material.
        let shown = format!("{keys:?} {:?}", keys.signer());
        assert!(
            !shown.contains(&hex::encode(keys.signer().bytes())),
            "{shown}"
        );
    }

    #[test]
    fn parse_reads_several_keys_and_refuses_bad_lines() {
        let p = Path::new("k");
        let text = format!(
            "# c\n\nnew:{}\n old : {}\n",
            "11".repeat(32),
            "22".repeat(32)
        );
        let keys = SealKeys::parse(&text, p).unwrap();
        assert_eq!(keys.ids().collect::<Vec<_>>(), ["new", "old"]);
        assert_eq!(keys.signer().id(), "new");
        assert_eq!(keys.get("old").unwrap().bytes(), &[0x22; 32]);
        assert!(keys.get("other").is_none());
        let secret = "ab".repeat(31);
        for (bad, why) in [
            (format!("x:{secret}"), "64 hex digits"),
            ("11".repeat(32), "ID:HEX"),
            (format!("a b:{}", "11".repeat(32)), "key ids"),
            (format!("a:{0}\na:{0}", "11".repeat(32)), "twice"),
        ] {
            let err = SealKeys::parse(&bad, p).err().unwrap().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(!err.contains(&secret), "key material in {err}");
        }
        assert!(matches!(
            SealKeys::parse("# nothing\n", p),
            Err(KeyError::Empty { .. })
        ));
    }

    #[test]
    fn open_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        SealKeys::random("a").unwrap().write_new(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SealKeys::load(&path).err().unwrap();
        assert!(
            matches!(err, KeyError::TooOpen { mode: 0o644, .. }),
            "{err}"
        );
        assert!(
            SealKeys::load(&dir.path().join("none"))
                .err()
                .unwrap()
                .is_not_found()
        );
    }
}
