//! The WebSocket under a data channel (spec §1): dial the `StreamUrl`,
//! authenticate with the `OpenDataChannelInput` TEXT frame, and carry one
//! binary message per frame.
//!
//! Owns connecting and the open frame only; sequencing lives in `reliable`,
//! the session loop in `channel`.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use super::payloads::OpenDataChannelInput;
use crate::secret::Secret;

/// The WebSocket type a data channel runs over.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The ClientVersion we report: numeric, four parts and above `1.2.331.0`,
/// so that agents pick smux with keepalive off (spec §7.4).
pub const CLIENT_VERSION: &str = "1.2.677.0";

/// How long the WebSocket upgrade may take, as the plugin's dialer.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(45);

/// Why a WebSocket could not be opened. Never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting to the data channel timed out after {0:?}")]
    Timeout(Duration),
    #[error("connecting to the data channel failed: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
}

/// The WebSocket's read buffer. tungstenite zero-fills it to its full size
/// on every read, so each session holds all of it in real memory, idle or
/// not (its default, 128 KiB, was most of a session's memory). A
/// data-channel message from AWS is at most ~1.2 KiB (1,024 payload bytes
/// plus the header): 8 KiB takes six per read. Measured with `bench scale`
/// at 2,000 idle sessions, gateway RSS per session: 164 KiB at 32 KiB,
/// 147.5 at 16, 136 at 8 (before other savings). 4 KiB saved 4 KiB more
/// per session but cost `bench ssh` downloads through `-J` 2.72 s of CPU
/// per GiB in the gateway + simulator (beyond the relay) against 0.96 s at
/// 8 KiB, 86.7 % of the OpenSSH bastion against 98.6 %.
const READ_BUFFER: usize = 8 * 1024;

/// Dials `stream_url` and sends the open frame with `token`.
pub async fn connect(
    stream_url: &str,
    token: &Secret,
    client_id: Uuid,
) -> Result<Ws, ConnectError> {
    use futures_util::SinkExt;
    let (mut ws, _response) = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(
            stream_url,
            Some(WebSocketConfig::default().read_buffer_size(READ_BUFFER)),
            false,
        ),
    )
    .await
    .map_err(|_| ConnectError::Timeout(HANDSHAKE_TIMEOUT))??;
    let open = OpenDataChannelInput {
        message_schema_version: "1.0".into(),
        request_id: Uuid::new_v4().hyphenated().to_string(),
        token_value: token.expose().to_owned(),
        client_id: client_id.hyphenated().to_string(),
        client_version: Some(CLIENT_VERSION.into()),
    };
    // A struct of strings always serialises.
    let text = serde_json::to_string(&open).unwrap_or_default();
    ws.send(WsMessage::text(text)).await?;
    if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
        // Small keystroke messages should not wait for Nagle.
        let _ = tcp.set_nodelay(true);
    }
    Ok(ws)
}
