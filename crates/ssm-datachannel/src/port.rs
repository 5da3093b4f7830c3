//! Port sessions on the client side (spec §7.4): which of the three modes
//! an agent will speak, decided from the handshake, and [`PortSession`],
//! which hides the mode behind `open_stream()` and `close()`.
//!
//! - **stream**: one byte stream (AWS-StartSSHSession, documents without
//!   `type`); the agent's EOF ends the session;
//! - **basic**: one TCP connection at a time, `DisconnectToPort` between
//!   connections (LocalPortForwarding with agents ≤ 3.0.196.0);
//! - **mux**: smux v1 over the byte stream, many connections at once.

use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::oneshot;

use super::channel::{CloseReason, DataChannel, Events, SessionInfo};
use super::io::byte_stream;
use super::payloads::Flag;
use super::smux;
use super::version::plugin_greater;

/// Agents above this version speak smux for LocalPortForwarding.
pub const MUX_MIN_AGENT: &str = "3.0.196.0";
/// Agents above this version run smux without keepalive.
pub const NO_KEEPALIVE_AGENT: &str = "3.1.1511.0";

/// How a port session carries connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortMode {
    /// A single byte stream.
    Stream,
    /// One connection at a time.
    Basic,
    /// smux; `keepalive` says whether our smux client must send keepalives.
    Mux { keepalive: bool },
}

impl PortMode {
    /// The mode the plugin would choose for this handshake.
    pub fn for_session(info: &SessionInfo) -> Self {
        let local = info.properties.get("type").map(String::as_str) == Some("LocalPortForwarding");
        if !local {
            return Self::Stream;
        }
        let agent = info.agent_version.as_deref().unwrap_or("");
        if plugin_greater(agent, MUX_MIN_AGENT) {
            Self::Mux {
                keepalive: !plugin_greater(agent, NO_KEEPALIVE_AGENT),
            }
        } else {
            Self::Basic
        }
    }
}

/// An open port session, whatever its mode: connections are opened with
/// [`open_stream`](Self::open_stream) (as many as the mode allows) and the
/// session is ended with [`close`](Self::close), awaited — nothing is
/// cleaned up in a destructor.
pub struct PortSession {
    mode: PortMode,
    /// Basic mode only: where the TerminateSession flag goes.
    basic: Option<DataChannel>,
    inner: Inner,
}

enum Inner {
    /// Stream and basic mode: the one connection, until taken.
    Single(Mutex<Option<(DataChannel, Events)>>),
    /// Mux mode: an smux client over the channel's bytes.
    Mux(smux::Session),
}

/// Why a connection could not be opened on a port session.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Stream and basic sessions carry a single connection.
    #[error("this port session ({0:?} mode) carries one connection, already open")]
    Taken(PortMode),
    /// The smux session refused or has ended.
    #[error(transparent)]
    Smux(#[from] smux::SmuxError),
}

impl PortSession {
    /// Wraps a ready channel (after the handshake that produced `info`).
    pub fn new(channel: DataChannel, events: Events, info: &SessionInfo) -> Self {
        let mode = PortMode::for_session(info);
        let basic = (mode == PortMode::Basic).then(|| channel.clone());
        let inner = match mode {
            PortMode::Mux { keepalive } => {
                let bs = byte_stream(channel, events);
                let (r, w) = tokio::io::split(bs.stream);
                let mut config = smux::Config::default();
                if !keepalive {
                    config.keepalive = None;
                }
                Inner::Mux(smux::Session::client(r, w, config))
            }
            PortMode::Stream | PortMode::Basic => {
                Inner::Single(Mutex::new(Some((channel, events))))
            }
        };
        Self { mode, basic, inner }
    }

    /// The mode the agent speaks.
    pub fn mode(&self) -> PortMode {
        self.mode
    }

    /// True when no further connection can be opened.
    pub fn is_closed(&self) -> bool {
        match &self.inner {
            Inner::Mux(s) => s.is_closed(),
            Inner::Single(slot) => slot.lock().map_or(true, |s| s.is_none()),
        }
    }

    /// Opens one connection to the target's port.
    pub async fn open_stream(&self) -> Result<PortStream, PortError> {
        match &self.inner {
            Inner::Mux(s) => Ok(PortStream {
                inner: StreamInner::Mux(s.open_stream().await?),
            }),
            Inner::Single(slot) => {
                let taken = slot.lock().ok().and_then(|mut s| s.take());
                let (channel, events) = taken.ok_or(PortError::Taken(self.mode))?;
                let bs = byte_stream(channel, events);
                Ok(PortStream {
                    inner: StreamInner::Single(bs.stream, bs.closed),
                })
            }
        }
    }

    /// Ends the session on the wire: closes the smux session, or tells a
    /// basic-mode agent to end (TerminateSession flag). Stream mode ends
    /// with its connection. The SSM session itself is ended by the caller
    /// (the TerminateSession API call).
    pub async fn close(&self) {
        match &self.inner {
            Inner::Mux(s) => s.close(),
            Inner::Single(_) => {
                if let Some(channel) = &self.basic {
                    let _ = channel.send_flag(Flag::TerminateSession).await;
                }
            }
        }
    }
}

/// One connection on a [`PortSession`]: bytes to and from the target port.
pub struct PortStream {
    inner: StreamInner,
}

enum StreamInner {
    Single(DuplexStream, oneshot::Receiver<CloseReason>),
    Mux(smux::Stream),
}

impl PortStream {
    /// Whether a shutdown of the write side reaches the target as a
    /// half-close. Only smux streams carry one; a stream- or basic-mode
    /// channel cannot, so a caller that finished writing should stop
    /// waiting for the target after a while.
    pub fn passes_half_close(&self) -> bool {
        matches!(self.inner, StreamInner::Mux(_))
    }

    /// The error the data channel closed with, once it has closed with one.
    pub fn close_error(&mut self) -> Option<String> {
        match &mut self.inner {
            StreamInner::Single(_, closed) => match closed.try_recv() {
                Ok(CloseReason::Error(e)) => Some(e.to_string()),
                _ => None,
            },
            StreamInner::Mux(_) => None,
        }
    }
}

impl AsyncRead for PortStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            StreamInner::Single(s, _) => Pin::new(s).poll_read(cx, buf),
            StreamInner::Mux(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PortStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            StreamInner::Single(s, _) => Pin::new(s).poll_write(cx, buf),
            StreamInner::Mux(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            StreamInner::Single(s, _) => Pin::new(s).poll_flush(cx),
            StreamInner::Mux(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            StreamInner::Single(s, _) => Pin::new(s).poll_shutdown(cx),
            StreamInner::Mux(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(kind: Option<&str>, agent: &str) -> SessionInfo {
        let mut i = SessionInfo {
            session_type: Some("Port".into()),
            agent_version: Some(agent.into()),
            ..SessionInfo::default()
        };
        if let Some(k) = kind {
            i.properties.insert("type".into(), k.into());
        }
        i
    }

    #[test]
    fn modes_follow_the_plugin_rules() {
        assert_eq!(
            PortMode::for_session(&info(None, "3.3.987.0")),
            PortMode::Stream
        );
        assert_eq!(
            PortMode::for_session(&info(Some("LocalPortForwarding"), "3.3.987.0")),
            PortMode::Mux { keepalive: false }
        );
        assert_eq!(
            PortMode::for_session(&info(Some("LocalPortForwarding"), "3.1.0.0")),
            PortMode::Mux { keepalive: true }
        );
        assert_eq!(
            PortMode::for_session(&info(Some("LocalPortForwarding"), "3.0.196.0")),
            PortMode::Basic
        );
    }
}
