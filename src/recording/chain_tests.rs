//! Unit tests of the hash chain: an intact chain verifies, and each kind of
//! tampering is reported at the right seq.

use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;
use chrono::Duration;

use super::*;
use crate::recording::records::{AuthKind, Decision, EventKind, RecordingMode, SessionKind, now};

fn session(id: Uuid) -> SessionRecord {
    SessionRecord {
        id,
        ssm_session_id: None,
        user: "alice".into(),
        auth_method: AuthKind::PublicKey,
        key_fingerprint: Some("SHA256:abc".into()),
        cert_key_id: None,
        cert_serial: None,
        cert_ca_fingerprint: None,
        source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        source_port: 50000,
        client_version: None,
        target_id: "i-0123".into(),
        target_name: None,
        document: None,
        parameters: None,
        justification: None,
        aws_reason: None,
        decision: Decision::Allow,
        policy_ids: vec![],
        kind: SessionKind::Shell,
        recording: RecordingMode::Full,
        started_at: now(),
        end: None,
        chain_head: None,
        start_seal: None,
        backend: None,
        os_user: None,
        replica: None,
    }
}

fn output(offset_ms: u64, data: &'static [u8]) -> Event {
    Event {
        offset_ms,
        kind: EventKind::Output,
        data: Bytes::from_static(data),
    }
}

/// A session with `n` chunks of two events each, head set.
fn recorded(n: i64) -> (SessionRecord, Vec<EventChunk>) {
    let mut s = session(Uuid::new_v4());
    let mut w = ChainWriter::new(s.id);
    let t0 = s.started_at;
    let chunks: Vec<EventChunk> = (0..n)
        .map(|i| {
            let ms = i as u64 * 100;
            w.seal(
                t0 + Duration::milliseconds(i * 100),
                vec![
                    output(ms, b"hello\r\n"),
                    Event {
                        offset_ms: ms + 1,
                        kind: EventKind::Input,
                        data: Bytes::from(format!("cmd {i}\r")),
                    },
                ],
            )
        })
        .collect();
    s.chain_head = w.head();
    (s, chunks)
}

fn at(r: Result<(), BrokenLink>) -> (i64, LinkError) {
    let b = r.expect_err("tampering detected");
    (b.seq, b.why)
}

#[test]
fn intact_chain_verifies() {
    let (s, chunks) = recorded(5);
    assert_eq!(
        chunks.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(chunks[0].prev_hash, genesis(s.id));
    assert_eq!(chunks[3].prev_hash, chunks[2].hash);
    assert_eq!(s.chain_head, Some(chunks[4].hash));
    verify(&s, &chunks).unwrap();
}

#[test]
fn empty_chain_verifies_only_without_head() {
    let (mut s, _) = recorded(0);
    verify(&s, &[]).unwrap();
    s.chain_head = Some([7; 32]);
    assert_eq!(at(verify(&s, &[])), (0, LinkError::HeadMismatch));
}

#[test]
fn edited_event_data_is_found() {
    let (s, mut chunks) = recorded(5);
    chunks[2].events[1].data = Bytes::from_static(b"rm -rf /\r");
    assert_eq!(at(verify(&s, &chunks)), (2, LinkError::HashMismatch));
}

#[test]
fn edited_metadata_is_found() {
    let (s, chunks) = recorded(3);
    let mut c = chunks.clone();
    c[1].created_at += Duration::microseconds(1);
    assert_eq!(at(verify(&s, &c)), (1, LinkError::HashMismatch));
    let mut c = chunks.clone();
    c[1].events[0].offset_ms += 1;
    assert_eq!(at(verify(&s, &c)), (1, LinkError::HashMismatch));
    let mut c = chunks;
    c[0].events.pop();
    assert_eq!(at(verify(&s, &c)), (0, LinkError::HashMismatch));
}

#[test]
fn edited_and_rehashed_chunk_breaks_the_next_link() {
    // An attacker who recomputes the edited chunk's hash still breaks the
    // link to the following chunk.
    let (s, mut chunks) = recorded(4);
    chunks[1].events[0].data = Bytes::from_static(b"forged");
    chunks[1].hash = chunk_hash(
        &chunks[1].prev_hash,
        s.id,
        1,
        chunks[1].created_at,
        &chunks[1].events,
    );
    assert_eq!(at(verify(&s, &chunks)), (2, LinkError::PrevMismatch));
}

#[test]
fn reordering_is_found() {
    let (s, chunks) = recorded(4);
    // Swapped in the list.
    let mut c = chunks.clone();
    c.swap(1, 2);
    assert_eq!(at(verify(&s, &c)), (1, LinkError::Missing { found: 2 }));
    // Swapped and renumbered so seqs look contiguous.
    let mut c = chunks;
    c.swap(1, 2);
    c[1].seq = 1;
    c[2].seq = 2;
    assert_eq!(at(verify(&s, &c)), (1, LinkError::PrevMismatch));
}

#[test]
fn deleted_chunk_is_found() {
    let (s, chunks) = recorded(5);
    let mut c = chunks.clone();
    c.remove(2);
    assert_eq!(at(verify(&s, &c)), (2, LinkError::Missing { found: 3 }));
    let mut c = chunks.clone();
    c.remove(0);
    assert_eq!(at(verify(&s, &c)), (0, LinkError::Missing { found: 1 }));
    // Deleted from the end: only the head shows it.
    let mut c = chunks;
    c.truncate(3);
    assert_eq!(at(verify(&s, &c)), (3, LinkError::HeadMismatch));
    assert_eq!(at(verify(&s, &[])), (0, LinkError::HeadMismatch));
}

#[test]
fn duplicated_chunk_is_found() {
    let (s, mut chunks) = recorded(3);
    chunks.insert(2, chunks[1].clone());
    assert_eq!(
        at(verify(&s, &chunks)),
        (2, LinkError::OutOfOrder { found: 1 })
    );
}

#[test]
fn edited_head_is_found() {
    let (mut s, chunks) = recorded(3);
    s.chain_head = Some([0; 32]);
    assert_eq!(at(verify(&s, &chunks)), (3, LinkError::HeadMismatch));
    s.chain_head = None;
    assert_eq!(at(verify(&s, &chunks)), (2, LinkError::HeadMissing));
    // Head points at an earlier chunk: chunks were added after it.
    s.chain_head = Some(chunks[0].hash);
    assert_eq!(at(verify(&s, &chunks)), (1, LinkError::BeyondHead));
}

#[test]
fn chunk_from_another_session_is_found() {
    let (s, chunks) = recorded(2);
    let (_, other) = recorded(2);
    let mut c = chunks;
    c[1] = other[1].clone();
    assert_eq!(
        at(verify(&s, &c)),
        (
            1,
            LinkError::WrongSession {
                found: other[1].session_id
            }
        )
    );
}

#[test]
fn writer_resumes_a_chain() {
    let (mut s, mut chunks) = recorded(2);
    let mut w = ChainWriter::resume(&chunks[1]);
    assert_eq!(w.next_seq(), 2);
    chunks.push(w.seal(now(), vec![output(500, b"more")]));
    s.chain_head = w.head();
    verify(&s, &chunks).unwrap();
}

#[test]
fn broken_link_message_names_the_chunk() {
    let b = BrokenLink {
        seq: 4,
        why: LinkError::HashMismatch,
    };
    assert_eq!(
        b.to_string(),
        "chain broken at chunk 4: content does not match its hash (edited)"
    );
}
