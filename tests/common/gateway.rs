//! An end-to-end fixture: the simulator and a gateway in this process, keys
//! and certificates made by the real `ssh-keygen`, an optional real `sshd`
//! behind `web-1:22` (all started by the demo's [`Stack`]), and helpers that
//! run the real `ssh`, `scp` and `sftp`.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use ssm_sim::server::SimServer;
use ssmgate::serve::RunningGateway;
use tempfile::TempDir;
use tokio::process::Command;

use super::stack::{self, Instance, Sshd, Stack, User};

pub const WEB_1: &str = "i-0e0000000000000a1";
pub const DB_1: &str = "i-0e0000000000000a2";
pub const OFFLINE_1: &str = "i-0e0000000000000a3";
pub const DUP_A: &str = "i-0e0000000000000a4";
pub const DUP_B: &str = "i-0e0000000000000a5";
pub const REASON: &str = "INC-42 integration test";

/// The fixture's policies: SREs may do anything, except what the forbids
/// below refuse, each with its own message.
pub const TEST_POLICIES: &str = r#"
@id("sre-all")
permit (principal in Group::"sre", action, resource);

@id("dev-terminal")
permit (principal in Group::"dev", action in [Action::"shell", Action::"exec"], resource);

@id("db-no-shell")
@message("db targets are reached by port forwarding only")
forbid (principal, action in [Action::"shell", Action::"exec"], resource)
when { resource.hasTag("role") && resource.getTag("role") == "db" };

@id("port-80-only")
@message("only port 80 may be forwarded")
forbid (principal, action == Action::"port_forward", resource)
unless { context.parameters has portNumber && context.parameters.portNumber == 80 };

@id("recorded-no-jump")
@message("this target must be recorded in full: ProxyJump is not allowed")
forbid (principal, action == Action::"ssh", resource)
when { resource.hasTag("recording") && resource.getTag("recording") == "required" };
"#;

/// What a fixture differs in.
#[derive(Debug, Default)]
pub struct Options {
    /// Also start a real sshd for web-1:22.
    pub with_sshd: bool,
    /// Carry web-1's terminal sessions through that sshd.
    pub sshd_backend: bool,
    /// Do not require a reason for access (it may still be given).
    pub reason_optional: bool,
    /// Record here (default: SQLite in the fixture's directory).
    pub database_url: Option<String>,
    /// TOML sections appended to the gateway's config.
    pub extra: String,
    /// Keys added to the gateway's `[server]` section.
    pub server: String,
    /// TOML appended to the simulator's config (e.g. `[faults]`).
    pub sim: String,
    /// More `[aws]` lines.
    pub aws: String,
    /// alice's `run_as`.
    pub alice_run_as: Option<String>,
    /// One more policy file's text.
    pub policies: String,
}

/// A running gateway + simulator with users and keys.
pub struct Fixture {
    pub dir: TempDir,
    pub sim: SimServer,
    pub gw: RunningGateway,
    pub http: SocketAddr,
    pub sshd: Option<Sshd>,
    /// The askpass script that answers the reason prompt.
    pub askpass: PathBuf,
}

