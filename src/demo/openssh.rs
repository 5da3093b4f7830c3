//! The real OpenSSH pieces of the demo's [`Stack`](super::stack::Stack):
//! key pairs (by `ssh-keygen`, or the gateway's own generator) and an
//! `sshd` on a loopback port. Compiled into the tests too, beside `stack`
//! (see there).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ssmgate::keyfile;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::timeout;

/// Bound on one `ssh-keygen`.
const LIMIT: Duration = Duration::from_secs(20);

/// The file of sshd's host key in the stack's directory.
const SSHD_HOST_KEY: &str = "sshd_host_ed25519_key";

/// How the stack makes its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keygen {
    /// OpenSSH's `ssh-keygen` (Ed25519, no passphrase).
    OpenSsh,
    /// The gateway's own generator (as for its host key), so that nothing
    /// but the gateway is needed.
    Builtin,
}

/// A real sshd on a loopback port.
#[derive(Debug)]
pub struct Sshd {
    /// The process (killed on drop).
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its host key's public half, OpenSSH format (for known_hosts).
    pub host_key: String,
}

/// `ssh-keygen` making an Ed25519 key pair at `path` and `path.pub`.
pub fn ssh_keygen(path: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new("ssh-keygen");
    cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", "ssmgate", "-f"])
        .arg(path);
    cmd
}

/// Makes (or keeps) the key pair at `path`; its public half.
pub(crate) async fn make_key(path: &Path, keygen: Keygen) -> Result<String> {
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);
    match keygen {
        Keygen::Builtin => {
            let (key, _) = keyfile::load_or_generate(path, "ssmgate demo key")?;
            Ok(key.public_key().to_openssh()?)
        }
        Keygen::OpenSsh if path.exists() && pub_path.exists() => read_line(&pub_path),
        Keygen::OpenSsh => {
            let mut cmd = Command::from(ssh_keygen(path));
            cmd.stdin(Stdio::null()).kill_on_drop(true);
            let out = timeout(LIMIT, cmd.output())
                .await
                .with_context(|| format!("ssh-keygen -f {}: no answer", path.display()))?
                .context("running ssh-keygen")?;
            if !out.status.success() {
                bail!(
                    "ssh-keygen -f {} failed ({}): {}",
                    path.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            read_line(&pub_path)
        }
    }
}

fn read_line(path: &Path) -> Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_owned())
}

/// Who runs this process: the OS user a stack's sshd lets in.
pub async fn current_user() -> String {
    let out = timeout(LIMIT, Command::new("id").arg("-un").output()).await;
    match out {
        Ok(Ok(o)) if o.status.success() && !o.stdout.trim_ascii().is_empty() => {
            String::from_utf8_lossy(&o.stdout).trim().to_owned()
        }
        _ => std::env::var("USER").unwrap_or_else(|_| "root".into()),
    }
}

/// Where OpenSSH's server is, if installed.
pub fn find_sshd() -> Option<PathBuf> {
    ["/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Starts sshd on a free loopback port with its own host key, letting
/// `authorized` in; its log is `sshd.log` in `dir`.
pub(crate) async fn start_sshd(
    binary: &Path,
    dir: &Path,
    keygen: Keygen,
    authorized: &str,
    options: &str,
) -> Result<Sshd> {
    let host_key_path = dir.join(SSHD_HOST_KEY);
    let host_key = make_key(&host_key_path, keygen).await?;
    std::fs::write(dir.join("authorized_keys"), format!("{authorized}\n"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {pid}\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
         UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n",
        hk = host_key_path.display(),
        ak = dir.join("authorized_keys").display(),
        pid = dir.join("sshd.pid").display(),
    );
    config.push_str(options);
    if !config.ends_with('\n') {
        config.push('\n');
    }
    let config_path = dir.join("sshd_config");
    std::fs::write(&config_path, config)?;
    // Privilege separation wants this directory when sshd runs as root.
    let _ = std::fs::create_dir_all("/run/sshd");
    let log = dir.join("sshd.log");
    let mut child = Command::new(binary)
        .args(["-D", "-e", "-f"])
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log)?))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(Sshd {
                child,
                addr,
                host_key,
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("sshd exited ({status}): {}", text.trim());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!(
        "sshd did not listen on {addr} within 5 s; see {}",
        log.display()
    )
}
