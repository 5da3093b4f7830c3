//! `ssmgate bench scale --sessions N [--kind port|shell|exec]`: what N
//! open, idle sessions cost the gateway (issue 14: "ten thousand sessions on
//! two cores: idle sessions cost nothing"). The simulator and the gateway
//! run as separate child processes of this executable ([`stack`]), so their
//! CPU time and RSS are read from `/proc` apart from the load client, which
//! runs here ([`client`]): one russh connection per session, opened with
//! bounded concurrency. This module owns the run and the table: the ramp
//! (open rate and latency), RSS before and with N open, idle CPU of both
//! processes, new-session latency with N open, an echo through every
//! session, the time until every session is recorded as ended after all
//! connections close at once, RSS after that, and the WARN/ERROR lines of
//! both logs. Figures are printed, not asserted, next to the issue's
//! targets. Every wait is bounded; both children are stopped and the
//! temporary directory removed at the end, also on error or Ctrl-C.

mod client;
mod stack;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;

use super::stats::percentile;
use crate::cli::ScaleKind;
use client::{Client, Open, Timing};
use stack::{Limits, Stack, children, cpu_secs, open_fds, rss_kib};

/// New sessions opened one at a time with N open.
const EXTRA_OPENS: usize = 20;
/// Bound on one open (connection, authentication, channel, first echo).
const OPEN_LIMIT: Duration = Duration::from_secs(60);
/// Bound on waiting for sessions to be recorded (opened, or ended).
const RECORD_LIMIT: Duration = Duration::from_secs(120);
/// How long after the close the gateway's RSS is read again.
const SETTLE: Duration = Duration::from_secs(60);
/// Echoes in flight at once.
const ECHOES_IN_FLIGHT: usize = 64;
/// Descriptors kept aside in every process besides the sessions'.
const RESERVED_FDS: u64 = 512;
/// The targets.
const TARGET_IDLE_CPU_PCT: f64 = 2.0;
const TARGET_KIB_PER_SESSION: f64 = 100.0;
const TARGET_NEW_SESSION_P50_MS: f64 = 50.0;
const TARGET_DRAIN: Duration = Duration::from_secs(10);

/// What `ssmgate bench scale` runs.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// Sessions to open and hold.
    pub sessions: usize,
    /// What each session is.
    pub kind: ScaleKind,
    /// Opens in flight at once during the ramp.
    pub in_flight: usize,
    /// Seconds over which idle CPU is measured.
    pub idle_secs: u64,
    /// Read the gateway's RSS again a minute after the close.
    pub settle: bool,
    /// Keep the temporary directory (configs, logs, database).
    pub keep: bool,
}

/// Runs the benchmark and prints its table; stops everything it started.
pub async fn scale(opts: ScaleOptions) -> Result<()> {
    let mut opts = opts;
    opts.sessions = opts.sessions.max(1);
    opts.in_flight = opts.in_flight.max(1);
    opts.idle_secs = opts.idle_secs.max(1);
    let (cap, limit) = fd_cap(opts.kind);
    if opts.sessions > cap {
        eprintln!(
            "ssmgate bench scale: --sessions {} capped at {cap}: the open-files limit is {limit} \
             (the soft limit raised to the hard one), and each {} session holds {} descriptors \
             in this process, 2 in the gateway and {} in the simulator, with {RESERVED_FDS} kept \
             aside; raise the hard limit (ulimit -Hn, LimitNOFILE) for more",
            opts.sessions,
            kind_name(opts.kind),
            bench_fds(opts.kind),
            sim_fds(opts.kind),
        );
        opts.sessions = cap;
    }
    let (echo_addr, echo_accepted) = client::echo_server().await?;
    let limits = Limits {
        sessions_per_user: opts.sessions + EXTRA_OPENS + 64,
        // Only the ramp's opens are unauthenticated at once (the gateway
        // keeps descriptors aside for this many).
        startups: 2 * opts.in_flight + 64,
    };
    let keep = opts.keep;
    let stack = tokio::task::spawn_blocking(move || Stack::start(echo_addr, &limits, keep))
        .await
        .context("starting the simulator and the gateway")??;
    let client = Arc::new(Client::new(
        stack.key.clone(),
        stack.gateway_addr,
        opts.kind,
    ));
    let run = Run {
        opts,
        limit,
        stack,
        client,
        echo_accepted,
    };
    let result = tokio::select! {
        r = run.run() => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    // Stops both children (bounded) and removes the directory.
    tokio::task::spawn_blocking(move || drop(run)).await.ok();
    result
}

/// Everything one run uses.
struct Run {
    opts: ScaleOptions,
    limit: String,
    stack: Stack,
    client: Arc<Client>,
    echo_accepted: Arc<AtomicUsize>,
}

/// Memory and descriptors of both children at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct Snapshot {
    gateway_rss: u64,
    /// This process (the load client and the echo server).
    bench_rss: u64,
    sim_rss: u64,
    gateway_fds: usize,
    sim_fds: usize,
}

