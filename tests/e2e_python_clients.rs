//! paramiko and asyncssh, gateway style through the sshd backend: the
//! script in `tests/python_clients/clients.py` runs commands with stdin,
//! checks exit codes and signals, and moves a file over sftp both ways
//! (sha256 compared), then prints what it saw for the asserts here.
//! asyncssh answers the reason prompt at login (it asks for
//! keyboard-interactive before its key); paramiko logs in by key and
//! passes `SSMGATE_REASON` with each channel, and a channel without it is
//! refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::gateway::*;
use tokio::process::Command;

/// Whether `python3` can import `module`.
async fn has_module(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .await
        .is_ok_and(|o| o.status.success())
}

/// Runs the script for `which`; its `check=value` lines.
async fn run(fx: &Fixture, which: &str) -> BTreeMap<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python_clients/clients.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(fx.gw.addr.port().to_string())
        .arg(fx.path("alice"))
        .arg("alice+web-1")
        .arg(which)
        .kill_on_drop(true);
    let out = output(cmd, 120).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{which}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn asyncssh_answers_the_prompt_and_everything_works() {
    if !has_module("asyncssh").await {
        eprintln!("python3 asyncssh is not installed: skipping");
        return;
    }
    let Some(fx) = sshd_backend_fixture(false).await else {
        return;
    };
    let seen = run(&fx, "asyncssh").await;
    let get = |k: &str| seen.get(k).map(String::as_str);
    assert_eq!(get("asyncssh.cat.exit"), Some("0"), "{seen:?}");
    assert_eq!(get("asyncssh.cat.same"), Some("True"), "{seen:?}");
    assert_eq!(get("asyncssh.exit6"), Some("6"), "{seen:?}");
    assert_eq!(get("asyncssh.signal"), Some("TERM"), "{seen:?}");
    assert_eq!(get("asyncssh.sftp.same"), Some("True"), "{seen:?}");
    assert_eq!(get("done"), Some("True"), "{seen:?}");
}

#[tokio::test]
async fn paramiko_passes_the_reason_in_the_environment() {
    if !has_module("paramiko").await {
        eprintln!("python3 paramiko is not installed: skipping");
        return;
    }
    let Some(fx) = sshd_backend_fixture(false).await else {
        return;
    };
    let seen = run(&fx, "paramiko").await;
    let get = |k: &str| seen.get(k).map(String::as_str);
    // The key alone authenticates paramiko…
    assert_eq!(get("paramiko.authenticated"), Some("True"), "{seen:?}");
    // …but no channel opens without a reason.
    assert_ne!(get("paramiko.noreason.exit"), Some("0"), "{seen:?}");
    assert_eq!(
        get("paramiko.noreason.mentions_env"),
        Some("True"),
        "{seen:?}"
    );
    assert_eq!(get("paramiko.cat.exit"), Some("0"), "{seen:?}");
    assert_eq!(get("paramiko.cat.same"), Some("True"), "{seen:?}");
    assert_eq!(get("paramiko.exit3"), Some("3"), "{seen:?}");
    assert_eq!(get("paramiko.sftp.same"), Some("True"), "{seen:?}");
    // A forward carries no environment, so none opens without the login's
    // reason (paramiko shows its own text for the code, not ours: the
    // advice is checked in ssh::forward's tests).
    assert_eq!(
        get("paramiko.forward.refusal"),
        Some("'Administratively prohibited'"),
        "{seen:?}"
    );
    assert_eq!(get("done"), Some("True"), "{seen:?}");
}
