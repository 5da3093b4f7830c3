//! direct-tcpip channels (`ssh -J`, `ssh -W`, `ssh -L`): the destination must
//! be a resolved SSM managed instance — never an arbitrary host — and the
//! channel is accepted only once the SSM session behind it is ready, so a
//! refusal reaches the client as a channel-open failure with its reason.

use std::sync::Arc;

use russh::server::{ChannelOpenHandle, Msg};
use russh::{Channel, ChannelOpenFailure, ChannelStream};
use uuid::Uuid;

use super::context::ServerContext;
use super::reasons::{self, Chosen};
use super::session_channel::Authenticated;
use crate::gateway::ports::{ForwardClient, PortSessions};
use crate::request::{Kind, SessionRequest, TargetSpec};
use crate::untrusted::Untrusted;

/// SSH_OPEN_ADMINISTRATIVELY_PROHIBITED.
const PROHIBITED: u32 = 1;

/// Where the client wants to go.
#[derive(Debug, Clone)]
pub struct Request {
    /// As the client wrote it (instance id or name).
    pub host: String,
    /// The port on the target.
    pub port: u32,
}

fn refusal(text: String) -> ChannelOpenFailure {
    ChannelOpenFailure::Other {
        code: PROHIBITED,
        reason: protocol_text(&text),
    }
}

/// `text` in ASCII for an SSH protocol message: OpenSSH shows other bytes
/// escaped (`…` as `\342\200\246`). Common typography becomes its ASCII
/// form, anything else outside printable ASCII `?`.
pub(crate) fn protocol_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            ' '..='~' => out.push(c),
            '\u{2026}' => out.push_str("..."),
            '\u{2018}' | '\u{2019}' => out.push('\''),
            '\u{201c}' | '\u{201d}' => out.push('"'),
            '\u{2013}' | '\u{2014}' | '\u{2212}' => out.push('-'),
            '\u{2192}' => out.push_str("->"),
            _ => out.push('?'),
        }
    }
    out
}

/// A direct-tcpip channel waiting for the gateway's answer.
struct Pending {
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
}

#[async_trait::async_trait]
impl ForwardClient for Pending {
    type Stream = ChannelStream<Msg>;

    async fn accept(self) -> Self::Stream {
        self.reply.accept().await;
        self.channel.into_stream()
    }

    async fn refuse(self, message: String) {
        self.reply.reject(refusal(message)).await;
    }
}

/// Translates one direct-tcpip channel into a port request and hands it
/// to the gateway, which decides, opens, pipes and records it.
pub async fn run(
    ctx: Arc<ServerContext>,
    user: Arc<Authenticated>,
    ports: Arc<PortSessions>,
    req: Request,
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
    gateway_session: Uuid,
) {
    let Ok(port) = u16::try_from(req.port) else {
        return reply
            .reject(refusal(format!("port {} is out of range", req.port)))
            .await;
    };
    let target = match TargetSpec::parse(&req.host) {
        Ok(t) => t,
        Err(e) => {
            tracing::info!(user = %user.user.name, host = %Untrusted(&req.host), port, error = %e, "forward refused");
            return reply.reject(refusal(format!("ssmgate: {e}"))).await;
        }
    };
    let kind = Kind::Port { port };
    // A forward carries no environment: the login's prompt or a grant.
    // Boxed, as the set-up in `run_forward`: this future lives as long as
    // the forward, and would otherwise be as large as its largest step.
    let chosen = match Box::pin(reasons::given(&ctx, &user, None, Some(&target))).await {
        Ok(Some(chosen)) => chosen,
        Ok(None) if ctx.justification.required => {
            let text = reasons::missing(&ctx, &user, kind.action());
            tracing::info!(user = %user.user.name, target = %target, port, "forward refused: no reason");
            return reply.reject(refusal(text)).await;
        }
        Ok(None) => Chosen::none(),
        Err(text) => return reply.reject(refusal(text)).await,
    };
    let request = SessionRequest {
        id: gateway_session,
        user: user.user.clone(),
        auth: user.auth.clone(),
        source: user.source,
        target,
        kind,
        pty: false,
        document: None,
        reason: chosen.reason,
        reason_source: chosen.source,
        client_version: user.client_version.clone(),
    };
    let pending = Pending { channel, reply };
    if let Ok(done) = ctx.gateway.run_forward(&ports, &request, pending).await {
        tracing::info!(
            gateway_session = %request.id, user = %request.user.name, target = %done.target.id, port,
            bytes_up = done.up, bytes_down = done.down, ended = ?done.ended, "forward ended"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_text_is_ascii() {
        assert_eq!(
            protocol_text(
                "needs a reason: \u{201c}INC-1\u{201d} \u{2026} i-0a1b\u{2026} \u{2014} d\u{e9}j\u{e0}\nx"
            ),
            "needs a reason: \"INC-1\" ... i-0a1b... - d?j??x"
        );
        assert!(
            protocol_text("\u{1b}[2J\u{7f}")
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b))
        );
    }
}
