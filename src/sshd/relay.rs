//! Moving a session between the user's channel and the inner SSH channel
//! on the target's sshd, request for request: data both ways, stderr,
//! EOF each way, window changes, signals, and the exit status or signal.
//! Shell and command streams are recorded as with SSM documents; an sftp
//! subsystem is recorded as the file operations it carries
//! ([`super::sftp`]).

use bytes::Bytes;
use russh::ChannelMsg;
use russh::client;
use tokio::sync::mpsc;

use super::sftp::SftpRecorder;
use crate::gateway::terminal::{ClientInput, ClientOutput, Ended, Exit};
use crate::recording::SessionTap;
use crate::ssh_signals;

/// What the relay records.
pub enum Recording {
    /// Every byte, as for SSM shell and command sessions.
    Stream,
    /// An sftp subsystem: file operations.
    Sftp(Box<SftpRecorder>),
}

/// Runs until the inner channel closes or the client goes away.
pub async fn relay(
    channel: russh::Channel<client::Msg>,
    tap: &SessionTap,
    recording: Recording,
    mut input: mpsc::Receiver<ClientInput>,
    out: &mut dyn ClientOutput,
) -> Ended {
    let (mut rd, wr) = channel.split();
    let sftp = match &recording {
        Recording::Sftp(r) => Some(r),
        Recording::Stream => None,
    };
    let to_target = async {
        while let Some(msg) = input.recv().await {
            let sent = match msg {
                ClientInput::Data(data) => {
                    match sftp {
                        Some(r) => r.client_bytes(tap, &data).await,
                        None => tap.input(&data).await,
                    }
                    wr.data_bytes(data).await
                }
                ClientInput::Resize { cols, rows } => {
                    tap.resize(cols, rows).await;
                    wr.window_change(cols, rows, 0, 0).await
                }
                ClientInput::Signal(name) => wr.signal(ssh_signals::from_name(&name)).await,
                ClientInput::Eof => wr.eof().await,
            };
            if sent.is_err() {
                break;
            }
        }
    };
    let to_client = async {
        let mut exit: Option<Exit> = None;
        loop {
            match rd.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    let data = Bytes::copy_from_slice(&data);
                    match sftp {
                        Some(r) => r.server_bytes(tap, &data).await,
                        None => tap.output(&data).await,
                    }
                    if !out.stdout(data).await {
                        return Ended::ClientClosed;
                    }
                }
                Some(ChannelMsg::ExtendedData { data, .. }) => {
                    let data = Bytes::copy_from_slice(&data);
                    tap.output(&data).await;
                    if !out.stderr(data).await {
                        return Ended::ClientClosed;
                    }
                }
                Some(ChannelMsg::Eof) => out.eof().await,
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    let code = i32::try_from(exit_status).unwrap_or(i32::MAX);
                    tap.exit(code).await;
                    exit = Some(Exit::Status(exit_status));
                }
                Some(ChannelMsg::ExitSignal {
                    signal_name,
                    core_dumped,
                    error_message,
                    ..
                }) => {
                    exit = Some(Exit::Signal {
                        name: ssh_signals::name(&signal_name),
                        core_dumped,
                        message: error_message,
                    });
                }
                Some(ChannelMsg::Close) | None => {
                    let status = match &exit {
                        Some(Exit::Status(s)) => i32::try_from(*s).ok(),
                        // Killed by a signal: no status.
                        Some(Exit::Signal { .. }) | None => None,
                    };
                    out.finish(exit).await;
                    return Ended::TargetExited {
                        exit_status: status,
                    };
                }
                Some(_) => {}
            }
        }
    };
    let ended = tokio::select! {
        ended = to_client => ended,
        () = to_target => Ended::ClientClosed,
    };
    if let Recording::Sftp(r) = recording {
        r.finish(tap).await;
    }
    ended
}
