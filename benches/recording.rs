//! `cargo bench --bench recording`: what session recording costs, with the
//! real OpenSSH client through a running gateway and the simulator.
//!
//! 1. Throughput: `cat` of a 64 MiB text file in a shell, recorded in full
//!    (every output byte chunked, hashed and written to SQLite) vs recorded
//!    as metadata only (no content), alternating runs in one process.
//! 2. Outage: the same `cat` while the Postgres the gateway records to is
//!    stopped: the recorder's peak memory, what went to the spool, and how
//!    long the replay took once Postgres was back (and that the chain holds).
//!
//! Set SSMGATE_BENCH_MIB to change the size and SSMGATE_BENCH_ROUNDS the
//! number of alternating rounds (default 3).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::gateway::Fixture;
use ssmgate::recording::{self, SessionFilter, SessionKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the shell prints after the cat (`echo CAT-$((40+2))`: the typed
/// line that the terminal echoes does not contain it).
const MARK: &str = "CAT-42";

fn main() {
    let mib: usize = env("SSMGATE_BENCH_MIB", 64);
    let rounds: usize = env("SSMGATE_BENCH_ROUNDS", 3);
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    runtime.block_on(run(mib, rounds));
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A text file of `mib` MiB (lines of 64 printable bytes).
fn text_file(path: &Path, mib: usize) {
    let line: Vec<u8> = (0..63u8).map(|i| b'!' + (i % 90)).chain([b'\n']).collect();
    let data: Vec<u8> = line.iter().copied().cycle().take(mib << 20).collect();
    std::fs::write(path, data).expect("write");
}

/// Runs `cat FILE` in a shell through the gateway, calling `ready` once the
/// shell answers and before the cat starts; returns the time from the cat
/// to the end mark and the bytes received.
async fn cat(fx: &Fixture, file: &Path, ready: impl FnOnce()) -> (Duration, u64) {
    let mut cmd = fx.ssh("alice", "alice+web-1");
    cmd.arg("-T")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("ssh");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = child.stdout.take().expect("stdout");
    stdin
        .write_all(b"echo READY-$((1+1))\n")
        .await
        .expect("type");
    let mut buf = vec![0u8; 1 << 16];
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("READY-2") {
        let n = out.read(&mut buf).await.expect("read");
        assert!(n > 0, "the shell ended early");
        seen.extend_from_slice(&buf[..n]);
    }
    ready();
    let start = Instant::now();
    stdin
        .write_all(format!("cat {}; echo CAT-$((40+2))\nexit\n", file.display()).as_bytes())
        .await
        .expect("type");
    let mut total = 0u64;
    let mut tail = Vec::new();
    loop {
        let n = out.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        total += n as u64;
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 64 {
            tail.drain(..tail.len() - 64);
        }
        if String::from_utf8_lossy(&tail).contains(MARK) {
            break;
        }
    }
    let took = start.elapsed();
    // Drain the rest so ssh never blocks on a full pipe.
    while matches!(out.read(&mut buf).await, Ok(n) if n > 0) {}
    let _ = child.wait().await;
    (took, total)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn vm(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

async fn run(size_mib: usize, rounds: usize) {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("big.txt");
    text_file(&file, size_mib);
    let size = (size_mib as u64) << 20;

    let full = Fixture::start_with(false, None, "[recording]\nmode = \"full\"\n").await;
    let meta = Fixture::start_with(false, None, "[recording]\nmode = \"metadata\"\n").await;
    let (mut t_full, mut t_meta, mut t_flush) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (t, n) = cat(&meta, &file, || {}).await;
        assert!(n >= size, "got {n} bytes");
        t_meta.push(t.as_secs_f64());
        let (t, n) = cat(&full, &file, || {}).await;
        assert!(n >= size, "got {n} bytes");
        t_full.push(t.as_secs_f64());
        let flushed = Instant::now();
        full.gw.recorder.flush().await;
        t_flush.push(flushed.elapsed().as_secs_f64());
    }
    let (m_full, m_meta) = (median(t_full.clone()), median(t_meta.clone()));
    let stats = full.gw.recorder.stats();
    println!(
        "\n## Recording cost: cat of {size_mib} MiB in a shell through ssmgate ({rounds} alternating rounds, medians)\n"
    );
    println!("| recording | median | throughput | best | runs (s) |");
    println!("|---|---|---|---|---|");
    for (name, m, runs) in [
        ("metadata only (no content)", m_meta, &t_meta),
        (
            "full (content chunked, hashed, stored in SQLite)",
            m_full,
            &t_full,
        ),
    ] {
        let best = runs.iter().copied().fold(f64::MAX, f64::min);
        println!(
            "| {name} | {m:.2} s | {:.1} MB/s | {best:.2} s | {} |",
            size as f64 / m / 1e6,
            runs.iter()
                .map(|t| format!("{t:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!(
        "\nfull vs metadata: {:+.1} % time; recorder peak queue {} (budget 16 MiB); store caught up {:.2} s (median) after each session's end; ops written {}, spooled {}, failed {}",
        (m_full / m_meta - 1.0) * 100.0,
        mib(stats.peak_queued_bytes),
        median(t_flush),
        stats.written_ops,
        stats.spooled_ops,
        stats.failed_ops
    );
    drop(full);
    drop(meta);

    // The outage.
    let cluster = match common::postgres::PgCluster::start() {
        Ok(c) => c,
        Err(e) => {
            println!("\n(outage part skipped: {e})");
            return;
        }
    };
    let url = cluster.fresh_database().await;
    let fx = Fixture::start_with(
        false,
        Some(url.clone()),
        "[recording]\nmemory_limit_mib = 16\n",
    )
    .await;
    let rss_before = vm("VmRSS:");
    let (t, n) = cat(&fx, &file, || cluster.stop().expect("stop postgres")).await;
    assert!(n >= size);
    let during = fx.gw.recorder.stats();
    let hwm = vm("VmHWM:");
    cluster.restart().expect("restart postgres");
    let back = Instant::now();
    tokio::time::timeout(Duration::from_secs(600), fx.gw.recorder.flush())
        .await
        .expect("replayed");
    let replay = back.elapsed();
    let store = recording::connect(&url).await.expect("store");
    let s = store
        .list_sessions(&SessionFilter::default())
        .await
        .expect("list")
        .into_iter()
        .find(|s| s.kind == SessionKind::Shell)
        .expect("session");
    let chunks = store.chunks(s.id).await.expect("chunks");
    let verified = recording::verify(&s, &chunks).is_ok();
    let recorded: u64 = chunks
        .iter()
        .flat_map(|c| &c.events)
        .filter(|e| e.kind == recording::EventKind::Output)
        .map(|e| e.data.len() as u64)
        .sum();
    let after = fx.gw.recorder.stats();
    println!("\n## Postgres stopped during a {size_mib} MiB cat (memory_limit_mib = 16)\n");
    println!("| measurement | value |");
    println!("|---|---|");
    println!(
        "| cat time with Postgres down | {:.2} s ({:.1} MB/s) |",
        t.as_secs_f64(),
        size as f64 / t.as_secs_f64() / 1e6
    );
    println!(
        "| recorder peak queue in memory | {} |",
        mib(during.peak_queued_bytes)
    );
    println!(
        "| spooled to disk during the outage | {} in {} ops |",
        mib(during.spool_bytes),
        during.spool_ops
    );
    println!(
        "| process RSS before → peak (sim + gateway + recorder) | {} → {} |",
        mib(rss_before),
        mib(hwm)
    );
    println!(
        "| replay after Postgres came back | {:.2} s |",
        replay.as_secs_f64()
    );
    println!("| output bytes recorded / received by ssh | {recorded} / {n} |");
    println!("| chain verifies | {verified} |");
    println!("| ops failed | {} |", after.failed_ops);
}