/// CPU of both children and of this process over a wait, % of one core.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    gateway: f64,
    sim: f64,
    bench: f64,
}

/// What the ramp opened.
#[derive(Default)]
struct Ramp {
    open: Vec<Open>,
    timings: Vec<Timing>,
    failed: usize,
    errors: Vec<String>,
    elapsed: Duration,
    /// Stopped early after too many failures.
    gave_up: bool,
}

impl Ramp {
    fn take(&mut self, done: Result<Result<(Open, Timing)>, tokio::task::JoinError>) {
        match done {
            Ok(Ok((open, timing))) => {
                self.open.push(open);
                self.timings.push(timing);
            }
            Ok(Err(e)) => self.fail(format!("{e:#}")),
            Err(e) => self.fail(format!("open task: {e}")),
        }
    }

    fn fail(&mut self, error: String) {
        self.failed += 1;
        if self.errors.len() < 5 && !self.errors.contains(&error) {
            self.errors.push(error);
        }
    }
}

impl Run {
    fn pids(&self) -> (u32, u32) {
        (
            self.stack.gateway.as_ref().map_or(0, |p| p.pid()),
            self.stack.sim.as_ref().map_or(0, |p| p.pid()),
        )
    }

    fn snapshot(&self) -> Snapshot {
        let (gw, sim) = self.pids();
        Snapshot {
            gateway_rss: rss_kib(gw).unwrap_or(0),
            sim_rss: rss_kib(sim).unwrap_or(0),
            bench_rss: rss_kib(std::process::id()).unwrap_or(0),
            gateway_fds: open_fds(gw).unwrap_or(0),
            sim_fds: open_fds(sim).unwrap_or(0),
        }
    }

    /// CPU seconds of the gateway, the simulator and this process so far.
    fn cpu_now(&self) -> (f64, f64, f64) {
        let (gw, sim) = self.pids();
        (
            cpu_secs(gw).unwrap_or(0.0),
            cpu_secs(sim).unwrap_or(0.0),
            cpu_secs(std::process::id()).unwrap_or(0.0),
        )
    }

