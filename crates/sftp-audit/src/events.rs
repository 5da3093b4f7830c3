//! The audit events ([`SftpEvent`]) and their parts ([`Status`],
//! [`AttrsSummary`], [`Direction`]), how they serialise to JSON, and how
//! wire bytes become printable text ([`display_bytes`]): paths are decoded
//! as lossy UTF-8, backslashes, control and invisible/bidi characters are
//! escaped as `\u{..}`, and the result is bounded.

use std::borrow::Cow;

use serde::Serialize;

use crate::wire::Attrs;

/// Longest path (in bytes of its escaped text) an event carries.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest status message or extension name an event carries.
pub(crate) const MAX_TEXT_BYTES: usize = 1024;
/// Appended to text cut at its bound.
pub const TRUNCATION_MARK: &str = "\u{2026}[truncated]";

/// Which side sent the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Requests, from the sftp client.
    Client,
    /// Replies, from the sftp server.
    Server,
}

/// One audited file operation. Serialises to a flat JSON object tagged by
/// `"op"` (`"open"`, `"close"`, `"rename"`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SftpEvent {
    /// The server's SSH_FXP_VERSION: the protocol version and the names of
    /// the extensions it offers.
    Version {
        /// Negotiated version (only 3 is parsed further).
        version: u32,
        /// Extension names, in the server's order.
        extensions: Vec<String>,
    },
    /// An OPEN, when its HANDLE (status ok) or STATUS (an error) arrives.
    Open {
        /// The path asked for.
        path: String,
        /// Open flags: `read`, `write`, `append`, `creat`, `trunc`, `excl`,
        /// or `0x..` for unknown bits.
        flags: Vec<Cow<'static, str>>,
        /// The outcome.
        status: Status,
    },
    /// A file handle was closed: what went through it.
    Close {
        /// The path it was opened with.
        path: String,
        /// Bytes the server returned in DATA replies.
        read_bytes: u64,
        /// Bytes of WRITEs the server acknowledged with status ok.
        written_bytes: u64,
        /// sha256 (lowercase hex) of the bytes read, when they cover
        /// `0..read_bytes` exactly once and at least one read got data or EOF.
        read_sha256: Option<String>,
        /// sha256 of the bytes written, when they cover `0..written_bytes`
        /// exactly once, every WRITE was acknowledged ok and the file was
        /// opened for writing (the empty-string digest when nothing was written).
        written_sha256: Option<String>,
        /// True when no CLOSE reply was seen: the session ended, the parser
        /// stopped, or the handle table overflowed.
        implicit: bool,
        /// The CLOSE reply; `null` for implicit closes.
        status: Option<Status>,
    },
    /// An OPENDIR, when its reply arrives.
    OpenDir {
        /// The directory.
        path: String,
        /// The outcome.
        status: Status,
    },
    /// REMOVE of a file.
    Remove {
        /// The file.
        path: String,
        /// The outcome.
        status: Status,
    },
    /// RENAME, or `posix-rename@openssh.com` (which may replace `to`).
    Rename {
        /// Old path.
        from: String,
        /// New path.
        to: String,
        /// True for `posix-rename@openssh.com`.
        posix: bool,
        /// The outcome.
        status: Status,
    },
    /// MKDIR.
    Mkdir {
        /// The directory.
        path: String,
        /// The outcome.
        status: Status,
    },
    /// RMDIR.
    Rmdir {
        /// The directory.
        path: String,
        /// The outcome.
        status: Status,
    },
    /// SETSTAT, FSETSTAT (the handle's path) or `lsetstat@openssh.com`.
    Setstat {
        /// The path; `null` for FSETSTAT on a handle the parser does not know.
        path: Option<String>,
        /// The attributes set.
        attrs: AttrsSummary,
        /// The outcome.
        status: Status,
    },
    /// SYMLINK: `link` is created pointing at `target` (OpenSSH's argument
    /// order: the wire carries target first, then link).
    Symlink {
        /// The new link.
        link: String,
        /// What it points at.
        target: String,
        /// The outcome.
        status: Status,
    },
    /// `hardlink@openssh.com`: `to` becomes another name of `from`.
    Hardlink {
        /// The existing file.
        from: String,
        /// The new name.
        to: String,
        /// The outcome.
        status: Status,
    },
    /// `copy-data`: the server copies between two open handles.
    CopyData {
        /// Path of the source handle (`null` if unknown).
        from_path: Option<String>,
        /// Path of the destination handle (`null` if unknown).
        to_path: Option<String>,
        /// Source offset.
        from_offset: u64,
        /// Destination offset.
        to_offset: u64,
        /// Bytes asked for; 0 means "until end of file".
        length: u64,
        /// The outcome.
        status: Status,
    },
    /// Any other extended request (one that may change things).
    Extended {
        /// The extension name.
        name: String,
        /// The outcome (ok for a non-STATUS reply).
        status: Status,
    },
    /// A bound of [`crate::Limits`] was reached (once per bound per session):
    /// the oldest pending request or open handle was dropped, or a file's
    /// reorder buffer gave up (that file gets no sha256).
    LimitReached {
        /// `max_pending_requests`, `max_open_handles` or `max_reorder_bytes`.
        limit: &'static str,
    },
    /// The stream stopped being parseable; nothing more is reported except
    /// the implicit closes of [`crate::SftpAudit::finish`].
    Unparseable {
        /// The side whose bytes could not be parsed.
        direction: Direction,
        /// Why.
        reason: String,
    },
}

