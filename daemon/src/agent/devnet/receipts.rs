//! PHASE HOOK: receipts. Runs after the sample DA events were published and reached every
//! node; empty for now.

use dsdn_daemon::localnet::LocalNet;

use super::committee::CommitteeView;

/// **Phase hook — not implemented yet.** Called by `dsdn-agent devnet` once the sample DA
/// events are sealed (by the committee when there is one) and applied on every node,
/// before the live table. It is the place for workload submission and the receipts the
/// committee threshold-signs for it; it currently does nothing and succeeds.
///
/// `net` is the running devnet (its DA proposer is [`LocalNet::coordinator`]); `committee`
/// is the committee (members, threshold, epoch, group key), `None` with a single
/// coordinator.
///
/// # Errors
/// None yet; an implementation returns why receipts could not be produced.
pub(super) async fn produce_receipts(
    net: &LocalNet,
    committee: Option<&CommitteeView>,
) -> anyhow::Result<()> {
    let _ = (net, committee);
    Ok(())
}