    /// CPU use over `idle_secs` of doing nothing.
    async fn idle_cpu(&self) -> Cpu {
        let before = self.cpu_now();
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(self.opts.idle_secs)).await;
        let after = self.cpu_now();
        let wall = start.elapsed().as_secs_f64().max(1e-9);
        Cpu {
            gateway: 100.0 * (after.0 - before.0) / wall,
            sim: 100.0 * (after.1 - before.1) / wall,
            bench: 100.0 * (after.2 - before.2) / wall,
        }
    }

    async fn run(&self) -> Result<()> {
        let o = &self.opts;
        let kind = kind_name(o.kind);
        let (gw, sim) = self.pids();
        println!(
            "ssmgate bench scale: {} {kind} sessions, one SSH connection each, {} opening at once",
            o.sessions, o.in_flight
        );
        println!(
            "gateway (pid {gw}) and simulator (pid {sim}, fast mode) in processes of their own, \
             the load client in this one"
        );
        println!(
            "{}; open-files limit {}\n",
            if cfg!(debug_assertions) {
                "debug build (unoptimised: a release build is several times faster)"
            } else {
                "release build"
            },
            self.limit
        );
        row("measurement", "result".to_owned());
        let mut db = self.stack.database().await?;
        let mut summary = Summary::default();

        // One session first, so that one-time set-up (the inventory cache,
        // the database pool, the SDK's connections) is not counted per session.
        let (mut warm, _) = timeout(OPEN_LIMIT, self.client.open())
            .await
            .map_err(|_| anyhow!("no session within {OPEN_LIMIT:?}"))
            .and_then(|r| r)
            .context("the warm-up session")?;
        if o.kind != ScaleKind::Exec {
            warm.echo(o.kind, "warm-up")
                .await
                .context("the warm-up session's echo")?;
        }
        warm.close().await;
        db.wait_until(RECORD_LIMIT, |total, ended| total >= 1 && ended == total)
            .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = self.snapshot();
        let idle_empty = self.idle_cpu().await;

        // The ramp.
        let cpu_before_ramp = self.cpu_now();
        let mut ramp = self.ramp().await;
        let cpu_after_ramp = self.cpu_now();
        let opened = ramp.open.len();
        row(
            "sessions open",
            format!("{opened} of {} ({} failed)", o.sessions, ramp.failed),
        );
        if ramp.gave_up {
            row("", "(ramp stopped: too many failures)".to_owned());
        }
        for e in &ramp.errors {
            println!("  failure: {e}");
        }
        row(
            "ramp: open rate",
            format!(
                "{:.1} sessions/s ({:.1} s)",
                opened as f64 / ramp.elapsed.as_secs_f64().max(1e-9),
                ramp.elapsed.as_secs_f64()
            ),
        );
        let totals: Vec<Duration> = ramp.timings.iter().map(Timing::total).collect();
        let logins: Vec<Duration> = ramp.timings.iter().map(|t| t.login).collect();
        let channels: Vec<Duration> = ramp.timings.iter().map(|t| t.channel).collect();
        row("ramp: open latency p50 / p95 / max", p50_p95_max(&totals));
        row("  of which SSH login p50 / p95 / max", p50_p95_max(&logins));
        row(
            "  of which session (SSM + channel) p50 / p95 / max",
            p50_p95_max(&channels),
        );
        if opened > 0 {
            row(
                "ramp: CPU per open, gateway / simulator / client",
                format!(
                    "{:.1} / {:.1} / {:.1} ms",
                    1e3 * (cpu_after_ramp.0 - cpu_before_ramp.0) / opened as f64,
                    1e3 * (cpu_after_ramp.1 - cpu_before_ramp.1) / opened as f64,
                    1e3 * (cpu_after_ramp.2 - cpu_before_ramp.2) / opened as f64,
                ),
            );
        }
        let (recorded, counts) = db
            .wait_until(RECORD_LIMIT, |total, ended| {
                total.saturating_sub(ended) >= opened as u64
            })
            .await?;
        row(
            "recorded as live in the database",
            match recorded {
                Some(after) => format!(
                    "{} ({:.1} s after the ramp)",
                    counts.0 - counts.1,
                    after.as_secs_f64()
                ),
                None => format!("{} of {opened} after {RECORD_LIMIT:?}", counts.0 - counts.1),
            },
        );

        // With N open and idle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let at_n = self.snapshot();
        let n = opened.max(1) as f64;
        let per_session = |at: u64, base: u64| at.saturating_sub(base) as f64 / n;
        row(
            "gateway RSS before (after 1 warm-up session)",
            mib(before.gateway_rss),
        );
        row(
            &format!("gateway RSS with {opened} open"),
            mib(at_n.gateway_rss),
        );
        let gw_per = per_session(at_n.gateway_rss, before.gateway_rss);
        row("gateway RSS per session", format!("{gw_per:.1} KiB"));
        summary.kib_per_session = Some(gw_per);
        row(
            "simulator RSS before / with N open",
            format!("{} / {}", mib(before.sim_rss), mib(at_n.sim_rss)),
        );
        row(
            "simulator RSS per session",
            format!("{:.1} KiB", per_session(at_n.sim_rss, before.sim_rss)),
        );
        row(
            "load client RSS per session (russh client, echo)",
            format!("{:.1} KiB", per_session(at_n.bench_rss, before.bench_rss)),
        );
        row(
            "open files with N open: gateway / simulator",
            format!(
                "{} / {} ({:.2} / {:.2} per session)",
                at_n.gateway_fds,
                at_n.sim_fds,
                at_n.gateway_fds.saturating_sub(before.gateway_fds) as f64 / n,
                at_n.sim_fds.saturating_sub(before.sim_fds) as f64 / n
            ),
        );
        if o.kind == ScaleKind::Port {
            row(
                "echo-server connections from the simulator",
                self.echo_accepted.load(Ordering::Relaxed).to_string(),
            );
        } else {
            row(
                "simulator child processes with N open",
                children(sim).to_string(),
            );
        }
        let idle_n = self.idle_cpu().await;
        let secs = o.idle_secs;
        row(
            &format!("gateway CPU idle, no sessions ({secs} s)"),
            pct(idle_empty.gateway),
        );
        row(
            &format!("gateway CPU idle, {opened} open ({secs} s)"),
            pct(idle_n.gateway),
        );
        row(
            &format!("simulator CPU idle, no sessions / {opened} open"),
            format!("{} / {}", pct(idle_empty.sim), pct(idle_n.sim)),
        );
        row(
            &format!("load client CPU idle, {opened} open"),
            pct(idle_n.bench),
        );
        summary.idle_cpu = Some(idle_n.gateway);

        // New sessions with N open, one at a time.
        let mut extra = Vec::new();
        let mut extra_failed = Vec::new();
        for _ in 0..EXTRA_OPENS {
            match timeout(OPEN_LIMIT, self.client.open()).await {
                Ok(Ok((open, timing))) => {
                    extra.push(timing.total());
                    open.close().await;
                }
                Ok(Err(e)) => extra_failed.push(format!("{e:#}")),
                Err(_) => extra_failed.push(format!("no session within {OPEN_LIMIT:?}")),
            }
        }
        row(
            &format!("new session with {opened} open, p50 / p95 ({EXTRA_OPENS})"),
            format!(
                "{:.1} / {:.1} ms",
                ms(percentile(&extra, 0.5)),
                ms(percentile(&extra, 0.95))
            ),
        );
        if let Some(e) = extra_failed.first() {
            println!("  {} failed, first: {e}", extra_failed.len());
        }
        summary.new_p50 = (!extra.is_empty()).then(|| ms(percentile(&extra, 0.5)));

        // An echo through every session (a command without a terminal
        // takes no input: it printed its line when it started).
        if o.kind == ScaleKind::Exec {
            row(
                "echo check",
                "none: a command without a terminal takes no input".to_owned(),
            );
        } else {
            let results: Vec<Result<()>> =
                futures_util::stream::iter(ramp.open.iter_mut().enumerate())
                    .map(|(i, open)| async move { open.echo(o.kind, &i.to_string()).await })
                    .buffer_unordered(ECHOES_IN_FLIGHT)
                    .collect()
                    .await;
            let answered = results.iter().filter(|r| r.is_ok()).count();
            row("echo check", format!("{answered} of {opened} answered"));
            if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
                println!("  first failure: {e:#}");
            }
            summary.echo = Some((answered, opened));
        }

        // All connections closed at once.
        let start = Instant::now();
        let start_wall = chrono::Utc::now();
        futures_util::future::join_all(ramp.open.drain(..).map(Open::close)).await;
        let closed = start.elapsed();
        let (ended, counts) = db
            .wait_until(RECORD_LIMIT, |total, ended| ended == total)
            .await?;
        let drain = ended.map(|d| d + closed);
        row(
            "close drain: every session recorded as ended",
            match drain {
                Some(d) => format!("{:.2} s", d.as_secs_f64()),
                None => format!(
                    "{} still live after {:.0} s",
                    counts.0 - counts.1,
                    (RECORD_LIMIT + closed).as_secs_f64()
                ),
            },
        );
        summary.drain = Some(drain);
        if let Some(last) = db.last_end().await? {
            let secs = (last - start_wall).num_milliseconds() as f64 / 1e3;
            row(
                "  the last end as the gateway timed it (ended_at)",
                format!("{secs:.2} s after the close began"),
            );
        }
        let after_close = self.snapshot();
        row(
            "gateway RSS right after the drain",
            mib(after_close.gateway_rss),
        );
        if o.kind != ScaleKind::Port {
            row(
                "simulator child processes after the drain",
                children(sim).to_string(),
            );
        }
        if o.settle {
            tokio::time::sleep(SETTLE).await;
            let settled = self.snapshot();
            row(
                &format!("gateway RSS {} s after the close", SETTLE.as_secs()),
                format!(
                    "{} ({} open files)",
                    mib(settled.gateway_rss),
                    settled.gateway_fds
                ),
            );
        }

        // The logs.
        let mut warnings = 0;
        for (name, proc) in [
            ("gateway", &self.stack.gateway),
            ("simulator", &self.stack.sim),
        ] {
            let Some(proc) = proc else { continue };
            let count = stack::count_log(&proc.log, 5);
            row(
                &format!("{name} log: WARN / ERROR lines"),
                format!("{} / {}", count.warn, count.error),
            );
            for s in &count.samples {
                println!("  {s}");
            }
            warnings += count.warn + count.error;
        }
        summary.log_lines = Some(warnings);
        println!();
        summary.print();
        Ok(())
    }

    /// Opens `sessions` sessions, `in_flight` at a time; gives up after
    /// a tenth of them (at least 20) failed.
    async fn ramp(&self) -> Ramp {
        let n = self.opts.sessions;
        let fail_limit = (n / 10).max(20);
        let permits = Arc::new(Semaphore::new(self.opts.in_flight));
        let mut set = JoinSet::new();
        let mut ramp = Ramp::default();
        let start = Instant::now();
        let step = (n / 10).max(1);
        for i in 0..n {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            while let Some(done) = set.try_join_next() {
                ramp.take(done);
            }
            if ramp.failed >= fail_limit {
                ramp.gave_up = true;
                break;
            }
            let client = self.client.clone();
            set.spawn(async move {
                let _permit = permit;
                timeout(OPEN_LIMIT, client.open())
                    .await
                    .map_err(|_| anyhow!("no session within {OPEN_LIMIT:?}"))
                    .and_then(|r| r)
            });
            if n >= 500 && (i + 1) % step == 0 && i + 1 < n {
                eprintln!(
                    "  … {} of {n} started, {} open ({:.1} s)",
                    i + 1,
                    ramp.open.len(),
                    start.elapsed().as_secs_f64()
                );
            }
        }
        while let Some(done) = set.join_next().await {
            ramp.take(done);
        }
        ramp.elapsed = start.elapsed();
        ramp
    }
}

