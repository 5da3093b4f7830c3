//! Uploads and downloads: byte counts and digests under pipelining,
//! out-of-order and short replies, gaps, overlaps, the reorder budget, and
//! chunking of the input.

use super::*;
use crate::Limits;

const H: &[u8] = b"\0\0\0\x01";

/// An OpenSSH-like upload: all WRITEs of `chunk` bytes in flight, then the
/// STATUS replies (in `order` if given), then CLOSE.
pub(super) fn upload(content: &[u8], chunk: usize, rng: Option<&mut Rng>) -> Script {
    let mut s = Script::default();
    s.hello()
        .c(open(1, b"/srv/up.bin", WRITE | CREAT | TRUNC))
        .s(handle(1, H));
    let mut ids = Vec::new();
    for (i, part) in content.chunks(chunk).enumerate() {
        let id = 100 + i as u32;
        s.c(write(id, H, (i * chunk) as u64, part));
        ids.push(id);
    }
    if let Some(rng) = rng {
        rng.shuffle(&mut ids);
    }
    for id in ids {
        s.s(ok(id));
    }
    s.c(close(2, H)).s(ok(2));
    s
}

#[test]
fn upload_digest_matches_content() {
    let content = Rng::new(7).bytes(100_000);
    let ev = without_version(upload(&content, 32 * 1024, None).run());
    assert_eq!(
        ev[0],
        SftpEvent::Open {
            path: "/srv/up.bin".into(),
            flags: vec!["write".into(), "creat".into(), "trunc".into()],
            status: Status::ok(),
        }
    );
    assert_eq!(
        ev[1],
        SftpEvent::Close {
            path: "/srv/up.bin".into(),
            read_bytes: 0,
            written_bytes: 100_000,
            read_sha256: None,
            written_sha256: Some(sha_hex(&content)),
            implicit: false,
            status: Some(Status::ok()),
        }
    );
    assert_eq!(ev.len(), 2);
}

#[test]
fn upload_acknowledged_out_of_order_still_hashes() {
    let content = Rng::new(8).bytes(70_000);
    let mut rng = Rng::new(9);
    let ev = upload(&content, 4096, Some(&mut rng)).run();
    let Closed {
        written_sha256,
        written_bytes,
        ..
    } = closed(closes(&ev)[0]);
    assert_eq!(*written_bytes, 70_000);
    assert_eq!(written_sha256.as_deref(), Some(sha_hex(&content).as_str()));
}

#[test]
fn writes_sent_out_of_order_are_reordered() {
    let content = Rng::new(10).bytes(10_000);
    let mut s = Script::default();
    s.hello().c(open(1, b"f", WRITE | CREAT)).s(handle(1, H));
    let mut parts: Vec<(usize, &[u8])> = content.chunks(1000).enumerate().collect();
    Rng::new(11).shuffle(&mut parts);
    for (i, part) in &parts {
        s.c(write(10 + *i as u32, H, (*i * 1000) as u64, part))
            .s(ok(10 + *i as u32));
    }
    s.c(close(2, H)).s(ok(2));
    let ev = s.run();
    let Closed { written_sha256, .. } = closed(closes(&ev)[0]);
    assert_eq!(written_sha256.as_deref(), Some(sha_hex(&content).as_str()));
}

/// A download the way OpenSSH's client does it: READs of `req` bytes in
/// flight, replies shuffled, some short (the client re-requests the rest),
/// EOF for reads past the end.
pub(super) fn download(content: &[u8], req_len: usize, rng: &mut Rng) -> Script {
    let mut s = Script::default();
    s.hello().c(open(1, b"/srv/down.bin", READ)).s(handle(1, H));
    // (id, offset, len) outstanding
    let mut next_id = 100u32;
    let mut outstanding: Vec<(u32, usize, usize)> = Vec::new();
    let mut off = 0;
    while off < content.len() + 2 * req_len {
        s.c(read(next_id, H, off as u64, req_len as u32));
        outstanding.push((next_id, off, req_len));
        next_id += 1;
        off += req_len;
    }
    while !outstanding.is_empty() {
        let i = rng.below(outstanding.len() as u64) as usize;
        let (id, off, len) = outstanding.swap_remove(i);
        if off >= content.len() {
            s.s(status(id, 1, "EOF"));
            continue;
        }
        let end = (off + len).min(content.len());
        let short = rng.below(3) == 0 && end - off > 1;
        let end = if short { off + (end - off) / 2 } else { end };
        s.s(data(id, &content[off..end]));
        if end < off + len && end < content.len() {
            s.c(read(next_id, H, end as u64, (off + len - end) as u32));
            outstanding.push((next_id, end, off + len - end));
            next_id += 1;
        }
    }
    s.c(close(2, H)).s(ok(2));
    s
}

