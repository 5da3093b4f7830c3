//! The admin listener end to end: `/healthz`, `/readyz` and `/metrics`
//! (parsed with a Prometheus text-format parser) while the real `ssh`
//! runs a script of sessions, and `/readyz` through a database outage
//! with the spool over its budget.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::gateway::*;
use prometheus_parse::{Scrape, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A GET over a fresh connection: (status, body).
/// The metrics are the process's: under `cargo test` (one process for the
/// whole binary, tests on threads) one test's refusals would show in
/// another's deltas, so the tests here take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_string(&mut response))
        .await
        .expect("answer in time")
        .expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, body.to_owned())
}

/// Every sample of a scrape, keyed by name and sorted labels; histograms
/// by their count (`NAME_count`).
type Samples = BTreeMap<(String, String), f64>;

async fn scrape(addr: SocketAddr) -> Samples {
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    let parsed = Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text");
    let mut out = Samples::new();
    for s in parsed.samples {
        let labels: BTreeMap<_, _> = s.labels.iter().collect();
        let labels = labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let (name, value) = match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => (s.metric, v),
            Value::Histogram(buckets) => (
                format!("{}_count", s.metric),
                buckets.last().map_or(0.0, |b| b.count),
            ),
            Value::Summary(_) => continue,
        };
        out.insert((name, labels), value);
    }
    out
}

fn value(samples: &Samples, name: &str, labels: &str) -> f64 {
    samples
        .get(&(name.to_owned(), labels.to_owned()))
        .copied()
        .unwrap_or(0.0)
}

