use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_bytes::ByteBuf;

use super::planner::Ranges;
use super::*;

mod planner_props;

const SEC: Duration = Duration::from_secs(1);

/// Small chunks; the tip poll at 30 s so that it stays clear of the 10 s request timeout.
fn cfg() -> SyncConfig {
    SyncConfig {
        chunk: 10,
        tip_poll_interval: 30 * SEC,
        ..SyncConfig::default()
    }
}

fn req(from: u64, count: u32) -> SyncRequest {
    SyncRequest { from, count }
}

fn sent(actions: Vec<SyncAction<u8>>) -> Vec<(u8, SyncRequest)> {
    actions
        .into_iter()
        .map(|SyncAction::Request { peer, request }| (peer, request))
        .collect()
}

fn blobs(n: usize, len: usize) -> Vec<ByteBuf> {
    (0..n).map(|_| ByteBuf::from(vec![7u8; len])).collect()
}

#[test]
fn default_config_is_documented() {
    let c = SyncConfig::default();
    assert_eq!(c.chunk, 64);
    assert_eq!(c.request_timeout, 10 * SEC);
    assert_eq!(c.max_in_flight, 4);
    assert_eq!(c.peer_backoff, 60 * SEC);
    assert_eq!(c.first_backoff, 2 * SEC);
    assert_eq!(c.tip_poll_interval, 5 * SEC);
}

#[test]
fn request_round_trip_within_cap() {
    let r = req(u64::MAX, u32::MAX);
    let bytes = r.to_bytes().unwrap();
    assert!(bytes.len() <= MAX_SYNC_REQUEST_BYTES);
    assert_eq!(SyncRequest::from_bytes(&bytes).unwrap(), r);
    let oversize = SyncRequest::from_bytes(&[0; MAX_SYNC_REQUEST_BYTES + 1]).unwrap_err();
    assert_eq!(oversize.reason(), "malformed");
}

#[test]
fn largest_responses_fit_cap() {
    for resp in [
        SyncResponse {
            tip: u64::MAX,
            blobs: blobs(16, MAX_BLOB_BYTES_IN_SYNC), // the whole 4 MiB payload
        },
        SyncResponse {
            tip: u64::MAX,
            blobs: blobs(64, MAX_SYNC_PAYLOAD_BYTES / 64),
        },
    ] {
        let bytes = resp.to_bytes().unwrap();
        assert!(bytes.len() <= MAX_SYNC_RESPONSE_BYTES);
        let back = SyncResponse::from_bytes(&bytes).unwrap();
        assert_eq!(back.clone().validated(&req(1, 64)).unwrap(), resp);
    }
    let too_big = SyncResponse {
        tip: 1,
        blobs: blobs(17, MAX_BLOB_BYTES_IN_SYNC),
    };
    assert!(too_big.to_bytes().is_err());
    assert!(SyncResponse::from_bytes(&vec![0; MAX_SYNC_RESPONSE_BYTES + 1]).is_err());
}

#[test]
fn validated_checks_count_size_and_tip() {
    let resp = |tip, n, len| SyncResponse {
        tip,
        blobs: blobs(n, len),
    };
    assert_eq!(
        resp(10, 4, 1).validated(&req(1, 3)),
        Err(SyncError::TooManyBlobs { got: 4, max: 3 })
    );
    assert_eq!(
        resp(100, 65, 1).validated(&req(1, 100)),
        Err(SyncError::TooManyBlobs { got: 65, max: 64 })
    );
    assert_eq!(
        resp(5, 1, 1).validated(&req(5, 0)).unwrap_err().reason(),
        "too_many_blobs"
    );
    let big = resp(10, 2, MAX_BLOB_BYTES_IN_SYNC + 1).validated(&req(1, 2));
    assert_eq!(
        big,
        Err(SyncError::BlobTooLarge {
            index: 0,
            len: MAX_BLOB_BYTES_IN_SYNC + 1
        })
    );
    assert_eq!(big.unwrap_err().reason(), "blob_too_large");
    assert_eq!(
        resp(11, 3, 1).validated(&req(10, 3)),
        Err(SyncError::TipBelowBlobs { tip: 11, last: 12 })
    );
    assert_eq!(
        resp(u64::MAX, 2, 1).validated(&req(u64::MAX, 2)),
        Err(SyncError::TipBelowBlobs {
            tip: u64::MAX,
            last: u64::MAX
        })
    );
    assert!(resp(12, 3, 1).validated(&req(10, 3)).is_ok());
    assert!(resp(0, 0, 0).validated(&req(10, 0)).is_ok(), "tip only");
    assert!(
        resp(3, 0, 0).validated(&req(10, 5)).is_ok(),
        "nothing there"
    );
}

