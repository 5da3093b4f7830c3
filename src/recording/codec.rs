//! The binary encoding of a chunk's events: what the `events` column holds
//! and what the hash chain hashes.
//!
//! Why binary and not JSON: terminal output is arbitrary bytes (not always
//! UTF-8), which JSON could only carry escaped or base64/hex encoded
//! (+33–100 %); a keystroke echo is one byte, which this format stores in
//! about five, and the encoding is canonical (one byte string per event
//! list), so hashing it needs no care about key order or escaping.
//!
//! Layout (integers are unsigned LEB128 varints, at most 10 bytes, minimal;
//! signed ones are zigzag-mapped first):
//! ```text
//! chunk  = version:u8(=1) event*
//! event  = tag:u8 offset_ms:varint fields data_len:varint data
//! tag      fields
//! 1 Output     —
//! 2 Input      —
//! 3 Resize     cols:varint rows:varint
//! 4 Exit       code:zigzag-varint
//! 5 ConnOpen   id:varint
//! 6 ConnClose  id:varint bytes_in:varint bytes_out:varint
//! 7 File       —  (data: the file operation as a JSON object)
//! ```
//! Decoding checks every length against what is left, so a damaged value
//! gives a [`DecodeError`], never a panic or a large allocation.

use bytes::Bytes;

use super::records::{Event, EventKind};

/// The format version written first.
pub const VERSION: u8 = 1;

/// Why stored event bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// No bytes at all (not even the version).
    #[error("empty")]
    Empty,
    /// A version this build does not read.
    #[error("unsupported event encoding version {0}")]
    Version(u8),
    /// The bytes end inside an event.
    #[error("truncated at byte {0}")]
    Truncated(usize),
    /// A tag that is not an event kind.
    #[error("unknown event tag {tag} at byte {at}")]
    Tag {
        /// The tag found.
        tag: u8,
        /// Its position.
        at: usize,
    },
    /// A varint that is too long, not minimal, or out of range for its field.
    #[error("bad integer at byte {0}")]
    Integer(usize),
}

/// Encodes events (canonical: equal event lists give equal bytes).
pub fn encode_events(events: &[Event]) -> Vec<u8> {
    let data_len: usize = events.iter().map(|e| e.data.len()).sum();
    let mut out = Vec::with_capacity(1 + data_len + events.len() * 8);
    out.push(VERSION);
    for e in events {
        let (tag, fields): (u8, [u64; 3]) = match e.kind {
            EventKind::Output => (1, [0; 3]),
            EventKind::Input => (2, [0; 3]),
            EventKind::Resize { cols, rows } => (3, [u64::from(cols), u64::from(rows), 0]),
            EventKind::Exit { code } => (4, [zigzag(code), 0, 0]),
            EventKind::ConnOpen { id } => (5, [id, 0, 0]),
            EventKind::ConnClose {
                id,
                bytes_in,
                bytes_out,
            } => (6, [id, bytes_in, bytes_out]),
            EventKind::File => (7, [0; 3]),
        };
        out.push(tag);
        put_varint(&mut out, e.offset_ms);
        for f in fields.iter().take(field_count(tag)) {
            put_varint(&mut out, *f);
        }
        put_varint(&mut out, e.data.len() as u64);
        out.extend_from_slice(&e.data);
    }
    out
}

/// Decodes what [`encode_events`] wrote.
pub fn decode_events(bytes: &[u8]) -> Result<Vec<Event>, DecodeError> {
    let (&version, _) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let mut r = Reader { bytes, pos: 1 };
    let mut events = Vec::new();
    while r.pos < bytes.len() {
        let at = r.pos;
        let tag = r.byte()?;
        if !(1..=7).contains(&tag) {
            return Err(DecodeError::Tag { tag, at });
        }
        let offset_ms = r.varint()?;
        let mut f = [0u64; 3];
        for slot in f.iter_mut().take(field_count(tag)) {
            *slot = r.varint()?;
        }
        let kind = match tag {
            1 => EventKind::Output,
            2 => EventKind::Input,
            3 => EventKind::Resize {
                cols: r.narrow(f[0])?,
                rows: r.narrow(f[1])?,
            },
            4 => EventKind::Exit {
                code: unzigzag(f[0]).ok_or(DecodeError::Integer(at))?,
            },
            5 => EventKind::ConnOpen { id: f[0] },
            7 => EventKind::File,
            _ => EventKind::ConnClose {
                id: f[0],
                bytes_in: f[1],
                bytes_out: f[2],
            },
        };
        let len = r.varint()?;
        let data = r.take(len)?;
        events.push(Event {
            offset_ms,
            kind,
            data: Bytes::copy_from_slice(data),
        });
    }
    Ok(events)
}

/// How many integer fields follow the offset for a tag.
fn field_count(tag: u8) -> usize {
    match tag {
        3 => 2,
        4 | 5 => 1,
        6 => 3,
        _ => 0,
    }
}

