//! Channels: the routes that open and delete them (`[CHAN-2]`, `[CHAN-7]`)
//! and id allocation, the lowest free id of 1 or more (`[CHAN-4]`).

use std::collections::BTreeSet;

/// The route that opens a channel (`[CHAN-2]`).
pub const NEW_CHANNEL: &[u8] = b"/sys/new_channel";
/// The route that deletes the channel it arrives on (`[CHAN-7]`).
pub const DELETE_CHANNEL: &[u8] = b"/sys/delete_channel";

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

/// What a connection keeps per channel, indexed by channel id. Ids are
/// given lowest first (`[CHAN-4]`) and bounded by the channel limit, so a
/// table as long as the highest id in use is as small as a map and a
/// lookup is an index: no hashing on every frame.
#[derive(Debug, Clone)]
pub struct ChannelTable<T> {
    slots: Vec<Option<T>>,
}

impl<T> ChannelTable<T> {
    /// A table holding `first` as channel 0.
    pub fn with_channel_zero(first: T) -> ChannelTable<T> {
        ChannelTable { slots: vec![Some(first)] }
    }

    /// The state of channel `id`, if it exists.
    pub fn get(&self, id: u32) -> Option<&T> {
        self.slots.get(id as usize)?.as_ref()
    }

    /// The state of channel `id` to change, if it exists.
    pub fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.slots.get_mut(id as usize)?.as_mut()
    }

    /// Adds channel `id` (an id given out by [`ChannelIds`]), replacing
    /// whatever it held.
    pub fn insert(&mut self, id: u32, value: T) {
        let at = id as usize;
        if at >= self.slots.len() {
            self.slots.resize_with(at + 1, || None);
        }
        self.slots[at] = Some(value);
    }

    /// Forgets channel `id`; the table shrinks past the highest id left.
    pub fn remove(&mut self, id: u32) -> Option<T> {
        let removed = self.slots.get_mut(id as usize)?.take();
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        removed
    }

    /// The channels that exist, lowest id first.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.slots.iter().enumerate().filter_map(|(id, slot)| Some((id as u32, slot.as_ref()?)))
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

    #[test]
    fn a_channel_table_holds_what_exists_and_shrinks() {
        let mut table = ChannelTable::with_channel_zero("zero");
        table.insert(3, "three");
        table.insert(1, "one");
        assert_eq!(table.iter().collect::<Vec<_>>(), vec![(0, &"zero"), (1, &"one"), (3, &"three")]);
        assert_eq!((table.get(2), table.get(3), table.get(u32::MAX)), (None, Some(&"three"), None));
        assert_eq!(table.remove(3), Some("three"));
        assert_eq!(table.slots.len(), 2, "trailing free ids are given back");
        assert_eq!(table.remove(7), None);
        *table.get_mut(1).unwrap() = "uno";
        assert_eq!(table.get(1), Some(&"uno"));
    }
}
