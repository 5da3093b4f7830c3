//! Tests of the keyed seals: the stored form, the HMAC construction, and
//! that every sealed field is covered.

use super::*;
use crate::recording::records::{AuditKind, EndReason, SessionEnd};

/// A named edit of a value, for "every field is sealed" tests.
type Edit<'a, T> = (&'a str, Box<dyn Fn(&mut T)>);

fn key(id: &str, byte: u8) -> SealKey {
    SealKey::new(id, [byte; 32]).unwrap()
}

#[test]
fn seals_are_stored_as_key_id_and_hex() {
    let seal = Seal {
        key_id: "k20261102-3f9a".into(),
        mac: [0xab; 32],
    };
    let text = seal.to_string();
    assert_eq!(text, format!("k20261102-3f9a:{}", "ab".repeat(32)));
    assert_eq!(text.parse::<Seal>().unwrap(), seal);
    for bad in [
        "",
        "k1",
        ":00",
        "k1:abcd",
        &format!("k1:{}", "zz".repeat(32)),
    ] {
        assert_eq!(bad.parse::<Seal>(), Err(BadSeal), "{bad:?}");
    }
    let json = serde_json::to_string(&seal).unwrap();
    assert_eq!(serde_json::from_str::<Seal>(&json).unwrap(), seal);
}

#[test]
fn the_padded_key_is_rfc_2104_hmac() {
    // Padding the 32-byte key to the block by hand is what HMAC does.
    let k = key("a", 0x0b);
    let mut by_hand = Canon::new(&k, b"d");
    by_hand.str("message");
    let mut reference = <HmacSha256 as KeyInit>::new_from_slice(&[0x0b; 32]).unwrap();
    reference.update(&1u64.to_be_bytes());
    reference.update(b"d");
    reference.update(&7u64.to_be_bytes());
    reference.update(b"message");
    let expected: [u8; 32] = reference.finalize().into_bytes().into();
    assert_eq!(by_hand.finish(), expected);
}

#[test]
fn check_tells_valid_edited_and_unknown_key() {
    let keys = SealKeys::from_keys(vec![key("new", 1), key("old", 2)]).unwrap();
    let hash = [5u8; 32];
    let old_seal = seal_chunk(keys.get("old").unwrap(), &hash);
    assert_eq!(old_seal.key_id, "old");
    assert_eq!(
        check(&keys, &old_seal, |k| chunk_tag(k, &hash)),
        SealCheck::Valid
    );
    assert_eq!(
        check(&keys, &old_seal, |k| chunk_tag(k, &[6; 32])),
        SealCheck::Mismatch
    );
    // Another key's tag under the same id does not pass.
    let forged = Seal {
        key_id: "old".into(),
        mac: chunk_tag(&key("old", 3), &hash),
    };
    assert_eq!(
        check(&keys, &forged, |k| chunk_tag(k, &hash)),
        SealCheck::Mismatch
    );
    let unknown = Seal {
        key_id: "gone".into(),
        mac: [0; 32],
    };
    assert_eq!(
        check(&keys, &unknown, |k| chunk_tag(k, &hash)),
        SealCheck::UnknownKey("gone".into())
    );
}

#[test]
fn every_start_field_is_sealed() {
    let k = key("a", 1);
    let s = crate::recording::op::tests::sample_session(Uuid::new_v4());
    let base = start_tag(&k, &s);
    let edits: Vec<Edit<SessionRecord>> = vec![
        ("id", Box::new(|s| s.id = Uuid::new_v4())),
        ("ssm_session_id", Box::new(|s| s.ssm_session_id = None)),
        ("user", Box::new(|s| s.user = "mallory".into())),
        (
            "auth_method",
            Box::new(|s| s.auth_method = crate::recording::AuthKind::PublicKey),
        ),
        (
            "key_fingerprint",
            Box::new(|s| s.key_fingerprint = Some("SHA256:x".into())),
        ),
        ("cert_key_id", Box::new(|s| s.cert_key_id = None)),
        ("cert_serial", Box::new(|s| s.cert_serial = Some(1))),
        (
            "cert_ca_fingerprint",
            Box::new(|s| s.cert_ca_fingerprint = None),
        ),
        (
            "source_ip",
            Box::new(|s| s.source_ip = "192.0.2.8".parse().unwrap()),
        ),
        ("source_port", Box::new(|s| s.source_port = 1)),
        ("client_version", Box::new(|s| s.client_version = None)),
        ("target_id", Box::new(|s| s.target_id = "mi-1".into())),
        ("target_name", Box::new(|s| s.target_name = None)),
        (
            "document",
            Box::new(|s| s.document = Some("AWS-Other".into())),
        ),
        (
            "parameters",
            Box::new(|s| s.parameters = Some("{ }".into())),
        ),
        (
            "justification",
            Box::new(|s| s.justification = Some("INC-2".into())),
        ),
        ("aws_reason", Box::new(|s| s.aws_reason = None)),
        (
            "decision",
            Box::new(|s| s.decision = crate::recording::Decision::Deny),
        ),
        ("policy_ids", Box::new(|s| s.policy_ids.push("p".into()))),
        (
            "kind",
            Box::new(|s| s.kind = crate::recording::SessionKind::Exec),
        ),
        (
            "recording",
            Box::new(|s| s.recording = crate::recording::RecordingMode::Metadata),
        ),
        (
            "started_at",
            Box::new(|s| s.started_at += chrono::Duration::microseconds(1)),
        ),
    ];
    for (field, edit) in edits {
        let mut t = s.clone();
        edit(&mut t);
        assert_ne!(start_tag(&k, &t), base, "{field} is not sealed");
    }
    // Moving a value from one optional field to the next changes the tag.
    let mut a = s.clone();
    (a.justification, a.aws_reason) = (Some("x".into()), None);
    let mut b = s.clone();
    (b.justification, b.aws_reason) = (None, Some("x".into()));
    assert_ne!(start_tag(&k, &a), start_tag(&k, &b));
    // The end, head and seal are not start fields.
    let mut t = s.clone();
    t.chain_head = Some([1; 32]);
    t.start_seal = Some(seal_start(&k, &s));
    assert_eq!(start_tag(&k, &t), base);
}

