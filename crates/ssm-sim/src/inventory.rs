//! The simulator's managed-instance inventory: the instances that
//! `DescribeInstanceInformation` lists, that `StartSession` may target and
//! that the simulated agent "runs on".
//!
//! An [`Instance`] is read from the `[[instances]]` tables of the sim's TOML
//! config (see [`crate::config`]); an [`Inventory`] indexes them by id.
//! When the config lists none, [`Inventory::default_instances`] supplies a
//! small fleet covering the interesting cases (EC2 and hybrid instances, an
//! offline one). Each instance lives in one account and region (its
//! `account` and `region` keys; absent, the sim's home ones): requests see
//! only the instances of their caller's account and signing region
//! ([`Instance::is_at`]). Ids are unique across all of them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::location::{Location, is_account_id, is_region_name};

/// The SSM agent's ping status, as `DescribeInstanceInformation` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum PingStatus {
    /// The agent is connected: sessions can start.
    #[default]
    Online,
    /// The agent stopped pinging: `StartSession` fails with
    /// `TargetNotConnected`.
    ConnectionLost,
    /// The instance is stopped or deregistered.
    Inactive,
}

impl PingStatus {
    /// The wire spelling (`Online`, `ConnectionLost`, `Inactive`).
    pub fn as_str(self) -> &'static str {
        match self {
            PingStatus::Online => "Online",
            PingStatus::ConnectionLost => "ConnectionLost",
            PingStatus::Inactive => "Inactive",
        }
    }
}

impl fmt::Display for PingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One managed instance.
///
/// TOML form (every key but `id` is optional):
///
/// ```toml
/// [[instances]]
/// id = "i-0123456789abcdef0"        # i-… (EC2) or mi-… (hybrid), 8–17 lowercase hex digits
/// name = "web-1"                    # the Name tag (copied into tags.Name unless set there)
/// computer_name = "web-1.internal"  # InstanceInformation.ComputerName
/// tags = { env = "dev", role = "web" }
/// platform_type = "Linux"           # Linux | Windows | MacOS
/// platform_name = "Amazon Linux"
/// platform_version = "2023"
/// ping_status = "Online"            # Online | ConnectionLost | Inactive
/// agent_version = "3.3.987.0"
/// resource_type = "EC2Instance"     # default: EC2Instance for i-, ManagedInstance for mi-
/// ip_address = "127.0.0.1"
/// shell = ["/bin/sh"]               # argv of shell sessions on this instance
/// ports = { "22" = "127.0.0.1:2222", "80" = "localhost:8080" }
///                                   # remote port → address the sim dials
///                                   # (default: 127.0.0.1:<port>)
/// account = "222222222222"          # the account it is in: the sim's `account`
///                                   # (the default) or one of its [[accounts]]
/// region = "eu-west-1"              # the region it is in (default: the sim's `region`)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// `i-…` or `mi-…`.
    pub id: String,
    /// The `Name` tag; also stored in `tags["Name"]` unless that is set.
    #[serde(default)]
    pub name: Option<String>,
    /// The host name the agent reports (`ComputerName`).
    #[serde(default)]
    pub computer_name: Option<String>,
    /// Resource tags, as `ListTagsForResource` and the `tag:` filters see them.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `Linux`, `Windows` or `MacOS`.
    #[serde(default = "default_platform_type")]
    pub platform_type: String,
    /// e.g. `Amazon Linux`.
    #[serde(default = "default_platform_name")]
    pub platform_name: String,
    /// e.g. `2023`.
    #[serde(default = "default_platform_version")]
    pub platform_version: String,
    /// Only `Online` instances accept sessions.
    #[serde(default)]
    pub ping_status: PingStatus,
    /// The agent version the sim's agent half reports in handshakes.
    #[serde(default = "default_agent_version")]
    pub agent_version: String,
    /// `EC2Instance` or `ManagedInstance`; empty means "derive from the id".
    #[serde(default)]
    pub resource_type: String,
    /// `IPAddress` in `DescribeInstanceInformation`.
    #[serde(default = "default_ip_address")]
    pub ip_address: String,
    /// The command shell sessions run (argv; default `["/bin/sh"]`).
    #[serde(default = "default_shell")]
    pub shell: Vec<String>,
    /// Remote port → `host:port` the sim dials instead of `127.0.0.1:<port>`.
    #[serde(default, deserialize_with = "deserialize_ports")]
    pub ports: BTreeMap<u16, String>,
    /// The account the instance is in; `None`: the sim's home account.
    #[serde(default)]
    pub account: Option<String>,
    /// The region the instance is in; `None`: the sim's home region.
    #[serde(default)]
    pub region: Option<String>,
}

