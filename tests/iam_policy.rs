//! The IAM policies in `deploy/iam` against the AWS operations the gateway
//! really calls.
//!
//! 1. The SDK calls in `src/` (`.start_session()`, …; the names are the
//!    operation modules of the SDK crates `cargo metadata` resolves) are
//!    exactly the operations listed in `ssmgate::aws::operations::OPERATIONS`.
//! 2. `gateway-policy.json` grants every operation that needs a permission
//!    and nothing else: no wildcard actions, `"Resource": "*"` only for
//!    actions without resource-level permissions, sessions resumed and
//!    ended only when they are the caller's own.
//! 3. The optional session-role files (`session_role_arn`) grant only what
//!    that feature needs.
//!
//! Every check collects its problems as messages instead of stopping at the
//! first; the `*_is_caught` tests feed each check a broken policy and see
//! that it complains.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;
use serde_json::{Value, json};
use ssmgate::aws::operations::OPERATIONS;
use ssmgate::config::DEFAULT_ALLOWED_DOCUMENTS;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The SDK crates the gateway calls AWS with, and the IAM service prefix of
/// their operations.
const SDKS: &[(&str, &str)] = &[
    ("aws-sdk-ssm", "ssm"),
    ("aws-sdk-sts", "sts"),
    ("aws-sdk-resourcegroupstagging", "tag"),
];

/// The policy files, relative to `deploy/iam`. A new file must be added
/// here (and checked) before the tests pass.
const GATEWAY_POLICY: &str = "gateway-policy.json";
const GATEWAY_SESSION_ROLE_STATEMENT: &str = "gateway-session-role-statement.json";
const SESSION_ROLE_POLICY: &str = "session-role-policy.json";
const SESSION_ROLE_TRUST: &str = "session-role-trust.json";
const POLICY_FILES: &[&str] = &[
    GATEWAY_POLICY,
    GATEWAY_SESSION_ROLE_STATEMENT,
    SESSION_ROLE_POLICY,
    SESSION_ROLE_TRUST,
];

/// Operations needed only with an optional feature; they are granted by a
/// policy of their own, never by `gateway-policy.json`.
const OPTIONAL: &[(&str, &str)] = &[("sts:AssumeRole", GATEWAY_SESSION_ROLE_STATEMENT)];

/// Permissions that are no SDK operation of the gateway's but that an
/// operation in `OPERATIONS` needs: (permission, the operation, why). A
/// policy grants one exactly when it grants its operation.
const COMPANIONS: &[(&str, &str, &str)] = &[
    (
        "sts:TagSession",
        "sts:AssumeRole",
        "AssumeRole passes the session tags ssmgate-user, ssmgate-session, SSMSessionRunAs",
    ),
    (
        "sts:SetSourceIdentity",
        "sts:AssumeRole",
        "AssumeRole sets SourceIdentity to the gateway user",
    ),
    (
        "ssmmessages:OpenDataChannel",
        "ssm:StartSession",
        "the data channel WebSocket to the StreamUrl that StartSession and ResumeSession answer",
    ),
];

/// Actions that support no resource-level permissions: IAM only honours
/// them with `"Resource": "*"` (Service Authorization Reference: no
/// resource type for `ssm:DescribeInstanceInformation` nor for
/// `tag:GetResources`). Nothing else may be granted on `*`.
const NO_RESOURCE_LEVEL: &[&str] = &["ssm:DescribeInstanceInformation", "tag:GetResources"];

/// Where the actions with resource-level permissions may apply (the
/// sessions' and StartSession's own resources are checked apart).
const RESOURCES: &[(&str, &[&str])] = &[
    (
        "ssm:ListTagsForResource",
        &["arn:aws:ssm:*:*:managed-instance/*"],
    ),
    (
        "ssmmessages:OpenDataChannel",
        &["arn:aws:ssm:*:*:session/*"],
    ),
    (
        "sts:AssumeRole",
        &["arn:aws:iam::ACCOUNT:role/SESSION_ROLE"],
    ),
    (
        "sts:TagSession",
        &["arn:aws:iam::ACCOUNT:role/SESSION_ROLE"],
    ),
    (
        "sts:SetSourceIdentity",
        &["arn:aws:iam::ACCOUNT:role/SESSION_ROLE"],
    ),
];

/// The session actions that must be limited to the caller's own sessions.
const OWN_SESSION_ACTIONS: &[&str] = &["ssm:ResumeSession", "ssm:TerminateSession"];

/// Session ids begin with the IAM user name or, for a role, the role
/// session name, never with `aws:userid`; the system tag Session Manager
/// puts on each session holds `aws:userid` (the user id, or
/// `ROLE-ID:ROLE-SESSION-NAME`). See deploy/iam/README.md.
const OWN_SESSION_TAG: &str = "ssm:resourceTag/aws:ssmmessages:session-id";