fn zigzag(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

fn unzigzag(v: u64) -> Option<i32> {
    let v = u32::try_from(v).ok()?;
    Some(((v >> 1) as i32) ^ -((v & 1) as i32))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or(DecodeError::Truncated(self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..10u32 {
            let b = self.byte()?;
            let low = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(DecodeError::Integer(start));
            }
            v |= low << (7 * i);
            if b & 0x80 == 0 {
                // Minimal: no trailing zero group (except the value 0 itself).
                if b == 0 && i > 0 {
                    return Err(DecodeError::Integer(start));
                }
                return Ok(v);
            }
        }
        Err(DecodeError::Integer(start))
    }

    fn narrow(&self, v: u64) -> Result<u16, DecodeError> {
        u16::try_from(v).map_err(|_| DecodeError::Integer(self.pos))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], DecodeError> {
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| self.pos.checked_add(l))
            .filter(|&end| end <= self.bytes.len())
            .ok_or(DecodeError::Truncated(self.bytes.len()))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<Event> {
        vec![
            Event {
                offset_ms: 0,
                kind: EventKind::Resize {
                    cols: 120,
                    rows: 40,
                },
                data: Bytes::new(),
            },
            Event {
                offset_ms: 5,
                kind: EventKind::Output,
                data: Bytes::from_static(b"$ "),
            },
            Event {
                offset_ms: 300,
                kind: EventKind::Input,
                data: Bytes::from_static(b"l"),
            },
            Event {
                offset_ms: 1 << 40,
                kind: EventKind::Exit { code: -1 },
                data: Bytes::new(),
            },
            Event {
                offset_ms: u64::MAX,
                kind: EventKind::ConnClose {
                    id: 7,
                    bytes_in: u64::MAX,
                    bytes_out: 0,
                },
                data: Bytes::from_static(&[0xff, 0, 0x80]),
            },
            Event {
                offset_ms: 9,
                kind: EventKind::ConnOpen { id: 8 },
                data: Bytes::new(),
            },
        ]
    }

    #[test]
    fn round_trip() {
        let events = sample();
        let bytes = encode_events(&events);
        assert_eq!(decode_events(&bytes).unwrap(), events);
        assert_eq!(decode_events(&encode_events(&[])).unwrap(), vec![]);
    }

    #[test]
    fn small_events_are_small() {
        let one = [Event {
            offset_ms: 1500,
            kind: EventKind::Output,
            data: Bytes::from_static(b"x"),
        }];
        // version + tag + 2-byte offset + length + 1 byte of data.
        assert_eq!(encode_events(&one).len(), 6);
    }

    #[test]
    fn damage_is_an_error() {
        assert_eq!(decode_events(&[]), Err(DecodeError::Empty));
        assert_eq!(decode_events(&[2]), Err(DecodeError::Version(2)));
        assert_eq!(
            decode_events(&[1, 9, 0, 0]),
            Err(DecodeError::Tag { tag: 9, at: 1 })
        );
        // A cut at an event boundary is a shorter list; anywhere else, an error.
        let events = sample();
        let bytes = encode_events(&events);
        let mut whole = 0;
        for cut in 1..bytes.len() {
            if let Ok(prefix) = decode_events(&bytes[..cut]) {
                assert!(prefix.len() < events.len() && events.starts_with(&prefix));
                whole += 1;
            }
        }
        assert_eq!(whole, events.len(), "one boundary per event");
        // A huge data length does not allocate, it is truncation.
        let mut huge = vec![1, 1, 0];
        put_varint(&mut huge, u64::MAX);
        assert!(matches!(
            decode_events(&huge),
            Err(DecodeError::Truncated(_))
        ));
        // Non-minimal varint (0x80 0x00 for 0) and overlong ones are refused.
        assert_eq!(
            decode_events(&[1, 1, 0x80, 0x00, 0]),
            Err(DecodeError::Integer(2))
        );
        assert!(
            decode_events(&[
                1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0
            ])
            .is_err()
        );
        // Resize fields beyond u16.
        let mut big = vec![1, 3, 0];
        put_varint(&mut big, 70_000);
        big.extend_from_slice(&[1, 0]);
        assert!(matches!(decode_events(&big), Err(DecodeError::Integer(_))));
    }

    fn kind() -> impl Strategy<Value = EventKind> {
        prop_oneof![
            Just(EventKind::Output),
            Just(EventKind::Input),
            (any::<u16>(), any::<u16>()).prop_map(|(cols, rows)| EventKind::Resize { cols, rows }),
            any::<i32>().prop_map(|code| EventKind::Exit { code }),
            any::<u64>().prop_map(|id| EventKind::ConnOpen { id }),
            (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(id, bytes_in, bytes_out)| {
                EventKind::ConnClose {
                    id,
                    bytes_in,
                    bytes_out,
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn any_events_round_trip(events in proptest::collection::vec(
            (any::<u64>(), kind(), proptest::collection::vec(any::<u8>(), 0..40)),
            0..20,
        )) {
            let events: Vec<Event> = events
                .into_iter()
                .map(|(offset_ms, kind, data)| Event { offset_ms, kind, data: Bytes::from(data) })
                .collect();
            prop_assert_eq!(decode_events(&encode_events(&events)).unwrap(), events);
        }

        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_events(&bytes);
        }
    }
}
