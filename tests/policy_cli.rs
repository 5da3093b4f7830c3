//! `ssmgate policy validate|test|explain` as a user runs them: the real
//! binary against the shipped `policies/`, broken copies of it, and (for
//! `explain`) a simulator in this process standing in for SSM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use russh::keys::PrivateKey;
use russh::keys::ssh_key::private::Ed25519Keypair;

fn ssmgate() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_ssmgate"))
}

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of the shipped policies in a temporary directory.
fn copy_of_shipped() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(shipped()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

#[test]
fn validate_accepts_the_shipped_policies() {
    let out = ssmgate()
        .args(["policy", "validate", "--policies"])
        .arg(shipped())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("OK, 9 policies in 7 files"), "{stdout}");
}

#[test]
fn validate_names_file_line_and_policy_of_each_problem() {
    let dir = copy_of_shipped();
    let sre = dir.path().join("sre.cedar");
    let mut broken = std::fs::read_to_string(&sre).unwrap();
    broken.push_str("\n@id(\"typo\")\npermit (principal, action, resource)\nwhen { resource.owner == \"me\" };\n");
    let lines = broken.lines().count();
    std::fs::write(&sre, broken).unwrap();
    let out = ssmgate()
        .args(["policy", "validate", "--policies"])
        .arg(dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let want = format!("sre.cedar:{lines}:8: policy typo: ");
    assert!(stderr.contains(&want), "want {want} in {stderr}");
    assert!(stderr.contains("owner"), "{stderr}");

    // A syntax error elsewhere: located too.
    std::fs::write(
        dir.path().join("zz.cedar"),
        "permit (principal, action, resource)\nwhen { context.reason like };\n",
    )
    .unwrap();
    let out = ssmgate()
        .args(["policy", "validate", "--policies"])
        .arg(dir.path())
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("zz.cedar:2:28: "), "{stderr}");
}

#[test]
fn the_shipped_test_file_passes() {
    let out = ssmgate()
        .args(["policy", "test"])
        .arg(shipped().join("tests.toml"))
        .arg("--policies")
        .arg(shipped())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(!stdout.contains("decided no case"), "{stdout}");
}

#[test]
fn a_mismatching_case_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.toml");
    std::fs::write(
        &file,
        r#"
[users.bob]
groups = ["developers"]

[targets.prod]
id = "i-0a1b2c3d4e5f60011"
tags = { env = "prod" }

[targets.dev]
id = "i-0a1b2c3d4e5f60001"
tags = { env = "dev" }

[[cases]]
name = "developer on dev"
user = "bob"
action = "shell"
target = "dev"
at = "2026-11-03T10:00:00Z"
expect = "allow"

[[cases]]
name = "wrongly expects a developer on prod"
user = "bob"
action = "shell"
target = "prod"
reason = "INC-1 x"
at = "2026-11-03T10:00:00Z"
expect = "allow"
"#,
    )
    .unwrap();
    let out = ssmgate()
        .args(["policy", "test"])
        .arg(&file)
        .arg("--policies")
        .arg(shipped())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("2 cases: 1 passed, 1 failed"), "{stdout}");
    assert!(stdout.contains("expected allow, got deny"), "{stdout}");
    assert!(stderr.contains("cases.toml"), "{stderr}");

    // A case naming an unknown user is an error in the file, reported.
    std::fs::write(&file, "[[cases]]\nname = \"x\"\nuser = \"nobody\"\naction = \"shell\"\ntarget = \"t\"\nexpect = \"deny\"\n").unwrap();
    let out = ssmgate()
        .args(["policy", "test"])
        .arg(&file)
        .arg("--policies")
        .arg(shipped())
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("cases[0]: user \"nobody\""), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_resolves_the_target_through_ssm_and_explains() {
    let sim = common::sim(
        r#"
mode = "fast"

[[instances]]
id = "i-0e00000000000b001"
name = "web-prod-1"
tags = { env = "prod", role = "web" }

[[instances]]
id = "i-0e00000000000b002"
name = "web-dev-1"
tags = { env = "dev", role = "web" }
"#,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&[3; 32]))
        .public_key()
        .to_openssh()
        .unwrap();
    let config = dir.path().join("ssmgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[aws]
region = "us-east-1"
endpoint = "{endpoint}"
credentials = "none"

[policy]
dir = "{policies}"

[[users]]
name = "alice"
groups = ["sre"]
attributes = {{ team = "platform" }}
authorized_keys = ["{key}"]
run_as = "deploy"
"#,
            endpoint = sim.endpoint(),
            policies = shipped().display(),
        ),
    )
    .unwrap();
    let explain = |extra: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ssmgate"));
        cmd.args(["policy", "explain", "--config"])
            .arg(&config)
            .args(["--user", "alice", "--at", "2026-11-03T10:00:00Z"])
            .args(extra)
            .env("SSMGATE_LOG", "warn");
        cmd.output()
    };

    // By name, no reason: denied only for lack of one.
    let out = explain(&["--target", "web-prod-1", "--action", "shell"])
        .await
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    for want in [
        "i-0e00000000000b001 (web-prod-1)",
        "env=prod, role=web",
        "groups      sre",
        "Decision: DENY",
        "Denied only for lack of a reason",
        "prod-needs-ticket  (forbid, ",
        "prod.cedar:",
        "@message: production targets need a reason",
        "Errors: none",
    ] {
        assert!(stdout.contains(want), "want {want:?} in:\n{stdout}");
    }

    // By id, with a ticket: allowed by sre-shell.
    let out = explain(&[
        "--target",
        "i-0e00000000000b001",
        "--reason",
        "INC-77 checkout errors",
    ])
    .await
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("Decision: ALLOW"), "{stdout}");
    assert!(stdout.contains("sre-shell  (permit, "), "{stdout}");
    assert!(
        stdout.contains("account     default (region us-east-1)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Runs as OS user deploy (the user's run_as)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("reason      \"INC-77 checkout errors\""),
        "{stdout}"
    );

    // Nothing permits an SRE to port-forward: deny by default.
    let out = explain(&[
        "--target",
        "web-dev-1",
        "--action",
        "port_forward",
        "--port",
        "8080",
    ])
    .await
    .unwrap();
    let (stdout, _) = text(&out);
    assert!(stdout.contains("Decision: DENY"), "{stdout}");
    assert!(stdout.contains("deny by default"), "{stdout}");
    assert!(
        stdout.contains(
            "no policy permits alice to forward to port 8080 of i-0e00000000000b002 (web-dev-1)"
        ),
        "{stdout}"
    );

    // Something that is not a managed instance is refused as such.
    let out = explain(&["--target", "169.254.169.254"]).await.unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("is not an SSM managed instance"),
        "{stderr}"
    );

    sim.shutdown().await.unwrap();
}
