//! `ssmgate sessions verify` against tampering by SQL: every attack of the
//! "verify misses most tampering" issue is made on a sealed database (the
//! `sessions_cli` fixture, sealed with key `k1`), and verify must exit 1
//! and name what differs. Before keyed sealing, every one of these passed
//! verification (the chain covered output chunks only, unkeyed, with its
//! head in the row it protected). Also: key rotation, a missing or unknown
//! key (exit 3), and rows recorded before sealing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "sessions_cli/fixture.rs"]
mod fixture;

use fixture::{Bind, Fixture, fixture, key, text};
use ssmgate::recording::codec::{decode_events, encode_events};
use ssmgate::recording::{
    ChainWriter, SealKey, SealKeys, SessionKind, SessionRecord, connect, now, verify,
};

/// Runs `verify ARGS`, expects exit status 1; returns stdout.
fn broken(f: &Fixture, args: &[&str]) -> String {
    let out = f.run(&[&["verify"], args].concat());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}{stderr}");
    assert!(stderr.contains("verification failed"), "{stderr}");
    stdout
}

/// Asserts that `out` has a `BROKEN {id}: …` line containing `want`.
fn names(out: &str, id: impl std::fmt::Display, want: &str) {
    let prefix = format!("BROKEN {id}: ");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&prefix) && l.contains(want)),
        "no {prefix}…{want:?} line in\n{out}"
    );
}

fn shell_id(f: &Fixture) -> String {
    f.shell.id.to_string()
}

