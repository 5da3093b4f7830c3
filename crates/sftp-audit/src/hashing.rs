//! The ordered hasher: a running sha256 of the contiguous prefix `[0, next)`
//! of one direction of one file, fed chunks at arbitrary offsets in any
//! order ([`OrderedHasher`]), with a reorder buffer whose memory is charged
//! to a session-wide [`Budget`].
//!
//! A chunk at `next` is hashed at once, then any parked chunks that now
//! continue the prefix. A chunk beyond `next` is parked. A chunk that
//! overlaps hashed or parked bytes, an offset overflow, or a chunk the
//! budget cannot hold "breaks" the hasher: it frees its buffer and will
//! report no digest (callers still count bytes themselves).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Bookkeeping cost of one parked chunk besides its bytes, so that a flood
/// of 1-byte chunks is bounded too.
const CHUNK_OVERHEAD: usize = 64;

/// The session-wide bound on parked bytes (`Limits::max_reorder_bytes`).
#[derive(Debug)]
pub(crate) struct Budget {
    used: usize,
    limit: usize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Self {
        Budget { used: 0, limit }
    }

    /// Bytes currently charged.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    fn try_charge(&mut self, n: usize) -> bool {
        match self.used.checked_add(n) {
            Some(total) if total <= self.limit => {
                self.used = total;
                true
            }
            _ => false,
        }
    }

    fn release(&mut self, n: usize) {
        self.used = self.used.saturating_sub(n);
    }
}

/// Why a hasher stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Break {
    /// The chunk overlaps bytes already hashed or parked.
    Overlap,
    /// Parking the chunk would exceed the budget.
    OverBudget,
    /// `offset + len` does not fit in 64 bits.
    Overflow,
}

#[derive(Debug)]
struct Active {
    sha: Sha256,
    next: u64,
    parked: BTreeMap<u64, Vec<u8>>,
    /// Charged to the budget for `parked`.
    cost: usize,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct OrderedHasher {
    /// `None` once broken.
    active: Option<Active>,
}

impl Default for OrderedHasher {
    fn default() -> Self {
        OrderedHasher {
            active: Some(Active {
                sha: Sha256::new(),
                next: 0,
                parked: BTreeMap::new(),
                cost: 0,
            }),
        }
    }
}

impl OrderedHasher {
    /// Whether the hasher still tracks a contiguous prefix.
    #[cfg(test)]
    pub(crate) fn is_intact(&self) -> bool {
        self.active.is_some()
    }

    /// Stops hashing and frees the reorder buffer.
    pub(crate) fn invalidate(&mut self, budget: &mut Budget) {
        if let Some(a) = self.active.take() {
            budget.release(a.cost);
        }
    }

    /// Adds `data` found at `offset`. Empty chunks are ignored.
    pub(crate) fn add(
        &mut self,
        offset: u64,
        data: &[u8],
        budget: &mut Budget,
    ) -> Result<(), Break> {
        let Some(a) = self.active.as_mut() else {
            return Ok(());
        };
        if data.is_empty() {
            return Ok(());
        }
        let result = add_active(a, offset, data, budget);
        if result.is_err() {
            self.invalidate(budget);
        }
        result
    }

    /// The digest of the prefix, if intact and nothing is left parked (a
    /// parked chunk means a gap that was never filled). Releases the buffer.
    pub(crate) fn finish(&mut self, budget: &mut Budget) -> Option<String> {
        let a = self.active.take()?;
        budget.release(a.cost);
        if !a.parked.is_empty() {
            return None;
        }
        Some(hex::encode(a.sha.finalize()))
    }

