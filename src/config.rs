//! The gateway configuration file, `ssmgate.toml`: parsed with serde,
//! validated at load, and turned into typed sections (socket addresses,
//! durations, compiled regexes, parsed public keys). Every problem is
//! reported with the file, line, column and key, e.g.
//! `ssmgate.toml:14:8: users[1].name: must match ^[a-z_][a-z0-9_.-]{0,31}$ (got "Bob")`.
//! Unknown keys are errors. Relative paths are relative to the directory of
//! the config file.
//!
//! Every key, with its default (only `[[users]]` is required):
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:2222"                  # address:port the SSH server binds
//! host_key = "ssmgate_host_ed25519_key"      # OpenSSH private key; generated (Ed25519, 0600) on first start if missing
//! login_grace_secs = 120                     # time allowed to authenticate (>= 1)
//! max_auth_tries = 6                         # authentication attempts per connection (>= 1)
//! max_startups = "16:30:64"                  # unauthenticated connections at once, as sshd's
//!                                            # MaxStartups start:rate:full: from `start` on, drop
//!                                            # `rate`% of new ones, rising to 100% at `full`;
//!                                            # a plain number N means "N:100:N"
//! max_startups_per_source = 10               # … from one source IP (>= 1)
//! max_sessions_per_connection = 10           # open channels (shells, commands, forwards) per
//!                                            # connection, like sshd's MaxSessions (>= 1)
//! max_sessions_per_user = 32                 # open channels of one user over all connections (>= 1)
//! idle_timeout_secs = 900                    # close a session idle this long; 0 = off
//! max_session_secs = 28800                   # close a session after this long; 0 = off
//! drain_secs = 30                            # on SIGTERM: stop accepting, tell open sessions, wait
//!                                            # this long for them to end, then end the rest (0-3600)
//!
//! [aws]
//! region = "us-east-1"                       # default: the standard AWS chain's region
//! endpoint = "http://127.0.0.1:4080"         # optional endpoint of SSM, STS and the Tagging API
//!                                            # (e.g. `ssmgate sim`); env AWS_ENDPOINT_URL_SSM,
//!                                            # _STS, _RESOURCE_GROUPS_TAGGING_API work too
//! credentials = "chain"                      # "chain": environment, profile, SSO, instance role;
//!                                            # "none": a dummy key only `ssmgate sim` accepts
//! http_pool_max_idle = 32                    # idle HTTP connections kept per AWS endpoint (0-1024)
//! http_pool_idle_secs = 20                   # and how long each is kept (1-3600)
//! session_role_arn = "arn:aws:iam::123456789012:role/ssmgate-session"
//!                                            # optional: every session's StartSession, ResumeSession
//!                                            # and TerminateSession are made with this role, assumed
//!                                            # per user (SourceIdentity = the user; session tags
//!                                            # ssmgate-user, ssmgate-session, SSMSessionRunAs = the
//!                                            # user's run_as), so CloudTrail and Session Manager
//!                                            # name the person and Run As picks the OS user
//!
//! [[aws.accounts]]                           # optional, any number: where targets are; none = the
//!                                            # gateway's own account in aws.region
//! name = "prod"                              # a-z 0-9 - _ (1-32); targets: prod/web-1 or
//!                                            # prod/eu-west-1/web-1; policies: resource.account
//! role_arn = "arn:aws:iam::111111111111:role/ssmgate"   # optional: assumed for the account's
//!                                            # inventory, and per user (as session_role_arn is)
//!                                            # for its sessions; none = the gateway's credentials
//! regions = ["us-east-1", "eu-west-1"]       # default [aws.region]; policies: resource.region
//!
//! [justification]
//! required = false                           # ask for a reason for access after authentication
//! pattern = ".{3,}"                          # regex the (trimmed) reason must match; unanchored
//!                                            # unless you write ^ and $
//! hint = "at least 3 characters saying why you need access"   # shown when a reason is refused
//! grant_default_secs = 3600                  # a reason grant (`ssh USER@GATEWAY reason …`) without
//!                                            # --for lasts this long
//! grant_max_secs = 28800                     # the longest grant (at most 604800); 0 = no grants
//!
//! [sessions]
//! default_document = "SSM-SessionManagerRunShell"  # document for an interactive shell
//! allowed_documents = [                      # documents sessions may use (SetEnv SSMGATE_DOCUMENT=…);
//!   "SSM-SessionManagerRunShell",            # default_document must be one of them
//!   "AWS-StartInteractiveCommand",
//!   "AWS-StartNonInteractiveCommand",
//!   "AWS-StartSSHSession",
//!   "AWS-StartPortForwardingSession",
//! ]
//!
//! [inventory]
//! cache_secs = 30                            # how long target name lookups are cached; 0 = no cache
//!
//! [policy]
//! dir = "policies"                           # Cedar schema + *.cedar files; every session request
//!                                            # is decided by them, deny by default (see README "Policies")
//! example_reason = "INC-0000 example reason" # tried when a request without a reason is denied:
//!                                            # if it would be allowed, the user is told a reason is
//!                                            # needed (1-200 characters, no control characters)
//!
//! [database]
//! url = "sqlite://ssmgate.db"                # sessions store: sqlite://PATH (relative to this file),
//!                                            # sqlite::memory: or postgres://user:pass@host/db;
//!                                            # `ssmgate migrate` applies its migrations;
//!                                            # env SSMGATE_DATABASE_URL, when set, replaces it
//!
//! [recording]
//! mode = "full"                              # "full": shell/exec input and output are recorded;
//!                                            # "metadata": sessions, connections, exits, byte counts only
//! fail_closed = true                         # refuse new sessions while the database is unreachable
//! spool_dir = "spool"                        # local directory holding writes while the database is
//!                                            # down or slow, replayed in order; one per gateway process
//! memory_limit_mib = 16                      # most recording data held in memory (1-4096); past half
//!                                            # of it writes go to the spool
//! write_timeout_secs = 10                    # a database write slower than this is spooled (1-3600)
//! key_file = "recording.key"                 # HMAC keys that seal recordings and the audit trail,
//!                                            # kept outside the database; generated (mode 0600) on
//!                                            # first start if missing. Lines ID:HEX (64 hex digits);
//!                                            # the first key seals, every key listed verifies: rotate
//!                                            # by adding a line at the top. Replicas sharing a
//!                                            # database share this file. `ssmgate sessions verify`
//!                                            # reads it (see README "Tamper evidence")
//!
//! [log]
//! format = "text"                            # "text" or "json" (one JSON object per line)
//! level = "info"                             # tracing filter, e.g. "ssmgate=debug,info"; env
//!                                            # SSMGATE_LOG (or RUST_LOG), when set, replaces it
//!
//! [admin]
//! listen = "127.0.0.1:9090"                  # HTTP: /healthz, /readyz, /metrics; off when absent
//! ready_spool_mib = 64                       # /readyz with the database unreachable stays ready while
//! ready_spool_age_secs = 300                 # the spool holds at most this much, none older (1-86400)
//!
//! [cluster]                                  # replicas sharing one database
//! heartbeat_secs = 5                         # heartbeat, and look for kills, locks, orphans (1-300)
//! orphan_after_secs = 30                     # a replica silent this long is gone: its sessions are
//!                                            # shown as orphaned (>= 2 x heartbeat_secs)
//! orphan_close_after_secs = 120              # … and are closed in the record by another replica
//! advertise = "gw-1.example.com:2222"        # shown for this replica (default: host name:SSH port)
//!
//! [[users]]                                  # at least one
//! name = "alice"                             # ^[a-z_][a-z0-9_.-]{0,31}$, unique; the SSH login name
//! groups = ["sre"]                           # optional; each [A-Za-z0-9_.-]{1,64}
//! attributes = { team = "platform" }         # optional; keys [A-Za-z_][A-Za-z0-9_]{0,63}, values <= 256 chars
//! authorized_keys = ["ssh-ed25519 AAAA… alice@laptop"]  # optional OpenSSH public key lines
//! authorized_keys_file = "keys/alice.pub"    # optional file with more keys, one per line
//!                                            # (blank lines and # comments skipped)
//! run_as = "deploy"                          # optional OS user: the login through a target's sshd
//!                                            # (default [sshd_backend] os_user), and with [aws] session_role_arn the Run As user of
//!                                            # SSM sessions (tag SSMSessionRunAs); a permitting
//!                                            # policy's @run_as("…") overrides it
//!
//! [[user_ca]]                                # optional, any number: CAs trusted to sign user certificates
//! public_key = "ssh-ed25519 AAAA… ca@corp"   # exactly one of public_key
//! # public_key_file = "ca.pub"               # … or public_key_file (may hold several keys)
//! ```
//!
//! Key lines are `ALGORITHM BASE64 [COMMENT]`; `authorized_keys` options
//! (`from=…`, `command=…`, `cert-authority`) are refused because the gateway
//! cannot honour them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use russh::keys::PublicKey;
use toml_diagnostics::TomlSource;
pub use toml_diagnostics::{ConfigError, Diagnostic};

