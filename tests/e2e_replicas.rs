//! Replicas on one database, end to end: the real `ssmgate serve` binary
//! run as separate processes (so SIGTERM and SIGKILL are real) on a
//! throwaway Postgres cluster, one simulator, the real OpenSSH client, and
//! the `ssmgate sessions` / `users` command line run as processes.
//!
//! - two replicas list each other's live sessions, each with its replica;
//! - `sessions kill` ends a session on another replica within a second or
//!   two, tells its user why and records who and why;
//! - a replica killed with SIGKILL leaves its sessions `orphaned`, and
//!   another replica closes their records (sealed, `sessions verify`
//!   passes) while its own sessions go on;
//! - SIGTERM drains: notice, `drain_secs`, then the rest end as `shutdown`,
//!   no new connections meanwhile, exit status 0;
//! - `users lock` ends the user's sessions on every replica and refuses new
//!   ones until `users unlock`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod replicas;

use std::time::{Duration, Instant};

use replicas::{Held, ORPHAN_AFTER, ORPHAN_CLOSE_AFTER, Rig, show};
use serde_json::Value;

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Asserts a held session is still running and listed live.
async fn still_live(rig: &Rig, config: &std::path::Path, held: &mut Held) {
    assert!(
        !held.exited(),
        "session {} ended: {:?}",
        held.marker,
        held.stderr()
    );
    let s = rig.live_record(config, held).await;
    assert_eq!(s["state"], "live", "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_list_their_sessions_and_kill_reaches_the_owner() {
    let rig = Rig::start().await;
    let a = rig.replica("a", 3).await;
    let b = rig.replica("b", 3).await;
    let mut on_a = rig.hold(a.port, "on-a");
    let mut on_b = rig.hold(b.port, "on-b");
    on_a.running().await;
    on_b.running().await;

    // Listed live, each with its own replica (the JSON and the table).
    let sa = rig.live_record(&b.config, &on_a).await;
    let sb = rig.live_record(&a.config, &on_b).await;
    let (replica_a, replica_b) = (text(&sa["replica"]), text(&sb["replica"]));
    assert_ne!(replica_a, replica_b);
    for (s, name, id) in [(&sa, "a", replica_a), (&sb, "b", replica_b)] {
        assert_eq!(s["state"], "live", "{s}");
        assert_eq!(s["live"], true, "{s}");
        assert_eq!(
            text(&s["replica_address"]),
            format!("replica-{name} ({})", &id[..8]),
            "{s}"
        );
    }
    let (out, _) = rig.cli(&a.config, &["sessions", "list", "--live"]).await;
    assert!(out.status.success(), "{}", show(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.contains("REPLICA") && header.ends_with("STATE"),
        "{table}"
    );
    for (s, name) in [(&sa, "a"), (&sb, "b")] {
        let short = &text(&s["id"])[..8];
        let line = table
            .lines()
            .find(|l| l.starts_with(short))
            .unwrap_or_else(|| panic!("{short} not in\n{table}"));
        assert!(line.contains(&format!("replica-{name} (")), "{line}");
        assert!(line.ends_with("live"), "{line}");
    }

    // Killed from the command line (a process of its own), on B.
    let id_b = text(&sb["id"]).to_owned();
    let begun = Instant::now();
    let (out, took) = rig
        .cli(
            &a.config,
            &["sessions", "kill", &id_b, "--reason", "INC-42 test"],
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.starts_with(&format!(
            "session {id_b} ended by replica {replica_b} (replica-b) in "
        )),
        "{said}"
    );
    assert!(said.contains("terminated (killed by ops@"), "{said}");
    on_b.ended(10).await;
    let client_gone = begun.elapsed();
    eprintln!(
        "kill: the CLI took {:.2} s ({}), the client was gone after {:.2} s",
        took.as_secs_f64(),
        said.trim(),
        client_gone.as_secs_f64()
    );
    assert!(took < Duration::from_secs(2), "kill took {took:?}");
    let stderr = on_b.stderr();
    assert!(
        stderr.contains("ssmgate: an administrator ended this session: INC-42 test"),
        "{stderr:?}"
    );
    assert!(!on_b.stdout().contains("not-ended"), "{}", on_b.stdout());

    let record = rig.ended_record(&a.config, &id_b, 10).await;
    assert_eq!(record["end_reason"], "terminated", "{record}");
    let cause = text(&record["end_cause"]);
    assert!(
        cause.starts_with("killed by ops@") && cause.ends_with(": INC-42 test"),
        "{cause}"
    );
    let (out, _) = rig.cli(&a.config, &["sessions", "show", &id_b]).await;
    assert!(out.status.success(), "{}", show(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("end reason:"), "{shown}");
    assert!(shown.contains("end cause:"), "{shown}");
    assert!(shown.contains(cause), "{shown}");
    let kill_line = shown
        .lines()
        .find(|l| l.contains("\"session_kill\""))
        .unwrap_or_else(|| panic!("no session_kill event in\n{shown}"));
    assert!(kill_line.contains("INC-42 test"), "{kill_line}");
    assert!(kill_line.contains("\"outcome\":\"ended\""), "{kill_line}");

    // Killing it again: it has ended.
    let (out, _) = rig
        .cli(&a.config, &["sessions", "kill", &id_b, "--reason", "again"])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already ended"),
        "{}",
        show(&out)
    );

    // The session on A goes on.
    still_live(&rig, &a.config, &mut on_a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_outright_leaves_orphans_that_another_closes() {
    let rig = Rig::start().await;
    let mut a = rig.replica("a", 3).await;
    let b = rig.replica("b", 3).await;
    let mut on_a = rig.hold(a.port, "on-a");
    let mut on_b = rig.hold(b.port, "on-b");
    on_a.running().await;
    on_b.running().await;
    let sa = rig.live_record(&b.config, &on_a).await;
    let sb = rig.live_record(&b.config, &on_b).await;
    let id_a = text(&sa["id"]).to_owned();
    let replica_a = text(&sa["replica"]).to_owned();
    let replica_b = text(&sb["replica"]).to_owned();

    let killed = Instant::now();
    a.sigkill().await;
    on_a.ended(10).await;

    // Orphaned once A has been silent for orphan_after.
    let orphaned = loop {
        let live = rig.list(&b.config, true).await;
        let s = live.iter().find(|s| s["id"] == id_a.as_str());
        match s {
            Some(s) if s["state"] == "orphaned" => break killed.elapsed(),
            Some(_) => {}
            None => panic!("session {id_a} left the live list before it was seen orphaned"),
        }
        assert!(
            killed.elapsed() < Duration::from_secs(ORPHAN_AFTER + 8),
            "not orphaned in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Nothing runs it any more: a kill is refused, saying so (or, if B
    // has closed it meanwhile, that it has ended).
    let (out, _) = rig
        .cli(&b.config, &["sessions", "kill", &id_a, "--reason", "INC-9"])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "kill of the orphan: {}",
        said.trim().lines().last().unwrap_or_default()
    );
    assert!(
        said.contains(&format!(
            "session {id_a} is orphaned: its replica {replica_a} is gone"
        )) || said.contains("already ended"),
        "{}",
        show(&out)
    );
    let sb = rig.live_record(&b.config, &on_b).await;
    assert_eq!(sb["state"], "live", "{sb}");

    // Closed in the record by B, sealed.
    let record = rig
        .ended_record(&b.config, &id_a, ORPHAN_CLOSE_AFTER + 15)
        .await;
    let closed = killed.elapsed();
    eprintln!(
        "orphan: shown orphaned {:.2} s after SIGKILL, its record closed after {:.2} s",
        orphaned.as_secs_f64(),
        closed.as_secs_f64()
    );
    assert!(
        orphaned < Duration::from_secs(ORPHAN_AFTER + 3),
        "{orphaned:?}"
    );
    assert_eq!(record["end_reason"], "terminated", "{record}");
    let cause = text(&record["end_cause"]);
    assert!(cause.starts_with("orphaned:"), "{cause}");
    assert!(
        cause.contains(&format!("replica {replica_a} (replica-a)")),
        "{cause}"
    );
    assert!(
        cause.contains(&format!("closed by replica {replica_b}")),
        "{cause}"
    );
    let (out, _) = rig.cli(&b.config, &["sessions", "verify", &id_a]).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(&format!("OK {id_a}")),
        "{}",
        show(&out)
    );
    assert!(
        b.log()
            .contains("closing the record of a session whose replica is gone")
    );

    // B and its session are unaffected.
    still_live(&rig, &b.config, &mut on_b).await;
    let out = rig.echo(b.port).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\n",
        "{}",
        show(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_ends_the_rest_as_shutdown() {
    let rig = Rig::start().await;
    let admin = replicas::free_port();
    let mut r = rig
        .replica_with(
            "d",
            3,
            &format!("[admin]\nlisten = \"127.0.0.1:{admin}\"\n"),
        )
        .await;
    let mut held = rig.hold(r.port, "held");
    held.running().await;
    let id = text(&rig.live_record(&r.config, &held).await["id"]).to_owned();
    let (status, body) = replicas::http_get(admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");

    let signalled = Instant::now();
    r.terminate();
    let notice = held
        .stderr_has(
            "ssmgate: this gateway is shutting down; this session will be ended in 3 s.",
            5,
        )
        .await;
    // Not ready while it drains (still alive).
    let (status, body) = replicas::http_get(admin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("draining"), "{body}");
    assert_eq!(replicas::http_get(admin, "/healthz").await.0, 200);
    // No new connection while it drains.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = rig.echo(r.port).await;
    let refused_at = signalled.elapsed();
    assert!(refused_at < Duration::from_millis(2500), "{refused_at:?}");
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("ok"),
        "{}",
        show(&out)
    );
    assert!(!held.exited(), "ended before its drain time");

    held.ended(15).await;
    let drained = signalled.elapsed();
    let status = r.exit(30).await;
    let exited = signalled.elapsed();
    eprintln!(
        "drain: notice after {:.2} s, a new connection refused at {:.2} s ({}), the session ended after {:.2} s, the process exited after {:.2} s with {status}",
        notice.as_secs_f64(),
        refused_at.as_secs_f64(),
        String::from_utf8_lossy(&out.stderr).trim(),
        drained.as_secs_f64(),
        exited.as_secs_f64()
    );
    assert!(
        drained >= Duration::from_millis(2500) && drained < Duration::from_secs(10),
        "{drained:?}"
    );
    let stderr = held.stderr();
    assert!(
        stderr.contains("ssmgate: the gateway is shutting down; this session has ended"),
        "{stderr:?}"
    );
    assert!(!held.stdout().contains("not-ended"));
    assert!(status.success(), "{status}");

    let record = rig.ended_record(&r.config, &id, 10).await;
    assert_eq!(record["end_reason"], "terminated", "{record}");
    assert_eq!(record["end_cause"], "shutdown", "{record}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_lock_ends_and_refuses_sessions_on_every_replica_until_unlock() {
    let rig = Rig::start().await;
    let a = rig.replica("a", 3).await;
    let b = rig.replica("b", 3).await;
    let mut on_a = rig.hold(a.port, "on-a");
    let mut on_b = rig.hold(b.port, "on-b");
    on_a.running().await;
    on_b.running().await;
    let id_a = text(&rig.live_record(&a.config, &on_a).await["id"]).to_owned();
    let id_b = text(&rig.live_record(&a.config, &on_b).await["id"]).to_owned();

    let begun = Instant::now();
    let (out, _) = rig
        .cli(
            &a.config,
            &["users", "lock", "alice", "--reason", "INC-7 offboarding"],
        )
        .await;
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "alice is locked; 2 live session(s) of theirs are being ended by their replicas\n",
        "{}",
        show(&out)
    );
    for held in [&mut on_a, &mut on_b] {
        held.ended(10).await;
        let stderr = held.stderr();
        assert!(
            stderr
                .contains("ssmgate: your access was locked by an administrator: INC-7 offboarding"),
            "{stderr:?}"
        );
    }
    eprintln!(
        "lock: both sessions gone {:.2} s after `users lock` began",
        begun.elapsed().as_secs_f64()
    );
    for id in [&id_a, &id_b] {
        let record = rig.ended_record(&a.config, id, 10).await;
        assert_eq!(record["end_reason"], "terminated", "{record}");
        let cause = text(&record["end_cause"]);
        assert!(
            cause.starts_with("user locked by ops@") && cause.ends_with(": INC-7 offboarding"),
            "{cause}"
        );
    }
    let (out, _) = rig.cli(&a.config, &["users", "locked"]).await;
    let locked = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        locked.starts_with("alice  locked ") && locked.contains("INC-7 offboarding"),
        "{}",
        show(&out)
    );

    // Refused on either replica.
    for port in [a.port, b.port] {
        let out = rig.echo(port).await;
        assert_ne!(out.status.code(), Some(0), "{}", show(&out));
        assert!(!String::from_utf8_lossy(&out.stdout).contains("ok"));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(
                "access denied: your access is locked by an administrator: INC-7 offboarding"
            ),
            "{}",
            show(&out)
        );
    }

    // Unlocked: let in again at once (a new session reads the locks from
    // the database, not only at the replicas' next poll).
    let (out, _) = rig.cli(&a.config, &["users", "unlock", "alice"]).await;
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "alice is unlocked\n");
    for port in [a.port, b.port] {
        let out = rig.echo(port).await;
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "ok\n",
            "{}",
            show(&out)
        );
    }
    let (out, _) = rig.cli(&a.config, &["users", "locked"]).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no user is locked\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_cuts_the_drain_short() {
    let rig = Rig::start().await;
    let mut r = rig.replica("d", 60).await;
    let mut held = rig.hold(r.port, "held");
    held.running().await;
    let id = text(&rig.live_record(&r.config, &held).await["id"]).to_owned();

    let signalled = Instant::now();
    r.terminate();
    held.stderr_has("this session will be ended in 60 s.", 5)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!held.exited(), "ended before the second signal");
    r.terminate();
    held.ended(15).await;
    let ended = signalled.elapsed();
    let status = r.exit(30).await;
    eprintln!(
        "second SIGTERM after 1 s: the session ended {:.2} s after the first, the process exited with {status}",
        ended.as_secs_f64()
    );
    assert!(ended < Duration::from_secs(10), "{ended:?}");
    assert!(status.success(), "{status}");
    assert!(
        held.stderr()
            .contains("ssmgate: the gateway is shutting down; this session has ended"),
        "{:?}",
        held.stderr()
    );
    let record = rig.ended_record(&r.config, &id, 10).await;
    assert_eq!(record["end_reason"], "terminated", "{record}");
    assert_eq!(record["end_cause"], "shutdown", "{record}");

    // With nothing open, a drain does not wait.
    let mut idle = rig.replica("idle", 60).await;
    let signalled = Instant::now();
    idle.terminate();
    let status = idle.exit(30).await;
    eprintln!(
        "an idle replica exited {:.2} s after SIGTERM with {status}",
        signalled.elapsed().as_secs_f64()
    );
    assert!(status.success(), "{status}");
    assert!(signalled.elapsed() < Duration::from_secs(10));
}
