//! One SSH "session" channel (shell or exec), owned by one task from open to
//! close: it gathers the requests (pty, env, window size), then runs the
//! gateway pipeline and pipes the channel to the SSM session. Every write to
//! the channel happens here.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use russh::server::{Handle, Msg};
use russh::{Channel, ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::context::ServerContext;
use super::line::{Typed, read_line};
use super::reasons::{self, Chosen};
use super::{picker, reason_command};
use crate::config::UserConfig;
use crate::gateway::record::EndCause;
use crate::gateway::terminal::{ClientInput, ClientOutput, Ended, Exit, PtyRequest, Terminal};
use crate::request::{AuthMethod, PERMIT_PTY};
use crate::request::{GrantCommand, Kind, Reason, ReasonSource, SessionRequest, TargetSpec};
use crate::ssh_signals;

/// An authenticated user, as the channel tasks see them.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Their configuration (name, groups, attributes).
    pub user: Arc<UserConfig>,
    /// How they authenticated.
    pub auth: AuthMethod,
    /// The target from the login name (`alice+web-1`), if any.
    pub target: Option<TargetSpec>,
    /// The reason given at the login's keyboard-interactive prompt (for
    /// clients that ask for it before their key), if any.
    pub reason: Option<Reason>,
    /// Their address.
    pub source: SocketAddr,
    /// A remote forwarding (-R) was refused on this connection.
    pub remote_forward_refused: bool,
    /// The client's SSH version string.
    pub client_version: Option<String>,
    /// Why the gateway cut this connection, if it did.
    pub end_cause: Arc<EndCause>,
}

/// Environment variables a client may set (like sshd's AcceptEnv).
pub fn accepted_env(name: &str) -> bool {
    matches!(
        name,
        "SSMGATE_REASON" | "SSMGATE_DOCUMENT" | "TERM" | "LANG"
    ) || name.starts_with("LC_")
}

/// Most environment variables kept for the target per channel.
const MAX_ENV: usize = 32;

/// Variables passed on to the target's sshd (which applies its own
/// AcceptEnv); the gateway's own (`SSMGATE_*`) never are.
fn passed_on(name: &str) -> bool {
    accepted_env(name) && !name.starts_with("SSMGATE_")
}

/// What the client asked for before starting.
#[derive(Default)]
struct Requests {
    pty: Option<PtyRequest>,
    env: Vec<(String, String)>,
    reason: Option<String>,
    document: Option<String>,
}

