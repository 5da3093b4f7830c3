//! The processes `ssmgate bench scale` measures: a temporary directory with
//! the simulator's and the gateway's configs, the bench user's key, the
//! gateway's database and both logs; the simulator (`ssmgate sim`) and the
//! gateway (`ssmgate serve`) started as child processes of the current
//! executable, so that `/proc/<pid>` gives each one's CPU time, RSS and open
//! files apart from the load client. [`Stack`] stops both and removes the
//! directory when dropped, also on error. Every wait is bounded.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use russh::keys::PrivateKey;
use russh::keys::ssh_key::private::Ed25519Keypair;
use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

/// The simulated instance every session goes to.
pub(super) const INSTANCE_ID: &str = "i-05ca1e00000000001";
/// Its `Name` tag.
pub(super) const INSTANCE_NAME: &str = "scale-1";
/// Its port that leads to the bench's echo server.
pub(super) const ECHO_PORT: u16 = 7777;
/// The gateway user.
pub(super) const USER: &str = "alice";
/// Bound on a child's start (its banner, then its port answering).
const START_LIMIT: Duration = Duration::from_secs(60);
/// Bound on a child's graceful stop before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// One child process and where its output goes.
pub(super) struct Proc {
    child: Child,
    /// Its stderr (the log).
    pub(super) log: PathBuf,
    /// Its stdout (the banner).
    out: PathBuf,
}

