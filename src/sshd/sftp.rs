//! Recording an sftp subsystem as file operations: both directions go
//! through an [`sftp_audit::SftpAudit`] parser (it only observes; the bytes
//! pass unchanged), and each operation it reports — open, close with bytes
//! and sha256, rename, remove, mkdir, setstat, … — becomes a `File` event
//! of the session. The raw packets are not kept: the operations say what
//! happened, and file contents are identified by their hashes.

use std::sync::Mutex;

use bytes::Bytes;
use sftp_audit::{SftpAudit, SftpEvent};

use crate::recording::SessionTap;

/// The parser of one sftp session.
pub struct SftpRecorder {
    audit: Mutex<SftpAudit>,
}

impl Default for SftpRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl SftpRecorder {
    /// A parser at the start of a session.
    pub fn new() -> Self {
        SftpRecorder {
            audit: Mutex::new(SftpAudit::new()),
        }
    }

    /// Bytes from the client (requests).
    pub async fn client_bytes(&self, tap: &SessionTap, data: &Bytes) {
        tap.count(data.len() as u64, 0);
        let events = self.with(|a| a.client_bytes(data));
        record(tap, events).await;
    }

    /// Bytes from the target (replies).
    pub async fn server_bytes(&self, tap: &SessionTap, data: &Bytes) {
        tap.count(0, data.len() as u64);
        let events = self.with(|a| a.server_bytes(data));
        record(tap, events).await;
    }

    /// The session ended: files still open are reported as closed.
    pub async fn finish(self, tap: &SessionTap) {
        let events = self.with(SftpAudit::finish);
        record(tap, events).await;
    }

    fn with(&self, f: impl FnOnce(&mut SftpAudit) -> Vec<SftpEvent>) -> Vec<SftpEvent> {
        // A poisoned lock only means an earlier call panicked; the parser
        // state is still usable for what follows.
        let mut audit = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut audit)
    }
}

async fn record(tap: &SessionTap, events: Vec<SftpEvent>) {
    for event in events {
        match serde_json::to_value(&event) {
            Ok(json) => tap.file(&json).await,
            Err(e) => {
                tracing::warn!(gateway_session = %tap.id(), error = %e, "an sftp event could not be recorded")
            }
        }
    }
}