/// Runs the channel until it closes; a session it opens has the id
/// `gateway_session` (the one its log lines carry).
pub async fn run(
    ctx: Arc<ServerContext>,
    user: Arc<Authenticated>,
    channel: Channel<Msg>,
    handle: Handle,
    gateway_session: Uuid,
) {
    let id = channel.id();
    let (mut rd, wr) = channel.split();
    let mut out = SshOutput {
        wr,
        eof_sent: false,
        exit_signals: Some((handle, id)),
    };
    let mut req = Requests::default();
    let kind = loop {
        match rd.wait().await {
            // Refused (channel failure) without permit-pty; see the handler.
            Some(ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                pix_width,
                pix_height,
                terminal_modes,
                ..
            }) if user.auth.permits(PERMIT_PTY) => {
                req.pty = Some(PtyRequest {
                    term,
                    cols: col_width,
                    rows: row_height,
                    pix_width,
                    pix_height,
                    modes: terminal_modes.iter().map(|(m, v)| (*m as u8, *v)).collect(),
                });
            }
            Some(ChannelMsg::WindowChange {
                col_width,
                row_height,
                ..
            }) => {
                if let Some(pty) = &mut req.pty {
                    pty.cols = col_width;
                    pty.rows = row_height;
                }
            }
            Some(ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            }) => match variable_name.as_str() {
                "SSMGATE_REASON" => req.reason = Some(variable_value),
                "SSMGATE_DOCUMENT" => req.document = Some(variable_value),
                name if passed_on(name) && req.env.len() < MAX_ENV => {
                    req.env.push((variable_name, variable_value));
                }
                _ => {}
            },
            Some(ChannelMsg::RequestShell { .. }) => break Kind::Shell,
            Some(ChannelMsg::Exec { command, .. }) => {
                break Kind::Exec {
                    command: String::from_utf8_lossy(&command).into_owned(),
                };
            }
            Some(ChannelMsg::RequestSubsystem { name, .. }) => break Kind::Subsystem { name },
            Some(ChannelMsg::Eof) | Some(ChannelMsg::Close) | None => return,
            Some(_) => {}
        }
    };
    if user.remote_forward_refused {
        out.stderr(Bytes::from_static(
            b"ssmgate: remote forwarding (-R) is not allowed through this gateway; it was refused.\r\n",
        ))
        .await;
    }
    // `ssh alice@gateway reason …` manages grants; it needs no reason.
    if user.target.is_none()
        && let Kind::Exec { command } = &kind
        && let Some(command) = GrantCommand::parse(command)
    {
        return Box::pin(reason_command::run(&ctx, &user, command, &mut out)).await;
    }
    // Bytes typed beyond the answers to the gateway's own prompts; the
    // session gets them first.
    let mut typeahead: Vec<u8> = Vec::new();
    let chosen = match Box::pin(reasons::given(
        &ctx,
        &user,
        req.reason.as_deref(),
        user.target.as_ref(),
    ))
    .await
    {
        Ok(Some(chosen)) => chosen,
        Ok(None) if ctx.justification.required && req.pty.is_some() => {
            // As long as a login may take: an unanswered prompt must
            // not hold a session slot for ever.
            let asked = tokio::time::timeout(
                ctx.server.login_grace,
                ask_reason(&ctx, &mut rd, &mut out, &mut typeahead),
            )
            .await;
            match asked {
                Ok(Some(reason)) => reason,
                Ok(None) => {
                    return out
                        .fail("ssmgate: no reason given; nothing was opened.\r\n")
                        .await;
                }
                Err(_) => {
                    return out
                        .fail("\r\nssmgate: no reason given in time; nothing was opened.\r\n")
                        .await;
                }
            }
        }
        Ok(None) if ctx.justification.required => {
            let text = reasons::missing(&ctx, &user, kind.action());
            return out.fail(&format!("{text}\r\n")).await;
        }
        Ok(None) => Chosen::none(),
        Err(text) => return out.fail(&format!("{text}\r\n")).await,
    };
    let target = match &user.target {
        Some(t) => t.clone(),
        None => match (&kind, &req.pty) {
            (Kind::Shell, Some(_)) => {
                match Box::pin(picker::pick(
                    &ctx,
                    &user,
                    &chosen,
                    &mut rd,
                    &mut out,
                    &mut typeahead,
                ))
                .await
                {
                    Some(t) => t,
                    None => return,
                }
            }
            _ => {
                let text = picker::usage(&ctx, &user, &chosen).await;
                return out.fail(&text).await;
            }
        },
    };
    let request = SessionRequest {
        id: gateway_session,
        user: user.user.clone(),
        auth: user.auth.clone(),
        source: user.source,
        target,
        kind,
        pty: req.pty.is_some(),
        document: req.document,
        reason: chosen.reason,
        reason_source: chosen.source,
        client_version: user.client_version.clone(),
    };
    let (tx, rx) = mpsc::channel(64);
    if !typeahead.is_empty() {
        // The channel is new and empty: this cannot wait.
        let _ = tx.try_send(ClientInput::Data(Bytes::from(typeahead)));
    }
    let input = tokio::spawn(async move {
        while let Some(msg) = rd.wait().await {
            let item = match msg {
                ChannelMsg::Data { data } => ClientInput::Data(data),
                ChannelMsg::WindowChange {
                    col_width,
                    row_height,
                    ..
                } => ClientInput::Resize {
                    cols: col_width,
                    rows: row_height,
                },
                ChannelMsg::Signal { signal } => ClientInput::Signal(ssh_signals::name(&signal)),
                ChannelMsg::Eof => ClientInput::Eof,
                ChannelMsg::Close => break,
                _ => continue,
            };
            if tx.send(item).await.is_err() {
                break;
            }
        }
    });
    let terminal = Terminal {
        pty: req.pty,
        env: req.env,
        input: rx,
        output: &mut out,
        end_cause: &user.end_cause,
    };
    let result = ctx.gateway.run_terminal(&request, terminal).await;
    input.abort();
    match result {
        Ok(Ended::ClientClosed) => out.close().await,
        Ok(_) => {}
        Err(e) => {
            tracing::info!(gateway_session = %request.id, user = %request.user.name, error = %e, "session refused");
            out.fail(&format!("ssmgate: {}\r\n", e.for_user(request.id)))
                .await;
        }
    }
}

