//! Set-up for `ssmgate bench ssh`: the temporary directory, keys made by
//! `ssh-keygen`, a real sshd, the plain TCP relay, and the configuration
//! texts of the simulator, the gateway and the OpenSSH client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::{SHORT, WEB_1};

/// A directory under the system temp dir, removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new() -> Result<TempDir> {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let path =
            std::env::temp_dir().join(format!("ssmgate-bench-ssh-{}", tag.get(..8).unwrap_or("")));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(TempDir(path.canonicalize()?))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A real sshd on a free loopback port.
pub(super) struct Sshd {
    pub(super) child: Child,
    pub(super) addr: SocketAddr,
}

/// A plain TCP relay from a fresh loopback port to `to`.
pub(super) async fn relay(to: SocketAddr) -> Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(to).await else {
                    return;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional_with_sizes(
                    &mut inbound,
                    &mut outbound,
                    64 * 1024,
                    64 * 1024,
                )
                .await;
            });
        }
    });
    Ok((addr, task))
}

/// Runs `cmd` to completion within `limit`; its stderr on failure.
pub(super) async fn run_bounded(mut cmd: Command, limit: Duration) -> Result<()> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = timeout(limit, cmd.output())
        .await
        .with_context(|| format!("did not finish within {limit:?}"))??;
    if !out.status.success() {
        bail!(
            "failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// An Ed25519 key pair at `path` and `path.pub`, by ssh-keygen.
pub(super) async fn keygen(path: &Path) -> Result<()> {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", "ssmgate-bench", "-f"])
        .arg(path);
    run_bounded(cmd, SHORT)
        .await
        .with_context(|| format!("ssh-keygen -f {}", path.display()))
}

pub(super) fn read_line(path: &Path) -> Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_owned())
}

/// The user we run as: sshd lets the bench's key in for this account.
pub(super) async fn os_user() -> String {
    let out = timeout(SHORT, Command::new("id").arg("-un").output()).await;
    match out {
        Ok(Ok(o)) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        _ => std::env::var("USER").unwrap_or_else(|_| "root".into()),
    }
}

/// `OpenSSH_x.y…` as `ssh -V` reports it.
pub(super) async fn openssh_version() -> String {
    match timeout(SHORT, Command::new("ssh").arg("-V").output()).await {
        Ok(Ok(o)) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
        _ => "ssh (version unknown)".into(),
    }
}

/// Starts sshd on a free loopback port with an ssh-keygen host key,
/// authorising `user_pub`.
pub(super) async fn start_sshd(sshd: &Path, dir: &Path, user_pub: &str) -> Result<Sshd> {
    let host_key = dir.join("sshd_host_key");
    keygen(&host_key).await?;
    std::fs::write(dir.join("authorized_keys"), format!("{user_pub}\n"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {pid}\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
         UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nUseDNS no\nPrintMotd no\n\
         MaxStartups 100\nSubsystem sftp internal-sftp\nSetEnv SHLVL=1\n",
        hk = host_key.display(),
        ak = dir.join("authorized_keys").display(),
        pid = dir.join("sshd.pid").display(),
    );
    // `SetEnv SHLVL=1`: Debian's bash sources ~/.bashrc when started by
    // sshd unless it is a nested shell; an rc file that runs tools (pyenv,
    // conda, …) would otherwise add hundreds of ms to every set-up, while
    // the simulator runs commands with plain `sh -c`.
    let config_path = dir.join("sshd_config");
    std::fs::write(&config_path, config)?;
    // Privilege separation wants this directory when sshd runs as root.
    let _ = std::fs::create_dir_all("/run/sshd");
    let log = dir.join("sshd.log");
    let mut child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log)?))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", sshd.display()))?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(Sshd { child, addr });
        }
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("sshd exited ({status}): {}", text.trim());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("sshd did not listen on {addr} within 5 s")
}

pub(super) fn sim_toml(sshd: Option<SocketAddr>) -> String {
    let ports = sshd
        .map(|a| format!("ports = {{ \"22\" = \"{a}\" }}\n"))
        .unwrap_or_default();
    format!("mode = \"fast\"\n\n[[instances]]\nid = \"{WEB_1}\"\nname = \"web-1\"\n{ports}")
}

pub(super) fn gateway_toml(endpoint: &str, user_pub: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
host_key = "gateway_host_key"

[aws]
region = "us-east-1"
endpoint = "{endpoint}"
credentials = "none"

[justification]
required = false

[[users]]
name = "alice"
authorized_keys = ["{user_pub}"]
"#
    )
}

/// Options for every client, also inherited by `ProxyJump` children.
pub(super) fn client_config_text(dir: &Path) -> String {
    format!(
        "Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  \
         UserKnownHostsFile /dev/null\n  GlobalKnownHostsFile /dev/null\n  UpdateHostKeys no\n  \
         BatchMode yes\n  LogLevel ERROR\n  ConnectTimeout 10\n  ControlMaster no\n  \
         ControlPath none\n  Compression no\n",
        key = dir.join("user_key").display()
    )
}
