//! Row keys and values of the state tables (layout in [`super`]'s module docs), chosen so
//! that what a height writes lands at the end of its B-tree where it can: a tree node's key
//! starts with its version in big-endian order, a stale row's with the height it is stale
//! since. The keyed-by-hash tables (`state_versions`) and the raw-key table
//! (`state_values`) are random by nature; the raw key rides in the version rows instead of
//! a table of its own.

use dsdn_protocols::da::state::StateHeader;
use jmt::storage::NodeKey;
use jmt::KeyHash;

use super::super::DaStoreError;

pub(super) fn db(e: impl std::fmt::Display) -> DaStoreError {
    DaStoreError::Db(e.to_string())
}

/// `state_versions` key: `key_hash (32 bytes) ‖ height (u64 BE)`.
pub(crate) fn version_key(key_hash: &KeyHash, height: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(&key_hash.0);
    k[32..].copy_from_slice(&height.to_be_bytes());
    k
}

/// The height of a `state_versions` key (0 for a malformed one).
pub(super) fn version_height(key: &[u8]) -> u64 {
    key.get(32..40)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}

/// `state_stale` key of a superseded or removed value: `since (u64 BE) ‖ 0x01 ‖
/// version_key(key_hash, height)`.
pub(super) fn stale_version_key(since: u64, key_hash: &KeyHash, height: u64) -> Vec<u8> {
    let mut s = since.to_be_bytes().to_vec();
    s.push(1);
    s.extend_from_slice(&version_key(key_hash, height));
    s
}

/// `state_stale` key of a tree node: `since (u64 BE) ‖ 0x00 ‖ node_key_bytes(key)`.
pub(super) fn stale_node_key(since: u64, key: &NodeKey) -> Result<Vec<u8>, DaStoreError> {
    let mut k = since.to_be_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&node_key_bytes(key)?);
    Ok(k)
}

/// `state_nodes` key of `key`: `version (u64 BE) ‖ the nibble path's bytes (two nibbles a
/// byte, an odd path's last low nibble 0) ‖ its nibble count (1 byte, ≤ 64)`. Keys sort by
/// version first, so the nodes a height creates are appended and the nodes of old heights
/// are pruned in clustered ranges. Exact inverse: [`node_key_from`].
///
/// # Errors
/// [`DaStoreError::Db`] if the path does not encode (never for a jmt path).
pub(crate) fn node_key_bytes(key: &NodeKey) -> Result<Vec<u8>, DaStoreError> {
    // borsh(NibblePath) = num_nibbles (u64 LE) ‖ bytes length (u32 LE) ‖ bytes.
    let path = borsh::to_vec(key.nibble_path()).map_err(db)?;
    let nibbles = key.nibble_path().num_nibbles();
    let bytes = path
        .get(12..)
        .ok_or_else(|| db("short nibble path encoding"))?;
    let count = u8::try_from(nibbles).map_err(db)?;
    let mut out = Vec::with_capacity(9 + bytes.len());
    out.extend_from_slice(&key.version().to_be_bytes());
    out.extend_from_slice(bytes);
    out.push(count);
    Ok(out)
}

/// Parses [`node_key_bytes`] output (`None` when malformed). Nothing reads node keys
/// back from the table; the tests check the encoding is exact with it.
#[cfg(test)]
pub(crate) fn node_key_from(bytes: &[u8]) -> Option<NodeKey> {
    let version = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    let (&count, path) = bytes.get(8..)?.split_last()?;
    if path.len() != usize::from(count).div_ceil(2) || count > 64 {
        return None;
    }
    // An odd path's last low nibble is 0 (jmt's invariant).
    if count % 2 == 1 && path.last().is_some_and(|b| b & 0x0f != 0) {
        return None;
    }
    let mut borsh_path = u64::from(count).to_le_bytes().to_vec();
    borsh_path.extend_from_slice(&u32::try_from(path.len()).ok()?.to_le_bytes());
    borsh_path.extend_from_slice(path);
    let path: jmt::storage::NibblePath = borsh::from_slice(&borsh_path).ok()?;
    Some(NodeKey::new(version, path))
}

/// A `state_versions` value: `0x00` (removed at that height) or `0x01 ‖ raw key length
/// (u16 BE) ‖ raw key ‖ value` (set). The raw key is what state-sync chunks serve for a
/// tree leaf (its preimage): the version row live at a kept height always exists, so no
/// table of preimages is needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VersionRow<'a> {
    /// The key was removed.
    Removed,
    /// The key was set to `value`; `raw` is its [`dsdn_protocols::da::state::StateKey`]
    /// encoding.
    Set {
        /// The raw key.
        raw: &'a [u8],
        /// The value.
        value: &'a [u8],
    },
}

