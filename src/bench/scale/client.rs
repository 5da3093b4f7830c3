//! The load side of `ssmgate bench scale`, in the bench process: the TCP
//! echo server the simulated instance's port leads to, and russh client
//! sessions through the gateway — one SSH connection per session, each with
//! one channel: a direct-tcpip forward to the echo port (`port`), a shell
//! without a terminal (`shell`) or a long-running command (`exec`: a command
//! without a terminal gets no standard input through SSM, so it prints a
//! line and sleeps) — opened, echoed through and closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use russh::client::{self, AuthResult};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{Channel, ChannelMsg, Disconnect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

use super::stack::{ECHO_PORT, INSTANCE_NAME, USER};
use crate::cli::ScaleKind;

/// What an `exec` session prints once started.
const READY: &str = "ssmgate-scale-ready";
/// Bound on one echo.
const ECHO_LIMIT: Duration = Duration::from_secs(20);

/// Starts a TCP echo server on a free loopback port; its address and the
/// count of connections it accepted.
pub(super) async fn echo_server() -> Result<(SocketAddr, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                // Out of descriptors, most likely: try again shortly.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let _ = conn.set_nodelay(true);
                let mut buf = [0u8; 4096];
                loop {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let Some(bytes) = buf.get(..n) else { break };
                            if conn.write_all(bytes).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    Ok((addr, accepted))
}

/// Trusts any host key: the gateway's is made fresh for the run.
struct Trusting;

impl client::Handler for Trusting {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// Opens sessions of one kind through the gateway.
pub(super) struct Client {
    config: Arc<client::Config>,
    key: Arc<PrivateKey>,
    gateway: SocketAddr,
    kind: ScaleKind,
}

/// One open session: its connection and its channel.
pub(super) struct Open {
    handle: client::Handle<Trusting>,
    channel: Channel<client::Msg>,
}

/// How long the parts of an open took.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    /// TCP connect, key exchange and public-key authentication.
    pub(super) login: Duration,
    /// From then until the session is usable: the forward confirmed (the
    /// gateway confirms once the SSM session is ready), or for a shell or
    /// command the request answered and a first line echoed back.
    pub(super) channel: Duration,
}

impl Timing {
    pub(super) fn total(&self) -> Duration {
        self.login + self.channel
    }
}

impl Client {
    pub(super) fn new(key: PrivateKey, gateway: SocketAddr, kind: ScaleKind) -> Client {
        let config = client::Config {
            nodelay: true,
            ..Default::default()
        };
        Client {
            config: Arc::new(config),
            key: Arc::new(key),
            gateway,
            kind,
        }
    }

    /// Opens one session, ready for use.
    pub(super) async fn open(&self) -> Result<(Open, Timing)> {
        let start = Instant::now();
        let mut handle = client::connect(self.config.clone(), self.gateway, Trusting)
            .await
            .context("SSH connection")?;
        let login = match self.kind {
            ScaleKind::Port => USER.to_owned(),
            ScaleKind::Shell | ScaleKind::Exec => format!("{USER}+{INSTANCE_NAME}"),
        };
        let auth = handle
            .authenticate_publickey(login, PrivateKeyWithHashAlg::new(self.key.clone(), None))
            .await
            .context("authentication")?;
        if !matches!(auth, AuthResult::Success) {
            bail!("authentication refused: {auth:?}");
        }
        let login = start.elapsed();
        let channel = match self.kind {
            ScaleKind::Port => handle
                .channel_open_direct_tcpip(INSTANCE_NAME, u32::from(ECHO_PORT), "127.0.0.1", 0)
                .await
                .context("direct-tcpip channel")?,
            ScaleKind::Shell | ScaleKind::Exec => {
                let mut ch = handle
                    .channel_open_session()
                    .await
                    .context("session channel")?;
                if self.kind == ScaleKind::Shell {
                    ch.request_shell(true).await?;
                } else {
                    ch.exec(true, format!("echo {READY}; exec sleep 3600"))
                        .await?;
                }
                answered(&mut ch).await?;
                let mut open = Open {
                    handle,
                    channel: ch,
                };
                // Success is answered before the SSM session starts: a
                // session is ready once something comes back through it.
                if self.kind == ScaleKind::Shell {
                    open.echo(self.kind, "ready").await?;
                } else {
                    open.expect(&format!("{READY}\n")).await?;
                }
                return Ok((
                    open,
                    Timing {
                        login,
                        channel: start.elapsed().saturating_sub(login),
                    },
                ));
            }
        };
        Ok((
            Open { handle, channel },
            Timing {
                login,
                channel: start.elapsed().saturating_sub(login),
            },
        ))
    }
}

/// Waits for the answer to a shell or exec request.
async fn answered(ch: &mut Channel<client::Msg>) -> Result<()> {
    let mut said = Vec::new();
    loop {
        match ch.wait().await {
            Some(ChannelMsg::Success) => return Ok(()),
            Some(ChannelMsg::Failure) => bail!("request refused"),
            Some(ChannelMsg::ExtendedData { data, .. }) => said.extend_from_slice(&data),
            Some(ChannelMsg::Eof | ChannelMsg::Close) | None => bail!(
                "channel closed before the request was answered: {}",
                String::from_utf8_lossy(&said).trim()
            ),
            Some(_) => {}
        }
    }
}

impl Open {
    /// Sends a line holding `tag` and waits (bounded) for it to come back:
    /// the bytes themselves through a forward, the output of `echo` from a
    /// shell. (Not for `exec`: data sent to a command without a terminal
    /// stops it.)
    pub(super) async fn echo(&mut self, kind: ScaleKind, tag: &str) -> Result<()> {
        let marker = format!("ssmgate-scale-{tag}");
        let sent = match kind {
            // The shell's terminal on the instance echoes the input too:
            // quotes keep the marker out of that echo.
            ScaleKind::Shell => format!("echo ssmgate-scale-''{tag}\n"),
            ScaleKind::Port | ScaleKind::Exec => format!("{marker}\n"),
        };
        self.channel
            .data(sent.as_bytes())
            .await
            .context("sending")?;
        self.expect(&format!("{marker}\n")).await
    }

    /// Waits (bounded) for `wanted` on the channel's standard output.
    async fn expect(&mut self, wanted: &str) -> Result<()> {
        let ch = &mut self.channel;
        let read = async {
            let mut got = Vec::new();
            let mut said = Vec::new();
            loop {
                match ch.wait().await {
                    Some(ChannelMsg::Data { data }) => {
                        got.extend(data.iter().filter(|b| **b != b'\r'));
                        if String::from_utf8_lossy(&got).contains(wanted) {
                            return Ok(());
                        }
                    }
                    Some(ChannelMsg::ExtendedData { data, .. }) => said.extend_from_slice(&data),
                    Some(ChannelMsg::Eof | ChannelMsg::Close) | None => bail!(
                        "channel closed before the echo ({} bytes back): {}",
                        got.len(),
                        String::from_utf8_lossy(&said).trim()
                    ),
                    Some(_) => {}
                }
            }
        };
        timeout(ECHO_LIMIT, read)
            .await
            .with_context(|| format!("no echo within {ECHO_LIMIT:?}"))?
    }

    /// Ends the connection (a disconnect message, then the socket).
    pub(super) async fn close(self) {
        let _ = timeout(
            Duration::from_secs(5),
            self.handle
                .disconnect(Disconnect::ByApplication, "bench over", "en"),
        )
        .await;
        drop(self.channel);
        drop(self.handle);
    }
}
