//! The simulator's TOML configuration: mode, fault injection, the instance
//! inventory, the home region and account, and the other accounts this
//! simulated AWS holds. Loading reports every problem with the file, line,
//! column and key path (e.g.
//! `sim.toml:7:6: instances[1].id: must start with i- or mi- (got "x-1")`).
//!
//! Accounts and regions: one sim hosts several. Plain access keys act in
//! the home `account`; credentials from the sim's STS `AssumeRole` act in
//! the account of the role (any role ARN of the home account or of an
//! `[[accounts]]` entry may be assumed; other accounts' are
//! `AccessDenied`). Each request is served in the region its SigV4
//! signature is scoped to (the home `region` when unsigned), and sees only
//! the instances (and sessions) of its account and region. An instance is
//! in the home account and region unless its `account`/`region` say
//! otherwise; instance ids stay unique across all of them.
//!
//! Full example (every key is optional):
//!
//! ```toml
//! mode = "faithful"          # "faithful" (real timings) or "fast" (no artificial waits)
//! region = "us-east-1"       # the home region: of instances that name none, and of unsigned requests
//! account = "123456789012"   # the home account: plain access keys act in it
//! role_max_session_duration = 3600  # every IAM role's MaxSessionDuration for STS AssumeRole (3600..=43200)
//!
//! [faults]                   # data-channel fault injection (all off by default)
//! drop_rate = 0.0            # probability a message is dropped (0..=1)
//! duplicate_rate = 0.0       # probability a message is delivered twice
//! reorder_rate = 0.0         # probability a message is held back behind the next
//! delay_rate = 0.0           # probability a message is delayed by delay_ms
//! delay_ms = 0
//! close_after = 50           # close the client WebSocket after this many messages
//! refuse_resume = false      # ResumeSession answers AccessDeniedException
//! seed = 42                  # RNG seed for reproducible faults
//!
//! [[api_faults]]             # API errors to answer (none by default)
//! operation = "GetResources" # after the dot of X-Amz-Target, or the STS Action
//! code = "ThrottledException"
//! message = "Rate exceeded"
//! times = 3                  # the next 3 calls; absent: every call
//!
//! [[accounts]]               # more accounts (none by default); reached by assuming a role in them,
//! id = "222222222222"        # e.g. arn:aws:iam::222222222222:role/ops (12 digits, unique)
//!
//! [[instances]]              # none listed ⇒ the built-in fleet (Inventory::default_instances)
//! id = "i-0123456789abcdef0"
//! name = "web-1"
//! tags = { env = "dev" }
//! ping_status = "Online"     # Online | ConnectionLost | Inactive
//! ports = { "22" = "127.0.0.1:2222" }
//! account = "222222222222"   # default: the home account; else one of [[accounts]]
//! region = "eu-west-1"       # default: the home region
//! ```
//!
//! See [`Instance`] for every instance key.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;

use crate::api::faults::ApiFaultRule;
use crate::inventory::{Instance, Inventory};
use crate::location::{is_account_id, is_region_name};
use toml_diagnostics::TomlSource;
pub use toml_diagnostics::{ConfigError, Diagnostic};

/// How faithfully the sim reproduces real timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Real agent timings (e.g. the shell's 1 s first-read delay).
    #[default]
    Faithful,
    /// No artificial waits: for tests and benchmarks.
    Fast,
}

impl Mode {
    /// `faithful` or `fast`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Faithful => "faithful",
            Mode::Fast => "fast",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "faithful" => Ok(Mode::Faithful),
            "fast" => Ok(Mode::Fast),
            _ => Err(format!("unknown mode \"{s}\" (expected faithful or fast)")),
        }
    }
}

/// Data-channel fault injection, applied by the sim's service half.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Probability (0..=1) that a relayed message is dropped.
    pub drop_rate: f64,
    /// Probability that a relayed message is delivered twice.
    pub duplicate_rate: f64,
    /// Probability that a relayed message is swapped with the next one.
    pub reorder_rate: f64,
    /// Probability that a relayed message is delayed by `delay_ms`.
    pub delay_rate: f64,
    /// Delay applied to delayed messages, in milliseconds.
    pub delay_ms: u64,
    /// Close the client's WebSocket after this many relayed messages.
    pub close_after: Option<u64>,
    /// `ResumeSession` is refused (`AccessDeniedException`).
    pub refuse_resume: bool,
    /// Seed for the fault RNG (random when absent).
    pub seed: Option<u64>,
}

