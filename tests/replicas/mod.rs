//! The parts of `e2e_replicas`: a throwaway Postgres cluster, the
//! fixture's simulator, keys and config (its in-process gateway is stopped
//! at once), `ssmgate serve` processes on that database (the replicas,
//! which real signals reach), held `ssh` sessions through them, and the
//! `ssmgate sessions` / `users` command line run as processes.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use ssm_sim::server::SimServer;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

pub use crate::common::gateway::show;
use crate::common::gateway::{Fixture, Options};
use crate::common::postgres::PgCluster;

/// Heartbeat, orphan and orphan-close times of every replica (seconds).
pub const HEARTBEAT: u64 = 1;
pub const ORPHAN_AFTER: u64 = 2;
pub const ORPHAN_CLOSE_AFTER: u64 = 4;

/// One database, one simulator, the keys and the base config.
pub struct Rig {
    /// Stopped on drop.
    pub pg: PgCluster,
    pub url: String,
    pub dir: TempDir,
    pub sim: SimServer,
    pub askpass: PathBuf,
    base: String,
}

impl Rig {
    pub async fn start() -> Rig {
        let pg = tokio::task::spawn_blocking(PgCluster::start)
            .await
            .expect("join")
            .expect("throwaway postgres starts");
        let url = pg.fresh_database().await;
        let fx = Fixture::start_opts(Options {
            database_url: Some(url.clone()),
            ..Options::default()
        })
        .await;
        let base = std::fs::read_to_string(fx.path("ssmgate.toml")).expect("config");
        assert!(
            !base.contains("[cluster]") && !base.contains("[recording]"),
            "{base}"
        );
        let Fixture {
            dir,
            sim,
            gw,
            askpass,
            ..
        } = fx;
        // Its work was to make the keys, the host key, the recording key
        // and the schema; it stops cleanly (a stopped replica is no
        // orphan and closes nobody's sessions).
        gw.shutdown().await;
        Rig {
            pg,
            url,
            dir,
            sim,
            askpass,
            base,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `replica-NAME.toml` (the base config, the small cluster
    /// timings, `advertise = "replica-NAME"`, its own spool) and starts
    /// `ssmgate serve` on it.
    pub async fn replica(&self, name: &str, drain_secs: u64) -> Replica {
        self.replica_with(name, drain_secs, "").await
    }

    /// [`Rig::replica`] with `extra` TOML sections appended.
    pub async fn replica_with(&self, name: &str, drain_secs: u64, extra: &str) -> Replica {
        let config = self.config(name, drain_secs, extra);
        Replica::start(name, &config).await
    }

    /// The config file of replica `name` (written).
    pub fn config(&self, name: &str, drain_secs: u64, extra: &str) -> PathBuf {
        let server = format!("[server]\ndrain_secs = {drain_secs}\n");
        let text = format!(
            "{}\n[cluster]\nheartbeat_secs = {HEARTBEAT}\norphan_after_secs = {ORPHAN_AFTER}\n\
             orphan_close_after_secs = {ORPHAN_CLOSE_AFTER}\nadvertise = \"replica-{name}\"\n\n\
             [recording]\nspool_dir = \"spool-{name}\"\n\n{extra}",
            self.base.replacen("[server]\n", &server, 1)
        );
        let path = self.path(&format!("replica-{name}.toml"));
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// Options every client gets: no config, no host key checks, alice's
    /// key, the reason asked at login answered by askpass.
    pub fn ssh(&self, port: u16, login: &str, command: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args([
            "-o",
            "PreferredAuthentications=keyboard-interactive,publickey",
            "-F",
            "/dev/null",
            "-i",
        ])
        .arg(self.path("alice"))
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
            "-p",
            &port.to_string(),
        ])
        .arg(format!("{login}@127.0.0.1"))
        .arg(command)
        .env("SSH_ASKPASS", &self.askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .stdin(Stdio::null())
        .kill_on_drop(true);
        cmd
    }

    /// `ssh alice+web-1 'echo ok'` through `port`, within 30 s.
    pub async fn echo(&self, port: u16) -> Output {
        let mut cmd = self.ssh(port, "alice+web-1", "echo ok");
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        tokio::time::timeout(Duration::from_secs(30), cmd.output())
            .await
            .expect("ssh finishes in time")
            .expect("ssh runs")
    }

    /// A command session through `port` that runs until it is ended
    /// (`sleep 120`, tagged with `marker` to find its record).
    pub fn hold(&self, port: u16, marker: &str) -> Held {
        let mut cmd = self.ssh(
            port,
            "alice+web-1",
            &format!("echo started-{marker}; sleep 120; echo not-ended-{marker}"),
        );
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("ssh starts");
        let stdout = collect(child.stdout.take().expect("stdout"), None);
        let stderr = collect(child.stderr.take().expect("stderr"), None);
        Held {
            marker: marker.to_owned(),
            child,
            stdout,
            stderr,
        }
    }

    /// `ssmgate ARGS --config CONFIG --database URL`, within 60 s; also
    /// how long it took.
    pub async fn cli(&self, config: &Path, args: &[&str]) -> (Output, Duration) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ssmgate"));
        cmd.args(args)
            .arg("--config")
            .arg(config)
            .args(["--database", &self.url])
            .env_remove("SSMGATE_LOG")
            .env_remove("RUST_LOG")
            .env_remove("SSMGATE_DATABASE_URL")
            .env("USER", "ops")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let begun = Instant::now();
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("ssmgate {args:?} finishes in time"))
            .expect("ssmgate runs");
        (out, begun.elapsed())
    }

    /// `sessions list [--live] --json --limit 0`, parsed.
    pub async fn list(&self, config: &Path, live: bool) -> Vec<Value> {
        let mut args = vec!["sessions", "list", "--json", "--limit", "0"];
        if live {
            args.push("--live");
        }
        let (out, _) = self.cli(config, &args).await;
        assert!(out.status.success(), "{}", show(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect()
    }

    /// The session of `held` as `list` shows it, waiting up to 15 s for it
    /// to be listed live.
    pub async fn live_record(&self, config: &Path, held: &Held) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = self
                .list(config, true)
                .await
                .into_iter()
                .find(|s| held.is(s))
            {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "session {} is not listed live; client stderr: {}",
                held.marker,
                held.stderr()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Session `id`'s record once it has ended (waits up to `secs`).
    pub async fn ended_record(&self, config: &Path, id: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self
                .list(config, false)
                .await
                .into_iter()
                .find(|s| s["id"] == id)
                .unwrap_or_else(|| panic!("session {id} is not recorded"));
            if s["live"] == false {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "session {id} has not ended in the record within {secs} s: {s}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A text collected from a pipe as it comes (also echoed to this test's
/// stderr, prefixed, when `echo` names a prefix).
pub type Collected = Arc<Mutex<String>>;

fn collect(pipe: impl AsyncRead + Unpin + Send + 'static, echo: Option<String>) -> Collected {
    let text: Collected = Arc::default();
    let into = text.clone();
    tokio::spawn(async move {
        match echo {
            Some(prefix) => {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("[{prefix}] {line}");
                    let mut t = into.lock().unwrap();
                    t.push_str(&line);
                    t.push('\n');
                }
            }
            None => {
                let mut pipe = pipe;
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    into.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        }
    });
    text
}

/// An `ssmgate serve` process.
pub struct Replica {
    pub name: String,
    pub config: PathBuf,
    pub port: u16,
    pub child: Child,
    /// Its stderr (the log) so far.
    pub log: Collected,
}

impl Replica {
    pub async fn start(name: &str, config: &Path) -> Replica {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ssmgate"))
            .args(["serve", "--config"])
            .arg(config)
            .env_remove("SSMGATE_LOG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("ssmgate serve starts");
        let log = collect(
            child.stderr.take().expect("stderr"),
            Some(format!("replica-{name}")),
        );
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let listening = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("replica {name} says where it listens in time"))
            .expect("read stdout")
            .unwrap_or_else(|| panic!("replica {name} exited: {}", log.lock().unwrap()));
        // "ssmgate: listening on 127.0.0.1:PORT (host key …)"
        let port: u16 = listening
            .split_whitespace()
            .nth(3)
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no address in {listening:?}"));
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        Replica {
            name: name.to_owned(),
            config: config.to_owned(),
            port,
            child,
            log,
        }
    }

    pub fn pid(&self) -> String {
        self.child.id().expect("running").to_string()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Sends SIGKILL and reaps it.
    pub async fn sigkill(&mut self) {
        self.child.start_kill().expect("SIGKILL");
        self.exit(10).await;
    }

    /// Waits up to `secs` for it to exit.
    pub async fn exit(&mut self, secs: u64) -> ExitStatus {
        tokio::time::timeout(Duration::from_secs(secs), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("replica {} exits within {secs} s", self.name))
            .expect("wait")
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// A held `ssh` session.
pub struct Held {
    pub marker: String,
    pub child: Child,
    pub stdout: Collected,
    pub stderr: Collected,
}

impl Held {
    /// Whether `s` (a `list --json` line) is this session's.
    pub fn is(&self, s: &Value) -> bool {
        s["parameters"]
            .to_string()
            .contains(&format!("started-{};", self.marker))
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the command has printed its start line (it runs).
    pub async fn running(&self) {
        let want = format!("started-{}", self.marker);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.stdout().contains(&want) {
            assert!(
                Instant::now() < deadline,
                "session {} did not start: stderr {:?}",
                self.marker,
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `needle` is on its stderr (up to `secs`).
    pub async fn stderr_has(&self, needle: &str, secs: u64) -> Duration {
        let begun = Instant::now();
        while !self.stderr().contains(needle) {
            assert!(
                begun.elapsed() < Duration::from_secs(secs),
                "{needle:?} not on the stderr of session {} within {secs} s: {:?}",
                self.marker,
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        begun.elapsed()
    }

    /// Whether the client has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    /// Waits up to `secs` for the client to exit.
    pub async fn ended(&mut self, secs: u64) -> ExitStatus {
        let status = tokio::time::timeout(Duration::from_secs(secs), self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the client of session {} exits within {secs} s; stderr {:?}",
                    self.marker,
                    self.stderr()
                )
            })
            .expect("wait");
        // Let the readers take the last bytes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        status
    }
}

/// A free port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `GET path` on `port`: the status code and the body.
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::AsyncWriteExt;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the admin listener");
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("send");
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_string(&mut text))
        .await
        .expect("an answer in time")
        .expect("read");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
