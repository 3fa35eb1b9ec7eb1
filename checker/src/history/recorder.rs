//! The append-only recorder: a writer thread that appends JSON lines and flushes at least every
//! 100 ms, so a harness that is killed keeps its history up to the last flush.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long a recorded line may sit in memory before it reaches the file.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Appends serialized lines to one file from any thread. Cloning is cheap; the file is closed
/// (and flushed) when the last clone is dropped and [`Recorder::finish`] is called, or when all
/// clones are dropped.
#[derive(Clone)]
pub struct Recorder {
    tx: Sender<Option<Vec<u8>>>,
}

/// Owns the writer thread; `finish` closes the file once every line queued before it is on
/// disk, even while [`Recorder`] clones are still alive (their later lines are dropped).
pub struct RecorderHandle {
    tx: Sender<Option<Vec<u8>>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Recorder {
    /// Create (truncate) `path` and start the writer thread.
    pub fn create(path: &Path) -> std::io::Result<(Recorder, RecorderHandle)> {
        let file = File::create(path)?;
        let (tx, rx) = mpsc::channel::<Option<Vec<u8>>>();
        let thread = std::thread::Builder::new().name("recorder".into()).spawn(
            move || -> std::io::Result<()> {
                let mut out = BufWriter::with_capacity(1 << 16, file);
                let mut last_flush = Instant::now();
                let mut dirty = false;
                loop {
                    let wait = FLUSH_EVERY.saturating_sub(last_flush.elapsed());
                    match rx.recv_timeout(if dirty {
                        wait
                    } else {
                        Duration::from_secs(3600)
                    }) {
                        Ok(Some(line)) => {
                            out.write_all(&line)?;
                            dirty = true;
                        }
                        Ok(None) => break,
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                    if dirty && last_flush.elapsed() >= FLUSH_EVERY {
                        out.flush()?;
                        last_flush = Instant::now();
                        dirty = false;
                    }
                }
                out.flush()?;
                out.get_ref().sync_data()?;
                Ok(())
            },
        )?;
        Ok((
            Recorder { tx: tx.clone() },
            RecorderHandle {
                tx,
                thread: Some(thread),
            },
        ))
    }

    /// Queue one value as a JSON line. Never blocks on IO.
    pub fn record<T: Serialize>(&self, value: &T) {
        let mut line = serde_json::to_vec(value).expect("history lines always serialize");
        line.push(b'\n');
        // The writer only goes away after every sender is dropped, so this cannot fail while
        // `self` lives; if the writer died on an IO error, the error surfaces in `finish`.
        let _ = self.tx.send(Some(line));
    }
}

impl RecorderHandle {
    /// Close the file: every line recorded before this call is written, flushed and synced;
    /// lines recorded afterwards are dropped.
    pub fn finish(mut self) -> std::io::Result<()> {
        let _ = self.tx.send(None);
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("recorder thread panicked"))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_file_within_the_flush_interval_while_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let (rec, handle) = Recorder::create(&path).unwrap();
        rec.record(&serde_json::json!({"a": 1}));
        // Poll (bounded) until the line is visible while the recorder is still open.
        let mut seen = false;
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(20));
            if std::fs::read_to_string(&path).unwrap() == "{\"a\":1}\n" {
                seen = true;
                break;
            }
        }
        assert!(seen, "line not flushed while the recorder was open");
        rec.record(&serde_json::json!({"b": 2}));
        // Finishing does not wait for the recorder (or its clones) to be dropped.
        handle.finish().unwrap();
        rec.record(&serde_json::json!({"late": 3}));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n"
        );
    }
}
