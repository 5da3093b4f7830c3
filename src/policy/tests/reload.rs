//! Reloading: explicit reloads, and the watcher picking up edits within
//! its polling interval while rejecting broken ones.

use std::time::{Duration, Instant};

use super::*;

const ALLOW_SHELL: &str =
    "@id(\"open\")\npermit (principal, action == Action::\"shell\", resource);\n";
const ALLOW_EXEC: &str =
    "@id(\"open\")\npermit (principal, action == Action::\"exec\", resource);\n";

fn dir_with(policy: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        shipped().join("schema.cedarschema"),
        dir.path().join("schema.cedarschema"),
    )
    .unwrap();
    std::fs::write(dir.path().join("p.cedar"), policy).unwrap();
    dir
}

fn shell_allowed(e: &PolicyEngine) -> bool {
    let u = user("u", &[], &[]);
    let t = target("i-00000000000000001", "t", &[]);
    decide(e, &u, Action::Shell, &t, ctx(Action::Shell, None, WORKDAY)).allowed
}

/// Waits up to `limit` for `cond`.
async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

#[test]
fn a_failed_reload_keeps_the_previous_set() {
    let dir = dir_with(ALLOW_SHELL);
    let e = PolicyEngine::load(dir.path()).unwrap();
    assert!(shell_allowed(&e));
    assert_eq!(e.generation(), 1);

    let same = e.reload().unwrap();
    assert!(!same.changed);
    assert_eq!((same.policies, same.files), (1, 1));

    std::fs::write(
        dir.path().join("p.cedar"),
        "permit (principal, action, resource) when { nope };",
    )
    .unwrap();
    let err = e.reload().unwrap_err();
    assert!(err.to_string().contains("p.cedar:1:"), "{err}");
    assert!(shell_allowed(&e), "the previous set stays in force");
    assert_eq!(e.generation(), 2);
    assert!(e.last_error().unwrap().contains("p.cedar"));

    std::fs::write(dir.path().join("p.cedar"), ALLOW_EXEC).unwrap();
    let changed = e.reload().unwrap();
    assert!(changed.changed);
    assert!(!shell_allowed(&e));
    assert_eq!(e.generation(), 3);
    assert!(e.last_error().is_none());
}

#[tokio::test]
async fn the_watcher_picks_up_edits_and_rejects_broken_ones() {
    let dir = dir_with(ALLOW_SHELL);
    let engine = Arc::new(PolicyEngine::load(dir.path()).unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let every = Duration::from_millis(100);
    let watcher = engine.spawn_watcher_every(every, async {
        let _ = stopped.await;
    });
    let within = every * 10;

    // A valid edit is picked up.
    std::fs::write(dir.path().join("p.cedar"), ALLOW_EXEC).unwrap();
    assert!(eventually(within, || !shell_allowed(&engine)).await);
    assert_eq!(engine.generation(), 2);

    // A broken edit is rejected; the previous set stays in force.
    std::fs::write(
        dir.path().join("p.cedar"),
        "permit (principal, action, resource) when { resource.nope };",
    )
    .unwrap();
    assert!(eventually(within, || engine.last_error().is_some()).await);
    let err = engine.last_error().unwrap();
    assert!(err.contains("p.cedar:1:") && err.contains("nope"), "{err}");
    assert_eq!(engine.generation(), 2);
    assert!(!shell_allowed(&engine));

    // A new file is noticed too, and fixes things.
    std::fs::remove_file(dir.path().join("p.cedar")).unwrap();
    std::fs::write(dir.path().join("q.cedar"), ALLOW_SHELL).unwrap();
    assert!(eventually(within, || shell_allowed(&engine)).await);
    assert!(engine.last_error().is_none());
    assert_eq!(engine.snapshot().files, [dir.path().join("q.cedar")]);

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(2), watcher)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn sighup_reloads() {
    let dir = dir_with(ALLOW_SHELL);
    let engine = Arc::new(PolicyEngine::load(dir.path()).unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // Polling far too slow to matter: only the signal can trigger a reload.
    let watcher = engine.spawn_watcher_every(Duration::from_secs(3600), async {
        let _ = stopped.await;
    });
    // Let the watcher install its handler and take its first tick.
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(dir.path().join("p.cedar"), ALLOW_EXEC).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(eventually(Duration::from_secs(3), || !shell_allowed(&engine)).await);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(2), watcher)
        .await
        .unwrap()
        .unwrap();
}