#[test]
fn ranges_merge_split_and_contain() {
    let mut r = Ranges::default();
    r.insert(5, 9);
    r.insert(10, 12); // adjacent: merged
    r.insert(20, 25);
    assert_eq!(r.first(), Some((5, 12)));
    r.insert(1, 30);
    assert_eq!(r.first(), Some((1, 30)));
    r.remove(10, 19);
    assert!(r.contains(9) && !r.contains(10) && !r.contains(19) && r.contains(20));
    r.remove(0, 9);
    assert_eq!(r.first(), Some((20, 30)));
    r.insert(u64::MAX - 1, u64::MAX);
    r.remove(u64::MAX, u64::MAX);
    assert!(r.contains(u64::MAX - 1) && !r.contains(u64::MAX));
}

#[test]
fn new_peer_is_probed_and_tells_its_tip() {
    let t0 = Instant::now();
    let mut p = BackfillPlanner::new(cfg(), 0);
    assert!(p.is_caught_up(), "no peer at all");
    p.peer_connected(1, t0);
    assert!(!p.is_caught_up(), "no probe answered yet");
    assert_eq!(p.next_deadline(), Some(t0));
    assert_eq!(sent(p.poll(t0)), vec![(1, req(1, 10))]);
    assert_eq!(p.in_flight(), 1);
    assert_eq!(p.next_deadline(), Some(t0 + 10 * SEC));
    p.on_response(&1, &req(1, 10), 0, 0, t0);
    assert_eq!((p.probes_answered(), p.target(), p.in_flight()), (1, 0, 0));
    assert!(p.is_caught_up());
    assert!(p.poll(t0).is_empty());
}

#[test]
fn probes_of_several_new_peers_do_not_overlap() {
    let t0 = Instant::now();
    let mut p = BackfillPlanner::new(cfg(), 5);
    for peer in 1..=3 {
        p.peer_connected(peer, t0);
    }
    assert_eq!(
        sent(p.poll(t0)),
        vec![(1, req(6, 10)), (2, req(16, 10)), (3, req(26, 10))]
    );
}

#[test]
fn ranges_are_split_over_distinct_peers_within_their_tips() {
    let t0 = Instant::now();
    let mut p = BackfillPlanner::new(cfg(), 0);
    for peer in 1..=3 {
        p.peer_connected(peer, t0);
    }
    let probes = sent(p.poll(t0));
    assert_eq!(probes.len(), 3);
    // 1 and 2 have 100 blobs and deliver; 3 has only 15 and delivers nothing from 21.
    p.on_response(&1, &req(1, 10), 100, 10, t0);
    p.on_response(&2, &req(11, 10), 100, 10, t0);
    p.on_response(&3, &req(21, 10), 15, 0, t0);
    p.set_local_height(20);
    assert_eq!(p.target(), 100);
    let out = sent(p.poll(t0));
    assert_eq!(out, vec![(1, req(21, 10)), (2, req(31, 10))]);
    // A peer with a short tip gets a request cut at its tip.
    p.observe_tip(&3, 45);
    assert_eq!(sent(p.poll(t0)), vec![(3, req(41, 5))]);
}

#[test]
fn requests_stop_at_the_peers_tip() {
    let t0 = Instant::now();
    let mut p = BackfillPlanner::new(cfg(), 0);
    p.peer_connected(1, t0);
    p.poll(t0);
    p.on_response(&1, &req(1, 10), 14, 10, t0);
    p.set_local_height(10);
    assert_eq!(sent(p.poll(t0)), vec![(1, req(11, 4))]);
}

#[test]
fn in_flight_is_bounded_probes_included() {
    let t0 = Instant::now();
    let mut p = BackfillPlanner::new(
        SyncConfig {
            max_in_flight: 2,
            ..cfg()
        },
        0,
    );
    for peer in 1..=5 {
        p.peer_connected(peer, t0);
    }
    let first = sent(p.poll(t0));
    assert_eq!(first, vec![(1, req(1, 10)), (2, req(11, 10))]);
    assert_eq!(p.in_flight(), 2);
    assert!(p.poll(t0).is_empty());
    p.on_response(&1, &req(1, 10), 1000, 10, t0);
    p.set_local_height(10);
    // The freed slot goes to the next new peer's probe, before range requests.
    assert_eq!(sent(p.poll(t0)), vec![(3, req(21, 10))]);
    assert_eq!(p.in_flight(), 2);
}