/// Figures compared with the targets.
#[derive(Default)]
struct Summary {
    idle_cpu: Option<f64>,
    kib_per_session: Option<f64>,
    new_p50: Option<f64>,
    echo: Option<(usize, usize)>,
    log_lines: Option<usize>,
    drain: Option<Option<Duration>>,
}

impl Summary {
    fn print(&self) {
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        println!("targets (issue 14; measured on this machine)");
        // Verdicts on the figures as printed.
        let round2 = |v: f64| (v * 100.0).round() / 100.0;
        if let Some(c) = self.idle_cpu.map(round2) {
            println!(
                "  gateway idle < {TARGET_IDLE_CPU_PCT} % of one core: {c:.2} % → {}",
                verdict(c < TARGET_IDLE_CPU_PCT)
            );
        }
        if let Some(k) = self.kib_per_session.map(|k| (k * 10.0).round() / 10.0) {
            println!(
                "  gateway RSS < {TARGET_KIB_PER_SESSION} KiB per session: {k:.1} KiB → {}",
                verdict(k < TARGET_KIB_PER_SESSION)
            );
        }
        match self.new_p50.map(|p| (p * 10.0).round() / 10.0) {
            Some(p) => println!(
                "  new session < {TARGET_NEW_SESSION_P50_MS} ms p50 with N open: {p:.1} ms → {}",
                verdict(p < TARGET_NEW_SESSION_P50_MS)
            ),
            None => println!("  new session with N open: none opened → MISSED"),
        }
        if let Some((answered, of)) = self.echo {
            println!(
                "  every echo answered: {answered} of {of} → {}",
                verdict(answered == of)
            );
        }
        if let Some(lines) = self.log_lines {
            println!(
                "  no warnings in the logs: {lines} WARN/ERROR lines → {}",
                verdict(lines == 0)
            );
        }
        if let Some(drain) = self.drain {
            match drain {
                Some(d) => println!(
                    "  every session recorded as ended < {} s after the close: {:.2} s → {}",
                    TARGET_DRAIN.as_secs(),
                    d.as_secs_f64(),
                    verdict(d < TARGET_DRAIN)
                ),
                None => println!("  every session recorded as ended: not all → MISSED"),
            }
        }
    }
}

