//! Clients other than OpenSSH, gateway style through the sshd backend:
//! PuTTY's `plink` and `pscp` (command with stdin, exit status, an sftp
//! upload and download compared by sha256) and `sshfs` (a mount of the
//! target's directory: write, read back, rename, remove, each recorded as
//! a file operation). Each test says it skipped when its client (or FUSE)
//! is missing. The fixture does not require a reason (plink and pscp in
//! batch mode with a required reason: `tests/e2e_scripted.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Stdio;

use common::gateway::*;
use common::sha;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// alice's key converted to PuTTY's format.
async fn ppk(fx: &Fixture) -> std::path::PathBuf {
    let ppk = fx.path("alice.ppk");
    let out = Command::new("puttygen")
        .arg(fx.path("alice"))
        .args(["-O", "private", "-o"])
        .arg(&ppk)
        .output()
        .await
        .expect("puttygen");
    assert!(out.status.success(), "{out:?}");
    ppk
}

/// A PuTTY tool in batch mode against the gateway, pinned to its host key.
fn putty(fx: &Fixture, program: &str, key: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg("-batch")
        .arg("-i")
        .arg(key)
        .args(["-P", &fx.gw.addr.port().to_string()])
        .args(["-hostkey", &fx.gw.host_key_fingerprint])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn plink_and_pscp_work_gateway_style() {
    if !common::installed("plink") || !common::installed("pscp") || !common::installed("puttygen") {
        eprintln!("PuTTY's tools are not installed (putty-tools): skipping");
        return;
    }
    let Some(fx) = sshd_backend_fixture(true).await else {
        return;
    };
    let key = ppk(&fx).await;

    // stdin through `cat`, and the exit status.
    let data = common::data(600_000, 5);
    let mut cmd = putty(&fx, "plink", &key);
    cmd.args(["-T", "alice+web-1@127.0.0.1", "cat; exit 4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("plink");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = data.clone();
    let writer = tokio::spawn(async move {
        stdin.write_all(&input).await.expect("write");
    });
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("in time")
        .expect("plink runs");
    writer.await.expect("writer");
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(sha(&out.stdout), sha(&data));

    // pscp (SFTP) up and down.
    let src = fx.path("pscp-src.bin");
    std::fs::write(&src, &data).expect("write");
    let remote = fx.path("pscp-remote.bin");
    let mut cmd = putty(&fx, "pscp", &key);
    cmd.arg("-q")
        .arg(&src)
        .arg(format!("alice+web-1@127.0.0.1:{}", remote.display()));
    let out = output(cmd, 60).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(sha(&std::fs::read(&remote).expect("uploaded")), sha(&data));
    let back = fx.path("pscp-back.bin");
    let mut cmd = putty(&fx, "pscp", &key);
    cmd.arg("-q")
        .arg(format!("alice+web-1@127.0.0.1:{}", remote.display()))
        .arg(&back);
    let out = output(cmd, 60).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(sha(&std::fs::read(&back).expect("downloaded")), sha(&data));
}

#[tokio::test]
async fn sshfs_mounts_the_target_and_every_file_operation_is_recorded() {
    if !common::installed("sshfs")
        || !common::installed("fusermount")
        || !Path::new("/dev/fuse").exists()
    {
        eprintln!("sshfs or FUSE is not available: skipping");
        return;
    }
    let Some(fx) = sshd_backend_fixture(true).await else {
        return;
    };
    let remote = fx.path("remote");
    std::fs::create_dir(&remote).expect("mkdir");
    let mnt = fx.path("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let ssh = format!(
        "ssh {} -p {}",
        fx.common_opts("alice").join(" "),
        fx.gw.addr.port()
    );
    let mut cmd = Command::new("sshfs");
    cmd.args(["-o", &format!("ssh_command={ssh}")])
        .arg(format!("alice+web-1@127.0.0.1:{}", remote.display()))
        .arg(&mnt)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = output(cmd, 30).await;
    if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("fuse:") {
        eprintln!("FUSE refused the mount here ({out:?}): skipping");
        return;
    }
    assert!(out.status.success(), "{out:?}");
    let data = common::data(300_000, 9);
    // Blocking file calls on the mount run off this runtime: the gateway
    // serving them runs on it.
    let (m, r, d) = (mnt.clone(), remote.clone(), data.clone());
    let result = tokio::task::spawn_blocking(move || {
        std::fs::write(m.join("a.bin"), &d).expect("write through sshfs");
        assert_eq!(
            sha(&std::fs::read(r.join("a.bin")).expect("on the target")),
            sha(&d)
        );
        assert_eq!(
            sha(&std::fs::read(m.join("a.bin")).expect("read back")),
            sha(&d)
        );
        std::fs::rename(m.join("a.bin"), m.join("b.bin")).expect("rename");
        std::fs::remove_file(m.join("b.bin")).expect("remove");
        assert!(!r.join("b.bin").exists());
    })
    .await;
    let _ = Command::new("fusermount")
        .arg("-u")
        .arg(&mnt)
        .status()
        .await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
    // Wait for the session to end and be recorded.
    let mut ops: Vec<serde_json::Value> = Vec::new();
    for _ in 0..50 {
        let (store, list) = fx.sessions().await;
        if let Some(s) = list.iter().find(|s| s.end.is_some()) {
            ops = recorded_ops(store.as_ref(), s.id).await;
            if ops.iter().any(|o| o["op"] == "remove") {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let want = sha(&data);
    assert!(
        ops.iter()
            .any(|o| o["op"] == "close" && o["written_sha256"] == want.as_str()),
        "{ops:#?}"
    );
    for op in ["rename", "remove"] {
        assert!(ops.iter().any(|o| o["op"] == op), "no {op} in {ops:#?}");
    }
}
