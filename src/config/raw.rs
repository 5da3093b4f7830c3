//! The `ssmgate.toml` file as serde sees it (every key, with defaults) and
//! its validation into the typed [`Config`](super::Config) sections.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::users::{RawCa, RawUser};
use super::{
    AccountConfig, AwsConfig, AwsCredentials, Config, DEFAULT_ALLOWED_DOCUMENTS, DEFAULT_DOCUMENT,
    DEFAULT_EXAMPLE_REASON, DEFAULT_GRANT_MAX_SECS, DEFAULT_GRANT_SECS, DEFAULT_REASON_HINT,
    DEFAULT_REASON_PATTERN, DatabaseConfig, HttpPool, InventoryConfig, JustificationConfig,
    MAX_GRANT_SECS, MaxStartups, PolicyConfig, ServerConfig, SessionsConfig, check_document,
};
use crate::recording::{RecorderOptions, RecordingMode};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    aws: RawAws,
    #[serde(default)]
    justification: RawJustification,
    #[serde(default)]
    sessions: RawSessions,
    #[serde(default)]
    inventory: RawInventory,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    recording: RawRecording,
    users: Vec<RawUser>,
    #[serde(default)]
    user_ca: Vec<RawCa>,
    #[serde(default)]
    sshd_backend: super::sshd_backend::RawSshdBackend,
    #[serde(default)]
    log: super::ops::RawLog,
    #[serde(default)]
    admin: super::ops::RawAdmin,
    #[serde(default)]
    cluster: super::ops::RawCluster,
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawServer {
    listen: String,
    host_key: PathBuf,
    login_grace_secs: u64,
    max_auth_tries: u32,
    max_startups: RawMaxStartups,
    max_startups_per_source: u32,
    max_sessions_per_connection: u32,
    max_sessions_per_user: u32,
    idle_timeout_secs: u64,
    max_session_secs: u64,
    drain_secs: u64,
}

