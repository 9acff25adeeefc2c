//! Hand-written scenarios, driven message by message, and unit tests of the pieces.

use std::time::Duration;

use proptest::prelude::*;

use super::*;

/// A world whose messages wait in a FIFO until a scenario delivers or drops them. Rotation
/// messages above height `limit` stay queued (each sealed height starts the next one).
struct Cluster {
    w: World,
    q: Vec<Envelope>,
    limit: u64,
}

fn rot(e: &Envelope) -> Option<RotationMsg> {
    match &e.wire {
        Wire::Rot(b) => RotationMsg::from_bytes(b).ok(),
        _ => None,
    }
}

fn is(e: &Envelope, kind: &str) -> bool {
    rot(e).is_some_and(|m| m.kind() == kind)
}

impl Cluster {
    fn new(t: u16, n: usize) -> Self {
        let mut q = Vec::new();
        let w = World::new(t, n, 100, false, &mut q);
        Self { w, q, limit: 1 }
    }

    /// Delivers matching envelopes (also those they cause) in FIFO order until none match.
    fn deliver(&mut self, f: impl Fn(&Envelope) -> bool) {
        let limit = self.limit;
        let ok = |e: &Envelope| f(e) && rot(e).is_none_or(|m| m.height() <= limit);
        while let Some(pos) = self.q.iter().position(ok) {
            let e = self.q.remove(pos);
            let out = self.w.deliver(e, None);
            self.q.extend(out);
        }
        assert!(
            self.w.checker.violations.is_empty(),
            "{:?}",
            self.w.checker.violations
        );
    }

    fn deliver_all(&mut self) {
        self.deliver(|_| true);
    }

    fn drop_all(&mut self) {
        self.q.clear();
    }

    /// Advances the clock by `ms` and runs every member's timers.
    fn advance(&mut self, ms: u64) {
        self.w.now_ms += ms;
        for i in 0..self.w.nodes.len() {
            let out = self.w.poll(i, None);
            self.q.extend(out);
        }
    }

    fn restart(&mut self, i: usize) {
        let out = self.w.restart(i, None);
        self.q.extend(out);
    }

    fn lock(&self, i: usize) -> Option<(u64, String)> {
        let l = self.w.nodes[i].disk.as_ref()?.lock.as_ref()?;
        Some((l.round, String::from_utf8(l.message.clone()).unwrap()))
    }

    fn sealed(&self, i: usize, h: u64) -> Option<String> {
        self.w.nodes[i]
            .log
            .get(&h)
            .map(|m| String::from_utf8(m.clone()).unwrap())
    }
}

/// Round 0's proposer crashes after one of the t signers released its share (and locked);
/// round 1's proposer must re-propose that message and seals it.
#[test]
fn locked_message_survives_proposer_crash() {
    // 3-of-4, height 1: round 0 is proposed by member 1, round 1 by member 2.
    let mut c = Cluster::new(3, 4);
    c.deliver(|e| is(e, "prepare") && e.to != 0 || is(e, "promise"));
    // Member 1 has promises from 1, 2, 3, took a new blob and locked it.
    let (r, blob) = c.lock(1).unwrap();
    assert_eq!(r, 0);
    assert!(blob.contains("h1 r0 by 1"), "{blob}");
    // Only member 2 receives the Sign request; then member 1 crashes.
    c.deliver(|e| is(e, "sign") && e.to == 2);
    assert_eq!(c.lock(2), Some((0, blob.clone())));
    assert_eq!(c.lock(3), None);
    c.w.crash(1);
    c.drop_all();
    // Everyone times out of round 0; member 2 proposes round 1.
    c.advance(100);
    assert_eq!(c.w.nodes[2].machine.as_ref().unwrap().round(), 1);
    c.deliver_all();
    for i in [0, 2, 3] {
        assert_eq!(c.sealed(i, 1).as_deref(), Some(blob.as_str()), "member {i}");
    }
    // Member 1 comes back, catches up and proposes nothing else at height 1.
    c.restart(1);
    c.deliver_all();
    assert_eq!(c.sealed(1, 1).as_deref(), Some(blob.as_str()));
}

