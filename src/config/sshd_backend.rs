//! `[sshd_backend]`: carrying sessions through the target's own sshd
//! (AWS-StartSSHSession to its port 22, the gateway as SSH client with a
//! certificate from its own user CA) — which targets use it, as which OS
//! user, and how their host keys are trusted.

use std::path::{Path, PathBuf};

use russh::keys::PublicKey;
use serde::Deserialize;

use super::raw::Invalid;
use super::{is_valid_user_name, parse_public_key_line, read_key_file};

/// How a target's sessions are carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// SSM session documents (shell, command, port) over the data channel.
    Ssm,
    /// The target's sshd, reached through AWS-StartSSHSession.
    Sshd,
}

impl BackendKind {
    /// `"ssm"` or `"sshd"`: the tag value, the policy context's `backend`
    /// and the recording's.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Ssm => "ssm",
            BackendKind::Sshd => "sshd",
        }
    }

    /// Parses a tag or config value.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ssm" => Some(BackendKind::Ssm),
            "sshd" => Some(BackendKind::Sshd),
            _ => None,
        }
    }
}

/// The `[sshd_backend]` section.
#[derive(Debug, Clone)]
pub struct SshdBackendConfig {
    /// Whether any target may use the sshd backend.
    pub enabled: bool,
    /// The backend of targets without the tag (when enabled).
    pub default: BackendKind,
    /// The tag whose value (`sshd` or `ssm`) chooses a target's backend.
    pub tag: String,
    /// The gateway's user CA private key (generated on first start).
    pub ca_key: PathBuf,
    /// The OS user sessions log in as, unless the user's `run_as` says.
    pub os_user: String,
    /// The target's sshd port.
    pub port: u16,
    /// Host CAs whose certificates a target's host key may carry; with
    /// none, host keys are pinned on first use.
    pub host_cas: Vec<PublicKey>,
}

impl SshdBackendConfig {
    /// The backend switched off (every session through SSM documents).
    pub fn disabled() -> Self {
        match RawSshdBackend::default().build(Path::new(".")) {
            Ok(c) => c,
            // The defaults are valid (see the config tests); a fallback
            // rather than a panic.
            Err(_) => SshdBackendConfig {
                enabled: false,
                default: BackendKind::Ssm,
                tag: String::new(),
                ca_key: PathBuf::new(),
                os_user: String::new(),
                port: 22,
                host_cas: Vec::new(),
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawSshdBackend {
    enabled: bool,
    default: String,
    tag: String,
    ca_key: PathBuf,
    os_user: String,
    port: u16,
    host_ca_keys: Vec<String>,
    host_ca_key_file: Option<PathBuf>,
}

impl Default for RawSshdBackend {
    fn default() -> Self {
        RawSshdBackend {
            enabled: false,
            default: "sshd".into(),
            tag: "ssmgate:backend".into(),
            ca_key: "ssmgate_user_ca_ed25519_key".into(),
            os_user: "ec2-user".into(),
            port: 22,
            host_ca_keys: Vec::new(),
            host_ca_key_file: None,
        }
    }
}

impl RawSshdBackend {
    pub(super) fn build(self, base_dir: &Path) -> Result<SshdBackendConfig, Invalid> {
        let at = |key: &str| format!("sshd_backend.{key}");
        let default = BackendKind::parse(&self.default).ok_or_else(|| {
            (
                at("default"),
                format!("must be \"sshd\" or \"ssm\" (got \"{}\")", self.default),
            )
        })?;
        let tag_ok = (1..=128).contains(&self.tag.len())
            && !self.tag.chars().any(char::is_control)
            && !self.tag.starts_with("aws:");
        if !tag_ok {
            return Err((
                at("tag"),
                "must be 1-128 characters, no control characters, not starting with aws:".into(),
            ));
        }
        if self.ca_key.as_os_str().is_empty() {
            return Err((at("ca_key"), "must not be empty".into()));
        }
        if !is_valid_user_name(&self.os_user) {
            return Err((
                at("os_user"),
                format!(
                    "must match ^[a-z_][a-z0-9_.-]{{0,31}}$ (got \"{}\")",
                    self.os_user
                ),
            ));
        }
        if self.port == 0 {
            return Err((at("port"), "must be 1-65535".into()));
        }
        let mut host_cas = Vec::new();
        for (i, line) in self.host_ca_keys.iter().enumerate() {
            host_cas.push(
                parse_public_key_line(line)
                    .map_err(|m| (format!("{}[{i}]", at("host_ca_keys")), m))?,
            );
        }
        if let Some(file) = &self.host_ca_key_file {
            let path = base_dir.join(file);
            host_cas.extend(read_key_file(&path).map_err(|m| (at("host_ca_key_file"), m))?);
        }
        Ok(SshdBackendConfig {
            enabled: self.enabled,
            default,
            tag: self.tag,
            ca_key: base_dir.join(self.ca_key),
            os_user: self.os_user,
            port: self.port,
            host_cas,
        })
    }
}
