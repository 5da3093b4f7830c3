//! `sftp-audit`: a passive parser of SFTP protocol version 3
//! (draft-ietf-secsh-filexfer-02, as OpenSSH's `sftp-server` and `sftp`/`scp`
//! speak it, with OpenSSH's extensions) that turns the plaintext bytes of an
//! sftp subsystem channel, both directions, into audit events
//! ([`SftpEvent`]): opens and closes with byte counts and sha256 digests,
//! removes, renames, mkdir/rmdir, setstat, links, copy-data.
//!
//! It only observes: feed it copies of the bytes ([`SftpAudit::client_bytes`],
//! [`SftpAudit::server_bytes`]) in chunks of any size, *in the order they
//! crossed the gateway* (a request before its reply), and call
//! [`SftpAudit::finish`] when the channel closes. It never panics and its
//! memory is bounded by [`Limits`] whatever either peer sends; when the
//! stream stops making sense it reports one [`SftpEvent::Unparseable`] and
//! goes quiet.
//!
//! Digests: `read_sha256` / `written_sha256` of a [`SftpEvent::Close`] are
//! the sha256 of the bytes transferred through the handle, present only when
//! those bytes cover offsets `0..n` exactly once (no gap, no overlap),
//! whatever order the pipelined replies came in. Reads: at least one READ got
//! DATA or EOF (a file read to EOF that was empty gives the empty digest).
//! Writes: the file was opened with `write`, every WRITE was answered ok (an
//! untouched file opened for writing gives the empty digest). A digest says
//! what crossed the channel, not what the file holds afterwards (a read that
//! stopped early hashes a prefix; a later SETSTAT may truncate).
//!
//! ```
//! use sftp_audit::{SftpAudit, SftpEvent};
//!
//! let mut audit = SftpAudit::new();
//! // SSH_FXP_INIT version 3, then SSH_FXP_VERSION 3, as they cross the gateway.
//! assert!(audit.client_bytes(&[0, 0, 0, 5, 1, 0, 0, 0, 3]).is_empty());
//! let events = audit.server_bytes(&[0, 0, 0, 5, 2, 0, 0, 0, 3]);
//! assert_eq!(events, vec![SftpEvent::Version { version: 3, extensions: vec![] }]);
//! for event in audit.finish() {
//!     println!("{}", serde_json::to_string(&event).unwrap_or_default());
//! }
//! ```
//!
//! Modules: `wire` frames packets and decodes fields; `session` (with
//! `pending` and `handles`) tracks requests and handles; `hashing` is the
//! ordered hasher; `events` defines the output.

mod events;
mod handles;
mod hashing;
mod pending;
mod session;
mod wire;

pub use events::{AttrsSummary, Direction, MAX_PATH_BYTES, SftpEvent, Status, TRUNCATION_MARK};
pub use session::Stats;

use session::Session;
use wire::Framer;

/// Bounds on what one session may hold in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest packet accepted (its length field); a larger declared length
    /// makes the stream unparseable. Default 256 KiB + 1 KiB (OpenSSH's
    /// `SFTP_MAX_MSG_LENGTH` is 256 KiB).
    pub max_packet: usize,
    /// Bytes held, over all files, for READ data or WRITE data that arrived
    /// ahead of a gap; beyond it the file concerned gets no digest.
    /// Default 8 MiB.
    pub max_reorder_bytes: usize,
    /// Open handles tracked; beyond it the oldest is closed implicitly.
    /// Default 1024.
    pub max_open_handles: usize,
    /// Requests awaiting a reply; beyond it the oldest is forgotten.
    /// Default 4096.
    pub max_pending_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet: 256 * 1024 + 1024,
            max_reorder_bytes: 8 * 1024 * 1024,
            max_open_handles: 1024,
            max_pending_requests: 4096,
        }
    }
}

/// Parser state of the whole session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// Unparseable: quiet until `finish`.
    Stopped,
    /// `finish` was called: quiet for good.
    Finished,
}

/// The passive SFTP v3 parser of one session. See the crate docs.
#[derive(Debug)]
pub struct SftpAudit {
    client: Framer,
    server: Framer,
    session: Session,
    state: State,
}

impl Default for SftpAudit {
    fn default() -> Self {
        SftpAudit::new()
    }
}

impl SftpAudit {
    /// A parser with the default [`Limits`].
    pub fn new() -> Self {
        SftpAudit::with_limits(Limits::default())
    }

    /// A parser with the given bounds.
    pub fn with_limits(limits: Limits) -> Self {
        SftpAudit {
            client: Framer::new(limits.max_packet),
            server: Framer::new(limits.max_packet),
            session: Session::new(&limits),
            state: State::Running,
        }
    }

    /// Bytes the client sent (requests). Returns the events these bytes
    /// completed: usually none, as most events complete on a reply.
    pub fn client_bytes(&mut self, data: &[u8]) -> Vec<SftpEvent> {
        self.feed(Direction::Client, data)
    }

    /// Bytes the server sent (replies). Returns the events they completed.
    pub fn server_bytes(&mut self, data: &[u8]) -> Vec<SftpEvent> {
        self.feed(Direction::Server, data)
    }

    /// The session ended: a [`SftpEvent::Close`] with `implicit: true` for
    /// every file still open (oldest first). Files left open after the
    /// stream became unparseable are reported too, without digests. Later
    /// calls return nothing.
    pub fn finish(&mut self) -> Vec<SftpEvent> {
        if self.state == State::Finished {
            return Vec::new();
        }
        self.state = State::Finished;
        self.client.clear();
        self.server.clear();
        self.session.finish();
        self.session.take_events()
    }

    /// Whether the stream became unparseable (or the session finished).
    pub fn is_stopped(&self) -> bool {
        self.state != State::Running
    }

    /// Counters of what was seen without becoming an event.
    pub fn stats(&self) -> &Stats {
        self.session.stats()
    }

    fn feed(&mut self, direction: Direction, data: &[u8]) -> Vec<SftpEvent> {
        if self.state != State::Running {
            return Vec::new();
        }
        let session = &mut self.session;
        let result = match direction {
            Direction::Client => self.client.feed(data, |p| session.on_client_packet(p)),
            Direction::Server => self.server.feed(data, |p| session.on_server_packet(p)),
        };
        if let Err(e) = result {
            self.state = State::Stopped;
            self.client.clear();
            self.server.clear();
            self.session.stop();
            self.session.push(SftpEvent::Unparseable {
                direction,
                reason: e.to_string(),
            });
        }
        self.session.take_events()
    }

    /// What the parser holds: (framer buffer capacity, reorder bytes charged,
    /// parked bytes actually held, pending requests, open handles).
    #[cfg(test)]
    pub(crate) fn footprint(&self) -> Footprint {
        let (reorder, pending, handles) = self.session.footprint();
        Footprint {
            framed: self.client.buffered() + self.server.buffered(),
            reorder,
            parked: self.session.parked_total(),
            pending,
            handles,
        }
    }
}

/// See [`SftpAudit::footprint`].
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Footprint {
    pub framed: usize,
    pub reorder: usize,
    pub parked: usize,
    pub pending: usize,
    pub handles: usize,
}

#[cfg(test)]
mod tests;
