//! Tests of the strategies through [`Balancing`], as the workload uses them: exact
//! round-robin, nginx's weighted sequence and shares, key movement and bounded loads on the
//! ring, load-aware picks, ejected nodes skipped by every strategy, and the per-node counters.
//! Randomness is seeded everywhere.

use std::time::{Duration, Instant};

use faultline_protocol::Role;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

fn ids(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("n{i}")).collect()
}

fn view(n: usize) -> ClusterView {
    let mut v = ClusterView::new(&ids(n));
    for node in &mut v.nodes {
        node.reachable = true;
        node.role = Role::Follower;
    }
    v
}

fn cfg(yaml: &str) -> BalancerCfg {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

fn lb(yaml: &str, n: usize) -> Balancing {
    Balancing::new(&cfg(yaml), &ids(n), 42).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

fn picks(b: &Balancing, v: &ClusterView, count: usize) -> Vec<usize> {
    (0..count).map(|_| b.pick("k", v, &[]).unwrap()).collect()
}

/// Share of each node in `picks`, over `n` nodes.
fn shares(picks: &[usize], n: usize) -> Vec<f64> {
    let mut counts = vec![0usize; n];
    for &p in picks {
        counts[p] += 1;
    }
    counts
        .iter()
        .map(|&c| c as f64 / picks.len() as f64)
        .collect()
}

#[test]
fn round_robin_cycles_exactly_and_skips_down_nodes() {
    let rr = lb("kind: round-robin", 3);
    let mut v = view(3);
    assert_eq!(picks(&rr, &v, 6), [0, 1, 2, 0, 1, 2]);
    v.nodes[1].down = true;
    let p = picks(&rr, &v, 4);
    assert!(p.iter().all(|&p| p != 1), "{p:?}");
    assert_eq!(rr.pick("k", &v, &[0]), Some(2));
    // Nothing usable: still a node to fail against.
    for n in &mut v.nodes {
        n.healthy = false;
    }
    assert!(rr.pick("k", &v, &[]).is_some());
    let empty = Balancing::new(&cfg("kind: round-robin"), &[], 1).unwrap();
    assert_eq!(empty.pick("k", &ClusterView::new(&[]), &[]), None);
}

#[test]
fn leader_aware_follows_hints_then_view_then_falls_back() {
    let la = lb("kind: leader-aware", 3);
    let mut v = view(3);
    v.nodes[2].role = Role::Leader;
    v.nodes[2].term = 4;
    assert_eq!(la.pick("k", &v, &[]), Some(2));
    la.learn_leader(1);
    assert_eq!(la.pick("k", &v, &[]), Some(1));
    // A refused connection forgets the learned leader; the view's leader is next.
    let t = Instant::now();
    la.start(1, t).finish(Reply::Refused, t);
    assert_eq!(la.pick("k", &v, &[]), Some(2));
    // The leader already failed this op: try someone else.
    let other = la.pick("k", &v, &[2]).unwrap();
    assert_ne!(other, 2);
    v.nodes[2].healthy = false;
    assert_ne!(la.pick("k", &v, &[]), Some(2));
}

#[test]
fn leader_aware_uses_its_fallback_strategy() {
    let la = lb("{kind: leader-aware, fallback: least-outstanding}", 3);
    assert_eq!(la.name(), "leader-aware");
    let v = view(3);
    let t = Instant::now();
    let _busy = [la.start(0, t), la.start(1, t)];
    // No leader known: the least loaded node.
    assert_eq!(la.pick("k", &v, &[]), Some(2));
    let hashed = lb("{kind: leader-aware, fallback: hash, vnodes: 8}", 3);
    let first = hashed.pick("some-key", &v, &[]);
    assert!((0..20).all(|_| hashed.pick("some-key", &v, &[]) == first));
}

/// nginx's example: weights a=5, b=1, c=1 give a, a, b, a, c, a, a.
#[test]
fn smooth_weighted_follows_the_nginx_sequence() {
    let w = SmoothWeighted::new(&[5, 1, 1], 0);
    assert_eq!(w.schedule(), [0, 0, 1, 0, 2, 0, 0]);
    let b = lb("{kind: weighted, weights: {n1: 5, n2: 1, n3: 1}}", 3);
    assert_eq!(picks(&b, &view(3), 14), [0, 0, 1, 0, 2, 0, 0].repeat(2));
    // A common factor does not change the order; weight 0 is never scheduled.
    assert_eq!(
        SmoothWeighted::new(&[10, 2, 2, 0], 0).schedule(),
        [0, 0, 1, 0, 2, 0, 0]
    );
}

/// Over 100,000 picks every node's share is within 1% of its weight's share, with all nodes
/// up and with one down (its weight then shared out by weight among the rest).
#[test]
fn weighted_shares_are_within_one_percent() {
    // (weights, weight of every node, the node down, the shares expected with it down)
    type Case = (&'static str, &'static [f64], Option<usize>, &'static [f64]);
    let cases: &[Case] = &[
        ("{n1: 5, n2: 1, n3: 1}", &[5.0, 1.0, 1.0], None, &[]),
        (
            "{n1: 3, n2: 2, n3: 7, n4: 1}",
            &[3.0, 2.0, 7.0, 1.0],
            None,
            &[],
        ),
        ("{n1: 100, n2: 1}", &[100.0, 1.0, 1.0], None, &[]),
        (
            "{n1: 5, n2: 3, n3: 2}",
            &[5.0, 3.0, 2.0],
            Some(0),
            &[0.0, 0.6, 0.4],
        ),
        (
            "{n1: 1, n2: 999}",
            &[1.0, 999.0, 1.0],
            Some(1),
            &[0.5, 0.0, 0.5],
        ),
    ];
    for &(weights, w, down, want) in cases {
        let n = w.len();
        let b = lb(&format!("{{kind: weighted, weights: {weights}}}"), n);
        let mut v = view(n);
        let total: f64 = w.iter().sum();
        let mut want: Vec<f64> = want.to_vec();
        if let Some(d) = down {
            v.nodes[d].down = true;
        } else {
            want = w.iter().map(|x| x / total).collect();
        }
        let got = shares(&picks(&b, &v, 100_000), n);
        for (g, e) in got.iter().zip(&want) {
            assert!(
                (g - e).abs() <= 0.01,
                "{weights} down {down:?}: {got:?} vs {want:?}"
            );
        }
    }
}

/// Adding a node to a ring of N moves only the keys the new node takes: about 1/(N+1) of
/// them, and at most 1.5/(N+1).
#[test]
fn consistent_hash_moves_about_one_nth_of_keys_when_a_node_joins() {
    let keys: Vec<String> = (0..10_000).map(|i| format!("key-{i}")).collect();
    for n in [3usize, 5, 8, 15] {
        let before = lb("kind: hash", n);
        let after = lb("kind: hash", n + 1);
        let (vb, va) = (view(n), view(n + 1));
        let mut moved = 0;
        for k in &keys {
            let (b, a) = (before.pick(k, &vb, &[]), after.pick(k, &va, &[]));
            if a != b {
                assert_eq!(a, Some(n), "{k} moved between old nodes");
                moved += 1;
            }
        }
        let limit = 1.5 / (n + 1) as f64 * keys.len() as f64;
        assert!(
            (moved as f64) <= limit && moved > 0,
            "{n} -> {}: {moved} keys moved (limit {limit})",
            n + 1
        );
    }
    // A node going down moves only its own keys, and they come back with it.
    let ring = lb("{kind: hash, vnodes: 64}", 5);
    let mut v = view(5);
    let home: Vec<_> = keys.iter().map(|k| ring.pick(k, &v, &[])).collect();
    v.nodes[3].healthy = false;
    for (k, h) in keys.iter().zip(&home) {
        let now = ring.pick(k, &v, &[]);
        assert_ne!(now, Some(3));
        if *h != Some(3) {
            assert_eq!(now, *h, "{k}");
        }
    }
}

/// With bounded loads no node ever holds more than ceil(c × mean) operations, even when
/// every operation is on a handful of keys; finished operations free their place.
#[test]
fn bounded_load_never_exceeds_the_bound() {
    for (c, n) in [(1.25, 3usize), (1.25, 8), (1.5, 5), (1.0, 4)] {
        let b = lb(&format!("{{kind: hash, bounded_load: {c}}}"), n);
        let v = view(n);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let t = Instant::now();
        let mut open = Vec::new();
        for step in 0..2_000 {
            let in_flight: u64 = (0..n).map(|i| b.load.outstanding(i)).sum();
            let cap = (c * (in_flight + 1) as f64 / n as f64).ceil() as u64;
            let key = format!("hot-{}", rng.gen_range(0..3));
            let node = b.pick(&key, &v, &[]).unwrap();
            open.push(b.start(node, t));
            assert!(
                b.load.outstanding(node) <= cap,
                "c={c} n={n} step {step}: node {node} over {cap}"
            );
            // Without finishes, the bound holds for every node at every step.
            if step < 500 {
                let total = in_flight + 1;
                let bound = (c * total as f64 / n as f64).ceil() as u64;
                assert!(
                    (0..n).all(|i| b.load.outstanding(i) <= bound),
                    "step {step}"
                );
            } else if rng.gen_bool(0.5) && !open.is_empty() {
                let i = rng.gen_range(0..open.len());
                open.swap_remove(i).finish(Reply::Served, t);
            }
        }
        for f in open {
            f.finish(Reply::Served, t);
        }
    }
}

#[test]
fn least_outstanding_picks_the_least_loaded() {
    let b = lb("kind: least-outstanding", 4);
    let v = view(4);
    let t = Instant::now();
    let loads = [3, 1, 0, 2];
    let mut open = Vec::new();
    for (node, &l) in loads.iter().enumerate() {
        for _ in 0..l {
            open.push(b.start(node, t));
        }
    }
    assert!((0..10).all(|_| b.pick("k", &v, &[]) == Some(2)));
    // Node 2 tried already: the next least loaded.
    assert_eq!(b.pick("k", &v, &[2]), Some(1));
    // An idle cluster is spread evenly.
    drop(open);
    let p = picks(&b, &v, 8);
    assert_eq!(shares(&p, 4), [0.25; 4], "{p:?}");
}

/// Of two random choices out of three nodes, one is always idle when only one node is busy.
#[test]
fn p2c_never_picks_the_busiest_of_three_when_two_are_idle() {
    let b = lb("kind: p2c", 3);
    let v = view(3);
    let t = Instant::now();
    for busy in 0..3 {
        let open: Vec<_> = (0..5).map(|_| b.start(busy, t)).collect();
        let p = picks(&b, &v, 1_000);
        assert!(!p.contains(&busy), "busy {busy}");
        // The two idle ones share the load.
        let s = shares(&p, 3);
        assert!(
            s.iter().enumerate().all(|(i, &x)| i == busy || x > 0.4),
            "{s:?}"
        );
        drop(open);
    }
    // With as many choices as nodes, it is least-outstanding.
    let all = lb("{kind: p2c, choice_count: 3}", 3);
    let _open = [all.start(0, t), all.start(2, t)];
    assert!((0..100).all(|_| all.pick("k", &v, &[]) == Some(1)));
}

#[test]
fn random_is_seeded_and_uniform() {
    let v = view(4);
    let a = picks(&lb("kind: random", 4), &v, 40_000);
    let b = picks(&lb("kind: random", 4), &v, 40_000);
    assert_eq!(a, b);
    assert!(shares(&a, 4).iter().all(|s| (s - 0.25).abs() < 0.01));
    let other = Balancing::new(&cfg("kind: random"), &ids(4), 43).unwrap();
    assert_ne!(picks(&other, &v, 100), a[..100]);
}

/// Every strategy skips an ejected node until it is re-admitted.
#[test]
fn ejected_nodes_are_skipped_by_every_strategy() {
    let outlier = "outlier: {consecutive_failures: 2, base_ejection: 1s}";
    for kind in BalancerKind::ALL {
        let b = lb(&format!("{{kind: {}, {outlier}}}", kind.as_str()), 3);
        let mut v = view(3);
        v.nodes[1].role = Role::Leader;
        v.nodes[1].term = 2;
        let t0 = Instant::now();
        b.learn_leader(1);
        for _ in 0..2 {
            b.start(1, t0).finish(Reply::Refused, t0);
        }
        assert_eq!(b.ejected(), NodeSet::EMPTY.with(1), "{kind:?}");
        for i in 0..200 {
            let key = format!("key-{i}");
            assert_ne!(b.pick(&key, &v, &[]), Some(1), "{kind:?} {key}");
        }
        let events = b.drain_events(t0 + Duration::from_secs(1));
        assert_eq!(events.len(), 2, "{kind:?}");
        assert_eq!(events[1].transition, Transition::Readmitted);
        assert!(b.ejected().is_empty());
        let back = (0..200).any(|i| b.pick(&format!("key-{i}"), &v, &[]) == Some(1));
        assert!(back, "{kind:?} never picks the re-admitted node");
    }
}

/// Every strategy sends a retry to a node the operation has not tried when there is one, and
/// to a usable node (not a down one) when it has tried them all.
#[test]
fn every_strategy_avoids_tried_and_down_nodes() {
    for kind in BalancerKind::ALL {
        let b = lb(&format!("kind: {}", kind.as_str()), 4);
        let mut v = view(4);
        v.nodes[0].role = Role::Leader;
        v.nodes[0].term = 1;
        v.nodes[3].down = true;
        for i in 0..100 {
            let key = format!("key-{i}");
            assert_eq!(b.pick(&key, &v, &[0, 1]), Some(2), "{kind:?} {key}");
            let any = b.pick(&key, &v, &[0, 1, 2]);
            assert!(matches!(any, Some(0..=2)), "{kind:?} {key}: {any:?}");
        }
    }
}

#[test]
fn stats_count_tries_and_waste_per_node() {
    let b = lb("{kind: round-robin, outlier: {consecutive_failures: 1}}", 3);
    let t = Instant::now();
    let ms = Duration::from_millis;
    b.start(0, t).finish(Reply::Served, t + ms(2));
    b.start(0, t).finish(Reply::Served, t + ms(4));
    b.start(0, t).finish(Reply::Rejected, t);
    b.start(1, t).finish(Reply::NotLeader, t);
    b.start(1, t).finish(Reply::Unavailable, t);
    b.start(2, t).finish(Reply::Refused, t);
    let pending = b.start(2, t);
    drop(b.start(2, t));
    let s = b.stats();
    assert_eq!(s.len(), 3);
    assert_eq!(
        (
            s[0].node.as_str(),
            s[0].tries.sent,
            s[0].tries.served,
            s[0].tries.rejected,
            s[0].tries.wasted
        ),
        ("n1", 3, 2, 1, 0)
    );
    assert!((s[0].mean_served_ms - 3.0).abs() < 1e-9);
    assert_eq!(
        (
            s[1].tries.not_leader,
            s[1].tries.unavailable,
            s[1].tries.wasted
        ),
        (1, 1, 1)
    );
    assert_eq!((s[1].ejections, s[1].ejected), (1, true));
    assert_eq!(
        (s[2].tries.sent, s[2].tries.refused, s[2].tries.wasted),
        (3, 1, 1)
    );
    assert_eq!((s[2].outstanding, s[2].tries.abandoned), (1, 1));
    // Node 2's refusal came while node 1 was out: 50% of 3 nodes is one.
    assert_eq!((s[2].ejections, s[2].ejected), (0, false));
    pending.finish(Reply::Indefinite, t);
    assert_eq!(b.stats()[2].outstanding, 0);
}

#[test]
fn retries_stop_at_the_budget() {
    let t = Instant::now();
    let b = lb(
        "{kind: round-robin, retry_budget: {ratio: 0.5, min_per_sec: 0}}",
        3,
    );
    for _ in 0..4 {
        b.operation_started(t);
    }
    let allowed = (0..10).filter(|_| b.allow_retry(t)).count();
    assert_eq!((allowed, b.retries_denied()), (2, 8));
    // No budget: retries are limited by max_tries only.
    let free = lb("kind: round-robin", 3);
    assert!((0..100).all(|_| free.allow_retry(t)));
}

#[test]
fn bad_configurations_are_typed_errors() {
    let weighted = cfg("{kind: weighted, weights: {n9: 2}}");
    match Balancing::new(&weighted, &ids(3), 0) {
        Err(BalancerError::UnknownNode { node, known }) => {
            assert_eq!((node.as_str(), known.as_str()), ("n9", "n1, n2, n3"))
        }
        other => panic!("{:?}", other.err()),
    }
    assert_eq!(
        Balancing::new(&BalancerCfg::default(), &ids(65), 0).err(),
        Some(BalancerError::TooManyNodes { nodes: 65 })
    );
    // The defaults never fail: they take the first 64 nodes.
    assert_eq!(
        Balancing::with_defaults(BalancerKind::Weighted, &ids(65))
            .node_ids()
            .len(),
        64
    );
}

/// Reply classification from the wire: what counts against a node and what is wasted.
#[test]
fn replies_map_from_wire_errors() {
    use ErrorCode::*;
    let cases = [
        (NotLeader, true, Reply::NotLeader),
        (CasMismatch, true, Reply::Rejected),
        (BadRequest, true, Reply::Rejected),
        (Unavailable, true, Reply::Unavailable),
        (Timeout, false, Reply::Indefinite),
        (Other, false, Reply::Indefinite),
        (NotLeader, false, Reply::Indefinite),
    ];
    for (code, definite, want) in cases {
        assert_eq!(Reply::from_error(code, definite), want, "{code:?}");
    }
    assert_eq!(
        Reply::from_call_error(&CallError::NotSent("x".into())),
        Reply::Refused
    );
    assert_eq!(
        Reply::from_call_error(&CallError::Timeout),
        Reply::Indefinite
    );
    assert!(Reply::Refused.wasted() && Reply::NotLeader.wasted());
    assert!(!Reply::Unavailable.wasted() && Reply::Unavailable.counts_against_node());
    assert!(!Reply::NotLeader.counts_against_node());
}
