//! The exit status of `ssh -t host cmd` through SSM documents.
//!
//! A command with a terminal runs under `AWS-StartInteractiveCommand`,
//! whose agent reports no exit status (its PTY sessions end with the
//! channel closing, nothing else). So the gateway starts the user's
//! command inside a small wrapper that prints the status when the
//! command ends:
//!
//! ```text
//! trap : INT QUIT; sh -c '<command>'; printf '\033]7767;ssmgate-exit;%d;<nonce>\007' "$?"
//! ```
//!
//! The marker is an OSC escape sequence, which terminals ignore, so even
//! a marker that slipped through would not show. The gateway removes it
//! from the output before the client or the recording sees it and turns
//! it into the SSH exit status. The nonce is fresh per session, so output
//! that merely looks like a marker passes through untouched; the last
//! marker wins, so a command cannot pre-empt the real one. The outer
//! shell's trap (a handler, not an ignore, so the command still gets the
//! signals) keeps it alive through Ctrl-C to report `130`.
//!
//! What the agent sees as the `command` parameter (and CloudTrail and
//! Session Manager history show) is the wrapper; the policies and the
//! recording see the user's command. When no marker arrives (the session
//! was cut, the command's shell was killed), the status stays unknown and
//! the client gets 0, as before.

use bytes::Bytes;

/// The OSC introducer and our tag, up to the status digits.
const PREFIX: &[u8] = b"\x1b]7767;ssmgate-exit;";
/// The longest marker: prefix, three digits, `;`, the nonce, BEL.
const MAX_LEN: usize = PREFIX.len() + 3 + 1 + NONCE_LEN + 1;
/// Hex digits of a nonce.
const NONCE_LEN: usize = 32;

/// One session's marker: its nonce, and the wrapper that prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitMarker {
    nonce: String,
}

impl ExitMarker {
    /// A marker with a fresh random nonce.
    pub fn new() -> Self {
        Self {
            nonce: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// The command string that runs `command` and then prints the marker.
    pub fn wrap(&self, command: &str) -> String {
        format!(
            "trap : INT QUIT; sh -c {}; printf '\\033]7767;ssmgate-exit;%d;{}\\007' \"$?\"",
            sh_quote(command),
            self.nonce
        )
    }

    /// A scanner for this marker in the session's output.
    pub fn scanner(&self) -> ExitScanner {
        ExitScanner {
            nonce: self.nonce.clone().into_bytes(),
            held: Vec::new(),
            status: None,
        }
    }
}

impl Default for ExitMarker {
    fn default() -> Self {
        Self::new()
    }
}

/// Single-quotes `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Removes a session's markers from its output, remembering the status.
#[derive(Debug)]
pub struct ExitScanner {
    nonce: Vec<u8>,
    /// The tail of the last chunk that may be the start of a marker.
    held: Vec<u8>,
    status: Option<u32>,
}

/// What the bytes at an ESC are.
enum Found {
    /// A whole marker of ours: its length and status.
    Marker(usize, u32),
    /// The bytes end while they could still be one.
    Partial,
    /// Not ours.
    No,
}

impl ExitScanner {
    /// `data` without markers; a possible marker cut at the end of `data`
    /// is held back until the next call (or [`finish`](Self::finish)).
    pub fn feed(&mut self, data: &Bytes) -> Bytes {
        // The usual case: nothing held, no ESC: the chunk as it is.
        if self.held.is_empty() && !data.contains(&0x1b) {
            return data.clone();
        }
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(data);
        let mut out = Vec::with_capacity(buf.len());
        let mut i = 0;
        while let Some(at) = buf
            .get(i..)
            .and_then(|rest| rest.iter().position(|&b| b == 0x1b))
        {
            let esc = i + at;
            out.extend_from_slice(buf.get(i..esc).unwrap_or_default());
            let rest = buf.get(esc..).unwrap_or_default();
            match self.find(rest) {
                Found::Marker(len, status) => {
                    self.status = Some(status);
                    i = esc + len;
                }
                Found::Partial => {
                    self.held = rest.to_vec();
                    return Bytes::from(out);
                }
                Found::No => {
                    out.push(0x1b);
                    i = esc + 1;
                }
            }
        }
        out.extend_from_slice(buf.get(i..).unwrap_or_default());
        Bytes::from(out)
    }

    /// What is still held back (the output ended inside something that
    /// looked like a marker's start).
    pub fn finish(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.held))
    }

    /// The status of the last marker seen.
    pub fn status(&self) -> Option<u32> {
        self.status
    }