#[test]
fn every_end_field_is_sealed() {
    let k = key("a", 1);
    let id = Uuid::new_v4();
    let e = SessionEnd {
        ended_at: crate::recording::now(),
        reason: EndReason::TargetExited,
        exit_status: Some(3),
        bytes_in: 10,
        bytes_out: 20,
        chain_head: Some([4; 32]),
        chunk_count: Some(5),
        seal: None,
        cause: None,
    };
    let base = end_tag(&k, id, &e, e.chain_head.as_ref());
    assert_eq!(seal_end(&k, id, &e).mac, base);
    let edits: Vec<Edit<SessionEnd>> = vec![
        (
            "ended_at",
            Box::new(|e| e.ended_at += chrono::Duration::seconds(1)),
        ),
        ("reason", Box::new(|e| e.reason = EndReason::ClientClosed)),
        ("exit_status", Box::new(|e| e.exit_status = Some(0))),
        ("exit_status none", Box::new(|e| e.exit_status = None)),
        ("bytes_in", Box::new(|e| e.bytes_in = 11)),
        ("bytes_out", Box::new(|e| e.bytes_out = 21)),
        ("chunk_count", Box::new(|e| e.chunk_count = Some(4))),
        ("chain_head", Box::new(|e| e.chain_head = Some([5; 32]))),
        ("chain_head none", Box::new(|e| e.chain_head = None)),
    ];
    for (field, edit) in edits {
        let mut t = e.clone();
        edit(&mut t);
        assert_ne!(
            end_tag(&k, id, &t, t.chain_head.as_ref()),
            base,
            "{field} is not sealed"
        );
    }
    assert_ne!(end_tag(&k, Uuid::new_v4(), &e, e.chain_head.as_ref()), base);
}

#[test]
fn audit_seals_cover_the_event_and_its_place() {
    let k = key("a", 1);
    let e = AuditEvent {
        id: Uuid::new_v4(),
        at: crate::recording::now(),
        kind: AuditKind::SessionEnd,
        user: Some("alice".into()),
        session_id: Some(Uuid::new_v4()),
        source_ip: Some("192.0.2.1".parse().unwrap()),
        detail: r#"{"reason":"target_exited"}"#.into(),
        link: None,
    };
    let chain = Uuid::new_v4();
    let base = audit_tag(&k, &e, chain, 7);
    assert_ne!(audit_tag(&k, &e, chain, 8), base);
    assert_ne!(audit_tag(&k, &e, Uuid::new_v4(), 7), base);
    let edits: Vec<Edit<AuditEvent>> = vec![
        ("id", Box::new(|e| e.id = Uuid::new_v4())),
        (
            "at",
            Box::new(|e| e.at += chrono::Duration::microseconds(1)),
        ),
        ("kind", Box::new(|e| e.kind = AuditKind::Admin)),
        ("user", Box::new(|e| e.user = None)),
        ("session_id", Box::new(|e| e.session_id = None)),
        ("source_ip", Box::new(|e| e.source_ip = None)),
        (
            "detail",
            Box::new(|e| e.detail = r#"{"reason":"error"}"#.into()),
        ),
    ];
    for (field, edit) in edits {
        let mut t = e.clone();
        edit(&mut t);
        assert_ne!(audit_tag(&k, &t, chain, 7), base, "{field} is not sealed");
    }
    // Different domains: a chunk tag never checks as another kind of tag.
    assert_ne!(chunk_tag(&k, &[0; 32]), audit_tag(&k, &e, chain, 0));
}