/// Locks on two different messages at different rounds: the proposer re-proposes the one of
/// the higher round, and a signer locked on the other (at a lower round) signs it.
#[test]
fn higher_lock_wins() {
    // 3-of-5, height 1: proposers are member 1 (round 0), 2 (round 1), 3 (round 2).
    let mut c = Cluster::new(3, 5);
    // Round 0: promises from 1 (own), 3 and 4; blob A is signed by 1 and 3 only.
    c.deliver(|e| is(e, "prepare") && e.to == 3 || is(e, "promise"));
    c.deliver(|e| is(e, "prepare") && e.to == 4 || is(e, "promise"));
    c.deliver(|e| is(e, "sign") && e.to == 3);
    let a = c.lock(3).unwrap().1;
    assert_eq!(c.lock(1), Some((0, a.clone())));
    c.drop_all();
    // Round 1 (member 2): promises from 2, 0 and 4, none locked: blob B, signed by 2 and 0.
    c.advance(100);
    c.deliver(|e| is(e, "prepare") && e.to == 0 || is(e, "promise"));
    c.deliver(|e| is(e, "prepare") && e.to == 4 || is(e, "promise"));
    c.deliver(|e| is(e, "sign") && e.to == 0);
    let b = c.lock(0).unwrap().1;
    assert_ne!(a, b);
    assert_eq!(c.lock(2), Some((1, b.clone())));
    assert_eq!(c.lock(4), None);
    c.drop_all();
    // Round 2 (member 3, locked on A at round 0): promises from 3, 0 (B at 1) and 4.
    c.advance(200);
    c.deliver(|e| is(e, "prepare") && e.to == 0 || is(e, "promise"));
    c.deliver(|e| is(e, "prepare") && e.to == 4 || is(e, "promise"));
    assert_eq!(
        c.lock(3),
        Some((2, b.clone())),
        "the proposer re-proposes B, not A"
    );
    c.deliver_all();
    for i in [0, 3, 4] {
        assert_eq!(c.sealed(i, 1).as_deref(), Some(b.as_str()), "member {i}");
    }
}

/// A member restarted from its record does not sign a package of a round it had promised
/// before the restart (it forgot its nonces and moved on), and keeps its lock.
#[test]
fn restarted_member_refuses_lower_round() {
    let mut c = Cluster::new(3, 4);
    c.deliver(|e| is(e, "prepare") && e.to != 0 || is(e, "promise"));
    // Member 1 sent Sign(round 0) to 2 and 3; member 2 signs, then both 2 and 3 restart.
    c.deliver(|e| is(e, "sign") && e.to == 2);
    let locked = c.lock(2).unwrap();
    for i in [2, 3] {
        c.w.crash(i);
        c.restart(i);
        let rec = c.w.nodes[i].disk.clone().unwrap();
        assert_eq!((rec.height, rec.round), (1, 1), "member {i}");
    }
    assert_eq!(c.lock(2), Some(locked.clone()));
    // The late Sign(round 0) reaches member 3: refused with Stale, no lock.
    let late: Vec<_> =
        c.q.iter()
            .filter(|e| is(e, "sign") && e.to == 3)
            .cloned()
            .collect();
    assert_eq!(late.len(), 1);
    c.q.retain(|e| !(is(e, "sign") && e.to == 3));
    let out = c.w.deliver(late[0].clone(), None);
    assert_eq!(c.lock(3), None);
    assert!(matches!(
        rot(&out[0]),
        Some(RotationMsg::Stale {
            height: 1,
            round: 1
        })
    ));
    // The same holds directly against the state machine.
    let m = c.w.nodes[3].machine.as_mut().unwrap();
    let e = m.on_sign_request(&c.w.members[1], 1, 0, b"x".to_vec(), Vec::new(), c.w.t0);
    assert!(
        matches!(e, Ok(ref a) if matches!(a[..], [Action::Send { msg: RotationMsg::Stale { .. }, .. }]))
    );
    // And the committee still seals height 1 (with member 1's locked blob).
    c.deliver_all();
    c.advance(200);
    c.deliver_all();
    assert_eq!(c.sealed(0, 1), Some(locked.1));
}

