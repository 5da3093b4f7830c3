//! The smux v1 frame: an 8-byte header (`ver | cmd | length u16 LE |
//! streamId u32 LE`) followed by `length` data bytes. Owns encoding and the
//! incremental decoding of frames from a byte stream cut at arbitrary points.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::SmuxError;

/// The only protocol version spoken (xtaci/smux `DefaultConfig`).
pub const VERSION: u8 = 1;
/// Size of a frame header on the wire.
pub const HEADER_LEN: usize = 8;
/// Largest data length a header can express.
pub const MAX_FRAME_DATA: usize = u16::MAX as usize;

/// A frame command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Cmd {
    /// Open a stream (no data).
    Syn = 0,
    /// Close the sender's direction of a stream (no data).
    Fin = 1,
    /// Stream data.
    Psh = 2,
    /// Keepalive, on stream id 0 (no data).
    Nop = 3,
}

impl Cmd {
    /// The command for a wire byte, if it is one of the v1 commands.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Syn),
            1 => Some(Self::Fin),
            2 => Some(Self::Psh),
            3 => Some(Self::Nop),
            _ => None,
        }
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The command.
    pub cmd: Cmd,
    /// Number of data bytes following the header.
    pub length: u16,
    /// The stream the frame belongs to (0 for NOP).
    pub stream_id: u32,
}

impl Header {
    /// The 8 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = VERSION;
        out[1] = self.cmd as u8;
        out[2..4].copy_from_slice(&self.length.to_le_bytes());
        out[4..8].copy_from_slice(&self.stream_id.to_le_bytes());
        out
    }

    /// Parses and validates a header (version, command, and that only PSH
    /// carries data).
    pub fn parse(raw: [u8; HEADER_LEN]) -> Result<Self, SmuxError> {
        if raw[0] != VERSION {
            return Err(SmuxError::BadVersion(raw[0]));
        }
        let cmd = Cmd::from_byte(raw[1]).ok_or(SmuxError::UnknownCommand(raw[1]))?;
        let length = u16::from_le_bytes([raw[2], raw[3]]);
        let stream_id = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
        if cmd != Cmd::Psh && length != 0 {
            return Err(SmuxError::UnexpectedData {
                cmd: raw[1],
                length,
            });
        }
        Ok(Self {
            cmd,
            length,
            stream_id,
        })
    }
}

/// A control frame (SYN, FIN or NOP): a header alone.
pub fn control(cmd: Cmd, stream_id: u32) -> Bytes {
    Bytes::copy_from_slice(
        &Header {
            cmd,
            length: 0,
            stream_id,
        }
        .encode(),
    )
}

/// Encodes `data` as PSH frames of at most `max_frame` data bytes each, in one
/// allocation, and returns the frames (each a slice of that allocation).
pub fn psh_frames(stream_id: u32, data: &[u8], max_frame: usize) -> Vec<Bytes> {
    let max_frame = max_frame.clamp(1, MAX_FRAME_DATA);
    let count = data.len().div_ceil(max_frame);
    let mut buf = BytesMut::with_capacity(data.len() + count * HEADER_LEN);
    let mut lens = Vec::with_capacity(count);
    for chunk in data.chunks(max_frame) {
        let header = Header {
            cmd: Cmd::Psh,
            // chunk.len() <= MAX_FRAME_DATA by the clamp above.
            length: u16::try_from(chunk.len()).unwrap_or(u16::MAX),
            stream_id,
        };
        buf.put_slice(&header.encode());
        buf.put_slice(chunk);
        lens.push(HEADER_LEN + chunk.len());
    }
    let mut all = buf.freeze();
    lens.into_iter().map(|len| all.split_to(len)).collect()
}

/// Decodes the next complete frame from the front of `buf`, consuming it.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole frame (nothing is
/// consumed). The header is validated as soon as its 8 bytes are present, so
/// garbage is reported without waiting for a payload. The data is copied out
/// into its own allocation so that a small frame parked in a slow stream's
/// buffer never pins the (larger) read buffer.
pub fn decode(buf: &mut BytesMut) -> Result<Option<(Header, Bytes)>, SmuxError> {
    let Some(raw) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let mut bytes = [0u8; HEADER_LEN];
    bytes.copy_from_slice(raw);
    let header = Header::parse(bytes)?;
    let total = HEADER_LEN + usize::from(header.length);
    let Some(data) = buf.get(HEADER_LEN..total) else {
        return Ok(None);
    };
    let data = if data.is_empty() {
        Bytes::new()
    } else {
        Bytes::copy_from_slice(data)
    };
    buf.advance(total);
    Ok(Some((header, data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_and_psh_vectors() {
        assert_eq!(&control(Cmd::Syn, 3)[..], &[1, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(&control(Cmd::Nop, 0)[..], &[1, 3, 0, 0, 0, 0, 0, 0]);
        let frames = psh_frames(3, b"hi", 32768);
        assert_eq!(frames.len(), 1);
        assert_eq!(&frames[0][..], &[1, 2, 2, 0, 3, 0, 0, 0, 0x68, 0x69]);
    }

    #[test]
    fn psh_splits_at_max_frame() {
        let data: Vec<u8> = (0..10u8).collect();
        let frames = psh_frames(0x0102_0304, &data, 4);
        let lens: Vec<usize> = frames.iter().map(Bytes::len).collect();
        assert_eq!(lens, vec![12, 12, 10]);
        assert_eq!(&frames[2][..8], &[1, 2, 2, 0, 4, 3, 2, 1]);
        assert_eq!(&frames[2][8..], &[8, 9]);
    }

    #[test]
    fn decode_byte_by_byte() {
        let mut wire = BytesMut::new();
        wire.put_slice(&control(Cmd::Syn, 5));
        for f in psh_frames(5, b"hello world", 4) {
            wire.put_slice(&f);
        }
        wire.put_slice(&control(Cmd::Fin, 5));
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(frame) = decode(&mut buf).unwrap() {
                got.push(frame);
            }
        }
        assert!(buf.is_empty());
        let cmds: Vec<Cmd> = got.iter().map(|(h, _)| h.cmd).collect();
        assert_eq!(cmds, vec![Cmd::Syn, Cmd::Psh, Cmd::Psh, Cmd::Psh, Cmd::Fin]);
        let data: Vec<u8> = got.iter().flat_map(|(_, d)| d.to_vec()).collect();
        assert_eq!(data, b"hello world");
        assert!(got.iter().all(|(h, _)| h.stream_id == 5));
    }

    #[test]
    fn decode_rejects_garbage_early() {
        let mut buf = BytesMut::from(&[2u8, 0, 0, 0, 3, 0, 0, 0][..]);
        assert_eq!(decode(&mut buf), Err(SmuxError::BadVersion(2)));
        let mut buf = BytesMut::from(&[1u8, 4, 8, 0, 3, 0, 0, 0][..]);
        assert_eq!(decode(&mut buf), Err(SmuxError::UnknownCommand(4)));
        let mut buf = BytesMut::from(&[1u8, 0, 1, 0, 3, 0, 0, 0][..]);
        assert_eq!(
            decode(&mut buf),
            Err(SmuxError::UnexpectedData { cmd: 0, length: 1 })
        );
        // A PSH header announcing more data than present waits.
        let mut buf = BytesMut::from(&[1u8, 2, 0xff, 0xff, 3, 0, 0, 0, 1][..]);
        assert_eq!(decode(&mut buf), Ok(None));
        assert_eq!(buf.len(), 9);
    }
}
