//! Trusting a target's sshd: either its host key carries a certificate
//! from a configured host CA (`[sshd_backend] host_ca_keys`), or — with no
//! host CA — the key is pinned on first use, per instance id, in the
//! database all replicas share, and every later connection must offer the
//! same key. A mismatch is refused with a message naming both fingerprints
//! (the caller audits it).

use std::sync::Arc;

use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{Certificate, HashAlg, PublicKey};

use crate::inventory::Target;
use crate::keyfile::fingerprint;
use crate::recording::{Store, StoreError};

/// How host keys are trusted.
pub struct HostTrust {
    /// Fingerprints of the host CAs; empty means pin on first use.
    cas: Vec<russh::keys::ssh_key::Fingerprint>,
    /// Where pins live.
    store: Arc<dyn Store>,
}

/// What the target's sshd offered.
#[derive(Debug, Clone)]
pub enum Offered {
    /// A plain host key.
    Key(PublicKey),
    /// A host certificate.
    Certificate(Box<Certificate>),
}

/// Why a target's host key is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    /// The pinned key differs from the one offered.
    #[error(
        "the host key of {target} changed: pinned {pinned}, offered {offered}; if the instance was rebuilt, an administrator removes its pin (DELETE FROM host_keys WHERE target_id = '{target}')"
    )]
    Mismatch {
        /// The instance id.
        target: String,
        /// Fingerprint of the pinned key.
        pinned: String,
        /// Fingerprint of the offered key.
        offered: String,
    },
    /// A host CA is configured but the target offered a plain key.
    #[error(
        "{target} offered a plain host key ({offered}), but host keys must be certified by a configured host CA"
    )]
    NotCertified {
        /// The instance id.
        target: String,
        /// Its fingerprint.
        offered: String,
    },
    /// The certificate is not a valid host certificate from a trusted CA
    /// for this target.
    #[error("{target}'s host certificate is not acceptable: {why}")]
    BadCertificate {
        /// The instance id.
        target: String,
        /// What is wrong.
        why: String,
    },
    /// The pin could not be read or written.
    #[error("the host key of {target} could not be checked: {source}")]
    Store {
        /// The instance id.
        target: String,
        /// The database error.
        source: StoreError,
    },
}

impl HostTrust {
    /// Trust through `cas` (host CA public keys), or pins in `store`.
    pub fn new(cas: &[PublicKey], store: Arc<dyn Store>) -> Self {
        HostTrust {
            cas: cas.iter().map(|k| k.fingerprint(HashAlg::Sha256)).collect(),
            store,
        }
    }

    /// Whether host certificates are expected (so the client asks for
    /// them in the key exchange).
    pub fn uses_cas(&self) -> bool {
        !self.cas.is_empty()
    }

    /// Checks what `target`'s sshd offered.
    pub async fn check(&self, target: &Target, offered: &Offered) -> Result<(), HostKeyError> {
        if self.uses_cas() {
            return self.check_certificate(target, offered);
        }
        let key = match offered {
            Offered::Key(k) => k.clone(),
            Offered::Certificate(c) => PublicKey::from(c.public_key().clone()),
        };
        let line = key_line(&key);
        let offered_fp = fingerprint(&key);
        let pinned = self
            .store
            .pin_host_key(&target.id, &line, &offered_fp)
            .await
            .map_err(|source| HostKeyError::Store {
                target: target.id.clone(),
                source,
            })?;
        if pinned == line {
            return Ok(());
        }
        let pinned_fp = PublicKey::from_openssh(&pinned)
            .map(|k| fingerprint(&k))
            .unwrap_or_else(|_| "(unreadable pin)".into());
        Err(HostKeyError::Mismatch {
            target: target.id.clone(),
            pinned: pinned_fp,
            offered: offered_fp,
        })
    }

    fn check_certificate(&self, target: &Target, offered: &Offered) -> Result<(), HostKeyError> {
        let bad = |why: String| HostKeyError::BadCertificate {
            target: target.id.clone(),
            why,
        };
        let cert = match offered {
            Offered::Certificate(c) => c,
            Offered::Key(k) => {
                return Err(HostKeyError::NotCertified {
                    target: target.id.clone(),
                    offered: fingerprint(k),
                });
            }
        };
        if cert.cert_type() != CertType::Host {
            return Err(bad("it is not a host certificate".into()));
        }
        // Signature, signer among the CAs, and validity window.
        cert.validate(self.cas.iter())
            .map_err(|e| bad(format!("{e} (is it signed by a configured host CA?)")))?;
        let principals = cert.valid_principals();
        let names = [
            Some(target.id.as_str()),
            target.computer_name.as_deref(),
            target.name.as_deref(),
        ];
        let named = principals.is_empty()
            || principals
                .iter()
                .any(|p| names.iter().flatten().any(|n| n.eq_ignore_ascii_case(p)));
        if !named {
            return Err(bad(format!(
                "its principals ({}) name neither the instance id nor its host name",
                principals.join(", ")
            )));
        }
        Ok(())
    }
}

/// `ALGORITHM BASE64`, without a comment.
fn key_line(key: &PublicKey) -> String {
    let mut key = key.clone();
    key.set_comment("");
    key.to_openssh().unwrap_or_default()
}

#[cfg(test)]
#[path = "hostkeys_tests.rs"]
mod tests;
