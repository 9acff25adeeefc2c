//! The binary merkle tree of an execution trace (Tahap 18.8 §1, "Execution Trace
//! Merkleization").
//!
//! The tree is the one of RFC 6962 / RFC 9162 §2.1 (Certificate Transparency), with SHA-256:
//!
//! - the root of zero leaves is `SHA-256("")`;
//! - a leaf is hashed as `SHA-256(0x00 || leaf)`;
//! - an interior node is hashed as `SHA-256(0x01 || left || right)`;
//! - a list of `n > 1` leaves is split at `k`, the largest power of two smaller than `n`:
//!   the first `k` leaves form the left subtree and the other `n - k` the right one.
//!
//! Odd counts therefore need no padding or duplication (which would let two different
//! lists share a root), and the distinct leaf and node prefixes keep a leaf from being
//! passed off as an interior node. [`inclusion_proof`] and [`verify_inclusion`] give and
//! check the audit path of one leaf, the building block of a checkpoint dispute.

use sha2::{Digest, Sha256};

use crate::da::Bytes32;

/// Prefix of a leaf hash (RFC 6962 §2.1).
pub const LEAF_PREFIX: u8 = 0x00;

/// Prefix of an interior node hash (RFC 6962 §2.1).
pub const NODE_PREFIX: u8 = 0x01;

/// Hash of one leaf: `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &Bytes32) -> Bytes32 {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(leaf.0);
    Bytes32(h.finalize().into())
}

/// Hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Bytes32, right: &Bytes32) -> Bytes32 {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left.0);
    h.update(right.0);
    Bytes32(h.finalize().into())
}

/// Largest power of two strictly smaller than `n` (`n >= 2`).
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1usize << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// Merkle root of `leaves` (each leaf a 32-byte checkpoint hash).
///
/// Zero leaves give `SHA-256("")`; one leaf gives its [`leaf_hash`]. Runs in `O(n)` hashes
/// and `O(log n)` stack.
pub fn merkle_root(leaves: &[Bytes32]) -> Bytes32 {
    match leaves.len() {
        0 => Bytes32(Sha256::digest([]).into()),
        1 => leaf_hash(&leaves[0]),
        n => {
            let k = split_point(n);
            node_hash(&merkle_root(&leaves[..k]), &merkle_root(&leaves[k..]))
        }
    }
}

/// Audit path of leaf `index` in the tree of `leaves` (RFC 6962 §2.1.1 `PATH`), from the
/// leaf's sibling up to the root's child: `O(log n)` hashes.
///
/// Returns `None` when `index >= leaves.len()`.
pub fn inclusion_proof(leaves: &[Bytes32], index: usize) -> Option<Vec<Bytes32>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    path_into(leaves, index, &mut path);
    Some(path)
}

fn path_into(leaves: &[Bytes32], index: usize, path: &mut Vec<Bytes32>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if index < k {
        path_into(&leaves[..k], index, path);
        path.push(merkle_root(&leaves[k..]));
    } else {
        path_into(&leaves[k..], index - k, path);
        path.push(merkle_root(&leaves[..k]));
    }
}