fn default_platform_type() -> String {
    "Linux".to_owned()
}
fn default_platform_name() -> String {
    "Amazon Linux".to_owned()
}
fn default_platform_version() -> String {
    "2023".to_owned()
}
fn default_agent_version() -> String {
    "3.3.987.0".to_owned()
}
fn default_ip_address() -> String {
    "127.0.0.1".to_owned()
}
fn default_shell() -> Vec<String> {
    vec!["/bin/sh".to_owned()]
}

/// TOML table keys are strings: read `"22" = "…"` as port 22.
fn deserialize_ports<'de, D>(deserializer: D) -> Result<BTreeMap<u16, String>, D::Error>
where
    D: Deserializer<'de>,
{
    let raw = BTreeMap::<String, String>::deserialize(deserializer)?;
    let mut ports = BTreeMap::new();
    for (key, value) in raw {
        let port = key.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
            serde::de::Error::custom(format!("key \"{key}\" is not a port number (1-65535)"))
        })?;
        ports.insert(port, value);
    }
    Ok(ports)
}

/// Why an [`Instance`] is not acceptable: which field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InstanceError {
    /// Field path relative to the instance, e.g. `id` or `ports."22"`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl Instance {
    /// An instance with every optional field at its default, normalised.
    pub fn new(id: impl Into<String>) -> Self {
        let mut instance = Instance {
            id: id.into(),
            name: None,
            computer_name: None,
            tags: BTreeMap::new(),
            platform_type: default_platform_type(),
            platform_name: default_platform_name(),
            platform_version: default_platform_version(),
            ping_status: PingStatus::Online,
            agent_version: default_agent_version(),
            resource_type: String::new(),
            ip_address: default_ip_address(),
            shell: default_shell(),
            ports: BTreeMap::new(),
            account: None,
            region: None,
        };
        instance.normalize();
        instance
    }

    /// Sets the Name tag (builder style).
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self.tags.insert("Name".to_owned(), name.to_owned());
        self
    }

    /// Adds a tag (builder style).
    pub fn with_tag(mut self, key: &str, value: &str) -> Self {
        self.tags.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Sets the ping status (builder style).
    pub fn with_ping_status(mut self, status: PingStatus) -> Self {
        self.ping_status = status;
        self
    }

    /// Puts the instance in `account` (builder style; the sim must host
    /// that account, see [`crate::config::SimConfig`]'s `accounts`).
    pub fn with_account(mut self, account: &str) -> Self {
        self.account = Some(account.to_owned());
        self
    }

    /// Puts the instance in `region` (builder style).
    pub fn with_region(mut self, region: &str) -> Self {
        self.region = Some(region.to_owned());
        self
    }

    /// True when the instance is in location `at`; an instance without
    /// `account` or `region` is in `home`'s.
    pub fn is_at(&self, at: &Location, home: &Location) -> bool {
        self.account.as_deref().unwrap_or(&home.account) == at.account
            && self.region.as_deref().unwrap_or(&home.region) == at.region
    }

    /// The location the instance is in (`home`'s where it names none).
    pub fn location(&self, home: &Location) -> Location {
        Location {
            region: self.region.clone().unwrap_or_else(|| home.region.clone()),
            account: self.account.clone().unwrap_or_else(|| home.account.clone()),
        }
    }

    /// Fills derived fields: `resource_type` from the id prefix when empty,
    /// `tags["Name"]` from `name` (and `name` from the tag) when absent.
    pub fn normalize(&mut self) {
        if self.resource_type.is_empty() {
            self.resource_type = if self.id.starts_with("mi-") {
                "ManagedInstance".to_owned()
            } else {
                "EC2Instance".to_owned()
            };
        }
        match (&self.name, self.tags.get("Name")) {
            (Some(name), None) => {
                self.tags.insert("Name".to_owned(), name.clone());
            }
            (None, Some(tag)) => self.name = Some(tag.clone()),
            _ => {}
        }
    }

    /// Checks the fields a config file could get wrong.
    pub fn validate(&self) -> Result<(), InstanceError> {
        let fail = |field: String, message: String| Err(InstanceError { field, message });
        if !(self.id.starts_with("i-") || self.id.starts_with("mi-")) {
            return fail(
                "id".into(),
                format!("must start with i- or mi- (got \"{}\")", self.id),
            );
        }
        if !is_instance_id(&self.id) {
            return fail(
                "id".into(),
                format!(
                    "must be i- or mi- followed by 8 to 17 lowercase hex digits (got \"{}\")",
                    self.id
                ),
            );
        }
        if !matches!(self.platform_type.as_str(), "Linux" | "Windows" | "MacOS") {
            return fail(
                "platform_type".into(),
                format!(
                    "must be Linux, Windows or MacOS (got \"{}\")",
                    self.platform_type
                ),
            );
        }
        if !matches!(
            self.resource_type.as_str(),
            "" | "EC2Instance" | "ManagedInstance"
        ) {
            return fail(
                "resource_type".into(),
                format!(
                    "must be EC2Instance or ManagedInstance (got \"{}\")",
                    self.resource_type
                ),
            );
        }
        if self.shell.first().is_none_or(|program| program.is_empty()) {
            return fail(
                "shell".into(),
                "must name a program, e.g. [\"/bin/sh\"]".into(),
            );
        }
        for (port, address) in &self.ports {
            if let Err(why) = parse_host_port(address) {
                return fail(format!("ports.\"{port}\""), why);
            }
        }
        if let Some(account) = &self.account
            && !is_account_id(account)
        {
            return fail(
                "account".into(),
                format!("must be 12 digits (got \"{account}\")"),
            );
        }
        if let Some(region) = &self.region
            && !is_region_name(region)
        {
            return fail(
                "region".into(),
                format!("must look like us-east-1 (got \"{region}\")"),
            );
        }
        Ok(())
    }

    /// Where the sim dials for remote port `port` on this instance.
    pub fn dial_address(&self, port: u16) -> String {
        self.ports
            .get(&port)
            .cloned()
            .unwrap_or_else(|| format!("127.0.0.1:{port}"))
    }

    /// True when the agent is `Online` (sessions may start).
    pub fn is_connected(&self) -> bool {
        self.ping_status == PingStatus::Online
    }

    /// `AWS::EC2::Instance` or `AWS::SSM::ManagedInstance`.
    pub fn source_type(&self) -> &'static str {
        if self.resource_type == "ManagedInstance" {
            "AWS::SSM::ManagedInstance"
        } else {
            "AWS::EC2::Instance"
        }
    }
}