/// An SSH_FXP_STATUS, or "ok" for a successful HANDLE reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The numeric code (0 = ok).
    pub code: u32,
    /// `ok`, `eof`, `no_such_file`, `permission_denied`, `failure`,
    /// `bad_message`, `no_connection`, `connection_lost`, `op_unsupported`,
    /// or `code_N`.
    pub name: Cow<'static, str>,
    /// The server's message, when non-empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Status {
    /// Status 0 without a message.
    pub fn ok() -> Self {
        Status::new(0, None)
    }

    /// A status from its code and message.
    pub fn new(code: u32, message: Option<String>) -> Self {
        let name = match code {
            0 => Cow::Borrowed("ok"),
            1 => Cow::Borrowed("eof"),
            2 => Cow::Borrowed("no_such_file"),
            3 => Cow::Borrowed("permission_denied"),
            4 => Cow::Borrowed("failure"),
            5 => Cow::Borrowed("bad_message"),
            6 => Cow::Borrowed("no_connection"),
            7 => Cow::Borrowed("connection_lost"),
            8 => Cow::Borrowed("op_unsupported"),
            n => Cow::Owned(format!("code_{n}")),
        };
        Status {
            code,
            name,
            message,
        }
    }

    /// Whether the code is 0.
    pub fn is_ok(&self) -> bool {
        self.code == 0
    }
}

/// Which attributes a SETSTAT-like request sets. Absent fields are omitted
/// from JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AttrsSummary {
    /// New size (truncate/extend).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// New owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// New group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// New mode, octal (e.g. `"0644"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    /// New access time (seconds since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub atime: Option<u32>,
    /// New modification time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtime: Option<u32>,
    /// Number of extended attribute pairs.
    #[serde(skip_serializing_if = "is_zero")]
    pub extended: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl From<Attrs> for AttrsSummary {
    fn from(a: Attrs) -> Self {
        AttrsSummary {
            size: a.size,
            uid: a.uid_gid.map(|(u, _)| u),
            gid: a.uid_gid.map(|(_, g)| g),
            permissions: a.permissions.map(|p| format!("{p:04o}")),
            atime: a.times.map(|(at, _)| at),
            mtime: a.times.map(|(_, mt)| mt),
            extended: a.extended,
        }
    }
}

/// SSH_FXF_* open flags.
pub(crate) mod pflag {
    pub const READ: u32 = 0x01;
    pub const WRITE: u32 = 0x02;
    pub const APPEND: u32 = 0x04;
    pub const CREAT: u32 = 0x08;
    pub const TRUNC: u32 = 0x10;
    pub const EXCL: u32 = 0x20;
}

/// The names of the bits set in an OPEN's pflags.
pub(crate) fn open_flag_names(pflags: u32) -> Vec<Cow<'static, str>> {
    const NAMES: [(u32, &str); 6] = [
        (pflag::READ, "read"),
        (pflag::WRITE, "write"),
        (pflag::APPEND, "append"),
        (pflag::CREAT, "creat"),
        (pflag::TRUNC, "trunc"),
        (pflag::EXCL, "excl"),
    ];
    let mut out: Vec<Cow<'static, str>> = Vec::new();
    let mut known = 0;
    for (bit, name) in NAMES {
        known |= bit;
        if pflags & bit != 0 {
            out.push(Cow::Borrowed(name));
        }
    }
    let unknown = pflags & !known;
    if unknown != 0 {
        out.push(Cow::Owned(format!("0x{unknown:x}")));
    }
    out
}

/// Characters escaped besides controls: zero-width and bidi overrides that
/// could make a path print as something else.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Wire bytes as printable, bounded text: lossy UTF-8, `\` doubled,
/// controls and invisible characters as `\u{..}`, at most `max` bytes of
/// text followed by [`TRUNCATION_MARK`] when cut.
pub(crate) fn display_bytes(raw: &[u8], max: usize) -> String {
    let mut truncated = raw.len() > max;
    let head = raw.get(..max).unwrap_or(raw);
    let text = String::from_utf8_lossy(head);
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let before = out.len();
        if c == '\\' {
            out.push_str("\\\\");
        } else if c.is_control() || is_invisible(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
        if out.len() > max {
            out.truncate(before);
            truncated = true;
            break;
        }
    }
    if truncated {
        out.push_str(TRUNCATION_MARK);
    }
    out
}

/// A path from the wire, bounded to [`MAX_PATH_BYTES`].
pub(crate) fn display_path(raw: &[u8]) -> String {
    display_bytes(raw, MAX_PATH_BYTES)
}
