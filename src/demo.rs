//! `ssmgate demo`: one command that starts the simulator with a few
//! instances, a gateway in front of it, a demo user, and — when OpenSSH's
//! `sshd` is installed — a real sshd as `web-1`'s port 22, then prints the
//! exact commands to paste. Ctrl-C stops everything.

pub mod openssh;
pub mod stack;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ssm_sim::server::SimServer;

use crate::serve;
use stack::{Instance, Keygen, Sshd, Stack, User, http_service};

/// Instance ids of the demo fleet.
pub const WEB_1: &str = "i-0d3e5a7b9c1f20001";
pub const DB_1: &str = "i-0d3e5a7b9c1f20002";
pub const OFFLINE_1: &str = "i-0d3e5a7b9c1f20003";
/// The port of db-1's demo service.
pub const DB_SERVICE_PORT: u16 = 80;
/// The demo user's key, in the demo's directory.
const USER_KEY: &str = "demo_user_key";

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
    pub sshd: Option<Sshd>,
    /// The OS user the demo sshd lets in (for `ssh -J`).
    pub os_user: String,
}

/// Starts the demo and waits for Ctrl-C.
pub async fn run(options: DemoOptions) -> Result<()> {
    let mut stop = crate::signals::Stop::install()?;
    let demo = start(options).await?;
    println!("{}", instructions(&demo));
    stop.wait().await;
    println!("\nssmgate demo: stopping");
    demo.stop().await;
    Ok(())
}

impl Demo {
    /// Stops the gateway, the simulator and sshd.
    pub async fn stop(self) {
        let stack = Stack {
            dir: self.dir,
            sim: self.sim,
            gateway: self.gateway,
            sshd: self.sshd,
        };
        stack.stop().await;
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
    let service =
        http_service("hello from db-1, through ssmgate and SSM port forwarding\n").await?;
    let os_user = stack::current_user().await;
    let admin = free_local_port()?;
    let stack = Stack::builder(&dir)
        .keygen(Keygen::Builtin)
        .key(USER_KEY)
        .instance(
            Instance::new(WEB_1, "web-1")
                .computer_name("web-1.demo.internal")
                .tag("env", "dev")
                .tag("role", "web"),
        )
        .instance(
            Instance::new(DB_1, "db-1")
                .computer_name("db-1.demo.internal")
                .tag("env", "prod")
                .tag("role", "db")
                .port(DB_SERVICE_PORT, service),
        )
        .instance(
            Instance::new(OFFLINE_1, "offline-1")
                .tag("env", "dev")
                .offline(),
        )
        .sshd(WEB_1, USER_KEY)
        .sshd_backend()
        .header(
            "# Written by `ssmgate demo`; `ssmgate serve --config` accepts it as is\n\
             # while the demo's simulator runs.\n\n",
        )
        .port(options.port)
        .host_key("ssmgate_host_ed25519_key")
        .justification("^.{3,}$", "a few words on why, e.g. 'checking disk space'")
        .user(User::new("demo").group("developers").key(USER_KEY))
        .policy("demo.cedar", DEMO_POLICIES)
        .extra(&format!(
            "[admin]\nlisten = \"127.0.0.1:{admin}\"   # /healthz, /readyz, /metrics\n"
        ))
        .start()
        .await?;
    write_client_files(
        &dir,
        stack.gateway.addr,
        &stack.gateway.host_key_openssh,
        stack.sshd.as_ref().map(|s| s.host_key.as_str()),
        &os_user,
    )?;
    let Stack {
        dir,
        sim,
        gateway,
        sshd,
    } = stack;
    Ok(Demo {
        dir,
        gateway,
        sim,
        sshd,
        os_user,
    })
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

/// A port on 127.0.0.1 that is free now (for the admin listener, so the
/// config file names a fixed one).
fn free_local_port() -> Result<u16> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(probe.local_addr()?.port())
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
         Gateway 127.0.0.1:{port}, host key {fp}; SSM simulator at {sim}.\n{admin}\
         Instances: web-1 (online, shell), db-1 (online, HTTP on port {DB_SERVICE_PORT}), offline-1 (not connected).\n\
         User: demo, key {d}/demo_user_key. Access needs a reason (any 3+ characters).\n\n\
         Shell on web-1 (the gateway asks for the reason on your terminal):\n  {base} ssmgate-demo -l demo+web-1\n\n\
         A command, non-interactively:\n  {base} -o 'SetEnv=SSMGATE_REASON=\"demo run\"' ssmgate-demo -l demo+web-1 'uname -a; exit 3'; echo \"exit status $?\"\n\n\
         Pick a target from a menu:\n  {base} -t ssmgate-demo\n\n\
         Port forwarding to db-1, then curl it in another terminal:\n  {base} -N -L 8080:db-1:{DB_SERVICE_PORT} ssmgate-demo\n  curl http://127.0.0.1:8080/\n\n\
         A refusal (target not connected):\n  {base} -o 'SetEnv=SSMGATE_REASON=\"demo run\"' ssmgate-demo -l demo+offline-1 true\n\n\
         A refusal by policy (policies in {d}/policies; db-1 is production), then the same with a ticket:\n  \
         {base} -o 'SetEnv=SSMGATE_REASON=\"looking\"' ssmgate-demo -l demo+db-1 uptime\n  \
         {base} -o 'SetEnv=SSMGATE_REASON=\"INC-123 checking load\"' ssmgate-demo -l demo+db-1 uptime\n",
        fp = demo.gateway.host_key_fingerprint,
        sim = demo.sim.endpoint(),
        admin = demo.gateway.admin_addr.map_or(String::new(), |a| format!(
            "Metrics: http://{a}/metrics (health: http://{a}/healthz, readiness: http://{a}/readyz).\n"
        )),
    );
    if demo.sshd.is_some() {
        let why = "-o SetEnv=SSMGATE_REASON=demo-run";
        t.push_str(&format!(
            "\nweb-1 runs its sessions through its own sshd (as {user}, with a certificate the gateway signs per session), \
             so stdin, exit codes, scp, sftp and rsync work gateway style, recorded in full (sftp as file operations):\n  \
             echo hello | {base} {why} ssmgate-demo -l demo+web-1 'cat > /tmp/hello.txt; wc -c < /tmp/hello.txt'\n  \
             scp -F {d}/ssh_config {why} /etc/hostname demo+web-1@ssmgate-demo:/tmp/copied-through-ssmgate\n  \
             sftp -F {d}/ssh_config {why} demo+web-1@ssmgate-demo\n  \
             rsync -av -e \"ssh -F {d}/ssh_config {why}\" /etc/hostname demo+web-1@ssmgate-demo:/tmp/rsynced\n\n\
             ssh -J to web-1's own sshd (end to end, recorded as metadata). A forward carries no SetEnv, \
             so grant yourself a reason for a while first (list: ... reason; end: ... reason --revoke):\n  \
             {base} ssmgate-demo reason 'demo run' --for 30m\n  {base} web-1 hostname\n",
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
