//! End to end with `[aws] session_role_arn`: each session's SSM calls are
//! made with the session role assumed for the user (STS AssumeRole on the
//! simulator), so Session Manager's history names the person
//! (`assumed-role/ROLE/USER`), the role session carries the user as
//! SourceIdentity and the run-as OS user as `SSMSessionRunAs`, credentials
//! are reused per (user, run-as), and a role that cannot be assumed
//! refuses the session clearly and is audited.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::gateway::{Fixture, Options, WEB_1, show};
use common::openssh::current_user;

const SECS: u64 = 30;
const ROLE: &str = "arn:aws:iam::123456789012:role/ssmgate-session";

async fn fixture(run_as: Option<&str>, policies: &str) -> Fixture {
    Fixture::start_opts(Options {
        aws: format!("session_role_arn = \"{ROLE}\"\n"),
        alice_run_as: run_as.map(str::to_owned),
        policies: policies.to_owned(),
        ..Options::default()
    })
    .await
}

/// The sim's sessions, active or ended, once there are `n` of them (the
/// last may still be ending when ssh returns).
async fn sessions(fx: &Fixture, n: usize) -> Vec<ssm_sim::registry::SessionEntry> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut all = fx.sim.registry.describe(true);
        all.extend(fx.sim.registry.describe(false));
        if all.len() >= n || std::time::Instant::now() > deadline {
            all.sort_by_key(|s| s.started);
            return all;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_run_under_the_session_role_assumed_for_the_user() {
    // The sim's agent runs a Run As session as that OS user: one that
    // exists here.
    let me = current_user().await;
    let fx = fixture(Some(&me), "").await;
    for _ in 0..2 {
        let out = fx.echo_on("web-1", SECS).await;
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    }
    let sessions = sessions(&fx, 2).await;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    for s in &sessions {
        assert_eq!(s.target, WEB_1);
        assert_eq!(
            s.owner, "arn:aws:sts::123456789012:assumed-role/ssmgate-session/alice",
            "Session Manager names the person"
        );
        assert!(s.session_id.starts_with("alice-"), "{}", s.session_id);
        assert_eq!(s.caller.source_identity(), Some("alice"));
        assert_eq!(s.caller.session_tag("ssmgate-user"), Some("alice"));
        assert_eq!(s.caller.session_tag("SSMSessionRunAs"), Some(me.as_str()));
        let gateway_session = s.caller.session_tag("ssmgate-session").unwrap();
        assert!(
            s.reason.as_deref().unwrap_or("").contains("session="),
            "{:?}",
            s.reason
        );
        assert_eq!(gateway_session.len(), 36, "a gateway session id");
    }
    assert_eq!(
        fx.sim.registry.api_calls("AssumeRole"),
        1,
        "credentials are reused for the same user and run-as"
    );
    // The recording names the OS user.
    let rows = fx.audit_rows().await;
    assert!(
        rows.iter().any(|(kind, _, detail)| kind == "decision_allow"
            && detail.contains(&format!("\"os_user\":\"{me}\""))),
        "{rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_run_as_overrides_the_users() {
    let me = current_user().await;
    let policy = format!(
        "@id(\"web-as-me\")\n@run_as(\"{me}\")\npermit (principal in Group::\"sre\", action == Action::\"exec\", resource);\n"
    );
    let fx = fixture(Some("someone-else"), &policy).await;
    let out = fx.echo_on("web-1", SECS).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let sessions = sessions(&fx, 1).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        sessions[0].caller.session_tag("SSMSessionRunAs"),
        Some(me.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_cannot_be_assumed_refuses_clearly_and_is_audited() {
    let fx = fixture(None, "").await;
    fx.sim.registry.api_faults().fail(
        "AssumeRole",
        "AccessDenied",
        "User: arn:aws:iam::123456789012:user/gw is not authorized to perform: sts:AssumeRole",
        Some(1),
    );
    let out = fx.echo_on("web-1", SECS).await;
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "the session's AWS identity (the session role, assumed for you) could not be set up"
        ),
        "{}",
        show(&out)
    );
    assert!(!err.contains("arn:aws"), "no role ARN shown: {err}");
    assert!(
        fx.sim.registry.describe(false).is_empty(),
        "no session started"
    );
    let rows = fx.audit_rows().await;
    assert!(
        rows.iter()
            .any(|(kind, user, detail)| kind == "decision_deny"
                && user == "alice"
                && detail.contains("the session role could not be assumed")),
        "{rows:?}"
    );
    // Not cached: the next try assumes the role again and works.
    let out = fx.echo_on("web-1", SECS).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let sessions = sessions(&fx, 1).await;
    assert_eq!(sessions[0].caller.session_tag("SSMSessionRunAs"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_as_session_runs_as_that_os_user() {
    const OS_USER: &str = "ssmgaterunas";
    if !common::ensure_os_user(OS_USER) {
        return;
    }
    let fx = fixture(Some(OS_USER), "").await;
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.arg("whoami");
    let out = common::gateway::output(cmd, SECS).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{OS_USER}\n"));
    // Without a run-as user, the session runs as the sim's own user.
    let fx = fixture(None, "").await;
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.arg("whoami");
    let out = common::gateway::output(cmd, SECS).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        current_user().await,
        "{}",
        show(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_as_annotation_cannot_bypass_a_forbid_on_the_os_user() {
    let policy = r#"
@id("no-root")
@message("nobody runs as root here")
forbid (principal, action, resource)
when { context has os_user && context.os_user == "root" };

@id("as-root")
@run_as("root")
permit (principal in Group::"sre", action == Action::"exec", resource);
"#;
    let fx = fixture(Some("someone"), policy).await;
    let out = fx.echo_on("web-1", SECS).await;
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a policy runs this as OS user root (@run_as), but the policies do not allow it as root: nobody runs as root here"),
        "{}",
        show(&out)
    );
    assert!(sessions(&fx, 0).await.is_empty(), "no session started");
    assert_eq!(fx.sim.registry.api_calls("AssumeRole"), 0);
}