/// The session tags the gateway sets when it assumes the session role.
const SESSION_TAGS: &[&str] = &["ssmgate-user", "ssmgate-session", "SSMSessionRunAs"];

/// The placeholders of the policy files, each explained in
/// deploy/iam/README.md.
const PLACEHOLDERS: &[&str] = &["ACCOUNT", "SESSION_ROLE", "GATEWAY_ROLE"];

// ---------------------------------------------------------------------
// The SDK calls in src/
// ---------------------------------------------------------------------

/// `start_session` → `StartSession`.
fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The source directory of each SDK crate the root package depends on,
/// from `cargo metadata`.
fn sdk_dirs() -> BTreeMap<&'static str, PathBuf> {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(Path::new(ROOT).join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let root_manifest = Path::new(ROOT).join("Cargo.toml");
    let root_id = packages
        .iter()
        .find(|p| p["manifest_path"].as_str().map(Path::new) == Some(root_manifest.as_path()))
        .and_then(|p| p["id"].as_str())
        .expect("the root package in cargo metadata");
    let node = meta["resolve"]["nodes"]
        .as_array()
        .expect("resolve.nodes")
        .iter()
        .find(|n| n["id"].as_str() == Some(root_id))
        .expect("the root package's node");
    let mut dirs = BTreeMap::new();
    for (krate, _) in SDKS {
        let lib_name = krate.replace('-', "_");
        let dep_id = node["deps"]
            .as_array()
            .expect("deps")
            .iter()
            .find(|d| d["name"].as_str() == Some(lib_name.as_str()))
            .and_then(|d| d["pkg"].as_str())
            .unwrap_or_else(|| panic!("ssmgate does not depend on {krate}"));
        let manifest = packages
            .iter()
            .find(|p| p["id"].as_str() == Some(dep_id))
            .and_then(|p| p["manifest_path"].as_str())
            .unwrap_or_else(|| panic!("no package {dep_id} in cargo metadata"));
        let dir = Path::new(manifest)
            .parent()
            .expect("crate dir")
            .to_path_buf();
        dirs.insert(*krate, dir);
    }
    dirs
}

/// Each SDK crate's operations: the module directories under
/// `src/operation/` (`start_session`, …).
fn sdk_operations() -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut ops = BTreeMap::new();
    for (krate, dir) in sdk_dirs() {
        let op_dir = dir.join("src/operation");
        let names: BTreeSet<String> = std::fs::read_dir(&op_dir)
            .unwrap_or_else(|e| panic!("{}: {e}", op_dir.display()))
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.is_dir())
            .map(|path| {
                path.file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert!(
            names.len() >= 5,
            "{krate}: only {} operations under {}; has the SDK's layout changed?",
            names.len(),
            op_dir.display()
        );
        ops.insert(krate, names);
    }
    ops
}

/// Every `.rs` file below `dir`, with its text, sorted by path.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read");
                out.push((path, text));
            }
        }
    }
    out.sort();
    out
}

/// One SDK call found in the source.
#[derive(Debug, Clone)]
struct Call {
    /// The operation's snake_case name.
    name: String,
    /// The SDK crates having an operation of that name.
    crates: Vec<&'static str>,
    /// `src/…:LINE`.
    place: String,
}

/// The fluent SDK calls (`.start_session()`) in `src/`.
fn sdk_calls(ops: &BTreeMap<&'static str, BTreeSet<String>>) -> Vec<Call> {
    let call = Regex::new(r"\.([a-z_][a-z0-9_]*)\(\)").expect("regex");
    let mut calls = Vec::new();
    for (path, text) in sources(&Path::new(ROOT).join("src")) {
        let file = path
            .strip_prefix(ROOT)
            .unwrap_or(&path)
            .display()
            .to_string();
        for (i, line) in text.lines().enumerate() {
            for cap in call.captures_iter(line) {
                let name = &cap[1];
                let crates: Vec<&'static str> = ops
                    .iter()
                    .filter(|(_, names)| names.contains(name))
                    .map(|(krate, _)| *krate)
                    .collect();
                if !crates.is_empty() {
                    calls.push(Call {
                        name: name.to_owned(),
                        crates,
                        place: format!("{file}:{}", i + 1),
                    });
                }
            }
        }
    }
    calls
}

/// The IAM action of `name` in `krate`.
fn iam_action(krate: &str, name: &str) -> String {
    let prefix = SDKS
        .iter()
        .find(|(k, _)| *k == krate)
        .map(|(_, p)| *p)
        .expect("known SDK");
    format!("{prefix}:{}", pascal(name))
}

