//! Hostile input: oversized and malformed packets, the bounds on pending
//! requests and open handles, and a randomized run of garbage and mutated
//! packets in random chunks that must neither panic nor grow memory.

use super::*;
use crate::Limits;

#[test]
fn oversized_packet_is_one_unparseable_then_silence() {
    let mut a = SftpAudit::new();
    a.client_bytes(&init());
    a.server_bytes(&version(3, &[]));
    a.client_bytes(&open(1, b"f", WRITE | CREAT));
    a.server_bytes(&handle(1, b"h"));
    a.client_bytes(&write(2, b"h", 0, b"abc"));
    a.server_bytes(&ok(2));
    let too_long = (256u32 * 1024 + 1024 + 1).to_be_bytes();
    // Byte by byte: the error comes with the fourth byte of the length.
    let mut ev = Vec::new();
    for b in too_long {
        ev.extend(a.client_bytes(&[b]));
    }
    assert_eq!(ev.len(), 1);
    assert!(
        matches!(&ev[0], SftpEvent::Unparseable { direction: Direction::Client, reason }
        if reason.contains("exceeds"))
    );
    assert!(a.is_stopped());
    assert!(a.client_bytes(&[0; 1000]).is_empty());
    assert!(a.server_bytes(&ok(2)).is_empty());
    assert!(a.server_bytes(&[0xff; 100]).is_empty());
    // The open file is still reported at the end, without digests.
    let fin = a.finish();
    assert_eq!(
        fin,
        vec![SftpEvent::Close {
            path: "f".into(),
            read_bytes: 0,
            written_bytes: 3,
            read_sha256: None,
            written_sha256: None,
            implicit: true,
            status: None,
        }]
    );
    assert_eq!(a.footprint().framed, 0);
}

#[test]
fn malformed_bodies_and_zero_lengths_are_unparseable() {
    let cases: Vec<(Direction, Vec<u8>)> = vec![
        (
            Direction::Client,
            B::default().u8(kind::OPEN).u32(1).u32(100).packet(),
        ),
        (
            Direction::Client,
            B::default().u8(kind::WRITE).u32(1).packet(),
        ),
        (
            Direction::Server,
            B::default().u8(kind::STATUS).u32(1).packet(),
        ),
        (
            Direction::Server,
            req(kind::HANDLE, 1).str(&[0; 300]).packet(),
        ),
        (Direction::Server, vec![0, 0, 0, 0]),
        (Direction::Client, vec![0, 0, 0, 3, kind::READ, 0, 0]),
    ];
    for (dir, bytes) in cases {
        let mut a = SftpAudit::new();
        let ev = match dir {
            Direction::Client => a.client_bytes(&bytes),
            Direction::Server => a.server_bytes(&bytes),
        };
        assert_eq!(ev.len(), 1, "{bytes:?}");
        assert!(matches!(&ev[0], SftpEvent::Unparseable { direction, .. } if *direction == dir));
    }
}

#[test]
fn handle_table_is_bounded() {
    let limits = Limits {
        max_open_handles: 4,
        ..Limits::default()
    };
    let mut s = Script::default();
    s.hello();
    for i in 0..10u32 {
        s.c(open(i, format!("f{i}").as_bytes(), READ))
            .s(handle(i, &i.to_be_bytes()));
    }
    let mut a = SftpAudit::with_limits(limits);
    let mut ev = Vec::new();
    for (d, p) in &s.0 {
        ev.extend(match d {
            Direction::Client => a.client_bytes(p),
            Direction::Server => a.server_bytes(p),
        });
        assert!(a.footprint().handles <= 4);
    }
    let limit_events = ev
        .iter()
        .filter(|e| matches!(e, SftpEvent::LimitReached { .. }))
        .count();
    assert_eq!(limit_events, 1);
    assert!(ev.contains(&SftpEvent::LimitReached {
        limit: "max_open_handles"
    }));
    // f0..f5 were closed implicitly, in order; f6..f9 at finish.
    let implicit: Vec<String> = ev
        .iter()
        .chain(a.finish().iter())
        .filter_map(|e| match e {
            SftpEvent::Close {
                path,
                implicit: true,
                ..
            } => Some(path.clone()),
            _ => None,
        })
        .collect();
    let want: Vec<String> = (0..10).map(|i| format!("f{i}")).collect();
    assert_eq!(implicit, want);
    assert_eq!(a.stats().evicted_handles, 6);
}