/// `^(i|mi)-[0-9a-f]{8,17}$`.
pub fn is_instance_id(id: &str) -> bool {
    let hex = id
        .strip_prefix("i-")
        .or_else(|| id.strip_prefix("mi-"))
        .unwrap_or("");
    (8..=17).contains(&hex.len())
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Splits `host:port` (host may be `[v6]`); the port must be 1–65535.
pub fn parse_host_port(address: &str) -> Result<(String, u16), String> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("must be host:port (got \"{address}\")"));
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("must be host:port with a host (got \"{address}\")"));
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok((host.to_owned(), p)),
        _ => Err(format!(
            "must be host:port with a port 1-65535 (got \"{address}\")"
        )),
    }
}

/// The instances the sim knows, indexed by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    instances: BTreeMap<String, Instance>,
}

impl Inventory {
    /// Indexes `instances` (normalising each). A repeated id keeps the last
    /// one; [`crate::config::SimConfig`] rejects repeats beforehand.
    pub fn new(instances: Vec<Instance>) -> Self {
        let instances = instances
            .into_iter()
            .map(|mut instance| {
                instance.normalize();
                (instance.id.clone(), instance)
            })
            .collect();
        Inventory { instances }
    }

    /// The built-in fleet used when the config lists no instances:
    ///
    /// | id | Name | ping | tags |
    /// |---|---|---|---|
    /// | `i-0a1b2c3d4e5f60001` | web-1 | Online | env=dev, role=web |
    /// | `i-0a1b2c3d4e5f60002` | db-1 | Online | env=prod, role=db |
    /// | `mi-0a1b2c3d4e5f60003` | edge-1 | Online (ManagedInstance) | env=dev, role=edge |
    /// | `i-0a1b2c3d4e5f60004` | offline-1 | ConnectionLost | env=dev |
    pub fn default_instances() -> Self {
        Inventory::new(vec![
            Instance::new("i-0a1b2c3d4e5f60001")
                .with_name("web-1")
                .with_tag("env", "dev")
                .with_tag("role", "web"),
            Instance::new("i-0a1b2c3d4e5f60002")
                .with_name("db-1")
                .with_tag("env", "prod")
                .with_tag("role", "db"),
            Instance::new("mi-0a1b2c3d4e5f60003")
                .with_name("edge-1")
                .with_tag("env", "dev")
                .with_tag("role", "edge"),
            Instance::new("i-0a1b2c3d4e5f60004")
                .with_name("offline-1")
                .with_tag("env", "dev")
                .with_ping_status(PingStatus::ConnectionLost),
        ])
    }

