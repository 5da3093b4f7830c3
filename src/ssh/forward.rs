//! direct-tcpip channels (`ssh -J`, `ssh -W`, `ssh -L`): the destination must
//! be a resolved SSM managed instance — never an arbitrary host — and the
//! channel is accepted only once the SSM session behind it is ready, so a
//! refusal reaches the client as a channel-open failure with its reason.

use std::sync::Arc;

use russh::server::{ChannelOpenHandle, Msg};
use russh::{Channel, ChannelOpenFailure};
use uuid::Uuid;

use super::context::ServerContext;
use super::session_channel::Authenticated;
use crate::gateway::ports::{PortSessions, run_forward};
use crate::request::{Kind, SessionRequest};
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

/// Decides, opens and pipes one forwarded connection.
pub async fn run(
    ctx: Arc<ServerContext>,
    user: Arc<Authenticated>,
    ports: Arc<PortSessions>,
    req: Request,
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
) {
    let refuse = |text: String| ChannelOpenFailure::Other {
        code: PROHIBITED,
        reason: text,
    };
    let Ok(port) = u16::try_from(req.port) else {
        return reply
            .reject(refuse(format!("port {} is out of range", req.port)))
            .await;
    };
    let reason = match super::session_channel::reason(&ctx, &user, None) {
        Ok(r) => r,
        Err(text) => return reply.reject(refuse(text.trim_end().to_owned())).await,
    };
    let gateway = ctx.gateway.clone();
    let target = match gateway.resolve(&req.host).await {
        Ok(t) => t,
        Err(e) => {
            let id = Uuid::new_v4();
            tracing::info!(gateway_session = %id, user = %user.user.name, host = %Untrusted(&req.host), port, error = %e, "forward refused");
            return reply
                .reject(refuse(format!("ssmgate: {}", e.for_user(id))))
                .await;
        }
    };
    let request = SessionRequest {
        id: Uuid::new_v4(),
        user: user.user.clone(),
        auth: user.auth.clone(),
        source: user.source,
        target: target.id.clone(),
        kind: Kind::Port { port },
        pty: false,
        document: None,
        reason,
        client_version: user.client_version.clone(),
    };
    let forward = match ports.connect(&gateway, &request, &target.id, port).await {
        Ok(f) => f,
        Err(e) => {
            tracing::info!(gateway_session = %request.id, error = %e, "forward refused");
            return reply
                .reject(refuse(format!("ssmgate: {}", e.for_user(request.id))))
                .await;
        }
    };
    reply.accept().await;
    let (up, down, ended) = run_forward(&gateway, &ports, forward, channel.into_stream()).await;
    tracing::info!(
        gateway_session = %request.id, user = %request.user.name, target = %target.id, port,
        bytes_up = up, bytes_down = down, ended = ?ended, "forward ended"
    );
}
