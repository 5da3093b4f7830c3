//! The client side: decodes each request into the [`Pending`] entry its
//! reply will need, resolving handles to open files at request time, and
//! hashes WRITE data as it is sent (in offset order, through the file's
//! ordered hasher) so that no WRITE payload is held while it waits for its
//! STATUS. A WRITE answered with an error, or never answered, voids the
//! file's written digest.

use super::Session;
use crate::events::{MAX_TEXT_BYTES, display_bytes, display_path};
use crate::pending::Pending;
use crate::wire::{Reader, WireError, kind, split};

/// Extended requests that only report on the server and change nothing.
const READ_ONLY_EXTENSIONS: [&[u8]; 7] = [
    b"statvfs@openssh.com",
    b"fstatvfs@openssh.com",
    b"limits@openssh.com",
    b"expand-path@openssh.com",
    b"home-directory",
    b"users-groups-by-id@openssh.com",
    // Flushes a handle already written through: nothing new to audit.
    b"fsync@openssh.com",
];

impl Session {
    /// One complete packet from the client.
    pub(crate) fn on_client_packet(&mut self, packet: &[u8]) -> Result<(), WireError> {
        self.stats.client_packets = self.stats.client_packets.saturating_add(1);
        let (k, id, mut r) = split(packet)?;
        // INIT carries no id and nothing to audit.
        let Some(id) = id else {
            return Ok(());
        };
        let pending = self.request(k, &mut r)?;
        self.track(id, pending);
        Ok(())
    }

    fn quiet(&mut self) -> Pending {
        self.stats.quiet_requests = self.stats.quiet_requests.saturating_add(1);
        Pending::Quiet
    }

    fn unknown_handle(&mut self) -> Pending {
        self.stats.unknown_handle_requests = self.stats.unknown_handle_requests.saturating_add(1);
        Pending::Quiet
    }

    fn request(&mut self, k: u8, r: &mut Reader<'_>) -> Result<Pending, WireError> {
        let pending = match k {
            kind::OPEN => {
                let path = display_path(r.string("filename")?);
                let pflags = r.u32("pflags")?;
                r.attrs()?;
                Pending::Open { path, pflags }
            }
            kind::OPENDIR => Pending::OpenDir {
                path: display_path(r.string("path")?),
            },
            kind::CLOSE => match self.handles.lookup(r.handle()?) {
                Some(entry) => Pending::Close { entry },
                None => self.unknown_handle(),
            },
            kind::READ => {
                let handle = r.handle()?;
                let offset = r.u64("offset")?;
                let len = r.u32("len")?;
                match self.handles.lookup(handle) {
                    Some(entry) => Pending::Read { entry, offset, len },
                    None => self.unknown_handle(),
                }
            }
            kind::WRITE => {
                let handle = r.handle()?;
                let offset = r.u64("offset")?;
                let data = r.string("data")?;
                self.write_request(handle, offset, data)
            }
            kind::SETSTAT => {
                let path = display_path(r.string("path")?);
                Pending::Setstat {
                    path: Some(path),
                    attrs: r.attrs()?.into(),
                }
            }
            kind::FSETSTAT => {
                let path = self.handles.path_of(r.handle()?);
                if path.is_none() {
                    self.stats.unknown_handle_requests =
                        self.stats.unknown_handle_requests.saturating_add(1);
                }
                Pending::Setstat {
                    path,
                    attrs: r.attrs()?.into(),
                }
            }
            kind::REMOVE => Pending::Remove {
                path: display_path(r.string("filename")?),
            },
            kind::MKDIR => {
                let path = display_path(r.string("path")?);
                r.attrs()?;
                Pending::Mkdir { path }
            }
            kind::RMDIR => Pending::Rmdir {
                path: display_path(r.string("path")?),
            },
            kind::RENAME => Pending::Rename {
                from: display_path(r.string("oldpath")?),
                to: display_path(r.string("newpath")?),
                posix: false,
            },
            kind::SYMLINK => {
                // OpenSSH's order (PROTOCOL 4.1): target first, then the link.
                let target = display_path(r.string("targetpath")?);
                let link = display_path(r.string("linkpath")?);
                Pending::Symlink { link, target }
            }
            kind::EXTENDED => self.extended(r)?,
            _ => self.quiet(),
        };
        Ok(pending)
    }

    fn write_request(&mut self, handle: &[u8], offset: u64, data: &[u8]) -> Pending {
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        let Some((entry, file)) = self.handles.by_handle_mut(handle) else {
            return self.unknown_handle();
        };
        file.writes_outstanding = file.writes_outstanding.saturating_add(1);
        let result = file.write.add(offset, data, &mut self.budget);
        self.note_break(result);
        Pending::Write { entry, len }
    }

    fn extended(&mut self, r: &mut Reader<'_>) -> Result<Pending, WireError> {
        let name = r.string("extended-request")?;
        let pending = match name {
            b"posix-rename@openssh.com" => Pending::Rename {
                from: display_path(r.string("oldpath")?),
                to: display_path(r.string("newpath")?),
                posix: true,
            },
            b"hardlink@openssh.com" => Pending::Hardlink {
                from: display_path(r.string("oldpath")?),
                to: display_path(r.string("newpath")?),
            },
            b"lsetstat@openssh.com" => {
                let path = display_path(r.string("path")?);
                Pending::Setstat {
                    path: Some(path),
                    attrs: r.attrs()?.into(),
                }
            }
            b"copy-data" => {
                let from = r.handle()?;
                let from_offset = r.u64("read-from-offset")?;
                let length = r.u64("read-data-length")?;
                let to = r.handle()?;
                let to_offset = r.u64("write-to-offset")?;
                Pending::CopyData {
                    from_path: self.handles.path_of(from),
                    to_path: self.handles.path_of(to),
                    to_entry: self.handles.lookup(to),
                    from_offset,
                    to_offset,
                    length,
                }
            }
            n if READ_ONLY_EXTENSIONS.contains(&n) => self.quiet(),
            n => Pending::Extended {
                name: display_bytes(n, MAX_TEXT_BYTES),
            },
        };
        Ok(pending)
    }
}
