//! Pure authentication decisions, no I/O: is this public key authorised for
//! this user, is this OpenSSH user certificate acceptable (the reason for access is
//! checked by [`crate::request::reason::Justification`]). The russh handler calls these.
//!
//! russh verifies a certificate's signature and validity window only; the
//! rest of the OpenSSH rules are enforced here: a trusted CA signed it, it
//! is a *user* certificate, its principals name the user, and its critical
//! options are honoured (`source-address`) or, when the gateway cannot
//! honour them (`force-command`, anything else), make it unusable.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use russh::keys::ssh_key::Fingerprint;
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{Certificate, HashAlg, PublicKey};

use crate::config::{Config, UserConfig};
use crate::request::AuthMethod;

/// Who may log in and how: users by name and the trusted user CAs.
#[derive(Debug, Clone)]
pub struct Identities {
    users: BTreeMap<String, UserConfig>,
    ca_fingerprints: Vec<Fingerprint>,
}

/// Why an authentication attempt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No such user in the config.
    #[error("unknown user")]
    UnknownUser,
    /// The key is not among the user's authorized keys.
    #[error("key not authorized")]
    KeyNotAuthorized,
    /// The certificate's CA is not a trusted `[[user_ca]]`.
    #[error("certificate not signed by a trusted CA")]
    UntrustedCa,
    /// A host certificate was offered.
    #[error("not a user certificate")]
    NotAUserCertificate,
    /// The certificate's principals do not include the user (or are empty).
    #[error("certificate principals do not include the user")]
    PrincipalMismatch,
    /// The validity window ended.
    #[error("certificate expired")]
    Expired,
    /// The validity window has not started.
    #[error("certificate not yet valid")]
    NotYetValid,
    /// The client address is outside the certificate's `source-address`.
    #[error("source address not allowed by certificate")]
    SourceNotAllowed,
    /// A critical option the gateway cannot honour.
    #[error("unsupported critical option {0}")]
    UnsupportedCriticalOption(String),
    /// The CA signature does not verify.
    #[error("bad certificate signature")]
    BadSignature,
}

impl Identities {
    /// Indexes the config's users and CA fingerprints.
    pub fn from_config(cfg: &Config) -> Self {
        Identities {
            users: cfg
                .users
                .iter()
                .map(|u| (u.name.clone(), u.clone()))
                .collect(),
            ca_fingerprints: cfg
                .user_cas
                .iter()
                .map(|k| k.fingerprint(HashAlg::Sha256))
                .collect(),
        }
    }

    /// Whether any user CA is trusted (so any key may come as a certificate).
    pub fn trusts_any_ca(&self) -> bool {
        !self.ca_fingerprints.is_empty()
    }

    /// The user called `name`.
    pub fn user(&self, name: &str) -> Option<&UserConfig> {
        self.users.get(name)
    }

    /// Accepts `key` when its key data (not its comment) equals one of the
    /// user's authorized keys.
    pub fn check_key(&self, user: &str, key: &PublicKey) -> Result<AuthMethod, Rejection> {
        let user = self.user(user).ok_or(Rejection::UnknownUser)?;
        if user
            .authorized_keys
            .iter()
            .any(|k| k.key_data() == key.key_data())
        {
            Ok(AuthMethod::PublicKey {
                fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
            })
        } else {
            Err(Rejection::KeyNotAuthorized)
        }
    }

    /// Accepts an OpenSSH user certificate for `user` connecting from
    /// `source` at `now`: a trusted CA signed it, it is a user certificate,
    /// it is valid at `now`, its principals name `user`, and every critical
    /// option is honoured (`source-address`) — any other, `force-command`
    /// included, is refused because the gateway cannot enforce it.
    pub fn check_certificate(
        &self,
        user: &str,
        cert: &Certificate,
        source: IpAddr,
        now: SystemTime,
    ) -> Result<AuthMethod, Rejection> {
        self.user(user).ok_or(Rejection::UnknownUser)?;
        if cert.cert_type() != CertType::User {
            return Err(Rejection::NotAUserCertificate);
        }
        let ca = cert.signature_key().fingerprint(HashAlg::Sha256);
        if !self.ca_fingerprints.contains(&ca) {
            return Err(Rejection::UntrustedCa);
        }
        // Signature (and CA) first, checked at a moment inside the window,
        // so no claim of a forged certificate is looked at. An empty window
        // is never valid and is reported by the time checks below.
        if cert.valid_after() < cert.valid_before()
            && cert
                .validate_at(cert.valid_after(), &self.ca_fingerprints)
                .is_err()
        {
            return Err(Rejection::BadSignature);
        }
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if now < cert.valid_after() {
            return Err(Rejection::NotYetValid);
        }
        if now >= cert.valid_before() {
            return Err(Rejection::Expired);
        }
        if !cert.valid_principals().iter().any(|p| p == user) {
            return Err(Rejection::PrincipalMismatch);
        }
        for (name, value) in cert.critical_options().iter() {
            match name.as_str() {
                "source-address" => {
                    if !source_allowed(value, source) {
                        return Err(Rejection::SourceNotAllowed);
                    }
                }
                other => return Err(Rejection::UnsupportedCriticalOption(other.to_owned())),
            }
        }
        let mut extensions: Vec<String> = cert.extensions().keys().cloned().collect();
        extensions.sort();
        let mut critical_options: Vec<String> = cert.critical_options().keys().cloned().collect();
        critical_options.sort();
        Ok(AuthMethod::Certificate {
            fingerprint: cert.public_key().fingerprint(HashAlg::Sha256).to_string(),
            key_id: cert.key_id().to_owned(),
            serial: cert.serial(),
            ca_fingerprint: ca.to_string(),
            extensions,
            critical_options,
        })
    }
}

/// True when `source` is inside one of the comma-separated addresses or
/// CIDR blocks of a `source-address` option. A malformed list allows
/// nothing.
fn source_allowed(list: &str, source: IpAddr) -> bool {
    let source = source.to_canonical();
    let mut allowed = false;
    for item in list.split(',') {
        match parse_cidr(item.trim()) {
            Some((net, len)) => allowed |= cidr_contains(net, len, source),
            None => return false,
        }
    }
    allowed
}

/// `addr` or `addr/len`, with `len` within the family's width.
fn parse_cidr(item: &str) -> Option<(IpAddr, u32)> {
    let (addr, len) = match item.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (item, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let width = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(len) if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) => {
            len.parse().ok()?
        }
        Some(_) => return None,
        None => width,
    };
    (len <= width).then_some((addr, len))
}

fn cidr_contains(net: IpAddr, len: u32, addr: IpAddr) -> bool {
    match (net, addr) {
        (IpAddr::V4(net), IpAddr::V4(addr)) => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(net) & mask == u32::from(addr) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(addr)) => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(net) & mask == u128::from(addr) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
