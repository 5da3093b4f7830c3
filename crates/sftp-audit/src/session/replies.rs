//! The server side: VERSION, then replies matched to their request by id
//! and turned into events. HANDLE replies open entries in the handle table,
//! DATA replies feed the read hasher at the READ's offset, STATUS replies
//! settle WRITEs (counted only when ok) and every path operation.

use super::Session;
use crate::events::{MAX_TEXT_BYTES, SftpEvent, Status, display_bytes, open_flag_names};
use crate::handles::{EntryId, HandleKind};
use crate::pending::Pending;
use crate::wire::{Reader, WireError, kind, split};

/// SSH_FX_EOF.
const STATUS_EOF: u32 = 1;
/// At most this many extension names are reported from VERSION.
const MAX_EXTENSIONS: usize = 64;
/// Extension names are cut at this many bytes.
const MAX_EXTENSION_NAME: usize = 128;

/// The part of a reply that matters to its request.
enum Reply<'a> {
    Status(Status),
    Handle(&'a [u8]),
    Data(&'a [u8]),
    /// NAME, ATTRS or EXTENDED_REPLY: a success without anything to audit.
    Other,
}

impl Session {
    /// One complete packet from the server.
    pub(crate) fn on_server_packet(&mut self, packet: &[u8]) -> Result<(), WireError> {
        self.stats.server_packets = self.stats.server_packets.saturating_add(1);
        let (k, id, mut r) = split(packet)?;
        if k == kind::VERSION {
            return self.version(&mut r);
        }
        let Some(id) = id else {
            self.stats.mismatched_replies = self.stats.mismatched_replies.saturating_add(1);
            return Ok(());
        };
        let reply = match k {
            kind::STATUS => {
                let code = r.u32("error/status code")?;
                // v3 servers send message and language tag; very old ones neither.
                let message = match r.is_empty() {
                    true => None,
                    false => Some(r.string("error message")?),
                };
                let message = message
                    .filter(|m| !m.is_empty())
                    .map(|m| display_bytes(m, MAX_TEXT_BYTES));
                Reply::Status(Status::new(code, message))
            }
            kind::HANDLE => Reply::Handle(r.handle()?),
            kind::DATA => Reply::Data(r.string("data")?),
            kind::NAME | kind::ATTRS | kind::EXTENDED_REPLY => Reply::Other,
            _ => {
                // A request type from the server: not a reply to anything.
                self.stats.mismatched_replies = self.stats.mismatched_replies.saturating_add(1);
                return Ok(());
            }
        };
        match self.pending.take(id) {
            Some(p) => self.reply(p, reply),
            None => self.stats.orphan_replies = self.stats.orphan_replies.saturating_add(1),
        }
        Ok(())
    }

    fn version(&mut self, r: &mut Reader<'_>) -> Result<(), WireError> {
        let version = r.u32("version")?;
        let mut extensions = Vec::new();
        // Lenient: a malformed extension list only ends the list.
        while !r.is_empty() && extensions.len() < MAX_EXTENSIONS {
            let (Ok(name), Ok(_data)) = (r.string("extension-name"), r.string("extension-data"))
            else {
                break;
            };
            extensions.push(display_bytes(name, MAX_EXTENSION_NAME));
        }
        self.push(SftpEvent::Version {
            version,
            extensions,
        });
        if version != 3 {
            return Err(WireError::UnsupportedVersion(version));
        }
        Ok(())
    }

    /// The status of a reply that should be a STATUS.
    fn expect_status(&mut self, reply: Reply<'_>) -> Option<Status> {
        match reply {
            Reply::Status(s) => Some(s),
            _ => {
                self.stats.mismatched_replies = self.stats.mismatched_replies.saturating_add(1);
                None
            }
        }
    }

    fn reply(&mut self, pending: Pending, reply: Reply<'_>) {
        match pending {
            Pending::Open { path, pflags } => {
                let status = match reply {
                    Reply::Handle(h) => {
                        self.open_handle(h, path.clone(), HandleKind::File { pflags });
                        Status::ok()
                    }
                    other => match self.expect_status(other) {
                        Some(s) => s,
                        None => return,
                    },
                };
                let flags = open_flag_names(pflags);
                self.push(SftpEvent::Open {
                    path,
                    flags,
                    status,
                });
            }
            Pending::OpenDir { path } => {
                let status = match reply {
                    Reply::Handle(h) => {
                        self.open_handle(h, path.clone(), HandleKind::Dir);
                        Status::ok()
                    }
                    other => match self.expect_status(other) {
                        Some(s) => s,
                        None => return,
                    },
                };
                self.push(SftpEvent::OpenDir { path, status });
            }
            Pending::Close { entry } => {
                let Some(status) = self.expect_status(reply) else {
                    return;
                };
                // OpenSSH frees the handle whatever close(2) returned.
                if let Some(file) = self.handles.remove(entry)
                    && let Some(ev) = file.close_event(&mut self.budget, false, Some(status))
                {
                    self.push(ev);
                }
            }
            Pending::Read { entry, offset, len } => self.read_reply(entry, offset, len, reply),
            Pending::Write { entry, len } => self.write_reply(entry, len, reply),
            Pending::Remove { path } => {
                if let Some(status) = self.expect_status(reply) {
                    self.push(SftpEvent::Remove { path, status });
                }
            }
            Pending::Rename { from, to, posix } => {
                if let Some(status) = self.expect_status(reply) {
                    self.push(SftpEvent::Rename {
                        from,
                        to,
                        posix,
                        status,
                    });
                }
            }
            Pending::Mkdir { path } => {
                if let Some(status) = self.expect_status(reply) {
                    self.push(SftpEvent::Mkdir { path, status });
                }
            }
            Pending::Rmdir { path } => {
                if let Some(status) = self.expect_status(reply) {
                    self.push(SftpEvent::Rmdir { path, status });
                }
            }
            Pending::Setstat { path, attrs } => {
                if let Some(status) = self.expect_status(reply) {
                    self.push(SftpEvent::Setstat {
                        path,
                        attrs,
                        status,
                    });
                }
            }
            Pending::Symlink { link, target } => {
                if let Some(status) = self.expect_status(reply) {
                    self.push(SftpEvent::Symlink {
                        link,
                        target,
                        status,
                    });
                }
            }
            Pending::Hardlink { from, to } => {
                if let Some(status) = self.expect_status(reply) {
                    self.push(SftpEvent::Hardlink { from, to, status });
                }
            }
            Pending::CopyData {
                from_path,
                to_path,
                to_entry,
                from_offset,
                to_offset,
                length,
            } => {
                let Some(status) = self.expect_status(reply) else {
                    return;
                };
                // The destination now holds bytes that never crossed the
                // channel: its written digest no longer describes it.
                if let Some(file) = to_entry.and_then(|e| self.handles.get_mut(e)) {
                    file.write.invalidate(&mut self.budget);
                }
                self.push(SftpEvent::CopyData {
                    from_path,
                    to_path,
                    from_offset,
                    to_offset,
                    length,
                    status,
                });
            }
            Pending::Extended { name } => {
                let status = match reply {
                    Reply::Status(s) => s,
                    _ => Status::ok(),
                };
                self.push(SftpEvent::Extended { name, status });
            }
            Pending::Quiet => {}
        }
    }

    fn read_reply(&mut self, entry: EntryId, offset: u64, len: u32, reply: Reply<'_>) {
        let Some(file) = self.handles.get_mut(entry) else {
            return;
        };
        match reply {
            Reply::Data(data) => {
                let n = u64::try_from(data.len()).unwrap_or(u64::MAX);
                file.read_bytes = file.read_bytes.saturating_add(n);
                file.read_seen = true;
                if n > u64::from(len) {
                    // More than asked for: which bytes are where is unknowable.
                    file.read.invalidate(&mut self.budget);
                } else {
                    let result = file.read.add(offset, data, &mut self.budget);
                    self.note_break(result);
                }
            }
            Reply::Status(s) => {
                if s.code == STATUS_EOF {
                    file.read_seen = true;
                }
            }
            Reply::Handle(_) | Reply::Other => {
                self.stats.mismatched_replies = self.stats.mismatched_replies.saturating_add(1)
            }
        }
    }

    fn write_reply(&mut self, entry: EntryId, len: u64, reply: Reply<'_>) {
        let Some(file) = self.handles.get_mut(entry) else {
            return;
        };
        file.writes_outstanding = file.writes_outstanding.saturating_sub(1);
        match reply {
            Reply::Status(s) if s.is_ok() => {
                file.written_bytes = file.written_bytes.saturating_add(len);
            }
            Reply::Status(_) => {
                file.write.invalidate(&mut self.budget);
                self.stats.failed_writes = self.stats.failed_writes.saturating_add(1);
            }
            _ => {
                file.write.invalidate(&mut self.budget);
                self.stats.mismatched_replies = self.stats.mismatched_replies.saturating_add(1);
            }
        }
    }

    /// Registers a new handle, closing implicitly whatever it displaces.
    fn open_handle(&mut self, handle: &[u8], path: String, kind: HandleKind) {
        let inserted = self.handles.insert(handle, path, kind);
        if inserted.evicted.is_some() && !self.noted.handles {
            self.noted.handles = true;
            self.push(SftpEvent::LimitReached {
                limit: "max_open_handles",
            });
        }
        for file in [inserted.replaced, inserted.evicted].into_iter().flatten() {
            self.stats.evicted_handles = self.stats.evicted_handles.saturating_add(1);
            self.close_implicitly(file);
        }
    }
}
