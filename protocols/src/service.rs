//! Service types: the roles a node advertises (28.1.C §2).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One role a node advertises in the handshake, in PEX entries and in peers.dat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceType {
    /// Dedicated bootstrap node: handshake, PEX and Kademlia only.
    Bootstrap,
    /// Regular storage node.
    Storage,
    /// Data-centre storage node.
    StorageDc,
    /// Workload coordinator (member of the coordinator committee).
    Coordinator,
    /// Consensus and validation.
    Validator,
    /// Chain node (block production, state).
    Chain,
    /// HTTP ingress gateway.
    Ingress,
}

impl ServiceType {
    /// Every service type, in bit order.
    pub const ALL: [ServiceType; 7] = [
        ServiceType::Bootstrap,
        ServiceType::Storage,
        ServiceType::StorageDc,
        ServiceType::Coordinator,
        ServiceType::Validator,
        ServiceType::Chain,
        ServiceType::Ingress,
    ];

    /// The lowercase name: `bootstrap`, `storage`, `storage-dc`, `coordinator`, `validator`,
    /// `chain`, `ingress`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ServiceType::Bootstrap => "bootstrap",
            ServiceType::Storage => "storage",
            ServiceType::StorageDc => "storage-dc",
            ServiceType::Coordinator => "coordinator",
            ServiceType::Validator => "validator",
            ServiceType::Chain => "chain",
            ServiceType::Ingress => "ingress",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a [`ServiceType`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown service type {0:?} (expected one of bootstrap, storage, storage-dc, coordinator, validator, chain, ingress)")]
pub struct UnknownServiceType(pub String);

impl FromStr for ServiceType {
    type Err = UnknownServiceType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownServiceType(s.to_owned()))
    }
}

/// A set of [`ServiceType`]s, encoded on the wire as a `u16` bit set.
///
/// Unknown bits received from newer peers are kept (so they survive a round trip through
/// peers.dat) but are not reported by [`ServiceSet::iter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServiceSet(u16);

impl ServiceSet {
    /// The empty set.
    pub const EMPTY: ServiceSet = ServiceSet(0);

    /// Builds a set from the given types.
    pub fn from_types(types: impl IntoIterator<Item = ServiceType>) -> Self {
        let mut set = ServiceSet::EMPTY;
        for t in types {
            set.insert(t);
        }
        set
    }

    /// The raw bit set.
    pub fn bits(&self) -> u16 {
        self.0
    }

    /// Wraps a raw bit set (unknown bits are kept).
    pub fn from_bits(bits: u16) -> Self {
        ServiceSet(bits)
    }

    /// Adds a type.
    pub fn insert(&mut self, t: ServiceType) {
        self.0 |= t.bit();
    }

    /// True when `t` is in the set.
    pub fn contains(&self, t: ServiceType) -> bool {
        self.0 & t.bit() != 0
    }

    /// True when no known type is in the set.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The known types in the set, in [`ServiceType::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = ServiceType> + '_ {
        ServiceType::ALL.into_iter().filter(|t| self.contains(*t))
    }

    /// The lowercase names of the known types in the set.
    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(|t| t.as_str()).collect()
    }
}

impl fmt::Display for ServiceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip() {
        for t in ServiceType::ALL {
            assert_eq!(t.as_str().parse::<ServiceType>().unwrap(), t);
        }
        assert!("miner".parse::<ServiceType>().is_err());
    }

    proptest! {
        #[test]
        fn set_round_trips_through_cbor(bits in any::<u16>()) {
            let set = ServiceSet::from_bits(bits);
            let bytes = crate::codec::encode(&set, 16).unwrap();
            prop_assert_eq!(crate::codec::decode::<ServiceSet>(&bytes, 16).unwrap(), set);
            prop_assert!(set.iter().all(|t| set.contains(t)));
        }
    }
}
