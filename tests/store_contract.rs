//! The recording store contract, run against a real SQLite file and a real
//! Postgres (a throwaway cluster started from the local binaries, one per
//! test binary, a fresh database per test). Also: unsupported URLs and the
//! in-memory SQLite store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "store_contract/cases.rs"]
mod cases;
#[path = "store_contract/cluster.rs"]
mod cluster;
mod common;
#[path = "store_contract/fixtures.rs"]
mod fixtures;
#[path = "store_contract/sealing.rs"]
mod sealing;

use std::future::Future;
use std::time::Duration;

use fixtures::{Backend, Db};
use ssmgate::recording::{StoreError, connect};

/// No test may take longer than this.
const LIMIT: Duration = Duration::from_secs(60);

async fn within<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test finished in time");
}

/// A fresh SQLite file (kept alive by the returned guard).
fn sqlite_db() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("recordings.db").display());
    (
        Db {
            backend: Backend::Sqlite,
            url,
        },
        dir,
    )
}

/// A fresh database in the shared throwaway cluster.
async fn postgres_db() -> Db {
    let cluster = tokio::task::spawn_blocking(common::postgres::shared)
        .await
        .expect("cluster start task");
    Db {
        backend: Backend::Postgres,
        url: cluster.fresh_database().await,
    }
}

/// Runs each contract case on both backends.
macro_rules! contract {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (db, _dir) = super::sqlite_db();
                    super::within(super::$case(&db)).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::within(async {
                        let db = super::postgres_db().await;
                        super::$case(&db).await;
                    })
                    .await;
                }
            )+
        }
    };
}

use cases::*;
use cluster::*;
use sealing::*;

contract!(
    seals_and_audit_chains_round_trip,
    keyed_tampering_detected,
    replicas_keep_separate_audit_chains,
    round_trip,
    list_filters,
    chunks_order_and_idempotency,
    audit_events,
    tampering_detected,
    concurrent_writers,
    reconnect_keeps_data,
    chunk_batches_are_all_or_nothing,
    mixed_batches_are_all_or_nothing,
    reason_grants,
    cluster_rows,
);

#[tokio::test]
async fn unsupported_url_is_a_clear_error() {
    for url in ["mysql://root:hunter2@db:3306/gw", "mariadb://x", "nonsense"] {
        let err = connect(url).await.err().expect("refused");
        assert!(
            matches!(err, StoreError::UnsupportedUrl { .. }),
            "{url}: {err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("postgres://") && text.contains("sqlite:"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "password leaked: {text}");
    }
    let err = connect("mysql://root:hunter2@db:3306/gw")
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "unsupported database URL scheme \"mysql\": use postgres://user@host/db, \
         sqlite://path/to/file.db or sqlite::memory:"
    );
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres:pw@127.0.0.1:{port}/db");
    let err = tokio::time::timeout(Duration::from_secs(3), connect(&url))
        .await
        .expect("fails in time")
        .err()
        .expect("refused");
    assert!(err.is_unavailable(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("Connection refused"), "says why: {text}");
    assert!(!text.contains("pw"), "{text}");
}

#[tokio::test]
async fn in_memory_sqlite_works_across_calls() {
    within(async {
        let db = Db {
            backend: Backend::Sqlite,
            url: "sqlite::memory:".into(),
        };
        let store = db.store().await;
        let s = fixtures::full_session("alice", "i-01", fixtures::t0());
        store.insert_session(&s).await.unwrap();
        // Several calls (and tasks) see the same single database.
        let (chunks, _) = fixtures::chain(&s, 3);
        let mut tasks = Vec::new();
        for c in chunks.clone() {
            let store = std::sync::Arc::clone(&store);
            tasks.push(tokio::spawn(async move { store.append_chunk(&c).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(store.chunks(s.id).await.unwrap(), chunks);
        assert_eq!(store.get_session(s.id).await.unwrap().unwrap().id, s.id);
    })
    .await;
}

#[tokio::test]
async fn sqlite_file_is_created_and_a_missing_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("new.db").display());
    connect(&url).await.unwrap().ping().await.unwrap();
    assert!(dir.path().join("new.db").is_file());
    let bad = format!("sqlite://{}", dir.path().join("no/such/dir/x.db").display());
    let err = connect(&bad).await.err().expect("refused");
    assert!(matches!(err, StoreError::SqliteOpen { .. }), "{err:?}");
    assert!(err.to_string().contains("no/such/dir/x.db"), "{err}");
}