    fn find(&self, s: &[u8]) -> Found {
        // The prefix, byte for byte.
        let n = s.len().min(PREFIX.len());
        if s.get(..n) != PREFIX.get(..n) {
            return Found::No;
        }
        if s.len() < PREFIX.len() {
            return Found::Partial;
        }
        let rest = s.get(PREFIX.len()..).unwrap_or_default();
        // 1–3 digits, then `;`.
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 3 {
            return Found::No;
        }
        if digits == rest.len() {
            return Found::Partial;
        }
        if digits == 0 || rest.get(digits) != Some(&b';') {
            return Found::No;
        }
        let status = rest
            .get(..digits)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| d.parse::<u32>().ok());
        let Some(status) = status.filter(|s| *s <= 255) else {
            return Found::No;
        };
        // The nonce, then BEL.
        let tail = rest.get(digits + 1..).unwrap_or_default();
        let m = tail.len().min(self.nonce.len());
        if tail.get(..m) != self.nonce.get(..m) {
            return Found::No;
        }
        match tail.get(self.nonce.len()) {
            None => Found::Partial,
            Some(0x07) => Found::Marker(PREFIX.len() + digits + 1 + self.nonce.len() + 1, status),
            Some(_) => Found::No,
        }
    }
}

// A marker never needs more than MAX_LEN bytes held back.
const _: () = assert!(MAX_LEN < 128);

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(s: &mut ExitScanner, data: &[u8]) -> Bytes {
        s.feed(&Bytes::copy_from_slice(data))
    }

    fn marker_bytes(m: &ExitMarker, status: u32) -> Vec<u8> {
        format!("\x1b]7767;ssmgate-exit;{status};{}\x07", m.nonce).into_bytes()
    }

    #[test]
    fn removes_the_marker_and_keeps_the_status() {
        let m = ExitMarker::new();
        let mut s = m.scanner();
        let mut data = b"hello\r\n".to_vec();
        data.extend(marker_bytes(&m, 5));
        assert_eq!(&feed(&mut s, &data)[..], b"hello\r\n");
        assert_eq!(s.status(), Some(5));
        assert!(s.finish().is_empty());
    }

    #[test]
    fn a_marker_split_anywhere_is_still_found() {
        let m = ExitMarker::new();
        let mut whole = b"out\x1b[1mbold\x1b[0m".to_vec();
        whole.extend(marker_bytes(&m, 130));
        whole.extend(b"after");
        for cut in 0..whole.len() {
            let mut s = m.scanner();
            let mut out = feed(&mut s, &whole[..cut]).to_vec();
            out.extend_from_slice(&feed(&mut s, &whole[cut..]));
            out.extend_from_slice(&s.finish());
            assert_eq!(out, b"out\x1b[1mbold\x1b[0mafter", "cut at {cut}");
            assert_eq!(s.status(), Some(130), "cut at {cut}");
        }
    }

    #[test]
    fn look_alikes_pass_through_and_the_last_real_marker_wins() {
        let m = ExitMarker::new();
        let other = ExitMarker::new();
        let mut s = m.scanner();
        let mut data = marker_bytes(&other, 9);
        data.extend(marker_bytes(&m, 1));
        data.extend(b"\x1b]7767;ssmgate-exit;1000;x\x07");
        data.extend(marker_bytes(&m, 2));
        let out = feed(&mut s, &data);
        let mut want = marker_bytes(&other, 9);
        want.extend(b"\x1b]7767;ssmgate-exit;1000;x\x07");
        assert_eq!(&out[..], &want[..]);
        assert_eq!(s.status(), Some(2));
    }

    #[test]
    fn output_ending_in_a_partial_marker_is_released_at_the_end() {
        let m = ExitMarker::new();
        let mut s = m.scanner();
        assert_eq!(&feed(&mut s, b"x\x1b]7767;ssm")[..], b"x");
        assert_eq!(&s.finish()[..], b"\x1b]7767;ssm");
        assert_eq!(s.status(), None);
    }

    #[test]
    fn the_wrapper_quotes_any_command() {
        let m = ExitMarker::new();
        let w = m.wrap("echo 'a b'; exit 3");
        assert!(
            w.starts_with(r#"trap : INT QUIT; sh -c 'echo '\''a b'\''; exit 3'; printf"#),
            "{w}"
        );
        assert!(w.contains(&m.nonce));
    }

    #[test]
    fn the_wrapper_reports_the_status_through_a_real_shell() {
        let m = ExitMarker::new();
        for (cmd, want) in [("echo hi; exit 7", 7), ("true", 0), ("kill -TERM $$", 143)] {
            let out = std::process::Command::new("sh")
                .args(["-c", &m.wrap(cmd)])
                .output()
                .expect("sh runs");
            let mut s = m.scanner();
            let text = feed(&mut s, &out.stdout);
            assert_eq!(s.status(), Some(want), "{cmd}: {out:?}");
            assert!(!text.contains(&0x1b), "{cmd}: {text:?}");
        }
    }
}