#[test]
fn a_stalled_range_completes_from_the_other_peer() {
    let t0 = Instant::now();
    let mut p = BackfillPlanner::new(cfg(), 0);
    p.peer_connected(1, t0);
    p.peer_connected(2, t0);
    assert_eq!(sent(p.poll(t0)), vec![(1, req(1, 10)), (2, req(11, 10))]);
    p.on_response(&2, &req(11, 10), 20, 10, t0 + SEC);
    assert!(p.poll(t0 + SEC).is_empty(), "1..=10 is still asked of 1");
    assert!(!p.is_caught_up());
    // Peer 1 never answers: at its deadline the range moves to peer 2 in the same poll.
    assert_eq!(sent(p.poll(t0 + 10 * SEC)), vec![(2, req(1, 10))]);
    assert_eq!(p.stalls(), 1);
    p.on_response(&2, &req(1, 10), 20, 10, t0 + 11 * SEC);
    p.set_local_height(20);
    assert!(p.is_caught_up());
    assert_eq!(p.target(), 20);
}

#[test]
fn a_backed_off_peer_is_used_again_after_its_backoff() {
    let t0 = Instant::now();
    // Tip polls every 3 s, so that the graded back-off, not the poll, sets the pace.
    let mut p = BackfillPlanner::new(
        SyncConfig {
            tip_poll_interval: 3 * SEC,
            ..cfg()
        },
        0,
    );
    p.peer_connected(1, t0);
    p.poll(t0);
    p.on_response(&1, &req(1, 10), 50, 10, t0);
    p.set_local_height(10);
    assert_eq!(sent(p.poll(t0)), vec![(1, req(11, 10))]);
    // Stalls in a row: backed off 2, 4, 8, 16, 32, then 60 s (the cap), each time asked
    // again (a probe: its tip is unknown after a stall) once the back-off has expired.
    let mut now = t0 + 10 * SEC;
    for expect in [2, 4, 8, 16, 32, 60, 60] {
        assert!(p.poll(now).is_empty(), "the only peer is backed off");
        assert_eq!(p.next_deadline(), Some(now + expect * SEC));
        assert!(p
            .poll(now + expect * SEC - Duration::from_millis(1))
            .is_empty());
        now += expect * SEC;
        assert_eq!(sent(p.poll(now)), vec![(1, req(11, 10))]);
        now += 10 * SEC;
    }
    // A useful answer clears the strikes: the next stall costs 2 s again.
    p.on_response(&1, &req(11, 10), 50, 10, now - 5 * SEC);
    p.set_local_height(20);
    assert_eq!(sent(p.poll(now - 5 * SEC)), vec![(1, req(21, 10))]);
    now += 5 * SEC;
    assert!(p.poll(now).is_empty());
    assert_eq!(p.next_deadline(), Some(now + 2 * SEC));
}

#[test]
fn the_graded_backoff_doubles_up_to_its_cap() {
    let c = SyncConfig::default();
    let secs: Vec<u64> = (0..9).map(|k| planner::backoff(&c, k).as_secs()).collect();
    assert_eq!(secs, [2, 2, 4, 8, 16, 32, 60, 60, 60]);
    assert_eq!(planner::backoff(&c, u32::MAX), 60 * SEC);
    // A first back-off above the cap is the cap.
    let odd = SyncConfig {
        first_backoff: 90 * SEC,
        ..c
    };
    assert_eq!(planner::backoff(&odd, 1), 60 * SEC);
}

#[test]
fn peers_without_strikes_are_preferred() {
    let t0 = Instant::now();
    let mut p = BackfillPlanner::new(cfg(), 0);
    p.peer_connected(1, t0);
    p.peer_connected(2, t0);
    p.poll(t0);
    p.on_failure(&1, &req(1, 10), t0);
    p.on_response(&2, &req(11, 10), 30, 10, t0);
    // 2 takes the lowest range; 1 is backed off.
    assert_eq!(sent(p.poll(t0)), vec![(2, req(1, 10))]);
    p.observe_tip(&1, 30);
    p.on_response(&2, &req(1, 10), 30, 10, t0 + 61 * SEC);
    p.set_local_height(20);
    // Both are free after the backoff; the peer with fewer strikes wins.
    assert_eq!(sent(p.poll(t0 + 61 * SEC)), vec![(2, req(21, 10))]);
}

