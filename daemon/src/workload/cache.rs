//! A small least-recently-used cache of compiled modules, keyed by workload id and bounded
//! both by entry count and by total weight (the compiled image size, in bytes).

use std::collections::VecDeque;

use dsdn_protocols::da::Bytes32;

/// Bounded LRU map: most recently used at the front. Lookups are linear, which is cheaper
/// than hashing for the few dozen entries it holds.
pub(crate) struct Lru<V> {
    cap: usize,
    max_weight: usize,
    weight: usize,
    entries: VecDeque<(Bytes32, V, usize)>,
}

impl<V: Clone> Lru<V> {
    /// An empty cache holding at most `cap` entries (at least one) whose weights sum to at
    /// most `max_weight` (the most recent entry is kept even when it alone is heavier).
    pub(crate) fn new(cap: usize, max_weight: usize) -> Self {
        Lru {
            cap: cap.max(1),
            max_weight,
            weight: 0,
            entries: VecDeque::new(),
        }
    }

    /// The value under `key`, marked as most recently used.
    pub(crate) fn get(&mut self, key: &Bytes32) -> Option<V> {
        let i = self.entries.iter().position(|(k, _, _)| k == key)?;
        let entry = self.entries.remove(i)?;
        let v = entry.1.clone();
        self.entries.push_front(entry);
        Some(v)
    }

    /// Inserts (or refreshes) `key` with its `weight`, evicting least recently used entries
    /// while over the entry or weight bound.
    pub(crate) fn insert(&mut self, key: Bytes32, value: V, weight: usize) {
        if let Some(i) = self.entries.iter().position(|(k, _, _)| *k == key) {
            if let Some((_, _, w)) = self.entries.remove(i) {
                self.weight -= w;
            }
        }
        self.entries.push_front((key, value, weight));
        self.weight += weight;
        while self.entries.len() > self.cap
            || (self.weight > self.max_weight && self.entries.len() > 1)
        {
            match self.entries.pop_back() {
                Some((_, _, w)) => self.weight -= w,
                None => break,
            }
        }
    }

    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u8) -> Bytes32 {
        Bytes32([n; 32])
    }

    #[test]
    fn evicts_the_least_recently_used() {
        let mut c = Lru::new(2, usize::MAX);
        c.insert(k(1), 1, 0);
        c.insert(k(2), 2, 0);
        assert_eq!(c.get(&k(1)), Some(1));
        c.insert(k(3), 3, 0);
        assert_eq!(c.get(&k(2)), None);
        assert_eq!(c.get(&k(1)), Some(1));
        assert_eq!(c.get(&k(3)), Some(3));
        c.insert(k(3), 33, 0);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&k(3)), Some(33));
    }

    #[test]
    fn weight_bound_evicts_and_keeps_the_newest() {
        let mut c = Lru::new(10, 100);
        c.insert(k(1), 1, 40);
        c.insert(k(2), 2, 40);
        assert_eq!(c.get(&k(1)), Some(1));
        c.insert(k(3), 3, 40);
        // 120 > 100: the least recently used (2) goes.
        assert_eq!((c.get(&k(2)), c.len()), (None, 2));
        // Re-inserting replaces the old weight instead of adding to it.
        c.insert(k(3), 3, 60);
        assert_eq!(c.len(), 2);
        // An entry heavier than the bound alone is still kept, alone.
        c.insert(k(4), 4, 500);
        assert_eq!((c.get(&k(4)), c.len()), (Some(4), 1));
    }
}