fn row(label: &str, value: String) {
    println!("{label:<52} {value}");
}

fn kind_name(kind: ScaleKind) -> &'static str {
    match kind {
        ScaleKind::Port => "port",
        ScaleKind::Shell => "shell",
        ScaleKind::Exec => "exec",
    }
}

/// Descriptors one session holds in this process: its connection to the
/// gateway, and for a forward the echo server's end of the simulator's.
fn bench_fds(kind: ScaleKind) -> u64 {
    match kind {
        ScaleKind::Port => 2,
        ScaleKind::Shell | ScaleKind::Exec => 1,
    }
}

/// Descriptors one session holds in the simulator: the data channel's
/// WebSocket, and the connection to the echo server or the command's three
/// pipes.
fn sim_fds(kind: ScaleKind) -> u64 {
    match kind {
        ScaleKind::Port => 2,
        ScaleKind::Shell | ScaleKind::Exec => 5,
    }
}

/// Raises this process's soft open-files limit to the hard one (the
/// children inherit it) and returns how many sessions fit in every process,
/// with the limit as text.
fn fd_cap(kind: ScaleKind) -> (usize, String) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    if now.current != now.maximum {
        let mut wanted = now;
        wanted.current = now.maximum;
        let _ = setrlimit(Resource::Nofile, wanted);
    }
    let Some(limit) = getrlimit(Resource::Nofile).current else {
        return (usize::MAX, "unlimited".into());
    };
    let per = bench_fds(kind).max(2).max(sim_fds(kind));
    let free = limit.saturating_sub(RESERVED_FDS + EXTRA_OPENS as u64);
    (
        usize::try_from(free / per).unwrap_or(usize::MAX),
        limit.to_string(),
    )
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn pct(p: f64) -> String {
    format!("{p:.2} % of one core")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn p50_p95_max(samples: &[Duration]) -> String {
    format!(
        "{:.1} / {:.1} / {:.1} ms",
        ms(percentile(samples, 0.5)),
        ms(percentile(samples, 0.95)),
        ms(percentile(samples, 1.0))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_every_process() {
        let (cap, _) = fd_cap(ScaleKind::Port);
        assert!(cap > 0);
        let (cap_exec, _) = fd_cap(ScaleKind::Exec);
        assert!(cap_exec <= cap);
    }
}