#[test]
fn pending_requests_are_bounded() {
    let limits = Limits {
        max_pending_requests: 8,
        ..Limits::default()
    };
    let mut a = SftpAudit::with_limits(limits);
    a.client_bytes(&init());
    a.server_bytes(&version(3, &[]));
    a.client_bytes(&open(1, b"f", WRITE | CREAT));
    a.server_bytes(&handle(1, b"h"));
    let mut ev = Vec::new();
    for id in 0..100u32 {
        ev.extend(a.client_bytes(&write(1000 + id, b"h", u64::from(id), b"x")));
        assert!(a.footprint().pending <= 8);
    }
    assert_eq!(
        ev,
        vec![SftpEvent::LimitReached {
            limit: "max_pending_requests"
        }]
    );
    // Only the last 8 are still known; their replies count, the rest are orphans.
    for id in 0..100u32 {
        a.server_bytes(&ok(1000 + id));
    }
    assert_eq!(a.stats().orphan_replies, 92);
    assert_eq!(a.stats().dropped_requests, 92);
    a.client_bytes(&close(2, b"h"));
    let ev = a.server_bytes(&ok(2));
    let Closed {
        written_bytes,
        written_sha256,
        ..
    } = closed(&ev[0]);
    // Dropped writes are unconfirmed: counted only when confirmed, no digest.
    assert_eq!((*written_bytes, written_sha256.clone()), (8, None));
}

/// A random, mostly well-formed packet over a small space of ids, handles
/// and offsets, so that requests and replies meet.
fn random_packet(rng: &mut Rng) -> (Direction, Vec<u8>) {
    let id = rng.below(8) as u32;
    let h = [rng.below(4) as u8];
    let off = rng.below(4) * 512;
    let len = rng.below(700) as usize;
    let d = rng.bytes(len);
    let client = |p| (Direction::Client, p);
    let server = |p| (Direction::Server, p);
    // Raw garbage now and then; mostly packets that parse.
    let pick = if rng.below(40) == 0 {
        14 + rng.below(2)
    } else {
        rng.below(14)
    };
    match pick {
        0 => client(open(id, b"p", rng.below(64) as u32)),
        1 => server(handle(id, &h)),
        2 => client(read(id, &h, off, len as u32)),
        3 => server(data(id, &d)),
        4 => client(write(id, &h, off, &d)),
        5 => server(status(id, rng.below(10) as u32, "m")),
        6 => client(close(id, &h)),
        7 => client(req(kind::RENAME, id).str(b"a").str(&d).packet()),
        8 => client(
            ext(id, "copy-data")
                .str(&h)
                .u64(0)
                .u64(9)
                .str(&h)
                .u64(1)
                .packet(),
        ),
        9 => client(
            req(kind::FSETSTAT, id)
                .str(&h)
                .u32(0xf)
                .u64(1)
                .u32(2)
                .u32(3)
                .u32(4)
                .u32(5)
                .u32(6)
                .packet(),
        ),
        10 => server(version(3, &["a", "b"])),
        11 => client(path_req(kind::OPENDIR, id, &d)),
        12 => server(req(kind::NAME, id).u32(0).packet()),
        13 => client(
            ext(id, "lsetstat@openssh.com")
                .str(b"x")
                .u32(0x8000_0000)
                .u32(1)
                .str(b"k")
                .str(b"v")
                .packet(),
        ),
        14 => client(d),
        _ => server(d),
    }
}

/// Up to 60 random packets.
fn soup(rng: &mut Rng) -> Script {
    let mut s = Script::default();
    for _ in 0..rng.below(60) {
        s.0.push(random_packet(rng));
    }
    s
}

/// A few well-formed transfers, replies reordered, with some soup between.
fn coherent(rng: &mut Rng) -> Script {
    use super::transfer::{download, upload};
    let mut s = Script::default();
    for _ in 0..1 + rng.below(3) {
        let len = rng.below(6000) as usize;
        let content = rng.bytes(len);
        let step = 64 + rng.below(1500) as usize;
        let part = match rng.below(2) {
            0 => upload(&content, step, Some(&mut *rng)),
            _ => download(&content, step, rng),
        };
        s.0.extend(part.0);
        if rng.below(3) == 0 {
            s.0.push(random_packet(rng));
        }
    }
    s
}