/// The IAM actions the calls need, each with where it is called.
fn called_actions(calls: &[Call]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in calls {
        for krate in &c.crates {
            out.entry(iam_action(krate, &c.name))
                .or_default()
                .push(c.place.clone());
        }
    }
    out
}

/// Differences between what the code calls and what `OPERATIONS` lists.
fn operations_problems(
    called: &BTreeMap<String, Vec<String>>,
    listed: &BTreeSet<&str>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (action, places) in called {
        if !listed.contains(action.as_str()) {
            problems.push(format!(
                "{action} is called at {} but is not listed in src/aws/operations.rs \
                 OPERATIONS (list it, and grant it in deploy/iam if it needs a permission)",
                places.join(", ")
            ));
        }
    }
    for action in listed {
        if !called.contains_key(*action) {
            problems.push(format!(
                "{action} is listed in src/aws/operations.rs OPERATIONS but no SDK call \
                 to it was found in src/ (remove it, and its grant in deploy/iam)"
            ));
        }
    }
    problems
}

fn listed_operations() -> BTreeSet<&'static str> {
    OPERATIONS.iter().map(|op| op.action).collect()
}

#[test]
fn the_code_calls_exactly_the_listed_operations() {
    let ops = sdk_operations();
    let calls = sdk_calls(&ops);
    assert!(
        calls.iter().any(|c| c.name == "start_session"),
        "the scan of src/ found no `.start_session()`: is the scan broken? found {calls:?}"
    );
    let problems = operations_problems(&called_actions(&calls), &listed_operations());
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// A name that is an operation of several SDK crates would need the file's
/// imports to say which one is called; none of the names called today is.
#[test]
fn the_sdk_calls_in_src_are_unambiguous() {
    let calls = sdk_calls(&sdk_operations());
    let ambiguous: Vec<String> = calls
        .iter()
        .filter(|c| c.crates.len() > 1)
        .map(|c| {
            format!(
                "`.{}()` at {} is an operation of {:?}",
                c.name, c.place, c.crates
            )
        })
        .collect();
    assert!(
        ambiguous.is_empty(),
        "resolve these by the file's `use` of the SDK crate before mapping them to IAM \
         actions:\n{}",
        ambiguous.join("\n")
    );
}

#[test]
fn operations_and_iam_names_are_well_formed() {
    assert_eq!(pascal("list_tags_for_resource"), "ListTagsForResource");
    assert_eq!(
        iam_action("aws-sdk-resourcegroupstagging", "get_resources"),
        "tag:GetResources"
    );
    let mut seen = BTreeSet::new();
    for op in OPERATIONS {
        assert!(
            seen.insert(op.action),
            "{} is listed twice in OPERATIONS",
            op.action
        );
        assert!(!op.purpose.is_empty(), "{} has no purpose", op.action);
    }
    // IAM never denies GetCallerIdentity; everything else needs a grant.
    for op in OPERATIONS {
        assert_eq!(
            op.needs_permission,
            op.action != "sts:GetCallerIdentity",
            "{}: needs_permission is {}",
            op.action,
            op.needs_permission
        );
    }
}

#[test]
fn a_call_missing_from_operations_is_caught() {
    let mut called = BTreeMap::new();
    called.insert("ssm:StartSession".to_owned(), vec!["src/a.rs:1".to_owned()]);
    called.insert("ssm:SendCommand".to_owned(), vec!["src/b.rs:7".to_owned()]);
    let listed: BTreeSet<&str> = ["ssm:StartSession", "ssm:TerminateSession"].into();
    let problems = operations_problems(&called, &listed);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("ssm:SendCommand is called at src/b.rs:7"));
    assert!(problems[1].contains("ssm:TerminateSession is listed"));
}

// ---------------------------------------------------------------------
// The policy files
// ---------------------------------------------------------------------

fn iam_dir() -> PathBuf {
    Path::new(ROOT).join("deploy/iam")
}