/// Writes `text` on the channel's stderr and closes it with status 255.
pub async fn refuse(channel: Channel<Msg>, text: String) {
    let (_rd, wr) = channel.split();
    SshOutput {
        wr,
        eof_sent: false,
        exit_signals: None,
    }
    .fail(&text)
    .await;
}

/// How often a refused reason may be typed again at the terminal prompt.
const REASON_TRIES: usize = 3;

/// Asks for the reason on the session's terminal (no reason came with the
/// login, the channel or a grant); `None` when the person gives up.
async fn ask_reason(
    ctx: &ServerContext,
    rd: &mut ChannelReadHalf,
    out: &mut SshOutput,
    typeahead: &mut Vec<u8>,
) -> Option<Chosen> {
    out.write(&format!(
        "Access needs a reason: {}.\r\n",
        ctx.justification.hint
    ))
    .await;
    for _ in 0..REASON_TRIES {
        out.write("Reason for access: ").await;
        let Typed::Line(line) = read_line(rd, out, typeahead).await else {
            return None;
        };
        match ctx.justification.check(&line) {
            Ok(reason) if !reason.as_str().is_empty() => {
                return Some(Chosen {
                    reason: Some(reason),
                    source: ReasonSource::Prompt,
                });
            }
            Ok(_) => {}
            Err(rule) => {
                out.write(&format!("That reason is not accepted: {rule}\r\n"))
                    .await;
            }
        }
    }
    None
}

/// The channel's write half as the gateway's [`ClientOutput`].
pub struct SshOutput {
    wr: ChannelWriteHalf<Msg>,
    /// EOF was sent (it is sent once).
    eof_sent: bool,
    /// Where an exit signal is sent (the channel half cannot).
    exit_signals: Option<(Handle, ChannelId)>,
}

impl SshOutput {
    /// Writes an error on stderr and ends the channel with status 255.
    pub async fn fail(&mut self, text: &str) {
        self.stderr(Bytes::from(text.to_owned())).await;
        self.finish(Some(Exit::Status(255))).await;
    }

    async fn close(&mut self) {
        let _ = self.wr.close().await;
    }

    /// Plain output, used by the picker.
    pub async fn write(&mut self, text: &str) -> bool {
        self.stdout(Bytes::from(text.to_owned())).await
    }

    /// Raw output (echo of typed bytes).
    pub async fn write_bytes(&mut self, bytes: &[u8]) -> bool {
        self.stdout(Bytes::copy_from_slice(bytes)).await
    }
}

#[async_trait::async_trait]
impl ClientOutput for SshOutput {
    fn notifier(&self) -> Option<crate::ops::live::Notifier> {
        let (handle, id) = self.exit_signals.clone()?;
        Some(std::sync::Arc::new(move |text: std::sync::Arc<str>| {
            let handle = handle.clone();
            tokio::spawn(async move {
                let _ = handle
                    .extended_data(id, 1, Bytes::from(format!("\r\n{text}\r\n")))
                    .await;
            });
        }))
    }

    async fn stdout(&mut self, data: Bytes) -> bool {
        self.wr.data_bytes(data).await.is_ok()
    }

    async fn stderr(&mut self, data: Bytes) -> bool {
        self.wr.extended_data_bytes(1, data).await.is_ok()
    }

    async fn eof(&mut self) {
        if !self.eof_sent {
            self.eof_sent = true;
            let _ = self.wr.eof().await;
        }
    }

    async fn finish(&mut self, exit: Option<Exit>) {
        match exit {
            Some(Exit::Status(status)) => {
                let _ = self.wr.exit_status(status).await;
            }
            Some(Exit::Signal {
                name,
                core_dumped,
                message,
            }) => {
                if let Some((handle, id)) = &self.exit_signals {
                    let signal = ssh_signals::from_name(&name);
                    let _ = handle
                        .exit_signal_request(*id, signal, core_dumped, message, String::new())
                        .await;
                }
            }
            None => {}
        }
        self.eof().await;
        let _ = self.wr.close().await;
    }
}