fn mutate(rng: &mut Rng, mut p: Vec<u8>) -> Vec<u8> {
    match rng.below(6) {
        0 if !p.is_empty() => {
            let i = rng.below(p.len() as u64) as usize;
            p[i] ^= 1 << rng.below(8);
        }
        1 => {
            let n = rng.below(p.len() as u64 + 1) as usize;
            p.truncate(n);
        }
        2 if p.len() > 4 => {
            // A length prefix that lies, usually by a little.
            let delta = rng.below(16) as u32;
            let len = (p.len() as u32 - 4).wrapping_add(delta).wrapping_sub(8);
            p[..4].copy_from_slice(&len.to_be_bytes());
        }
        3 => {
            let n = rng.below(20) as usize;
            p.extend(rng.bytes(n));
        }
        _ => {}
    }
    p
}

#[test]
fn randomized_input_never_panics_and_stays_bounded() {
    let mut rng = Rng::new(0x5eed);
    let small = Limits {
        max_packet: 2048,
        max_reorder_bytes: 4096,
        max_open_handles: 3,
        max_pending_requests: 5,
    };
    let mut events = 0usize;
    let mut unparseable = 0usize;
    let mut digests = 0usize;
    let mut limits_hit = 0usize;
    for iter in 0..3000 {
        let limits = if iter % 2 == 0 {
            small
        } else {
            Limits::default()
        };
        let mut a = SftpAudit::with_limits(limits);
        let mut seen_unparseable = false;
        // A third random packet soup, the rest coherent transfers; a few
        // packets of either mutated.
        let (script, mutation_odds) = match iter % 3 {
            0 => (soup(&mut rng), 5),
            _ => (coherent(&mut rng), 60),
        };
        for (dir, p) in script.0 {
            let p = if rng.below(mutation_odds) == 0 {
                mutate(&mut rng, p)
            } else {
                p
            };
            let mut rest = &p[..];
            while !rest.is_empty() {
                let n = (rng.below(rest.len() as u64 + 40) as usize).clamp(1, rest.len());
                let (head, tail) = rest.split_at(n);
                let ev = match dir {
                    Direction::Client => a.client_bytes(head),
                    Direction::Server => a.server_bytes(head),
                };
                for e in &ev {
                    if matches!(e, SftpEvent::Unparseable { .. }) {
                        assert!(!seen_unparseable, "Unparseable twice");
                        seen_unparseable = true;
                        unparseable += 1;
                    }
                }
                events += ev.len();
                digests += ev
                    .iter()
                    .filter(|e| {
                        matches!(
                            e,
                            SftpEvent::Close {
                                read_sha256: Some(_),
                                ..
                            } | SftpEvent::Close {
                                written_sha256: Some(_),
                                ..
                            }
                        )
                    })
                    .count();
                limits_hit += ev
                    .iter()
                    .filter(|e| matches!(e, SftpEvent::LimitReached { .. }))
                    .count();
                rest = tail;
                let f = a.footprint();
                assert!(f.framed <= 2 * (limits.max_packet + 64), "{f:?}");
                assert!(f.reorder <= limits.max_reorder_bytes, "{f:?}");
                assert!(f.parked <= f.reorder, "{f:?}");
                assert!(f.pending <= limits.max_pending_requests, "{f:?}");
                assert!(f.handles <= limits.max_open_handles, "{f:?}");
            }
        }
        let fin = a.finish();
        assert!(
            fin.iter()
                .all(|e| matches!(e, SftpEvent::Close { implicit: true, .. }))
        );
        let f = a.footprint();
        assert_eq!((f.framed, f.reorder, f.pending, f.handles), (0, 0, 0, 0));
        for e in &fin {
            // Every event serialises.
            serde_json::to_string(e).unwrap();
        }
    }
    // The generator really reached the interesting states.
    assert!(events > 10_000, "{events}");
    assert!(unparseable > 100, "{unparseable}");
    assert!(digests > 100, "{digests}");
    assert!(limits_hit > 100, "{limits_hit}");
    eprintln!("events {events}, unparseable {unparseable}, digests {digests}, limits {limits_hit}");
}
