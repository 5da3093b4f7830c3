//! How a user proved who they are: a listed public key or an OpenSSH user
//! certificate (with what the certificate allows). Checked by the SSH
//! layer; read by policies, the gateway and the recording.

use std::fmt;

/// How a user proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// A key listed for the user.
    PublicKey {
        /// `SHA256:…` of the key.
        fingerprint: String,
    },
    /// A user certificate from a trusted CA.
    Certificate {
        /// `SHA256:…` of the certified key.
        fingerprint: String,
        /// The certificate's key id (`ssh-keygen -I`).
        key_id: String,
        /// The certificate's serial (`ssh-keygen -z`).
        serial: u64,
        /// `SHA256:…` of the signing CA.
        ca_fingerprint: String,
        /// The certificate's extensions by name (`permit-pty`, …), sorted.
        extensions: Vec<String>,
        /// Its critical options by name (only `source-address` gets this
        /// far; the others make a certificate unusable), sorted.
        critical_options: Vec<String>,
    },
}

/// The extensions `ssh-keygen` puts in a certificate unless told otherwise.
pub const DEFAULT_CERT_EXTENSIONS: [&str; 5] = [
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
];
/// The extension that allows a PTY.
pub const PERMIT_PTY: &str = "permit-pty";
/// The extension that allows `-L`, `-W`, `-J`.
pub const PERMIT_PORT_FORWARDING: &str = "permit-port-forwarding";

impl AuthMethod {
    /// Whether the credential allows what `extension` names, as sshd
    /// decides: a certificate only with that extension, a plain key always.
    pub fn permits(&self, extension: &str) -> bool {
        match self {
            AuthMethod::PublicKey { .. } => true,
            AuthMethod::Certificate { extensions, .. } => extensions.iter().any(|e| e == extension),
        }
    }

    /// `SHA256:…` of the key the user authenticated with.
    pub fn fingerprint(&self) -> &str {
        match self {
            AuthMethod::PublicKey { fingerprint } | AuthMethod::Certificate { fingerprint, .. } => {
                fingerprint
            }
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMethod::PublicKey { fingerprint } => write!(f, "publickey {fingerprint}"),
            AuthMethod::Certificate {
                fingerprint,
                key_id,
                serial,
                ca_fingerprint,
                ..
            } => write!(
                f,
                "certificate {fingerprint} id {key_id:?} serial {serial} CA {ca_fingerprint}"
            ),
        }
    }
}
