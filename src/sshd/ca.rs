//! The gateway's user CA for the sshd backend: an Ed25519 key kept beside
//! the host key (`[sshd_backend] ca_key`, generated on first start, 0600),
//! and the short-lived certificates it signs — one per session, over a
//! fresh in-memory key pair that is never written anywhere.
//!
//! A certificate names exactly one principal (the OS user the policies
//! allowed), carries the gateway user and session in its key id (so the
//! target's `auth.log` says who it really was), is valid from a minute ago
//! (clock skew) for the session's allowed duration, and permits a PTY only
//! when the session asked for one. No forwarding, agent or X11 extension
//! is ever granted, and no `source-address` is set (the connection comes
//! from the target's own agent).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::TryRngCore;
use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{Certificate, PrivateKey};

use crate::keyfile::{self, KeyFileError};

/// How far back a certificate's validity starts (clock skew between the
/// gateway and the target).
const SKEW: Duration = Duration::from_secs(60);

/// The gateway's user CA.
pub struct UserCa {
    key: PrivateKey,
}

/// What one session's certificate says.
#[derive(Debug, Clone)]
pub struct CertRequest<'a> {
    /// The OS user (the certificate's only principal).
    pub os_user: &'a str,
    /// The key id: gateway user and gateway session id.
    pub key_id: String,
    /// How long the certificate is valid from now.
    pub validity: Duration,
    /// Whether the session may have a terminal (`permit-pty`).
    pub pty: bool,
}

/// A fresh key pair and its certificate, for one connection to a target.
pub struct Issued {
    /// The private key (memory only).
    pub key: PrivateKey,
    /// Its certificate.
    pub cert: Certificate,
}

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The OS random number generator failed.
    #[error("cannot generate a session key: {0}")]
    Random(String),
    /// The certificate builder refused a field, or signing failed.
    #[error("cannot sign a session certificate: {0}")]
    Sign(String),
}

impl UserCa {
    /// Loads the CA key at `path`, generating it there on first start.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), KeyFileError> {
        let (key, generated) = keyfile::load_or_generate(path, "ssmgate user CA")?;
        Ok((UserCa { key }, generated))
    }

    /// A CA over an existing key (tests, tools).
    pub fn from_key(key: PrivateKey) -> Self {
        UserCa { key }
    }

    /// The CA's public key as one OpenSSH line, for `TrustedUserCAKeys`.
    pub fn public_key_line(&self) -> String {
        // The stored key's own comment is replaced by the fixed one the
        // trust-ca document's allowedPattern expects.
        let mut key = self.key.public_key().clone();
        key.set_comment("");
        match key.to_openssh() {
            Ok(line) => format!("{line} ssmgate-user-ca"),
            // Encoding an Ed25519 public key cannot fail; keep a readable
            // fallback rather than a panic.
            Err(e) => format!("# cannot encode the CA key: {e}"),
        }
    }

    /// The CA's fingerprint (`SHA256:…`).
    pub fn fingerprint(&self) -> String {
        keyfile::fingerprint(self.key.public_key())
    }

    /// A new key pair and a certificate for it.
    pub fn issue(&self, req: &CertRequest<'_>) -> Result<Issued, CaError> {
        let mut seed = [0u8; 32];
        let mut nonce = [0u8; 32];
        let mut serial = [0u8; 8];
        for buf in [&mut seed[..], &mut nonce[..], &mut serial[..]] {
            rand::rngs::OsRng
                .try_fill_bytes(buf)
                .map_err(|e| CaError::Random(e.to_string()))?;
        }
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
        seed.fill(0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let after = now.saturating_sub(SKEW).as_secs();
        let before = now.saturating_add(req.validity).as_secs();
        let sign_err = |e: russh::keys::ssh_key::Error| CaError::Sign(e.to_string());
        let mut builder = Builder::new(nonce.to_vec(), key.public_key().clone(), after, before)
            .map_err(sign_err)?;
        builder
            .serial(u64::from_be_bytes(serial))
            .map_err(sign_err)?
            .cert_type(CertType::User)
            .map_err(sign_err)?
            .key_id(req.key_id.clone())
            .map_err(sign_err)?
            .valid_principal(req.os_user)
            .map_err(sign_err)?;
        if req.pty {
            builder.extension("permit-pty", "").map_err(sign_err)?;
        }
        let cert = builder.sign(&self.key).map_err(sign_err)?;
        Ok(Issued { key, cert })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> UserCa {
        let dir = tempfile::tempdir().unwrap();
        UserCa::load_or_generate(&dir.path().join("ca")).unwrap().0
    }

    #[test]
    fn certificates_name_one_principal_and_verify_against_the_ca() {
        let ca = ca();
        let issued = ca
            .issue(&CertRequest {
                os_user: "ec2-user",
                key_id: "ssmgate:alice:1234".into(),
                validity: Duration::from_secs(3600),
                pty: true,
            })
            .unwrap();
        let cert = &issued.cert;
        assert_eq!(cert.cert_type(), CertType::User);
        assert_eq!(cert.valid_principals(), ["ec2-user".to_owned()]);
        assert_eq!(cert.key_id(), "ssmgate:alice:1234");
        assert!(cert.extensions().contains_key("permit-pty"));
        assert!(!cert.extensions().contains_key("permit-port-forwarding"));
        assert!(cert.critical_options().is_empty());
        assert_eq!(cert.public_key(), issued.key.public_key().key_data());
        let fp = ca
            .key
            .public_key()
            .fingerprint(russh::keys::HashAlg::Sha256);
        cert.validate([&fp]).unwrap();
        let span = cert.valid_before() - cert.valid_after();
        assert_eq!(span, 3600 + 60);
        assert!(ca.public_key_line().starts_with("ssh-ed25519 "));
    }

    #[test]
    fn every_certificate_has_its_own_key_and_no_pty_unless_asked() {
        let ca = ca();
        let req = CertRequest {
            os_user: "root",
            key_id: "k".into(),
            validity: Duration::from_secs(60),
            pty: false,
        };
        let a = ca.issue(&req).unwrap();
        let b = ca.issue(&req).unwrap();
        assert_ne!(a.key.public_key(), b.key.public_key());
        assert_ne!(a.cert.serial(), b.cert.serial());
        assert!(a.cert.extensions().is_empty());
    }
}
