//! `ssmgate policy test FILE`: a TOML file of requests with the decisions
//! they must get, run against a policy directory, printed as a table.
//!
//! ```toml
//! [defaults]                      # optional, for every case
//! at = "2026-11-03T10:00:00Z"     # RFC 3339; default: now
//! source_ip = "10.0.0.1"          # default 127.0.0.1
//!
//! [users.alice]                   # principals, by login name
//! groups = ["sre"]
//! attributes = { team = "platform" }   # the user's tags
//! auth = "publickey"              # or "certificate" (then key_id, ca_fingerprint,
//!                                 # extensions = ["permit-pty", …]; default ssh-keygen's)
//!
//! [targets.web-prod]              # targets, by a label used in cases
//! id = "i-0123456789abcdef0"      # required
//! name = "web-prod-1"             # default: the label
//! tags = { env = "prod" }
//! # platform, platform_name, platform_version, resource_type,
//! # agent_version, ping_status, computer_name: optional
//!
//! [[cases]]
//! name = "SRE shell on prod with a ticket"
//! user = "alice"
//! action = "shell"                # shell | exec | port_forward | ssh
//! target = "web-prod"
//! reason = "INC-1234 disk full"   # optional
//! # port, command, subsystem, host (parameters), document, at, source_ip,
//! # recording, backend ("ssm" | "sshd"; default "ssm"), os_user,
//! # reason_source ("prompt" | "env" | "grant" | "none"; default "prompt"
//! # with a reason, else "none")
//! expect = "allow"                # or "deny"
//! # needs_reason = true, policies = ["id", …], message_contains = "…": optional checks
//! ```
//!
//! The document defaults by action (shell `SSM-SessionManagerRunShell`,
//! exec `AWS-StartNonInteractiveCommand`, port_forward
//! `AWS-StartPortForwardingSession`, ssh `AWS-StartSSHSession` with port
//! 22), and so does the recording (full for shell/exec, metadata for the
//! others).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::time::SystemTime;

use serde::Deserialize;

use super::time::parse_rfc3339;
use super::{Action, AuthzRequest, ContextInput, Decision, PolicyEngine, Principal, Recording};
use crate::config::UserConfig;
use crate::inventory::Target;
use crate::request::{AuthMethod, DEFAULT_CERT_EXTENSIONS};

/// Longest case name shown in the table.
const NAME_WIDTH: usize = 64;

/// A parsed test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    users: BTreeMap<String, TestUser>,
    #[serde(default)]
    targets: BTreeMap<String, TestTarget>,
    #[serde(default)]
    cases: Vec<TestCase>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    at: Option<String>,
    source_ip: Option<IpAddr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestUser {
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    auth: Option<String>,
    key_id: Option<String>,
    ca_fingerprint: Option<String>,
    /// Certificate extensions (default: ssh-keygen's five).
    extensions: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestTarget {
    id: String,
    account: Option<String>,
    region: Option<String>,
    name: Option<String>,
    computer_name: Option<String>,
    platform: Option<String>,
    platform_name: Option<String>,
    platform_version: Option<String>,
    resource_type: Option<String>,
    agent_version: Option<String>,
    ping_status: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    user: String,
    action: String,
    target: String,
    reason: Option<String>,
    port: Option<u16>,
    command: Option<String>,
    subsystem: Option<String>,
    host: Option<String>,
    document: Option<String>,
    backend: Option<String>,
    os_user: Option<String>,
    reason_source: Option<String>,
    at: Option<String>,
    source_ip: Option<IpAddr>,
    recording: Option<String>,
    expect: String,
    needs_reason: Option<bool>,
    policies: Option<Vec<String>>,
    message_contains: Option<String>,
}

/// One case's outcome.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// Whether `allow` was expected.
    pub expected_allow: bool,
    /// What the engine decided.
    pub decision: Decision,
    /// Every way the decision differs from the expectations (empty: pass).
    pub mismatches: Vec<String>,
}

/// A request of the file, ready to evaluate.
struct Prepared {
    user: UserConfig,
    auth: AuthMethod,
    action: Action,
    target: Target,
    context: ContextInput,
}

/// The document a session of `action` uses unless told otherwise.
pub fn default_document(action: Action) -> &'static str {
    use crate::request::documents;
    match action {
        Action::Shell => documents::SHELL,
        Action::Exec => documents::NON_INTERACTIVE_COMMAND,
        Action::PortForward => documents::PORT_FORWARDING,
        Action::Ssh => documents::SSH,
    }
}

