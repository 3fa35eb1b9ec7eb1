//! Criterion benchmarks of the consistency checker: Porcupine's six key-value histories
//! (compare with Porcupine's own figures in `tests/fixtures/porcupine-kv/README.md`), a
//! 10,000-op register history on 100 keys, and 2,000 ops of 10 clients on one key (the
//! 50-client case is in `tests/checker/check_scale.rs`, where it ends `unknown` at its budget).
//!
//! Run with `cargo bench -p faultline --bench checker`. The 1,000,000-op history is an
//! ignored test (`tests/checker/check_scale.rs`), too long for criterion's repetitions.

#[path = "gen/mod.rs"]
mod gen;

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use faultline::check::{self, CheckOptions, ModelKind, Verdict};
use faultline::history::import::Foreign;

const PORCUPINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/porcupine-kv/");

fn porcupine(c: &mut Criterion) {
    let mut group = c.benchmark_group("porcupine-kv");
    let opts = CheckOptions {
        model: ModelKind::KvAppend,
        ..CheckOptions::default()
    };
    for name in [
        "c01-ok", "c01-bad", "c10-ok", "c10-bad", "c50-ok", "c50-bad",
    ] {
        let path = format!("{PORCUPINE}{name}.txt");
        let kv = Foreign::load(Path::new(&path))
            .and_then(|f| f.to_kv())
            .unwrap_or_else(|e| panic!("{e}"));
        let want = if name.ends_with("-ok") {
            Verdict::Valid
        } else {
            Verdict::Invalid
        };
        assert_eq!(check::check_kv(&kv, &opts).verdict(), want, "{name}");
        group.bench_with_input(BenchmarkId::from_parameter(name), &kv, |b, kv| {
            b.iter(|| check::check_kv(kv, &opts))
        });
    }
    group.finish();
}

fn registers(c: &mut Criterion) {
    let mut group = c.benchmark_group("register");
    group.sample_size(10);
    let opts = CheckOptions {
        time_budget: Duration::from_secs(10),
        ..CheckOptions::default()
    };
    // (name, clients, ops, keys)
    for (name, clients, ops, keys) in [
        ("10k-ops-100-keys-16-clients", 16, 10_000, 100),
        ("one-key-10-clients-2000-ops", 10, 2_000, 1),
    ] {
        let h = gen::register_history(42, clients, ops, keys);
        assert_eq!(check::check(&h, &opts).verdict(), Verdict::Valid, "{name}");
        group.bench_with_input(BenchmarkId::from_parameter(name), &h, |b, h| {
            b.iter(|| check::check(h, &opts))
        });
    }
    group.finish();
}

criterion_group!(benches, porcupine, registers);
criterion_main!(benches);
