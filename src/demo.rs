//! `ssmgate demo`: one command that starts the simulator with a few
//! instances, a gateway in front of it, a demo user, and — when OpenSSH's
//! `sshd` is installed — a real sshd as `web-1`'s port 22, then prints the
//! exact commands to paste. Ctrl-C stops everything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result};
use ssm_sim::config::SimConfig;
use ssm_sim::server::SimServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::config::Config;
use crate::serve;
use crate::ssh::hostkey;

/// Instance ids of the demo fleet.
pub const WEB_1: &str = "i-0d3e5a7b9c1f20001";
pub const DB_1: &str = "i-0d3e5a7b9c1f20002";
pub const OFFLINE_1: &str = "i-0d3e5a7b9c1f20003";
/// The port of db-1's demo service.
pub const DB_SERVICE_PORT: u16 = 80;

/// Options of `ssmgate demo`.
pub struct DemoOptions {
    /// Where to write the config and keys; a fresh directory when absent.
    pub dir: Option<PathBuf>,
    /// The gateway's SSH port.
    pub port: u16,
}

/// Everything the demo started.
pub struct Demo {
    pub dir: PathBuf,
    pub gateway: serve::RunningGateway,
    pub sim: SimServer,
    pub sshd: Option<Child>,
    /// The OS user the demo sshd lets in (for `ssh -J`).
    pub os_user: String,
}

/// Starts the demo and waits for Ctrl-C.
pub async fn run(options: DemoOptions) -> Result<()> {
    let stop = crate::signals::Stop::install()?;
    let demo = start(options).await?;
    println!("{}", instructions(&demo));
    stop.wait().await;
    println!("\nssmgate demo: stopping");
    demo.stop().await;
    Ok(())
}

impl Demo {
    /// Stops the gateway, the simulator and sshd.
    pub async fn stop(mut self) {
        self.gateway.shutdown().await;
        let _ = self.sim.shutdown().await;
        if let Some(sshd) = self.sshd.as_mut() {
            let _ = sshd.kill().await;
        }
    }
}

/// Starts every part of the demo.
pub async fn start(options: DemoOptions) -> Result<Demo> {
    let dir = match options.dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!(
            "ssmgate-demo-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let (user_key, _) = hostkey::load_or_generate(&dir.join("demo_user_key"))?;
    let user_pub = user_key.public_key().to_openssh()?;
    let service = db_service().await?;
    let os_user = os_user();
    let sshd = match find_sshd() {
        Some(path) => Some(start_sshd(&path, &dir, &user_pub).await?),
        None => None,
    };
    let sim = SimServer::start(
        "127.0.0.1:0".parse()?,
        SimConfig::from_toml_str(&sim_toml(service, sshd.as_ref().map(|s| s.1)))?,
    )
    .await
    .context("starting the SSM simulator")?;
    write_policies(&dir)?;
    let config_path = dir.join("ssmgate.toml");
    std::fs::write(
        &config_path,
        gateway_toml(options.port, &sim.endpoint(), &user_pub),
    )?;
    let config = Config::load(&config_path)?;
    let gateway = serve::start(&config)
        .await
        .context("starting the gateway")?;
    let (sshd_child, sshd_pub) = match sshd {
        Some((child, _, public)) => (Some(child), Some(public)),
        None => (None, None),
    };
    write_client_files(
        &dir,
        gateway.addr,
        &gateway.host_key_openssh,
        sshd_pub.as_deref(),
        &os_user,
    )?;
    Ok(Demo {
        dir,
        gateway,
        sim,
        sshd: sshd_child,
        os_user,
    })
}

fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".into())
}

fn sim_toml(service: SocketAddr, sshd: Option<SocketAddr>) -> String {
    let web_ports = match sshd {
        Some(a) => format!("ports = {{ \"22\" = \"{a}\" }}\n"),
        None => String::new(),
    };
    format!(
        r#"mode = "fast"

[[instances]]
id = "{WEB_1}"
name = "web-1"
computer_name = "web-1.demo.internal"
tags = {{ env = "dev", role = "web" }}
{web_ports}
[[instances]]
id = "{DB_1}"
name = "db-1"
computer_name = "db-1.demo.internal"
tags = {{ env = "prod", role = "db" }}
ports = {{ "{DB_SERVICE_PORT}" = "{service}" }}

[[instances]]
id = "{OFFLINE_1}"
name = "offline-1"
tags = {{ env = "dev" }}
ping_status = "ConnectionLost"
"#
    )
}

