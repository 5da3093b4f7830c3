//! The `ssmgate policy validate|test|explain` commands (the binary parses
//! flags and prints; the work is here so tests can call it too).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, anyhow, bail};

use super::testfile::{TestFile, default_document, render};
use super::time::parse_rfc3339;
use super::{Action, AuthzRequest, ContextInput, PolicyEngine, PolicyError, Principal};
use crate::config::{AwsCredentials, Config};
use crate::inventory::Fleet;
use crate::request::{AuthMethod, DEFAULT_CERT_EXTENSIONS};

/// The policy directory: `--policies`, else the config's `[policy] dir`,
/// else `./policies`.
pub fn policy_dir(policies: Option<&Path>, config: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = policies {
        return Ok(dir.to_owned());
    }
    match config {
        Some(path) => Ok(Config::load(path)?.policy.dir),
        None => Ok(PathBuf::from("policies")),
    }
}

/// Loads `dir`, turning a failure into an error that lists every problem.
fn load(dir: &Path, example_reason: &str) -> anyhow::Result<PolicyEngine> {
    PolicyEngine::load_with(dir, example_reason).map_err(|e| match &e {
        PolicyError::Invalid { problems } => anyhow!(
            "{} is invalid ({} problem{}):\n{e}",
            dir.display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        ),
        PolicyError::Io { .. } => anyhow!(e),
    })
}

/// `ssmgate policy validate`: the summary (and warnings) on success.
pub fn validate(dir: &Path) -> anyhow::Result<String> {
    let engine = load(dir, super::DEFAULT_EXAMPLE_REASON)?;
    let snap = engine.snapshot();
    let mut out = format!(
        "{}: OK, {} polic{} in {} file{}, validated against {}\n",
        dir.display(),
        snap.policies.len(),
        if snap.policies.len() == 1 { "y" } else { "ies" },
        snap.files.len(),
        if snap.files.len() == 1 { "" } else { "s" },
        super::loader::SCHEMA_FILE
    );
    if snap.policies.is_empty() {
        out.push_str("warning: no policies: every request will be denied\n");
    }
    for w in &snap.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    Ok(out)
}

/// `ssmgate policy test`: the table, and whether every case passed.
pub fn test(file: &Path, dir: &Path) -> anyhow::Result<(String, bool)> {
    let cases = TestFile::load(file).map_err(|e| anyhow!(e))?;
    let engine = load(dir, super::DEFAULT_EXAMPLE_REASON)?;
    let results = cases.run(&engine);
    let passed = results.iter().all(|r| r.mismatches.is_empty());
    Ok((render(&results, &engine), passed))
}

/// What `ssmgate policy explain` is asked.
#[derive(Debug, Clone)]
pub struct ExplainOptions {
    /// The gateway config (users, `[aws]`, `[policy]`).
    pub config: PathBuf,
    /// Overrides the config's policy directory.
    pub policies: Option<PathBuf>,
    /// The login name.
    pub user: String,
    /// Instance id or name, resolved through SSM.
    pub target: String,
    /// The kind of session.
    pub action: Action,
    /// The justification, if any.
    pub reason: Option<String>,
    /// The client's address.
    pub source_ip: IpAddr,
    /// When (RFC 3339); default now.
    pub at: Option<String>,
    /// `portNumber` (port_forward; ssh is 22).
    pub port: Option<u16>,
    /// `command` (exec).
    pub command: Option<String>,
    /// `subsystem` (exec of a subsystem, e.g. sftp).
    pub subsystem: Option<String>,
    /// `"ssm"` or `"sshd"`.
    pub backend: &'static str,
    /// The OS user (sshd backend).
    pub os_user: Option<String>,
    /// `context.reason_source`.
    pub reason_source: &'static str,
    /// The document; default by action.
    pub document: Option<String>,
    /// Pretend the user authenticated with a certificate with this key id.
    pub key_id: Option<String>,
}

/// `ssmgate policy explain`: resolves the target through SSM and writes
/// out the decision.
pub async fn explain(opts: &ExplainOptions) -> anyhow::Result<String> {
    let config = Config::load(&opts.config)?;
    let user = config
        .user(&opts.user)
        .with_context(|| format!("no user \"{}\" in {}", opts.user, opts.config.display()))?;
    let dir = opts.policies.clone().unwrap_or(config.policy.dir.clone());
    let engine = load(&dir, &config.policy.example_reason)?;
    let now = match &opts.at {
        Some(at) => parse_rfc3339(at).map_err(|e| anyhow!("--at: {e}"))?,
        None => SystemTime::now(),
    };
    let mut parameters = std::collections::BTreeMap::new();
    match (opts.action, opts.port) {
        (Action::Ssh, Some(p)) if p != 22 => bail!("ssh is port 22; use --action port_forward"),
        (Action::Ssh, _) => {
            parameters.insert("portNumber".to_owned(), "22".to_owned());
        }
        (Action::PortForward, Some(22)) => bail!("port 22 is --action ssh"),
        (Action::PortForward, Some(p)) => {
            parameters.insert("portNumber".to_owned(), p.to_string());
        }
        (Action::PortForward, None) => bail!("--port is required for port_forward"),
        (_, Some(_)) => bail!("--port applies to port_forward only"),
        _ => {}
    }
    if let Some(s) = &opts.subsystem {
        parameters.insert("subsystem".to_owned(), s.clone());
    }
    if let Some(c) = &opts.command {
        parameters.insert("command".to_owned(), c.clone());
    }
    let document = opts.document.clone().unwrap_or_else(|| match opts.action {
        Action::Shell => config.sessions.default_document.clone(),
        other => default_document(other).to_owned(),
    });

    let shared = crate::aws::load_config(
        config.aws.region.clone(),
        config.aws.endpoint.clone(),
        config.aws.credentials == AwsCredentials::Chain,
        config.aws.http_pool,
    )
    .await;
    let fleet = Fleet::from_config(&config.aws, config.inventory.cache, &shared).await;
    let target = fleet.resolve(&opts.target).await?;

    let auth = match &opts.key_id {
        Some(key_id) => AuthMethod::Certificate {
            fingerprint: "SHA256:(explain)".into(),
            key_id: key_id.clone(),
            serial: 0,
            ca_fingerprint: "SHA256:(explain)".into(),
            extensions: DEFAULT_CERT_EXTENSIONS.map(String::from).to_vec(),
            critical_options: Vec::new(),
        },
        None => AuthMethod::PublicKey {
            fingerprint: "SHA256:(explain)".into(),
        },
    };
    let req = AuthzRequest {
        principal: Principal { user, auth: &auth },
        action: opts.action,
        target: &target,
        context: ContextInput {
            document,
            parameters,
            reason: opts.reason.clone(),
            source_ip: opts.source_ip,
            now,
            recording: opts.action.recording(),
            backend: opts.backend,
            os_user: opts.os_user.clone(),
            reason_source: opts.reason_source,
        },
    };
    let decision = engine.decide(&req);
    Ok(super::explain::render(&engine, &req, &decision))
}