impl TestFile {
    /// Reads and checks a test file (every case's user, target, action and
    /// times must make sense); errors name the file and, for TOML errors,
    /// the line.
    pub fn load(path: &Path) -> Result<TestFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file: TestFile =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if file.cases.is_empty() {
            return Err(format!("{}: no [[cases]]", path.display()));
        }
        for (i, _) in file.cases.iter().enumerate() {
            file.prepare(i, SystemTime::now())
                .map_err(|e| format!("{}: cases[{i}]: {e}", path.display()))?;
        }
        Ok(file)
    }

    /// Number of cases.
    pub fn len(&self) -> usize {
        self.cases.len()
    }

    /// Whether there are no cases.
    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }

    fn prepare(&self, i: usize, now: SystemTime) -> Result<Prepared, String> {
        let case = &self.cases[i];
        let u = self
            .users
            .get(&case.user)
            .ok_or_else(|| format!("user \"{}\" is not in [users]", case.user))?;
        let t = self
            .targets
            .get(&case.target)
            .ok_or_else(|| format!("target \"{}\" is not in [targets]", case.target))?;
        let action: Action = case.action.parse()?;
        let fingerprint = format!("SHA256:test-key-of-{}", case.user);
        let auth = match u.auth.as_deref() {
            None | Some("publickey") => AuthMethod::PublicKey { fingerprint },
            Some("certificate") => AuthMethod::Certificate {
                fingerprint,
                key_id: u.key_id.clone().unwrap_or_else(|| case.user.clone()),
                serial: 1,
                ca_fingerprint: u
                    .ca_fingerprint
                    .clone()
                    .unwrap_or_else(|| "SHA256:test-ca".into()),
                extensions: u
                    .extensions
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CERT_EXTENSIONS.map(String::from).to_vec()),
                critical_options: Vec::new(),
            },
            Some(other) => {
                return Err(format!(
                    "user {}: auth must be publickey or certificate (got \"{other}\")",
                    case.user
                ));
            }
        };
        let user = UserConfig {
            name: case.user.clone(),
            groups: u.groups.clone(),
            attributes: u.attributes.clone(),
            authorized_keys: Vec::new(),
            authorized_keys_file: None,
            run_as: None,
        };
        let target = Target {
            id: t.id.clone(),
            account: t
                .account
                .clone()
                .unwrap_or_else(|| crate::inventory::DEFAULT_ACCOUNT.into()),
            region: t.region.clone().unwrap_or_default(),
            name: Some(t.name.clone().unwrap_or_else(|| case.target.clone())),
            computer_name: t.computer_name.clone(),
            ping_status: t.ping_status.clone().unwrap_or_else(|| "Online".into()),
            platform_type: t.platform.clone().unwrap_or_else(|| "Linux".into()),
            platform_name: t
                .platform_name
                .clone()
                .unwrap_or_else(|| "Amazon Linux".into()),
            platform_version: t.platform_version.clone().unwrap_or_else(|| "2023".into()),
            resource_type: t.resource_type.clone().unwrap_or_else(|| {
                if t.id.starts_with("mi-") {
                    "ManagedInstance".into()
                } else {
                    "EC2Instance".into()
                }
            }),
            agent_version: t
                .agent_version
                .clone()
                .unwrap_or_else(|| "3.3.987.0".into()),
            ip_address: None,
            last_ping: None,
            tags: t.tags.clone(),
        };
        let mut parameters = BTreeMap::new();
        let port = case.port.or((action == Action::Ssh).then_some(22));
        if let Some(port) = port {
            parameters.insert("portNumber".to_owned(), port.to_string());
        }
        if let Some(c) = &case.command {
            parameters.insert("command".to_owned(), c.clone());
        }
        if let Some(s) = &case.subsystem {
            parameters.insert("subsystem".to_owned(), s.clone());
        }
        if let Some(h) = &case.host {
            parameters.insert("host".to_owned(), h.clone());
        }
        let backend = match case.backend.as_deref() {
            None | Some("ssm") => "ssm",
            Some("sshd") => "sshd",
            Some(other) => {
                return Err(format!(
                    "backend must be \"ssm\" or \"sshd\" (got \"{other}\")"
                ));
            }
        };
        let at = case.at.as_ref().or(self.defaults.at.as_ref());
        let now = match at {
            Some(at) => parse_rfc3339(at)?,
            None => now,
        };
        let recording = match &case.recording {
            Some(r) => r.parse::<Recording>()?,
            None => action.recording(),
        };
        if !matches!(case.expect.as_str(), "allow" | "deny") {
            return Err(format!(
                "expect must be \"allow\" or \"deny\" (got \"{}\")",
                case.expect
            ));
        }
        let context = ContextInput {
            document: case
                .document
                .clone()
                .unwrap_or_else(|| default_document(action).to_owned()),
            parameters,
            reason: case.reason.clone(),
            source_ip: case
                .source_ip
                .or(self.defaults.source_ip)
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
            now,
            recording,
            backend,
            os_user: case.os_user.clone(),
            reason_source: super::asked_reason_source(
                case.reason_source.as_deref(),
                case.reason.as_deref(),
            )
            .map_err(|e| format!("case {:?}: {e}", case.name))?,
        };
        Ok(Prepared {
            user,
            auth,
            action,
            target,
            context,
        })
    }

    /// Runs every case against `engine`.
    pub fn run(&self, engine: &PolicyEngine) -> Vec<CaseResult> {
        let now = SystemTime::now();
        (0..self.cases.len())
            .map(|i| {
                let case = &self.cases[i];
                let expected_allow = case.expect == "allow";
                let (decision, mut mismatches) = match self.prepare(i, now) {
                    Ok(p) => {
                        let req = AuthzRequest {
                            principal: Principal {
                                user: &p.user,
                                auth: &p.auth,
                            },
                            action: p.action,
                            target: &p.target,
                            context: p.context.clone(),
                        };
                        (engine.decide(&req), Vec::new())
                    }
                    Err(e) => (
                        Decision {
                            allowed: false,
                            determining_policies: Vec::new(),
                            message: String::new(),
                            needs_reason: false,
                            errors: vec![e.clone()],
                            run_as: None,
                        },
                        vec![e],
                    ),
                };
                if decision.allowed != expected_allow {
                    mismatches.push(format!(
                        "expected {}, got {}",
                        case.expect,
                        allow_deny(decision.allowed)
                    ));
                }
                if let Some(want) = case.needs_reason
                    && want != decision.needs_reason
                {
                    mismatches.push(format!(
                        "expected needs_reason = {want}, got {}",
                        decision.needs_reason
                    ));
                }
                if let Some(want) = &case.policies {
                    let want: BTreeSet<&String> = want.iter().collect();
                    let got: BTreeSet<&String> = decision.determining_policies.iter().collect();
                    if want != got {
                        mismatches.push(format!(
                            "expected determining policies [{}], got [{}]",
                            join(want.iter().map(|s| s.as_str())),
                            join(got.iter().map(|s| s.as_str()))
                        ));
                    }
                }
                if let Some(want) = &case.message_contains
                    && !decision.message.contains(want.as_str())
                {
                    mismatches.push(format!(
                        "expected the message to contain \"{want}\", got \"{}\"",
                        decision.message
                    ));
                }
                CaseResult {
                    name: case.name.clone(),
                    expected_allow,
                    decision,
                    mismatches,
                }
            })
            .collect()
    }
}

