//! The `ssmgate` binary itself: help text and clear errors for bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
#[cfg(feature = "demo")]
use std::{
    io::{BufRead, BufReader},
    process::Stdio,
    time::Duration,
};

fn ssmgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ssmgate"))
}

#[cfg(not(feature = "demo"))]
#[test]
fn without_the_demo_feature_there_is_no_simulator() {
    let out = ssmgate().arg("--help").output().expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["demo", "sim", "bench"] {
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with(word)),
            "--help lists {word}: {text}"
        );
    }
    let out = ssmgate().args(["sim", "--help"]).output().expect("runs");
    assert!(!out.status.success());
}

#[cfg(feature = "demo")]
#[test]
fn help_lists_the_subcommands() {
    let out = ssmgate().arg("--help").output().expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["sim", "bench"] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
    let out = ssmgate().args(["sim", "--help"]).output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--config",
        "--mode",
        "--drop-rate",
        "--close-after",
        "--refuse-resume",
    ] {
        assert!(text.contains(flag), "sim --help lacks {flag}");
    }
}

#[cfg(feature = "demo")]
#[test]
fn a_bad_config_file_is_reported_with_its_location() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("sim.toml");
    std::fs::write(&path, "[[instances]]\nid = \"web-1\"\n").expect("write");
    let out = ssmgate()
        .args(["sim", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sim.toml:2:"), "{err}");
    assert!(err.contains("instances[0].id"), "{err}");
}

#[cfg(feature = "demo")]
#[test]
fn a_rate_out_of_range_is_refused() {
    let out = ssmgate()
        .args(["sim", "--listen", "127.0.0.1:0", "--drop-rate", "1.5"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("drop_rate"));
}

#[cfg(feature = "demo")]
#[test]
fn sim_starts_prints_its_endpoint_and_stops_on_sigint() {
    let mut child = ssmgate()
        .args(["sim", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).expect("line");
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
    panic!("sim did not stop on SIGINT");
}

#[test]
fn migrate_creates_the_sqlite_database_and_is_idempotent() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("ssmgate.toml");
    std::fs::write(
        &config,
        "[database]\nurl = \"sqlite://sessions.db\"\n\n[[users]]\nname = \"alice\"\n",
    )
    .expect("write");
    for _ in 0..2 {
        let out = ssmgate()
            .arg("migrate")
            .arg("--config")
            .arg(&config)
            .output()
            .expect("runs");
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    }
    assert!(
        dir.path().join("sessions.db").exists(),
        "relative to the config file"
    );

    std::fs::write(
        &config,
        "[database]\nurl = \"mysql://u:pw@h/db\"\n\n[[users]]\nname = \"alice\"\n",
    )
    .expect("write");
    let out = ssmgate()
        .arg("migrate")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("database.url") && !err.contains("pw@"),
        "{err}"
    );
}

#[test]
fn the_database_url_can_come_from_the_environment() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("ssmgate.toml");
    std::fs::write(
        &config,
        "[database]\nurl = \"sqlite://from-file.db\"\n\n[[users]]\nname = \"alice\"\n",
    )
    .expect("write");
    let out = ssmgate()
        .arg("migrate")
        .arg("--config")
        .arg(&config)
        .env("SSMGATE_DATABASE_URL", "sqlite://from-env.db")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    assert!(dir.path().join("from-env.db").exists());
    assert!(!dir.path().join("from-file.db").exists());
}

#[test]
fn the_deploy_example_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/ssmgate.toml");
    let config = ssmgate::config::Config::load(std::path::Path::new(path)).expect("valid");
    assert!(config.recording.fail_closed);
    assert_eq!(
        config.recording.spool_dir,
        std::path::Path::new("/var/lib/ssmgate/spool")
    );
}
