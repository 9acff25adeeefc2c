//! A small least-recently-used cache of compiled modules, keyed by workload id.

use std::collections::VecDeque;

use dsdn_protocols::da::Bytes32;

/// Bounded LRU map: most recently used at the front. Lookups are linear, which is cheaper
/// than hashing for the few dozen entries it holds.
pub(crate) struct Lru<V> {
    cap: usize,
    entries: VecDeque<(Bytes32, V)>,
}

impl<V: Clone> Lru<V> {
    /// An empty cache holding at most `cap` entries (at least one).
    pub(crate) fn new(cap: usize) -> Self {
        Lru {
            cap: cap.max(1),
            entries: VecDeque::new(),
        }
    }

    /// The value under `key`, marked as most recently used.
    pub(crate) fn get(&mut self, key: &Bytes32) -> Option<V> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        let entry = self.entries.remove(i)?;
        let v = entry.1.clone();
        self.entries.push_front(entry);
        Some(v)
    }

    /// Inserts (or refreshes) `key`, evicting the least recently used entry when full.
    pub(crate) fn insert(&mut self, key: Bytes32, value: V) {
        if let Some(i) = self.entries.iter().position(|(k, _)| *k == key) {
            self.entries.remove(i);
        }
        self.entries.push_front((key, value));
        self.entries.truncate(self.cap);
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

    #[test]
    fn evicts_the_least_recently_used() {
        let k = |n: u8| Bytes32([n; 32]);
        let mut c = Lru::new(2);
        c.insert(k(1), 1);
        c.insert(k(2), 2);
        assert_eq!(c.get(&k(1)), Some(1));
        c.insert(k(3), 3);
        assert_eq!(c.get(&k(2)), None);
        assert_eq!(c.get(&k(1)), Some(1));
        assert_eq!(c.get(&k(3)), Some(3));
        c.insert(k(3), 33);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&k(3)), Some(33));
    }
}
