//! Reads one line typed on the client's terminal, through the channel
//! itself: the client's terminal is in raw mode while a PTY session runs,
//! so the gateway echoes and edits (backspace) as a terminal would. Used by
//! the target picker and the reason prompt.

use russh::{ChannelMsg, ChannelReadHalf};

use super::session_channel::SshOutput;

/// Longest line kept, in bytes; what is typed beyond is ignored.
const MAX_LINE: usize = 512;

/// What the person did at the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    /// A line (without its end), UTF-8 (invalid bytes replaced).
    Line(String),
    /// Ctrl-C or Ctrl-D.
    Cancelled,
    /// The channel closed or sent EOF.
    Closed,
}

/// Reads one line with echo and backspace. `typeahead` holds what was
/// typed (or pasted, or piped by `ssh -tt`) beyond the line: it is read
/// first next time, and what is left of it after the last prompt belongs to
/// the session.
pub async fn read_line(
    rd: &mut ChannelReadHalf,
    out: &mut SshOutput,
    typeahead: &mut Vec<u8>,
) -> Typed {
    let mut line: Vec<u8> = Vec::new();
    loop {
        let data: Vec<u8> = if typeahead.is_empty() {
            match rd.wait().await {
                Some(ChannelMsg::Data { data }) => data.to_vec(),
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => return Typed::Closed,
                Some(_) => continue,
            }
        } else {
            std::mem::take(typeahead)
        };
        for (i, &b) in data.iter().enumerate() {
            match b {
                b'\r' | b'\n' => {
                    let mut rest = data.get(i + 1..).unwrap_or_default();
                    if b == b'\r' && rest.first() == Some(&b'\n') {
                        rest = rest.get(1..).unwrap_or_default();
                    }
                    *typeahead = rest.to_vec();
                    out.write("\r\n").await;
                    return Typed::Line(String::from_utf8_lossy(&line).into_owned());
                }
                0x03 | 0x04 => {
                    out.write("\r\n").await;
                    return Typed::Cancelled;
                }
                0x7f | 0x08 if pop_char(&mut line) => {
                    out.write("\x08 \x08").await;
                }
                0x7f | 0x08 => {}
                // Printable ASCII and the bytes of UTF-8 characters;
                // other controls (escape sequences) are dropped.
                b if (b == b' ' || b.is_ascii_graphic() || b >= 0x80) && line.len() < MAX_LINE => {
                    line.push(b);
                    out.write_bytes(&[b]).await;
                }
                _ => {}
            }
        }
    }
}

/// Removes the last character (all its UTF-8 bytes); false when empty.
fn pop_char(line: &mut Vec<u8>) -> bool {
    let Some(last) = line.pop() else {
        return false;
    };
    if last >= 0x80 {
        // Continuation bytes (10xxxxxx) up to the lead byte.
        let mut b = last;
        while b & 0xC0 == 0x80 {
            match line.pop() {
                Some(prev) => b = prev,
                None => break,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backspace_removes_whole_characters() {
        let mut line = "aé€".as_bytes().to_vec();
        assert!(pop_char(&mut line));
        assert_eq!(line, "aé".as_bytes());
        assert!(pop_char(&mut line));
        assert_eq!(line, b"a");
        assert!(pop_char(&mut line));
        assert!(!pop_char(&mut line));
    }
}
