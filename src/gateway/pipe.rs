//! Piping an opened session to the client: terminal sessions (shell, exec)
//! through small message types, port sessions as byte streams. The SSH layer
//! implements [`ClientOutput`] and feeds [`ClientInput`]; nothing here knows
//! SSH.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ssm_datachannel::io::byte_stream;
use ssm_datachannel::{CloseReason, DataChannel, Event, Events};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::gateway::session::Opened;

/// What the client sends to a terminal session.
#[derive(Debug)]
pub enum ClientInput {
    /// Keystrokes or stdin.
    Data(Bytes),
    /// A new terminal size.
    Resize { cols: u32, rows: u32 },
    /// An interrupt (SIGINT) or quit (SIGQUIT) signal.
    Signal(Interrupt),
    /// The client will send no more data.
    Eof,
}

/// Signals a client can send, as the agent understands them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// SIGINT: byte 0x03.
    Int,
    /// SIGQUIT: byte 0x1c.
    Quit,
}

/// Where a terminal session's output goes.
#[async_trait::async_trait]
pub trait ClientOutput: Send {
    /// Standard output; false once the client is gone.
    async fn stdout(&mut self, data: Bytes) -> bool;
    /// Standard error; false once the client is gone.
    async fn stderr(&mut self, data: Bytes) -> bool;
    /// The end: exit status, EOF, close.
    async fn finish(&mut self, exit_status: u32);
}

/// How a session ended, for logs and the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The client closed its side.
    ClientClosed,
    /// The remote process or shell finished.
    TargetExited { exit_status: Option<i32> },
    /// Something failed; the text was shown to the client.
    Error(String),
}

/// Runs a shell or exec session until either side ends it.
pub async fn run_terminal(
    opened: &mut Opened,
    mut input: mpsc::Receiver<ClientInput>,
    out: &mut dyn ClientOutput,
) -> Ended {
    let channel = opened.channel.clone();
    let shell = opened.info.session_type.is_none();
    let tap = &opened.tap;
    let to_target = async {
        while let Some(msg) = input.recv().await {
            let sent = match msg {
                // A command without a terminal (AWS-StartNonInteractiveCommand)
                // has no standard input at the agent: what was sent would be
                // dropped, so the command is stopped instead, and nothing is
                // recorded as input the target never got.
                ClientInput::Data(data) if !shell && !data.is_empty() => {
                    return InputEnd::NoStdin;
                }
                ClientInput::Data(data) => {
                    tap.input(&data).await;
                    channel.write(data).await
                }
                ClientInput::Resize { cols, rows } => {
                    tap.resize(cols, rows).await;
                    channel.resize(cols, rows).await
                }
                ClientInput::Signal(sig) => {
                    let byte = Bytes::from_static(match sig {
                        Interrupt::Int => b"\x03",
                        Interrupt::Quit => b"\x1c",
                    });
                    tap.input(&byte).await;
                    channel.write(byte).await
                }
                // A shell runs in a PTY: Ctrl-D is its end of input, so
                // `ssh -T gw < script` ends when the script does. Exec
                // sessions have no stdin at the agent.
                ClientInput::Eof if shell => channel.write(Bytes::from_static(b"\x04")).await,
                ClientInput::Eof => Ok(()),
            };
            if sent.is_err() {
                break;
            }
        }
        InputEnd::Closed
    };
    let events = &mut opened.events;
    let to_client = async {
        let mut exit = None;
        loop {
            match events.recv().await {
                Some(Event::Output(b)) => {
                    tap.output(&b).await;
                    if !out.stdout(b).await {
                        return Ended::ClientClosed;
                    }
                }
                Some(Event::StdErr(b)) => {
                    tap.output(&b).await;
                    if !out.stderr(b).await {
                        return Ended::ClientClosed;
                    }
                }
                Some(Event::ExitCode(code)) => {
                    tap.exit(code).await;
                    exit = Some(code);
                }
                Some(Event::Closed(CloseReason::Error(e))) => {
                    tracing::warn!(gateway_session = %tap.id(), error = %e, "session failed");
                    let text = format!(
                        "\r\nssmgate: the session failed: the connection to the target was lost (gateway session {}; the gateway's log has the details)\r\n",
                        tap.id()
                    );
                    out.stderr(Bytes::from(text)).await;
                    out.finish(255).await;
                    return Ended::Error(e.to_string());
                }
                Some(Event::Closed(_)) | None => {
                    out.finish(exit.map(|c| c as u32).unwrap_or(0)).await;
                    return Ended::TargetExited { exit_status: exit };
                }
                Some(_) => {}
            }
        }
    };
    let input_end = tokio::select! {
        ended = to_client => return ended,
        end = to_target => end,
    };
    match input_end {
        InputEnd::Closed => Ended::ClientClosed,
        InputEnd::NoStdin => {
            out.stderr(Bytes::from_static(NO_STDIN)).await;
            out.finish(255).await;
            Ended::Error("standard input was sent to a command that has none".into())
        }
    }
}

