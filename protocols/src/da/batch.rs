//! A pure, bounded batcher: collects items (DA events waiting to be sealed into a blob)
//! and releases them in FIFO batches bounded in bytes and in count.
//!
//! Spec: Tahap 14A §1 (events are published in ordered, bounded blobs) and issue 5 §2
//! (the publisher seals a blob when enough events are queued or the oldest waited long
//! enough). Time is passed in; nothing here sleeps or spawns.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// When a [`Batcher`] releases a batch, and how large a batch may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// A batch is released once the queued sizes sum to at least this many bytes; a batch
    /// never holds more than this many bytes, except a single item larger than it, which
    /// is released alone.
    pub max_bytes: usize,
    /// A batch is released once this many items are queued, and never holds more
    /// (a value of 0 is treated as 1).
    pub max_items: usize,
    /// A batch is released once the oldest queued item has waited this long.
    pub max_delay: Duration,
}

/// [`Batcher::push`] refused an item because the queue holds its maximum number of items.
/// The item is handed back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("batch queue is full")]
pub struct QueueFull<T>(pub T);

#[derive(Debug)]
struct Queued<T> {
    item: T,
    size: usize,
    since: Instant,
}

/// A FIFO queue of items with a size each, released in batches (see [`BatchConfig`]).
///
/// Memory is bounded by `max_queued_items` items ([`Batcher::push`] refuses more).
/// Sizes are whatever unit the caller counts in (the DA publisher passes encoded bytes).
#[derive(Debug)]
pub struct Batcher<T> {
    cfg: BatchConfig,
    max_queued_items: usize,
    queue: VecDeque<Queued<T>>,
    queued_bytes: usize,
}

impl<T> Batcher<T> {
    /// An empty batcher releasing batches per `cfg` and holding at most
    /// `max_queued_items` items.
    pub fn new(cfg: BatchConfig, max_queued_items: usize) -> Self {
        Self {
            cfg,
            max_queued_items,
            queue: VecDeque::new(),
            queued_bytes: 0,
        }
    }

    /// Queues `item` of `size` bytes, received at `now`.
    ///
    /// # Errors
    /// [`QueueFull`] holding `item` when `max_queued_items` items are already queued.
    pub fn push(&mut self, item: T, size: usize, now: Instant) -> Result<(), QueueFull<T>> {
        if self.queue.len() >= self.max_queued_items {
            return Err(QueueFull(item));
        }
        self.queued_bytes = self.queued_bytes.saturating_add(size);
        self.queue.push_back(Queued {
            item,
            size,
            since: now,
        });
        Ok(())
    }

    /// A batch when queued bytes ≥ `max_bytes`, queued items ≥ `max_items`, or the oldest
    /// item has waited ≥ `max_delay` at `now`; `None` otherwise.
    ///
    /// The batch is the longest FIFO prefix within `max_bytes` and `max_items`, and always
    /// at least one item (an item larger than `max_bytes` goes alone). Call repeatedly
    /// until `None` to drain everything that is due.
    pub fn poll(&mut self, now: Instant) -> Option<Vec<T>> {
        let oldest = self.queue.front()?.since;
        let due = self.queued_bytes >= self.cfg.max_bytes
            || self.queue.len() >= self.max_items()
            || now.saturating_duration_since(oldest) >= self.cfg.max_delay;
        if due {
            self.take_batch()
        } else {
            None
        }
    }

    /// Like [`Batcher::poll`] but ignores every trigger: releases one batch (same bounds)
    /// if anything is queued. Call repeatedly to empty the queue (e.g. at shutdown).
    pub fn flush(&mut self) -> Option<Vec<T>> {
        self.take_batch()
    }

