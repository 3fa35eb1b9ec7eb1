//! The one table of the metrics `faultline gate` rules name and `faultline compare` lines up:
//! each metric once, with where it sits in `report.json`, what its number means, and, for the
//! compared ones, how a comparison shows it. Adding a metric to both commands is one row here.

use super::compare::{Better, Kind, Metric};

/// What a metric's number means, for reading rule values and printing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    /// A fraction in [0, 1]; `99%` reads as 0.99.
    Ratio,
    Ms,
    Us,
    PerSecond,
    Bool,
    Verdict,
}

/// Where a metric's value comes from in `report.json`.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// A number, boolean or string at this JSON pointer.
    At(&'static str),
    /// The length of the array at this pointer.
    Len(&'static str),
    /// Every consistency violation: listed, omitted from the list, and terms with two leaders.
    Violations,
}

/// How `faultline compare` shows a metric: its stable id (JSON output), its heading, how its
/// values read, which way is better, and its display unit, scale and decimals.
#[derive(Debug, Clone, Copy)]
pub struct Shown {
    pub id: &'static str,
    pub label: &'static str,
    pub kind: Kind,
    pub better: Better,
    pub unit: &'static str,
    pub scale: f64,
    pub decimals: usize,
}

/// One metric: the name gate rules use, where it is, its unit, and how compare shows it (if it
/// does).
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub rule: &'static str,
    pub source: Source,
    pub unit: Unit,
    pub shown: Option<Shown>,
}

/// Microseconds in the report, milliseconds on screen.
const US_AS_MS: f64 = 0.001;

const fn shown(id: &'static str, label: &'static str, kind: Kind, better: Better) -> Shown {
    Shown {
        id,
        label,
        kind,
        better,
        unit: "",
        scale: 1.0,
        decimals: 0,
    }
}

const fn with_unit(s: Shown, unit: &'static str, scale: f64, decimals: usize) -> Option<Shown> {
    Some(Shown {
        unit,
        scale,
        decimals,
        ..s
    })
}

const fn entry(rule: &'static str, source: Source, unit: Unit, shown: Option<Shown>) -> Entry {
    Entry {
        rule,
        source,
        unit,
        shown,
    }
}

