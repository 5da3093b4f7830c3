//! Digest edge cases and handle lifecycles: failed and unanswered writes,
//! empty files, oversized DATA, handle reuse, implicit closes at finish.

use super::*;

const H: &[u8] = b"\0\0\0\x01";

#[test]
fn failed_or_unanswered_writes_void_the_digest() {
    let mut s = Script::default();
    s.hello().c(open(1, b"full", WRITE | CREAT)).s(handle(1, H));
    s.c(write(10, H, 0, b"hello ")).c(write(11, H, 6, b"world"));
    s.s(ok(10)).s(status(11, 4, "No space left on device"));
    s.c(close(2, H)).s(ok(2));
    let ev = s.run();
    let Closed {
        written_bytes,
        written_sha256,
        ..
    } = closed(closes(&ev)[0]);
    assert_eq!((*written_bytes, written_sha256.clone()), (6, None));

    // A WRITE still unanswered when CLOSE's reply comes.
    let mut s = Script::default();
    s.hello().c(open(1, b"f", WRITE | CREAT)).s(handle(1, H));
    s.c(write(10, H, 0, b"abc")).c(close(2, H)).s(ok(2));
    let ev = s.run();
    let Closed {
        written_bytes,
        written_sha256,
        ..
    } = closed(closes(&ev)[0]);
    assert_eq!((*written_bytes, written_sha256.clone()), (0, None));
}

#[test]
fn empty_files_get_the_empty_digest_when_it_means_something() {
    let empty = sha_hex(b"");
    // Opened for writing, nothing written: an empty upload.
    let mut s = Script::default();
    s.hello()
        .c(open(1, b"e", WRITE | CREAT | TRUNC))
        .s(handle(1, H));
    s.c(close(2, H)).s(ok(2));
    let ev = s.run();
    let Closed {
        read_sha256,
        written_sha256,
        ..
    } = closed(closes(&ev)[0]);
    assert_eq!(
        (read_sha256.clone(), written_sha256.clone()),
        (None, Some(empty.clone()))
    );

    // Opened for reading, first READ gets EOF: an empty download.
    let mut s = Script::default();
    s.hello().c(open(1, b"e", READ)).s(handle(1, H));
    s.c(read(10, H, 0, 32768))
        .s(status(10, 1, "EOF"))
        .c(close(2, H))
        .s(ok(2));
    let ev = s.run();
    let Closed {
        read_sha256,
        written_sha256,
        ..
    } = closed(closes(&ev)[0]);
    assert_eq!(
        (read_sha256.clone(), written_sha256.clone()),
        (Some(empty), None)
    );

    // Opened for reading, never read: no digest.
    let mut s = Script::default();
    s.hello()
        .c(open(1, b"e", READ))
        .s(handle(1, H))
        .c(close(2, H))
        .s(ok(2));
    let ev = s.run();
    let Closed { read_sha256, .. } = closed(closes(&ev)[0]);
    assert_eq!(*read_sha256, None);
}

#[test]
fn more_data_than_asked_voids_the_read_digest() {
    let mut s = Script::default();
    s.hello().c(open(1, b"f", READ)).s(handle(1, H));
    s.c(read(10, H, 0, 4))
        .s(data(10, b"too long"))
        .c(close(2, H))
        .s(ok(2));
    let ev = s.run();
    let Closed {
        read_bytes,
        read_sha256,
        ..
    } = closed(closes(&ev)[0]);
    assert_eq!((*read_bytes, read_sha256.clone()), (8, None));
}

#[test]
fn reused_handle_string_does_not_mix_files() {
    // File A is closed, then the server hands the same handle to file B; a
    // late READ reply for A (answered before A's CLOSE) must stay with A.
    let mut s = Script::default();
    s.hello().c(open(1, b"a", READ)).s(handle(1, H));
    s.c(read(10, H, 0, 3))
        .s(data(10, b"aaa"))
        .c(close(2, H))
        .s(ok(2));
    s.c(open(3, b"b", WRITE | CREAT)).s(handle(3, H));
    s.c(write(11, H, 0, b"bb"))
        .s(ok(11))
        .c(close(4, H))
        .s(ok(4));
    let ev = s.run();
    let c = closes(&ev);
    let Closed {
        path,
        read_bytes,
        written_bytes,
        ..
    } = closed(c[0]);
    assert_eq!((path.as_str(), *read_bytes, *written_bytes), ("a", 3, 0));
    let Closed {
        path,
        read_bytes,
        written_sha256,
        ..
    } = closed(c[1]);
    assert_eq!((path.as_str(), *read_bytes), ("b", 0));
    assert_eq!(written_sha256.as_deref(), Some(sha_hex(b"bb").as_str()));
}

#[test]
fn finish_reports_open_files_as_implicit_closes() {
    let mut s = Script::default();
    s.hello()
        .c(open(1, b"left-open", WRITE | CREAT))
        .s(handle(1, H));
    s.c(write(10, H, 0, b"partial")).s(ok(10));
    s.c(open(2, b"/dir", 0)).s(handle(2, b"dirh"));
    let ev = s.run();
    assert_eq!(
        closes(&ev).first().copied(),
        Some(&SftpEvent::Close {
            path: "left-open".into(),
            read_bytes: 0,
            written_bytes: 7,
            read_sha256: None,
            written_sha256: Some(sha_hex(b"partial")),
            implicit: true,
            status: None,
        })
    );
    // Two opens, two implicit closes (the second file had no flags at all).
    assert_eq!(closes(&ev).len(), 2);
    let mut a = SftpAudit::new();
    for (d, p) in &s.0 {
        match d {
            Direction::Client => a.client_bytes(p),
            Direction::Server => a.server_bytes(p),
        };
    }
    assert_eq!(a.finish().len(), 2);
    assert!(a.finish().is_empty(), "finish twice reports nothing more");
    assert!(a.client_bytes(&write(11, H, 7, b"x")).is_empty());
}
