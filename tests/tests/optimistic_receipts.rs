//! Issue 13 §5 (optimistic receipts), with real `dsdnd` processes on 127.0.0.x: a 3-of-4
//! coordinator committee (DKG over the network) and two storage nodes. A workload submitted
//! with `dsdn-agent workload submit --optimistic` is answered with a receipt signed by the
//! coordinator alone, which verifies against the coordinator's key; the committee's
//! threshold receipt then supersedes it on every node (`receipt show` says `threshold`, one
//! entry per receipt). With two members down (below the threshold) the optimistic answer
//! still comes, and once its challenge window is over every node shows it as expired.
//! Issue 13 §6 on the way: an optimistic receipt signed by a non-member is refused by the
//! members and served as `UnauthorizedSigner` evidence, a damaged group signature as
//! `InvalidSignature` evidence.

use std::path::Path;
use std::time::Duration;

use dsdn_daemon::api::WorkloadResponse;
use dsdn_daemon::workload::samples::{fnv_expected, fnv_wat};
use dsdn_integration_tests::committee::start_receipt_net;
use dsdn_integration_tests::{agent, eventually, TestNet, WAIT};
use dsdn_protocols::committee::GroupKey;
use dsdn_protocols::da::Bytes32;
use dsdn_protocols::receipt::dispute::{InvalidSignature, UnauthorizedSigner};
use dsdn_protocols::receipt::{OptimisticReceipt, ReceiptDraft, ReceiptV1};
use ed25519_dalek::SigningKey;

/// Rounds of the sample module.
const ROUNDS: u32 = 50;
/// The coordinators' challenge window (seconds; 10 minutes by default).
const WINDOW_SECS: u64 = 8;

/// Submits the sample module with `input` to `coordinator` with `extra` flags; the parsed
/// answer.
async fn submit(
    net: &TestNet,
    coordinator: &str,
    module: &Path,
    input: &[u8],
    extra: &[&str],
) -> anyhow::Result<WorkloadResponse> {
    let input_file = net.dir().join(format!("input-{}", hex::encode(input)));
    std::fs::write(&input_file, input)?;
    let (m, i) = (
        module.display().to_string(),
        input_file.display().to_string(),
    );
    let mut args = vec!["workload", "submit", &m, "--input", &i, "--json"];
    args.extend(extra);
    let out = agent(net.node(coordinator), &args)
        .await?
        .success("workload submit")?;
    Ok(serde_json::from_str(&out)?)
}