/// Several heights in a row with nothing going wrong: round 0 every time.
#[test]
fn calm_committee_seals_in_round_zero() {
    let mut c = Cluster::new(2, 3);
    c.limit = 5;
    c.deliver_all();
    for i in 0..3 {
        assert_eq!(c.w.nodes[i].tip(), 5, "member {i}");
    }
    assert_eq!(c.w.checker.max_round, 0);
}

#[test]
fn refusals() {
    let mut c = Cluster::new(3, 4);
    let now = c.w.now();
    let members = c.w.members.clone();
    let m = c.w.nodes[0].machine.as_mut().unwrap();
    // Member 2 does not propose (1, 0).
    assert!(matches!(
        m.on_prepare(&members[2], 1, 0, now),
        Err(RotationError::NotProposer { .. })
    ));
    assert_eq!(
        m.on_prepare(&members[0], 1, 3, now),
        Err(RotationError::FromSelf)
    );
    let stranger = super::super::member(9);
    assert_eq!(
        m.on_prepare(&stranger, 1, 0, now),
        Err(RotationError::NotAMember(stranger.clone()))
    );
    // A Sign for a round we did not promise.
    let pkg: Vec<_> = (0..3)
        .map(|i| SignerCommitment {
            member: members[i].clone(),
            commitment: vec![1],
        })
        .collect();
    assert!(m
        .on_sign_request(&members[1], 1, 0, b"m".to_vec(), pkg, now)
        .is_err());
    assert!(m.record().lock.is_none());
    // A height ahead of ours: fetch; behind: send blobs.
    assert_eq!(
        m.on_prepare(&members[1], 4, 1, now).unwrap(),
        vec![Action::Fetch {
            from: members[1].clone(),
            height: 1
        }]
    );
    assert_eq!(
        m.on_prepare(&members[3], 0, 3, now).unwrap(),
        vec![Action::SendSealed {
            to: members[3].clone(),
            from_height: 0
        }]
    );
    // Status: height 1, round 0, proposed by member 1.
    let s = m.status(now + Duration::from_millis(30));
    assert_eq!((s.height, s.round, s.proposing), (1, 0, false));
    assert_eq!(s.proposer, members[1]);
    assert_eq!(s.in_round, Duration::from_millis(30));
    assert_eq!(s.timeout_in, Duration::from_millis(70));
}

#[test]
fn restore_refuses_a_record_ahead_of_the_log() {
    let config = RotationConfig::new(&committee(2, 3), Duration::from_millis(100)).unwrap();
    let me = config.members()[0].clone();
    let r = HeightConsensus::restore(
        config,
        me,
        ModelCrypto::new(0, 1),
        Some(MemberRecord::new(7)),
        5,
        Instant::now(),
    );
    assert!(matches!(
        r,
        Err(RotationError::RecordAhead { record: 7, tip: 5 })
    ));
}

#[test]
fn proposers_rotate_and_timeouts_double() {
    let members: Vec<_> = (0..4).map(super::super::member).collect();
    assert_eq!(proposer(&members, 1, 0), Some(&members[1]));
    assert_eq!(proposer(&members, 1, 3), Some(&members[0]));
    assert_eq!(proposer(&members, u64::MAX, u64::MAX), Some(&members[2]));
    assert_eq!(proposer(&[], 1, 0), None);
    let seen: std::collections::BTreeSet<_> = (0..4).map(|r| proposer(&members, 9, r)).collect();
    assert_eq!(seen.len(), 4);
    let base = Duration::from_millis(100);
    assert_eq!(round_timeout(base, 0), base);
    assert_eq!(round_timeout(base, 3), base * 8);
    assert_eq!(round_timeout(base, 6), base * 64);
    assert_eq!(round_timeout(base, u64::MAX), base * 64);
}