fn allow_deny(allowed: bool) -> &'static str {
    if allowed { "allow" } else { "deny" }
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// The results as a table, then failures in detail, a summary line and the
/// policies no case was decided by.
pub fn render(results: &[CaseResult], engine: &PolicyEngine) -> String {
    let name_of = |r: &CaseResult| -> String {
        let mut n: String = r.name.chars().take(NAME_WIDTH).collect();
        if r.name.chars().count() > NAME_WIDTH {
            n.push('…');
        }
        n
    };
    let width = results
        .iter()
        .map(|r| name_of(r).chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:>3}  {:<6}  {:<6}  {:<6}  {:<width$}  determining policies\n",
        "#", "result", "expect", "got", "case"
    );
    for (i, r) in results.iter().enumerate() {
        let got = if r.decision.needs_reason {
            "deny*"
        } else {
            allow_deny(r.decision.allowed)
        };
        let determining = if r.decision.determining_policies.is_empty() {
            "(none: deny by default)".to_owned()
        } else {
            r.decision.determining_policies.join(", ")
        };
        out.push_str(&format!(
            "{:>3}  {:<6}  {:<6}  {:<6}  {:<width$}  {determining}\n",
            i + 1,
            if r.mismatches.is_empty() {
                "ok"
            } else {
                "FAIL"
            },
            allow_deny(r.expected_allow),
            got,
            name_of(r),
        ));
    }
    let failed: Vec<(usize, &CaseResult)> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.mismatches.is_empty())
        .collect();
    if results.iter().any(|r| r.decision.needs_reason) {
        out.push_str("(deny* = denied only for lack of a reason)\n");
    }
    for (i, r) in &failed {
        out.push_str(&format!("\ncase {} \"{}\":\n", i + 1, r.name));
        for m in &r.mismatches {
            out.push_str(&format!("  {m}\n"));
        }
        out.push_str(&format!("  message: {}\n", r.decision.message));
        for e in &r.decision.errors {
            out.push_str(&format!("  error: {e}\n"));
        }
    }
    out.push_str(&format!(
        "\n{} cases: {} passed, {} failed\n",
        results.len(),
        results.len() - failed.len(),
        failed.len()
    ));
    let decided: BTreeSet<&str> = results
        .iter()
        .flat_map(|r| r.decision.determining_policies.iter().map(String::as_str))
        .collect();
    let snapshot = engine.snapshot();
    let unused: Vec<&str> = snapshot
        .policies
        .iter()
        .map(|p| p.id.as_str())
        .filter(|id| !decided.contains(id))
        .collect();
    if !unused.is_empty() {
        out.push_str(&format!(
            "policies that decided no case: {}\n",
            unused.join(", ")
        ));
    }
    out
}
