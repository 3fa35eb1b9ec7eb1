//! The netns journal: one line per object, written and fsynced before the object is made; and
//! `faultline cleanup`, which reads a journal and removes what it names that is still there.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{remove_link, start_time, NetnsError, HOST_LINK_PREFIX, REGISTRY};

/// The journal: one line per object, fsynced before the object is created, in the run
/// directory and in [`REGISTRY`].
pub(super) struct Journal {
    files: Vec<(PathBuf, File)>,
}

impl Journal {
    pub(super) fn create(paths: &[PathBuf]) -> Result<Journal, NetnsError> {
        let mut files = Vec::new();
        for p in paths {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(|source| NetnsError::Journal {
                    path: p.clone(),
                    source,
                })?;
            }
            let f = File::options()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|source| NetnsError::Journal {
                    path: p.clone(),
                    source,
                })?;
            files.push((p.clone(), f));
        }
        Ok(Journal { files })
    }

    pub(super) fn write(&mut self, line: &str) -> Result<(), NetnsError> {
        for (path, f) in &mut self.files {
            f.write_all(format!("{line}\n").as_bytes())
                .and_then(|()| f.sync_data())
                .map_err(|source| NetnsError::Journal {
                    path: path.clone(),
                    source,
                })?;
        }
        Ok(())
    }
}

/// What [`cleanup`] found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cleaned {
    pub journal: PathBuf,
    /// Holders (and so namespaces) that were still alive and are now killed.
    pub holders_killed: Vec<String>,
    /// Host links that were still there and are now deleted.
    pub links_removed: Vec<String>,
    /// The harness that wrote the journal is still running (another process): its run is
    /// left alone.
    pub live: Option<u32>,
}

/// What a journal names, read without acting on any of it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct JournalEntries {
    /// The run's id, and the harness's pid and start time when the journal recorded them.
    pub run: Option<(String, Option<(u32, u64)>)>,
    /// Holder processes: what they hold, pid, start time (clock ticks since boot).
    pub holders: Vec<(String, u32, u64)>,
    /// Host links, in journal order.
    pub links: Vec<String>,
}

/// Read a journal's text. Lines it does not know (or that are torn) are skipped; a holder is
/// kept only with a pid above 1 and a start time, and a link only with faultline's prefix, so
/// nothing a journal says can make cleanup signal init or remove a link that is not ours.
pub fn parse_journal(text: &str) -> JournalEntries {
    let mut out = JournalEntries::default();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["run", id, "pid", pid, "start", start] => {
                let harness = pid.parse::<u32>().ok().zip(start.parse::<u64>().ok());
                out.run = Some((id.to_string(), harness));
            }
            ["run", id, ..] => out.run = Some((id.to_string(), None)),
            ["holder", rest @ ..] if rest.len() >= 3 => {
                let pid: u32 = rest[rest.len() - 2].parse().unwrap_or(0);
                let start: u64 = rest[rest.len() - 1].parse().unwrap_or(0);
                if pid > 1 && start != 0 {
                    out.holders
                        .push((rest[..rest.len() - 2].join(" "), pid, start));
                }
            }
            ["link", name] if is_host_link_name(name) => out.links.push(name.to_string()),
            _ => {}
        }
    }
    out
}

/// A name faultline could have given a host link: its prefix, and a Linux interface name
/// (at most 15 bytes, no `/`, not `.` or `..`).
pub(super) fn is_host_link_name(name: &str) -> bool {
    name.starts_with(HOST_LINK_PREFIX)
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// Remove what a run's journal names and is still there: holders that are the very processes
/// it recorded (pid and start time), host links with faultline's prefix. Idempotent. The run
/// directory's copy of the journal is kept, marked closed; the registry copy is deleted.
pub fn cleanup(journal: &Path) -> Result<Cleaned, NetnsError> {
    let text = std::fs::read_to_string(journal).map_err(|source| NetnsError::Journal {
        path: journal.to_path_buf(),
        source,
    })?;
    let mut done = Cleaned {
        journal: journal.to_path_buf(),
        ..Cleaned::default()
    };
    let entries = parse_journal(&text);
    if let Some((_, Some((pid, start)))) = &entries.run {
        let alive = *pid != std::process::id() && *start != 0 && start_time(*pid) == Some(*start);
        if alive {
            done.live = Some(*pid);
            return Ok(done);
        }
    }
    let run_id = entries.run.map(|(id, _)| id);
    for (what, pid, start) in entries.holders {
        if start_time(pid) == Some(start) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            done.holders_killed.push(what);
        }
    }
    for name in entries.links {
        if remove_link(&name) {
            done.links_removed.push(name);
        }
    }
    if !done.holders_killed.is_empty() || !done.links_removed.is_empty() {
        let _ = File::options()
            .append(true)
            .open(journal)
            .and_then(|mut f| f.write_all(b"cleaned\n"));
    }
    if let Some(id) = run_id {
        let reg = Path::new(REGISTRY).join(format!("{id}.journal"));
        if reg != journal {
            let _ = std::fs::remove_file(reg);
        } else {
            let _ = std::fs::remove_file(journal);
        }
    }
    Ok(done)
}

