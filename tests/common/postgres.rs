//! A throwaway Postgres cluster for tests, started from the local binaries
//! (`initdb`, `pg_ctl`, `postgres` from PATH or /usr/lib/postgresql/*/bin)
//! in a temporary directory, on a free 127.0.0.1 port, with its unix socket
//! in that directory. As root the binaries run as the `postgres` user.
//!
//! [`shared`] starts one cluster per test binary and hands every test a
//! fresh database ([`PgCluster::fresh_database`]). Statics are never
//! dropped, so alongside the server a small watchdog process waits for the
//! test process to exit and then stops the server (`-m immediate`) and
//! removes the directory; a cluster owned by a value is stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::Connection;

/// A running throwaway cluster.
pub struct PgCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PgCluster {
    /// initdb + start. Errors say what failed, with the server log.
    pub fn start() -> Result<Self, String> {
        let bin = find_bin_dir().ok_or(
            "no Postgres binaries: initdb not in PATH nor under /usr/lib/postgresql/*/bin \
             (install the postgresql package)",
        )?;
        let as_postgres = rustix::process::geteuid().is_root();
        let dir = tempfile::Builder::new()
            .prefix("ssmgate-pg-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?
            .keep();
        let cluster = Self {
            dir,
            bin,
            port: free_port()?,
            as_postgres,
        };
        if as_postgres {
            run(Command::new("chown").arg("postgres:").arg(&cluster.dir))?;
        }
        cluster.start_inner()?;
        Ok(cluster)
    }

    fn start_inner(&self) -> Result<(), String> {
        let data = self.dir.join("data");
        self.run_pg(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=trust".as_ref(),
                "--encoding=UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        self.pg_start()?;
        self.spawn_watchdog()
    }

    /// Stops the server (fast: open connections are told it is shutting
    /// down), as an outage.
    #[allow(dead_code)]
    pub fn stop(&self) -> Result<(), String> {
        let data = self.dir.join("data");
        self.run_pg(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        )
    }

    /// Starts the server again after [`PgCluster::stop`].
    #[allow(dead_code)]
    pub fn restart(&self) -> Result<(), String> {
        self.pg_start()
    }

    fn pg_start(&self) -> Result<(), String> {
        let data = self.dir.join("data");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
             -c synchronous_commit=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        let started = self.run_pg(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                opts.as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "30".as_ref(),
                "start".as_ref(),
            ],
        );
        if let Err(e) = started {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("{e}\nserver log:\n{log}"));
        }
        Ok(())
    }

    /// A command running binary `name` of the cluster's installation, as
    /// the `postgres` user when we are root.
    fn pg_command(&self, name: &str) -> Command {
        let exe = self.bin.join(name);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run_pg(&self, name: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
        run(self.pg_command(name).args(args).current_dir(&self.dir))
    }

    /// Stops the server and removes the directory once this process exits.
    fn spawn_watchdog(&self) -> Result<(), String> {
        let stop = self.pg_command("pg_ctl");
        let mut words: Vec<String> = std::iter::once(stop.get_program())
            .chain(stop.get_args())
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect();
        words.extend(
            [
                "-D",
                &self.dir.join("data").to_string_lossy(),
                "-m",
                "immediate",
                "stop",
            ]
            .iter()
            .map(|a| shell_quote(a)),
        );
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.2; done; {stop}; rm -rf {dir}",
            pid = std::process::id(),
            stop = words.join(" "),
            dir = shell_quote(&self.dir.to_string_lossy()),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(drop)
            .map_err(|e| format!("watchdog: {e}"))
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates an empty database with a unique name; returns its URL.
    pub async fn fresh_database(&self) -> String {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::PgConnection::connect(&self.url("postgres")),
        )
        .await
        .expect("admin connection in time")
        .expect("admin connection");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        let _ = admin.close().await;
        self.url(&name)
    }

    /// The data directory's parent (logs, socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The cluster shared by every test of this binary (started on first use).
pub fn shared() -> &'static PgCluster {
    static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(PgCluster::start) {
        Ok(c) => c,
        Err(e) => panic!("throwaway Postgres did not start: {e}"),
    }
}

/// The directory holding initdb, pg_ctl and postgres.
fn find_bin_dir() -> Option<PathBuf> {
    let has_all = |d: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("initdb"))
            .find(|p| p.is_file())
            .and_then(|p| std::fs::canonicalize(p).ok())
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .filter(|d| has_all(d))
    });
    from_path.or_else(|| {
        let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                Some((version, e.path().join("bin")))
            })
            .filter(|(_, d)| has_all(d))
            .collect();
        dirs.sort();
        dirs.pop().map(|(_, d)| d)
    })
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} {:?} failed ({}): {}{}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
