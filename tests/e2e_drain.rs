//! The gateway ending sessions itself, seen from the client. A graceful
//! drain from a connection that stays open: a second channel opened over an
//! OpenSSH ControlMaster connection while the gateway drains is refused with
//! one line (the listener is closed, but the connection is not), while the
//! session already open is told, then ended after the drain time and
//! recorded as `terminated` with cause `shutdown`. And a forward (`ssh -W`)
//! stopped through the live-session registry (what a kill does) ends its
//! connection and is recorded with the kill's cause.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::gateway::{Fixture, output, show};
use ssmgate::ops::live::StopCause;
use ssmgate::recording::{EndReason, SessionFilter, SessionKind};
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_refuses_new_channels_on_open_connections_and_ends_the_rest() {
    let mut fx = Fixture::start(false).await;
    let control = fx.path("cm-%C");
    let over_master = |fx: &Fixture, reason: &str, command: &str| {
        let mut cmd = fx.ssh("alice", "alice+web-1");
        cmd.args(["-o", "ControlMaster=auto", "-o", "ControlPersist=30"])
            .arg("-o")
            .arg(format!("ControlPath={}", control.display()))
            .arg("-o")
            .arg(format!("SetEnv=SSMGATE_REASON=\"{reason}\""))
            .arg(command);
        cmd
    };
    // The master, with a long command on it.
    let mut held = over_master(&fx, "INC-1 held", "echo started; sleep 30; echo done");
    held.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut held = held.spawn().unwrap();
    let mut held_out = held.stdout.take().unwrap();
    let mut first = [0u8; 8];
    tokio::time::timeout(Duration::from_secs(30), held_out.read_exact(&mut first))
        .await
        .expect("the held session starts")
        .unwrap();
    assert_eq!(&first, b"started\n");
    assert_eq!(fx.gw.live.len(), 1);
    let second = over_master(&fx, "INC-2 during the drain", "echo second");

    let began = Instant::now();
    let late = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        output(second, 30).await
    };
    let (ended, refused) = tokio::join!(
        fx.gw
            .drain(Duration::from_secs(3), std::future::pending::<()>()),
        late
    );
    let drained = began.elapsed();
    assert_eq!(ended, 1, "the held session was ended by the drain");
    assert!(
        drained >= Duration::from_millis(2900) && drained < Duration::from_secs(10),
        "{drained:?}"
    );
    assert_ne!(refused.status.code(), Some(0), "{}", show(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("this gateway is shutting down; reconnect to reach another one"),
        "{}",
        show(&refused)
    );
    assert!(!String::from_utf8_lossy(&refused.stdout).contains("second"));

    let status = tokio::time::timeout(Duration::from_secs(10), held.wait())
        .await
        .expect("the held session ends")
        .unwrap();
    assert!(!status.success());
    let mut rest = String::new();
    held_out.read_to_string(&mut rest).await.unwrap();
    assert!(!rest.contains("done"), "{rest:?}");
    let mut err = String::new();
    held.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    assert!(
        err.contains("ssmgate: this gateway is shutting down; this session will be ended in 3 s")
            && err.contains("ssmgate: the gateway is shutting down; this session has ended"),
        "{err:?}"
    );

    // Recorded: the held session ended by the shutdown; the refused one
    // never started.
    fx.gw.recorder.flush().await;
    let store =
        ssmgate::recording::connect(&format!("sqlite://{}", fx.path("ssmgate.db").display()))
            .await
            .unwrap();
    let sessions = store
        .list_sessions(&SessionFilter::default())
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let end = sessions[0].end.clone().expect("ended");
    assert_eq!(end.reason, EndReason::Terminated);
    assert_eq!(end.cause.as_deref(), Some("shutdown"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_forward_ends_its_connection_and_records_the_cause() {
    let fx = Fixture::start(false).await;
    let mut cmd = fx.ssh("alice", "alice");
    cmd.args(["-W", "db-1:80"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // Held open: nothing is sent, so the HTTP server waits.
    let _stdin = child.stdin.take().unwrap();
    let store =
        ssmgate::recording::connect(&format!("sqlite://{}", fx.path("ssmgate.db").display()))
            .await
            .unwrap();
    let live = SessionFilter {
        live_only: true,
        ..SessionFilter::default()
    };
    let mut id = None;
    for _ in 0..200 {
        let found = store.list_sessions(&live).await.unwrap();
        if let Some(s) = found.iter().find(|s| s.kind == SessionKind::Port) {
            id = Some(s.id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = id.expect("the forward's session is recorded as live");
    // The registry entry appears once the forward pipes.
    for _ in 0..100 {
        if fx.gw.live.contains(id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped = Instant::now();
    assert!(fx.gw.live.stop(
        id,
        StopCause::Killed {
            by: "ops@test".into(),
            reason: "INC-9 forward".into(),
        }
    ));
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("ssh -W ends when its forward is stopped")
        .unwrap();
    eprintln!(
        "forward gone {:?} after the stop ({status})",
        stopped.elapsed()
    );
    fx.gw.recorder.flush().await;
    let s = store.get_session(id).await.unwrap().unwrap();
    let end = s.end.expect("recorded as ended");
    assert_eq!(end.reason, EndReason::Terminated);
    assert_eq!(
        end.cause.as_deref(),
        Some("killed by ops@test: INC-9 forward")
    );
    assert!(!fx.gw.live.contains(id));
}
