//! `dsdn-agent committee status`: the committee member's view (its slot, the DKG, the DA
//! proposer rotation and the epoch rotation) as text.

use super::commands::to_json;
use super::print_out;

/// `dsdn-agent committee dkg|status [--json]`: members, threshold, epoch, group key, state.
pub(crate) fn committee_status(
    status: &dsdn_daemon::api::CommitteeStatusResponse,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        return print_out(&to_json(status)?);
    }
    let mut out = format!(
        "committee epoch {}: {}-of-{}\nthis node: {} ({})\ngroup key: {}\nmembers:\n",
        status.epoch,
        status.threshold,
        status.members.len(),
        status.me,
        status.state,
        status
            .group_key
            .as_deref()
            .unwrap_or("none (run `dsdn-agent committee dkg`)"),
    );
    for (i, m) in status.members.iter().enumerate() {
        let me = if *m == status.me { "  (this node)" } else { "" };
        out.push_str(&format!("  {:>2}. {m}{me}\n", i + 1));
    }
    if let Some(r) = &status.rotation {
        out.push_str(&rotation_lines(r));
    }
    if let Some(e) = &status.epochs {
        out.push_str(&epoch_lines(e));
    }
    print_out(&out)
}

/// The epoch rotation part of `dsdn-agent committee status`.
fn epoch_lines(e: &dsdn_daemon::api::EpochStatusView) -> String {
    let mut out = format!(
        "epochs: epoch {} in force, phase {}, {} rotation(s), {} failed window(s)\n",
        e.epoch, e.phase, e.rotations, e.failures
    );
    if let Some(n) = e.next_epoch {
        out.push_str(&format!("  next committee: epoch {n}\n"));
    }
    if let Some(h) = e.next_switch_height {
        out.push_str(&format!("  next key signs from height {h}\n"));
    }
    out.push_str(&format!(
        "  handoff opens at {} ms, next epoch starts at {} ms (UNIX)\n",
        e.handoff_opens_ms, e.next_epoch_start_ms
    ));
    if let Some(r) = &e.fallback_reason {
        out.push_str(&format!("  fallback: {r}\n"));
    }
    out
}

/// The DA proposer rotation part of `dsdn-agent committee status`.
fn rotation_lines(r: &dsdn_daemon::api::RotationStatusView) -> String {
    let mut out = format!("DA rotation: {}", r.state);
    if r.height > 0 {
        out.push_str(&format!(
            ", height {} round {}, proposer {}{}",
            r.height,
            r.round,
            r.proposer.as_deref().unwrap_or("?"),
            if r.proposing { " (this node)" } else { "" }
        ));
    }
    out.push('\n');
    if let Some(l) = &r.lock {
        out.push_str(&format!(
            "  locked at round {} on blob {}\n",
            l.round, l.blob
        ));
    }
    if r.state == "active" {
        out.push_str(&format!("  round times out in {} ms\n", r.timeout_in_ms));
    }
    if !r.waiting_for.is_empty() {
        out.push_str(&format!(
            "  no majority: waiting for members {}\n",
            r.waiting_for.join(", ")
        ));
    }
    if let Some(d) = &r.detail {
        out.push_str(&format!("  {d}\n"));
    }
    out
}
