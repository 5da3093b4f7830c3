//! Set-up for `ssmgate bench ssh` beside the demo's stack: the temporary
//! directory, the plain TCP relay, bounded commands, and the OpenSSH
//! client's configuration.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::SHORT;

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

/// CPU time (user + system) of this process so far: the gateway and the
/// simulator, which run in it.
pub(super) fn own_cpu() -> Duration {
    proc_cpu("/proc/self/stat", false)
}

/// CPU time of process `pid` and of its children it has reaped (sshd and
/// the sessions it forked and waited for).
pub(super) fn tree_cpu(pid: u32) -> Duration {
    proc_cpu(&format!("/proc/{pid}/stat"), true)
}

/// utime + stime (+ cutime + cstime) from a `/proc/…/stat` file; zero when
/// unreadable (the figure is then missing, not wrong).
fn proc_cpu(path: &str, children: bool) -> Duration {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Duration::ZERO;
    };
    // The command name is in parentheses and may hold spaces: fields
    // are counted after the last ')'. utime is field 14 (1-based), so
    // index 11 after the name and state.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let take = if children { 4 } else { 2 };
    let ticks: u64 = fields.iter().skip(11).take(take).sum();
    // /proc counts in USER_HZ, 100 on every Linux the kernel ABI allows.
    Duration::from_secs_f64(ticks as f64 / 100.0)
}

/// `OpenSSH_x.y…` as `ssh -V` reports it.
pub(super) async fn openssh_version() -> String {
    match timeout(SHORT, Command::new("ssh").arg("-V").output()).await {
        Ok(Ok(o)) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
        _ => "ssh (version unknown)".into(),
    }
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
