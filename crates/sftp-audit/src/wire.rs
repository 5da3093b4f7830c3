//! The SFTP v3 wire format: packet framing per direction ([`Framer`]) and
//! field decoding inside one packet ([`Reader`], [`Attrs`]).
//!
//! A packet is `uint32 length`, then `length` bytes: `byte type`, and (for
//! every type except INIT and VERSION) `uint32 request-id`, then the body.
//! Strings are `uint32 length` + bytes. Nothing here allocates more than one
//! packet (at most `max_packet` bytes) per direction, and nothing panics on
//! hostile input: every read is bounds-checked and fails with [`WireError`].

/// Packet types of draft-ietf-secsh-filexfer-02 (SFTP v3).
pub(crate) mod kind {
    pub const INIT: u8 = 1;
    pub const VERSION: u8 = 2;
    pub const OPEN: u8 = 3;
    pub const CLOSE: u8 = 4;
    pub const READ: u8 = 5;
    pub const WRITE: u8 = 6;
    pub const LSTAT: u8 = 7;
    pub const FSTAT: u8 = 8;
    pub const SETSTAT: u8 = 9;
    pub const FSETSTAT: u8 = 10;
    pub const OPENDIR: u8 = 11;
    pub const READDIR: u8 = 12;
    pub const REMOVE: u8 = 13;
    pub const MKDIR: u8 = 14;
    pub const RMDIR: u8 = 15;
    pub const REALPATH: u8 = 16;
    pub const STAT: u8 = 17;
    pub const RENAME: u8 = 18;
    pub const READLINK: u8 = 19;
    pub const SYMLINK: u8 = 20;
    pub const STATUS: u8 = 101;
    pub const HANDLE: u8 = 102;
    pub const DATA: u8 = 103;
    pub const NAME: u8 = 104;
    pub const ATTRS: u8 = 105;
    pub const EXTENDED: u8 = 200;
    pub const EXTENDED_REPLY: u8 = 201;
}

/// Longest handle the protocol allows ("MUST NOT be longer than 256 bytes").
pub(crate) const MAX_HANDLE_LEN: usize = 256;

/// Why a byte stream stopped being parseable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    /// The length prefix announces more than the configured maximum.
    #[error("declared packet length {len} exceeds the limit of {max} bytes")]
    TooLong {
        /// The declared length.
        len: u32,
        /// `Limits::max_packet`.
        max: usize,
    },
    /// The length prefix is too small to hold the packet's type (and id).
    #[error("declared packet length {0} is too short")]
    TooShort(u32),
    /// A field runs past the end of its packet.
    #[error("{packet} packet truncated in field {field}")]
    Truncated {
        /// The packet type, by name.
        packet: &'static str,
        /// The field being read.
        field: &'static str,
    },
    /// The server negotiated a version whose packet layout differs from v3.
    #[error("unsupported SFTP protocol version {0} (only version 3 is parsed)")]
    UnsupportedVersion(u32),
    /// A server handle longer than the protocol allows.
    #[error("handle of {0} bytes exceeds the protocol maximum of 256")]
    HandleTooLong(usize),
}

/// Reassembles packets of one direction from arbitrary chunks.
#[derive(Debug)]
pub(crate) struct Framer {
    /// The partial packet: length prefix included. Never above 4 + `max`.
    buf: Vec<u8>,
    /// The current packet's declared length, once its prefix is complete.
    declared: Option<usize>,
    max: usize,
}

impl Framer {
    pub(crate) fn new(max: usize) -> Self {
        Framer {
            buf: Vec::new(),
            declared: None,
            max,
        }
    }

    /// Bytes held for an incomplete packet.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.buf.capacity()
    }

    /// Drops whatever is buffered and releases its memory.
    pub(crate) fn clear(&mut self) {
        self.buf = Vec::new();
        self.declared = None;
    }

    fn check_len(&self, header: [u8; 4]) -> Result<usize, WireError> {
        let len = u32::from_be_bytes(header);
        let as_usize =
            usize::try_from(len).map_err(|_| WireError::TooLong { len, max: self.max })?;
        if as_usize > self.max {
            return Err(WireError::TooLong { len, max: self.max });
        }
        if as_usize == 0 {
            return Err(WireError::TooShort(len));
        }
        Ok(as_usize)
    }

    /// Feeds `data`, calling `on_packet` with each complete packet (without
    /// its length prefix). Stops at the first error, from framing or from
    /// `on_packet`.
    pub(crate) fn feed<F>(&mut self, mut data: &[u8], mut on_packet: F) -> Result<(), WireError>
    where
        F: FnMut(&[u8]) -> Result<(), WireError>,
    {
        while !data.is_empty() {
            if self.buf.is_empty() {
                // Fast path: a whole packet in `data`, no copy.
                if let Some(&[a, b, c, d]) = data.get(..4) {
                    let len = self.check_len([a, b, c, d])?;
                    let end = len.checked_add(4).ok_or(WireError::TooShort(0))?;
                    if let (Some(body), Some(rest)) = (data.get(4..end), data.get(end..)) {
                        on_packet(body)?;
                        data = rest;
                        continue;
                    }
                }
            }
            let want = match self.declared {
                None => 4usize.saturating_sub(self.buf.len()),
                Some(len) => len.saturating_add(4).saturating_sub(self.buf.len()),
            };
            let take = want.min(data.len());
            let (head, rest) = data.split_at(take);
            self.buf.extend_from_slice(head);
            data = rest;
            if self.declared.is_none()
                && let Some(&[a, b, c, d]) = self.buf.get(..4)
            {
                let len = self.check_len([a, b, c, d])?;
                self.buf.reserve_exact(len);
                self.declared = Some(len);
            }
            if let Some(len) = self.declared
                && self.buf.len() == len.saturating_add(4)
            {
                let result = match self.buf.get(4..) {
                    Some(body) => on_packet(body),
                    None => Ok(()),
                };
                self.buf.clear();
                self.declared = None;
                result?;
            }
        }
        Ok(())
    }
}

