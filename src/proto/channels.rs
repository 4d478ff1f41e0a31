//! Channel id allocation: the lowest free id of 1 or more (`[CHAN-4]`).

use std::collections::BTreeSet;

/// The set of channel ids in use on a connection; channel 0 is always in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelIds {
    used: BTreeSet<u32>,
    limit: u32,
    /// The highest id ever given out.
    highest: u32,
}

impl ChannelIds {
    /// A set holding only channel 0, allowing `limit` channels in all
    /// (channel 0 included, `[CHAN-9]`).
    pub fn new(limit: u32) -> ChannelIds {
        ChannelIds { used: BTreeSet::from([0]), limit: limit.max(1), highest: 0 }
    }

    /// Takes the lowest free id, or `None` when the limit is reached.
    pub fn allocate(&mut self) -> Option<u32> {
        if self.used.len() >= self.limit as usize {
            return None;
        }
        // The used set holds 0..k densely up to the first gap.
        let mut candidate = 1u32;
        for &id in self.used.range(1..) {
            if id != candidate {
                break;
            }
            candidate = candidate.checked_add(1)?;
        }
        self.used.insert(candidate);
        self.highest = self.highest.max(candidate);
        Some(candidate)
    }

    /// Returns `id` to the free pool. Channel 0 is never released.
    pub fn release(&mut self, id: u32) {
        if id != 0 {
            self.used.remove(&id);
        }
    }

    /// The highest id ever given out (0 before any). Ids go lowest first,
    /// so every id up to it was in use at once: it is under the most
    /// channels the connection held open together.
    pub fn highest(&self) -> u32 {
        self.highest
    }

    /// Whether `id` is in use.
    pub fn contains(&self, id: u32) -> bool {
        self.used.contains(&id)
    }

    /// Number of ids in use, channel 0 included.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_id_is_reused() {
        let mut ids = ChannelIds::new(4);
        assert_eq!((ids.allocate(), ids.allocate(), ids.allocate()), (Some(1), Some(2), Some(3)));
        assert_eq!(ids.allocate(), None);
        ids.release(2);
        assert_eq!(ids.allocate(), Some(2));
        ids.release(0);
        assert!(ids.contains(0));
    }
}
