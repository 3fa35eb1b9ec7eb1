//! The run directory: the names of the files a run writes, the facts only the live run knows
//! (`run.json`), making a run's own directory, and the `latest` link. `run` writes these files
//! and `report` reads them; both take the names from here.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::workload::LoadSummary;

/// The experiment as run, seed included.
pub const EXPERIMENT: &str = "experiment.yaml";
/// Every invocation and completion (`history::Recorder`, flushed every 100 ms).
pub const HISTORY: &str = "history.jsonl";
/// Phases, faults, roles, node starts and exits (`history::events`).
pub const EVENTS: &str = "events.jsonl";
/// [`RunMeta`]: what only the live run knew; missing after a killed harness.
pub const RUN_META: &str = "run.json";
/// The report, for programs (`docs/report.schema.json`).
pub const REPORT: &str = "report.json";
/// The report, for people and CI logs.
pub const SUMMARY: &str = "summary.md";
/// The report as one self-contained page.
pub const REPORT_HTML: &str = "report.html";
/// One page per invalid key.
pub const COUNTEREXAMPLES: &str = "counterexamples";
/// Beside the runs of an experiment: the newest run with a whole report.
pub const LATEST: &str = "latest";

/// Facts only the live run knows, kept beside the recorded files as `run.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunMeta {
    pub started_utc: String,
    pub reproduce: String,
    pub ready_ms: Option<f64>,
    pub load: Option<LoadSummary>,
    pub load_start_ns: u64,
    pub load_end_ns: u64,
    pub aborted: bool,
    pub abort_reason: Option<String>,
    /// Nodes that exited without a fault or shutdown causing it, with their last log lines.
    pub unexpected_exits: Vec<UnexpectedExit>,
    pub recovered: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnexpectedExit {
    pub node: String,
    pub at_ms: f64,
    pub status: String,
    pub log_tail: String,
}

/// Create the run's own directory `<exp_dir>/<name>`, or `<name>-2`, `<name>-3`, ... when a run
/// of the same experiment and seed started in the same second: never another run's files.
pub fn create(exp_dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(exp_dir)?;
    for n in 1..1000 {
        let dir = match n {
            1 => exp_dir.join(name),
            n => exp_dir.join(format!("{name}-{n}")),
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "a thousand runs of this experiment and seed in one second",
    ))
}

/// Point `<experiment>/latest` at `run_dir`, a run whose report has just been written. The new
/// symlink is made under another name and renamed over the old one, so `latest` never names a
/// run without a report and never disappears. With `only_if_newer` (a report rebuilt by
/// `faultline report`), `latest` moves only to a run newer than the one it names: run
/// directories are named `<UTC start>-<seed>`, so their names sort by start time. A directory
/// not named like a run (`latest` itself, an imported history) leaves `latest` alone.
pub fn point_latest(run_dir: &Path, only_if_newer: bool) -> std::io::Result<()> {
    let (Some(exp_dir), Some(name)) = (run_dir.parent(), run_dir.file_name()) else {
        return Ok(());
    };
    let Some(name) = name.to_str().filter(|n| is_run_dir_name(n)) else {
        return Ok(());
    };
    let link = exp_dir.join(LATEST);
    if only_if_newer {
        if let Ok(current) = std::fs::read_link(&link) {
            if current.to_str().is_some_and(|c| c >= name) {
                return Ok(());
            }
        }
    }
    let tmp = exp_dir.join(format!(".latest.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(name, &tmp)?;
    std::fs::rename(&tmp, &link).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// `20261207T225241Z-61`: a run directory's name, its UTC start time then its seed (then `-2`,
/// `-3`, ... for another run of the same seed in the same second).
fn is_run_dir_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 17
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && &b[15..17] == b"Z-"
        && b[17].is_ascii_digit()
        && b[17..].iter().all(|c| c.is_ascii_digit() || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::{is_run_dir_name, point_latest};

    #[test]
    fn run_dir_names_are_recognised() {
        assert!(is_run_dir_name("20261207T225241Z-61"));
        assert!(is_run_dir_name("20261207T225241Z-61-2"));
        assert!(!is_run_dir_name("latest"));
        assert!(!is_run_dir_name("20261207T225241Z-"));
        assert!(!is_run_dir_name("20261207X225241Z-1"));
    }

    #[test]
    fn latest_moves_forward_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let older = dir.path().join("20261207T100000Z-1");
        let newer = dir.path().join("20261207T110000Z-1");
        let link = dir.path().join("latest");
        point_latest(&newer, false).unwrap();
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            newer.file_name().unwrap()
        );
        // A rebuilt report of an older run leaves `latest` where it is...
        point_latest(&older, true).unwrap();
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            newer.file_name().unwrap()
        );
        // ...the harness's own report of a run moves it.
        point_latest(&older, false).unwrap();
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            older.file_name().unwrap()
        );
        // `faultline report results/x/latest` changes nothing.
        point_latest(&link, true).unwrap();
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            older.file_name().unwrap()
        );
        // No temporary link is left beside the runs.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("latest")]);
    }
}
