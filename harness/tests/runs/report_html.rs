//! `report.html`: a short real run with one primary kill writes it next to
//! `report.json`, headless Chromium opens it from disk and finds the timeline lanes, the
//! latency points and a failover row with numbers; `faultline report` rewrites it, with an
//! "incomplete" banner once the run looks as if its harness had been killed.
//!
//! Chromium is optional: without a `chromium` binary on `PATH` that part prints
//! "SKIPPED: ..." unless `FAULTLINE_REQUIRE_CHROMIUM` is set, which makes it fail instead.

use crate::common;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// How long Chromium may take to load and dump the page before it is killed.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn run_writes_report_html_that_headless_chromium_renders() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = common::primary_backup_yaml(
        "report-html",
        8,
        "4s",
        300,
        "  - { at: 1500ms, kill: primary, restart_after: 1s }\n",
    ) + "expect: valid\n";
    let file = common::write_experiment(dir.path(), "report-html", &yaml);
    let out = common::run(dir.path(), &file, &[]);
    let err = common::stderr(&out);
    let run = common::latest(dir.path(), "report-html");
    let page = run.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("report.html: {e}\n{err}"));
    assert!(html.contains("<svg id=\"timeline\""), "{err}");
    assert!(
        !html.contains("id=\"aborted\""),
        "a finished run has no banner"
    );
    assert!(!run.join("report.tmp").exists() && !run.join("report.html.tmp").exists());

    match chromium() {
        Some(bin) => check_in_chromium(&bin, &page),
        None => {
            assert!(
                std::env::var_os("FAULTLINE_REQUIRE_CHROMIUM").is_none(),
                "FAULTLINE_REQUIRE_CHROMIUM is set but no `chromium` on PATH"
            );
            eprintln!("SKIPPED: no `chromium` on PATH; report.html not opened in a browser");
        }
    }

    // `faultline report` rebuilds the page; without run.json the harness looks killed.
    std::fs::remove_file(&page).unwrap();
    std::fs::remove_file(run.join("run.json")).unwrap();
    let out = Command::new(common::exe())
        .arg("report")
        .arg(&run)
        .output()
        .unwrap();
    let html = std::fs::read_to_string(&page).unwrap_or_else(|e| {
        panic!(
            "report.html after `faultline report`: {e}\n{}",
            common::stderr(&out)
        )
    });
    assert!(
        html.contains("id=\"aborted\">Incomplete: the harness did not finish this run."),
        "{}",
        common::stderr(&out)
    );
    assert!(html.contains("<span class=\"verdict unknown\""));
    assert!(html.contains("<circle class=\"ok\""));
}

/// Open `page` in headless Chromium and check what it rendered.
fn check_in_chromium(bin: &Path, page: &Path) {
    let dom = dump_dom(bin, page);
    let section = |id: &str, end: &str| -> String {
        let at = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no #{id} in the DOM Chromium built:\n{dom}"));
        let rest = &dom[at..];
        rest[..rest.find(end).unwrap_or(rest.len())].to_string()
    };
    let timeline = section("timeline", "</svg>");
    let lanes = timeline.matches("class=\"node-lane\"").count();
    assert_eq!(lanes, 3, "{timeline}");
    assert!(timeline.contains("class=\"role-leader\""), "{timeline}");
    assert!(timeline.contains("class=\"fault\""), "{timeline}");
    let latency = section("latency", "</svg>");
    let points = latency.matches("<circle class=\"ok\"").count();
    assert!(points > 100, "{points} ok points");
    let failover = section("failover", "</table>");
    let rows: Vec<&str> = failover.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 1, "one kill, one row: {failover}");
    assert!(rows[0].contains("<td class=\"l\">kill</td>"), "{failover}");
    let numbers = rows[0].matches(" ms</td>").count();
    assert!(
        numbers >= 4,
        "at, healed, election, recovery...: {failover}"
    );
}

/// `chromium` on `PATH`, if any.
fn chromium() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

/// Kills Chromium's process group, and anything else still naming its scratch directory
/// (the crash handlers leave the group), however the test ends.
struct Browser {
    pgid: Pid,
    scratch: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = killpg(self.pgid, Signal::SIGKILL);
        let needle = self.scratch.path().display().to_string();
        for (pid, _) in common::wait_gone(&needle, Duration::from_secs(3)) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        let left = common::wait_gone(&needle, Duration::from_secs(3));
        if !left.is_empty() && !std::thread::panicking() {
            panic!("chromium processes left behind: {left:?}");
        }
    }
}

/// `chromium --headless --dump-dom file://<page>`, killed after [`CHROMIUM_TIMEOUT`].
fn dump_dom(bin: &Path, page: &Path) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--disable-breakpad",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.path().join("profile").display()
        ))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        // Keep Chromium's config, cache and crash database out of the real home.
        .env("HOME", scratch.path())
        .env("XDG_CONFIG_HOME", scratch.path())
        .env("XDG_CACHE_HOME", scratch.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let browser = Browser {
        pgid: Pid::from_raw(child.id() as i32),
        scratch,
    };
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Kill whatever is left of it before the pipes are read to their end.
    drop(browser);
    let _ = child.wait();
    let (dom, err) = (out.join().unwrap(), err.join().unwrap());
    let status = status.unwrap_or_else(|| {
        panic!("chromium took over {CHROMIUM_TIMEOUT:?} and was killed; stderr:\n{err}")
    });
    assert!(status.success(), "chromium: {status}; stderr:\n{err}");
    dom
}