    /// The instance with this id.
    pub fn get(&self, id: &str) -> Option<&Instance> {
        self.instances.get(id)
    }

    /// All instances, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Instance> {
        self.instances.values()
    }

    /// Number of instances.
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// True when there are no instances.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory::default_instances()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids() {
        assert!(is_instance_id("i-0123456789abcdef0"));
        assert!(is_instance_id("mi-0123abcd"));
        assert!(!is_instance_id("i-0123abc"));
        assert!(!is_instance_id("i-0123456789ABCDEF0"));
        assert!(!is_instance_id("i-0123456789abcdef01"));
        assert!(!is_instance_id("x-0123456789abcdef0"));
    }

    #[test]
    fn normalize_fills_derived_fields() {
        let i = Instance::new("mi-0123456789abcdef0");
        assert_eq!(i.resource_type, "ManagedInstance");
        assert_eq!(i.source_type(), "AWS::SSM::ManagedInstance");
        let mut j = Instance::new("i-0123456789abcdef0");
        j.name = Some("web".into());
        j.normalize();
        assert_eq!(j.resource_type, "EC2Instance");
        assert_eq!(j.tags.get("Name").map(String::as_str), Some("web"));
        let mut k = Instance::new("i-0123456789abcdef1");
        k.tags.insert("Name".into(), "tagged".into());
        k.normalize();
        assert_eq!(k.name.as_deref(), Some("tagged"));
    }

    #[test]
    fn location_defaults_to_home() {
        let home = Location::default();
        let abroad = home.in_region("eu-west-1");
        let other = Location {
            account: "222222222222".into(),
            region: "eu-west-1".into(),
        };
        let i = Instance::new("i-0123456789abcdef0");
        assert!(i.is_at(&home, &home) && !i.is_at(&abroad, &home));
        assert_eq!(i.location(&home), home);
        let j = i.clone().with_region("eu-west-1");
        assert!(j.is_at(&abroad, &home) && !j.is_at(&home, &home));
        let k = j.with_account("222222222222");
        assert!(k.is_at(&other, &home) && !k.is_at(&abroad, &home));
        assert_eq!(k.location(&home), other);
        assert_eq!(
            Instance::new("i-0123456789abcdef0")
                .with_account("2")
                .validate()
                .unwrap_err()
                .field,
            "account"
        );
        assert_eq!(
            Instance::new("i-0123456789abcdef0")
                .with_region("EU")
                .validate()
                .unwrap_err()
                .field,
            "region"
        );
    }

    #[test]
    fn dial_address_uses_port_map() {
        let mut i = Instance::new("i-0123456789abcdef0");
        i.ports.insert(22, "localhost:2222".into());
        assert_eq!(i.dial_address(22), "localhost:2222");
        assert_eq!(i.dial_address(80), "127.0.0.1:80");
    }

    #[test]
    fn host_port_parsing() {
        assert_eq!(parse_host_port("a:1"), Ok(("a".into(), 1)));
        assert_eq!(parse_host_port("[::1]:22"), Ok(("::1".into(), 22)));
        assert!(parse_host_port("a").is_err());
        assert!(parse_host_port(":22").is_err());
        assert!(parse_host_port("a:0").is_err());
        assert!(parse_host_port("a:70000").is_err());
    }

    #[test]
    fn default_inventory() {
        let inv = Inventory::default_instances();
        assert_eq!(inv.len(), 4);
        let ids: Vec<_> = inv.iter().map(|i| i.id.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(!inv.get("i-0a1b2c3d4e5f60004").unwrap().is_connected());
        assert!(inv.get("i-0a1b2c3d4e5f60001").unwrap().is_connected());
        assert!(inv.iter().all(|i| i.validate().is_ok()));
    }
}
