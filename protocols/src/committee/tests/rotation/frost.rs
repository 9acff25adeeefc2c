//! The rotation with the real FROST scheme ([`FrostRoundCrypto`]): a 2-of-3 committee from
//! an in-process DKG seals heights through `HeightConsensus`, messages through CBOR, and the
//! aggregate verifies under the group key; a proposer that stops costs one round.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::super::super::rotation::*;
use super::super::{config, run_dkg};

type Machine = HeightConsensus<FrostRoundCrypto>;

/// Delivers every queued message (through CBOR) among the members in `up`; returns the
/// sealed (height, message, signature) seen.
fn run(
    machines: &mut [Machine],
    up: &[bool],
    queue: &mut VecDeque<(usize, Action)>,
    blob: &[u8],
    now: Instant,
) -> Vec<(u64, Vec<u8>, Vec<u8>)> {
    let ids: Vec<_> = machines.iter().map(|m| m.me().clone()).collect();
    let mut sealed = Vec::new();
    while let Some((from, action)) = queue.pop_front() {
        let mut deliver = |to: usize, msg: &RotationMsg, queue: &mut VecDeque<(usize, Action)>| {
            if !up[to] {
                return;
            }
            let wire =
                RotationRequest::from_bytes(&RotationRequest::Msg(msg.clone()).to_bytes().unwrap())
                    .unwrap();
            let RotationRequest::Msg(msg) = wire else {
                unreachable!()
            };
            if let Ok(acts) = machines[to].on_message(&ids[from], msg, now) {
                queue.extend(acts.into_iter().map(|a| (to, a)));
            }
        };
        match action {
            Action::Send { to, msg } => {
                let to = ids.iter().position(|m| *m == to).unwrap();
                deliver(to, &msg, queue);
            }
            Action::Broadcast(msg) => {
                for to in (0..ids.len()).filter(|i| *i != from) {
                    deliver(to, &msg, queue);
                }
            }
            Action::ProposeNew { height, round } => {
                let acts = machines[from]
                    .on_new_blob(height, round, blob.to_vec(), now)
                    .unwrap();
                queue.extend(acts.into_iter().map(|a| (from, a)));
            }
            Action::Sealed {
                height,
                message,
                signature,
                ..
            } => sealed.push((height, message, signature)),
            _ => {}
        }
    }
    sealed
}

#[test]
fn frost_rotation_seals_and_fails_over() {
    let cfg = config(2, 3, 1);
    let outputs = run_dkg(&cfg, 7);
    let group = outputs[0].key_share.group_key();
    let rot = RotationConfig::new(&cfg, Duration::from_secs(1)).unwrap();
    let t0 = Instant::now();
    let mut queue = VecDeque::new();
    let mut machines: Vec<Machine> = outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let (m, acts) = HeightConsensus::restore(
                rot.clone(),
                cfg.members[i].clone(),
                FrostRoundCrypto::new(o.key_share.clone()),
                None,
                0,
                t0,
            )
            .unwrap();
            queue.extend(acts.into_iter().map(|a| (i, a)));
            m
        })
        .collect();
    let sealed = run(&mut machines, &[true; 3], &mut queue, b"blob one", t0);
    assert_eq!(sealed.len(), 1, "height 1 sealed once");
    let (h, msg, sig) = &sealed[0];
    assert_eq!((*h, msg.as_slice()), (1, &b"blob one"[..]));
    assert!(group.verify(msg, &<[u8; 64]>::try_from(sig.as_slice()).unwrap()));
    for (i, m) in machines.iter_mut().enumerate() {
        queue.extend(m.on_sealed(1, t0).into_iter().map(|a| (i, a)));
    }
    // The proposer of height 2 round 0 is down: nothing is sealed until the others time
    // out into round 1, whose proposer is up.
    let p0 = rot.proposer(2, 0).clone();
    let down = cfg.members.iter().position(|m| *m == p0).unwrap();
    let mut up = [true; 3];
    up[down] = false;
    queue.retain(|(from, _)| *from != down);
    assert!(run(&mut machines, &up, &mut queue, b"blob two", t0).is_empty());
    let later = t0 + Duration::from_millis(1001);
    for i in (0..3).filter(|i| up[*i]) {
        queue.extend(machines[i].poll(later).into_iter().map(|a| (i, a)));
    }
    let sealed = run(&mut machines, &up, &mut queue, b"blob two", later);
    assert_eq!(sealed.len(), 1, "height 2 sealed in round 1");
    assert_eq!(sealed[0].0, 2);
    assert!(group.verify(
        &sealed[0].1,
        &<[u8; 64]>::try_from(sealed[0].2.as_slice()).unwrap()
    ));
}
