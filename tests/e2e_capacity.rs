//! A gateway whose open-files limit allows only two sessions: the third is
//! refused with the one-line "this gateway is full" message (not a failure
//! midway), the two open ones keep working, and a slot freed by an ended
//! session is usable again.
//!
//! The limit is the process's own (the gateway runs in this test process),
//! so this file holds exactly one test: lowering the hard limit cannot be
//! undone and must not reach other tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::gateway::*;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// `max_startups`' full count, reserved from the budget besides the fixed
/// 256 (see `fd_limit`).
const FULL: u64 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_gateway_refuses_new_sessions_with_one_line() {
    // 256 reserved + FULL for unauthenticated connections + 2 sessions of
    // 2 descriptors each.
    let limit = 256 + FULL + 4;
    let now = getrlimit(Resource::Nofile);
    if now.maximum.is_some_and(|m| m < limit) {
        panic!("the hard open-files limit is below {limit}: {now:?}");
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(limit),
            maximum: Some(limit),
        },
    )
    .expect("lower the open-files limit");

    let fx = Fixture::start_opts(Options {
        server: format!("max_startups = \"4:30:{FULL}\""),
        ..Options::default()
    })
    .await;

    // Two long commands hold both slots.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut cmd = fx.ssh("alice", "alice+web-1");
        cmd.args(["sleep 6; echo held"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        holders.push(cmd.spawn().expect("ssh"));
        // One at a time, so both are surely open before the third.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }

    let refused = fx.echo_on("web-1", 30).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_ne!(refused.status.code(), Some(0), "{}", show(&refused));
    assert!(
        stderr.contains(
            "ssmgate: this gateway is full (2 open sessions, as many as its open-files limit allows); try again in a moment"
        ),
        "{}",
        show(&refused)
    );
    assert!(!String::from_utf8_lossy(&refused.stdout).contains("ok"));
    // Audited as a refusal by a limit (and logged at WARN beside it).
    let full: Vec<_> = fx
        .audit_rows()
        .await
        .into_iter()
        .filter(|(kind, _, detail)| kind == "decision_deny" && detail.contains("gateway is full"))
        .collect();
    assert_eq!(full.len(), 1, "{full:?}");
    assert!(full[0].2.contains("\"limit\":true"), "{full:?}");

    // The sessions that were open finish normally.
    for holder in holders {
        let out = tokio::time::timeout(Duration::from_secs(30), holder.wait_with_output())
            .await
            .expect("the held session ends")
            .expect("ssh");
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "held\n");
    }

    // Their slots are free again.
    let out = fx.echo_on("web-1", 30).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
}
