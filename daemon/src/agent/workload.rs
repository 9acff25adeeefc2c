//! `dsdn-agent workload submit` and `dsdn-agent receipt show|verify` (issue 6, Tahap 14C).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;
use dsdn_daemon::api::ReceiptResponse;
use dsdn_daemon::client::ApiClient;
use dsdn_daemon::workload::{WorkloadRuntime, NETWORK_LIMITS};
use dsdn_protocols::committee::GroupKey;
use dsdn_protocols::receipt::{sha256, workload_id, ExecutionCommitment, ReceiptV1};
use dsdn_protocols::workload::WorkloadSubmission;
use ed25519_dalek::SigningKey;

use super::commands::to_json;
use super::print_out;
use super::table::{format_unix_utc, render_table, short_hex, short_id};

/// `dsdn-agent workload …`.
#[derive(Debug, Subcommand)]
pub(crate) enum WorkloadCommand {
    /// Hand a WASM workload to a coordinator (the node at --api): a storage node not
    /// operated by the submitter executes it, the committee threshold-signs the receipt.
    /// Prints the receipt and the output. With --optimistic the coordinator answers at once
    /// with a receipt signed by itself alone and a challenge window; the committee's
    /// threshold receipt supersedes it later (`receipt show` tells which one a node has).
    Submit {
        /// The module: WebAssembly binary (.wasm) or text (.wat).
        #[arg(value_name = "MODULE.wasm")]
        module: PathBuf,
        /// The input file (at most 1 MiB) [default: empty input].
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// The submitter's key: a node key file (64 hex characters, like
        /// `<data dir>/node.key`). The node with that key never executes the workload
        /// (anti-self-dealing) [default: a fresh key for this submission].
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// The submission nonce [default: the current time in nanoseconds].
        #[arg(long)]
        nonce: Option<u64>,
        /// Ask for an optimistic receipt: answered as soon as the coordinator signed the
        /// storage node's receipt, valid until the end of its challenge window unless the
        /// committee's threshold receipt supersedes it [default: the coordinator's
        /// `[receipts] optimistic`].
        #[arg(long, conflicts_with = "threshold")]
        optimistic: bool,
        /// Wait for the committee's threshold receipt, whatever the coordinator's default.
        #[arg(long)]
        threshold: bool,
        /// Print the answer as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// `dsdn-agent receipt …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ReceiptCommand {
    /// List the receipts the node accepted most recently, newest first.
    List {
        /// How many (at most 100).
        #[arg(long, default_value_t = 20)]
        count: usize,
        /// Print them as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show a receipt the node accepted.
    Show {
        /// The receipt id (64 hex characters) or a unique prefix of at least 6, e.g. the 12
        /// the devnet prints.
        id: String,
        /// Print the receipt as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Verify a receipt here (group signature, node signature, commitment consistency; for
    /// an optimistic receipt the coordinator's signature instead of the group's); with
    /// --reexecute also run the workload again and compare the commitments: a
    /// mismatch is evidence of fraud (exit code 3).
    Verify {
        /// The receipt id (64 hex characters) or a unique prefix of at least 6.
        id: String,
        /// Re-run the workload with the network's limits and compare commitments.
        #[arg(long, requires = "module")]
        reexecute: bool,
        /// The module (.wasm or .wat), for --reexecute.
        #[arg(long, value_name = "FILE")]
        module: Option<PathBuf>,
        /// The input file, for --reexecute [default: empty input].
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// The group key to verify against (64 hex) [default: the key of the receipt's
        /// committee epoch as the node's DA log records it (the genesis DA authority
        /// before the first rotation); else the node's DA authority; on a committee
        /// member without one, the committee's group key].
        #[arg(long, value_name = "HEX")]
        group_key: Option<String>,
    },
}

/// Exit code of `receipt verify` when the receipt does not hold.
const EXIT_INVALID: u8 = 2;
/// Exit code of `receipt verify --reexecute` when the commitments differ (fraud).
const EXIT_FRAUD: u8 = 3;

/// Reads a module: WebAssembly text when it starts with `(` (after whitespace), else
/// binary.
pub(crate) fn read_module(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'(') {
        let text = String::from_utf8(bytes).with_context(|| {
            format!("{} is neither WebAssembly binary nor text", path.display())
        })?;
        return wat::parse_str(&text)
            .with_context(|| format!("{} is not valid WebAssembly text", path.display()));
    }
    Ok(bytes)
}

fn read_input(path: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match path {
        Some(p) => std::fs::read(p).with_context(|| format!("cannot read {}", p.display())),
        None => Ok(Vec::new()),
    }
}

fn read_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{}: 64 hex characters expected", path.display()))?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Runs `dsdn-agent workload …`.
pub(crate) async fn workload(client: &ApiClient, cmd: WorkloadCommand) -> anyhow::Result<ExitCode> {
    let WorkloadCommand::Submit {
        module,
        input,
        key,
        nonce,
        optimistic,
        threshold,
        json,
    } = cmd;
    let choice = match (optimistic, threshold) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let module = read_module(&module)?;
    let input = read_input(input.as_deref())?;
    let key = match key {
        Some(path) => read_key(&path)?,
        None => SigningKey::from_bytes(&rand::random::<[u8; 32]>()),
    };
    let nonce = nonce.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let network = client.status().await?.network;
    let submission = WorkloadSubmission::sign(&key, &network, module, input, nonce)
        .map_err(|e| anyhow::anyhow!("cannot build the submission: {e}"))?;
    let answer = client.submit_workload_with(&submission, choice).await?;
    if json {
        print_out(&to_json(&answer)?)?;
    } else {
        let mut out = receipt_text(&answer.receipt);
        out.push_str(&format!("output      {}\n", answer.output));
        print_out(&out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The receipt as aligned `name value` lines.
/// `receipt list` as a table that fits 80 columns: short ids (a prefix `receipt show`
/// takes), the executing node, fuel and time.
pub(crate) fn receipt_table(list: &[ReceiptResponse]) -> String {
    if list.is_empty() {
        return "no receipts accepted since this node started\n".to_owned();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            vec![
                short_hex(&r.receipt_id),
                short_hex(&r.workload_id),
                short_id(&r.node),
                r.fuel_used.to_string(),
                format!("{} ms", r.wall_time_ms),
                r.status.clone(),
            ]
        })
        .collect();
    render_table(
        &["RECEIPT", "WORKLOAD", "NODE", "FUEL", "TIME", "STATUS"],
        &rows,
    )
}

/// What a receipt is worth, in words: `threshold (group key …)`, `optimistic (challenge
/// window until …, coordinator …)`, `optimistic, expired unconfirmed (…)` or `optimistic,
/// challenged (…)`.
pub(crate) fn status_text(r: &ReceiptResponse) -> String {
    let until = r
        .challenge_deadline_ms
        .map_or_else(|| "?".to_owned(), |ms| format_unix_utc(ms / 1000));
    let by = r.coordinator.as_deref().unwrap_or("?");
    match r.status.as_str() {
        "threshold" => format!("threshold (group key {})", r.group_key),
        "optimistic" => {
            format!("optimistic (challenge window until {until}, signed by coordinator {by})")
        }
        "expired" => format!(
            "optimistic, expired unconfirmed (challenge window ended {until} without the threshold receipt; signed by coordinator {by})"
        ),
        "challenged" => format!(
            "optimistic, challenged (the committee signed another commitment for this job: dsdn-agent disputes; signed by coordinator {by})"
        ),
        other => other.to_owned(),
    }
}

pub(crate) fn receipt_text(r: &ReceiptResponse) -> String {
    let rows = [
        ("status", status_text(r)),
        ("receipt", r.receipt_id.clone()),
        ("hash", r.receipt_hash.clone()),
        ("workload", r.workload_id.clone()),
        ("node", r.node.clone()),
        ("submitter", r.submitter.clone()),
        ("nonce", r.nonce.to_string()),
        ("input", r.input_hash.clone()),
        ("output hash", r.output_hash.clone()),
        ("state before", r.state_root_before.clone()),
        ("state after", r.state_root_after.clone()),
        (
            "trace root",
            format!("{} ({} checkpoints)", r.trace_root, r.checkpoints),
        ),
        (
            "usage",
            format!(
                "{} fuel, {} bytes peak memory, {} ms",
                r.fuel_used, r.memory_peak_bytes, r.wall_time_ms
            ),
        ),
        (
            "committee",
            format!("epoch {}, group key {}", r.epoch, r.group_key),
        ),
        (
            "signers",
            if r.is_optimistic() {
                "none yet (optimistic)".to_owned()
            } else {
                r.signers.join(", ")
            },
        ),
    ];
    rows.iter().map(|(k, v)| format!("{k:<11} {v}\n")).collect()
}

/// Runs `dsdn-agent receipt …`.
pub(crate) async fn receipt(client: &ApiClient, cmd: ReceiptCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ReceiptCommand::List { count, json } => {
            let list = client.receipts(count).await?;
            print_out(&if json {
                to_json(&list)?
            } else {
                receipt_table(&list)
            })?;
            Ok(ExitCode::SUCCESS)
        }
        ReceiptCommand::Show { id, json } => {
            let r = client.receipt(&id).await?;
            print_out(&if json { to_json(&r)? } else { receipt_text(&r) })?;
            Ok(ExitCode::SUCCESS)
        }
        ReceiptCommand::Verify {
            id,
            reexecute,
            module,
            input,
            group_key,
        } => {
            let shown = client.receipt(&id).await?;
            let group_key = match group_key.or_else(|| shown.epoch_key.clone()) {
                Some(hex) => parse_key(&hex)?,
                None => match client.status().await?.da_authority {
                    Some(hex) => parse_key(&hex)?,
                    // A committee member before the group key is published.
                    None => match client
                        .committee_status()
                        .await
                        .ok()
                        .and_then(|s| s.group_key)
                    {
                        Some(hex) => parse_key(&hex)?,
                        None => bail!(
                            "the node has no DA authority (group key) configured: pass --group-key"
                        ),
                    },
                },
            };
            let (node_receipt, mut out) = if shown.is_optimistic() {
                let receipt = shown.decode_optimistic().map_err(|e| {
                    anyhow::anyhow!("the node's optimistic receipt does not decode: {e}")
                })?;
                if let Err(e) = receipt.verify(&group_key) {
                    print_out(&format!("INVALID: {e}\n"))?;
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
                let text = format!(
                    "receipt {id}: valid optimistic receipt (signature of coordinator {}, node signature, commitment consistent; for group key {}); {}\n",
                    shown.coordinator.as_deref().unwrap_or("?"),
                    hex::encode(group_key.0),
                    status_text(&shown)
                );
                (receipt.receipt, text)
            } else {
                let receipt = shown
                    .decode()
                    .map_err(|e| anyhow::anyhow!("the node's receipt does not decode: {e}"))?;
                if let Err(e) = receipt.verify(&group_key) {
                    print_out(&format!("INVALID: {e}\n"))?;
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
                let text = format!(
                    "receipt {id}: valid (group signature of {} signers under {}, node signature, commitment consistent)\n",
                    receipt.signers.len(),
                    hex::encode(group_key.0)
                );
                (receipt.receipt, text)
            };
            if reexecute {
                let module = read_module(module.as_deref().context("--module is required")?)?;
                let input = read_input(input.as_deref())?;
                let verdict = reexecute_and_compare(&node_receipt, &module, &input)?;
                out.push_str(&verdict.text);
                print_out(&out)?;
                return Ok(if verdict.fraud {
                    ExitCode::from(EXIT_FRAUD)
                } else {
                    ExitCode::SUCCESS
                });
            }
            print_out(&out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn parse_key(hex_key: &str) -> anyhow::Result<GroupKey> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("invalid group key {hex_key:?}: 64 hex characters expected"))?;
    Ok(GroupKey(bytes))
}

/// The outcome of a re-execution.
struct Verdict {
    fraud: bool,
    text: String,
}

/// Re-runs `module` on `input` with the network's limits and compares the commitment with
/// the receipt's (the start of a fraud check, Tahap 18.8).
fn reexecute_and_compare(
    receipt: &ReceiptV1,
    module: &[u8],
    input: &[u8],
) -> anyhow::Result<Verdict> {
    let claimed = &receipt.commitment;
    if workload_id(module) != claimed.workload_id {
        bail!("the module given is not the receipt's workload (its SHA-256 differs)");
    }
    if sha256(input) != claimed.input_hash {
        bail!("the input given is not the receipt's input (its SHA-256 differs)");
    }
    let runtime = WorkloadRuntime::new(NETWORK_LIMITS).context("cannot build the WASM runtime")?;
    let ours = match runtime.run(module, input) {
        Ok(e) => e.commitment,
        Err(e) => {
            return Ok(Verdict {
                fraud: true,
                text: format!("FRAUD: re-execution fails ({e}), yet the node claimed a result\n"),
            })
        }
    };
    let differing = differing_fields(claimed, &ours);
    if differing.is_empty() {
        return Ok(Verdict {
            fraud: false,
            text: "re-execution: identical commitment\n".into(),
        });
    }
    let mut text = format!(
        "FRAUD: re-execution gives another commitment ({} differ)\n",
        differing.join(", ")
    );
    text.push_str(&format!(
        "  claimed output hash {}\n  actual  output hash {}\n",
        hex::encode(claimed.output_hash.0),
        hex::encode(ours.output_hash.0)
    ));
    Ok(Verdict { fraud: true, text })
}

fn differing_fields(a: &ExecutionCommitment, b: &ExecutionCommitment) -> Vec<&'static str> {
    let mut out = Vec::new();
    let pairs = [
        ("output_hash", a.output_hash == b.output_hash),
        (
            "state_root_before",
            a.state_root_before == b.state_root_before,
        ),
        ("state_root_after", a.state_root_after == b.state_root_after),
        ("trace_root", a.trace_root == b.trace_root),
        ("checkpoints", a.checkpoints == b.checkpoints),
        ("fuel_used", a.fuel_used == b.fuel_used),
    ];
    for (name, same) in pairs {
        if !same {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsdn_p2p::workload::HeldReceipt;
    use dsdn_protocols::da::Bytes32;
    use dsdn_protocols::receipt::{OptimisticReceipt, ReceiptDraft, ResourceUsage};

    fn optimistic() -> OptimisticReceipt {
        let commitment = ExecutionCommitment {
            workload_id: sha256(b"m"),
            input_hash: sha256(b"i"),
            output_hash: sha256(b"o"),
            state_root_before: sha256(b"b"),
            state_root_after: sha256(b"a"),
            trace_root: sha256(b"t"),
            checkpoints: 1,
            fuel_used: 5,
        };
        let receipt = ReceiptV1::sign(
            &SigningKey::from_bytes(&[1; 32]),
            ReceiptDraft {
                submitter: Bytes32([2; 32]),
                nonce: 1,
                commitment,
                usage: ResourceUsage {
                    fuel_used: 5,
                    memory_peak_bytes: 65_536,
                    wall_time_ms: 1,
                },
                executed_at_ms: 1_700_000_000_000,
            },
        )
        .unwrap();
        OptimisticReceipt::sign(
            &SigningKey::from_bytes(&[3; 32]),
            receipt,
            (0, Bytes32([4; 32]), GroupKey([5; 32])),
            1_700_000_000_000,
            600_000,
        )
        .unwrap()
    }

    #[test]
    fn receipt_show_says_which_receipt_it_is() {
        let o = optimistic();
        let held = HeldReceipt::Optimistic {
            receipt: o.clone(),
            challenged: false,
        };
        let open = ReceiptResponse::held(&held, o.issued_at_ms).unwrap();
        let text = receipt_text(&open);
        assert!(
            text.starts_with(
                "status      optimistic (challenge window until 2023-11-14 22:23:20 UTC, signed by coordinator 12D3"
            ),
            "{text}"
        );
        assert!(text.contains("signers     none yet (optimistic)"), "{text}");
        assert_eq!(open.decode_optimistic().unwrap(), o);
        assert!(open.decode().is_err(), "not a threshold receipt");
        let expired = ReceiptResponse::held(&held, o.challenge_deadline_ms).unwrap();
        assert_eq!(expired.status, "expired");
        assert!(
            status_text(&expired).starts_with("optimistic, expired unconfirmed"),
            "{}",
            status_text(&expired)
        );
        let challenged = HeldReceipt::Optimistic {
            receipt: o,
            challenged: true,
        };
        let shown = ReceiptResponse::held(&challenged, 0).unwrap();
        assert!(status_text(&shown).starts_with("optimistic, challenged"));
    }
}