fn load(file: &str) -> Value {
    let path = iam_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One `Allow` statement.
#[derive(Debug)]
struct Statement {
    sid: String,
    actions: Vec<String>,
    resources: Vec<String>,
    condition: Value,
    principal: Value,
}

/// A string or a list of strings.
fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// The statements of `policy`, and what is wrong with their shape.
fn statements(policy: &Value, file: &str) -> (Vec<Statement>, Vec<String>) {
    let mut problems = Vec::new();
    if policy["Version"] != "2012-10-17" {
        problems.push(format!("{file}: Version must be \"2012-10-17\""));
    }
    let raw = match &policy["Statement"] {
        Value::Array(items) => items.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        _ => {
            problems.push(format!("{file}: no Statement"));
            Vec::new()
        }
    };
    let mut out = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let sid = s["Sid"]
            .as_str()
            .map_or_else(|| format!("#{i}"), str::to_owned);
        let at = format!("{file} statement {sid}");
        if s["Effect"] != "Allow" {
            problems.push(format!("{at}: Effect must be Allow"));
        }
        for key in ["NotAction", "NotResource", "NotPrincipal"] {
            if s.get(key).is_some() {
                problems.push(format!(
                    "{at}: {key} grants everything else; list what is meant"
                ));
            }
        }
        let actions = strings(&s["Action"]).unwrap_or_else(|| {
            problems.push(format!(
                "{at}: Action must be a string or a list of strings"
            ));
            Vec::new()
        });
        for a in &actions {
            if a.contains('*') || a.contains('?') {
                problems.push(format!("{at}: wildcard action {a}; name each action"));
            }
        }
        let resources = if s.get("Resource").is_some() {
            strings(&s["Resource"]).unwrap_or_else(|| {
                problems.push(format!(
                    "{at}: Resource must be a string or a list of strings"
                ));
                Vec::new()
            })
        } else {
            Vec::new()
        };
        out.push(Statement {
            sid,
            actions,
            resources,
            condition: s.get("Condition").cloned().unwrap_or(Value::Null),
            principal: s.get("Principal").cloned().unwrap_or(Value::Null),
        });
    }
    (out, problems)
}

fn granted(stmts: &[Statement]) -> BTreeSet<String> {
    stmts
        .iter()
        .flat_map(|s| s.actions.iter().cloned())
        .collect()
}

fn companions_of(action: &str) -> impl Iterator<Item = &'static str> + '_ {
    COMPANIONS
        .iter()
        .filter(move |(_, parent, _)| *parent == action)
        .map(|(companion, _, _)| *companion)
}

/// Least privilege for an identity policy: `"Resource": "*"` only for the
/// actions that cannot have anything else, the actions with fixed
/// resources on exactly those, StartSession on the instances and the
/// gateway's documents, ResumeSession/TerminateSession on own sessions.
fn resource_problems(stmts: &[Statement], file: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for s in stmts {
        let at = format!("{file} statement {}", s.sid);
        if s.resources.is_empty() {
            problems.push(format!("{at}: no Resource"));
        }
        if s.resources.iter().any(|r| r == "*") {
            for a in s
                .actions
                .iter()
                .filter(|a| !NO_RESOURCE_LEVEL.contains(&a.as_str()))
            {
                problems.push(format!(
                    "{at}: {a} is granted on \"*\"; only {NO_RESOURCE_LEVEL:?} (no resource-level \
                     permissions) may be"
                ));
            }
        }
        for a in s
            .actions
            .iter()
            .filter(|a| NO_RESOURCE_LEVEL.contains(&a.as_str()))
        {
            if s.resources != ["*"] {
                problems.push(format!(
                    "{at}: {a} supports no resource-level permissions, so anything but \
                     \"Resource\": \"*\" grants nothing (got {:?})",
                    s.resources
                ));
            }
        }
        for (action, allowed) in RESOURCES {
            if s.actions.iter().any(|a| a == action) && s.resources != *allowed {
                problems.push(format!(
                    "{at}: {action} must be on exactly {allowed:?} (got {:?})",
                    s.resources
                ));
            }
        }
    }
    problems.extend(start_session_problems(stmts, file));
    problems.extend(own_session_problems(stmts, file));
    problems
}

/// The resources `ssm:StartSession` is granted on: every instance and
/// managed instance, and exactly the documents the gateway uses by default
/// (`[sessions] allowed_documents`): AWS's own under `arn:aws:ssm:*::`, the
/// account's (`SSM-SessionManagerRunShell`, the preferences document) under
/// `arn:aws:ssm:*:*:`.
fn start_session_resources() -> BTreeSet<String> {
    let mut expected: BTreeSet<String> = [
        "arn:aws:ec2:*:*:instance/*",
        "arn:aws:ssm:*:*:managed-instance/*",
    ]
    .map(str::to_owned)
    .into();
    for doc in DEFAULT_ALLOWED_DOCUMENTS {
        expected.insert(if doc.starts_with("AWS-") {
            format!("arn:aws:ssm:*::document/{doc}")
        } else {
            format!("arn:aws:ssm:*:*:document/{doc}")
        });
    }
    expected
}

fn start_session_problems(stmts: &[Statement], file: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let expected = start_session_resources();
    for s in stmts
        .iter()
        .filter(|s| s.actions.iter().any(|a| a == "ssm:StartSession"))
    {
        let at = format!("{file} statement {}", s.sid);
        if s.actions.len() != 1 {
            problems.push(format!(
                "{at}: ssm:StartSession must be in a statement of its own (its resources are \
                 instances and documents), not with {:?}",
                s.actions
            ));
        }
        let got: BTreeSet<String> = s.resources.iter().cloned().collect();
        for missing in expected.difference(&got) {
            problems.push(format!("{at}: ssm:StartSession lacks {missing}"));
        }
        for extra in got.difference(&expected) {
            problems.push(format!(
                "{at}: ssm:StartSession on {extra}, which the gateway does not use by default"
            ));
        }
        if s.condition["BoolIfExists"]["ssm:SessionDocumentAccessCheck"] != "true" {
            problems.push(format!(
                "{at}: ssm:StartSession without BoolIfExists ssm:SessionDocumentAccessCheck = \
                 \"true\": a StartSession without a document name would skip the document check"
            ));
        }
    }
    problems
}

