//! `ssmgate demo` as a newcomer uses it: start it, then run the commands its
//! instructions print, through the `ssh_config` it writes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use ssmgate::demo::{DemoOptions, instructions, start};

async fn run(cmd: &mut tokio::process::Command) -> std::process::Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("in time")
        .expect("runs")
}

#[tokio::test]
async fn the_printed_commands_work() {
    let tmp = tempfile::tempdir().expect("tmp");
    let demo = start(DemoOptions {
        dir: Some(tmp.path().join("demo")),
        port: 0,
    })
    .await
    .expect("demo starts");
    let text = instructions(&demo);
    assert!(
        text.contains("demo+web-1") && text.contains("-L 8080:db-1:80"),
        "{text}"
    );
    let config = demo.dir.join("ssh_config");
    for file in [
        "ssmgate.toml",
        "demo_user_key",
        "known_hosts",
        "ssh_config",
        "policies/demo.cedar",
    ] {
        assert!(demo.dir.join(file).exists(), "{file} written");
    }
    let mode = std::fs::metadata(demo.dir.join("demo_user_key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the private key is private");
    // The config the demo wrote is one `ssmgate serve` accepts as is.
    ssmgate::config::Config::load(&demo.dir.join("ssmgate.toml")).expect("a valid ssmgate.toml");

    let out = run(tokio::process::Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args([
            "-o",
            "SetEnv=SSMGATE_REASON=demo-test",
            "-l",
            "demo+web-1",
            "ssmgate-demo",
            "echo hi; exit 3",
        ]))
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n", "{out:?}");
    assert_eq!(out.status.code(), Some(3));

    let out = run(tokio::process::Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args([
            "-o",
            "SetEnv=SSMGATE_REASON=looking",
            "-l",
            "demo+db-1",
            "ssmgate-demo",
            "uptime",
        ]))
    .await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("db-1 is production"),
        "{out:?}"
    );

    if demo.sshd.is_some() {
        // As the instructions say: a reason grant, then -J (BatchMode).
        assert!(
            text.contains("ssmgate-demo reason 'demo run' --for 30m"),
            "{text}"
        );
        let out = run(tokio::process::Command::new("ssh")
            .arg("-F")
            .arg(&config)
            .args([
                "-o",
                "BatchMode=yes",
                "ssmgate-demo",
                "reason",
                "'demo test'",
                "--for",
                "30m",
            ]))
        .await;
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Reason granted until"),
            "{out:?}"
        );
        let out = run(tokio::process::Command::new("ssh")
            .arg("-F")
            .arg(&config)
            .args(["-o", "BatchMode=yes", "web-1", "echo via-jump"]))
        .await;
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "via-jump\n",
            "{out:?}"
        );
    }
    // Everything above was recorded, and the printed `sessions` commands
    // show it.
    assert!(
        text.contains("sessions --config") && text.contains(" replay ID"),
        "{text}"
    );
    let config_path = demo.dir.join("ssmgate.toml");
    let mut listed = String::new();
    for _ in 0..50 {
        let out = run(tokio::process::Command::new(env!("CARGO_BIN_EXE_ssmgate"))
            .arg("sessions")
            .arg("--config")
            .arg(&config_path)
            .args(["list", "--json"]))
        .await;
        assert!(out.status.success(), "{out:?}");
        listed = String::from_utf8_lossy(&out.stdout).into_owned();
        if listed.contains("\"exit_status\":3") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first: serde_json::Value = serde_json::from_str(
        listed
            .lines()
            .find(|l| l.contains("\"exit_status\":3"))
            .unwrap_or_else(|| panic!("the exec session is recorded: {listed}")),
    )
    .expect("JSON");
    assert_eq!(first["user"], "demo");
    let id = first["id"].as_str().expect("id").to_owned();
    let out = run(tokio::process::Command::new(env!("CARGO_BIN_EXE_ssmgate"))
        .arg("sessions")
        .arg("--config")
        .arg(&config_path)
        .args(["replay", &id, "--speed", "100"]))
    .await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hi"),
        "{out:?}"
    );
    demo.stop().await;
}
