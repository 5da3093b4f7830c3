//! Unit tests of the policy engine: entity building, the loader's
//! diagnostics, every example policy, the scope index and hot reload.

mod entities;
mod examples;
mod loader;
mod reload;

use std::sync::Arc;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::entities::Vocabulary;
use super::loader::load_sources;
use super::testfile::default_document;
use super::time::parse_rfc3339;
use super::*;
use crate::config::UserConfig;
use crate::inventory::Target;
use crate::request::AuthMethod;

/// The shipped `policies/` directory.
fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

fn schema_text() -> String {
    std::fs::read_to_string(shipped().join("schema.cedarschema")).unwrap()
}

/// An engine over the shipped schema and `policies` as one file.
fn engine_from(policies: &str) -> PolicyEngine {
    try_engine(&schema_text(), &[("test.cedar", policies)]).unwrap()
}

fn try_engine(schema: &str, files: &[(&str, &str)]) -> Result<PolicyEngine, PolicyError> {
    let dir = PathBuf::from("mem");
    let files: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(n, t)| (dir.join(n), (*t).to_owned()))
        .collect();
    let vocab = Vocabulary::new().unwrap();
    let snap = load_sources(
        &dir,
        (&dir.join("schema.cedarschema"), schema),
        &files,
        &vocab,
    )?;
    Ok(PolicyEngine::from_snapshot(
        vocab,
        snap,
        DEFAULT_EXAMPLE_REASON,
    ))
}

fn user(name: &str, groups: &[&str], attrs: &[(&str, &str)]) -> UserConfig {
    UserConfig {
        name: name.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        attributes: attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        authorized_keys: Vec::new(),
        authorized_keys_file: None,
        run_as: None,
    }
}

fn key() -> AuthMethod {
    AuthMethod::PublicKey {
        fingerprint: "SHA256:k".into(),
    }
}

fn target(id: &str, name: &str, tags: &[(&str, &str)]) -> Target {
    Target {
        id: id.into(),
        account: "default".into(),
        region: "us-east-1".into(),
        name: Some(name.into()),
        computer_name: None,
        ping_status: "Online".into(),
        platform_type: "Linux".into(),
        platform_name: "Amazon Linux".into(),
        platform_version: "2023".into(),
        resource_type: "EC2Instance".into(),
        agent_version: "3.3.987.0".into(),
        ip_address: None,
        last_ping: None,
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// A context for `action` at `at` (RFC 3339), with the default document.
fn ctx(action: Action, reason: Option<&str>, at: &str) -> ContextInput {
    let mut parameters = BTreeMap::new();
    if action == Action::Ssh {
        parameters.insert("portNumber".to_owned(), "22".to_owned());
    }
    ContextInput {
        document: default_document(action).into(),
        parameters,
        reason: reason.map(str::to_owned),
        source_ip: IpAddr::from([10, 1, 2, 3]),
        now: parse_rfc3339(at).unwrap(),
        recording: action.recording(),
        backend: "ssm",
        os_user: None,
        reason_source: if reason.is_some() { "prompt" } else { "none" },
    }
}

/// Tuesday, working hours.
const WORKDAY: &str = "2026-11-03T10:00:00Z";

fn decide(
    engine: &PolicyEngine,
    user: &UserConfig,
    action: Action,
    target: &Target,
    context: ContextInput,
) -> Decision {
    engine.authorize(&AuthzRequest {
        principal: Principal { user, auth: &key() },
        action,
        target,
        context,
    })
}
