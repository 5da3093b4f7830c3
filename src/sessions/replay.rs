//! `ssmgate sessions replay`: writes a shell or command session's output to
//! stdout as it was recorded, with its timing (scaled by `--speed`, each
//! pause capped at `--max-idle`). A reader that goes away (EPIPE) ends the
//! replay quietly.

use std::io::{ErrorKind, Write};
use std::time::Duration;

use super::{Db, SessionsError, terminal_recording};
use crate::cli::SessionsReplayArgs;
use crate::recording::{Event, EventKind};

/// Runs `sessions replay`.
pub async fn run(db: &Db, args: &SessionsReplayArgs) -> Result<(), SessionsError> {
    let (_, events) = terminal_recording(db, &args.id).await?;
    let mut out = std::io::stdout();
    match play(&events, args.speed, args.max_idle, &mut out).await {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(SessionsError::Write {
            what: "stdout".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// The pause before an event `delta_ms` after the previous output.
pub fn pause(delta_ms: u64, speed: f64, max_idle: f64) -> Duration {
    let secs = (delta_ms as f64 / 1000.0 / speed).min(max_idle);
    if secs.is_finite() && secs > 0.0 {
        Duration::from_secs_f64(secs)
    } else {
        Duration::ZERO
    }
}

/// Writes the `Output` events' bytes to `out`, flushing after each, with
/// the recorded pauses between them (divided by `speed`, at most
/// `max_idle` seconds each).
pub async fn play<W: Write>(
    events: &[Event],
    speed: f64,
    max_idle: f64,
    out: &mut W,
) -> std::io::Result<()> {
    let mut last_ms = 0u64;
    for e in events.iter().filter(|e| e.kind == EventKind::Output) {
        let wait = pause(e.offset_ms.saturating_sub(last_ms), speed, max_idle);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        last_ms = last_ms.max(e.offset_ms);
        out.write_all(&e.data)?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn pauses_are_scaled_and_capped() {
        assert_eq!(pause(1000, 1.0, 2.0), Duration::from_secs(1));
        assert_eq!(pause(1000, 4.0, 2.0), Duration::from_millis(250));
        assert_eq!(pause(60_000, 1.0, 2.0), Duration::from_secs(2));
        assert_eq!(pause(60_000, 1.0, 0.0), Duration::ZERO);
        assert_eq!(pause(0, 1.0, 2.0), Duration::ZERO);
    }

    #[tokio::test]
    async fn only_output_is_played_in_order() {
        let ev = |offset_ms, kind, data: &'static [u8]| Event {
            offset_ms,
            kind,
            data: Bytes::from_static(data),
        };
        let events = vec![
            ev(0, EventKind::Resize { cols: 80, rows: 24 }, b""),
            ev(5, EventKind::Output, b"$ "),
            ev(9, EventKind::Input, b"ls\r"),
            ev(12, EventKind::Output, b"ls\r\n"),
            ev(20, EventKind::Exit { code: 0 }, b""),
        ];
        let mut out = Vec::new();
        play(&events, 100.0, 0.5, &mut out).await.unwrap();
        assert_eq!(out, b"$ ls\r\n");
    }
}
