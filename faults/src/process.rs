//! Supervised child processes: spawned in their own process group, killed by the kernel when
//! the harness dies (`PR_SET_PDEATHSIG`), reaped by a watcher thread, and signalled by process
//! group (kill, terminate, pause, resume).
//!
//! Every child is spawned from one long-lived spawner thread: the kernel delivers the
//! parent-death signal when the *thread* that forked the child exits, so spawning from a
//! short-lived thread (a tokio blocking thread, say) would kill the node when that thread
//! retires.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// What to run, and where its output goes.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Appended to, never truncated, so a restarted node's log continues the old one.
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// Which network namespace the process lives in.
    pub netns: NetnsChoice,
}

/// The network namespace of a spawned process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NetnsChoice {
    /// The harness's own.
    #[default]
    Inherit,
    /// A new, empty one that lives as long as the process (a namespace holder).
    New,
    /// Join the namespace this open file descriptor (`/proc/PID/ns/net`) refers to. The caller
    /// keeps the descriptor open until `spawn` returns.
    Join(std::os::fd::RawFd),
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot open log file {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot send {signal} to process group {pgid}: {source}")]
    Signal {
        signal: Signal,
        pgid: i32,
        source: nix::Error,
    },
    #[error("the process spawner thread is gone")]
    SpawnerGone,
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<std::process::Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("faultline-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn the process spawner thread");
        Mutex::new(tx)
    })
}

/// Move the calling process (or, for a thread, the calling thread) into the chosen network
/// namespace. Async-signal-safe: fit for `pre_exec`.
pub fn enter_netns(choice: NetnsChoice) -> std::io::Result<()> {
    use nix::sched::CloneFlags;
    match choice {
        NetnsChoice::Inherit => Ok(()),
        NetnsChoice::New => {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
        }
        NetnsChoice::Join(fd) => {
            // SAFETY: the caller keeps `fd` open for the duration of this call.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            nix::sched::setns(fd, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
        }
    }
}

/// A running (or exited) child process in its own process group.
#[derive(Debug)]
pub struct NodeProcess {
    pid: i32,
    exit: Arc<(Mutex<Option<ExitStatus>>, std::sync::Condvar)>,
}

impl NodeProcess {
    /// Start the process. It gets its own process group (so a terminal's Ctrl-C reaches only the
    /// harness, which then shuts the nodes down in order) and dies with the harness.
    pub fn spawn(spec: &ProcessSpec) -> Result<NodeProcess, ProcessError> {
        let open = |path: &PathBuf| {
            File::options()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| ProcessError::Log {
                    path: path.clone(),
                    source,
                })
        };
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(open(&spec.stdout)?)
            .stderr(open(&spec.stderr)?)
            .process_group(0);
        let parent = std::process::id() as i32;
        let netns = spec.netns;
        // SAFETY: the closure only makes async-signal-safe system calls (prctl, getppid,
        // unshare, setns, _exit), and the descriptor it joins stays open in the parent.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
                // The harness may have died between fork and prctl: then nobody will kill us.
                if nix::unistd::getppid().as_raw() != parent {
                    nix::libc::_exit(1);
                }
                enter_netns(netns)
            });
        }
        let (reply_tx, reply_rx) = mpsc::channel();
        spawner()
            .lock()
            .map_err(|_| ProcessError::SpawnerGone)?
            .send((cmd, reply_tx))
            .map_err(|_| ProcessError::SpawnerGone)?;
        let mut child = reply_rx
            .recv()
            .map_err(|_| ProcessError::SpawnerGone)?
            .map_err(|source| ProcessError::Spawn {
                program: spec.program.clone(),
                source,
            })?;
        let pid = child.id() as i32;
        let exit = Arc::new((Mutex::new(None), std::sync::Condvar::new()));
        let watcher_exit = exit.clone();
        std::thread::Builder::new()
            .name(format!("reap-{pid}"))
            .spawn(move || {
                let status = child.wait();
                let (lock, cvar) = &*watcher_exit;
                if let Ok(mut slot) = lock.lock() {
                    *slot = Some(status.unwrap_or_else(|_| {
                        use std::os::unix::process::ExitStatusExt;
                        ExitStatus::from_raw(0)
                    }));
                }
                cvar.notify_all();
            })
            .map_err(|source| ProcessError::Spawn {
                program: spec.program.clone(),
                source,
            })?;
        Ok(NodeProcess { pid, exit })
    }

    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// The exit status, once the process has exited and been reaped.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.exit.0.lock().ok().and_then(|s| *s)
    }

    pub fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }

    /// Wait up to `timeout` for the process to exit.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.exit;
        let mut slot = lock.lock().ok()?;
        loop {
            if let Some(s) = *slot {
                return Some(s);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            slot = cvar.wait_timeout(slot, left).ok()?.0;
        }
    }

    /// Send a signal to the process group. A process that has already exited is left alone
    /// (its pid may have been reused), and that is not an error.
    pub fn signal(&self, signal: Signal) -> Result<(), ProcessError> {
        // Hold the lock so the reaper cannot reap (and free the pid) while we signal.
        let slot = self.exit.0.lock().map_err(|_| ProcessError::SpawnerGone)?;
        if slot.is_some() {
            return Ok(());
        }
        match killpg(Pid::from_raw(self.pid), signal) {
            Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
            Err(source) => Err(ProcessError::Signal {
                signal,
                pgid: self.pid,
                source,
            }),
        }
    }

    /// SIGKILL, then wait (bounded) until the kernel has reaped it.
    pub fn kill(&self) -> Result<Option<ExitStatus>, ProcessError> {
        self.signal(Signal::SIGCONT)?;
        self.signal(Signal::SIGKILL)?;
        Ok(self.wait_timeout(Duration::from_secs(5)))
    }

    /// SIGTERM (after SIGCONT, so a paused process can act on it); SIGKILL if it has not exited
    /// within `grace`.
    pub fn terminate(&self, grace: Duration) -> Result<Option<ExitStatus>, ProcessError> {
        self.signal(Signal::SIGTERM)?;
        self.signal(Signal::SIGCONT)?;
        if let Some(s) = self.wait_timeout(grace) {
            return Ok(Some(s));
        }
        self.kill()
    }

    /// SIGSTOP the process group; the guard sends SIGCONT when dropped or resumed.
    #[must_use = "the process resumes when the guard is dropped"]
    pub fn pause(self: &Arc<Self>) -> Result<PauseGuard, ProcessError> {
        self.signal(Signal::SIGSTOP)?;
        Ok(PauseGuard {
            process: Some(self.clone()),
        })
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        // A supervised process never outlives its handle.
        let _ = self.signal(Signal::SIGCONT);
        let _ = self.signal(Signal::SIGKILL);
    }
}