/// The default justification regex: any reason of three characters or more.
pub const DEFAULT_REASON_PATTERN: &str = ".{3,}";
/// The default hint shown when a reason is refused.
pub const DEFAULT_REASON_HINT: &str = "at least 3 characters saying why you need access";
/// How long a reason grant lasts by default (1 hour).
pub const DEFAULT_GRANT_SECS: u64 = 3600;
/// The longest reason grant by default (8 hours).
pub const DEFAULT_GRANT_MAX_SECS: u64 = 28_800;
/// The longest `grant_max_secs` accepted (7 days).
pub const MAX_GRANT_SECS: u64 = 604_800;
/// The reason policies are tried with when a request without one is
/// denied, unless configured (`[policy] example_reason`).
pub const DEFAULT_EXAMPLE_REASON: &str = "INC-0000 example reason";
/// The document used for interactive shells unless configured otherwise.
pub const DEFAULT_DOCUMENT: &str = "SSM-SessionManagerRunShell";
/// The documents sessions may use unless configured otherwise.
pub const DEFAULT_ALLOWED_DOCUMENTS: [&str; 5] = [
    "SSM-SessionManagerRunShell",
    "AWS-StartInteractiveCommand",
    "AWS-StartNonInteractiveCommand",
    "AWS-StartSSHSession",
    "AWS-StartPortForwardingSession",
];