/// Checks that `leaf` is leaf number `index` of a tree of `size` leaves with root `root`,
/// given its audit path `proof` (RFC 9162 §2.1.3.2).
///
/// Returns `false` for `index >= size`, a path of the wrong length, or a mismatch. `size`
/// must come from a trusted source (the commitment's `checkpoints`): as in RFC 9162, some
/// paths are the same in trees of different sizes.
pub fn verify_inclusion(
    root: &Bytes32,
    leaf: &Bytes32,
    index: u64,
    size: u64,
    proof: &[Bytes32],
) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = leaf_hash(leaf);
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Bytes32> {
        (0..n)
            .map(|i| Bytes32(Sha256::digest((i as u64).to_le_bytes()).into()))
            .collect()
    }

    #[test]
    fn empty_tree_is_hash_of_nothing() {
        assert_eq!(merkle_root(&[]).0, <[u8; 32]>::from(Sha256::digest(b"")));
    }

    #[test]
    fn one_leaf_is_its_leaf_hash_not_the_leaf() {
        let l = leaves(1);
        assert_eq!(merkle_root(&l), leaf_hash(&l[0]));
        assert_ne!(merkle_root(&l), l[0]);
    }

    #[test]
    fn small_trees_have_the_rfc_6962_shape() {
        let l = leaves(5);
        let h: Vec<_> = l.iter().map(leaf_hash).collect();
        let two = node_hash(&h[0], &h[1]);
        assert_eq!(merkle_root(&l[..2]), two);
        // Three leaves: ((0,1),2) — the odd leaf is promoted, not duplicated.
        assert_eq!(merkle_root(&l[..3]), node_hash(&two, &h[2]));
        // Five leaves: (((0,1),(2,3)),4).
        let four = node_hash(&two, &node_hash(&h[2], &h[3]));
        assert_eq!(merkle_root(&l), node_hash(&four, &h[4]));
    }

    #[test]
    fn duplicating_the_last_leaf_changes_the_root() {
        let mut l = leaves(3);
        let r3 = merkle_root(&l);
        l.push(l[2]);
        assert_ne!(merkle_root(&l), r3);
    }

    #[test]
    fn a_leaf_is_not_an_interior_node() {
        // A two-leaf tree's root must differ from the one-leaf tree whose leaf is the
        // concatenation's hash — the prefixes separate the domains.
        let l = leaves(2);
        let inner = node_hash(&leaf_hash(&l[0]), &leaf_hash(&l[1]));
        assert_ne!(merkle_root(&[inner]), merkle_root(&l));
    }

    #[test]
    fn every_proof_verifies_and_tampering_fails() {
        for n in 1..=33 {
            let l = leaves(n);
            let root = merkle_root(&l);
            for i in 0..n {
                let proof = inclusion_proof(&l, i).unwrap();
                assert!(verify_inclusion(&root, &l[i], i as u64, n as u64, &proof));
                // Wrong index, wrong size, wrong leaf, truncated or extended path.
                if n > 1 {
                    assert!(!verify_inclusion(
                        &root,
                        &l[i],
                        ((i + 1) % n) as u64,
                        n as u64,
                        &proof
                    ));
                    assert!(!verify_inclusion(
                        &root,
                        &l[(i + 1) % n],
                        i as u64,
                        n as u64,
                        &proof
                    ));
                    assert!(!verify_inclusion(
                        &root,
                        &l[i],
                        i as u64,
                        n as u64,
                        &proof[1..]
                    ));
                }
                // (The size is not re-checked against a different size: a leftmost path
                // is the same in trees of 6 and 7 leaves, as in RFC 9162. The size comes
                // from the signed commitment's `checkpoints`.)
                let mut longer = proof.clone();
                longer.push(root);
                assert!(!verify_inclusion(&root, &l[i], i as u64, n as u64, &longer));
            }
            assert!(inclusion_proof(&l, n).is_none());
            assert!(!verify_inclusion(&root, &l[0], n as u64, n as u64, &[]));
        }
    }

    proptest! {
        #[test]
        fn root_is_deterministic_and_sensitive(
            raw in proptest::collection::vec(any::<[u8; 32]>(), 0..70),
            flip in any::<(usize, u8)>(),
        ) {
            let l: Vec<Bytes32> = raw.into_iter().map(Bytes32).collect();
            prop_assert_eq!(merkle_root(&l), merkle_root(&l.clone()));
            if !l.is_empty() {
                let mut m = l.clone();
                let i = flip.0 % m.len();
                m[i].0[0] ^= flip.1 | 1;
                prop_assert_ne!(merkle_root(&m), merkle_root(&l));
                let proof = inclusion_proof(&l, i).unwrap();
                prop_assert!(verify_inclusion(&merkle_root(&l), &l[i], i as u64, l.len() as u64, &proof));
            }
        }
    }
}