fn own_session_problems(stmts: &[Statement], file: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for s in stmts.iter().filter(|s| {
        s.actions
            .iter()
            .any(|a| OWN_SESSION_ACTIONS.contains(&a.as_str()))
    }) {
        let at = format!("{file} statement {}", s.sid);
        if s.actions
            .iter()
            .any(|a| !OWN_SESSION_ACTIONS.contains(&a.as_str()))
        {
            problems.push(format!(
                "{at}: {OWN_SESSION_ACTIONS:?} must be in a statement of their own (its \
                 condition limits them to own sessions), not with {:?}",
                s.actions
            ));
        }
        if s.resources != ["arn:aws:ssm:*:*:session/*"] {
            problems.push(format!(
                "{at}: sessions are resumed and ended on \"arn:aws:ssm:*:*:session/*\" with the \
                 condition on their tag (got {:?})",
                s.resources
            ));
        }
        if s.condition["StringEquals"][OWN_SESSION_TAG] != "${aws:userid}" {
            problems.push(format!(
                "{at}: {:?} must be limited to the caller's own sessions: Condition \
                 StringEquals {OWN_SESSION_TAG} = \"${{aws:userid}}\"",
                s.actions
            ));
        }
    }
    problems
}

/// `gateway-policy.json` (and the optional statement files) against
/// `OPERATIONS`.
fn gateway_problems(policy: &Value, optional: &[(&str, &Value)]) -> Vec<String> {
    let (stmts, mut problems) = statements(policy, GATEWAY_POLICY);
    problems.extend(resource_problems(&stmts, GATEWAY_POLICY));
    let grants = granted(&stmts);
    let mut optional_grants = BTreeMap::new();
    for (file, doc) in optional {
        let (stmts, p) = statements(doc, file);
        problems.extend(p);
        problems.extend(resource_problems(&stmts, file));
        optional_grants.insert(*file, granted(&stmts));
    }
    let optional_file = |action: &str| {
        OPTIONAL
            .iter()
            .find(|(a, _)| *a == action)
            .map(|(_, file)| *file)
    };
    // Every operation that needs a permission is granted, where it belongs.
    for op in OPERATIONS.iter().filter(|op| op.needs_permission) {
        match optional_file(op.action) {
            None if !grants.contains(op.action) => problems.push(format!(
                "{GATEWAY_POLICY}: {} is not granted; the gateway calls it ({})",
                op.action, op.purpose
            )),
            Some(file) => {
                if grants.contains(op.action) {
                    problems.push(format!(
                        "{GATEWAY_POLICY}: {} belongs in {file} (only needed with {}), not here",
                        op.action, op.purpose
                    ));
                }
                if !optional_grants
                    .get(file)
                    .is_some_and(|g| g.contains(op.action))
                {
                    problems.push(format!(
                        "{file}: {} is not granted; the gateway calls it ({})",
                        op.action, op.purpose
                    ));
                }
            }
            None => {}
        }
    }
    // Nothing else is granted: no extras, no operation IAM never denies.
    let mut files: Vec<(&str, &BTreeSet<String>)> = vec![(GATEWAY_POLICY, &grants)];
    files.extend(optional_grants.iter().map(|(f, g)| (*f, g)));
    for (file, grants) in files {
        for action in grants {
            let op = OPERATIONS.iter().find(|op| op.action == action);
            let companion = COMPANIONS.iter().find(|(c, _, _)| c == action);
            match (op, companion) {
                (Some(op), _) if !op.needs_permission => problems.push(format!(
                    "{file}: {action} is granted but IAM never denies it; remove it"
                )),
                (Some(op), _) => {
                    let home = optional_file(op.action).unwrap_or(GATEWAY_POLICY);
                    if home != file {
                        problems.push(format!("{file}: {action} belongs in {home}"));
                    }
                }
                (None, Some((_, parent, why))) => {
                    if !grants.contains(*parent) {
                        problems.push(format!(
                            "{file}: {action} is granted without {parent}, which it is for ({why})"
                        ));
                    }
                }
                (None, None) => problems.push(format!(
                    "{file}: {action} is granted but the gateway never calls it (not in \
                     src/aws/operations.rs OPERATIONS); remove it"
                )),
            }
        }
        // … and a granted operation comes with what it needs.
        for action in grants {
            for companion in companions_of(action) {
                if !grants.contains(companion) {
                    problems.push(format!("{file}: {action} is granted without {companion}"));
                }
            }
        }
    }
    problems
}