#[test]
fn a_disconnect_mid_request_hands_the_range_over() {
    let t0 = Instant::now();
    let mut p = BackfillPlanner::new(cfg(), 0);
    p.peer_connected(1, t0);
    p.peer_connected(2, t0);
    p.poll(t0);
    p.on_response(&2, &req(11, 10), 40, 10, t0);
    p.on_response(&1, &req(1, 10), 40, 10, t0);
    p.set_local_height(20);
    assert_eq!(sent(p.poll(t0)), vec![(1, req(21, 10)), (2, req(31, 10))]);
    p.peer_disconnected(&1);
    assert_eq!(p.in_flight(), 1);
    p.on_response(&2, &req(31, 10), 40, 10, t0);
    assert_eq!(sent(p.poll(t0)), vec![(2, req(21, 10))]);
    // A late answer from the gone peer changes nothing in flight.
    p.on_response(&1, &req(21, 10), 40, 10, t0);
    assert_eq!(p.in_flight(), 1);
}

#[test]
fn a_short_answer_requeues_the_rest_while_claimed() {
    let t0 = Instant::now();
    let mut p = BackfillPlanner::new(cfg(), 0);
    p.peer_connected(1, t0);
    p.poll(t0);
    p.on_response(&1, &req(1, 10), 100, 4, t0);
    p.set_local_height(4);
    assert_eq!(sent(p.poll(t0)), vec![(1, req(5, 10))]);
    // Short because that is all it has: nothing more is asked.
    p.on_response(&1, &req(5, 10), 7, 3, t0);
    p.set_local_height(7);
    assert!(p.poll(t0).is_empty());
    assert!(p.is_caught_up());
}

#[test]
fn claiming_blobs_but_delivering_none_backs_off() {
    let t0 = Instant::now();
    let mut p = BackfillPlanner::new(cfg(), 0);
    p.peer_connected(1, t0);
    p.poll(t0);
    p.on_response(&1, &req(1, 10), 100, 0, t0);
    // The unproven claim does not hold the target up (it would keep the DA authority from
    // sealing for as long as the liar stays connected).
    assert_eq!(p.target(), 0);
    assert!(p.is_caught_up());
    assert!(p.poll(t0).is_empty());
    assert_eq!(sent(p.poll(t0 + 60 * SEC)), vec![(1, req(1, 10))]);
}

#[test]
fn a_stalled_peer_does_not_hold_the_target_up() {
    let t0 = Instant::now();
    let mut p = BackfillPlanner::new(cfg(), 0);
    p.peer_connected(1, t0);
    p.poll(t0);
    p.on_response(&1, &req(1, 10), 100, 10, t0);
    p.set_local_height(10);
    assert_eq!(p.target(), 100);
    let next = sent(p.poll(t0));
    assert_eq!(next, vec![(1, req(11, 10))]);
    // It never answers: after the timeout its tip is unknown again.
    p.poll(t0 + 11 * SEC);
    assert_eq!(p.stalls(), 1);
    assert!(p.target() <= 10, "target {}", p.target());
    assert!(p.is_caught_up());
}

#[test]
fn an_invalid_peer_is_excluded_for_good() {
    let t0 = Instant::now();
    let mut p = BackfillPlanner::new(cfg(), 0);
    p.peer_connected(1, t0);
    p.peer_connected(2, t0);
    p.poll(t0);
    p.on_response(&2, &req(11, 10), 20, 10, t0);
    // 1 lied about a huge tip before its answer turned out bad.
    p.observe_tip(&1, 1_000);
    assert_eq!(p.target(), 1_000);
    p.on_invalid(&1, &req(1, 10), t0);
    assert_eq!(p.target(), 20, "the excluded peer's tip no longer counts");
    assert_eq!(sent(p.poll(t0)), vec![(2, req(1, 10))]);
    p.peer_disconnected(&1);
    p.peer_connected(1, t0);
    p.observe_tip(&1, 2_000);
    assert_eq!(p.target(), 20);
    p.on_response(&2, &req(1, 10), 20, 10, t0);
    p.set_local_height(20);
    assert!(p
        .poll(t0 + 100 * SEC)
        .iter()
        .all(|SyncAction::Request { peer, .. }| *peer == 2));
}

#[test]
fn invalid_blobs_already_counted_are_fetched_again() {
    let t0 = Instant::now();
    let mut p = BackfillPlanner::new(cfg(), 0);
    p.peer_connected(1, t0);
    p.peer_connected(2, t0);
    p.poll(t0);
    p.on_response(&2, &req(11, 10), 20, 10, t0);
    p.on_response(&1, &req(1, 10), 20, 10, t0);
    // The chain refuses 1's blobs after the fact.
    p.on_invalid(&1, &req(1, 10), t0);
    assert_eq!(sent(p.poll(t0)), vec![(2, req(1, 10))]);
}

