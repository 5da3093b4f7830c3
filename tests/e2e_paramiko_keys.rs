//! Stock paramiko tries a second key on the same connection after the
//! first is refused. paramiko requests the `ssh-userauth` service again
//! before every method and waits for SERVICE_ACCEPT; russh 0.65.0 ignored
//! that repeated request, so paramiko hung until its auth timeout. The
//! patched russh (`patches/russh`, docs/russh-service-request.md) answers
//! it as OpenSSH does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::gateway::*;
use tokio::process::Command;

/// The client: a refused key, then alice's key on the same transport, then
/// a command with the reason in its environment. Prints `check=value`.
const SCRIPT: &str = r#"
import sys
import paramiko

port, good, bad, login, reason = sys.argv[1:6]


def say(key, value):
    print(f"{key}={value}", flush=True)


t = paramiko.Transport(("127.0.0.1", int(port)))
t.start_client(timeout=10)
# Well inside the test's deadline: a hang shows as paramiko's own
# "Authentication timeout." rather than as a killed process.
t.auth_timeout = 10
try:
    t.auth_publickey(login, paramiko.Ed25519Key.from_private_key_file(bad))
    say("bad", "accepted")
except paramiko.AuthenticationException as e:
    say("bad", f"{type(e).__name__}: {e}")
try:
    t.auth_publickey(login, paramiko.Ed25519Key.from_private_key_file(good))
    say("good", "authenticated" if t.is_authenticated() else "not authenticated")
except paramiko.AuthenticationException as e:
    say("good", f"{type(e).__name__}: {e}")
    sys.exit(0)
ch = t.open_session(timeout=10)
ch.update_environment({"SSMGATE_REASON": reason})
ch.exec_command("echo second-key-$((6*7)); exit 7")
ch.shutdown_write()
out = b""
while True:
    b = ch.recv(65536)
    if not b:
        break
    out += b
say("exec.out", out.decode().strip())
say("exec.exit", ch.recv_exit_status())
t.close()
"#;

#[tokio::test]
async fn paramiko_tries_a_second_key_after_a_refused_one() {
    let has_paramiko = Command::new("python3")
        .args(["-c", "import paramiko"])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if !has_paramiko {
        eprintln!("python3 paramiko is not installed: skipping");
        return;
    }
    let fx = Fixture::start(false).await;
    let script = fx.path("paramiko_keys.py");
    std::fs::write(&script, SCRIPT).expect("write the script");

    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(fx.gw.addr.port().to_string())
        .arg(fx.path("alice"))
        // A key the fixture authorizes for nobody.
        .arg(fx.path("stranger"))
        .arg("alice+web-1")
        .arg(REASON)
        .kill_on_drop(true);
    // A regression hangs in authentication: fail in 20 s, not later.
    let out = output(cmd, 20).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", show(&out));
    let seen: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| seen.get(k).copied();

    // The first key is refused (not a timeout)…
    assert_eq!(
        get("bad"),
        Some("AuthenticationException: Authentication failed."),
        "{}",
        show(&out)
    );
    // …the second, on the same transport, gets in…
    assert_eq!(get("good"), Some("authenticated"), "{}", show(&out));
    // …and a command runs through the gateway.
    assert_eq!(get("exec.out"), Some("second-key-42"), "{}", show(&out));
    assert_eq!(get("exec.exit"), Some("7"), "{}", show(&out));
}
