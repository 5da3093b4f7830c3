//! xtaci/smux protocol version 1, async on tokio: many byte streams
//! multiplexed over one ordered byte transport (spec §7.4 "Mux mode").
//!
//! Port-forwarding sessions carry this protocol inside the data channel: our
//! client is the smux *client* (stream ids 3, 5, 7, …), the agent the smux
//! *server* (ids 2, 4, …). The transport is any `AsyncRead` + `AsyncWrite`
//! pair; frames may arrive cut at arbitrary byte boundaries.
//!
//! Design:
//! - one **reader task** owns the transport reader, reassembles frames and
//!   files data into per-stream buffers. Flow control is v1's session-wide
//!   receive budget: while the data buffered for the application reaches
//!   `max_receive_buffer`, the reader stops reading the transport until the
//!   application reads (backpressure; nothing is ever dropped);
//! - one **writer task** owns the transport writer and drains a bounded frame
//!   queue shared by all streams (whole frames, FIFO, small frames coalesced
//!   into one transport write);
//! - an optional **keepalive task** sends NOP every interval and ends the
//!   session when nothing was received for the timeout;
//! - all state sits behind one `std` mutex that is never held across an
//!   `.await`; tasks and streams are woken through stored wakers.
//!
//! Layout: [`frame`] (wire format), `session` ([`Session`], shared state),
//! `stream` ([`Stream`]), `tasks` (reader, writer, keepalive).

use std::io;
use std::time::Duration;

pub mod frame;
mod session;
mod stream;
mod tasks;
#[cfg(test)]
mod tests;

pub use session::{Session, SessionStats};
pub use stream::Stream;

/// Keepalive timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// How often a NOP frame is sent.
    pub interval: Duration,
    /// The session ends when nothing at all was received for this long
    /// (except while the reader is paused by the receive budget).
    pub timeout: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Session settings; [`Config::default`] matches xtaci's `DefaultConfig()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `None` disables keepalive (needed against current SSM agents, §7.4).
    pub keepalive: Option<Keepalive>,
    /// Most data bytes per PSH frame we send (clamped to 1..=65535).
    pub max_frame_size: usize,
    /// Session-wide budget of received data buffered for the application;
    /// reaching it pauses reading from the transport.
    pub max_receive_buffer: usize,
    /// Per-stream buffer size. Protocol v1 has no per-stream window, so this
    /// is kept for parity with xtaci and not used for flow control.
    pub max_stream_buffer: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            keepalive: Some(Keepalive::default()),
            max_frame_size: 32 * 1024,
            max_receive_buffer: 4 * 1024 * 1024,
            max_stream_buffer: 64 * 1024,
        }
    }
}

impl Config {
    /// The same settings with out-of-range values brought into range: frame
    /// size 1..=65535, a receive buffer of at least one byte, keepalive
    /// durations of at least 1 ms with the interval no longer than the timeout.
    pub fn normalized(mut self) -> Self {
        self.max_frame_size = self.max_frame_size.clamp(1, frame::MAX_FRAME_DATA);
        self.max_receive_buffer = self.max_receive_buffer.max(1);
        if let Some(ka) = &mut self.keepalive {
            let min = Duration::from_millis(1);
            ka.timeout = ka.timeout.max(min);
            ka.interval = ka.interval.clamp(min, ka.timeout);
        }
        self
    }
}

/// Why a session ended, or why an operation on it failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmuxError {
    /// [`Session::close`] was called.
    #[error("smux session closed")]
    Closed,
    /// The transport reached end of file.
    #[error("smux transport closed by the peer")]
    TransportEof,
    /// Reading or writing the transport failed.
    #[error("smux transport error ({kind:?}): {message}")]
    Io {
        /// The I/O error kind.
        kind: io::ErrorKind,
        /// The I/O error text.
        message: String,
    },
    /// A frame carried a version other than 1.
    #[error("smux protocol error: unsupported version {0}")]
    BadVersion(u8),
    /// A frame carried an unknown command.
    #[error("smux protocol error: unknown command {0}")]
    UnknownCommand(u8),
    /// A SYN, FIN or NOP frame announced data.
    #[error("smux protocol error: command {cmd} with {length} data bytes")]
    UnexpectedData {
        /// The command byte.
        cmd: u8,
        /// The announced length.
        length: u16,
    },
    /// Nothing was received for the keepalive timeout.
    #[error("smux keepalive timeout: nothing received for {0:?}")]
    KeepaliveTimeout(Duration),
    /// All stream ids of our parity have been used.
    #[error("smux stream ids exhausted")]
    StreamIdsExhausted,
}

impl SmuxError {
    fn from_io(err: &io::Error) -> Self {
        Self::Io {
            kind: err.kind(),
            message: err.to_string(),
        }
    }

    /// True for errors caused by malformed frames from the peer.
    pub fn is_protocol_error(&self) -> bool {
        matches!(
            self,
            Self::BadVersion(_) | Self::UnknownCommand(_) | Self::UnexpectedData { .. }
        )
    }
}