/// A bounds-checked cursor over one packet.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    packet: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8], packet: &'static str) -> Self {
        Reader { data, packet }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        match (self.data.get(..n), self.data.get(n..)) {
            (Some(head), Some(rest)) => {
                self.data = rest;
                Ok(head)
            }
            _ => Err(WireError::Truncated {
                packet: self.packet,
                field,
            }),
        }
    }

    /// Whether every byte has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        match self.take(1, field)? {
            &[b] => Ok(b),
            _ => Err(WireError::Truncated {
                packet: self.packet,
                field,
            }),
        }
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        match self.take(4, field)? {
            &[a, b, c, d] => Ok(u32::from_be_bytes([a, b, c, d])),
            _ => Err(WireError::Truncated {
                packet: self.packet,
                field,
            }),
        }
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        let hi = u64::from(self.u32(field)?);
        let lo = u64::from(self.u32(field)?);
        Ok(hi << 32 | lo)
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.u32(field)?;
        let len = usize::try_from(len).map_err(|_| WireError::Truncated {
            packet: self.packet,
            field,
        })?;
        self.take(len, field)
    }

    /// A handle string, refused when longer than the protocol allows.
    pub(crate) fn handle(&mut self) -> Result<&'a [u8], WireError> {
        let h = self.string("handle")?;
        if h.len() > MAX_HANDLE_LEN {
            return Err(WireError::HandleTooLong(h.len()));
        }
        Ok(h)
    }

    /// An ATTRS structure (v3 layout).
    pub(crate) fn attrs(&mut self) -> Result<Attrs, WireError> {
        let flags = self.u32("attrs.flags")?;
        let mut a = Attrs::default();
        if flags & attr::SIZE != 0 {
            a.size = Some(self.u64("attrs.size")?);
        }
        if flags & attr::UIDGID != 0 {
            a.uid_gid = Some((self.u32("attrs.uid")?, self.u32("attrs.gid")?));
        }
        if flags & attr::PERMISSIONS != 0 {
            a.permissions = Some(self.u32("attrs.permissions")?);
        }
        if flags & attr::ACMODTIME != 0 {
            a.times = Some((self.u32("attrs.atime")?, self.u32("attrs.mtime")?));
        }
        if flags & attr::EXTENDED != 0 {
            let count = self.u32("attrs.extended_count")?;
            // Each pair consumes at least 8 bytes, so the loop ends with the packet.
            for _ in 0..count {
                self.string("attrs.extended_type")?;
                self.string("attrs.extended_data")?;
            }
            a.extended = count;
        }
        Ok(a)
    }
}

/// ATTRS flag bits.
pub(crate) mod attr {
    pub const SIZE: u32 = 0x0000_0001;
    pub const UIDGID: u32 = 0x0000_0002;
    pub const PERMISSIONS: u32 = 0x0000_0004;
    pub const ACMODTIME: u32 = 0x0000_0008;
    pub const EXTENDED: u32 = 0x8000_0000;
}

/// A decoded ATTRS structure: only the fields that were present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Attrs {
    pub size: Option<u64>,
    pub uid_gid: Option<(u32, u32)>,
    pub permissions: Option<u32>,
    pub times: Option<(u32, u32)>,
    pub extended: u32,
}

/// The name of a packet type, for error messages.
pub(crate) fn kind_name(k: u8) -> &'static str {
    match k {
        kind::INIT => "INIT",
        kind::VERSION => "VERSION",
        kind::OPEN => "OPEN",
        kind::CLOSE => "CLOSE",
        kind::READ => "READ",
        kind::WRITE => "WRITE",
        kind::LSTAT => "LSTAT",
        kind::FSTAT => "FSTAT",
        kind::SETSTAT => "SETSTAT",
        kind::FSETSTAT => "FSETSTAT",
        kind::OPENDIR => "OPENDIR",
        kind::READDIR => "READDIR",
        kind::REMOVE => "REMOVE",
        kind::MKDIR => "MKDIR",
        kind::RMDIR => "RMDIR",
        kind::REALPATH => "REALPATH",
        kind::STAT => "STAT",
        kind::RENAME => "RENAME",
        kind::READLINK => "READLINK",
        kind::SYMLINK => "SYMLINK",
        kind::STATUS => "STATUS",
        kind::HANDLE => "HANDLE",
        kind::DATA => "DATA",
        kind::NAME => "NAME",
        kind::ATTRS => "ATTRS",
        kind::EXTENDED => "EXTENDED",
        kind::EXTENDED_REPLY => "EXTENDED_REPLY",
        _ => "unknown",
    }
}

/// Splits a packet into its type, its request id (absent for INIT and
/// VERSION) and a reader over the rest.
pub(crate) fn split(packet: &[u8]) -> Result<(u8, Option<u32>, Reader<'_>), WireError> {
    let mut r = Reader::new(packet, "any");
    let k = r.u8("type")?;
    r.packet = kind_name(k);
    if k == kind::INIT || k == kind::VERSION {
        return Ok((k, None, r));
    }
    let id = r.u32("request-id")?;
    Ok((k, Some(id), r))
}