/// The node key in data directory `dir` (`node.key`: 64 hex characters).
fn node_key(dir: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(dir.join("node.key"))?;
    let bytes: [u8; 32] = hex::decode(text.trim())?
        .try_into()
        .map_err(|_| anyhow::anyhow!("node.key is not 32 bytes"))?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Waits until `receipt show id` on node `name` prints a status line containing `what`.
async fn wait_shown(net: &TestNet, name: &str, id: &str, what: &str) -> anyhow::Result<String> {
    let node = net.node(name);
    eventually(
        WAIT,
        &format!("{name}: receipt {id} shown as {what:?}"),
        || async {
            let run = agent(node, &["receipt", "show", id]).await.ok()?;
            let status = run
                .stdout
                .lines()
                .find(|l| l.starts_with("status"))?
                .to_owned();
            status.contains(what).then_some(status)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimistic_receipts_are_upgraded_or_expire() -> anyhow::Result<()> {
    let mut net = TestNet::new("optimistic").await?;
    let mut cfg = net.config();
    cfg.seeds.receipts.challenge_window = Duration::from_secs(WINDOW_SECS);
    let rn = start_receipt_net(&mut net, 4, 3, 2, 40, &cfg).await?;
    let module = net.dir().join("fnv.wat");
    std::fs::write(&module, fnv_wat(ROUNDS))?;
    let group_key = GroupKey(
        hex::decode(&rn.group_key)?
            .try_into()
            .map_err(|_| anyhow::anyhow!("group key is not 32 bytes"))?,
    );

    // Without --optimistic the coordinator's default (off) waits for the threshold receipt.
    let plain = submit(&net, "c1", &module, b"plain", &[]).await?;
    anyhow::ensure!(
        plain.receipt.kind == "threshold" && plain.receipt.signers.len() == 3,
        "default answer: {:?}",
        plain.receipt
    );

    // 1. Optimistic: answered with c1's own signature and an 8 s challenge window.
    let answer = submit(&net, "c1", &module, b"fast", &["--optimistic"]).await?;
    anyhow::ensure!(
        answer.output == hex::encode(fnv_expected(b"fast", ROUNDS)),
        "wrong output {}",
        answer.output
    );
    let r = &answer.receipt;
    anyhow::ensure!(
        r.kind == "optimistic" && r.status == "optimistic" && r.signers.is_empty(),
        "not an optimistic answer: {r:?}"
    );
    anyhow::ensure!(
        r.coordinator.as_deref() == Some(rn.ids[0].as_str()),
        "{r:?}"
    );
    let o = r.decode_optimistic().map_err(anyhow::Error::msg)?;
    o.verify(&group_key)?;
    anyhow::ensure!(
        hex::encode(o.coordinator_key.0) == rn.keys[0],
        "signed by another key than c1's"
    );
    anyhow::ensure!(
        o.challenge_deadline_ms - o.issued_at_ms == WINDOW_SECS * 1000,
        "window {} ms",
        o.challenge_deadline_ms - o.issued_at_ms
    );
    // The committee's threshold receipt supersedes it on every node.
    for name in rn.everyone() {
        let status = wait_shown(&net, &name, &r.receipt_id, "threshold (group key").await?;
        anyhow::ensure!(status.contains(&rn.group_key), "{name}: {status}");
        let shown = net.node(&name).client().receipt(&r.receipt_id).await?;
        let t = shown.decode().map_err(anyhow::Error::msg)?;
        t.verify(&group_key)?;
        anyhow::ensure!(
            t.receipt == o.receipt && t.signers.len() == 3,
            "{name}: another receipt"
        );
        // Superseded, not duplicated.
        let list = net.node(&name).client().receipts(100).await?;
        let copies = list.iter().filter(|x| x.receipt_id == r.receipt_id).count();
        anyhow::ensure!(copies == 1, "{name} lists the receipt {copies} times");
    }

    // Issue 13 §6. An optimistic receipt signed by a non-member (storage node s1's key, over
    // a node receipt signed by s2): s1 cannot tell (it knows only the group key) and
    // gossips it; the members refuse it and keep it as `UnauthorizedSigner` evidence.
    let s1_key = node_key(&net.data_dir("s1"))?;
    let s2_key = node_key(&net.data_dir("s2"))?;
    let mut commitment = o.receipt.commitment;
    commitment.input_hash = dsdn_protocols::receipt::sha256(b"never submitted");
    let fake_node_receipt = ReceiptV1::sign(
        &s2_key,
        ReceiptDraft {
            submitter: Bytes32([0x5a; 32]),
            nonce: 1,
            commitment,
            usage: o.receipt.usage,
            executed_at_ms: o.issued_at_ms,
        },
    )?;
    let by_outsider = OptimisticReceipt::sign(
        &s1_key,
        fake_node_receipt,
        (o.epoch, o.committee_hash, o.group_key),
        dsdn_integration_tests::unix_now() * 1000,
        60_000,
    )?;
    let accepted = net
        .node("s1")
        .client()
        .publish_optimistic_receipt(&by_outsider)
        .await?;
    anyhow::ensure!(accepted.status == "optimistic", "{accepted:?}");
    let s1_public = hex::encode(s1_key.verifying_key().to_bytes());
    for name in ["c2", "c3"] {
        let client = net.node(name).client();
        let evidence = eventually(WAIT, &format!("{name}: unauthorized signer"), || {
            let client = client.clone();
            let s1_public = s1_public.clone();
            async move {
                let d = client.disputes().await.ok()?;
                d.unauthorized_signers
                    .into_iter()
                    .find(|e| e.signer == s1_public)
            }
        })
        .await?;
        let e = UnauthorizedSigner::from_bytes(&hex::decode(&evidence.dispute_cbor)?)?;
        anyhow::ensure!(e.verify()?.0 == s1_key.verifying_key().to_bytes(), "{name}");
        anyhow::ensure!(
            client.receipt(&accepted.receipt_id).await.is_err(),
            "{name} keeps a non-member's receipt"
        );
    }
    // A damaged group signature handed to s2: refused, and kept as `InvalidSignature`.
    let mut damaged = plain.receipt.decode().map_err(anyhow::Error::msg)?;
    damaged.aggregate_signature.0[0] ^= 1;
    let refused = net.node("s2").client().publish_receipt(&damaged).await;
    anyhow::ensure!(refused.is_err(), "a damaged receipt was accepted");
    let d = net.node("s2").client().disputes().await?;
    let found = d
        .invalid_signatures
        .iter()
        .find(|e| e.receipt_id == plain.receipt.receipt_id)
        .ok_or_else(|| anyhow::anyhow!("no invalid signature evidence on s2: {d:?}"))?;
    InvalidSignature::from_bytes(&hex::decode(&found.dispute_cbor)?)?.verify()?;
    let listed = agent(net.node("s2"), &["disputes"])
        .await?
        .success("disputes")?;
    anyhow::ensure!(listed.contains("invalid_signature"), "{listed}");

    // 2. Below the threshold (c3 and c4 down): the optimistic answer still comes, and the
    // receipt expires unconfirmed on every node once its window is over.
    net.node_mut("c3").stop().await?;
    net.node_mut("c4").stop().await?;
    let answer = submit(&net, "c1", &module, b"alone", &["--optimistic"]).await?;
    let r = &answer.receipt;
    anyhow::ensure!(r.status == "optimistic", "{r:?}");
    // (Gossiped to every live node within the window: a node that first sees it after its
    // deadline would not keep it, and would show nothing.)
    for name in ["c1", "c2", "s1", "s2"] {
        let status = wait_shown(&net, name, &r.receipt_id, "expired unconfirmed").await?;
        anyhow::ensure!(status.contains(&rn.ids[0]), "{name}: {status}");
        let shown = net.node(name).client().receipt(&r.receipt_id).await?;
        anyhow::ensure!(shown.status == "expired", "{name}: {}", shown.status);
    }
    // `receipt verify` checks it against the coordinator's key, and says it is expired.
    let verify = agent(net.node("s2"), &["receipt", "verify", &r.receipt_id])
        .await?
        .success("receipt verify")?;
    anyhow::ensure!(
        verify.contains("valid optimistic receipt") && verify.contains("expired unconfirmed"),
        "{verify}"
    );
    net.pass();
    Ok(())
}
