//! The client's side of a terminal session (shell, command or subsystem),
//! as the SSH layer hands it to the gateway: the terminal it asked for
//! ([`PtyRequest`]), the environment it set, what it
//! sends ([`ClientInput`]) and where output goes ([`ClientOutput`]). Every
//! backend consumes the same; nothing here knows russh.

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::gateway::record::EndCause;

/// A terminal request (RFC 4254 §6.2), passed on as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtyRequest {
    /// `TERM`.
    pub term: String,
    /// Columns.
    pub cols: u32,
    /// Rows.
    pub rows: u32,
    /// Width in pixels.
    pub pix_width: u32,
    /// Height in pixels.
    pub pix_height: u32,
    /// Encoded terminal modes (opcode, value).
    pub modes: Vec<(u8, u32)>,
}

/// What the client sends to a terminal session.
#[derive(Debug)]
pub enum ClientInput {
    /// Keystrokes or stdin.
    Data(Bytes),
    /// A new terminal size.
    Resize { cols: u32, rows: u32 },
    /// A signal, by its RFC 4254 name without `SIG` (`INT`, `TERM`, …).
    Signal(String),
    /// The client will send no more data.
    Eof,
}

/// How a process ended, as SSH reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// `exit-status`.
    Status(u32),
    /// `exit-signal`: killed by a signal.
    Signal {
        /// The signal's name without `SIG`.
        name: String,
        /// Whether it dumped core.
        core_dumped: bool,
        /// An explanation, possibly empty.
        message: String,
    },
}

/// Where a terminal session's output goes.
#[async_trait::async_trait]
pub trait ClientOutput: Send {
    /// Standard output; false once the client is gone.
    async fn stdout(&mut self, data: Bytes) -> bool;
    /// Standard error; false once the client is gone.
    async fn stderr(&mut self, data: Bytes) -> bool;
    /// No more output will follow (the target's EOF), before the end.
    async fn eof(&mut self);
    /// The end: how it exited (if known), EOF if not sent yet, close.
    async fn finish(&mut self, exit: Option<Exit>);

    /// A way to put a line on the client's stderr from elsewhere while the
    /// session runs (a shutdown notice); `None` when there is none.
    fn notifier(&self) -> Option<crate::ops::live::Notifier> {
        None
    }
}

/// How a session ended, for logs and the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The client closed its side.
    ClientClosed,
    /// The remote process or shell finished.
    TargetExited { exit_status: Option<i32> },
    /// Something failed; the text was shown to the client.
    Error(String),
}

/// The client side of a terminal session (what to run is the request's
/// [`Kind`](crate::request::Kind)).
pub struct Terminal<'a> {
    /// The terminal, when one was requested.
    pub pty: Option<PtyRequest>,
    /// Environment variables the client set that may be passed on
    /// (`TERM`, `LANG`, `LC_*`).
    pub env: Vec<(String, String)>,
    /// What the client sends (keystrokes, resizes, signals, EOF).
    pub input: mpsc::Receiver<ClientInput>,
    /// Where output goes.
    pub output: &'a mut dyn ClientOutput,
    /// Why the gateway cut the connection, if it did (for the record).
    pub end_cause: &'a EndCause,
}
