//! The checker at scale: 1,000,000 operations on 1,000 keys from 16 clients must check in
//! under 10 s on the CI machine's 2 cores, and a single key with 50 concurrent clients and
//! 2,000 operations must finish or say unknown within its budget. Prints the time and the
//! peak memory (VmHWM). The first is ignored by default (run it in release:
//! `cargo test --release -p faultline --test checker check_scale -- --ignored --nocapture`).

use crate::gen;

use std::time::{Duration, Instant};

use faultline::check::{self, CheckOptions, Verdict};

/// Peak resident memory of this process, from /proc/self/status.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

#[test]
#[ignore]
fn a_million_ops_on_a_thousand_keys_in_under_ten_seconds() {
    let t = Instant::now();
    let h = gen::register_history(7, 16, 1_000_000, 1_000);
    eprintln!(
        "generated {} ops in {:?}, peak RSS {}",
        h.ops.len(),
        t.elapsed(),
        peak_rss()
    );
    let opts = CheckOptions {
        time_budget: Duration::from_secs(30),
        ..CheckOptions::default()
    };
    let t = Instant::now();
    let report = check::check(&h, &opts);
    let took = t.elapsed();
    eprintln!(
        "checked 1,000,000 ops on 1,000 keys (16 clients): {} ({:?}) in {took:?}, peak RSS {}",
        report.verdict(),
        report.keys,
        peak_rss()
    );
    assert_eq!(report.verdict(), Verdict::Valid, "{:?}", report.notes);
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn one_key_fifty_clients_finishes_or_says_unknown_within_its_budget() {
    let h = gen::register_history(42, 50, 2_000, 1);
    let budget = Duration::from_secs(5);
    let opts = CheckOptions {
        time_budget: budget,
        ..CheckOptions::default()
    };
    let t = Instant::now();
    let report = check::check(&h, &opts);
    let took = t.elapsed();
    eprintln!(
        "one key, 50 clients, 2,000 ops: {} in {took:?}, peak RSS {}",
        report.verdict(),
        peak_rss()
    );
    assert_ne!(report.verdict(), Verdict::Invalid, "{:?}", report.notes);
    assert!(took < budget + Duration::from_secs(2), "took {took:?}");

    // One read changed to a value written long before: invalid, or unknown, never valid.
    let mut h = h;
    let first = h
        .ops
        .iter()
        .find(|o| o.value.is_some() && o.f != faultline_protocol::OpKind::Read)
        .and_then(|o| o.value);
    let n = h.ops.len();
    let victim = h.ops[n / 2..]
        .iter_mut()
        .find(|o| o.f == faultline_protocol::OpKind::Read && o.value.is_some())
        .expect("a read");
    victim.value = first;
    let report = check::check(&h, &opts);
    assert_ne!(report.verdict(), Verdict::Valid);
}
