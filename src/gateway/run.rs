//! Running a terminal session (shell, command or subsystem) from request
//! to recorded end, in one place: resolve → plan → authorise → start →
//! data channel ([`Gateway::open`]) → banner → the backend's [`Carrier`]
//! → TerminateSession → the recording's end. The SSH layer only
//! translates its channel into a [`Terminal`] and shows a refusal.

use bytes::Bytes;

use crate::config::BackendKind;
use crate::gateway::backend::{Carried, Carrier, SsmDocuments};
use crate::gateway::error::GatewayError;
use crate::gateway::record::end_of;
use crate::gateway::session::{Gateway, Opened, terminate_later};
use crate::gateway::terminal::{Ended, Terminal};
use crate::ops::live::StopCause;
use crate::request::{Kind, SessionRequest};

impl Gateway {
    /// Runs `req` until either side ends it, and records how it ended.
    /// Errors are refusals before anything ran; show them with
    /// [`GatewayError::for_user`].
    pub async fn run_terminal(
        &self,
        req: &SessionRequest,
        t: Terminal<'_>,
    ) -> Result<Ended, GatewayError> {
        let (
            Opened {
                target,
                ssm_session_id,
                api,
                plan,
                link,
                tap,
                ..
            },
            mut live,
        ) = {
            // Registered from here on, so that a kill or a drain that comes
            // while the session opens is not missed (it fires at once).
            let live = self
                .live()
                .register_with(req.id, &req.user.name, t.output.notifier());
            (Box::pin(self.open(req)).await?, live)
        };
        // The set-up above and the record below are boxed: this future lives
        // as long as the session, and an async fn's future is as large as
        // its largest step for its whole life (see `ports::run_forward`).
        let carrier: &dyn Carrier = match (plan.backend, self.sshd_carrier()) {
            (BackendKind::Sshd, Some(c)) => c.as_ref(),
            _ => &SsmDocuments,
        };
        if let Some(pty) = &t.pty {
            Box::pin(tap.resize(pty.cols, pty.rows)).await;
            if req.kind == Kind::Shell {
                let name = target
                    .name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default();
                let via = match plan.backend {
                    BackendKind::Ssm => String::new(),
                    BackendKind::Sshd => format!(
                        " as {} through its sshd",
                        plan.os_user.as_deref().unwrap_or("?")
                    ),
                };
                let banner = format!(
                    "ssmgate: connected to {}{name}{via}, SSM session {ssm_session_id}\r\n",
                    target.id
                );
                t.output.stderr(Bytes::from(banner)).await;
            }
        }
        let Terminal {
            pty,
            env,
            input,
            output,
            end_cause,
        } = t;
        let session = Carried {
            req,
            target: &target,
            plan: &plan,
            tap: &tap,
        };
        let t = Terminal {
            pty,
            env,
            input,
            output: &mut *output,
            end_cause,
        };
        let (result, stopped) = tokio::select! {
            r = carrier.carry(session, link, t) => (r, None),
            cause = live.stopped() => (Ok(Ended::ClientClosed), Some(cause)),
        };
        drop(live);
        let ended = match &result {
            Ok(ended) => ended.clone(),
            Err(e) => Ended::Error(e.to_string()),
        };
        tracing::info!(gateway_session = %req.id, ssm_session = %ssm_session_id, backend = plan.backend.as_str(), ended = ?ended, stopped = ?stopped.as_ref().map(StopCause::record_text), "session ended");
        let (reason, exit_status, cause) = match &stopped {
            Some(stop) => {
                output
                    .stderr(Bytes::from(format!("\r\n{}\r\n", stop.user_text())))
                    .await;
                output.finish(None).await;
                (stop.end_reason(), None, Some(stop.record_text()))
            }
            None => {
                let (reason, exit_status) = end_of(&ended);
                let (reason, cause) = end_cause.resolve_caused(reason);
                (reason, exit_status, cause)
            }
        };
        Box::pin(tap.finish_caused(reason, exit_status, cause)).await;
        // An SSM shell or command that ended by itself ended its session;
        // otherwise end it, paced, without holding up the record.
        if !(plan.backend == BackendKind::Ssm && matches!(ended, Ended::TargetExited { .. })) {
            terminate_later(api.clone(), ssm_session_id.clone());
        }
        result
    }
}