/// The whole gateway configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory relative paths were resolved against.
    pub base_dir: PathBuf,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[aws]`.
    pub aws: AwsConfig,
    /// `[justification]`.
    pub justification: JustificationConfig,
    /// `[sessions]`.
    pub sessions: SessionsConfig,
    /// `[inventory]`.
    pub inventory: InventoryConfig,
    /// `[database]`.
    pub database: DatabaseConfig,
    /// `[policy]`.
    pub policy: PolicyConfig,
    /// `[recording]`.
    pub recording: crate::recording::RecorderOptions,
    /// `[sshd_backend]`.
    pub sshd_backend: SshdBackendConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[admin]`.
    pub admin: AdminConfig,
    /// `[cluster]`.
    pub cluster: ClusterConfig,
    /// `[[users]]`, in file order (names are unique).
    pub users: Vec<UserConfig>,
    /// Every `[[user_ca]]` key: CAs trusted to sign user certificates.
    pub user_cas: Vec<PublicKey>,
}

/// `[server]`: the SSH listener and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address the SSH server binds.
    pub listen: SocketAddr,
    /// Host private key path (resolved against the config directory).
    pub host_key: PathBuf,
    /// Time allowed to authenticate.
    pub login_grace: Duration,
    /// Authentication attempts allowed per connection.
    pub max_auth_tries: u32,
    /// Unauthenticated connections at once, overall, with random early drop.
    pub max_startups: MaxStartups,
    /// Unauthenticated connections at once from one source IP.
    pub max_startups_per_source: u32,
    /// Open channels per connection (sshd's `MaxSessions`).
    pub max_sessions_per_connection: u32,
    /// Open channels of one user, over all their connections.
    pub max_sessions_per_user: u32,
    /// Close idle sessions after this long (`None` = never).
    pub idle_timeout: Option<Duration>,
    /// Close sessions after this long (`None` = never).
    pub max_session: Option<Duration>,
    /// On SIGTERM, how long open sessions may go on before they are
    /// ended (0: at once).
    pub drain: Duration,
}

/// sshd's `MaxStartups start:rate:full`: below `start` unauthenticated
/// connections every new one is accepted; from `start` on a new one is
/// dropped with probability `rate`%, rising linearly to 100% at `full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxStartups {
    /// Where random early drop begins.
    pub start: u32,
    /// Drop probability at `start`, in percent (1–100).
    pub rate: u32,
    /// Where every new connection is dropped.
    pub full: u32,
}

