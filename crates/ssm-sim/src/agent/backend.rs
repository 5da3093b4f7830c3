//! What runs behind a simulated session — a PTY shell, an exec'd command or
//! TCP connections — and the queues that join it to the agent's data channel.
//!
//! The agent pushes client input into an [`Inbox`] whose length it watches:
//! while the backend lags, the agent stops acknowledging new input and the
//! client retransmits later, so neither side buffers without bound. Output
//! goes back through a bounded queue, which the agent drains only while its
//! send window has room.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use ssm_datachannel::message::PayloadType;
use ssm_datachannel::payloads::Flag;
use tokio::sync::mpsc;

use crate::config::Mode;

/// Client input for the backend.
#[derive(Debug)]
pub enum ToBackend {
    /// PayloadType Output: keystrokes or port bytes.
    Data(Bytes),
    /// PayloadType Size: terminal columns and rows.
    Size { cols: u16, rows: u16 },
    /// PayloadType Flag.
    Flag(Flag),
}

/// What the backend produces.
#[derive(Debug)]
pub enum FromBackend {
    /// A payload for the client, already cut to size.
    Data(PayloadType, Bytes),
    /// The backend is finished; the text becomes `channel_closed`'s Output.
    Done(String),
}

/// Input the agent has accepted and the backend has not yet taken.
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<ToBackend>,
    queued: Arc<AtomicUsize>,
}

/// The agent's end of an [`Inbox`].
#[derive(Clone)]
pub struct InboxSender {
    tx: mpsc::UnboundedSender<ToBackend>,
    queued: Arc<AtomicUsize>,
}

/// Input messages queued beyond which the agent refuses more for now ("not
/// ready": no ack, the client retransmits). The real agent acks after its
/// plugin has taken a message (a port session's TCP write blocks rather
/// than refuses), so refusals are the exception: the limit sits above the
/// send window a client keeps in flight (4096 messages for ours), and a
/// refusal only happens when a backend stops taking input altogether.
pub const INBOX_LIMIT: usize = 8192;

/// A new inbox pair.
pub fn inbox() -> (InboxSender, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        InboxSender {
            tx,
            queued: queued.clone(),
        },
        Inbox { rx, queued },
    )
}

impl Inbox {
    /// The next input; `None` once the agent has let go (session over).
    pub async fn recv(&mut self) -> Option<ToBackend> {
        let item = self.rx.recv().await;
        if item.is_some() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        item
    }
}

impl InboxSender {
    /// Queues input; false when the backend is gone.
    pub fn push(&self, item: ToBackend) -> bool {
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.tx.send(item).is_ok()
    }

    /// Whether the backend keeps up well enough to accept more input.
    pub fn has_room(&self) -> bool {
        self.queued.load(Ordering::Relaxed) < INBOX_LIMIT
    }
}

/// Everything a backend task gets.
pub struct BackendIo {
    /// Client input.
    pub inbox: Inbox,
    /// Output towards the client.
    pub out: Outbox,
}

/// Where a backend sends its output. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    /// The agent's output queue.
    pub tx: mpsc::Sender<FromBackend>,
    /// Faithful or fast.
    pub mode: Mode,
}

impl Outbox {
    /// Largest output payload: 1024 bytes like the agent, more in fast mode.
    pub fn chunk_size(&self) -> usize {
        match self.mode {
            Mode::Faithful => 1024,
            Mode::Fast => 16 * 1024,
        }
    }

    /// Sends one payload; false when the agent is gone.
    pub async fn send(&self, payload_type: PayloadType, data: Bytes) -> bool {
        if data.is_empty() {
            return true;
        }
        self.tx
            .send(FromBackend::Data(payload_type, data))
            .await
            .is_ok()
    }

    /// Reports the end of the backend.
    pub async fn done(&self, output: impl Into<String>) {
        let _ = self.tx.send(FromBackend::Done(output.into())).await;
    }
}
