//! Network faults through the link proxy, end to end: the primary-backup verdict matrix's
//! partition and slow-link rows (`targets/primary-backup/README.md`), and what the report says
//! about each network fault (the flows it cut, failover figures, fault timing).

use crate::common;

fn cell(name: &str) -> serde_json::Value {
    cell_with(name, &[])
}

fn cell_with(name: &str, extra: &[&str]) -> serde_json::Value {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../experiments/primary-backup")
        .join(format!("{name}.yaml"));
    let dir = tempfile::tempdir().unwrap();
    let out = common::run(dir.path(), &file, extra);
    let r = common::report(&common::latest(dir.path(), &format!("pb-{name}")));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name}: the verdict should match `expect:`\n{}\n{}",
        common::stderr(&out),
        serde_json::to_string_pretty(&r["consistency"]).unwrap()
    );
    r
}

/// Every partition in the report names the flows it cut and how late it was applied.
fn partitions_are_journaled(r: &serde_json::Value) {
    let faults = r["faults"].as_array().unwrap();
    let parts: Vec<_> = faults
        .iter()
        .filter(|f| f["fault"] == "partition")
        .collect();
    assert!(!parts.is_empty(), "no partition fired: {faults:?}");
    for f in &parts {
        let links = f["links"].as_array().unwrap();
        // Isolating one node of three cuts 4 directed flows.
        assert_eq!(links.len(), 4, "{f}");
        assert!(f["late_us"].is_u64(), "{f}");
        assert!(f["end_ms"].is_f64(), "healed: {f}");
    }
    assert!(r["fault_timing"]["faults"].as_u64().unwrap() >= parts.len() as u64);
}

#[test]
fn async_primary_isolated_loses_acknowledged_writes() {
    async_primary_isolated(&[]);
}

/// The same cell with namespaces, a bridge and nftables instead of the link proxy (root).
#[test]
fn netns_async_primary_isolated_loses_acknowledged_writes() {
    if common::netns_available() {
        async_primary_isolated(&["--set", "network.mode=netns"]);
    }
}

fn async_primary_isolated(extra: &[&str]) {
    let r = cell_with("async-isolate-primary", extra);
    assert_eq!(r["verdict"], "invalid");
    assert!(
        r["consistency"]["lost_writes"].as_u64().unwrap() > 0,
        "{}",
        serde_json::to_string_pretty(&r["consistency"]).unwrap()
    );
    partitions_are_journaled(&r);
    // A backup took over on the majority side: an election figure per partition.
    let events = r["failover"]["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["election_ms"].is_f64()),
        "{events:?}"
    );
}

#[test]
fn sync_primary_isolated_without_lease_is_caught() {
    sync_primary_isolated(&[]);
}

#[test]
fn netns_sync_primary_isolated_without_lease_is_caught() {
    if common::netns_available() {
        sync_primary_isolated(&["--set", "network.mode=netns"]);
    }
}

fn sync_primary_isolated(extra: &[&str]) {
    let r = cell_with("sync-isolate-primary", extra);
    assert_eq!(r["verdict"], "invalid");
    let c = &r["consistency"];
    assert!(
        c["lost_writes"].as_u64().unwrap() + c["stale_reads"].as_u64().unwrap() > 0,
        "{}",
        serde_json::to_string_pretty(c).unwrap()
    );
    partitions_are_journaled(&r);
}

#[test]
fn sync_over_slow_links_stays_valid() {
    let r = cell("sync-slow-links");
    assert_eq!(r["verdict"], "valid");
    let links: Vec<_> = r["faults"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["fault"] == "link")
        .collect();
    assert_eq!(links.len(), 2, "both link faults fired");
}

/// The planted bug `stale-backup-reads`: backups kept 40 ms behind by a delayed link answer
/// reads themselves, so reads miss acknowledged writes. Every stale read listed was served by a
/// backup, and the primary never changed.
#[test]
fn backups_answering_reads_serve_stale_values() {
    let r = cell("bug-stale-backup-reads");
    let c = &r["consistency"];
    assert_eq!(r["verdict"], "invalid");
    assert!(c["stale_reads"].as_u64().unwrap() > 0);
    assert!(c["two_leaders"].as_array().unwrap().is_empty());
    let stale: Vec<&serde_json::Value> = c["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["kind"] == "stale-read")
        .collect();
    assert!(!stale.is_empty());
    for v in stale {
        let read = v["ops"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == v["read"])
            .unwrap();
        assert_ne!(read["node"], "n1", "a stale read from the primary: {v}");
    }
}