#[test]
fn edited_session_fields_break_the_start_or_end_seal() {
    let start = "metadata MAC mismatch (start seal)";
    let end = "metadata MAC mismatch (end seal)";
    let cases: [(&str, Bind, &str, Option<&str>); 12] = [
        (
            "justification",
            Bind::Text("routine check".into()),
            start,
            None,
        ),
        (
            "aws_reason",
            Bind::Text("ssmgate alice: routine".into()),
            start,
            None,
        ),
        (
            "user_name",
            Bind::Text("mallory".into()),
            start,
            Some("user is \"mallory\" but the sealed session_start event says \"alice\""),
        ),
        (
            "target_id",
            Bind::Text("i-0db-1".into()),
            start,
            Some("target_id is \"i-0db-1\" but the sealed session_start event says \"i-0web-1\""),
        ),
        (
            "started_at",
            Bind::Text("2020-01-01T00:00:00.000000Z".into()),
            start,
            None,
        ),
        (
            "policy_ids",
            Bind::Text(r#"["ops-can-shell"]"#.into()),
            start,
            None,
        ),
        ("decision", Bind::Text("deny".into()), start, None),
        (
            "exit_status",
            Bind::Int(0),
            end,
            Some("exit_status is 0 but the sealed session_end event says 3"),
        ),
        (
            "bytes_out",
            Bind::Int(10),
            end,
            Some("bytes_out is 10 but the sealed session_end event says 1258291"),
        ),
        (
            "bytes_in",
            Bind::Int(0),
            end,
            Some("bytes_in is 0 but the sealed session_end event says 1234"),
        ),
        (
            "end_reason",
            Bind::Text("client_closed".into()),
            end,
            Some("end_reason is \"client_closed\""),
        ),
        (
            "ended_at",
            Bind::Text("2020-01-01T00:00:00.000000Z".into()),
            end,
            None,
        ),
    ];
    for (column, value, seal, hint) in cases {
        let f = fixture();
        let n = f.sql(
            &format!("UPDATE sessions SET {column} = ?2 WHERE id = ?1"),
            f.shell.id,
            &[value],
        );
        assert_eq!(n, 1, "{column}");
        let out = broken(&f, &[&shell_id(&f)]);
        names(&out, f.shell.id, seal);
        if let Some(hint) = hint {
            names(&out, f.shell.id, hint);
        }
        // The other sessions are untouched.
        let all = broken(&f, &["--all"]);
        assert!(
            all.contains("verified 3 sessions: 1 broken"),
            "{column}: {all}"
        );
    }
}

#[test]
fn deleting_a_session_is_named_by_its_audit_events() {
    let f = fixture();
    f.sql(
        "DELETE FROM session_chunks WHERE session_id = ?1",
        f.shell.id,
        &[],
    );
    assert_eq!(
        f.sql("DELETE FROM sessions WHERE id = ?1", f.shell.id, &[]),
        1
    );
    let out = broken(&f, &["--all"]);
    let chain = format!("audit chain {}", f.chain);
    names(
        &out,
        &chain,
        &format!(
            "session {} referenced by audit seq 2 (session_start) is missing",
            f.shell.id
        ),
    );
    names(
        &out,
        &chain,
        &format!(
            "session {} referenced by audit seq 3 (session_end) is missing",
            f.shell.id
        ),
    );
    assert!(out.contains("verified 2 sessions: 0 broken"), "{out}");
}

#[test]
fn deleting_all_chunks_is_caught_whatever_the_head() {
    let id = |f: &Fixture| f.shell.id;
    // Chunks deleted, head left: the sealed count tells.
    let f = fixture();
    assert_eq!(
        f.sql(
            "DELETE FROM session_chunks WHERE session_id = ?1",
            id(&f),
            &[]
        ),
        3
    );
    names(
        &broken(&f, &[&shell_id(&f)]),
        id(&f),
        "all 3 chunks missing (the end seal says 3)",
    );
    // Chunks deleted and the head nulled, or replaced.
    for head in [None, Some(vec![7u8; 32])] {
        let f = fixture();
        f.sql(
            "DELETE FROM session_chunks WHERE session_id = ?1",
            id(&f),
            &[],
        );
        match &head {
            None => f.sql(
                "UPDATE sessions SET chain_head = NULL WHERE id = ?1",
                id(&f),
                &[],
            ),
            Some(h) => f.sql(
                "UPDATE sessions SET chain_head = ?2 WHERE id = ?1",
                id(&f),
                &[Bind::Blob(h.clone())],
            ),
        };
        let out = broken(&f, &[&shell_id(&f)]);
        names(&out, id(&f), "metadata MAC mismatch (end seal)");
        names(
            &out,
            id(&f),
            "stored chunks is 0 but the sealed session_end event says 3",
        );
    }
}

#[test]
fn truncation_is_caught_with_the_head_kept_or_moved_back() {
    let f = fixture();
    f.sql(
        "DELETE FROM session_chunks WHERE session_id = ?1 AND seq = 2",
        f.shell.id,
        &[],
    );
    names(
        &broken(&f, &[&shell_id(&f)]),
        f.shell.id,
        "1 chunk missing after chunk 1 (the end seal says 3)",
    );

    let f = fixture();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let chunks = rt.block_on(async {
        connect(&f.url)
            .await
            .unwrap()
            .chunks(f.shell.id)
            .await
            .unwrap()
    });
    f.sql(
        "DELETE FROM session_chunks WHERE session_id = ?1 AND seq = 2",
        f.shell.id,
        &[],
    );
    f.sql(
        "UPDATE sessions SET chain_head = ?2 WHERE id = ?1",
        f.shell.id,
        &[Bind::Blob(chunks[1].hash.to_vec())],
    );
    let out = broken(&f, &[&shell_id(&f)]);
    names(&out, f.shell.id, "metadata MAC mismatch (end seal)");
    names(
        &out,
        f.shell.id,
        "stored chunks is 2 but the sealed session_end event says 3",
    );
    // The chunk count edited to match: still the end seal.
    f.sql(
        "UPDATE sessions SET chunk_count = 2 WHERE id = ?1",
        f.shell.id,
        &[],
    );
    names(
        &broken(&f, &[&shell_id(&f)]),
        f.shell.id,
        "chunk count or chain head was edited",
    );
}

#[test]
fn recomputing_the_unkeyed_chain_after_an_edit_is_caught() {
    let f = fixture();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(connect(&f.url)).unwrap();
    let chunks = rt.block_on(store.chunks(f.shell.id)).unwrap();
    // The old attack: edit chunk 1's output, then recompute every hash
    // from there and the head, as anyone with the database could.
    let mut events = decode_events(&f.events(f.shell.id, 1)).unwrap();
    events[0].data = bytes::Bytes::from_static(b"nothing happened\r\n");
    let mut w = ChainWriter::resume(&chunks[0]);
    let forged = [
        w.seal(chunks[1].created_at, events),
        w.seal(chunks[2].created_at, chunks[2].events.clone()),
    ];
    for c in &forged {
        let n = f.sql(
            "UPDATE session_chunks SET events = ?3, prev_hash = ?4, hash = ?5 WHERE session_id = ?1 AND seq = ?2",
            f.shell.id,
            &[Bind::Int(c.seq), Bind::Blob(encode_events(&c.events)), Bind::Blob(c.prev_hash.to_vec()), Bind::Blob(c.hash.to_vec())],
        );
        assert_eq!(n, 1);
    }
    f.sql(
        "UPDATE sessions SET chain_head = ?2 WHERE id = ?1",
        f.shell.id,
        &[Bind::Blob(w.head().unwrap().to_vec())],
    );
    // The unkeyed chain holds: this passed verification before sealing.
    let s = rt.block_on(store.get_session(f.shell.id)).unwrap().unwrap();
    let now_stored = rt.block_on(store.chunks(f.shell.id)).unwrap();
    verify(&s, &now_stored).unwrap();
    let out = broken(&f, &[&shell_id(&f)]);
    names(
        &out,
        f.shell.id,
        "chain broken at chunk 1: its hash does not match its seal",
    );
    names(&out, f.shell.id, "end seal");
}

#[test]
fn edited_deleted_or_moved_audit_rows_are_named() {
    let chain = |f: &Fixture| format!("audit chain {}", f.chain);
    let f = fixture();
    let n = f.sql(
        "UPDATE audit_events SET detail = '{\"reason\":\"client_closed\"}' WHERE session_id = ?1 AND chain_seq = 3",
        f.shell.id,
        &[],
    );
    assert_eq!(n, 1);
    let out = broken(&f, &["--all"]);
    names(&out, chain(&f), "row seq 3 altered");
    // `verify ID` checks the session's own audit events too.
    names(
        &broken(&f, &[&shell_id(&f)]),
        f.shell.id,
        "session_end, chain",
    );

    let f = fixture();
    f.sql(
        "DELETE FROM audit_events WHERE session_id = ?1 AND chain_seq = 1",
        f.shell.id,
        &[],
    );
    names(&broken(&f, &["--all"]), chain(&f), "seq 1 missing");

    let f = fixture();
    f.sql(
        "DELETE FROM audit_events WHERE session_id = ?1 AND chain_seq IN (0, 1)",
        f.shell.id,
        &[],
    );
    names(&broken(&f, &["--all"]), chain(&f), "seq 0–1 missing");

    // Swapping two rows' places.
    let f = fixture();
    f.sql(
        "UPDATE audit_events SET chain_seq = 1 - chain_seq WHERE session_id = ?1 AND chain_seq IN (0, 1)",
        f.shell.id,
        &[],
    );
    let out = broken(&f, &["--all"]);
    names(&out, chain(&f), "row seq 0 altered");
    names(&out, chain(&f), "row seq 1 altered");
}

#[test]
fn stripping_the_seals_does_not_make_a_session_unsealed() {
    let f = fixture();
    f.sql(
        "UPDATE sessions SET start_seal = NULL, end_seal = NULL WHERE id = ?1",
        f.shell.id,
        &[],
    );
    f.sql(
        "UPDATE session_chunks SET seal = NULL WHERE session_id = ?1",
        f.shell.id,
        &[],
    );
    f.sql(
        "UPDATE sessions SET justification = 'routine' WHERE id = ?1",
        f.shell.id,
        &[],
    );
    let out = broken(&f, &[&shell_id(&f)]);
    names(&out, f.shell.id, "start seal missing (removed?)");
    names(&out, f.shell.id, "end seal missing (removed?)");
    names(&out, f.shell.id, "chain broken at chunk 0: seal missing");
}

#[test]
fn an_ended_session_made_to_look_live_is_caught() {
    let f = fixture();
    f.sql(
        "UPDATE sessions SET ended_at = NULL, end_reason = NULL, exit_status = NULL, bytes_in = NULL, bytes_out = NULL, end_seal = NULL WHERE id = ?1",
        f.shell.id,
        &[],
    );
    f.sql(
        "DELETE FROM session_chunks WHERE session_id = ?1 AND seq = 2",
        f.shell.id,
        &[],
    );
    names(
        &broken(&f, &[&shell_id(&f)]),
        f.shell.id,
        "end removed: the sealed session_end audit event",
    );
}

/// Writes a key file with these keys; returns its path.
fn key_file(f: &Fixture, name: &str, keys: Vec<SealKey>) -> std::path::PathBuf {
    let path = f.path.with_file_name(name);
    SealKeys::from_keys(keys).unwrap().write_new(&path).unwrap();
    path
}

#[test]
fn rotated_keys_verify_and_missing_keys_exit_3() {
    let f = fixture();
    let run = |key_file: &std::path::Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ssmgate"))
            .args([
                "sessions",
                "verify",
                "--all",
                "--database",
                &f.url,
                "--key-file",
            ])
            .arg(key_file)
            .env_remove("SSMGATE_DATABASE_URL")
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        (out.status.code(), stdout, stderr)
    };
    // Rotated: a new key seals from now on, k1 still verifies.
    let new = SealKey::new("k2", [0x11; 32]).unwrap();
    let both = key_file(&f, "both.key", vec![new.clone(), key()]);
    let (code, out, err) = run(&both);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("verified 3 sessions: 0 broken"), "{out}");
    // Only the new key: nothing can be checked, and that is said.
    let only_new = key_file(&f, "new.key", vec![new]);
    let (code, out, err) = run(&only_new);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(
        out.contains(&format!(
            "UNKNOWN-KEY {}: sealed with key \"k1\", which the key file does not list",
            f.shell.id
        )),
        "{out}"
    );
    assert!(
        err.contains("(\"k1\")") && err.contains("add those keys"),
        "{err}"
    );
    // No key at all.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ssmgate"))
        .args([
            "sessions",
            "verify",
            "--all",
            "--database",
            &f.url,
            "--config",
            "/nonexistent.toml",
        ])
        .env_remove("SSMGATE_DATABASE_URL")
        .env_remove("SSMGATE_RECORDING_KEY_FILE")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert!(
        stderr.contains("keyed verification is impossible"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
    // A key file others can read is refused.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&both, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = run(&both);
    assert_eq!(code, Some(3));
    assert!(err.contains("too open"), "{err}");
}

#[test]
fn sessions_recorded_before_sealing_are_reported_unsealed() {
    let f = fixture();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let old: SessionRecord = rt.block_on(async {
        let store = connect(&f.url).await.unwrap();
        let s = fixture::session("erin", "web-3", SessionKind::Shell, now());
        store.insert_session(&s).await.unwrap();
        let mut w = ChainWriter::new(s.id);
        let c = w.seal(now(), fixture::shell_events().remove(0));
        store.append_chunk(&c).await.unwrap();
        store.get_session(s.id).await.unwrap().unwrap()
    });
    let out = f.ok(&["verify", "--all"]);
    assert!(
        out.contains(&format!(
            "UNSEALED {} 1 chunks 4 events: recorded before keyed sealing",
            old.id
        )),
        "{out}"
    );
    assert!(
        out.contains("verified 4 sessions: 0 broken, 1 unsealed"),
        "{out}"
    );
    // Its unkeyed chain is still checked.
    f.sql(
        "UPDATE sessions SET chain_head = NULL WHERE id = ?1",
        old.id,
        &[],
    );
    names(
        &broken(&f, &[&old.id.to_string()]),
        old.id,
        "chain head does not match the last chunk",
    );
}
