//! Piping an opened session to the client: SSM shell and command sessions
//! through the client-side messages of [`crate::gateway::terminal`],
//! forwarded connections as byte streams. Nothing here knows SSH.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ssm_datachannel::read_size::ReadSize;
use ssm_datachannel::{CloseReason, Event, PortStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::gateway::exit_marker::ExitScanner;
use crate::gateway::session::Link;
use crate::gateway::terminal::{ClientInput, ClientOutput, Ended, Exit};
use crate::recording::SessionTap;

/// Runs an SSM shell or command session until either side ends it. With
/// a `scanner`, the output's exit marker is removed and becomes the exit
/// status.
pub async fn run_terminal(
    link: Link,
    tap: &SessionTap,
    mut scanner: Option<ExitScanner>,
    mut input: mpsc::Receiver<ClientInput>,
    out: &mut dyn ClientOutput,
) -> Ended {
    let Link {
        channel,
        mut events,
        info,
    } = link;
    let shell = info.session_type.is_none();
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
                // The agent knows no signals: a terminal's interrupt and
                // quit characters stand in for SIGINT and SIGQUIT; others
                // cannot be delivered.
                ClientInput::Signal(sig) => {
                    let byte = Bytes::from_static(match sig.as_str() {
                        "INT" => b"\x03",
                        "QUIT" => b"\x1c",
                        _ => continue,
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
    let events = &mut events;
    let to_client = async {
        let mut exit = None;
        loop {
            match events.recv().await {
                Some(Event::Output(b)) => {
                    let b = match scanner.as_mut() {
                        Some(s) => s.feed(&b),
                        None => b,
                    };
                    if b.is_empty() {
                        continue;
                    }
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
                    out.finish(Some(Exit::Status(255))).await;
                    return Ended::Error(e.to_string());
                }
                // SSM reports no status for shells and PTY commands: 0,
                // unless the command's wrapper printed it.
                Some(Event::Closed(_)) | None => {
                    if let Some(s) = scanner.as_mut() {
                        let rest = s.finish();
                        if !rest.is_empty() {
                            tap.output(&rest).await;
                            out.stdout(rest).await;
                        }
                        if let Some(code) = s.status() {
                            let code = code as i32;
                            tap.exit(code).await;
                            exit = Some(code);
                        }
                    }
                    out.finish(Some(Exit::Status(exit.map(|c| c as u32).unwrap_or(0))))
                        .await;
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
            out.finish(Some(Exit::Status(255))).await;
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

/// Pipes a forwarded connection to its port stream until it ends, or
/// until `stop` resolves (the session was killed or the gateway is
/// shutting down: then it ends as `Ended::ClientClosed`, which the caller
/// overrides with the stop's cause). Returns bytes moved (client → target,
/// target → client, counted as they go, so true after a stop too) and how
/// it ended. A stream that cannot pass a half-close on (stream or basic
/// mode) ends when the target's side ends, or shortly after the client's:
/// the target (an sshd) would otherwise wait for more input forever.
pub async fn pipe_port<S>(
    client: S,
    mut stream: PortStream,
    stop: impl Future<Output = ()>,
) -> (u64, u64, Ended)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let half_close = stream.passes_half_close();
    let run = async {
        if half_close {
            return match copy_counted_into(client, &mut stream, (&up, &down)).await {
                Ok(()) => Ended::ClientClosed,
                Err(e) => Ended::Error(e.to_string()),
            };
        }
        let (mut target_rd, mut target_wr) = tokio::io::split(&mut stream);
        let (mut client_rd, mut client_wr) = tokio::io::split(client);
        let upload = pump(&mut client_rd, &mut target_wr, &up);
        let download = async {
            let r = pump(&mut target_rd, &mut client_wr, &down).await;
            let _ = client_wr.shutdown().await;
            r
        };
        tokio::pin!(upload, download);
        tokio::select! {
            r = &mut download => match r {
                Ok(()) => Ended::TargetExited { exit_status: None },
                Err(e) => Ended::Error(e.to_string()),
            },
            _ = &mut upload => {
                let _ = tokio::time::timeout(LINGER, &mut download).await;
                Ended::ClientClosed
            }
        }
    };
    let ended = tokio::select! {
        ended = run => ended,
        () = stop => Ended::ClientClosed,
    };
    let ended = match (ended, stream.close_error()) {
        (Ended::TargetExited { .. }, Some(e)) if !half_close => Ended::Error(e),
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
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let result = copy_counted_into(a, b, (&up, &down)).await;
    (
        up.load(Ordering::Relaxed),
        down.load(Ordering::Relaxed),
        result,
    )
}

/// [`copy_counted`] into the caller's counters (a → b, b → a).
async fn copy_counted_into<A, B>(
    a: A,
    b: B,
    (up, down): (&AtomicU64, &AtomicU64),
) -> std::io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut a_rd, mut a_wr) = tokio::io::split(a);
    let (mut b_rd, mut b_wr) = tokio::io::split(b);
    let upload = async {
        pump(&mut a_rd, &mut b_wr, up).await?;
        b_wr.shutdown().await
    };
    let download = async {
        pump(&mut b_rd, &mut a_wr, down).await?;
        a_wr.shutdown().await
    };
    tokio::try_join!(upload, download).map(|_| ())
}

/// Copies until EOF, counting bytes as they go (so the count survives
/// cancellation).
async fn pump<R, W>(from: &mut R, to: &mut W, count: &AtomicU64) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // 1 KiB while idle, up to 32 KiB while reads fill it.
    let mut size = ReadSize::up_to(32 * 1024);
    let mut buf = vec![0; size.get()];
    loop {
        if buf.len() < size.get() {
            buf.resize(size.get(), 0);
        }
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        size.read(n);
        to.write_all(buf.get(..n).unwrap_or_default()).await?;
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
}