impl MaxStartups {
    /// Parses `start:rate:full` (or a plain `N`, meaning `N:100:N`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let bad = || format!("must be N or start:rate:full such as \"16:30:64\" (got \"{spec}\")");
        let parts: Vec<&str> = spec.trim().split(':').collect();
        let nums: Vec<u32> = parts
            .iter()
            .map(|p| p.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        let (start, rate, full) = match nums.as_slice() {
            [n] => (*n, 100, *n),
            [start, rate, full] => (*start, *rate, *full),
            _ => return Err(bad()),
        };
        if start == 0 || full < start || rate == 0 || rate > 100 {
            return Err(format!(
                "needs 1 <= start <= full and 1 <= rate <= 100 (got \"{spec}\")"
            ));
        }
        Ok(Self { start, rate, full })
    }

    /// The chance in percent that a new connection is dropped when
    /// `current` unauthenticated connections are open.
    pub fn drop_percent(&self, current: u32) -> u32 {
        if current >= self.full {
            100
        } else if current < self.start {
            0
        } else {
            let span = self.full - self.start;
            self.rate + (100 - self.rate) * (current - self.start) / span.max(1)
        }
    }
}

/// `[aws]`: how to reach SSM.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AwsConfig {
    /// Region; `None` = the standard AWS chain's region.
    pub region: Option<String>,
    /// SSM endpoint override (`http://…` or `https://…`).
    pub endpoint: Option<String>,
    /// Where credentials come from.
    pub credentials: AwsCredentials,
    /// The role each session's SSM calls are made with (STS AssumeRole
    /// with the user as SourceIdentity); `None`: the gateway's own.
    pub session_role_arn: Option<String>,
    /// `[[aws.accounts]]`: the accounts and regions targets are in; empty:
    /// the gateway's own account in `region`.
    pub accounts: Vec<AccountConfig>,
    /// The HTTP connections kept open to AWS endpoints.
    pub http_pool: HttpPool,
}

/// `[aws] http_pool_*`: idle HTTP connections kept per AWS endpoint and
/// for how long. Bounded so that a burst of calls (thousands of sessions
/// ending at once) does not leave thousands of idle connections (and file
/// descriptors) behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpPool {
    /// Idle connections kept per endpoint.
    pub max_idle_per_host: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
}

impl Default for HttpPool {
    fn default() -> Self {
        Self {
            max_idle_per_host: 32,
            idle_timeout: Duration::from_secs(20),
        }
    }
}

/// One `[[aws.accounts]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountConfig {
    /// How targets name it (`prod/web-1`) and policies see it
    /// (`resource.account`).
    pub name: String,
    /// Assumed for its inventory and, per user, for its sessions; `None`:
    /// the gateway's own credentials.
    pub role_arn: Option<String>,
    /// Its regions (at least one).
    pub regions: Vec<String>,
}

/// `aws.credentials`: the standard chain, or none (a fixed dummy key, for
/// `ssmgate sim`, which accepts any signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AwsCredentials {
    /// Environment, profile, SSO, container or instance role.
    #[default]
    Chain,
    /// Sign with a fixed dummy key; only the simulator accepts it.
    None,
}

/// `[justification]`: the reason-for-access prompt.
#[derive(Debug, Clone)]
pub struct JustificationConfig {
    /// Ask for a reason after authentication.
    pub required: bool,
    /// Regex the trimmed reason must match.
    pub pattern: Regex,
    /// Shown to the user when a reason is refused.
    pub hint: String,
    /// How long a reason grant lasts when `--for` is not given.
    pub grant_default: Duration,
    /// The longest reason grant; zero turns grants off.
    pub grant_max: Duration,
}

/// `[sessions]`: which SSM documents sessions may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionsConfig {
    /// Document for interactive shells (one of `allowed_documents`).
    pub default_document: String,
    /// Documents a session may use.
    pub allowed_documents: Vec<String>,
}

impl SessionsConfig {
    /// True when `document` is in `allowed_documents`.
    pub fn allows(&self, document: &str) -> bool {
        self.allowed_documents.iter().any(|d| d == document)
    }
}

/// `[database]`: where sessions are recorded.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (relative paths resolved against the config file),
    /// `sqlite::memory:` or `postgres://…`.
    pub url: String,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A Postgres URL may carry a password.
        f.debug_struct("DatabaseConfig")
            .field("url", &crate::recording::redact_url(&self.url))
            .finish()
    }
}

