//! Issue 13 §3 (key history) with real `dsdnd` processes on 127.0.0.x: the DA log carries a
//! `committee_rotated` event that hands the log from the genesis authority to a new group
//! key; a node fed the log follows it without any config edit, refuses a blob of the old
//! key after `effective_height`, serves the epoch record with a proof, and a late joiner
//! configured with the genesis authority only syncs across both epochs to the same root.
//!
//! Both keys are keys of the test (signed offline, handed over `POST /v1/da/blobs`): the log
//! side alone. The automatic committee rotation (DKG in the handoff, key proof, proposal,
//! switch) is `committee_auto_rotation.rs`.

use std::time::Duration;

use dsdn_daemon::client::ClientError;
use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::{da_tip, fast_da, unix_now, wait_da_equal, DaTip, TestNet};
use dsdn_protocols::da::state::StateProof;
use dsdn_protocols::da::{
    Bytes32, Bytes64, CommitteeRotation, DaBlob, DaChain, DaEvent, DaState, Offer, StateKey,
    StateValue,
};
use dsdn_protocols::NetworkId;
use ed25519_dalek::SigningKey;

/// Convergence timeout.
const T: Duration = Duration::from_secs(30);

/// Height from which the new group key signs.
const EFFECTIVE: u64 = 4;

fn registration(i: u64) -> DaEvent {
    DaEvent::NodeRegistered {
        node_id: peer_text(),
        zone: format!("zone-{}", i % 3),
        capacity_bytes: 1 << 30,
        class: "regular".into(),
    }
}

/// A PeerId text for an offline node (the events only name it).
fn peer_text() -> String {
    libp2p::PeerId::random().to_string()
}

/// Blobs 1..=`n`: the genesis key signs below [`EFFECTIVE`] (blob 2 carries the rotation to
/// `next`), `next` signs from [`EFFECTIVE`] on. Also returns the offline chain.
fn rotated_log(
    genesis: &SigningKey,
    next: &SigningKey,
    n: u64,
) -> anyhow::Result<(Vec<Vec<u8>>, DaChain)> {
    let network = NetworkId::new("devnet").map_err(|e| anyhow::anyhow!("{e}"))?;
    let rotation = CommitteeRotation {
        epoch: 1,
        members: vec![peer_text()],
        threshold: 1,
        group_key: Bytes32(next.verifying_key().to_bytes()),
        effective_height: EFFECTIVE,
        key_proof: Bytes64([0; 64]),
    }
    .sign_with(&network, next)?;
    let mut chain = DaChain::new(DaState::new(network.clone()));
    let mut out = Vec::new();
    let start = unix_now() * 1000;
    for h in 1..=n {
        let (key, event) = if h == 2 {
            (
                genesis,
                DaEvent::CommitteeRotated(Box::new(rotation.clone())),
            )
        } else if h < EFFECTIVE {
            (genesis, registration(h))
        } else {
            (next, registration(h))
        };
        let blob = chain.state().seal_next(key, start + h, vec![event])?;
        let bytes = blob.to_bytes()?;
        let verified = DaBlob::decode_verified(&bytes, &network, &key.verifying_key().to_bytes())?;
        match chain.offer(verified) {
            Offer::Applied(_) => out.push(bytes),
            other => anyhow::bail!("offline chain refused blob {h}: {other:?}"),
        }
    }
    Ok((out, chain))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_with_the_genesis_authority_syncs_across_a_committee_rotation(
) -> anyhow::Result<()> {
    let mut net = TestNet::new("committee-epochs").await?;
    let genesis = SigningKey::from_bytes(&[0x61; 32]);
    let next = SigningKey::from_bytes(&[0x62; 32]);
    let (blobs, chain) = rotated_log(&genesis, &next, 8)?;
    let want = DaTip::of_state(chain.state());
    let cfg = net
        .config()
        .with_da_authority(hex::encode(genesis.verifying_key().to_bytes()))
        .with_da(fast_da());
    net.spawn("node-1", NodeMode::Storage, 40, &cfg).await?;
    for (i, bytes) in blobs.iter().enumerate() {
        let s = net.node("node-1").client().da_submit(bytes).await?;
        anyhow::ensure!(
            s.outcome == "applied",
            "blob {} on node-1: {s:?}, want applied",
            i + 1
        );
    }
    anyhow::ensure!(
        da_tip(net.node("node-1")).await? == want,
        "node-1 != offline"
    );

    // A blob of the genesis key after the effective height is refused (400: no verify).
    let stale = chain
        .state()
        .seal_next(&genesis, unix_now() * 1000 + 100, vec![registration(9)])?
        .to_bytes()?;
    match net.node("node-1").client().da_submit(&stale).await {
        Err(ClientError::Api { status: 400, .. }) => {}
        other => anyhow::bail!("a blob of the old key at height 9: {other:?}, want 400"),
    }

    // The epoch record is in the state, with a proof against the root.
    let root: [u8; 32] = hex::decode(&want.state_root)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("root is not 32 bytes"))?;
    let answer = net
        .node("node-1")
        .client()
        .da_proof(&StateKey::Committee(1).to_string(), None)
        .await?;
    let proof = StateProof::decode(&hex::decode(&answer.proof)?)?;
    match proof.verify(root) {
        Ok((_, Some(StateValue::Committee(e))))
            if e.group_key.0 == next.verifying_key().to_bytes()
                && e.effective_height == EFFECTIVE
                && e.sealed_at == 2 => {}
        other => anyhow::bail!("committee:1 proof: {other:?}"),
    }

    // The late joiner: genesis authority only, node-1 as its static peer.
    net.spawn(
        "late",
        NodeMode::Storage,
        41,
        &cfg.clone().with_static_peer(net.addr(40)),
    )
    .await?;
    wait_da_equal(&[net.node("late")], &want, T)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(40)))?;
    eprintln!("late joiner synced across the rotation: {want}");
    let st = net.node("late").client().da_state().await?;
    anyhow::ensure!(
        st.committee_epoch == Some(1)
            && st.authority_key == Some(hex::encode(next.verifying_key().to_bytes())),
        "late's DA state names epoch {:?}, key {:?}",
        st.committee_epoch,
        st.authority_key
    );

    // The late joiner learnt the key history from the log: the old key is refused there
    // too.
    match net.node("late").client().da_submit(&stale).await {
        Err(ClientError::Api { status: 400, .. }) => {}
        other => anyhow::bail!("late: a blob of the old key at height 9: {other:?}, want 400"),
    }
    net.pass();
    Ok(())
}
