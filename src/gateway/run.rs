//! Running a terminal session (shell or command) from request to recorded
//! end, in one place: open (authorise, resolve, start, data channel) →
//! terminal size and banner → pipe → TerminateSession → the recording's
//! end. The SSH layer only translates its channel to [`ClientInput`] and
//! [`ClientOutput`] and shows a refusal.

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::gateway::error::GatewayError;
use crate::gateway::pipe::{ClientInput, ClientOutput, Ended, run_terminal};
use crate::gateway::record::{EndCause, end_of};
use crate::gateway::session::Gateway;
use crate::request::{Kind, SessionRequest};

/// The client side of a terminal session.
pub struct Terminal<'a> {
    /// What the client sends (keystrokes, resizes, signals, EOF).
    pub input: mpsc::Receiver<ClientInput>,
    /// Where output goes.
    pub output: &'a mut dyn ClientOutput,
    /// The terminal's size when a PTY was requested (columns, rows).
    pub pty: Option<(u32, u32)>,
    /// Why the gateway cut the connection, if it did (for the record).
    pub end_cause: &'a EndCause,
}

impl Gateway {
    /// Runs `req` (a shell or a command) until either side ends it, and
    /// records how it ended. Errors are refusals before anything started;
    /// show them with [`GatewayError::for_user`].
    pub async fn run_terminal(
        &self,
        req: &SessionRequest,
        t: Terminal<'_>,
    ) -> Result<Ended, GatewayError> {
        let mut opened = self.open(req).await?;
        if let Some((cols, rows)) = t.pty {
            opened.tap.resize(cols, rows).await;
            let _ = opened.channel.resize(cols, rows).await;
            if req.kind == Kind::Shell {
                let name = opened
                    .target
                    .name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default();
                let banner = format!(
                    "ssmgate: connected to {}{name}, SSM session {}\r\n",
                    opened.target.id, opened.ssm_session_id
                );
                t.output.stderr(Bytes::from(banner)).await;
            }
        }
        let ended = run_terminal(&mut opened, t.input, t.output).await;
        if !matches!(ended, Ended::TargetExited { .. }) {
            self.terminate(&opened.ssm_session_id).await;
        }
        tracing::info!(gateway_session = %req.id, ssm_session = %opened.ssm_session_id, ended = ?ended, "session ended");
        let (reason, exit_status) = end_of(&ended);
        opened
            .tap
            .finish(t.end_cause.resolve(reason), exit_status)
            .await;
        Ok(ended)
    }
}