#[test]
fn download_out_of_order_and_short_reads_hash_correctly() {
    for seed in 1..20 {
        let mut rng = Rng::new(seed);
        let content = rng.bytes(50_000 + seed as usize * 333);
        let ev = download(&content, 4096, &mut rng).run();
        let c = closes(&ev);
        assert_eq!(c.len(), 1);
        let Closed {
            read_bytes,
            read_sha256,
            written_sha256,
            ..
        } = closed(c[0]);
        assert_eq!(*read_bytes, content.len() as u64, "seed {seed}");
        assert_eq!(
            read_sha256.as_deref(),
            Some(sha_hex(&content).as_str()),
            "seed {seed}"
        );
        assert_eq!(*written_sha256, None, "opened read-only");
    }
}

#[test]
fn chunking_of_the_input_does_not_matter() {
    let mut rng = Rng::new(99);
    let content = rng.bytes(20_000);
    let mut s = download(&content, 3000, &mut rng);
    s.0.extend(upload(&content, 5000, None).0.into_iter().skip(2));
    s.c(path_req(kind::REMOVE, 500, b"/srv/x"))
        .s(status(500, 2, "No such file"));
    let whole = s.run();
    let bytewise = s.run_with(Limits::default(), |_| 1);
    let mut rng = Rng::new(5);
    let random = s.run_with(Limits::default(), |n| rng.below(n as u64 + 10) as usize);
    assert_eq!(closes(&whole).len(), 2);
    assert!(matches!(whole.last(), Some(SftpEvent::Remove { .. })));
    assert_eq!(whole, bytewise);
    assert_eq!(whole, random);
    // And as one concatenated stream per direction is not the same thing:
    // the order between directions matters, chunking within does not.
}

#[test]
fn gaps_and_overlaps_give_counts_but_no_digest() {
    // Read with a gap: 0..100 and 200..300.
    let mut s = Script::default();
    s.hello().c(open(1, b"gap", READ)).s(handle(1, H));
    s.c(read(10, H, 0, 100)).s(data(10, &[1; 100]));
    s.c(read(11, H, 200, 100)).s(data(11, &[2; 100]));
    s.c(close(2, H)).s(ok(2));
    let ev = s.run();
    let Closed {
        read_bytes,
        read_sha256,
        ..
    } = closed(closes(&ev)[0]);
    assert_eq!((*read_bytes, read_sha256.clone()), (200, None));

    // Write with an overlap: 0..100 then 50..150.
    let mut s = Script::default();
    s.hello()
        .c(open(1, b"overlap", WRITE | CREAT))
        .s(handle(1, H));
    s.c(write(10, H, 0, &[1; 100])).s(ok(10));
    s.c(write(11, H, 50, &[2; 100])).s(ok(11));
    s.c(close(2, H)).s(ok(2));
    let ev = s.run();
    let Closed {
        written_bytes,
        written_sha256,
        ..
    } = closed(closes(&ev)[0]);
    assert_eq!((*written_bytes, written_sha256.clone()), (200, None));

    // Writes starting past 0 (a resumed upload) hash nothing either.
    let mut s = Script::default();
    s.hello().c(open(1, b"resume", WRITE)).s(handle(1, H));
    s.c(write(10, H, 4096, b"tail"))
        .s(ok(10))
        .c(close(2, H))
        .s(ok(2));
    let ev = s.run();
    let Closed {
        written_bytes,
        written_sha256,
        ..
    } = closed(closes(&ev)[0]);
    assert_eq!((*written_bytes, written_sha256.clone()), (4, None));
}

#[test]
fn reorder_budget_is_enforced() {
    let limits = Limits {
        max_reorder_bytes: 10_000,
        ..Limits::default()
    };
    let mut s = Script::default();
    s.hello().c(open(1, b"big", READ)).s(handle(1, H));
    // Everything but the first block arrives first: 5 * 4000 bytes to park.
    for i in 0..6u32 {
        s.c(read(10 + i, H, u64::from(i) * 4000, 4000));
    }
    for i in 1..6u32 {
        s.s(data(10 + i, &[i as u8; 4000]));
    }
    s.s(data(10, &[0; 4000])).c(close(2, H)).s(ok(2));
    let ev = s.run_with(limits, |n| n);
    assert!(ev.contains(&SftpEvent::LimitReached {
        limit: "max_reorder_bytes"
    }));
    let Closed {
        read_bytes,
        read_sha256,
        ..
    } = closed(closes(&ev)[0]);
    assert_eq!((*read_bytes, read_sha256.clone()), (24_000, None));
}