/// Why the client's side of a terminal session stopped.
enum InputEnd {
    /// The client closed (or the target stopped taking input).
    Closed,
    /// Data was sent to a command that has no standard input.
    NoStdin,
}

/// What a user sees when they send stdin to a command without a terminal.
const NO_STDIN: &[u8] = b"\r\nssmgate: this command has no standard input through SSM (AWS-StartNonInteractiveCommand), so the data sent to it was not delivered and the command was stopped. Run it with a terminal (ssh -t), or copy the data separately.\r\n";

/// How long the target may still send after the client has finished.
const LINGER: Duration = Duration::from_secs(1);

/// Runs a stream-mode port session (one connection). It ends when the
/// target's side ends, or shortly after the client's does: a stream-mode
/// data channel cannot pass a half-close on, and the target (an sshd) would
/// otherwise wait for more input forever. Returns bytes moved
/// (client → target, target → client) and how it ended.
pub async fn run_port_stream<S>(
    channel: DataChannel,
    events: Events,
    client: S,
) -> (u64, u64, Ended)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let bs = byte_stream(channel, events);
    let mut closed = bs.closed;
    let (mut target_rd, mut target_wr) = tokio::io::split(bs.stream);
    let (mut client_rd, mut client_wr) = tokio::io::split(client);
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let upload = pump(&mut client_rd, &mut target_wr, &up);
    let download = async {
        let r = pump(&mut target_rd, &mut client_wr, &down).await;
        let _ = client_wr.shutdown().await;
        r
    };
    tokio::pin!(upload, download);
    let ended = tokio::select! {
        r = &mut download => match r {
            Ok(()) => Ended::TargetExited { exit_status: None },
            Err(e) => Ended::Error(e.to_string()),
        },
        _ = &mut upload => {
            let _ = tokio::time::timeout(LINGER, &mut download).await;
            Ended::ClientClosed
        }
    };
    let ended = match (ended, closed.try_recv()) {
        (Ended::TargetExited { .. }, Ok(CloseReason::Error(e))) => Ended::Error(e.to_string()),
        (ended, _) => ended,
    };
    (
        up.load(Ordering::Relaxed),
        down.load(Ordering::Relaxed),
        ended,
    )
}

/// Copies both ways between `a` and `b` until both directions reach EOF
/// (each EOF is passed on as a shutdown) or either fails. Returns bytes
/// moved a → b and b → a, counted as they go, so the counts are true even
/// when the copy ends in an error (a client dropping its whole SSH
/// connection with forwards open), and the first error if any.
pub async fn copy_counted<A, B>(a: A, b: B) -> (u64, u64, std::io::Result<()>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut a_rd, mut a_wr) = tokio::io::split(a);
    let (mut b_rd, mut b_wr) = tokio::io::split(b);
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let upload = async {
        pump(&mut a_rd, &mut b_wr, &up).await?;
        b_wr.shutdown().await
    };
    let download = async {
        pump(&mut b_rd, &mut a_wr, &down).await?;
        a_wr.shutdown().await
    };
    let result = tokio::try_join!(upload, download).map(|_| ());
    (
        up.load(Ordering::Relaxed),
        down.load(Ordering::Relaxed),
        result,
    )
}

/// Copies until EOF, counting bytes as they go (so the count survives
/// cancellation).
async fn pump<R, W>(from: &mut R, to: &mut W, count: &AtomicU64) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(buf.get(..n).unwrap_or_default()).await?;
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
}