/// `session-role-policy.json`: only the session operations, on the same
/// resources as the gateway's own.
fn session_role_problems(policy: &Value) -> Vec<String> {
    let (stmts, mut problems) = statements(policy, SESSION_ROLE_POLICY);
    problems.extend(resource_problems(&stmts, SESSION_ROLE_POLICY));
    let mut expected: BTreeSet<String> = [
        "ssm:StartSession",
        "ssm:ResumeSession",
        "ssm:TerminateSession",
    ]
    .map(str::to_owned)
    .into();
    let with_companions: Vec<String> = expected
        .iter()
        .flat_map(|a| companions_of(a).map(str::to_owned).collect::<Vec<_>>())
        .collect();
    expected.extend(with_companions);
    let grants = granted(&stmts);
    for missing in expected.difference(&grants) {
        problems.push(format!("{SESSION_ROLE_POLICY}: {missing} is not granted"));
    }
    for extra in grants.difference(&expected) {
        problems.push(format!(
            "{SESSION_ROLE_POLICY}: {extra} is granted; the session role is only for \
             StartSession, ResumeSession and TerminateSession"
        ));
    }
    problems
}

/// `session-role-trust.json`: the gateway's role may assume the session
/// role only naming a user (tag `ssmgate-user`, a source identity) and
/// setting only the gateway's tags.
fn trust_problems(policy: &Value) -> Vec<String> {
    let file = SESSION_ROLE_TRUST;
    let (stmts, mut problems) = statements(policy, file);
    let expected: BTreeSet<String> = ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]
        .map(str::to_owned)
        .into();
    let grants = granted(&stmts);
    for missing in expected.difference(&grants) {
        problems.push(format!("{file}: {missing} is not allowed"));
    }
    for extra in grants.difference(&expected) {
        problems.push(format!(
            "{file}: {extra} is allowed; the gateway only assumes the role"
        ));
    }
    for s in &stmts {
        let at = format!("{file} statement {}", s.sid);
        if !s.resources.is_empty() {
            problems.push(format!("{at}: a trust policy has no Resource"));
        }
        if s.principal != json!({ "AWS": "arn:aws:iam::ACCOUNT:role/GATEWAY_ROLE" }) {
            problems.push(format!(
                "{at}: Principal must be the gateway's role, {{\"AWS\": \
                 \"arn:aws:iam::ACCOUNT:role/GATEWAY_ROLE\"}} (got {})",
                s.principal
            ));
        }
        for key in ["aws:RequestTag/ssmgate-user", "sts:SourceIdentity"] {
            if s.condition["Null"][key] != "false" {
                problems.push(format!(
                    "{at}: must require {key} (Condition Null {key} = \"false\")"
                ));
            }
        }
        let tag_keys: Option<BTreeSet<String>> =
            strings(&s.condition["ForAllValues:StringEquals"]["aws:TagKeys"])
                .map(|keys| keys.into_iter().collect());
        let want: BTreeSet<String> = SESSION_TAGS.iter().map(|t| (*t).to_owned()).collect();
        if tag_keys.as_ref() != Some(&want) {
            problems.push(format!(
                "{at}: session tags must be limited to {SESSION_TAGS:?} (Condition \
                 ForAllValues:StringEquals aws:TagKeys; got {tag_keys:?})"
            ));
        }
    }
    problems
}

