//! [`ReadSize`]: how much room to give the next read of a stream, starting
//! at 1 KiB (a data-channel message carries at most 1,024 payload bytes)
//! and doubling while reads fill it. An idle session (most of them, at
//! scale) keeps 1 KiB per direction instead of a buffer sized for bulk
//! transfers; a bulk one reaches the full size after a few reads.

/// The room to give the next read: [`ReadSize::MIN`] at first, doubled
/// (up to the maximum) each time a read fills it.
#[derive(Debug, Clone, Copy)]
pub struct ReadSize {
    next: usize,
    max: usize,
}

impl ReadSize {
    /// Where every stream starts.
    pub const MIN: usize = 1024;

    /// Starts at [`ReadSize::MIN`] (or `max` when smaller), grows to `max`.
    pub fn up_to(max: usize) -> Self {
        Self {
            next: Self::MIN.min(max),
            max,
        }
    }

    /// The room for the next read.
    pub fn get(&self) -> usize {
        self.next
    }

    /// Notes a read of `n` bytes into room of [`ReadSize::get`]: a full
    /// read doubles the room for the next one.
    pub fn read(&mut self, n: usize) {
        if n >= self.next {
            self.next = (self.next * 2).min(self.max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ReadSize;

    #[test]
    fn grows_while_reads_fill_it_and_stops_at_the_maximum() {
        let mut size = ReadSize::up_to(32 * 1024);
        assert_eq!(size.get(), 1024);
        size.read(100);
        assert_eq!(size.get(), 1024);
        size.read(1024);
        assert_eq!(size.get(), 2048);
        size.read(2048);
        size.read(4096);
        assert_eq!(size.get(), 8192);
        size.read(8192);
        size.read(16384);
        assert_eq!(size.get(), 32 * 1024);
        size.read(32 * 1024);
        assert_eq!(size.get(), 32 * 1024);
        assert_eq!(ReadSize::up_to(500).get(), 500);
    }
}