impl Proc {
    /// The process id.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, a bounded wait, then SIGKILL.
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let until = Instant::now() + STOP_LIMIT;
            while Instant::now() < until {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (bounded) for a stdout line holding `marker` and returns what
    /// follows it up to the next space; fails when the child exits.
    fn banner(&mut self, what: &str, marker: &str) -> Result<String> {
        let until = Instant::now() + START_LIMIT;
        loop {
            let text = std::fs::read_to_string(&self.out).unwrap_or_default();
            if let Some(rest) = text.split_once(marker).map(|(_, r)| r) {
                let word = rest.split_whitespace().next().unwrap_or_default();
                return Ok(word.to_owned());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!("{what} exited ({status}) at start: {}", tail(&self.log));
            }
            if Instant::now() > until {
                bail!(
                    "{what} did not start within {START_LIMIT:?}: {}",
                    tail(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The last lines of a log, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(5);
    lines.get(from..).unwrap_or_default().join(" | ")
}

/// The temporary directory and both children; stopped and removed on drop.
pub(super) struct Stack {
    pub(super) dir: PathBuf,
    keep: bool,
    pub(super) sim: Option<Proc>,
    pub(super) gateway: Option<Proc>,
    /// The gateway's SSH address.
    pub(super) gateway_addr: SocketAddr,
    /// The bench user's key.
    pub(super) key: PrivateKey,
}

/// What the gateway's `[server]` section allows.
pub(super) struct Limits {
    /// Channels of the one user: every session plus the extra ones.
    pub(super) sessions_per_user: usize,
    /// Unauthenticated connections at once (all from 127.0.0.1).
    pub(super) startups: usize,
}

impl Stack {
    /// Writes the configs and the key into a fresh temporary directory and
    /// starts the simulator (its instance's port [`ECHO_PORT`] leading to
    /// `echo`) and the gateway in front of it.
    pub(super) fn start(echo: SocketAddr, limits: &Limits, keep: bool) -> Result<Stack> {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!(
            "ssmgate-bench-scale-{}",
            tag.get(..8).unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&rand::random::<[u8; 32]>()));
        let mut stack = Stack {
            dir: dir.clone(),
            keep,
            sim: None,
            gateway: None,
            gateway_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            key,
        };
        let exe = std::env::current_exe().context("cannot find the ssmgate executable")?;

        let sim_toml = dir.join("sim.toml");
        std::fs::write(&sim_toml, sim_config(echo))?;
        let mut sim = spawn(
            &exe,
            &dir,
            "sim",
            &[
                "sim".as_ref(),
                "--listen".as_ref(),
                "127.0.0.1:0".as_ref(),
                "--config".as_ref(),
                sim_toml.as_os_str(),
            ],
        )?;
        let banner = sim.banner("the simulator", "data channel on ");
        stack.sim = Some(sim);
        let endpoint = banner?;
        wait_for_port(endpoint_addr(&endpoint)?)?;

        let policies = dir.join("policies");
        std::fs::create_dir_all(&policies)?;
        std::fs::write(policies.join("schema.cedarschema"), crate::policy::SCHEMA)?;
        std::fs::write(
            policies.join("bench.cedar"),
            format!(
                "@id(\"bench-scale-all\")\npermit (principal == User::\"{USER}\", action, resource);\n"
            ),
        )?;
        let public = stack.key.public_key().to_openssh()?;
        let config = dir.join("ssmgate.toml");
        std::fs::write(&config, gateway_config(&endpoint, &public, limits))?;
        let mut gateway = spawn(
            &exe,
            &dir,
            "gateway",
            &["serve".as_ref(), "--config".as_ref(), config.as_os_str()],
        )?;
        let banner = gateway.banner("the gateway", "listening on ");
        stack.gateway = Some(gateway);
        let addr: SocketAddr = banner?
            .parse()
            .context("the gateway's banner names no address")?;
        wait_for_port(addr)?;
        stack.gateway_addr = addr;
        Ok(stack)
    }

    /// A read-only connection to the gateway's session database.
    pub(super) async fn database(&self) -> Result<Db> {
        let conn = SqliteConnectOptions::new()
            .filename(self.dir.join("ssmgate.db"))
            .read_only(true)
            .busy_timeout(Duration::from_secs(5))
            .connect()
            .await
            .context("opening the gateway's database")?;
        Ok(Db(conn))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The gateway first: it ends its sessions while the sim still runs.
        if let Some(p) = self.gateway.as_mut() {
            p.stop();
        }
        if let Some(p) = self.sim.as_mut() {
            p.stop();
        }
        if self.keep {
            eprintln!("kept {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Starts `exe ARGS` in `dir`, stdout to `NAME.out`, stderr to `NAME.log`.
fn spawn(exe: &Path, dir: &Path, name: &str, args: &[&std::ffi::OsStr]) -> Result<Proc> {
    let out = dir.join(format!("{name}.out"));
    let log = dir.join(format!("{name}.log"));
    let child = Command::new(exe)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(File::create(&out)?)
        .stderr(File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {} {name}", exe.display()))?;
    Ok(Proc { child, log, out })
}

/// `127.0.0.1:PORT` from `http://127.0.0.1:PORT`.
fn endpoint_addr(endpoint: &str) -> Result<SocketAddr> {
    let hostport = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, r)| r)
        .trim_end_matches('/');
    hostport
        .parse()
        .with_context(|| format!("the simulator's endpoint {endpoint:?} is no address"))
}

/// Polls until `addr` accepts a TCP connection (bounded).
fn wait_for_port(addr: SocketAddr) -> Result<()> {
    let until = Instant::now() + START_LIMIT;
    loop {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("{addr} did not accept a connection within {START_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TOML basic string.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// One online instance whose port [`ECHO_PORT`] is the echo server.
fn sim_config(echo: SocketAddr) -> String {
    format!(
        "mode = \"fast\"\n\n[[instances]]\nid = {}\nname = {}\nports = {{ \"{ECHO_PORT}\" = {} }}\n",
        quoted(INSTANCE_ID),
        quoted(INSTANCE_NAME),
        quoted(&echo.to_string())
    )
}

/// The gateway's config: one user with the bench's key, a permissive
/// policy, no reason asked, SQLite recording, limits raised for the run,
/// no idle or session timeout (a ramp may take longer than either).
fn gateway_config(endpoint: &str, public_key: &str, limits: &Limits) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nhost_key = \"host_key\"\n\
         max_sessions_per_user = {per_user}\nmax_startups = {startups}\n\
         max_startups_per_source = {startups}\nidle_timeout_secs = 0\nmax_session_secs = 0\n\n\
         [aws]\nregion = \"us-east-1\"\nendpoint = {endpoint}\ncredentials = \"none\"\n\n\
         [database]\nurl = \"sqlite://ssmgate.db\"\n\n\
         [justification]\nrequired = false\n\n\
         [policy]\ndir = \"policies\"\n\n\
         [[users]]\nname = \"{USER}\"\nauthorized_keys = [{key}]\n",
        per_user = limits.sessions_per_user,
        startups = limits.startups,
        endpoint = quoted(endpoint),
        key = quoted(public_key),
    )
}

/// The gateway's session database, read while it runs.
pub(super) struct Db(SqliteConnection);

impl Db {
    /// Sessions recorded, and those of them recorded as ended.
    pub(super) async fn counts(&mut self) -> Result<(u64, u64)> {
        let (total, ended): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COUNT(ended_at) FROM sessions")
                .fetch_one(&mut self.0)
                .await
                .context("counting sessions")?;
        Ok((
            u64::try_from(total).unwrap_or(0),
            u64::try_from(ended).unwrap_or(0),
        ))
    }

    /// The latest end time recorded (as the gateway timed it).
    pub(super) async fn last_end(&mut self) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        let (last,): (Option<String>,) = sqlx::query_as("SELECT MAX(ended_at) FROM sessions")
            .fetch_one(&mut self.0)
            .await
            .context("reading the last end")?;
        Ok(last.and_then(|t| {
            chrono::DateTime::parse_from_rfc3339(&t)
                .ok()
                .map(|t| t.with_timezone(&chrono::Utc))
        }))
    }

    /// Polls (bounded by `limit`) until `done(total, ended)`; the time it
    /// took, or `None` with the last counts.
    pub(super) async fn wait_until(
        &mut self,
        limit: Duration,
        done: impl Fn(u64, u64) -> bool,
    ) -> Result<(Option<Duration>, (u64, u64))> {
        let start = Instant::now();
        loop {
            let counts = self.counts().await?;
            if done(counts.0, counts.1) {
                return Ok((Some(start.elapsed()), counts));
            }
            if start.elapsed() > limit {
                return Ok((None, counts));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// CPU time (user + system) of process `pid` so far, in seconds; `None`
/// when unreadable.
pub(super) fn cpu_secs(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields are
    // counted after the last ')'. utime and stime are fields 14 and 15
    // (1-based), so 11 and 12 after the state.
    let rest = text.rsplit_once(')').map(|(_, r)| r)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // /proc counts in USER_HZ, 100 on every Linux the kernel ABI allows.
    Some((utime + stime) as f64 / 100.0)
}

/// Resident set size of process `pid`, in KiB (`VmRSS`).
pub(super) fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Child processes of process `pid` (of all its threads).
pub(super) fn children(pid: u32) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .map(|c| c.split_whitespace().count())
        .sum()
}

/// Open file descriptors of process `pid`.
pub(super) fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(Iterator::count)
}

/// WARN and ERROR lines of a log, with up to `samples` distinct messages
/// (the timestamp left out).
pub(super) struct LogCount {
    pub(super) warn: usize,
    pub(super) error: usize,
    pub(super) samples: Vec<String>,
}

/// Counts the WARN and ERROR lines of the log at `path`.
pub(super) fn count_log(path: &Path, samples: usize) -> LogCount {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut count = LogCount {
        warn: 0,
        error: 0,
        samples: Vec::new(),
    };
    for line in text.lines() {
        let plain = strip_ansi(line);
        // `2026-…Z  WARN target: message`: the level is the second word.
        let mut words = plain.split_whitespace();
        let _time = words.next();
        let level = words.next().unwrap_or_default();
        match level {
            "WARN" => count.warn += 1,
            "ERROR" => count.error += 1,
            _ => continue,
        }
        let message: String = words.collect::<Vec<_>>().join(" ");
        let short: String = message.chars().take(240).collect();
        let shown = format!("{level} {short}");
        if count.samples.len() < samples && !count.samples.contains(&shown) {
            count.samples.push(shown);
        }
    }
    count
}

/// `line` without ANSI colour sequences (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_are_counted_with_or_without_colour() {
        let dir = std::env::temp_dir().join(format!("ssmgate-scale-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.log");
        std::fs::write(
            &path,
            "2026-01-01T00:00:00.000001Z  INFO ssmgate: opened\n\
             2026-01-01T00:00:00.000002Z  WARN ssmgate: slow\n\
             \u{1b}[2m2026-01-01T00:00:00.000003Z\u{1b}[0m \u{1b}[31mERROR\u{1b}[0m ssmgate: broke\n\
             2026-01-01T00:00:00.000004Z  WARN ssmgate: slow\n",
        )
        .unwrap();
        let c = count_log(&path, 5);
        assert_eq!((c.warn, c.error), (2, 1));
        assert_eq!(c.samples, ["WARN ssmgate: slow", "ERROR ssmgate: broke"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn proc_readings_of_this_process() {
        let pid = std::process::id();
        assert!(cpu_secs(pid).is_some());
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(open_fds(pid).unwrap() > 0);
    }

    #[test]
    fn endpoint_is_parsed() {
        assert_eq!(
            endpoint_addr("http://127.0.0.1:4080").unwrap(),
            "127.0.0.1:4080".parse().unwrap()
        );
    }
}