impl FaultConfig {
    /// True when some fault is switched on.
    pub fn any(&self) -> bool {
        self.drop_rate > 0.0
            || self.duplicate_rate > 0.0
            || self.reorder_rate > 0.0
            || self.delay_rate > 0.0
            || self.close_after.is_some()
            || self.refuse_resume
    }

    /// Checks that every rate lies in [0, 1]; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        for (key, rate) in self.rates() {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("faults.{key} must be between 0 and 1 (got {rate})"));
            }
        }
        Ok(())
    }

    /// The rates as `(key, value)` pairs, for validation and logging.
    fn rates(&self) -> [(&'static str, f64); 4] {
        [
            ("drop_rate", self.drop_rate),
            ("duplicate_rate", self.duplicate_rate),
            ("reorder_rate", self.reorder_rate),
            ("delay_rate", self.delay_rate),
        ]
    }
}

/// One `[[accounts]]` entry: an account that exists in this simulated AWS
/// besides the home one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The account id (12 digits).
    pub id: String,
}

/// The whole sim config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// `faithful` (default) or `fast`.
    #[serde(default)]
    pub mode: Mode,
    /// Fault injection (default: none).
    #[serde(default)]
    pub faults: FaultConfig,
    /// API errors to inject (see [`crate::api::faults`]).
    #[serde(default)]
    pub api_faults: Vec<ApiFaultRule>,
    /// The instances; empty ⇒ [`Inventory::default_instances`].
    #[serde(default)]
    pub instances: Vec<Instance>,
    /// The home region (default `us-east-1`): instances without `region`
    /// are in it, and unsigned requests are served in it.
    #[serde(default = "default_region")]
    pub region: String,
    /// The home account (default `123456789012`): plain access keys are
    /// IAM users of it; instances without `account` are in it.
    #[serde(default = "default_account")]
    pub account: String,
    /// Other accounts of this simulated AWS (reached by assuming a role in
    /// them); the home account need not be listed.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    /// The `MaxSessionDuration` of every role STS `AssumeRole` assumes, in
    /// seconds (default 3600, a new IAM role's; AWS allows 3600–43200).
    #[serde(default = "default_role_max_session")]
    pub role_max_session_duration: u32,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}
fn default_account() -> String {
    "123456789012".to_owned()
}
fn default_role_max_session() -> u32 {
    crate::identity::DEFAULT_ROLE_MAX_SESSION
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            mode: Mode::Faithful,
            faults: FaultConfig::default(),
            api_faults: Vec::new(),
            instances: Vec::new(),
            region: default_region(),
            account: default_account(),
            accounts: Vec::new(),
            role_max_session_duration: default_role_max_session(),
        }
    }
}

