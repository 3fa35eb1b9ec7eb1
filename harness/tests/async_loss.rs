//! `experiments/primary-backup-async-loss.yaml`: asynchronous replication with the primary
//! killed under write load loses acknowledged writes, and the harness must say so (exit 1).

mod common;

#[test]
fn async_replication_under_primary_kills_is_caught_losing_writes() {
    let dir = tempfile::tempdir().unwrap();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../experiments/primary-backup-async-loss.yaml");
    let out = common::run(dir.path(), &file, &[]);
    let run = common::latest(dir.path(), "primary-backup-async-loss");
    let r = common::report(&run);
    let c = &r["consistency"];
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    assert_eq!(r["verdict"], "invalid");
    assert!(
        c["lost_writes"].as_u64().unwrap() > 0,
        "no lost write found: {}",
        serde_json::to_string_pretty(c).unwrap()
    );
    // Each lost write names the write and the read that shows it.
    let lost: Vec<_> = c["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["kind"] == "lost-write")
        .collect();
    assert!(!lost.is_empty());
    assert!(
        lost[0]["write"].is_u64() && lost[0]["read"].is_u64(),
        "{}",
        lost[0]
    );
}
