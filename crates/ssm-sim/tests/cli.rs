//! The `ssmgate-sim` binary: its flags, a located config error, and a clean
//! stop on SIGINT (the same command line as `ssmgate sim`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ssmgate-sim"))
}

#[test]
fn help_lists_the_flags() {
    let out = sim().arg("--help").output().expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--config",
        "--mode",
        "--drop-rate",
        "--close-after",
        "--refuse-resume",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}: {text}");
    }
}

#[test]
fn a_bad_config_file_is_reported_with_its_location() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("sim.toml");
    std::fs::write(&path, "[[instances]]\nid = \"web-1\"\n").expect("write");
    let out = sim()
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sim.toml:2:"), "{err}");
    assert!(err.contains("instances[0].id"), "{err}");
}

#[test]
fn starts_prints_its_endpoint_and_stops_on_sigint() {
    let mut child = sim()
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("line");
    assert!(line.contains("http://127.0.0.1:"), "{line}");
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    for _ in 0..50 {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "{status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("ssmgate-sim did not stop on SIGINT");
}
