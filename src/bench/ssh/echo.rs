//! Keystroke echo latency for `ssmgate bench ssh`: one character at a time
//! into a shell, timing until the terminal echoes it back — through a real
//! `ssh -tt` running in a PTY we control, and through a shell session opened
//! straight on the data channel against the simulator.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use ssm_datachannel::secret::Secret;
use ssm_datachannel::{ChannelConfig, DataChannel, Event, Events, SessionKind, open};
use ssm_sim::client::sdk_client;
use ssm_sim::process::{PtyInput, PtyOutput, PtyProcess, PtySpawn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout, timeout_at};

/// Bound on reaching the prompt and on any single echo.
const LIMIT: Duration = Duration::from_secs(20);
/// Pause between keystrokes, like (a fast) typist.
const GAP: Duration = Duration::from_millis(10);
/// Output must stay quiet this long before keystrokes start.
const QUIET: Duration = Duration::from_millis(300);

/// A shell we can type into and read from.
trait Terminal {
    /// Types `data`.
    async fn send(&mut self, data: &[u8]) -> Result<()>;
    /// The next output; an error once the session has ended.
    async fn recv(&mut self) -> Result<Bytes>;
}

/// `ssh -tt …` under a PTY: keystrokes go to the master, echoes come back
/// from it after crossing ssh, the gateway, the sim and the remote PTY.
struct SshPty {
    out: PtyOutput,
    input: PtyInput,
    buf: Vec<u8>,
}

impl Terminal for SshPty {
    async fn send(&mut self, data: &[u8]) -> Result<()> {
        self.input.write_all(data).await?;
        self.input.flush().await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<Bytes> {
        let n = self.out.read(&mut self.buf).await?;
        if n == 0 {
            bail!("ssh ended");
        }
        Ok(Bytes::copy_from_slice(
            self.buf.get(..n).unwrap_or_default(),
        ))
    }
}

/// A shell session on the data channel, no SSH in between.
struct Channel {
    ch: DataChannel,
    events: Events,
}

impl Terminal for Channel {
    async fn send(&mut self, data: &[u8]) -> Result<()> {
        self.ch.write(Bytes::copy_from_slice(data)).await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<Bytes> {
        loop {
            match self.events.recv().await {
                Some(Event::Output(b)) => return Ok(b),
                Some(Event::Closed(r)) => bail!("the shell session closed: {r:?}"),
                Some(_) => {}
                None => bail!("the shell session ended"),
            }
        }
    }
}

/// Echo times of `n` keystrokes through `ssh -tt` (`argv`) in a PTY and,
/// alternating with them so both see the same machine load, of `n`
/// keystrokes into a shell session on `target` opened straight on the data
/// channel of the simulator at `endpoint`.
pub(super) async fn measure(
    argv: Vec<String>,
    endpoint: &str,
    target: &str,
    n: usize,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let proc = PtyProcess::spawn(&PtySpawn::new(argv)).context("starting ssh -tt in a PTY")?;
    let (out, input, ctl) = proc.split();
    let mut ssh = SshPty {
        out,
        input,
        buf: vec![0u8; 16 * 1024],
    };
    let result = async {
        let mut direct = open_shell(endpoint, target).await?;
        let result = alternate(&mut ssh, &mut direct, n).await;
        let _ = direct.send(b"\x15exit\r").await;
        direct.ch.close().await;
        result
    }
    .await;
    let _ = ssh.send(b"\x15exit\r").await;
    if timeout(Duration::from_secs(5), ctl.wait()).await.is_err() {
        let _ = ctl.kill();
    }
    result
}

/// A shell session on `target`, ready for input.
async fn open_shell(endpoint: &str, target: &str) -> Result<Channel> {
    let client = sdk_client(endpoint);
    let out = timeout(LIMIT, client.start_session().target(target).send())
        .await
        .context("StartSession timed out")?
        .context("StartSession")?;
    let config = ChannelConfig::new(
        out.stream_url().unwrap_or_default().to_owned(),
        Secret::new(out.token_value().unwrap_or_default()),
        out.session_id().unwrap_or_default().to_owned(),
        SessionKind::Shell,
    );
    let (ch, mut events) = timeout(LIMIT, open(config))
        .await
        .context("opening the data channel timed out")??;
    let ready = async {
        loop {
            match events.recv().await {
                Some(Event::Ready(_)) => return Ok(()),
                Some(Event::Closed(r)) => bail!("closed before ready: {r:?}"),
                Some(_) => {}
                None => bail!("the channel ended before ready"),
            }
        }
    };
    timeout(LIMIT, ready)
        .await
        .context("no Ready on the data channel")??;
    ch.resize(80, 24).await?;
    Ok(Channel { ch, events })
}

/// Waits for both shells, then types `n` characters into each, one at a
/// time and alternating.
async fn alternate(
    ssh: &mut SshPty,
    direct: &mut Channel,
    n: usize,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    prompt(ssh).await.context("the shell through ssmgate")?;
    prompt(direct)
        .await
        .context("the shell on the data channel")?;
    let mut via_ssh = Vec::with_capacity(n);
    let mut via_channel = Vec::with_capacity(n);
    for i in 0..n {
        let c = b'a' + (i % 26) as u8;
        via_ssh.push(
            keystroke(ssh, c)
                .await
                .with_context(|| format!("keystroke {i} through ssmgate"))?,
        );
        tokio::time::sleep(GAP).await;
        via_channel.push(
            keystroke(direct, c)
                .await
                .with_context(|| format!("keystroke {i} on the data channel"))?,
        );
        tokio::time::sleep(GAP).await;
    }
    Ok((via_ssh, via_channel))
}

/// Makes sure the shell runs commands, then waits until output is quiet.
async fn prompt<T: Terminal>(term: &mut T) -> Result<()> {
    // The echoed command line reads RE''ADY; only its output reads READY.
    term.send(b"echo RE''ADY\r").await?;
    wait_for(term, b"READY").await?;
    loop {
        match timeout(QUIET, term.recv()).await {
            Err(_) => return Ok(()),
            Ok(r) => {
                r?;
            }
        }
    }
}

/// Types `c` and times until it is echoed.
async fn keystroke<T: Terminal>(term: &mut T, c: u8) -> Result<Duration> {
    let start = Instant::now();
    term.send(&[c]).await?;
    wait_for(term, &[c]).await?;
    Ok(start.elapsed())
}
/// Reads until `needle` has appeared in the output (within [`LIMIT`]).
async fn wait_for<T: Terminal>(term: &mut T, needle: &[u8]) -> Result<()> {
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut seen = Vec::new();
    loop {
        let chunk = timeout_at(deadline, term.recv()).await.with_context(|| {
            format!("no {:?} within {LIMIT:?}", String::from_utf8_lossy(needle))
        })??;
        seen.extend_from_slice(&chunk);
        if seen.windows(needle.len()).any(|w| w == needle) {
            return Ok(());
        }
    }
}