/// Every metric, in the order compare shows them (the gate-only ones among them).
pub const CATALOG: &[Entry] = {
    use Better::{Higher, Lower};
    use Kind::{Count, Number, Share};
    use Source::{At, Len, Violations};
    &[
        entry(
            "verdict",
            At("/verdict"),
            Unit::Verdict,
            Some(shown("verdict", "verdict", Kind::Text, Better::None)),
        ),
        entry(
            "passed",
            At("/passed"),
            Unit::Bool,
            Some(shown("passed", "passed", Kind::Bool, Better::None)),
        ),
        entry("aborted", At("/aborted"), Unit::Bool, None),
        entry(
            "ops_ok",
            At("/ops/ok"),
            Unit::Count,
            Some(shown("ops_ok", "ops ok", Count, Higher)),
        ),
        entry(
            "ops_fail",
            At("/ops/fail"),
            Unit::Count,
            Some(shown("ops_fail", "ops fail", Count, Lower)),
        ),
        entry(
            "ops_info",
            At("/ops/info"),
            Unit::Count,
            Some(shown("ops_info", "ops info", Count, Lower)),
        ),
        entry(
            "throughput",
            At("/throughput/ok_per_s"),
            Unit::PerSecond,
            with_unit(
                shown("throughput_ok_per_s", "throughput ok/s", Number, Higher),
                "ops/s",
                1.0,
                1,
            ),
        ),
        entry(
            "availability",
            At("/availability/overall"),
            Unit::Ratio,
            with_unit(
                shown("availability_overall", "availability", Share, Higher),
                "",
                1.0,
                2,
            ),
        ),
        entry(
            "availability_steady",
            At("/availability/steady"),
            Unit::Ratio,
            None,
        ),
        entry(
            "availability_faulted",
            At("/availability/faulted"),
            Unit::Ratio,
            with_unit(
                shown(
                    "availability_faulted",
                    "availability faulted",
                    Share,
                    Higher,
                ),
                "",
                1.0,
                2,
            ),
        ),
        entry(
            "availability_after_heal",
            At("/availability/after_heal"),
            Unit::Ratio,
            with_unit(
                shown(
                    "availability_after_heal",
                    "availability after heal",
                    Share,
                    Higher,
                ),
                "",
                1.0,
                2,
            ),
        ),
        entry(
            "recovery_p50",
            At("/failover/recovery_ms/p50"),
            Unit::Ms,
            with_unit(
                shown("recovery_p50_ms", "recovery p50 ms", Number, Lower),
                "ms",
                1.0,
                1,
            ),
        ),
        entry(
            "recovery_p99",
            At("/failover/recovery_ms/p99"),
            Unit::Ms,
            with_unit(
                shown("recovery_p99_ms", "recovery p99 ms", Number, Lower),
                "ms",
                1.0,
                1,
            ),
        ),
        entry(
            "recovery_max",
            At("/failover/recovery_ms/max"),
            Unit::Ms,
            with_unit(
                shown("recovery_max_ms", "recovery max ms", Number, Lower),
                "ms",
                1.0,
                1,
            ),
        ),
        entry(
            "election_p50",
            At("/failover/election_ms/p50"),
            Unit::Ms,
            with_unit(
                shown("election_p50_ms", "election p50 ms", Number, Lower),
                "ms",
                1.0,
                1,
            ),
        ),
        entry(
            "election_p99",
            At("/failover/election_ms/p99"),
            Unit::Ms,
            with_unit(
                shown("election_p99_ms", "election p99 ms", Number, Lower),
                "ms",
                1.0,
                1,
            ),
        ),
        entry(
            "election_max",
            At("/failover/election_ms/max"),
            Unit::Ms,
            None,
        ),
        entry(
            "client_lag_p99",
            At("/failover/client_lag_ms/p99"),
            Unit::Ms,
            None,
        ),
        entry(
            "latency_p50",
            At("/latency_all_us/p50"),
            Unit::Us,
            with_unit(
                shown("latency_p50_ms", "latency p50 ms", Number, Lower),
                "ms",
                US_AS_MS,
                2,
            ),
        ),
        entry("latency_p90", At("/latency_all_us/p90"), Unit::Us, None),
        entry(
            "latency_p99",
            At("/latency_all_us/p99"),
            Unit::Us,
            with_unit(
                shown("latency_p99_ms", "latency p99 ms", Number, Lower),
                "ms",
                US_AS_MS,
                2,
            ),
        ),
        entry(
            "latency_p999",
            At("/latency_all_us/p999"),
            Unit::Us,
            with_unit(
                shown("latency_p999_ms", "latency p99.9 ms", Number, Lower),
                "ms",
                US_AS_MS,
                2,
            ),
        ),
        entry("latency_max", At("/latency_all_us/max"), Unit::Us, None),
        entry("violations", Violations, Unit::Count, None),
        entry(
            "lost_writes",
            At("/consistency/lost_writes"),
            Unit::Count,
            Some(shown("lost_writes", "lost writes", Count, Lower)),
        ),
        entry(
            "stale_reads",
            At("/consistency/stale_reads"),
            Unit::Count,
            Some(shown("stale_reads", "stale reads", Count, Lower)),
        ),
        entry(
            "never_written",
            At("/consistency/never_written"),
            Unit::Count,
            None,
        ),
        entry(
            "two_leaders",
            Len("/consistency/two_leaders"),
            Unit::Count,
            None,
        ),
        entry(
            "fault_late_p99",
            At("/fault_timing/late_us/p99"),
            Unit::Us,
            with_unit(
                shown("fault_late_p99_ms", "fault late p99 ms", Number, Lower),
                "ms",
                US_AS_MS,
                2,
            ),
        ),
        entry(
            "unexpected_exits",
            Len("/unexpected_exits"),
            Unit::Count,
            None,
        ),
    ]
};

/// The metrics compare lines up, in order.
pub fn compared() -> impl Iterator<Item = Metric> {
    CATALOG.iter().filter_map(|e| {
        let (s, Source::At(pointer)) = (e.shown?, e.source) else {
            return None;
        };
        Some(Metric {
            id: s.id,
            label: s.label,
            pointer,
            kind: s.kind,
            unit: s.unit,
            scale: s.scale,
            decimals: s.decimals,
            better: s.better,
        })
    })
}

/// The entry a gate rule names.
pub fn by_rule(name: &str) -> Option<&'static Entry> {
    CATALOG.iter().find(|e| e.rule == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_compared_metric_has_a_pointer() {
        let mut rules: Vec<&str> = CATALOG.iter().map(|e| e.rule).collect();
        rules.sort_unstable();
        rules.dedup();
        assert_eq!(rules.len(), CATALOG.len());
        let shown = CATALOG.iter().filter(|e| e.shown.is_some()).count();
        assert_eq!(compared().count(), shown);
        let mut ids: Vec<&str> = compared().map(|m| m.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), shown);
    }
}
