//! Request/reply tracking for one sftp session: the state shared by the
//! client side ([`requests`]: what each request asks for, WRITE data hashed
//! as it is sent) and the server side ([`replies`]: replies matched to
//! requests by id, turned into events), plus the session-wide bounds and
//! counters.

mod replies;
mod requests;

use serde::Serialize;

use crate::Limits;
use crate::events::SftpEvent;
use crate::handles::{HandleTable, OpenFile};
use crate::hashing::{Break, Budget};
use crate::pending::{Displaced, Pending, PendingTable};

/// Counters of what the parser saw but did not turn into events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Complete packets from the client.
    pub client_packets: u64,
    /// Complete packets from the server.
    pub server_packets: u64,
    /// Requests that make no event (STAT, LSTAT, FSTAT, REALPATH, READLINK,
    /// READDIR, read-only extensions, unknown types).
    pub quiet_requests: u64,
    /// READ/WRITE/CLOSE/FSETSTAT naming a handle the parser does not know.
    pub unknown_handle_requests: u64,
    /// Replies whose id matched no pending request.
    pub orphan_replies: u64,
    /// Replies of a type the request does not expect.
    pub mismatched_replies: u64,
    /// Pending requests dropped: `max_pending_requests` or a reused id.
    pub dropped_requests: u64,
    /// Handles closed implicitly because of `max_open_handles` or reuse.
    pub evicted_handles: u64,
    /// WRITEs answered with an error status.
    pub failed_writes: u64,
}

/// Which limits were already reported (one event per limit per session).
#[derive(Debug, Default)]
struct Noted {
    pending: bool,
    handles: bool,
    reorder: bool,
}

/// Everything known about one session between packets.
#[derive(Debug)]
pub(crate) struct Session {
    pending: PendingTable,
    handles: HandleTable,
    budget: Budget,
    stats: Stats,
    noted: Noted,
    /// Events completed but not yet handed out.
    out: Vec<SftpEvent>,
}

impl Session {
    pub(crate) fn new(limits: &Limits) -> Self {
        Session {
            pending: PendingTable::new(limits.max_pending_requests),
            handles: HandleTable::new(limits.max_open_handles),
            budget: Budget::new(limits.max_reorder_bytes),
            stats: Stats::default(),
            noted: Noted::default(),
            out: Vec::new(),
        }
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Hands out the events completed so far.
    pub(crate) fn take_events(&mut self) -> Vec<SftpEvent> {
        std::mem::take(&mut self.out)
    }

    pub(crate) fn push(&mut self, event: SftpEvent) {
        self.out.push(event);
    }

    /// The stream is no longer parseable: forget pending requests, stop all
    /// hashing (later bytes are not seen, so no digest can be trusted), keep
    /// the open files for [`Session::finish`].
    pub(crate) fn stop(&mut self) {
        self.pending.clear();
        self.handles.invalidate_all(&mut self.budget);
    }

    /// Implicit closes of every file still open, oldest first.
    pub(crate) fn finish(&mut self) {
        self.pending.clear();
        for file in self.handles.drain_all() {
            self.close_implicitly(file);
        }
    }

    fn close_implicitly(&mut self, file: OpenFile) {
        if let Some(ev) = file.close_event(&mut self.budget, true, None) {
            self.out.push(ev);
        }
    }

    /// Remembers a request, settling whatever it displaced.
    fn track(&mut self, id: u32, pending: Pending) {
        let Displaced { replaced, evicted } = self.pending.insert(id, pending);
        if let Some(p) = replaced {
            self.drop_pending(p);
        }
        if let Some(p) = evicted {
            self.drop_pending(p);
            if !self.noted.pending {
                self.noted.pending = true;
                self.out.push(SftpEvent::LimitReached {
                    limit: "max_pending_requests",
                });
            }
        }
    }

    /// A request whose reply will never be matched: an unconfirmed WRITE
    /// means its file's written digest cannot be trusted.
    fn drop_pending(&mut self, p: Pending) {
        self.stats.dropped_requests = self.stats.dropped_requests.saturating_add(1);
        if let Pending::Write { entry, .. } = p
            && let Some(f) = self.handles.get_mut(entry)
        {
            f.writes_outstanding = f.writes_outstanding.saturating_sub(1);
            f.write.invalidate(&mut self.budget);
        }
    }

    /// Reports a hasher that gave up for lack of budget (once).
    fn note_break(&mut self, result: Result<(), Break>) {
        if result == Err(Break::OverBudget) && !self.noted.reorder {
            self.noted.reorder = true;
            self.out.push(SftpEvent::LimitReached {
                limit: "max_reorder_bytes",
            });
        }
    }

    /// Bytes held in reorder buffers, pending requests and open handles.
    #[cfg(test)]
    pub(crate) fn footprint(&self) -> (usize, usize, usize) {
        (self.budget.used(), self.pending.len(), self.handles.len())
    }

    /// Sum of parked bytes over all files (must match the budget's view).
    #[cfg(test)]
    pub(crate) fn parked_total(&self) -> usize {
        self.handles
            .files()
            .map(|f| f.read.parked_bytes() + f.write.parked_bytes())
            .sum()
    }
}
