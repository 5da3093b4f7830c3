//! How the simulated agent cuts process output into data-channel payloads.
//!
//! The agent reads at most 1024 bytes at a time and never lets a payload end
//! inside a UTF-8 sequence: up to 3 trailing bytes of an incomplete character
//! are carried over to the front of the next payload (spec 7.3, "UTF-8
//! framing"), so a payload can reach `max + 3` bytes. Invalid bytes are passed
//! through unchanged. [`Chunker`] reproduces that rule over arbitrary reads.
//!
//! This module owns only the byte framing; choosing the payload type, pacing
//! and sequencing belong to the agent logic that calls it.

use bytes::{Bytes, BytesMut};

/// The longest carry: a 4-byte UTF-8 sequence missing its last byte.
const MAX_CARRY: usize = 3;

/// Cuts a byte stream into payloads of at most `max` read bytes each, plus up
/// to 3 bytes carried over from the previous payload, none of which ends
/// inside a UTF-8 character.
#[derive(Debug, Clone)]
pub struct Chunker {
    /// Most bytes of fresh input per chunk (the agent's read size).
    max: usize,
    /// Bytes not yet emitted: between calls, only the carried tail (≤ 3
    /// bytes) of an incomplete UTF-8 sequence.
    pending: BytesMut,
}

impl Chunker {
    /// A chunker taking at most `max` fresh bytes per chunk (1024 in faithful
    /// mode). A `max` of 0 is treated as 1.
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            pending: BytesMut::new(),
        }
    }

    /// The configured fresh-byte limit per chunk.
    pub fn max(&self) -> usize {
        self.max
    }

    /// How many bytes are held back (the incomplete UTF-8 tail, at most 3).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Feeds one read of output and returns the chunks it completes.
    ///
    /// `data` is treated as consecutive reads of at most `max` bytes; each
    /// read gives one chunk made of the previous carry plus the read, minus
    /// any incomplete UTF-8 sequence at its end, which is carried on. Chunks
    /// are never empty and never exceed `max + 3` bytes. The input is copied
    /// once; the chunks share that buffer.
    pub fn push(&mut self, data: &[u8]) -> Vec<Bytes> {
        if data.is_empty() {
            return Vec::new();
        }
        let mut chunks = Vec::with_capacity(data.len().div_ceil(self.max));
        self.pending.reserve(data.len());
        self.pending.extend_from_slice(data);
        let mut fresh_left = data.len();
        while fresh_left > 0 {
            let carried = self.pending.len() - fresh_left;
            let take = fresh_left.min(self.max);
            let end = carried + take;
            let keep = end - incomplete_tail_len(&self.pending[..end]);
            if keep > 0 {
                chunks.push(self.pending.split_to(keep).freeze());
            }
            fresh_left -= take;
        }
        chunks
    }

    /// Flushes whatever is still held back (at end of output), even if it is
    /// an incomplete UTF-8 sequence. Returns `None` when nothing is pending.
    pub fn finish(&mut self) -> Option<Bytes> {
        if self.pending.is_empty() {
            None
        } else {
            Some(self.pending.split().freeze())
        }
    }
}

/// Length of the incomplete UTF-8 sequence ending `buf`: the bytes from the
/// last non-continuation byte among the final three, when they form a proper
/// prefix of a valid encoding. Zero when `buf` ends on a character boundary
/// or with invalid bytes (those are passed through, not held back).
pub fn incomplete_tail_len(buf: &[u8]) -> usize {
    for back in 1..=MAX_CARRY.min(buf.len()) {
        let start = buf.len() - back;
        let Some(&byte) = buf.get(start) else {
            return 0;
        };
        if is_continuation(byte) {
            continue;
        }
        let tail = buf.get(start..).unwrap_or_default();
        return match std::str::from_utf8(tail) {
            // `error_len() == None` means "valid so far, input ended early".
            Err(e) if e.valid_up_to() == 0 && e.error_len().is_none() => back,
            _ => 0,
        };
    }
    0
}

