//! [`NodeCache`]: a bounded cache of decoded internal tree nodes read from redb, in front
//! of [`super::DaStore::state_node`] for the event loop's reads (issue 16 §2: applying a
//! blob walks every changed key's path from the root; the upper levels of the tree are
//! on every path and would otherwise be read and decoded again for every blob).
//!
//! A tree node never changes under its key (the key holds the version that wrote it), so
//! a cached node is never stale; a pruned one is only asked for at a pruned height, which
//! is refused before the tree is read. Two generations approximate LRU: hits in the old
//! generation move to the new one; when the new one is full the old one is dropped. At
//! most [`NODE_CACHE_ENTRIES`] nodes are held.

use std::collections::HashMap;

use jmt::storage::{Node, NodeKey};

/// Most internal nodes held (16,384: the top four levels of the tree, 4,369 nodes, and
/// then the most recently read ones). An internal node takes ~1.2 KiB decoded (16 child
/// slots of 56 bytes, boxed, and its key), so the cache holds at most ~20 MiB.
pub(crate) const NODE_CACHE_ENTRIES: usize = 16 * 1024;

/// The cache (module docs).
#[derive(Debug, Default)]
pub(crate) struct NodeCache {
    new: HashMap<NodeKey, Node>,
    old: HashMap<NodeKey, Node>,
}

impl NodeCache {
    /// The cached node under `key`.
    pub(crate) fn get(&mut self, key: &NodeKey) -> Option<Node> {
        if let Some(n) = self.new.get(key) {
            return Some(n.clone());
        }
        let (key, node) = self.old.remove_entry(key)?;
        self.insert_internal(key, node.clone());
        Some(node)
    }

    /// Caches `node` under `key` if it is an internal node (leaves are read about once
    /// per change of their key: caching them would only push internal nodes out).
    pub(crate) fn insert(&mut self, key: &NodeKey, node: &Node) {
        if matches!(node, Node::Internal(_)) {
            self.insert_internal(key.clone(), node.clone());
        }
    }

    fn insert_internal(&mut self, key: NodeKey, node: Node) {
        if self.new.len() >= NODE_CACHE_ENTRIES / 2 {
            self.old = std::mem::take(&mut self.new);
        }
        self.new.insert(key, node);
    }

    /// Nodes held (both generations).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.new.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jmt::storage::LeafNode;

    fn internal_node() -> Node {
        // The root of a two-key tree is an internal node.
        let store = dsdn_protocols::da::state::MemStore::new();
        let changes = vec![
            (
                dsdn_protocols::da::StateKey::Zone("a".into()),
                Some(vec![1]),
            ),
            (
                dsdn_protocols::da::StateKey::Zone("b".into()),
                Some(vec![2]),
            ),
        ];
        let (_, batch) = dsdn_protocols::da::state::store::tree_update(&store, &changes, 1)
            .expect("tree update");
        batch
            .node_batch
            .nodes()
            .iter()
            .find(|(k, _)| k.nibble_path().num_nibbles() == 0)
            .map(|(_, n)| n.clone())
            .expect("root")
    }

    fn key(version: u64) -> NodeKey {
        borsh::from_slice(&[version.to_le_bytes().as_slice(), &[0; 12]].concat()).expect("key")
    }

    #[test]
    fn holds_internal_nodes_only_and_stays_bounded() {
        let node = internal_node();
        assert!(matches!(node, Node::Internal(_)));
        let mut cache = NodeCache::default();
        let leaf = Node::Leaf(LeafNode::new(
            jmt::KeyHash([1; 32]),
            jmt::ValueHash([2; 32]),
        ));
        cache.insert(&key(0), &leaf);
        assert!(cache.get(&key(0)).is_none());
        for v in 1..=(3 * NODE_CACHE_ENTRIES as u64) {
            cache.insert(&key(v), &node);
            // The first key stays: it is read again and again, as the root's levels are.
            assert!(cache.get(&key(1)).is_some(), "after {v}");
            assert!(cache.len() <= NODE_CACHE_ENTRIES);
        }
        assert!(cache.get(&key(2)).is_none());
        assert_eq!(cache.get(&key(3 * NODE_CACHE_ENTRIES as u64)), Some(node));
    }
}