/// Runs a command and returns its output.
pub fn run(cmd: &str, args: &[&str]) -> Output {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

/// Generates an Ed25519 key pair with ssh-keygen.
pub fn keygen(path: &Path) {
    let out = stack::ssh_keygen(path).output().expect("ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
}

/// Signs `public` with the CA key `ca`, extra `args` before the key.
pub fn sign(ca: &Path, public: &Path, args: &[&str]) {
    let mut all = vec![
        "-q",
        "-s",
        ca.to_str().expect("ca"),
        "-I",
        "alice@corp",
        "-z",
        "4242",
    ];
    all.extend_from_slice(args);
    all.push(public.to_str().expect("pub"));
    let out = run("ssh-keygen", &all);
    assert!(out.status.success(), "ssh-keygen -s: {out:?}");
}

/// A TCP server answering every connection with a fixed HTTP response.
pub async fn http_server() -> SocketAddr {
    stack::http_service("hello from db-1\n")
        .await
        .expect("http server")
}

impl Fixture {
    /// Starts everything; `with_sshd` also starts a real sshd for web-1:22.
    pub async fn start(with_sshd: bool) -> Fixture {
        Self::start_with(with_sshd, None, "").await
    }

    /// [`Fixture::start`] recording to `database_url` (default: SQLite in
    /// the fixture's directory), with `extra` TOML sections appended to the
    /// gateway's config (e.g. `[recording]`).
    pub async fn start_with(with_sshd: bool, database_url: Option<String>, extra: &str) -> Fixture {
        Self::start_opts(Options {
            with_sshd,
            database_url,
            extra: extra.to_owned(),
            ..Options::default()
        })
        .await
    }

    /// Starts everything as `o` says. With `SSMGATE_TEST_LOG` set (a
    /// filter such as `debug`), the gateway's log goes to stderr.
    pub async fn start_opts(o: Options) -> Fixture {
        if let Ok(filter) = std::env::var("SSMGATE_TEST_LOG") {
            let _ =
                ssmgate::logging::install(ssmgate::logging::Filter::new(filter), std::io::stderr);
        }
        let Options {
            with_sshd,
            sshd_backend,
            reason_optional,
            database_url,
            extra,
            server,
            sim,
            aws,
            alice_run_as,
            policies,
        } = o;
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        let http = http_server().await;
        let server = if server.contains("login_grace_secs") {
            server
        } else {
            format!("login_grace_secs = 20\n{server}")
        };
        let mut builder = Stack::builder(d)
            .key("alice")
            .key("bob")
            .key("stranger")
            .key("ca")
            .key("rogue_ca")
            .instance(Instance::new(WEB_1, "web-1"))
            .instance(
                Instance::new(DB_1, "db-1")
                    .tag("role", "db")
                    .tag("recording", "required")
                    .port(80, http),
            )
            .instance(Instance::new(OFFLINE_1, "offline-1").offline())
            .instance(Instance::new(DUP_A, "twin"))
            .instance(Instance::new(DUP_B, "twin"))
            .sim_toml(&sim)
            .server(&server)
            .database(database_url.as_deref().unwrap_or("sqlite://ssmgate.db"))
            .user({
                let alice = User::new("alice").group("sre").key("alice");
                match &alice_run_as {
                    Some(os_user) => alice.run_as(os_user),
                    None => alice,
                }
            })
            .user(User::new("bob").group("dev"))
            .user_ca("ca")
            .policy("test.cedar", TEST_POLICIES)
            .aws(&aws)
            .extra(&extra);
        if !policies.is_empty() {
            builder = builder.policy("more.cedar", &policies);
        }
        if with_sshd {
            builder = builder.sshd(WEB_1, "alice");
        }
        if sshd_backend {
            builder = builder.sshd_backend();
        }
        if !reason_optional {
            builder = builder.justification("^INC-[0-9]+", "a ticket id like INC-123");
        }
        let Stack {
            sim,
            gateway: gw,
            sshd,
            ..
        } = builder.start().await.expect("gateway and simulator start");
        let key = d.join("alice");
        let client_config = format!(
            "Host gateway\n  HostName 127.0.0.1\n  Port {port}\n  User alice\n  \
             PreferredAuthentications keyboard-interactive,publickey\n\n\
             Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  \
             UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  ConnectTimeout 10\n",
            port = gw.addr.port(),
            key = key.display()
        );
        std::fs::write(d.join("ssh_config"), client_config).expect("write");
        let askpass = d.join("askpass");
        std::fs::write(&askpass, format!("#!/bin/sh\necho '{REASON}'\n")).expect("write");
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Fixture {
            dir,
            sim,
            gw,
            http,
            sshd,
            askpass,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// (kind, user, detail) of every audit event in the fixture's SQLite
    /// store, oldest first, once what the recorder holds is written.
    pub async fn audit_rows(&self) -> Vec<(String, String, String)> {
        use sqlx::Row;
        self.gw.recorder.flush().await;
        let url = format!("sqlite://{}", self.path("ssmgate.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.expect("sqlite");
        let rows = sqlx::query(
            "SELECT kind, coalesce(user_name, ''), detail FROM audit_events ORDER BY n",
        )
        .fetch_all(&pool)
        .await
        .expect("select");
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    /// Options every client command gets: no config, no host key checks,
    /// only the given identity, and the reason prompt at login (asked
    /// before the key, as people opt in to) answered by askpass.
    pub fn common_opts(&self, key: &str) -> Vec<String> {
        vec![
            "-o".into(),
            "PreferredAuthentications=keyboard-interactive,publickey".into(),
            "-F".into(),
            "/dev/null".into(),
            "-i".into(),
            self.path(key).display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=no".into(),
            "-o".into(),
            "UserKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
            "-o".into(),
            "ConnectTimeout=10".into(),
        ]
    }

    /// `ssh` to the gateway as `login` (e.g. `alice+web-1`).
    pub fn ssh(&self, key: &str, login: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(self.common_opts(key))
            .args(["-p", &self.gw.addr.port().to_string()])
            .arg(format!("{login}@127.0.0.1"))
            .env("SSH_ASKPASS", &self.askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Options for `ssh -J` through the gateway as alice: a config file
    /// (which OpenSSH passes on to the jump connection) naming the gateway.
    pub fn jump_opts(&self) -> Vec<String> {
        vec![
            "-F".into(),
            self.path("ssh_config").display().to_string(),
            "-J".into(),
            "gateway".into(),
        ]
    }
}

/// Runs a command with a deadline and returns its output.
pub async fn output(mut cmd: Command, secs: u64) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    tokio::time::timeout(Duration::from_secs(secs), cmd.output())
        .await
        .expect("command finishes in time")
        .expect("command runs")
}

/// A fixture whose web-1 carries terminal sessions through its own sshd,
/// or `None` (with a note) when OpenSSH's server is not installed.
pub async fn sshd_backend_fixture(reason_optional: bool) -> Option<Fixture> {
    let fx = Fixture::start_opts(Options {
        with_sshd: true,
        sshd_backend: true,
        reason_optional,
        ..Options::default()
    })
    .await;
    if fx.sshd.is_none() {
        eprintln!("sshd is not installed (openssh-server): skipping");
        return None;
    }
    Some(fx)
}

impl Fixture {
    /// The gateway's store and its sessions, newest first, once every
    /// session has ended and been written (a client may exit a moment
    /// before the gateway has finished its session; waits up to 10 s).
    pub async fn sessions(
        &self,
    ) -> (
        std::sync::Arc<dyn ssmgate::recording::Store>,
        Vec<ssmgate::recording::SessionRecord>,
    ) {
        let url = format!("sqlite://{}", self.path("ssmgate.db").display());
        let store = ssmgate::recording::connect(&url).await.expect("store");
        let mut list = Vec::new();
        for _ in 0..100 {
            self.gw.recorder.flush().await;
            list = store
                .list_sessions(&ssmgate::recording::SessionFilter::default())
                .await
                .expect("list");
            if list.iter().all(|s| s.end.is_some()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (store, list)
    }
}

/// The bytes of session `id`'s events of `kind`, joined.
pub async fn recorded(
    store: &dyn ssmgate::recording::Store,
    id: uuid::Uuid,
    kind: ssmgate::recording::EventKind,
) -> Vec<u8> {
    store
        .chunks(id)
        .await
        .expect("chunks")
        .iter()
        .flat_map(|c| c.events.iter())
        .filter(|e| e.kind == kind)
        .flat_map(|e| e.data.to_vec())
        .collect()
}

/// The sftp file operations recorded for session `id`, as JSON.
pub async fn recorded_ops(
    store: &dyn ssmgate::recording::Store,
    id: uuid::Uuid,
) -> Vec<serde_json::Value> {
    store
        .chunks(id)
        .await
        .expect("chunks")
        .iter()
        .flat_map(|c| c.events.iter())
        .filter(|e| e.kind == ssmgate::recording::EventKind::File)
        .map(|e| serde_json::from_slice(&e.data).expect("a file operation is JSON"))
        .collect()
}

/// An output's status, stdout and stderr, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Fixture {
    /// `ssh alice+TARGET echo ok` through the gateway, with alice's key.
    pub async fn echo_on(&self, target: &str, secs: u64) -> Output {
        let mut cmd = self.ssh("alice", &format!("alice+{target}"));
        cmd.args(["echo", "ok"]);
        output(cmd, secs).await
    }
}