/// Every journal in the registry: runs that have not closed (or not been cleaned) yet.
pub fn registered() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(REGISTRY)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "journal"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_leaves_a_run_whose_harness_still_runs_alone() {
        let mut harness = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut holder = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("netns.journal");
        let (hp, np) = (harness.id(), holder.id());
        std::fs::write(
            &j,
            format!(
                "run liverun pid {hp} start {}\nholder node n1 {np} {}\n",
                start_time(hp).unwrap(),
                start_time(np).unwrap()
            ),
        )
        .unwrap();
        let done = cleanup(&j).unwrap();
        assert_eq!(done.live, Some(hp));
        assert!(
            holder.try_wait().unwrap().is_none(),
            "a live run's holder was killed"
        );
        // Once that harness is gone, the same journal is cleaned.
        harness.kill().unwrap();
        harness.wait().unwrap();
        let done = cleanup(&j).unwrap();
        assert_eq!(done.live, None);
        assert_eq!(done.holders_killed, vec!["node n1".to_string()]);
        holder.wait().unwrap();
    }

    #[test]
    fn cleanup_ignores_links_it_did_not_make_and_dead_holders() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("netns.journal");
        std::fs::write(
            &j,
            "run testrun pid 1\nholder bridge 1 12345\nholder node n1 999999999 1\nlink eth0\nlink lo\n",
        )
        .unwrap();
        let done = cleanup(&j).unwrap();
        assert!(done.holders_killed.is_empty(), "{done:?}");
        assert!(done.links_removed.is_empty(), "{done:?}");
        // Twice: idempotent.
        assert_eq!(cleanup(&j).unwrap().holders_killed, Vec::<String>::new());
    }
}

#[cfg(test)]
mod journal_props {
    use super::*;
    use proptest::prelude::*;

    /// Nothing in what was read that cleanup could misuse: init, pid 0, or a link not ours.
    fn safe(e: &JournalEntries) -> Result<(), TestCaseError> {
        for (_, pid, start) in &e.holders {
            prop_assert!(*pid > 1 && *start != 0);
        }
        for link in &e.links {
            prop_assert!(is_host_link_name(link), "{link}");
        }
        Ok(())
    }

    proptest! {
        /// Any text at all: no panic, and nothing in the result that cleanup could misuse.
        #[test]
        fn any_text_parses_to_safe_entries(text in "(?s).{0,400}") {
            let e = parse_journal(&text);
            safe(&e)?;
        }

        /// Lines shaped like the journal's own, with hostile fields mixed in.
        #[test]
        fn journal_shaped_lines_parse_to_safe_entries(
            lines in proptest::collection::vec(
                prop_oneof![
                    ("[a-z0-9]{0,12}", any::<u32>(), any::<u64>())
                        .prop_map(|(id, p, s)| format!("run {id} pid {p} start {s}")),
                    ("[ -~]{0,20}", any::<i64>(), any::<i64>())
                        .prop_map(|(w, p, s)| format!("holder {w} {p} {s}")),
                    "(flh-)?[ -~]{0,24}".prop_map(|n| format!("link {n}")),
                    "[ -~]{0,40}",
                ],
                0..20,
            )
        ) {
            let e = parse_journal(&lines.join("\n"));
            safe(&e)?;
        }

        /// What the harness writes reads back as written.
        #[test]
        fn written_journals_read_back(
            id in "[0-9a-f]{8}",
            harness in (2u32.., 1u64..),
            holders in proptest::collection::vec(("n[0-9]{1,2}|bridge", 2u32.., 1u64..), 0..6),
        ) {
            let mut text = format!("run {id} pid {} start {}\n", harness.0, harness.1);
            for (what, pid, start) in &holders {
                text.push_str(&format!("holder {what} {pid} {start}\n"));
            }
            text.push_str(&format!("link {HOST_LINK_PREFIX}{id}\ncleaned\n"));
            let e = parse_journal(&text);
            prop_assert_eq!(e.run, Some((id.clone(), Some(harness))));
            let want: Vec<(String, u32, u64)> = holders.clone();
            prop_assert_eq!(e.holders, want);
            prop_assert_eq!(e.links, vec![format!("{HOST_LINK_PREFIX}{id}")]);
        }
    }

    #[test]
    fn hostile_link_names_are_not_ours() {
        for bad in [
            "flh-../../x",
            "flh-a/b",
            "eth0",
            "flh-0123456789abcdef",
            "flh-a b",
        ] {
            assert!(!is_host_link_name(bad), "{bad}");
        }
        assert!(is_host_link_name("flh-0a1b2c3d"));
        let e = parse_journal("holder n1 1 5\nholder n2 0 0\nholder x 7 0\nlink flh-../../x\n");
        assert_eq!(e, JournalEntries::default());
    }
}