/// How much each sample of `after` grew since `before`, for `name`
/// (zero deltas left out).
fn deltas(before: &Samples, after: &Samples, name: &str) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter(|((n, _), _)| n == name)
        .map(|((n, l), v)| (l.clone(), v - value(before, n, l)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

fn map(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

const ADMIN: &str = "[admin]\nlisten = \"127.0.0.1:0\"\n";

/// `ssh -W db-1:80` through the gateway: one HTTP request.
async fn forward_http(fx: &Fixture) {
    let mut cmd = fx.ssh("alice", "alice");
    cmd.args(["-W", "db-1:80"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("ssh -W");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"GET / HTTP/1.1\r\nHost: db-1\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut body = String::new();
    let mut stdout = child.stdout.take().expect("stdout");
    tokio::time::timeout(Duration::from_secs(20), stdout.read_to_string(&mut body))
        .await
        .expect("the forward answers")
        .expect("read");
    assert!(body.contains("hello from db-1"), "{body}");
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
}

#[tokio::test]
async fn metrics_count_a_script_of_sessions() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let fx = Fixture::start_with(false, None, ADMIN).await;
    let admin = fx.gw.admin_addr.expect("the admin listener runs");

    assert_eq!(get(admin, "/healthz").await, (200, "ok\n".to_owned()));
    let (status, body) = get(admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "ssh: ok\npolicies: ok\ndraining: ok\ndatabase: ok\nready\n"
    );
    assert_eq!(get(admin, "/nope").await.0, 404);

    let before = scrape(admin).await;

    // Two commands, one denied by policy, one failed login, one forward.
    for _ in 0..2 {
        let out = fx.echo_on("web-1", 30).await;
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "ok\n",
            "{}",
            show(&out)
        );
    }
    let out = fx.echo_on("db-1", 30).await;
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    let out = output(fx.ssh("stranger", "alice+web-1"), 30).await;
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        show(&out)
    );
    forward_http(&fx).await;

    // Every session ended and the connections are gone.
    let (_, sessions) = fx.sessions().await;
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    let mut after = scrape(admin).await;
    for _ in 0..100 {
        if value(&after, "ssmgate_preauth_connections", "") == 0.0
            && deltas(&before, &after, "ssmgate_sessions_live").is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = scrape(admin).await;
    }

    assert_eq!(
        deltas(&before, &after, "ssmgate_sessions_opened_total"),
        map(&[("kind=exec", 2.0), ("kind=port", 1.0)])
    );
    let ended = deltas(&before, &after, "ssmgate_sessions_ended_total");
    assert_eq!(
        ended,
        map(&[
            ("kind=exec,reason=target_exited", 2.0),
            ("kind=port,reason=client_closed", 1.0)
        ]),
        "{ended:?}"
    );
    assert_eq!(deltas(&before, &after, "ssmgate_sessions_live"), map(&[]));
    assert_eq!(value(&after, "ssmgate_preauth_connections", ""), 0.0);
    assert_eq!(
        deltas(&before, &after, "ssmgate_policy_decisions_total"),
        map(&[
            ("action=exec,outcome=allow", 2.0),
            ("action=exec,outcome=deny", 1.0),
            ("action=port_forward,outcome=allow", 1.0),
        ])
    );
    assert_eq!(
        deltas(&before, &after, "ssmgate_policy_decision_seconds_count"),
        map(&[("action=exec", 3.0), ("action=port_forward", 1.0)])
    );
    // Each login answers the reason prompt first (keyboard-interactive,
    // then the key); the stranger's key is refused.
    assert_eq!(
        deltas(&before, &after, "ssmgate_auth_attempts_total"),
        map(&[
            ("method=keyboard-interactive,outcome=partial", 5.0),
            ("method=publickey,outcome=accepted", 4.0),
            ("method=publickey,outcome=rejected", 1.0),
        ])
    );
    let ssm = deltas(&before, &after, "ssmgate_ssm_api_calls_total");
    assert_eq!(
        ssm.get("operation=StartSession,outcome=ok"),
        Some(&3.0),
        "{ssm:?}"
    );
    assert_eq!(
        deltas(&before, &after, "ssmgate_ssm_api_call_seconds_count").get("operation=StartSession"),
        Some(&3.0)
    );
    // Bytes as the records count them.
    let bytes = deltas(&before, &after, "ssmgate_session_bytes_total");
    let recorded = |kind: ssmgate::recording::SessionKind| {
        sessions
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| s.end.as_ref().expect("ended"))
            .fold((0, 0), |(i, o), e| (i + e.bytes_in, o + e.bytes_out))
    };
    let (exec_in, exec_out) = recorded(ssmgate::recording::SessionKind::Exec);
    let (port_in, port_out) = recorded(ssmgate::recording::SessionKind::Port);
    assert_eq!(exec_out, 6, "two times ok\\n");
    assert!(port_in > 0 && port_out > 0);
    let expected: BTreeMap<String, f64> = [
        ("direction=in,kind=exec", exec_in),
        ("direction=out,kind=exec", exec_out),
        ("direction=in,kind=port", port_in),
        ("direction=out,kind=port", port_out),
    ]
    .into_iter()
    .filter(|(_, v)| *v > 0)
    .map(|(k, v)| (k.to_owned(), v as f64))
    .collect();
    assert_eq!(bytes, expected);
    assert!(deltas(&before, &after, "ssmgate_refusals_total").is_empty());
    assert_eq!(value(&after, "ssmgate_database_up", ""), 1.0);
    assert_eq!(value(&after, "ssmgate_spool_bytes", ""), 0.0);
    assert_eq!(value(&after, "ssmgate_reason_grants_live", ""), 0.0);

    // A reason grant shows once the cached count is renewed (5 s).
    let mut grant = fx.ssh("alice", "alice");
    grant.arg("reason 'INC-7 metrics test'");
    let out = output(grant, 30).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let mut live = 0.0;
    for _ in 0..80 {
        live = value(&scrape(admin).await, "ssmgate_reason_grants_live", "");
        if live == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(live, 1.0);

    // Draining: not ready, still alive.
    fx.gw.readiness.set_draining();
    let (status, body) = get(admin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("draining: fail (draining"), "{body}");
    assert!(body.ends_with("not ready\n"), "{body}");
    assert_eq!(get(admin, "/healthz").await.0, 200);
}

#[tokio::test]
async fn readyz_fails_while_the_database_is_down_beyond_the_spool_budget() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let cluster = common::postgres::PgCluster::start().expect("postgres");
    let url = cluster.fresh_database().await;
    let extra = format!(
        "{ADMIN}ready_spool_mib = 1\nready_spool_age_secs = 1\n\n\
         [recording]\nfail_closed = false\nwrite_timeout_secs = 1\n"
    );
    let fx = Fixture::start_with(false, Some(url), &extra).await;
    let admin = fx.gw.admin_addr.expect("the admin listener runs");
    let (status, body) = get(admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");

    // On a busy machine a start-up write can outlast the 1 s write timeout
    // and be spooled; wait until everything queued is written or spooled
    // and the spool replayed, so that it is empty when the database goes
    // away.
    fx.gw.recorder.flush().await;
    for _ in 0..100 {
        if fx.gw.recorder.stats().spool_bytes == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(fx.gw.recorder.stats().spool_bytes, 0, "the spool drains");
    cluster.stop().expect("stop postgres");
    // Down, nothing spooled yet: within the budget (the ping's answer is
    // reused for a second).
    let mut body = String::new();
    for _ in 0..50 {
        let (status, b) = get(admin, "/readyz").await;
        body = b;
        if body.contains("database: ok (unreachable, spooling within budget") {
            assert_eq!(status, 200, "{body}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(body.contains("spooling within budget"), "{body}");

    // A session while it is down (fail_closed is off) is spooled …
    let out = fx.echo_on("web-1", 30).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\n",
        "{}",
        show(&out)
    );
    for _ in 0..300 {
        if fx.gw.recorder.stats().spool_ops > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fx.gw.recorder.stats().spool_ops > 0);
    // … and once its oldest write is over a second old, not ready.
    let mut status = 0;
    for _ in 0..100 {
        (status, body) = get(admin, "/readyz").await;
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("database: fail (unreachable, spool over budget"),
        "{body}"
    );
    assert_eq!(get(admin, "/healthz").await.0, 200);
    let m = scrape(admin).await;
    assert_eq!(value(&m, "ssmgate_database_up", ""), 0.0);
    assert!(value(&m, "ssmgate_spool_bytes", "") > 0.0, "{m:?}");
    assert!(
        value(&m, "ssmgate_spool_oldest_age_seconds", "") >= 1.0,
        "{m:?}"
    );

    // The database is back: the spool drains and the replica is ready.
    cluster.restart().expect("start postgres");
    for _ in 0..300 {
        (status, body) = get(admin, "/readyz").await;
        if status == 200 && body.contains("database: ok\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "ssh: ok\npolicies: ok\ndraining: ok\ndatabase: ok\nready\n"
    );
    tokio::time::timeout(Duration::from_secs(60), fx.gw.recorder.flush())
        .await
        .expect("the spool drains");
    let m = scrape(admin).await;
    assert_eq!(value(&m, "ssmgate_spool_bytes", ""), 0.0);
    assert_eq!(value(&m, "ssmgate_spool_oldest_age_seconds", ""), 0.0);
}

#[tokio::test]
async fn preauth_connections_and_refusals_are_counted() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let fx = Fixture::start_opts(Options {
        extra: ADMIN.to_owned(),
        server: "max_startups_per_source = 2".to_owned(),
        ..Options::default()
    })
    .await;
    let admin = fx.gw.admin_addr.expect("the admin listener runs");
    let before = scrape(admin).await;
    let banner = async |conn: &mut tokio::net::TcpStream| {
        let mut buf = [0u8; 64];
        tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read")
    };
    // Two silent connections hold this address's two slots …
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = tokio::net::TcpStream::connect(fx.gw.addr)
            .await
            .expect("connect");
        assert!(banner(&mut conn).await > 0, "the SSH banner");
        held.push(conn);
    }
    let after = scrape(admin).await;
    assert_eq!(
        value(&after, "ssmgate_preauth_connections", "")
            - value(&before, "ssmgate_preauth_connections", ""),
        2.0
    );
    // … so a third is dropped before the handshake.
    let mut third = tokio::net::TcpStream::connect(fx.gw.addr)
        .await
        .expect("connect");
    assert_eq!(banner(&mut third).await, 0, "closed without a banner");
    let after = scrape(admin).await;
    assert_eq!(
        deltas(&before, &after, "ssmgate_refusals_total"),
        map(&[("limit=max_startups_per_source", 1.0)])
    );
    // Their slots are given back when they go away.
    drop(held);
    let mut now = 0.0;
    for _ in 0..100 {
        now = value(&scrape(admin).await, "ssmgate_preauth_connections", "");
        if now == value(&before, "ssmgate_preauth_connections", "") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(now, value(&before, "ssmgate_preauth_connections", ""));
}
