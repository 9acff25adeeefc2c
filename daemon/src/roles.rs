//! Daemon modes and the roles they advertise and need (28.1.C §1–§3).
//!
//! A [`Mode`] is what `dsdnd --mode` selects. It decides
//!
//! * the service types the node advertises in its handshake, PEX entries and Kademlia
//!   ([`Mode::services`], 28.1.C §2);
//! * the roles it needs connected, with a minimum count of each ([`Mode::required_roles`],
//!   28.1.C §1), which the peer manager looks up and keeps before it fills the other
//!   slots by score and diversity;
//! * whether it carries DA events ([`Mode::subscribes_da`]).
//!
//! `validator`, `chain` and `ingress` are *discovery-only* roles for now: the daemon
//! advertises them and keeps the peers they need, so the other DSDN components can join
//! the network today; the component itself runs elsewhere.
//!
//! # Required roles (28.1.C §1)
//!
//! | mode            | advertises               | needs, at least                          | why (28.1.C §1)                                         |
//! |-----------------|--------------------------|------------------------------------------|---------------------------------------------------------|
//! | `bootstrap`     | bootstrap                | —                                        | §3: handshake, PEX and Kademlia only                    |
//! | `storage`       | storage                  | coordinator 1, chain 1, storage 2        | registers with a coordinator; replication peers         |
//! | `storage --dc`  | storage, storage-dc      | coordinator 1, chain 1, storage 2        | as storage                                              |
//! | `coordinator`   | coordinator              | coordinator 2, chain 1, storage 1        | committee (TSS/FROST); stake verification; storage      |
//! | `validator`     | validator                | chain 1, coordinator 1, validator 1      | chain and coordinator; other validators for consensus   |
//! | `chain`         | chain                    | chain 2                                  | block and state sync from other chain nodes             |
//! | `ingress`       | ingress                  | coordinator 1, storage 1                 | nearest coordinator and storage nodes                   |
//!
//! **storage-dc counts as storage.** A data-centre storage node is a storage node of the
//! data-centre class, so `--mode storage --dc` advertises *both* `storage` and `storage-dc`.
//! Every "storage ≥ N" need (a storage node's replication peers, a coordinator's or an
//! ingress's storage node) is then met by regular and data-centre nodes alike with a plain
//! `services.contains(storage)` test, while `storage-dc` alone still selects data-centre
//! nodes (`dsdn-agent peers list --type storage-dc`). A data-centre node needs what a
//! regular one needs: its replication peers may be of either class.

use std::fmt;
use std::str::FromStr;

use dsdn_protocols::{ServiceSet, ServiceType};

/// What a daemon runs as (`dsdnd --mode`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Dedicated bootstrap node: handshake, PEX and Kademlia only; stores no data, joins
    /// no committee, carries no DA events.
    Bootstrap,
    /// Storage node (`--dc`: data-centre storage node).
    Storage,
    /// Coordinator (publishes DA events when its key is the DA authority).
    Coordinator,
    /// Validator (discovery only: advertises the role and keeps its peers).
    Validator,
    /// Chain node (discovery only).
    Chain,
    /// HTTP ingress gateway (discovery only).
    Ingress,
}

/// A name that is not a [`Mode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode {0:?} (expected one of bootstrap, storage, coordinator, validator, chain, ingress)")]
pub struct UnknownMode(pub String);

