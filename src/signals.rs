//! Stopping on SIGINT, SIGTERM or SIGQUIT, with the handlers installed up
//! front so that a signal arriving right after start-up is not lost. The
//! first signal starts a graceful drain; [`Stop::wait`] again waits for a
//! second, which ends it at once.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Installed stop-signal handlers.
pub struct Stop {
    int: Signal,
    term: Signal,
    quit: Signal,
}

impl Stop {
    /// Installs the handlers now.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    /// Waits for any of the signals (again after the first).
    pub async fn wait(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = self.quit.recv() => {}
        }
    }
}