impl<'a> VersionRow<'a> {
    /// The stored bytes.
    ///
    /// # Errors
    /// [`DaStoreError::Db`] for a raw key longer than 65,535 bytes.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, DaStoreError> {
        match self {
            VersionRow::Removed => Ok(vec![0]),
            VersionRow::Set { raw, value } => {
                let len = u16::try_from(raw.len()).map_err(db)?;
                let mut v = Vec::with_capacity(3 + raw.len() + value.len());
                v.push(1);
                v.extend_from_slice(&len.to_be_bytes());
                v.extend_from_slice(raw);
                v.extend_from_slice(value);
                Ok(v)
            }
        }
    }

    /// Parses stored bytes (`None` when malformed).
    pub(crate) fn decode(v: &'a [u8]) -> Option<VersionRow<'a>> {
        match v.split_first()? {
            (0, []) => Some(VersionRow::Removed),
            (1, rest) => {
                let len = usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?));
                let raw = rest.get(2..2 + len)?;
                let value = rest.get(2 + len..)?;
                Some(VersionRow::Set { raw, value })
            }
            _ => None,
        }
    }
}

/// A `state_roots` row: the state root after a height and the header's event counters
/// then (`None` in rows written before the counters were recorded: 32 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RootRow {
    /// The state root.
    pub(crate) root: [u8; 32],
    /// `(events, ignored)` of the header at that height.
    pub(crate) counters: Option<(u64, u64)>,
}

impl RootRow {
    /// The row of `header`'s height.
    pub(crate) fn of(header: &StateHeader) -> RootRow {
        RootRow {
            root: header.root.0,
            counters: Some((header.events, header.ignored)),
        }
    }

    /// 48 bytes (32 without counters).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = self.root.to_vec();
        if let Some((events, ignored)) = self.counters {
            v.extend_from_slice(&events.to_be_bytes());
            v.extend_from_slice(&ignored.to_be_bytes());
        }
        v
    }

    /// A row of 32 or 48 bytes; `None` for any other length.
    pub(crate) fn decode(v: &[u8]) -> Option<RootRow> {
        let root: [u8; 32] = v.get(..32)?.try_into().ok()?;
        let counters = match v.len() {
            32 => None,
            48 => {
                let n = |r: std::ops::Range<usize>| {
                    v.get(r)
                        .and_then(|b| <[u8; 8]>::try_from(b).ok())
                        .map(u64::from_be_bytes)
                };
                Some((n(32..40)?, n(40..48)?))
            }
            _ => return None,
        };
        Some(RootRow { root, counters })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The path of `nibbles` (each < 16), through its borsh encoding (jmt's constructors
    /// are private).
    fn path(nibbles: &[u8]) -> jmt::storage::NibblePath {
        let bytes: Vec<u8> = nibbles
            .chunks(2)
            .map(|c| c[0] << 4 | c.get(1).copied().unwrap_or(0))
            .collect();
        let mut b = (nibbles.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        b.extend_from_slice(&bytes);
        borsh::from_slice(&b).unwrap()
    }

    #[test]
    fn node_keys_round_trip_and_sort_by_version_first() {
        let keys = [
            NodeKey::new(0, path(&[])),
            NodeKey::new(1, path(&[0xa])),
            NodeKey::new(1, path(&[0xa, 0x0])),
            NodeKey::new(255, path(&[0x1, 0x2, 0x3])),
            NodeKey::new(256, path(&[0xf; 64])),
            NodeKey::new(u64::MAX, path(&[0x0; 63])),
        ];
        for k in &keys {
            let b = node_key_bytes(k).unwrap();
            assert_eq!(node_key_from(&b).as_ref(), Some(k), "{k:?}");
            assert_eq!(b.len(), 9 + k.nibble_path().num_nibbles().div_ceil(2));
        }
        // Big-endian version first: 255 before 256 (little-endian put 256 first).
        let mut sorted: Vec<Vec<u8>> = keys.iter().map(|k| node_key_bytes(k).unwrap()).collect();
        sorted.sort();
        let versions: Vec<u64> = sorted
            .iter()
            .map(|b| node_key_from(b).unwrap().version())
            .collect();
        assert_eq!(versions, [0, 1, 1, 255, 256, u64::MAX]);
        assert!(node_key_from(&[0; 8]).is_none());
        assert!(node_key_from(&[0, 0, 0, 0, 0, 0, 0, 1, 0xab, 3]).is_none());
        assert!(node_key_from(&[0, 0, 0, 0, 0, 0, 0, 1, 0xab, 1]).is_none());
        assert!(node_key_from(&[0, 0, 0, 0, 0, 0, 0, 1, 0xa0, 1]).is_some());
    }

    #[test]
    fn version_rows_round_trip() {
        let set = VersionRow::Set {
            raw: b"\x02abc",
            value: b"value",
        };
        assert_eq!(VersionRow::decode(&set.encode().unwrap()), Some(set));
        let empty = VersionRow::Set {
            raw: b"\x07",
            value: b"",
        };
        assert_eq!(VersionRow::decode(&empty.encode().unwrap()), Some(empty));
        assert_eq!(VersionRow::decode(&[0]), Some(VersionRow::Removed));
        for bad in [&[][..], &[0, 0], &[1, 0], &[1, 0, 5, 1], &[2]] {
            assert_eq!(VersionRow::decode(bad), None, "{bad:?}");
        }
    }
}