/// Resumes a paused process when dropped (or on [`PauseGuard::resume`]).
#[derive(Debug)]
pub struct PauseGuard {
    process: Option<Arc<NodeProcess>>,
}

impl PauseGuard {
    pub fn resume(mut self) -> Result<(), ProcessError> {
        match self.process.take() {
            Some(p) => p.signal(Signal::SIGCONT),
            None => Ok(()),
        }
    }
}

impl Drop for PauseGuard {
    fn drop(&mut self) {
        if let Some(p) = self.process.take() {
            let _ = p.signal(Signal::SIGCONT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(dir: &std::path::Path) -> ProcessSpec {
        ProcessSpec {
            program: "/bin/sleep".into(),
            args: vec!["30".into()],
            env: vec![],
            stdout: dir.join("out.log"),
            stderr: dir.join("err.log"),
            netns: NetnsChoice::Inherit,
        }
    }

    fn state(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit(')').next()?.trim().chars().next()
    }

    #[test]
    fn kill_reaps_and_reports_signal() {
        let dir = std::env::temp_dir().join(format!("faults-kill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = NodeProcess::spawn(&sleeper(&dir)).unwrap();
        assert!(p.is_running());
        let status = p.kill().unwrap().expect("reaped");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
        assert!(!p.is_running());
        // Signalling an exited process is a no-op, not an error.
        p.signal(Signal::SIGTERM).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pause_guard_stops_and_resumes() {
        let dir = std::env::temp_dir().join(format!("faults-pause-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = Arc::new(NodeProcess::spawn(&sleeper(&dir)).unwrap());
        let guard = p.pause().unwrap();
        let mut stopped = false;
        for _ in 0..100 {
            if state(p.pid()) == Some('T') {
                stopped = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(stopped, "process not stopped");
        drop(guard);
        let mut resumed = false;
        for _ in 0..100 {
            if state(p.pid()) == Some('S') {
                resumed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(resumed, "process not resumed");
        let pid = p.pid();
        drop(p);
        // Dropping the handle kills the process.
        let mut gone = false;
        for _ in 0..200 {
            if matches!(state(pid), None | Some('Z')) {
                gone = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(gone, "process survived its handle");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn terminate_sends_sigterm() {
        let dir = std::env::temp_dir().join(format!("faults-term-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = NodeProcess::spawn(&sleeper(&dir)).unwrap();
        let status = p.terminate(Duration::from_secs(5)).unwrap().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(15));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