/// `[inventory]`: target name resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryConfig {
    /// How long lookups are cached (zero = no cache).
    pub cache: Duration,
}

/// `[policy]`: the Cedar policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// The policy directory (resolved against the config directory).
    pub dir: PathBuf,
    /// The reason tried when a request without one is denied (to tell
    /// "denied for lack of a reason" from "denied").
    pub example_reason: String,
}

/// One `[[users]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserConfig {
    /// Login name.
    pub name: String,
    /// Group names (for policies).
    pub groups: Vec<String>,
    /// Free-form attributes (for policies).
    pub attributes: BTreeMap<String, String>,
    /// Keys from `authorized_keys`, then from `authorized_keys_file`.
    pub authorized_keys: Vec<PublicKey>,
    /// The resolved `authorized_keys_file`, if any.
    pub authorized_keys_file: Option<PathBuf>,
    /// The OS user their sessions through a target's sshd log in as
    /// (default `[sshd_backend] os_user`) and, with `[aws]
    /// session_role_arn`, their SSM sessions run as (Session Manager's Run
    /// As). A permitting policy's `@run_as` overrides it.
    pub run_as: Option<String>,
}

impl Config {
    /// Reads and validates a config file; relative paths inside it are
    /// resolved against its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        let base_dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        Self::parse(&text, &path.display().to_string(), &base_dir)
    }

    /// Parses and validates config text (diagnostics name the origin
    /// `ssmgate config`); relative paths are resolved against `base_dir`.
    pub fn from_toml_str(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        Self::parse(text, "ssmgate config", base_dir)
    }

    /// The user called `name`.
    pub fn user(&self, name: &str) -> Option<&UserConfig> {
        self.users.iter().find(|u| u.name == name)
    }

    fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let source = TomlSource::new(text, origin);
        let raw: raw::RawConfig = source.deserialize()?;
        raw.build(base_dir)
            .map_err(|(field, message)| source.error_at(field, message))
    }
}

/// True for names matching `^[a-z_][a-z0-9_.-]{0,31}$` (user names in the
/// config and in SSH logins).
pub fn is_valid_user_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_lowercase() || *first == b'_')
                && rest.len() <= 31
                && rest.iter().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
                })
        }
        None => false,
    }
}

/// Checks an SSM document name: 3–128 of `A-Z a-z 0-9 _ - . : /`.
pub fn check_document(name: &str) -> Result<(), String> {
    let ok = (3..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "document names are 3-128 of A-Z a-z 0-9 _ - . : / (got \"{name}\")"
        ))
    }
}

/// Parses one OpenSSH public key line, `ALGORITHM BASE64 [COMMENT]`.
/// `authorized_keys` options before the key are refused: the gateway cannot
/// honour them.
pub fn parse_public_key_line(line: &str) -> Result<PublicKey, String> {
    let line = line.trim();
    if line.is_empty() {
        return Err("empty key line".into());
    }
    if line.contains(['\n', '\r']) {
        return Err("one key per line".into());
    }
    match PublicKey::from_openssh(line) {
        Ok(key) => Ok(key),
        Err(err) => {
            let first = line.split_whitespace().next().unwrap_or("");
            let looks_like_algorithm = ["ssh-", "ecdsa-", "sk-", "rsa-"]
                .iter()
                .any(|p| first.starts_with(p));
            if !looks_like_algorithm && line.split_whitespace().count() >= 3 {
                Err(format!(
                    "authorized_keys options are not supported (\"{first}\"); give only ALGORITHM BASE64 [COMMENT]"
                ))
            } else {
                Err(format!("not a valid OpenSSH public key ({err})"))
            }
        }
    }
}

/// Reads a file of public key lines (blank lines and `#` comments skipped).
fn read_key_file(path: &Path) -> Result<Vec<PublicKey>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = parse_public_key_line(line)
            .map_err(|m| format!("{}:{}: {m}", path.display(), n + 1))?;
        keys.push(key);
    }
    Ok(keys)
}

mod ops;
mod raw;
mod sshd_backend;
mod users;

pub use ops::{AdminConfig, ClusterConfig, LogConfig, LogFormat};
pub use sshd_backend::{BackendKind, SshdBackendConfig};

#[cfg(test)]
mod tests;