fn assert_none(problems: Vec<String>) {
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn the_gateway_policy_grants_exactly_the_operations_that_need_a_permission() {
    assert_none(gateway_problems(
        &load(GATEWAY_POLICY),
        &[(
            GATEWAY_SESSION_ROLE_STATEMENT,
            &load(GATEWAY_SESSION_ROLE_STATEMENT),
        )],
    ));
}

#[test]
fn the_session_role_policy_grants_only_the_session_operations() {
    assert_none(session_role_problems(&load(SESSION_ROLE_POLICY)));
}

#[test]
fn the_session_role_trusts_only_the_gateway_naming_a_user() {
    assert_none(trust_problems(&load(SESSION_ROLE_TRUST)));
}

/// The session tags the trust policy allows are the ones the code sets.
#[test]
fn the_session_tags_are_the_codes() {
    let src = sources(&Path::new(ROOT).join("src"));
    for tag in SESSION_TAGS {
        let literal = format!("\"{tag}\"");
        assert!(
            src.iter().any(|(_, text)| text.contains(&literal)),
            "session tag {tag} is allowed by {SESSION_ROLE_TRUST} but set nowhere in src/"
        );
    }
}

/// Every file in deploy/iam is checked here and explained in its README,
/// with every placeholder it uses.
#[test]
fn every_policy_file_is_checked_and_explained() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(iam_dir())
        .expect("deploy/iam")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    let known: BTreeSet<String> = POLICY_FILES.iter().map(|f| (*f).to_owned()).collect();
    assert_eq!(
        on_disk, known,
        "deploy/iam's JSON files are not the ones this test checks"
    );
    let readme =
        std::fs::read_to_string(iam_dir().join("README.md")).expect("deploy/iam/README.md");
    let word = Regex::new(r"\b[A-Z][A-Z_]{3,}\b").expect("regex");
    for file in POLICY_FILES {
        assert!(
            readme.contains(file),
            "deploy/iam/README.md does not explain {file}"
        );
        let text = std::fs::read_to_string(iam_dir().join(file)).expect("read");
        for w in word.find_iter(&text) {
            assert!(
                PLACEHOLDERS.contains(&w.as_str()),
                "{file}: {} looks like a placeholder; add it to PLACEHOLDERS and the README",
                w.as_str()
            );
        }
    }
    for p in PLACEHOLDERS {
        assert!(
            readme.contains(&format!("`{p}`")),
            "deploy/iam/README.md does not explain `{p}`"
        );
    }
}

// ---------------------------------------------------------------------
// Each check can fail: broken copies of the real files.
// ---------------------------------------------------------------------

/// `file`'s policy with `edit` applied to its statement `sid`.
fn edited(file: &str, sid: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut policy = load(file);
    let statement = policy["Statement"]
        .as_array_mut()
        .expect("statements")
        .iter_mut()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("{file} has no statement {sid}"));
    edit(statement);
    policy
}

fn gateway_with(policy: &Value) -> Vec<String> {
    gateway_problems(
        policy,
        &[(
            GATEWAY_SESSION_ROLE_STATEMENT,
            &load(GATEWAY_SESSION_ROLE_STATEMENT),
        )],
    )
}

fn expect_problem(problems: &[String], needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "expected a problem containing {needle:?}, got {problems:#?}"
    );
}

#[test]
fn a_missing_grant_is_caught() {
    let policy = edited(GATEWAY_POLICY, "ResumeAndEndOwnSessionsOnly", |s| {
        s["Action"] = json!(["ssm:ResumeSession"]);
    });
    expect_problem(
        &gateway_with(&policy),
        "ssm:TerminateSession is not granted",
    );
    let policy = edited(GATEWAY_POLICY, "HybridNodeTags", |s| {
        s["Action"] = json!([])
    });
    expect_problem(
        &gateway_with(&policy),
        "ssm:ListTagsForResource is not granted",
    );
}

#[test]
fn an_extra_or_wildcard_grant_is_caught() {
    let policy = edited(GATEWAY_POLICY, "ListManagedNodes", |s| {
        s["Action"] = json!(["ssm:DescribeInstanceInformation", "ssm:SendCommand"]);
    });
    expect_problem(
        &gateway_with(&policy),
        "ssm:SendCommand is granted but the gateway never calls it",
    );
    let policy = edited(GATEWAY_POLICY, "ListManagedNodes", |s| {
        s["Action"] = json!("ssm:*")
    });
    expect_problem(&gateway_with(&policy), "wildcard action ssm:*");
    let policy = edited(GATEWAY_POLICY, "ListManagedNodes", |s| {
        s["Action"] = json!(["ssm:DescribeInstanceInformation", "sts:GetCallerIdentity"]);
    });
    expect_problem(
        &gateway_with(&policy),
        "sts:GetCallerIdentity is granted but IAM never denies it",
    );
    let policy = edited(GATEWAY_POLICY, "HybridNodeTags", |s| {
        s["Action"] = json!(["ssm:ListTagsForResource", "sts:AssumeRole"]);
    });
    expect_problem(
        &gateway_with(&policy),
        "sts:AssumeRole belongs in gateway-session-role-statement.json",
    );
    let policy = edited(GATEWAY_POLICY, "OpenSessionDataChannels", |s| {
        s["Action"] = json!([])
    });
    expect_problem(
        &gateway_with(&policy),
        "ssm:StartSession is granted without ssmmessages:OpenDataChannel",
    );
}