/// Whether `byte` is a UTF-8 continuation byte (`10xxxxxx`).
fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn concat(chunks: &[Bytes], last: Option<&Bytes>) -> Vec<u8> {
        let mut out: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        if let Some(l) = last {
            out.extend_from_slice(l);
        }
        out
    }

    #[test]
    fn ascii_is_cut_at_max() {
        let mut c = Chunker::new(4);
        let chunks = c.push(b"abcdefghij");
        assert_eq!(chunks, vec![&b"abcd"[..], &b"efgh"[..], &b"ij"[..]]);
        assert_eq!(c.finish(), None);
    }

    #[test]
    fn incomplete_character_is_carried_into_next_chunk() {
        // "é" = C3 A9 split across two reads.
        let mut c = Chunker::new(1024);
        assert_eq!(c.push(b"ab\xC3"), vec![Bytes::from_static(b"ab")]);
        assert_eq!(c.pending_len(), 1);
        assert_eq!(
            c.push(b"\xA9cd"),
            vec![Bytes::from_static("écd".as_bytes())]
        );
        assert_eq!(c.finish(), None);
    }

    #[test]
    fn chunk_can_reach_max_plus_three() {
        // 4-byte emoji with 3 bytes at the end of read 1 and the last at the
        // start of a full read 2.
        let emoji = "😀".as_bytes();
        let mut c = Chunker::new(8);
        let mut first = vec![b'x'; 5];
        first.extend_from_slice(&emoji[..3]);
        assert_eq!(c.push(&first), vec![Bytes::from(vec![b'x'; 5])]);
        let mut second = vec![emoji[3]];
        second.extend_from_slice(&[b'y'; 7]);
        let chunks = c.push(&second);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].len(), 8 + 3);
        assert!(std::str::from_utf8(&chunks[0]).is_ok());
    }

    #[test]
    fn only_incomplete_bytes_gives_no_empty_chunk() {
        let mut c = Chunker::new(1024);
        assert!(c.push(&[0xE2, 0x82]).is_empty());
        assert!(c.push(&[]).is_empty());
        assert_eq!(c.finish(), Some(Bytes::from_static(&[0xE2, 0x82])));
        assert_eq!(c.finish(), None);
    }

    #[test]
    fn invalid_bytes_pass_through() {
        let mut c = Chunker::new(1024);
        // A stray continuation byte, an overlong lead (C0), E0 80 (invalid
        // second byte) and a lone FF: nothing is a valid prefix, nothing is held.
        for bad in [&b"a\x80"[..], b"a\xC0", b"a\xE0\x80", b"a\xFF", b"\xF5\x80"] {
            let chunks = c.push(bad);
            assert_eq!(concat(&chunks, None), bad, "input {bad:x?}");
            assert_eq!(c.pending_len(), 0, "input {bad:x?}");
        }
    }

    #[test]
    fn tail_detection() {
        assert_eq!(incomplete_tail_len(b""), 0);
        assert_eq!(incomplete_tail_len(b"abc"), 0);
        assert_eq!(incomplete_tail_len("é".as_bytes()), 0);
        assert_eq!(incomplete_tail_len(b"a\xC3"), 1);
        assert_eq!(incomplete_tail_len(b"\xE2\x82"), 2);
        assert_eq!(incomplete_tail_len(b"\xF0\x9F\x98"), 3);
        assert_eq!(incomplete_tail_len("😀".as_bytes()), 0);
        assert_eq!(incomplete_tail_len(b"\xED\xA0"), 0); // surrogate: invalid
        assert_eq!(incomplete_tail_len(b"\xF4\x90"), 0); // > U+10FFFF: invalid
        assert_eq!(incomplete_tail_len(b"\x80\x80\x80"), 0);
    }

    #[test]
    fn large_push_shares_one_buffer() {
        let data = vec![b'z'; 10_000];
        let mut c = Chunker::new(1024);
        let chunks = c.push(&data);
        assert_eq!(chunks.len(), 10);
        assert!(chunks[..9].iter().all(|ch| ch.len() == 1024));
        assert_eq!(chunks[9].len(), 10_000 - 9 * 1024);
        assert_eq!(concat(&chunks, None), data);
    }

    /// Whether offset `at` of `input` falls strictly inside a valid UTF-8
    /// encoded character.
    fn splits_a_character(input: &[u8], at: usize) -> bool {
        (at.saturating_sub(3)..at).any(|start| {
            (2..=4).any(|len| {
                start + len > at
                    && start + len <= input.len()
                    && std::str::from_utf8(&input[start..start + len])
                        .is_ok_and(|s| s.chars().count() == 1)
            })
        })
    }

    fn reads_strategy() -> impl Strategy<Value = (usize, Vec<Vec<u8>>)> {
        // Mix valid multi-byte text with arbitrary bytes so both the carry
        // and the pass-through rules are exercised.
        let piece = prop_oneof![
            ".{0,40}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..40),
        ];
        (1usize..40, prop::collection::vec(piece, 0..20))
    }

    proptest! {
        #[test]
        fn chunks_reassemble_and_respect_boundaries((max, reads) in reads_strategy()) {
            let mut c = Chunker::new(max);
            let mut chunks = Vec::new();
            for read in &reads {
                chunks.extend(c.push(read));
                prop_assert!(c.pending_len() <= MAX_CARRY);
            }
            let last = c.finish();
            let input: Vec<u8> = reads.concat();
            prop_assert_eq!(&concat(&chunks, last.as_ref()), &input);
            let mut boundary = 0;
            for chunk in &chunks {
                prop_assert!(!chunk.is_empty());
                prop_assert!(chunk.len() <= max + MAX_CARRY);
                boundary += chunk.len();
                prop_assert!(
                    !splits_a_character(&input, boundary),
                    "chunk boundary at {} splits a character", boundary
                );
            }
            if let Some(l) = &last {
                prop_assert!(!l.is_empty());
            }
        }

        #[test]
        fn valid_text_gives_valid_chunks(max in 1usize..20, text in ".{0,200}", cuts in prop::collection::vec(0usize..200, 0..10)) {
            let bytes = text.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.push(0);
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let mut c = Chunker::new(max);
            let mut chunks = Vec::new();
            for w in cuts.windows(2) {
                chunks.extend(c.push(&bytes[w[0]..w[1]]));
            }
            prop_assert_eq!(c.finish(), None);
            for chunk in &chunks {
                prop_assert!(std::str::from_utf8(chunk).is_ok());
            }
            prop_assert_eq!(concat(&chunks, None), bytes.to_vec());
        }
    }
}