    /// When the oldest queued item reaches `max_delay` (a batch is due then at the
    /// latest); `None` when the queue is empty.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue
            .front()
            .map(|q| q.since.checked_add(self.cfg.max_delay).unwrap_or(q.since))
    }

    /// Number of queued items.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Sum of the sizes of the queued items, in bytes.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    fn max_items(&self) -> usize {
        self.cfg.max_items.max(1)
    }

    fn take_batch(&mut self) -> Option<Vec<T>> {
        let first = self.queue.pop_front()?;
        let mut bytes = first.size;
        self.queued_bytes = self.queued_bytes.saturating_sub(first.size);
        let mut batch = vec![first.item];
        while batch.len() < self.max_items() {
            match self.queue.front() {
                Some(next) if bytes.saturating_add(next.size) <= self.cfg.max_bytes => {}
                _ => break,
            }
            let Some(next) = self.queue.pop_front() else {
                break;
            };
            bytes = bytes.saturating_add(next.size);
            self.queued_bytes = self.queued_bytes.saturating_sub(next.size);
            batch.push(next.item);
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn cfg() -> BatchConfig {
        BatchConfig {
            max_bytes: 100,
            max_items: 4,
            max_delay: 2 * SEC,
        }
    }

    #[test]
    fn nothing_before_a_trigger() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(), 16);
        assert_eq!(b.poll(t0), None);
        b.push(1, 10, t0).unwrap();
        b.push(2, 10, t0).unwrap();
        assert_eq!(b.poll(t0 + SEC), None);
        assert_eq!((b.len(), b.queued_bytes(), b.is_empty()), (2, 20, false));
    }

    #[test]
    fn size_trigger_releases_at_most_max_bytes() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(), 16);
        b.push(1, 40, t0).unwrap();
        b.push(2, 40, t0).unwrap();
        assert_eq!(b.poll(t0), None);
        b.push(3, 30, t0).unwrap(); // 110 bytes queued ≥ 100
        assert_eq!(b.poll(t0), Some(vec![1, 2]));
        assert_eq!(b.queued_bytes(), 30);
        assert_eq!(b.poll(t0), None, "30 bytes left, no trigger");
    }

    #[test]
    fn exact_max_bytes_is_one_batch() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(), 16);
        b.push(1, 50, t0).unwrap();
        b.push(2, 50, t0).unwrap();
        assert_eq!(b.poll(t0), Some(vec![1, 2]));
        assert!(b.is_empty());
        assert_eq!(b.queued_bytes(), 0);
    }

    #[test]
    fn count_trigger_releases_max_items() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(), 16);
        for i in 0..5 {
            b.push(i, 1, t0).unwrap();
        }
        assert_eq!(b.poll(t0), Some(vec![0, 1, 2, 3]));
        assert_eq!(b.poll(t0), None);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn delay_trigger_and_next_deadline() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(), 16);
        assert_eq!(b.next_deadline(), None);
        b.push(1, 1, t0).unwrap();
        b.push(2, 1, t0 + SEC).unwrap();
        assert_eq!(b.next_deadline(), Some(t0 + 2 * SEC));
        assert_eq!(b.poll(t0 + 2 * SEC - Duration::from_millis(1)), None);
        assert_eq!(b.poll(t0 + 2 * SEC), Some(vec![1, 2]));
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn oversize_item_goes_alone() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(), 16);
        b.push(1, 10, t0).unwrap();
        b.push(2, 500, t0).unwrap();
        b.push(3, 10, t0).unwrap();
        assert_eq!(b.poll(t0), Some(vec![1]), "the oversize item does not join");
        assert_eq!(b.poll(t0), Some(vec![2]), "alone");
        assert_eq!(b.poll(t0), None);
        assert_eq!(b.flush(), Some(vec![3]));
    }

    #[test]
    fn queue_bound_hands_the_item_back() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(), 2);
        b.push("a", 1, t0).unwrap();
        b.push("b", 1, t0).unwrap();
        assert_eq!(b.push("c", 1, t0), Err(QueueFull("c")));
        assert_eq!((b.len(), b.queued_bytes()), (2, 2));
        assert_eq!(b.flush(), Some(vec!["a", "b"]));
        assert!(b.push("c", 1, t0).is_ok());
    }

    #[test]
    fn flush_is_fifo_and_bounded() {
        let t0 = Instant::now();
        let mut b = Batcher::new(cfg(), 16);
        for i in 0..10 {
            b.push(i, 30, t0 + i as u32 * Duration::from_millis(1))
                .unwrap();
        }
        let mut out = Vec::new();
        while let Some(batch) = b.flush() {
            assert!(batch.len() <= 3, "3 × 30 bytes ≤ 100 < 4 × 30");
            out.extend(batch);
        }
        assert_eq!(out, (0..10).collect::<Vec<_>>());
        assert_eq!(b.flush(), None);
        assert_eq!(b.queued_bytes(), 0);
    }

    #[test]
    fn zero_max_items_means_one() {
        let t0 = Instant::now();
        let mut b = Batcher::new(
            BatchConfig {
                max_items: 0,
                ..cfg()
            },
            4,
        );
        b.push(1, 1, t0).unwrap();
        b.push(2, 1, t0).unwrap();
        assert_eq!(b.poll(t0), Some(vec![1]));
        assert_eq!(b.poll(t0), Some(vec![2]));
    }
}