#[test]
fn local_progress_drops_covered_ranges() {
    let t0 = Instant::now();
    let mut p = BackfillPlanner::new(cfg(), 0);
    p.peer_connected(1, t0);
    p.poll(t0);
    p.on_response(&1, &req(1, 10), 100, 10, t0);
    // Gossip delivered up to 57 meanwhile.
    p.set_local_height(57);
    assert_eq!(sent(p.poll(t0)), vec![(1, req(58, 10))]);
    p.set_local_height(100);
    p.on_response(&1, &req(58, 10), 100, 10, t0);
    assert!(p.poll(t0).is_empty());
    assert!(p.is_caught_up());
}

#[test]
fn delivered_blobs_the_chain_lost_are_fetched_again() {
    let t0 = Instant::now();
    let mut p = BackfillPlanner::new(cfg(), 0);
    p.peer_connected(1, t0);
    p.poll(t0);
    p.on_response(&1, &req(1, 10), 30, 10, t0);
    // The local height did not move: blob 1 was not applied.
    assert_eq!(sent(p.poll(t0)), vec![(1, req(1, 10))]);
}

#[test]
fn out_of_order_delivery_is_not_fetched_twice() {
    let t0 = Instant::now();
    let mut p = BackfillPlanner::new(cfg(), 0);
    p.peer_connected(1, t0);
    p.peer_connected(2, t0);
    p.poll(t0);
    p.on_response(&2, &req(11, 10), 25, 10, t0); // held by the chain: local stays 0
    assert_eq!(sent(p.poll(t0)), vec![(2, req(21, 5))]);
}

#[test]
fn idle_planner_probes_one_peer_per_interval_round_robin() {
    let t0 = Instant::now();
    let mut p = BackfillPlanner::new(cfg(), 0);
    p.peer_connected(1, t0);
    p.peer_connected(2, t0);
    p.poll(t0);
    p.on_response(&1, &req(1, 10), 0, 0, t0);
    p.on_response(&2, &req(11, 10), 0, 0, t0);
    assert!(p.poll(t0 + 29 * SEC).is_empty());
    assert_eq!(p.next_deadline(), Some(t0 + 30 * SEC));
    let mut probed = Vec::new();
    for i in 1..=4u32 {
        let now = t0 + 30 * i * SEC;
        let out = sent(p.poll(now));
        assert_eq!(out.len(), 1);
        let (peer, r) = out[0];
        assert_eq!(r, req(1, 10));
        p.on_response(&peer, &r, 0, 0, now);
        probed.push(peer);
    }
    assert_eq!(probed, vec![1, 2, 1, 2]);
    assert_eq!(p.probes_answered(), 6);
}

#[test]
fn honest_peers_get_each_height_asked_once() {
    let t0 = Instant::now();
    let tips = [0u64, 200, 150, 90];
    let mut p = BackfillPlanner::new(cfg(), 0);
    for peer in 1..=3u8 {
        p.peer_connected(peer, t0);
    }
    let mut asked = Ranges::default();
    let mut local = 0;
    let mut have = std::collections::BTreeSet::new();
    for round in 0..100u32 {
        let now = t0 + round * SEC;
        for (peer, r) in sent(p.poll(now)) {
            if let Some((a, b)) = r.range() {
                for h in a..=b {
                    assert!(!asked.contains(h), "height {h} asked twice");
                }
                asked.insert(a, b);
            }
            let tip = tips[usize::from(peer)];
            let n = if tip >= r.from {
                u64::from(r.count).min(tip - r.from + 1)
            } else {
                0
            };
            have.extend(r.from..r.from + n);
            p.on_response(&peer, &r, tip, u32::try_from(n).unwrap(), now);
            while have.contains(&(local + 1)) {
                local += 1;
            }
            p.set_local_height(local);
        }
        if p.is_caught_up() && local == 200 {
            break;
        }
    }
    assert_eq!(local, 200);
    assert!(p.is_caught_up());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), from in any::<u64>(), count in any::<u32>()) {
        let _ = SyncRequest::from_bytes(&bytes);
        if let Ok(resp) = SyncResponse::from_bytes(&bytes) {
            if let Ok(ok) = resp.validated(&req(from, count)) {
                prop_assert!(ok.blobs.len() <= count.min(MAX_SYNC_BLOBS) as usize);
            }
        }
    }
}