#[test]
fn record_validation() {
    let mut r = MemberRecord::new(3);
    r.round = 2;
    r.lock = Some(Lock::new(2, b"blob".to_vec()));
    assert_eq!(MemberRecord::from_bytes(&r.to_bytes().unwrap()).unwrap(), r);
    r.lock = Some(Lock::new(3, b"blob".to_vec()));
    assert!(matches!(
        MemberRecord::from_bytes(&r.to_bytes().unwrap()),
        Err(RecordError::Malformed(_))
    ));
    let mut l = Lock::new(1, b"blob".to_vec());
    l.message_hash[0] ^= 1;
    r.lock = Some(l);
    assert!(matches!(
        MemberRecord::from_bytes(&r.to_bytes().unwrap()),
        Err(RecordError::Malformed(_))
    ));
    r.lock = Some(Lock::new(
        1,
        vec![7; crate::committee::MAX_SIGNED_MESSAGE_BYTES],
    ));
    let bytes = r.to_bytes().unwrap();
    assert!(bytes.len() <= MAX_MEMBER_RECORD_BYTES);
    assert_eq!(MemberRecord::from_bytes(&bytes).unwrap(), r);
    assert!(matches!(
        MemberRecord::from_bytes(&vec![0; MAX_MEMBER_RECORD_BYTES + 1]),
        Err(RecordError::Codec(_))
    ));
    #[derive(serde::Serialize)]
    struct V {
        version: u16,
    }
    let v2 = crate::codec::encode(&V { version: 2 }, 100).unwrap();
    assert!(matches!(
        MemberRecord::from_bytes(&v2),
        Err(RecordError::UnsupportedVersion(2))
    ));
}

#[test]
fn largest_messages_fit_their_cap() {
    let members: Vec<_> = (0..64).map(super::super::member).collect();
    let big = vec![0xab; crate::committee::MAX_SIGNED_MESSAGE_BYTES];
    let sign = RotationMsg::Sign {
        height: u64::MAX,
        round: u64::MAX,
        message: big.clone(),
        package: members
            .iter()
            .map(|m| SignerCommitment {
                member: m.clone(),
                commitment: vec![0xff; MAX_COMMITMENT_BYTES],
            })
            .collect(),
    };
    assert!(sign.to_bytes().unwrap().len() <= MAX_ROTATION_MSG_BYTES);
    let promise = RotationMsg::Promise {
        height: u64::MAX,
        round: u64::MAX,
        commitment: vec![0xff; MAX_COMMITMENT_BYTES],
        lock: Some(Lock::new(u64::MAX, big)),
    };
    assert!(promise.to_bytes().unwrap().len() <= MAX_ROTATION_MSG_BYTES);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn rotation_bytes_never_panic(bytes in super::super::blob(600)) {
        let _ = RotationMsg::from_bytes(&bytes);
        let _ = MemberRecord::from_bytes(&bytes);
    }

    #[test]
    fn rotation_messages_round_trip(h in any::<u64>(), r in any::<u64>(), m in super::super::blob(300)) {
        let msgs = [
            RotationMsg::Prepare { height: h, round: r },
            RotationMsg::Stale { height: h, round: r },
            RotationMsg::NewRound { height: h, round: r },
            RotationMsg::Promise { height: h, round: r, commitment: m.clone(), lock: Some(Lock::new(r / 2, m.clone())) },
            RotationMsg::Sign { height: h, round: r, message: m.clone(), package: vec![SignerCommitment { member: super::super::member(1), commitment: m.clone() }] },
            RotationMsg::Share { height: h, round: r, share: m.clone() },
        ];
        for msg in msgs {
            prop_assert_eq!(RotationMsg::from_bytes(&msg.to_bytes().unwrap()).unwrap(), msg);
        }
    }
}