/// `--dc` given with a mode other than `storage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("--dc applies to --mode storage only, not to --mode {0}")]
pub struct DcNotStorage(pub Mode);

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 6] = [
        Mode::Bootstrap,
        Mode::Storage,
        Mode::Coordinator,
        Mode::Validator,
        Mode::Chain,
        Mode::Ingress,
    ];

    /// The `--mode` value: `bootstrap`, `storage`, `coordinator`, `validator`, `chain` or
    /// `ingress`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Bootstrap => "bootstrap",
            Mode::Storage => "storage",
            Mode::Coordinator => "coordinator",
            Mode::Validator => "validator",
            Mode::Chain => "chain",
            Mode::Ingress => "ingress",
        }
    }

    /// The service types advertised in this mode (see the table in the module
    /// documentation). `dc` (data centre) only changes `storage`; [`Mode::check_dc`]
    /// refuses it elsewhere.
    pub fn services(&self, dc: bool) -> ServiceSet {
        match (self, dc) {
            (Mode::Bootstrap, _) => ServiceSet::from_types([ServiceType::Bootstrap]),
            (Mode::Storage, false) => ServiceSet::from_types([ServiceType::Storage]),
            (Mode::Storage, true) => {
                ServiceSet::from_types([ServiceType::Storage, ServiceType::StorageDc])
            }
            (Mode::Coordinator, _) => ServiceSet::from_types([ServiceType::Coordinator]),
            (Mode::Validator, _) => ServiceSet::from_types([ServiceType::Validator]),
            (Mode::Chain, _) => ServiceSet::from_types([ServiceType::Chain]),
            (Mode::Ingress, _) => ServiceSet::from_types([ServiceType::Ingress]),
        }
    }

    /// Whether `--dc` is allowed with this mode (storage only).
    ///
    /// # Errors
    /// [`DcNotStorage`] when `dc` is set and the mode is not `storage`.
    pub fn check_dc(&self, dc: bool) -> Result<(), DcNotStorage> {
        if dc && *self != Mode::Storage {
            return Err(DcNotStorage(*self));
        }
        Ok(())
    }

    /// The roles this mode needs connected and the minimum count of each, for
    /// `NodeConfig::required_roles` (the table in the module documentation; the same for
    /// `storage` with or without `--dc`). Empty for `bootstrap`.
    pub fn required_roles(&self) -> Vec<(ServiceType, usize)> {
        use ServiceType::{Chain, Coordinator, Storage, Validator};
        match self {
            Mode::Bootstrap => Vec::new(),
            Mode::Storage => vec![(Coordinator, 1), (Chain, 1), (Storage, 2)],
            Mode::Coordinator => vec![(Coordinator, 2), (Chain, 1), (Storage, 1)],
            Mode::Validator => vec![(Chain, 1), (Coordinator, 1), (Validator, 1)],
            Mode::Chain => vec![(Chain, 2)],
            Mode::Ingress => vec![(Coordinator, 1), (Storage, 1)],
        }
    }

    /// Whether the node subscribes to the DA events topic: every mode but `bootstrap`
    /// (a dedicated bootstrap node subscribes to no data topic, 28.1.C §3).
    pub fn subscribes_da(&self) -> bool {
        *self != Mode::Bootstrap
    }

    /// True for `validator`, `chain` and `ingress`: the daemon only advertises the role
    /// and keeps the peers it needs; the component itself runs elsewhere.
    pub fn is_discovery_only(&self) -> bool {
        matches!(self, Mode::Validator | Mode::Chain | Mode::Ingress)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = UnknownMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    fn needs(mode: Mode, t: ServiceType) -> usize {
        mode.required_roles()
            .into_iter()
            .find(|(r, _)| *r == t)
            .map_or(0, |(_, n)| n)
    }

    #[test]
    fn names_round_trip_and_match_clap() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>(), Ok(m));
            assert_eq!(m.to_string(), m.as_str());
            let pv = m.to_possible_value().expect("every mode is a --mode value");
            assert_eq!(pv.get_name(), m.as_str());
        }
        assert_eq!(Mode::value_variants().len(), Mode::ALL.len());
        assert_eq!("miner".parse::<Mode>(), Err(UnknownMode("miner".into())));
    }

    #[test]
    fn each_mode_advertises_its_own_service_type() {
        let own = [
            (Mode::Bootstrap, ServiceType::Bootstrap),
            (Mode::Storage, ServiceType::Storage),
            (Mode::Coordinator, ServiceType::Coordinator),
            (Mode::Validator, ServiceType::Validator),
            (Mode::Chain, ServiceType::Chain),
            (Mode::Ingress, ServiceType::Ingress),
        ];
        for (mode, t) in own {
            assert_eq!(mode.services(false), ServiceSet::from_types([t]), "{mode}");
        }
    }

    #[test]
    fn dc_storage_advertises_storage_and_storage_dc_and_only_storage_takes_dc() {
        let dc = Mode::Storage.services(true);
        assert_eq!(dc.names(), ["storage", "storage-dc"]);
        assert!(Mode::Storage.check_dc(true).is_ok());
        for m in Mode::ALL {
            assert!(m.check_dc(false).is_ok());
            if m != Mode::Storage {
                let err = m.check_dc(true).expect_err("dc refused");
                assert!(err.to_string().contains(m.as_str()), "{err}");
            }
        }
        // Same needs with or without --dc: required_roles does not depend on it.
        assert_eq!(needs(Mode::Storage, ServiceType::Storage), 2);
    }

    #[test]
    fn required_roles_follow_28_1_c_section_1() {
        use ServiceType::*;
        let table: [(Mode, &[(ServiceType, usize)]); 6] = [
            (Mode::Bootstrap, &[]),
            (Mode::Storage, &[(Coordinator, 1), (Chain, 1), (Storage, 2)]),
            (
                Mode::Coordinator,
                &[(Coordinator, 2), (Chain, 1), (Storage, 1)],
            ),
            (
                Mode::Validator,
                &[(Chain, 1), (Coordinator, 1), (Validator, 1)],
            ),
            (Mode::Chain, &[(Chain, 2)]),
            (Mode::Ingress, &[(Coordinator, 1), (Storage, 1)]),
        ];
        for (mode, want) in table {
            assert_eq!(mode.required_roles(), want.to_vec(), "{mode}");
        }
        for m in Mode::ALL {
            let roles = m.required_roles();
            // No role listed twice, no zero minimum, never a bootstrap node required.
            for (i, (t, n)) in roles.iter().enumerate() {
                assert!(*n >= 1, "{m}: {t} with minimum 0");
                assert!(*t != Bootstrap, "{m} requires bootstrap nodes");
                assert!(roles[i + 1..].iter().all(|(u, _)| u != t), "{m}: {t} twice");
            }
        }
        // Spot checks of the spec's sentences.
        assert!(needs(Mode::Validator, Chain) >= 1 && needs(Mode::Validator, Coordinator) >= 1);
        assert!(
            needs(Mode::Coordinator, Coordinator) >= 2,
            "a committee has peers"
        );
        assert_eq!(
            needs(Mode::Storage, StorageDc),
            0,
            "storage-dc counts as storage"
        );
    }

    #[test]
    fn only_bootstrap_skips_da_and_discovery_only_roles() {
        for m in Mode::ALL {
            assert_eq!(m.subscribes_da(), m != Mode::Bootstrap, "{m}");
        }
        let discovery: Vec<Mode> = Mode::ALL
            .into_iter()
            .filter(Mode::is_discovery_only)
            .collect();
        assert_eq!(discovery, [Mode::Validator, Mode::Chain, Mode::Ingress]);
    }
}
