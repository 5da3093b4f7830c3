//! The pending-request table: what each outstanding request id asked for
//! ([`Pending`]), kept until its reply arrives, bounded by
//! `Limits::max_pending_requests` (the oldest is dropped first).

use std::collections::{BTreeMap, HashMap};

use crate::events::AttrsSummary;
use crate::handles::EntryId;

/// What a request asked for, as much as its reply needs to become an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pending {
    Open {
        path: String,
        pflags: u32,
    },
    OpenDir {
        path: String,
    },
    Close {
        entry: EntryId,
    },
    Read {
        entry: EntryId,
        offset: u64,
        len: u32,
    },
    Write {
        entry: EntryId,
        len: u64,
    },
    Remove {
        path: String,
    },
    Rename {
        from: String,
        to: String,
        posix: bool,
    },
    Mkdir {
        path: String,
    },
    Rmdir {
        path: String,
    },
    Setstat {
        path: Option<String>,
        attrs: AttrsSummary,
    },
    Symlink {
        link: String,
        target: String,
    },
    Hardlink {
        from: String,
        to: String,
    },
    CopyData {
        from_path: Option<String>,
        to_path: Option<String>,
        to_entry: Option<EntryId>,
        from_offset: u64,
        to_offset: u64,
        length: u64,
    },
    Extended {
        name: String,
    },
    /// A request that makes no event (STAT, REALPATH, READDIR, read-only
    /// extensions, I/O on unknown handles, unknown types): tracked only so
    /// that its reply is not taken for another request's.
    Quiet,
}

/// Requests by id, oldest first.
#[derive(Debug)]
pub(crate) struct PendingTable {
    by_id: HashMap<u32, (u64, Pending)>,
    order: BTreeMap<u64, u32>,
    seq: u64,
    max: usize,
}

/// Requests [`PendingTable::insert`] had to let go of.
#[derive(Debug, Default)]
pub(crate) struct Displaced {
    /// An earlier request with the same id, still unanswered.
    pub replaced: Option<Pending>,
    /// The oldest request, dropped to respect the bound.
    pub evicted: Option<Pending>,
}

impl PendingTable {
    pub(crate) fn new(max: usize) -> Self {
        PendingTable {
            by_id: HashMap::new(),
            order: BTreeMap::new(),
            seq: 0,
            max: max.max(1),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(crate) fn clear(&mut self) {
        self.by_id = HashMap::new();
        self.order = BTreeMap::new();
    }

    /// Remembers request `id`.
    pub(crate) fn insert(&mut self, id: u32, pending: Pending) -> Displaced {
        let mut out = Displaced {
            replaced: self.take(id),
            evicted: None,
        };
        if self.by_id.len() >= self.max
            && let Some((_, old_id)) = self.order.pop_first()
        {
            out.evicted = self.by_id.remove(&old_id).map(|(_, p)| p);
        }
        self.seq = self.seq.wrapping_add(1);
        self.order.insert(self.seq, id);
        self.by_id.insert(id, (self.seq, pending));
        out
    }

    /// Forgets and returns request `id`.
    pub(crate) fn take(&mut self, id: u32) -> Option<Pending> {
        let (seq, pending) = self.by_id.remove(&id)?;
        self.order.remove(&seq);
        Some(pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_oldest_first_and_duplicates_replace() {
        let mut t = PendingTable::new(3);
        for id in 0..3 {
            let d = t.insert(id, Pending::Quiet);
            assert!(d.replaced.is_none() && d.evicted.is_none());
        }
        let d = t.insert(1, Pending::Extended { name: "x".into() });
        assert_eq!(d.replaced, Some(Pending::Quiet));
        assert!(d.evicted.is_none());
        assert_eq!(t.len(), 3);
        // Full: id 0 is the oldest now.
        let d = t.insert(7, Pending::Quiet);
        assert_eq!(d.evicted, Some(Pending::Quiet));
        assert_eq!(t.len(), 3);
        assert!(t.take(0).is_none());
        assert_eq!(t.take(1), Some(Pending::Extended { name: "x".into() }));
        assert_eq!(t.by_id.len(), t.order.len());
    }
}