fn gateway_toml(port: u16, endpoint: &str, user_pub: &str) -> String {
    format!(
        r#"# Written by `ssmgate demo`; `ssmgate serve --config` accepts it as is
# while the demo's simulator runs.

[server]
listen = "127.0.0.1:{port}"
host_key = "ssmgate_host_ed25519_key"

[aws]
region = "us-east-1"
endpoint = "{endpoint}"
credentials = "none"      # the simulator needs no credentials

[database]
url = "sqlite://ssmgate.db"   # every session and audit event is recorded here

[justification]
required = true
pattern = '^.{{3,}}$'
hint = "a few words on why, e.g. 'checking disk space'"

[[users]]
name = "demo"
groups = ["developers"]
authorized_keys = ["{user_pub}"]
"#
    )
}

/// The demo's Cedar policies: the demo user may open anything, but shells
/// and commands on the production target need a ticket-like reason.
pub const DEMO_POLICIES: &str = r#"// Written by `ssmgate demo`. Edit and save: the gateway reloads it.

@id("demo-developers")
@description("The demo user's group may open every kind of session")
permit (principal in Group::"developers", action, resource);

@id("demo-prod-ticket")
@message("db-1 is production: shells and commands there need a reason that starts with a ticket, e.g. \"INC-123 checking load\"")
forbid (principal, action in [Action::"shell", Action::"exec"], resource)
when { resource.hasTag("env") && resource.getTag("env") == "prod" }
unless { context has reason && context.reason like "INC-*" };
"#;

fn write_policies(dir: &Path) -> Result<()> {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies)?;
    std::fs::write(policies.join("schema.cedarschema"), crate::policy::SCHEMA)?;
    std::fs::write(policies.join("demo.cedar"), DEMO_POLICIES)?;
    Ok(())
}

/// A tiny HTTP service that plays db-1's port 80.
async fn db_service() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 65_536 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(buf.get(..n).unwrap_or_default()),
                    }
                }
                let body = "hello from db-1, through ssmgate and SSM port forwarding\n";
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    Ok(addr)
}

/// Where OpenSSH's server is, if installed.
pub fn find_sshd() -> Option<PathBuf> {
    ["/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Starts sshd on a free port with its own host key, authorising `user_pub`.
async fn start_sshd(
    sshd: &Path,
    dir: &Path,
    user_pub: &str,
) -> Result<(Child, SocketAddr, String)> {
    let (host_key, _) = hostkey::load_or_generate(&dir.join("sshd_host_ed25519_key"))?;
    let host_pub = host_key.public_key().to_openssh()?;
    std::fs::write(dir.join("authorized_keys"), format!("{user_pub}\n"))?;
    let port = free_port()?;
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {pid}\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
         UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n",
        hk = dir.join("sshd_host_ed25519_key").display(),
        ak = dir.join("authorized_keys").display(),
        pid = dir.join("sshd.pid").display(),
    );
    let config_path = dir.join("sshd_config");
    std::fs::write(&config_path, config)?;
    // Privilege separation wants this directory when sshd runs as root.
    let _ = std::fs::create_dir_all("/run/sshd");
    let child = Command::new(sshd)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(dir.join("sshd.log"))?))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", sshd.display()))?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok((child, addr, host_pub));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("sshd did not start; see {}", dir.join("sshd.log").display())
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn write_client_files(
    dir: &Path,
    gateway: SocketAddr,
    gateway_pub: &str,
    sshd_pub: Option<&str>,
    os_user: &str,
) -> Result<()> {
    let mut known = format!("[{}]:{} {}\n", gateway.ip(), gateway.port(), gateway_pub);
    if let Some(p) = sshd_pub {
        known.push_str(&format!("web-1,{WEB_1} {p}\n"));
    }
    std::fs::write(dir.join("known_hosts"), known)?;
    let key = dir.join("demo_user_key");
    let kh = dir.join("known_hosts");
    let config = format!(
        "Host ssmgate-demo\n  HostName {ip}\n  Port {port}\n  User demo\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n\n\
         Host web-1\n  User {os_user}\n  ProxyJump ssmgate-demo\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n",
        ip = gateway.ip(),
        port = gateway.port(),
        key = key.display(),
        kh = kh.display(),
    );
    std::fs::write(dir.join("ssh_config"), config)?;
    Ok(())
}

