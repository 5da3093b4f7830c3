//! The real thing: OpenSSH's `sftp` client talks to OpenSSH's `sftp-server`
//! through this test process, which feeds every byte to the parser before
//! forwarding it (so a request is always parsed before its reply). The
//! client runs the server "directly" (`sftp -D`) as a shell that bridges its
//! stdin/stdout to two FIFOs; the test reads and writes the other ends and
//! runs the real `sftp-server` on pipes.
//!
//! It puts a ~2 MiB random file, gets it back, renames and removes it, and
//! checks the digests and events. Skipped when the binaries are missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sftp_audit::{SftpAudit, SftpEvent};
use sha2::{Digest, Sha256};

const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> TempDir {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("sftp-audit-it-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    TempDir(dir)
}

/// Copies `from` to `to`, feeding each chunk to the parser first.
fn relay(
    mut from: impl Read,
    mut to: impl Write,
    audit: &Mutex<(SftpAudit, Vec<SftpEvent>)>,
    client: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        {
            let mut guard = audit.lock().unwrap();
            let (a, events) = &mut *guard;
            let ev = if client {
                a.client_bytes(&buf[..n])
            } else {
                a.server_bytes(&buf[..n])
            };
            events.extend(ev);
        }
        if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
            return;
        }
    }
}

fn sha_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn xorshift_bytes(n: usize, mut x: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn real_openssh_put_get_rename_remove() {
    let Some(sftp) = find_in_path("sftp") else {
        eprintln!("SKIPPED: no `sftp` client in PATH");
        return;
    };
    if !Path::new(SFTP_SERVER).is_file() || find_in_path("mkfifo").is_none() {
        eprintln!("SKIPPED: {SFTP_SERVER} or mkfifo not present");
        return;
    }
    let tmp = temp_dir();
    let dir = &tmp.0;
    // Not a multiple of any buffer size, so the last READ is short.
    let content = xorshift_bytes(2 * 1024 * 1024 + 12_345, 0x9e37_79b9_7f4a_7c15);
    std::fs::write(dir.join("local.bin"), &content).unwrap();
    let c2s = dir.join("c2s");
    let s2c = dir.join("s2c");
    let status = Command::new("mkfifo").arg(&c2s).arg(&s2c).status().unwrap();
    assert!(status.success());
    std::fs::write(
        dir.join("batch"),
        "put local.bin remote.bin\nget remote.bin back.bin\nrename remote.bin renamed.bin\nrm renamed.bin\n",
    )
    .unwrap();

    let mut server = Command::new(SFTP_SERVER)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let server_in = server.stdin.take().unwrap();
    let server_out = server.stdout.take().unwrap();
    let audit = Arc::new(Mutex::new((SftpAudit::new(), Vec::new())));

    // Opening a FIFO blocks until the other end opens: do it in the threads.
    let (a1, p1) = (Arc::clone(&audit), c2s.clone());
    let up = std::thread::spawn(move || relay(File::open(p1).unwrap(), server_in, &a1, true));
    let (a2, p2) = (Arc::clone(&audit), s2c.clone());
    let down = std::thread::spawn(move || {
        let fifo = OpenOptions::new().write(true).open(p2).unwrap();
        relay(server_out, fifo, &a2, false);
    });

    // The background `cat` keeps its stdout (sftp's pipe); `exec cat` reads sftp's stdin.
    let bridge = format!(
        "/bin/sh -c 'cat < {} & exec cat > {}'",
        s2c.display(),
        c2s.display()
    );
    let mut client = Command::new(sftp)
        .current_dir(dir)
        .args(["-q", "-b", "batch", "-D", &bridge])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let client_status = loop {
        if let Some(st) = client.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = client.kill();
            let _ = server.kill();
            panic!("sftp did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    up.join().unwrap();
    down.join().unwrap();
    server.wait().unwrap();
    assert!(client_status.success(), "sftp failed: {client_status}");
    assert_eq!(std::fs::read(dir.join("back.bin")).unwrap(), content);

    let (mut a, mut events) = Arc::try_unwrap(audit).ok().unwrap().into_inner().unwrap();
    events.extend(a.finish());
    for e in &events {
        eprintln!("{}", serde_json::to_string(e).unwrap());
    }
    eprintln!("{:?}", a.stats());

    let want = sha_hex(&content);
    let len = content.len() as u64;
    assert!(
        matches!(&events[0], SftpEvent::Version { version: 3, extensions }
        if extensions.iter().any(|e| e == "posix-rename@openssh.com"))
    );
    let put = events.iter().find(|e| {
        matches!(e, SftpEvent::Close { path, written_bytes, .. }
            if path.ends_with("/remote.bin") && *written_bytes > 0)
    });
    let Some(SftpEvent::Close {
        written_bytes,
        written_sha256,
        read_bytes,
        implicit,
        ..
    }) = put
    else {
        panic!("no Close for the put: {events:?}");
    };
    assert_eq!((*written_bytes, *read_bytes, *implicit), (len, 0, false));
    assert_eq!(written_sha256.as_deref(), Some(want.as_str()));
    let get = events.iter().find(|e| {
        matches!(e, SftpEvent::Close { path, read_bytes, .. }
            if path.ends_with("/remote.bin") && *read_bytes > 0)
    });
    let Some(SftpEvent::Close {
        read_bytes,
        read_sha256,
        written_sha256,
        ..
    }) = get
    else {
        panic!("no Close for the get: {events:?}");
    };
    assert_eq!(*read_bytes, len);
    assert_eq!(read_sha256.as_deref(), Some(want.as_str()));
    assert_eq!(*written_sha256, None);
    assert!(events.iter().any(|e| matches!(e,
        SftpEvent::Rename { from, to, status, .. }
            if from.ends_with("/remote.bin") && to.ends_with("/renamed.bin") && status.is_ok())));
    assert!(events.iter().any(|e| matches!(e,
        SftpEvent::Remove { path, status } if path.ends_with("/renamed.bin") && status.is_ok())));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, SftpEvent::Unparseable { .. }))
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, SftpEvent::Close { implicit: true, .. }))
    );
}