impl SimConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates config text (errors name the origin `sim config`).
    pub fn from_toml_str(s: &str) -> Result<Self, ConfigError> {
        Self::parse(s, "sim config")
    }

    /// Every account this config hosts: the home one first, then the
    /// listed ones (each once).
    pub fn hosted_accounts(&self) -> Vec<String> {
        let mut out = vec![self.account.clone()];
        for a in &self.accounts {
            if !out.contains(&a.id) {
                out.push(a.id.clone());
            }
        }
        out
    }

    /// The inventory this config describes.
    pub fn inventory(&self) -> Inventory {
        if self.instances.is_empty() {
            Inventory::default_instances()
        } else {
            Inventory::new(self.instances.clone())
        }
    }

    fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let source = TomlSource::new(text, origin);
        let config: SimConfig = source.deserialize()?;
        config
            .validate()
            .map_err(|(field, message)| source.error_at(field, message))?;
        let mut config = config;
        for instance in &mut config.instances {
            instance.normalize();
        }
        Ok(config)
    }

    /// Semantic checks; the error is `(key path, message)`.
    fn validate(&self) -> Result<(), (String, String)> {
        for (key, rate) in self.faults.rates() {
            if !(0.0..=1.0).contains(&rate) {
                return Err((
                    format!("faults.{key}"),
                    format!("must be between 0 and 1 (got {rate})"),
                ));
            }
        }
        if !is_region_name(&self.region) {
            return Err((
                "region".into(),
                format!("must look like us-east-1 (got \"{}\")", self.region),
            ));
        }
        if !is_account_id(&self.account) {
            return Err((
                "account".into(),
                format!("must be 12 digits (got \"{}\")", self.account),
            ));
        }
        let mut listed = BTreeSet::new();
        for (i, account) in self.accounts.iter().enumerate() {
            if !is_account_id(&account.id) {
                return Err((
                    format!("accounts[{i}].id"),
                    format!("must be 12 digits (got \"{}\")", account.id),
                ));
            }
            if !listed.insert(account.id.as_str()) {
                return Err((
                    format!("accounts[{i}].id"),
                    format!("duplicate account \"{}\"", account.id),
                ));
            }
        }
        if !(3600..=43_200).contains(&self.role_max_session_duration) {
            return Err((
                "role_max_session_duration".into(),
                format!(
                    "must be between 3600 and 43200 seconds (got {})",
                    self.role_max_session_duration
                ),
            ));
        }
        for (i, rule) in self.api_faults.iter().enumerate() {
            for (key, value) in [("operation", &rule.operation), ("code", &rule.code)] {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err((
                        format!("api_faults[{i}].{key}"),
                        format!("must be a name like GetResources (got \"{value}\")"),
                    ));
                }
            }
        }
        let mut seen = BTreeSet::new();
        for (i, instance) in self.instances.iter().enumerate() {
            instance
                .validate()
                .map_err(|e| (format!("instances[{i}].{}", e.field), e.message))?;
            if !seen.insert(instance.id.as_str()) {
                return Err((
                    format!("instances[{i}].id"),
                    format!("duplicate instance id \"{}\"", instance.id),
                ));
            }
            if let Some(account) = &instance.account
                && *account != self.account
                && !listed.contains(account.as_str())
            {
                return Err((
                    format!("instances[{i}].account"),
                    format!(
                        "\"{account}\" is not an account of this sim: use the home account \"{}\" or list it as [[accounts]] id = \"{account}\"",
                        self.account
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(text: &str) -> Diagnostic {
        SimConfig::from_toml_str(text)
            .unwrap_err()
            .diagnostic()
            .cloned()
            .unwrap()
    }

    #[test]
    fn empty_config_is_all_defaults() {
        let c = SimConfig::from_toml_str("").unwrap();
        assert_eq!(c, SimConfig::default());
        assert_eq!(c.inventory(), Inventory::default_instances());
        assert!(!c.faults.any());
    }

    #[test]
    fn full_config() {
        let c = SimConfig::from_toml_str(
            r#"
mode = "fast"
region = "eu-west-1"
[faults]
drop_rate = 0.1
close_after = 5
seed = 7
[[api_faults]]
operation = "GetResources"
code = "ThrottledException"
message = "Rate exceeded"
times = 2
[[instances]]
id = "i-0123456789abcdef0"
name = "web"
ports = { "22" = "127.0.0.1:2222" }
[[instances]]
id = "mi-0123456789abcdef0"
ping_status = "Inactive"
"#,
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Fast);
        assert_eq!(c.faults.close_after, Some(5));
        assert_eq!(
            c.api_faults,
            vec![ApiFaultRule {
                operation: "GetResources".into(),
                code: "ThrottledException".into(),
                message: "Rate exceeded".into(),
                times: Some(2),
            }]
        );
        assert!(c.faults.any());
        let inv = c.inventory();
        let web = inv.get("i-0123456789abcdef0").unwrap();
        assert_eq!(web.dial_address(22), "127.0.0.1:2222");
        assert_eq!(web.tags.get("Name").unwrap(), "web");
        assert_eq!(
            inv.get("mi-0123456789abcdef0").unwrap().resource_type,
            "ManagedInstance"
        );
    }

    #[test]
    fn bad_id_names_the_instance_and_line() {
        let d =
            diag("[[instances]]\nid = \"i-0123456789abcdef0\"\n\n[[instances]]\nid = \"x-1\"\n");
        assert_eq!(d.field.as_deref(), Some("instances[1].id"));
        assert_eq!(d.position, Some((5, 6)));
        assert!(d.message.contains("must start with i- or mi-"), "{d}");
        assert!(
            d.to_string()
                .starts_with("sim config:5:6: instances[1].id: ")
        );
    }

    #[test]
    fn duplicate_ids() {
        let d = diag("[[instances]]\nid = \"i-01234567\"\n[[instances]]\nid = \"i-01234567\"\n");
        assert_eq!(d.field.as_deref(), Some("instances[1].id"));
        assert!(d.message.contains("duplicate"));
    }

    #[test]
    fn bad_rate_and_port_map() {
        let d = diag("[faults]\nreorder_rate = 1.5\n");
        assert_eq!(d.field.as_deref(), Some("faults.reorder_rate"));
        assert_eq!(d.position, Some((2, 16)));
        let d = diag("[[instances]]\nid = \"i-01234567\"\nports = { \"22\" = \"nohost\" }\n");
        assert_eq!(d.field.as_deref(), Some("instances[0].ports.\"22\""));
        assert_eq!(d.position.map(|p| p.0), Some(3));
    }

    #[test]
    fn serde_errors_have_paths() {
        let d = diag("[[instances]]\nid = \"i-01234567\"\nping_status = \"Up\"\n");
        assert_eq!(d.position.map(|p| p.0), Some(3));
        assert_eq!(d.field.as_deref(), Some("instances[0].ping_status"));
        assert!(d.message.contains("Up"), "{d}");
        let d = diag("mode = \"slow\"\n");
        assert_eq!(d.field.as_deref(), Some("mode"));
        let d = diag("[faults]\ndrop = 1\n");
        assert!(d.message.contains("unknown field"), "{d}");
        assert_eq!(d.field.as_deref(), Some("faults.drop"));
        let d = diag("[[api_faults]]\noperation = \"Get Resources\"\ncode = \"X\"\n");
        assert_eq!(d.field.as_deref(), Some("api_faults[0].operation"));
        let d = diag("[[api_faults]]\noperation = \"X\"\n");
        assert!(d.message.contains("code"), "{d}");
        let d = diag("role_max_session_duration = 60\n");
        assert_eq!(d.field.as_deref(), Some("role_max_session_duration"));
        let d = diag("x = [\n");
        assert!(d.position.is_some());
    }

    #[test]
    fn accounts_and_instance_locations() {
        let c = SimConfig::from_toml_str(
            r#"
account = "111111111111"
[[accounts]]
id = "222222222222"
[[accounts]]
id = "111111111111"
[[instances]]
id = "i-01234567"
[[instances]]
id = "i-01234568"
account = "222222222222"
region = "eu-west-1"
[[instances]]
id = "i-01234569"
account = "111111111111"
"#,
        )
        .unwrap();
        assert_eq!(c.hosted_accounts(), vec!["111111111111", "222222222222"]);
        let inv = c.inventory();
        let abroad = inv.get("i-01234568").unwrap();
        assert_eq!(abroad.account.as_deref(), Some("222222222222"));
        assert_eq!(abroad.region.as_deref(), Some("eu-west-1"));
        assert_eq!(inv.get("i-01234567").unwrap().account, None);
        assert_eq!(SimConfig::default().hosted_accounts(), vec!["123456789012"]);
    }

    #[test]
    fn account_errors_name_the_key() {
        let d = diag("[[accounts]]\nid = \"12\"\n");
        assert_eq!(d.field.as_deref(), Some("accounts[0].id"));
        assert_eq!(d.position, Some((2, 6)));
        assert!(d.message.contains("12 digits"), "{d}");
        let d = diag("[[accounts]]\nid = \"222222222222\"\n[[accounts]]\nid = \"222222222222\"\n");
        assert_eq!(d.field.as_deref(), Some("accounts[1].id"));
        assert_eq!(d.position.map(|p| p.0), Some(4));
        assert!(d.message.contains("duplicate"), "{d}");
        let d = diag("[[accounts]]\nname = \"prod\"\n");
        assert!(d.message.contains("unknown field"), "{d}");
        let d = diag("[[instances]]\nid = \"i-01234567\"\naccount = \"333333333333\"\n");
        assert_eq!(d.field.as_deref(), Some("instances[0].account"));
        assert_eq!(d.position, Some((3, 11)));
        assert!(d.message.contains("[[accounts]]"), "{d}");
        let d = diag("[[instances]]\nid = \"i-01234567\"\naccount = \"3\"\n");
        assert_eq!(d.field.as_deref(), Some("instances[0].account"));
        assert!(d.message.contains("12 digits"), "{d}");
        let d = diag("[[instances]]\nid = \"i-01234567\"\nregion = \"Mars\"\n");
        assert_eq!(d.field.as_deref(), Some("instances[0].region"));
        assert_eq!(d.position.map(|p| p.0), Some(3));
        let d = diag(
            "[[instances]]\nid = \"i-01234567\"\n[[instances]]\nid = \"i-01234567\"\naccount = \"123456789012\"\n",
        );
        assert!(d.message.contains("duplicate instance id"), "{d}");
    }

    #[test]
    fn mode_from_str() {
        assert_eq!("FAST".parse::<Mode>(), Ok(Mode::Fast));
        assert!("slow".parse::<Mode>().is_err());
    }

    #[test]
    fn load_reports_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.toml");
        std::fs::write(&path, "[[instances]]\nid = \"x-1\"\n").unwrap();
        let err = SimConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("sim.toml:2:6: instances[0].id: must start with i- or mi-"),
            "{err}"
        );
        let missing = SimConfig::load(&dir.path().join("nope.toml")).unwrap_err();
        assert!(matches!(missing, ConfigError::Io { .. }));
    }
}
