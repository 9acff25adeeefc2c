//! `[receipts]` of seeds.toml: optimistic receipts (issue 13 §5, Tahap 14A.2B.2 §2d), owned
//! by the workload service; the whole file is [`crate::seeds::SeedsConfig`].

use std::time::Duration;

use dsdn_bootstrap::config::{whole_secs, KeyErrors};
use dsdn_protocols::receipt::optimistic::MAX_CHALLENGE_WINDOW_MS;
use serde::{Deserialize, Serialize};

/// `[receipts]`: how a coordinator answers submissions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptsConfig {
    /// `optimistic`: answer a submission that does not say otherwise (`POST /v1/workloads`
    /// without `?optimistic=`) with an optimistic receipt, signed by this coordinator alone
    /// as soon as the storage node answered, instead of waiting for the committee's
    /// threshold signature. Default false.
    pub optimistic: bool,
    /// `challenge_window_secs`: the challenge window of the optimistic receipts this
    /// coordinator issues (deadline = issue time + window): a receipt its threshold receipt
    /// has not superseded by then is shown as expired. 1 to 86,400 s; default 600 (10 min).
    pub challenge_window: Duration,
}

impl Default for ReceiptsConfig {
    fn default() -> Self {
        Self {
            optimistic: false,
            challenge_window: Duration::from_secs(600),
        }
    }
}

/// `[receipts]` as written (the section's serde schema, both ways).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawReceipts {
    optimistic: bool,
    challenge_window_secs: u64,
}

impl Default for RawReceipts {
    fn default() -> Self {
        let d = ReceiptsConfig::default();
        Self {
            optimistic: d.optimistic,
            challenge_window_secs: d.challenge_window.as_secs(),
        }
    }
}

dsdn_bootstrap::serialize_as_raw!(ReceiptsConfig);

impl ReceiptsConfig {
    pub(crate) fn to_raw(&self) -> Result<RawReceipts, String> {
        Ok(RawReceipts {
            optimistic: self.optimistic,
            challenge_window_secs: whole_secs(
                "receipts.challenge_window_secs",
                self.challenge_window,
            )?,
        })
    }
}

pub(crate) fn validate(raw: RawReceipts, errs: &mut KeyErrors) -> ReceiptsConfig {
    ReceiptsConfig {
        optimistic: raw.optimistic,
        challenge_window: Duration::from_secs(errs.range(
            "receipts.challenge_window_secs",
            raw.challenge_window_secs,
            1,
            MAX_CHALLENGE_WINDOW_MS / 1000,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::SeedsConfig;

    #[test]
    fn defaults_overrides_and_ranges() {
        let cfg = SeedsConfig::from_toml_str("").unwrap();
        assert_eq!(cfg.receipts, ReceiptsConfig::default());
        assert_eq!(cfg.receipts.challenge_window, Duration::from_secs(600));
        let cfg = SeedsConfig::from_toml_str(
            "[receipts]\noptimistic = true\nchallenge_window_secs = 5\n",
        )
        .unwrap();
        assert!(cfg.receipts.optimistic);
        assert_eq!(cfg.receipts.challenge_window, Duration::from_secs(5));
        let text = toml::to_string(&cfg).unwrap();
        assert_eq!(SeedsConfig::from_toml_str(&text).unwrap(), cfg);
        for bad in ["0", "86401"] {
            let err =
                SeedsConfig::from_toml_str(&format!("[receipts]\nchallenge_window_secs = {bad}\n"))
                    .unwrap_err();
            assert_eq!(err.keys(), ["receipts.challenge_window_secs"]);
        }
    }
}
