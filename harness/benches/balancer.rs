//! Criterion benchmarks of `Balancing::pick` for every strategy at 3, 16 and 64 nodes
//! (the goal: at most 100 ns at 64 nodes). Every node is healthy and one to four tries
//! are in flight on each node, so that the load-aware strategies compare real counts and never
//! stop early at an idle node. Keys cycle through 256 distinct strings. Leader-aware runs three
//! ways: with the leader learned from replies (the usual case once writes succeed), from the
//! observer's view only, and with no leader at all (its p2c fallback, outlier detection on).
//!
//! Run with `cargo bench -p faultline --bench balancer`; add
//! `-- --measurement-time 2 --warm-up-time 1` for a quick pass.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use faultline::balancer::{Balancing, InFlight, NodeSet};
use faultline::cluster::ClusterView;
use faultline::experiment::BalancerCfg;
use faultline_protocol::Role;

/// (bench name, `balancer:` YAML; `{weights}` is replaced by a weight for every node)
const STRATEGIES: [(&str, &str); 10] = [
    ("round-robin", "kind: round-robin"),
    ("random", "kind: random"),
    ("weighted", "{kind: weighted, weights: {weights}}"),
    ("least-outstanding", "kind: least-outstanding"),
    ("p2c", "kind: p2c"),
    ("hash", "kind: hash"),
    ("hash-bounded", "{kind: hash, bounded_load: 1.25}"),
    ("leader-aware-learned", "kind: leader-aware"),
    ("leader-aware-view", "kind: leader-aware"),
    (
        "leader-aware-no-leader",
        "{kind: leader-aware, fallback: p2c, outlier: {}}",
    ),
];

fn pick(c: &mut Criterion) {
    let keys: Vec<String> = (0..256).map(|i| format!("key-{i}")).collect();
    for (name, yaml) in STRATEGIES {
        let mut group = c.benchmark_group(format!("pick/{name}"));
        for n in [3usize, 16, 64] {
            let ids: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
            let weights: Vec<String> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| format!("{id}: {}", i % 5 + 1))
                .collect();
            let yaml = yaml.replace("{weights}", &format!("{{{}}}", weights.join(", ")));
            let cfg: BalancerCfg = serde_yaml::from_str(&yaml).expect("bench YAML parses");
            let lb = Balancing::new(&cfg, &ids, 1).expect("bench balancer builds");
            let mut view = ClusterView::new(&ids);
            for node in &mut view.nodes {
                node.reachable = true;
                node.role = Role::Follower;
                node.term = 3;
            }
            if name != "leader-aware-no-leader" {
                view.nodes[n / 2].role = Role::Leader;
            }
            if name == "leader-aware-learned" {
                lb.learn_leader(n / 2);
            }
            // 1 to 4 tries in flight per node: no idle node to stop a search early.
            let now = Instant::now();
            let _in_flight: Vec<InFlight<'_>> = (0..n)
                .flat_map(|i| std::iter::repeat_n(i, (i * 7) % 4 + 1))
                .map(|i| lb.start(i, now))
                .collect();
            let mut k = 0usize;
            group.bench_function(BenchmarkId::from_parameter(n), |b| {
                b.iter(|| {
                    k = (k + 1) & 255;
                    lb.pick(black_box(&keys[k]), black_box(&view), &[])
                })
            });
        }
        group.finish();
    }
}

/// The floor under every strategy that needs the whole candidate set: the usable nodes as the
/// view keeps them (derived once per change of the view), minus tried and ejected ones.
/// `candidates-after-write` is the first pick after the observer wrote the view: one pass over
/// every node, then cached until the next write.
fn candidates(c: &mut Criterion) {
    let mut group = c.benchmark_group("candidates");
    for n in [3usize, 16, 64] {
        let ids: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        let view = ClusterView::new(&ids);
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| faultline::balancer::candidates(black_box(&view), n, &[], NodeSet::EMPTY))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("candidates-after-write");
    for n in [3usize, 16, 64] {
        let ids: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        let mut view = ClusterView::new(&ids);
        let mut k = 0usize;
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                k = (k + 1) % n;
                view.nodes[k].reachable = true;
                faultline::balancer::candidates(black_box(&view), n, &[], NodeSet::EMPTY)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, candidates, pick);
criterion_main!(benches);
