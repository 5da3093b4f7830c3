//! The handle table: which open file or directory each server handle
//! stands for ([`OpenFile`]: path, open flags, byte counters and the two
//! ordered hashers), bounded by `Limits::max_open_handles` (the oldest is
//! closed implicitly first), and how a file's [`SftpEvent::Close`] is built.
//!
//! Entries get a fresh [`EntryId`] when opened, so that a request resolved
//! against one file never lands on a later file that reuses its handle
//! string (OpenSSH reuses handle slots).

use std::collections::{BTreeMap, HashMap};

use crate::events::{SftpEvent, Status, pflag};
use crate::hashing::{Budget, OrderedHasher};

/// Identity of one opened file or directory within a session.
pub(crate) type EntryId = u64;

/// What a handle refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandleKind {
    /// A file, with its OPEN flags.
    File { pflags: u32 },
    /// A directory from OPENDIR.
    Dir,
}

/// One open handle.
#[derive(Debug)]
pub(crate) struct OpenFile {
    handle: Vec<u8>,
    pub path: String,
    pub kind: HandleKind,
    pub read: OrderedHasher,
    pub write: OrderedHasher,
    pub read_bytes: u64,
    pub written_bytes: u64,
    /// Some READ got DATA or EOF.
    pub read_seen: bool,
    /// WRITEs sent but not yet answered.
    pub writes_outstanding: u64,
}

impl OpenFile {
    /// Stops both hashers (the file will report no sha256).
    pub(crate) fn invalidate(&mut self, budget: &mut Budget) {
        self.read.invalidate(budget);
        self.write.invalidate(budget);
    }

    /// The Close event for a file (`None` for a directory); frees the
    /// hashers' buffers.
    pub(crate) fn close_event(
        mut self,
        budget: &mut Budget,
        implicit: bool,
        status: Option<Status>,
    ) -> Option<SftpEvent> {
        let HandleKind::File { pflags } = self.kind else {
            self.invalidate(budget);
            return None;
        };
        let read_sha256 = match self.read_seen {
            true => self.read.finish(budget),
            false => {
                self.read.invalidate(budget);
                None
            }
        };
        let wrote = pflags & pflag::WRITE != 0 || self.written_bytes > 0;
        let written_sha256 = match wrote && self.writes_outstanding == 0 {
            true => self.write.finish(budget),
            false => {
                self.write.invalidate(budget);
                None
            }
        };
        Some(SftpEvent::Close {
            path: self.path,
            read_bytes: self.read_bytes,
            written_bytes: self.written_bytes,
            read_sha256,
            written_sha256,
            implicit,
            status,
        })
    }
}

/// Result of [`HandleTable::insert`].
#[derive(Debug)]
pub(crate) struct Inserted {
    /// A still-open entry with the same handle string, now displaced.
    pub replaced: Option<OpenFile>,
    /// The oldest entry, closed to respect the bound.
    pub evicted: Option<OpenFile>,
}

/// Open handles, oldest first.
#[derive(Debug)]
pub(crate) struct HandleTable {
    by_handle: HashMap<Vec<u8>, EntryId>,
    entries: BTreeMap<EntryId, OpenFile>,
    next_id: EntryId,
    max: usize,
}

impl HandleTable {
    pub(crate) fn new(max: usize) -> Self {
        HandleTable {
            by_handle: HashMap::new(),
            entries: BTreeMap::new(),
            next_id: 0,
            max: max.max(1),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entry a handle string currently stands for.
    pub(crate) fn lookup(&self, handle: &[u8]) -> Option<EntryId> {
        self.by_handle.get(handle).copied()
    }

    pub(crate) fn get_mut(&mut self, id: EntryId) -> Option<&mut OpenFile> {
        self.entries.get_mut(&id)
    }

    /// The file behind a handle string, if known.
    pub(crate) fn by_handle_mut(&mut self, handle: &[u8]) -> Option<(EntryId, &mut OpenFile)> {
        let id = self.lookup(handle)?;
        self.entries.get_mut(&id).map(|f| (id, f))
    }

    /// The path behind a handle string, if known.
    pub(crate) fn path_of(&self, handle: &[u8]) -> Option<String> {
        let id = self.lookup(handle)?;
        self.entries.get(&id).map(|f| f.path.clone())
    }

    /// Registers a handle the server just returned.
    pub(crate) fn insert(&mut self, handle: &[u8], path: String, kind: HandleKind) -> Inserted {
        let replaced = self.lookup(handle).and_then(|id| self.remove(id));
        let evicted = match self.entries.len() >= self.max {
            true => self
                .entries
                .first_key_value()
                .map(|(&id, _)| id)
                .and_then(|id| self.remove(id)),
            false => None,
        };
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.by_handle.insert(handle.to_vec(), id);
        self.entries.insert(
            id,
            OpenFile {
                handle: handle.to_vec(),
                path,
                kind,
                read: OrderedHasher::default(),
                write: OrderedHasher::default(),
                read_bytes: 0,
                written_bytes: 0,
                read_seen: false,
                writes_outstanding: 0,
            },
        );
        Inserted { replaced, evicted }
    }

    /// Forgets an entry and its handle string.
    pub(crate) fn remove(&mut self, id: EntryId) -> Option<OpenFile> {
        let file = self.entries.remove(&id)?;
        if self.by_handle.get(&file.handle) == Some(&id) {
            self.by_handle.remove(&file.handle);
        }
        Some(file)
    }

    /// Every entry, oldest first, leaving the table empty.
    pub(crate) fn drain_all(&mut self) -> Vec<OpenFile> {
        self.by_handle = HashMap::new();
        std::mem::take(&mut self.entries).into_values().collect()
    }

    /// Stops every hasher (after the stream became unparseable).
    pub(crate) fn invalidate_all(&mut self, budget: &mut Budget) {
        for f in self.entries.values_mut() {
            f.invalidate(budget);
        }
    }

    /// Every open entry, oldest first.
    #[cfg(test)]
    pub(crate) fn files(&self) -> impl Iterator<Item = &OpenFile> {
        self.entries.values()
    }
}