/// `max_startups = 64` or `max_startups = "16:30:64"` (sshd's
/// `MaxStartups start:rate:full`).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawMaxStartups {
    Full(u32),
    Spec(String),
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:2222".into(),
            host_key: "ssmgate_host_ed25519_key".into(),
            login_grace_secs: 120,
            max_auth_tries: 6,
            max_startups: RawMaxStartups::Spec("16:30:64".into()),
            max_startups_per_source: 10,
            max_sessions_per_connection: 10,
            max_sessions_per_user: 32,
            idle_timeout_secs: 900,
            max_session_secs: 28800,
            drain_secs: 30,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawAws {
    region: Option<String>,
    endpoint: Option<String>,
    credentials: Option<String>,
    session_role_arn: Option<String>,
    accounts: Vec<RawAccount>,
    http_pool_max_idle: Option<usize>,
    http_pool_idle_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawAccount {
    name: String,
    role_arn: Option<String>,
    regions: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawJustification {
    required: bool,
    pattern: Option<String>,
    hint: Option<String>,
    grant_default_secs: Option<u64>,
    grant_max_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawSessions {
    default_document: String,
    allowed_documents: Vec<String>,
}

impl Default for RawSessions {
    fn default() -> Self {
        RawSessions {
            default_document: DEFAULT_DOCUMENT.into(),
            allowed_documents: DEFAULT_ALLOWED_DOCUMENTS.map(String::from).to_vec(),
        }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawInventory {
    cache_secs: u64,
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawDatabase {
    url: String,
}

impl Default for RawDatabase {
    fn default() -> Self {
        RawDatabase {
            url: "sqlite://ssmgate.db".into(),
        }
    }
}

/// `SSMGATE_DATABASE_URL`, when set, replaces `[database] url` (so a
/// password can come from a secret store rather than the file).
pub const DATABASE_URL_ENV: &str = "SSMGATE_DATABASE_URL";

fn database_from_env(mut db: RawDatabase) -> RawDatabase {
    if let Ok(url) = std::env::var(DATABASE_URL_ENV)
        && !url.is_empty()
    {
        db.url = url;
    }
    db
}

impl RawDatabase {
    /// `sqlite://` paths are relative to the config file; other URLs are
    /// kept as they are.
    fn build(self, base_dir: &Path) -> Result<DatabaseConfig, Invalid> {
        let url = match self.url.strip_prefix("sqlite://") {
            Some(path) if !path.is_empty() && !path.starts_with('/') && !path.starts_with(':') => {
                format!("sqlite://{}", base_dir.join(path).display())
            }
            Some(_) => self.url,
            None if self.url.starts_with("postgres://")
                || self.url.starts_with("postgresql://") =>
            {
                self.url
            }
            None if self.url == "sqlite::memory:" => self.url,
            None => {
                return Err((
                    "database.url".into(),
                    "must start with sqlite:// or postgres:// (or be sqlite::memory:)".into(),
                ));
            }
        };
        Ok(DatabaseConfig { url })
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRecording {
    mode: String,
    fail_closed: bool,
    spool_dir: PathBuf,
    memory_limit_mib: u64,
    write_timeout_secs: u64,
    key_file: PathBuf,
}

impl Default for RawRecording {
    fn default() -> Self {
        RawRecording {
            mode: "full".into(),
            fail_closed: true,
            spool_dir: "spool".into(),
            memory_limit_mib: 16,
            write_timeout_secs: 10,
            key_file: "recording.key".into(),
        }
    }
}

impl RawRecording {
    fn build(self, base_dir: &Path) -> Result<RecorderOptions, Invalid> {
        let mode = match self.mode.as_str() {
            "full" => RecordingMode::Full,
            "metadata" => RecordingMode::Metadata,
            other => {
                return Err((
                    "recording.mode".into(),
                    format!("must be \"full\" or \"metadata\" (got \"{other}\")"),
                ));
            }
        };
        if self.spool_dir.as_os_str().is_empty() {
            return Err(("recording.spool_dir".into(), "must not be empty".into()));
        }
        if self.key_file.as_os_str().is_empty() {
            return Err(("recording.key_file".into(), "must not be empty".into()));
        }
        if !(1..=4096).contains(&self.memory_limit_mib) {
            return Err((
                "recording.memory_limit_mib".into(),
                "must be between 1 and 4096".into(),
            ));
        }
        if !(1..=3600).contains(&self.write_timeout_secs) {
            return Err((
                "recording.write_timeout_secs".into(),
                "must be between 1 and 3600".into(),
            ));
        }
        let mut options = RecorderOptions::new(base_dir.join(self.spool_dir));
        options.mode = mode;
        options.fail_closed = self.fail_closed;
        options.memory_limit = usize::try_from(self.memory_limit_mib << 20).unwrap_or(usize::MAX);
        options.write_timeout = Duration::from_secs(self.write_timeout_secs);
        options.key_file = base_dir.join(self.key_file);
        Ok(options)
    }
}

impl Default for RawInventory {
    fn default() -> Self {
        RawInventory { cache_secs: 30 }
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawPolicy {
    dir: PathBuf,
    example_reason: String,
}

impl Default for RawPolicy {
    fn default() -> Self {
        RawPolicy {
            dir: "policies".into(),
            example_reason: DEFAULT_EXAMPLE_REASON.into(),
        }
    }
}

impl RawPolicy {
    fn build(self, base_dir: &Path) -> Result<PolicyConfig, Invalid> {
        if self.dir.as_os_str().is_empty() {
            return Err(("policy.dir".into(), "must not be empty".into()));
        }
        let reason = &self.example_reason;
        if reason.trim().is_empty()
            || reason.chars().count() > 200
            || reason.chars().any(char::is_control)
        {
            return Err((
                "policy.example_reason".into(),
                "must be 1-200 characters without control characters".into(),
            ));
        }
        Ok(PolicyConfig {
            dir: base_dir.join(self.dir),
            example_reason: self.example_reason,
        })
    }
}

/// A semantic error: `(key path, message)`.
pub(super) type Invalid = (String, String);

impl RawConfig {
    pub(super) fn build(self, base_dir: &Path) -> Result<Config, Invalid> {
        let server = self.server.build(base_dir)?;
        let aws = self.aws.build()?;
        let justification = self.justification.build()?;
        let sessions = self.sessions.build()?;
        let policy = self.policy.build(base_dir)?;
        if self.users.is_empty() {
            return Err((
                "users".into(),
                "at least one [[users]] entry is required".into(),
            ));
        }
        let mut names = BTreeSet::new();
        let mut users = Vec::with_capacity(self.users.len());
        for (i, user) in self.users.into_iter().enumerate() {
            let user = user.build(i, base_dir)?;
            if !names.insert(user.name.clone()) {
                return Err((
                    format!("users[{i}].name"),
                    format!("duplicate user name \"{}\"", user.name),
                ));
            }
            users.push(user);
        }
        let mut user_cas = Vec::new();
        for (i, ca) in self.user_ca.into_iter().enumerate() {
            user_cas.extend(ca.build(i, base_dir)?);
        }
        Ok(Config {
            base_dir: base_dir.to_owned(),
            server,
            aws,
            justification,
            sessions,
            inventory: InventoryConfig {
                cache: Duration::from_secs(self.inventory.cache_secs),
            },
            policy,
            database: database_from_env(self.database).build(base_dir)?,
            recording: self.recording.build(base_dir)?,
            sshd_backend: self.sshd_backend.build(base_dir)?,
            log: self.log.build()?,
            admin: self.admin.build()?,
            cluster: self.cluster.build()?,
            users,
            user_cas,
        })
    }
}

impl RawServer {
    fn build(self, base_dir: &Path) -> Result<ServerConfig, Invalid> {
        let listen = self.listen.parse().map_err(|_| {
            (
                "server.listen".to_owned(),
                format!(
                    "must be an IP address and port such as 127.0.0.1:2222 or [::1]:2222 (got \"{}\")",
                    self.listen
                ),
            )
        })?;
        if self.host_key.as_os_str().is_empty() {
            return Err(("server.host_key".into(), "must not be empty".into()));
        }
        let at_least_one = |key: &str, value: u64| {
            if value == 0 {
                Err((format!("server.{key}"), "must be at least 1".to_owned()))
            } else {
                Ok(())
            }
        };
        at_least_one("login_grace_secs", self.login_grace_secs)?;
        at_least_one("max_auth_tries", self.max_auth_tries.into())?;
        let max_startups = match &self.max_startups {
            RawMaxStartups::Full(full) => {
                at_least_one("max_startups", (*full).into())?;
                MaxStartups {
                    start: *full,
                    rate: 100,
                    full: *full,
                }
            }
            RawMaxStartups::Spec(spec) => {
                MaxStartups::parse(spec).map_err(|m| ("server.max_startups".to_owned(), m))?
            }
        };
        at_least_one(
            "max_startups_per_source",
            self.max_startups_per_source.into(),
        )?;
        at_least_one(
            "max_sessions_per_connection",
            self.max_sessions_per_connection.into(),
        )?;
        at_least_one("max_sessions_per_user", self.max_sessions_per_user.into())?;
        if self.drain_secs > 3600 {
            return Err(("server.drain_secs".into(), "must be at most 3600".into()));
        }
        let optional = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
        Ok(ServerConfig {
            listen,
            host_key: base_dir.join(self.host_key),
            login_grace: Duration::from_secs(self.login_grace_secs),
            max_auth_tries: self.max_auth_tries,
            max_startups,
            max_startups_per_source: self.max_startups_per_source,
            max_sessions_per_connection: self.max_sessions_per_connection,
            max_sessions_per_user: self.max_sessions_per_user,
            idle_timeout: optional(self.idle_timeout_secs),
            max_session: optional(self.max_session_secs),
            drain: Duration::from_secs(self.drain_secs),
        })
    }
}

/// `us-east-1`-shaped.
fn is_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`, with IAM's name
/// characters.
fn is_role_arn(arn: &str) -> bool {
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    let [arn_word, partition, service, region, account, resource] = fields[..] else {
        return false;
    };
    let name_ok = resource.strip_prefix("role/").is_some_and(|path| {
        !path.is_empty()
            && path.len() <= 512
            && !path.ends_with('/')
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
    });
    arn_word == "arn"
        && !partition.is_empty()
        && partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-')
        && service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && name_ok
}

impl RawAws {
    fn build(self) -> Result<AwsConfig, Invalid> {
        if let Some(region) = &self.region
            && !is_region(region)
        {
            return Err((
                "aws.region".into(),
                format!("must look like us-east-1 (got \"{region}\")"),
            ));
        }
        if let Some(endpoint) = &self.endpoint {
            let rest = endpoint
                .strip_prefix("http://")
                .or_else(|| endpoint.strip_prefix("https://"));
            let ok = rest.is_some_and(|r| {
                !r.is_empty() && !r.chars().any(|c| c.is_whitespace() || c.is_control())
            });
            if !ok {
                return Err((
                    "aws.endpoint".into(),
                    format!("must be an http:// or https:// URL (got \"{endpoint}\")"),
                ));
            }
        }
        let credentials = match self.credentials.as_deref() {
            None | Some("chain") => AwsCredentials::Chain,
            Some("none") => AwsCredentials::None,
            Some(other) => {
                return Err((
                    "aws.credentials".into(),
                    format!("must be \"chain\" or \"none\" (got \"{other}\")"),
                ));
            }
        };
        if let Some(arn) = &self.session_role_arn
            && !is_role_arn(arn)
        {
            return Err((
                "aws.session_role_arn".into(),
                format!(
                    "must be an IAM role ARN like arn:aws:iam::123456789012:role/ssmgate-session (got \"{}\")",
                    crate::untrusted::bounded(arn)
                ),
            ));
        }
        let mut accounts: Vec<AccountConfig> = Vec::new();
        for (i, a) in self.accounts.into_iter().enumerate() {
            let at = |key: &str| format!("aws.accounts[{i}].{key}");
            let name_ok = !a.name.is_empty()
                && a.name.len() <= 32
                && a.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !name_ok {
                return Err((
                    at("name"),
                    format!(
                        "must be 1-32 characters of a-z 0-9 - _ (got \"{}\")",
                        crate::untrusted::bounded(&a.name)
                    ),
                ));
            }
            if accounts.iter().any(|o| o.name == a.name) {
                return Err((at("name"), format!("account {} is listed twice", a.name)));
            }
            if let Some(arn) = &a.role_arn
                && !is_role_arn(arn)
            {
                return Err((
                    at("role_arn"),
                    format!(
                        "must be an IAM role ARN (got \"{}\")",
                        crate::untrusted::bounded(arn)
                    ),
                ));
            }
            let regions = if a.regions.is_empty() {
                match &self.region {
                    Some(r) => vec![r.clone()],
                    None => {
                        return Err((
                            at("regions"),
                            "list the account's regions (or set aws.region as the default)".into(),
                        ));
                    }
                }
            } else {
                a.regions
            };
            if let Some(twice) = regions
                .iter()
                .enumerate()
                .find(|(k, r)| regions[..*k].contains(r))
                .map(|(_, r)| r)
            {
                return Err((at("regions"), format!("{twice} is listed twice")));
            }
            if let Some(bad) = regions.iter().find(|r| !is_region(r)) {
                return Err((
                    at("regions"),
                    format!("must look like us-east-1 (got \"{bad}\")"),
                ));
            }
            accounts.push(AccountConfig {
                name: a.name,
                role_arn: a.role_arn,
                regions,
            });
        }
        if !accounts.is_empty() && self.session_role_arn.is_some() {
            return Err((
                "aws.session_role_arn".into(),
                "with [[aws.accounts]], each account's role_arn is assumed per user instead; remove session_role_arn".into(),
            ));
        }
        let default_pool = HttpPool::default();
        let max_idle_per_host = self
            .http_pool_max_idle
            .unwrap_or(default_pool.max_idle_per_host);
        if max_idle_per_host > 1024 {
            return Err((
                "aws.http_pool_max_idle".into(),
                format!("must be at most 1024 (got {max_idle_per_host})"),
            ));
        }
        let idle_secs = self
            .http_pool_idle_secs
            .unwrap_or(default_pool.idle_timeout.as_secs());
        if !(1..=3600).contains(&idle_secs) {
            return Err((
                "aws.http_pool_idle_secs".into(),
                format!("must be between 1 and 3600 (got {idle_secs})"),
            ));
        }
        Ok(AwsConfig {
            region: self.region,
            endpoint: self.endpoint,
            credentials,
            session_role_arn: self.session_role_arn,
            accounts,
            http_pool: HttpPool {
                max_idle_per_host,
                idle_timeout: Duration::from_secs(idle_secs),
            },
        })
    }
}

impl RawJustification {
    fn build(self) -> Result<JustificationConfig, Invalid> {
        let pattern = self
            .pattern
            .unwrap_or_else(|| DEFAULT_REASON_PATTERN.to_owned());
        let regex = regex::RegexBuilder::new(&pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                (
                    "justification.pattern".to_owned(),
                    format!("not a valid regex: {e}"),
                )
            })?;
        let hint = self.hint.unwrap_or_else(|| DEFAULT_REASON_HINT.to_owned());
        if hint.chars().count() > 200 || hint.chars().any(char::is_control) {
            return Err((
                "justification.hint".into(),
                "must be at most 200 characters without control characters".into(),
            ));
        }
        let grant_max_secs = self.grant_max_secs.unwrap_or(DEFAULT_GRANT_MAX_SECS);
        if grant_max_secs > MAX_GRANT_SECS {
            return Err((
                "justification.grant_max_secs".into(),
                format!("must be at most {MAX_GRANT_SECS} (7 days); 0 turns reason grants off"),
            ));
        }
        let grant_default_secs = self
            .grant_default_secs
            .unwrap_or(DEFAULT_GRANT_SECS.min(grant_max_secs));
        if grant_default_secs > grant_max_secs || (grant_max_secs > 0 && grant_default_secs < 60) {
            return Err((
                "justification.grant_default_secs".into(),
                format!("must be between 60 and grant_max_secs ({grant_max_secs})"),
            ));
        }
        Ok(JustificationConfig {
            required: self.required,
            pattern: regex,
            hint,
            grant_default: Duration::from_secs(grant_default_secs),
            grant_max: Duration::from_secs(grant_max_secs),
        })
    }
}

impl RawSessions {
    fn build(self) -> Result<SessionsConfig, Invalid> {
        check_document(&self.default_document)
            .map_err(|m| ("sessions.default_document".to_owned(), m))?;
        if self.allowed_documents.is_empty() {
            return Err((
                "sessions.allowed_documents".into(),
                "must list at least one document".into(),
            ));
        }
        for (i, doc) in self.allowed_documents.iter().enumerate() {
            check_document(doc).map_err(|m| (format!("sessions.allowed_documents[{i}]"), m))?;
        }
        if !self.allowed_documents.contains(&self.default_document) {
            return Err((
                "sessions.default_document".into(),
                format!(
                    "\"{}\" is not in sessions.allowed_documents",
                    self.default_document
                ),
            ));
        }
        Ok(SessionsConfig {
            default_document: self.default_document,
            allowed_documents: self.allowed_documents,
        })
    }
}
