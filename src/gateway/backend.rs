//! The seam between the gateway's pipeline and what carries a terminal
//! session once its SSM session is open: a [`Carrier`]. The gateway
//! decides, starts, records and ends every session the same way; a
//! carrier only moves the bytes in between — [`SsmDocuments`] over the
//! data channel of a shell or command document, or (the `sshd` module)
//! an SSH login to the target's own sshd through an AWS-StartSSHSession
//! port session.

use crate::gateway::error::GatewayError;
use crate::gateway::pipe::run_terminal;
use crate::gateway::plan::Plan;
use crate::gateway::session::Link;
use crate::gateway::terminal::{Ended, Terminal};
use crate::inventory::Target;
use crate::recording::SessionTap;
use crate::request::SessionRequest;

/// An open, recorded SSM session, as a carrier sees it.
pub struct Carried<'a> {
    /// The request.
    pub req: &'a SessionRequest,
    /// Its resolved target.
    pub target: &'a Target,
    /// How it is carried (document, OS user).
    pub plan: &'a Plan,
    /// Where its events are recorded.
    pub tap: &'a SessionTap,
}

/// Carries a terminal session (shell, command, subsystem) over an open SSM
/// session until either side ends it.
#[async_trait::async_trait]
pub trait Carrier: Send + Sync {
    /// Runs the session. An error is a refusal found before the client saw
    /// anything (an untrusted host key, a login the target refused); the
    /// gateway shows it, ends the SSM session and records the end.
    async fn carry(
        &self,
        session: Carried<'_>,
        link: Link,
        terminal: Terminal<'_>,
    ) -> Result<Ended, GatewayError>;
}

/// SSM's own shell and command documents: the data channel is the
/// terminal.
pub struct SsmDocuments;

#[async_trait::async_trait]
impl Carrier for SsmDocuments {
    async fn carry(
        &self,
        session: Carried<'_>,
        link: Link,
        t: Terminal<'_>,
    ) -> Result<Ended, GatewayError> {
        if let Some(pty) = &t.pty {
            let _ = link.channel.resize(pty.cols, pty.rows).await;
        }
        let scanner = session.plan.exit_marker.as_ref().map(|m| m.scanner());
        Ok(run_terminal(link, session.tap, scanner, t.input, t.output).await)
    }
}