/// The text printed once the demo is up.
pub fn instructions(demo: &Demo) -> String {
    let d = demo.dir.display();
    let port = demo.gateway.addr.port();
    let base = format!("ssh -F {d}/ssh_config");
    let mut t = format!(
        "ssmgate demo is running (directory {d}).\n\
         Gateway 127.0.0.1:{port}, host key {fp}; SSM simulator at {sim}.\n\
         Instances: web-1 (online, shell), db-1 (online, HTTP on port {DB_SERVICE_PORT}), offline-1 (not connected).\n\
         User: demo, key {d}/demo_user_key. Access asks for a reason (any 3+ characters).\n\n\
         Shell on web-1 (answer the reason prompt):\n  {base} ssmgate-demo -l demo+web-1\n\n\
         A command, non-interactively:\n  {base} -o 'SetEnv=SSMGATE_REASON=\"demo run\"' ssmgate-demo -l demo+web-1 'uname -a; exit 3'; echo \"exit status $?\"\n\n\
         Pick a target from a menu:\n  {base} -t ssmgate-demo\n\n\
         Port forwarding to db-1, then curl it in another terminal:\n  {base} -N -L 8080:db-1:{DB_SERVICE_PORT} ssmgate-demo\n  curl http://127.0.0.1:8080/\n\n\
         A refusal (target not connected):\n  {base} -o 'SetEnv=SSMGATE_REASON=\"demo run\"' ssmgate-demo -l demo+offline-1 true\n\n\
         A refusal by policy (policies in {d}/policies; db-1 is production), then the same with a ticket:\n  \
         {base} -o 'SetEnv=SSMGATE_REASON=\"looking\"' ssmgate-demo -l demo+db-1 uptime\n  \
         {base} -o 'SetEnv=SSMGATE_REASON=\"INC-123 checking load\"' ssmgate-demo -l demo+db-1 uptime\n",
        fp = demo.gateway.host_key_fingerprint,
        sim = demo.sim.endpoint(),
    );
    if demo.sshd.is_some() {
        t.push_str(&format!(
            "\nssh -J, scp and sftp to web-1's own sshd (as {user}):\n  {base} web-1 hostname\n  \
             scp -F {d}/ssh_config /etc/hostname web-1:/tmp/copied-through-ssmgate\n  \
             sftp -F {d}/ssh_config web-1\n",
            user = demo.os_user
        ));
    } else {
        t.push_str("\nssh -J, scp and sftp need a real sshd behind web-1: install OpenSSH's server (Debian/Ubuntu: apt-get install openssh-server) and run the demo again.\n");
    }
    // The binary that runs the demo (`cargo run` builds it under target/).
    let exe = std::env::current_exe()
        .ok()
        .filter(|p| p.file_name().is_some_and(|n| n == "ssmgate"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "ssmgate".into());
    let sessions = format!("{exe} sessions --config {d}/ssmgate.toml");
    t.push_str(&format!(
        "\nEvery session is recorded in {d}/ssmgate.db (SQLite). After trying the commands above:\n  \
         {sessions} list\n  \
         {sessions} show ID            (ID: the first column of the list)\n  \
         {sessions} replay ID          (plays a shell back with its timing)\n  \
         {sessions} export ID --format asciicast --output session.cast\n  \
         {sessions} verify --all       (recomputes every hash chain)\n"
    ));
    t.push_str("\nCtrl-C stops the demo.");
    t
}