    /// Bytes parked in this hasher's reorder buffer.
    #[cfg(test)]
    pub(crate) fn parked_bytes(&self) -> usize {
        self.active
            .as_ref()
            .map_or(0, |a| a.parked.values().map(Vec::len).sum())
    }
}

fn add_active(a: &mut Active, offset: u64, data: &[u8], budget: &mut Budget) -> Result<(), Break> {
    let len = u64::try_from(data.len()).map_err(|_| Break::Overflow)?;
    let end = offset.checked_add(len).ok_or(Break::Overflow)?;
    if offset < a.next {
        return Err(Break::Overlap);
    }
    if offset == a.next {
        a.sha.update(data);
        a.next = end;
        return drain(a, budget);
    }
    // Beyond the prefix: park it unless it overlaps a neighbour.
    if let Some((&k, v)) = a.parked.range(..=offset).next_back() {
        let v_len = u64::try_from(v.len()).map_err(|_| Break::Overflow)?;
        if k.checked_add(v_len).is_none_or(|v_end| v_end > offset) {
            return Err(Break::Overlap);
        }
    }
    if let Some((&k, _)) = a.parked.range(offset..).next()
        && k < end
    {
        return Err(Break::Overlap);
    }
    let cost = data.len().saturating_add(CHUNK_OVERHEAD);
    if !budget.try_charge(cost) {
        return Err(Break::OverBudget);
    }
    a.cost = a.cost.saturating_add(cost);
    a.parked.insert(offset, data.to_vec());
    Ok(())
}

/// Hashes parked chunks that continue the prefix.
fn drain(a: &mut Active, budget: &mut Budget) -> Result<(), Break> {
    while let Some(entry) = a.parked.first_entry() {
        let k = *entry.key();
        if k > a.next {
            return Ok(());
        }
        if k < a.next {
            return Err(Break::Overlap);
        }
        let chunk = entry.remove();
        let len = u64::try_from(chunk.len()).map_err(|_| Break::Overflow)?;
        a.sha.update(&chunk);
        a.next = a.next.checked_add(len).ok_or(Break::Overflow)?;
        let cost = chunk.len().saturating_add(CHUNK_OVERHEAD);
        budget.release(cost);
        a.cost = a.cost.saturating_sub(cost);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    #[test]
    fn in_order_and_reordered_chunks_give_the_same_digest() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut budget = Budget::new(1 << 20);
        let mut h = OrderedHasher::default();
        // Chunks of 100 in the order 3,1,0,2,9,...
        let order = [3usize, 1, 0, 2, 9, 8, 7, 4, 5, 6];
        for i in order {
            h.add((i * 100) as u64, &data[i * 100..(i + 1) * 100], &mut budget)
                .unwrap();
        }
        assert_eq!(budget.used(), 0);
        assert_eq!(h.finish(&mut budget), Some(sha(&data)));
    }

    #[test]
    fn gap_gives_no_digest_and_releases_budget() {
        let mut budget = Budget::new(1 << 20);
        let mut h = OrderedHasher::default();
        h.add(0, b"abc", &mut budget).unwrap();
        h.add(10, b"xyz", &mut budget).unwrap();
        assert_eq!(h.parked_bytes(), 3);
        assert!(budget.used() > 0);
        assert_eq!(h.finish(&mut budget), None);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn overlaps_break_the_hasher() {
        let mut budget = Budget::new(1 << 20);
        let mut h = OrderedHasher::default();
        h.add(0, b"abcd", &mut budget).unwrap();
        assert_eq!(h.add(2, b"cd", &mut budget), Err(Break::Overlap));
        assert!(!h.is_intact());
        assert_eq!(h.finish(&mut budget), None);

        let mut h = OrderedHasher::default();
        h.add(10, b"abcd", &mut budget).unwrap();
        assert_eq!(h.add(12, b"zz", &mut budget), Err(Break::Overlap));
        assert_eq!(budget.used(), 0);

        let mut h = OrderedHasher::default();
        h.add(10, b"abcd", &mut budget).unwrap();
        assert_eq!(h.add(8, b"zzz", &mut budget), Err(Break::Overlap));

        // A prefix chunk that runs into a parked one.
        let mut h = OrderedHasher::default();
        h.add(4, b"efgh", &mut budget).unwrap();
        assert_eq!(h.add(0, b"abcdE", &mut budget), Err(Break::Overlap));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn budget_is_enforced_and_shared() {
        let mut budget = Budget::new(300);
        let mut a = OrderedHasher::default();
        let mut b = OrderedHasher::default();
        a.add(100, &[1; 100], &mut budget).unwrap();
        assert_eq!(b.add(100, &[1; 100], &mut budget), Err(Break::OverBudget));
        assert!(a.is_intact());
        assert!(!b.is_intact());
        a.invalidate(&mut budget);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn offset_overflow_breaks() {
        let mut budget = Budget::new(300);
        let mut h = OrderedHasher::default();
        assert_eq!(h.add(u64::MAX, b"ab", &mut budget), Err(Break::Overflow));
    }

    #[test]
    fn empty_input_digest() {
        let mut budget = Budget::new(0);
        let mut h = OrderedHasher::default();
        h.add(5, b"", &mut budget).unwrap();
        assert_eq!(h.finish(&mut budget), Some(sha(b"")));
    }
}