#[test]
fn a_star_resource_is_caught() {
    let policy = edited(
        GATEWAY_POLICY,
        "StartSessionsWithTheGatewaysDocuments",
        |s| {
            s["Resource"] = json!("*");
        },
    );
    let problems = gateway_with(&policy);
    expect_problem(&problems, "ssm:StartSession is granted on \"*\"");
    expect_problem(
        &problems,
        "ssm:StartSession lacks arn:aws:ssm:*::document/AWS-StartSSHSession",
    );
    let policy = edited(GATEWAY_POLICY, "ListManagedNodes", |s| {
        s["Resource"] = json!("arn:aws:ssm:*:*:managed-instance/*");
    });
    expect_problem(
        &gateway_with(&policy),
        "supports no resource-level permissions",
    );
    let policy = edited(GATEWAY_POLICY, "HybridNodeTags", |s| {
        s["Resource"] = json!("*")
    });
    expect_problem(
        &gateway_with(&policy),
        "ssm:ListTagsForResource is granted on \"*\"",
    );
}

#[test]
fn sessions_of_others_are_caught() {
    let policy = edited(GATEWAY_POLICY, "ResumeAndEndOwnSessionsOnly", |s| {
        s.as_object_mut().expect("object").remove("Condition");
    });
    expect_problem(
        &gateway_with(&policy),
        "must be limited to the caller's own sessions",
    );
    let policy = edited(SESSION_ROLE_POLICY, "ResumeAndEndOwnSessionsOnly", |s| {
        s["Condition"]["StringEquals"][OWN_SESSION_TAG] = json!("*");
    });
    expect_problem(
        &session_role_problems(&policy),
        "must be limited to the caller's own sessions",
    );
    let policy = edited(
        GATEWAY_POLICY,
        "StartSessionsWithTheGatewaysDocuments",
        |s| {
            s.as_object_mut().expect("object").remove("Condition");
        },
    );
    expect_problem(&gateway_with(&policy), "ssm:SessionDocumentAccessCheck");
}

#[test]
fn a_broken_optional_statement_or_session_role_is_caught() {
    let optional = edited(
        GATEWAY_SESSION_ROLE_STATEMENT,
        "AssumeTheSessionRoleForAUser",
        |s| {
            s["Action"] = json!(["sts:AssumeRole", "sts:TagSession"]);
        },
    );
    let problems = gateway_problems(
        &load(GATEWAY_POLICY),
        &[(GATEWAY_SESSION_ROLE_STATEMENT, &optional)],
    );
    expect_problem(
        &problems,
        "sts:AssumeRole is granted without sts:SetSourceIdentity",
    );
    let optional = edited(
        GATEWAY_SESSION_ROLE_STATEMENT,
        "AssumeTheSessionRoleForAUser",
        |s| {
            s["Resource"] = json!("*");
        },
    );
    let problems = gateway_problems(
        &load(GATEWAY_POLICY),
        &[(GATEWAY_SESSION_ROLE_STATEMENT, &optional)],
    );
    expect_problem(&problems, "sts:AssumeRole is granted on \"*\"");

    let policy = edited(
        SESSION_ROLE_POLICY,
        "StartSessionsWithTheGatewaysDocuments",
        |s| {
            s["Action"] = json!(["ssm:StartSession", "ssm:DescribeSessions"]);
        },
    );
    expect_problem(
        &session_role_problems(&policy),
        "ssm:DescribeSessions is granted",
    );
    let policy = edited(SESSION_ROLE_POLICY, "ResumeAndEndOwnSessionsOnly", |s| {
        s["Action"] = json!("ssm:TerminateSession");
    });
    expect_problem(
        &session_role_problems(&policy),
        "ssm:ResumeSession is not granted",
    );
}

#[test]
fn a_loose_trust_policy_is_caught() {
    let trust = edited(SESSION_ROLE_TRUST, "TheGatewayAssumesItForOneUser", |s| {
        s["Action"] = json!("sts:AssumeRole");
    });
    expect_problem(&trust_problems(&trust), "sts:TagSession is not allowed");
    let trust = edited(SESSION_ROLE_TRUST, "TheGatewayAssumesItForOneUser", |s| {
        s["Principal"] = json!({ "AWS": "*" });
    });
    expect_problem(
        &trust_problems(&trust),
        "Principal must be the gateway's role",
    );
    let trust = edited(SESSION_ROLE_TRUST, "TheGatewayAssumesItForOneUser", |s| {
        s["Condition"]["Null"]
            .as_object_mut()
            .expect("Null")
            .remove("sts:SourceIdentity");
    });
    expect_problem(&trust_problems(&trust), "must require sts:SourceIdentity");
    let trust = edited(SESSION_ROLE_TRUST, "TheGatewayAssumesItForOneUser", |s| {
        s["Condition"]["Null"]["aws:RequestTag/ssmgate-user"] = json!("true");
    });
    expect_problem(
        &trust_problems(&trust),
        "must require aws:RequestTag/ssmgate-user",
    );
    let trust = edited(SESSION_ROLE_TRUST, "TheGatewayAssumesItForOneUser", |s| {
        s.as_object_mut().expect("object").remove("Condition");
    });
    expect_problem(&trust_problems(&trust), "session tags must be limited");
}
