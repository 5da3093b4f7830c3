//! `ssmgate sessions export --format asciicast`: a shell or command session
//! as an asciicast v2 file (what `asciinema play` reads).
//!
//! The file is a header line (a JSON object: size from the session's first
//! `Resize`, default 80x24; start time; title; env) followed by one JSON
//! array per event: `[seconds, "o", text]` for output, `[seconds, "i",
//! text]` for input and `[seconds, "r", "COLSxROWS"]` for later resizes.
//! Recorded bytes are not always UTF-8 on event boundaries: a multi-byte
//! character split across two events of the same stream is carried over
//! whole ([`Utf8Stream`]), and bytes that are not UTF-8 become U+FFFD.

use std::io::Write;

use serde_json::json;

use super::{Db, SessionsError, emit, target_label, terminal_recording};
use crate::cli::{ExportFormat, SessionsExportArgs};
use crate::recording::{Event, EventKind, SessionRecord};

/// The terminal size used when a recording has no `Resize`.
pub const DEFAULT_SIZE: (u16, u16) = (80, 24);

/// Runs `sessions export`.
pub async fn run(db: &Db, args: &SessionsExportArgs) -> Result<(), SessionsError> {
    let (s, events) = terminal_recording(db, &args.id).await?;
    let text = match args.format {
        ExportFormat::Asciicast => render(&s, &events),
    };
    match &args.output {
        Some(path) => {
            let write_err = |source| SessionsError::Write {
                what: path.display().to_string(),
                source,
            };
            let mut file = std::fs::File::create(path).map_err(write_err)?;
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(write_err)?;
            emit(&format!(
                "wrote {} ({} lines, asciicast v2)\n",
                path.display(),
                text.lines().count()
            ))
        }
        None => emit(&text),
    }
}

/// The asciicast v2 text for a session and its events (newline-terminated
/// lines).
pub fn render(s: &SessionRecord, events: &[Event]) -> String {
    let (width, height) = events
        .iter()
        .find_map(|e| match e.kind {
            EventKind::Resize { cols, rows } => Some((cols, rows)),
            _ => None,
        })
        .unwrap_or(DEFAULT_SIZE);
    let mut title = format!("{}@{}", s.user, target_label(s));
    if let Some(ssm) = &s.ssm_session_id {
        title.push(' ');
        title.push_str(ssm);
    }
    let header = json!({
        "version": 2,
        "width": width,
        "height": height,
        "timestamp": s.started_at.timestamp(),
        "title": title,
        "env": {"TERM": "xterm-256color", "SHELL": "/bin/sh"},
    });
    let mut out = format!("{header}\n");
    let mut line = |secs: f64, code: &str, text: String| {
        out.push_str(&json!([secs, code, text]).to_string());
        out.push('\n');
    };
    let mut output = Utf8Stream::default();
    let mut input = Utf8Stream::default();
    let mut first_resize = true;
    let mut last_ms = 0u64;
    for e in events {
        // Times never go backwards, even if offsets were recorded so.
        last_ms = last_ms.max(e.offset_ms);
        let secs = last_ms as f64 / 1000.0;
        match e.kind {
            EventKind::Output => {
                let text = output.push(&e.data);
                if !text.is_empty() {
                    line(secs, "o", text);
                }
            }
            EventKind::Input => {
                let text = input.push(&e.data);
                if !text.is_empty() {
                    line(secs, "i", text);
                }
            }
            EventKind::Resize { cols, rows } => {
                if first_resize {
                    first_resize = false;
                } else {
                    line(secs, "r", format!("{cols}x{rows}"));
                }
            }
            // A file operation (sftp) becomes a marker carrying its JSON.
            EventKind::File => {
                line(secs, "m", String::from_utf8_lossy(&e.data).into_owned());
            }
            EventKind::Exit { .. } | EventKind::ConnOpen { .. } | EventKind::ConnClose { .. } => {}
        }
    }
    let secs = last_ms as f64 / 1000.0;
    for (stream, code) in [(&mut output, "o"), (&mut input, "i")] {
        let rest = stream.finish();
        if !rest.is_empty() {
            line(secs, code, rest);
        }
    }
    out
}

/// Decodes a byte stream arriving in pieces as UTF-8 text: an incomplete
/// character at the end of a piece is held until the next piece; bytes that
/// can never be UTF-8 become U+FFFD (one per maximal invalid sequence, as
/// `String::from_utf8_lossy` does).
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// The text the stream holds after `bytes`, keeping back an incomplete
    /// trailing character.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(bytes);
        let mut out = String::with_capacity(buf.len());
        let mut rest: &[u8] = &buf;
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    out.push_str(valid);
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // `valid` is UTF-8 by the error's definition.
                    out.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = after.get(n..).unwrap_or_default();
                        }
                        None => {
                            // A character that may complete in the next piece.
                            self.pending = after.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    /// What is left at the end of the stream: an incomplete character
    /// becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        String::from_utf8_lossy(&rest).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_across_pieces_comes_out_whole() {
        let euro = "€".as_bytes(); // e2 82 ac
        let mut s = Utf8Stream::default();
        assert_eq!(s.push(&[b'a', euro[0]]), "a");
        assert_eq!(s.push(&euro[1..2]), "");
        assert_eq!(s.push(&[euro[2], b'b']), "€b");
        assert_eq!(s.finish(), "");
        // A 4-byte character in four pieces.
        let crab = "🦀".as_bytes();
        let mut s = Utf8Stream::default();
        let got: String = crab.iter().map(|b| s.push(&[*b])).collect();
        assert_eq!(got, "🦀");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut s = Utf8Stream::default();
        assert_eq!(s.push(b"x\xffy\xfe"), "x\u{fffd}y\u{fffd}");
        // A lead byte followed by a non-continuation is invalid, not held.
        assert_eq!(s.push(b"\xe2(z"), "\u{fffd}(z");
        // An incomplete character at the very end is replaced by finish.
        assert_eq!(s.push(b"ok\xe2\x82"), "ok");
        assert_eq!(s.finish(), "\u{fffd}");
        assert_eq!(s.finish(), "");
        // The same as a lossy decode of the whole, however it is cut.
        let whole: &[u8] = b"a\xc3\xa9\xff\xe2\x82\xac\xf0\x9f\xa6\x80\xed\xa0\x80z\xe2";
        for cut in 0..=whole.len() {
            let (a, b) = whole.split_at(cut);
            let mut s = Utf8Stream::default();
            let got = s.push(a) + &s.push(b) + &s.finish();
            assert_eq!(got, String::from_utf8_lossy(whole), "cut at {cut}");
        }
    }
}
