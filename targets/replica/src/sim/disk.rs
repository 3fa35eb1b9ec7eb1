//! The simulator's in-memory disk: a protocol's recovered image ([`DiskImage`]) kept across
//! crashes, with the planted bug `ack-before-persist`'s lazy buffer ([`Durability`]).

use crate::driver::Millis;
use crate::log::LAZY_FLUSH_MS;

/// Which persist actions a [`Disk`] buffers with the planted bug `ack-before-persist`.
pub enum Durability {
    /// Buffered under the bug (log records).
    Log,
    /// Written at once, after the buffered records (they precede it).
    AfterLog,
    /// Written at once; buffered records stay buffered.
    Direct,
    /// Replaces the log: buffered records are dropped.
    Snapshot,
}

/// What a [`Disk`] holds: the image of a data directory that persist actions update.
pub trait DiskImage: Default {
    type Persist: Clone;
    fn apply(&mut self, action: &Self::Persist);
    fn durability(_action: &Self::Persist) -> Durability {
        Durability::Direct
    }
}

/// A data directory in memory with the same semantics as the file storage; it survives
/// crashes. With `lazy` (the planted bug [`BUG_ACK_BEFORE_PERSIST`]) log records wait in a
/// buffer until it is written out, at most once per [`LAZY_FLUSH_MS`], and a crash loses them.
#[derive(Debug, Clone)]
pub struct Disk<R: DiskImage> {
    pub recovered: R,
    pub lazy: bool,
    buffer: Vec<R::Persist>,
    last_flush: Millis,
}

impl<R: DiskImage> Default for Disk<R> {
    fn default() -> Self {
        Disk::new(false)
    }
}

impl<R: DiskImage> Disk<R> {
    pub fn new(lazy: bool) -> Self {
        Disk {
            recovered: R::default(),
            lazy,
            buffer: Vec::new(),
            last_flush: 0,
        }
    }

    fn write_out(&mut self) {
        for b in std::mem::take(&mut self.buffer) {
            self.recovered.apply(&b);
        }
    }

    /// Perform `actions` at `now`.
    pub fn persist(&mut self, now: Millis, actions: &[R::Persist]) {
        for a in actions {
            match R::durability(a) {
                Durability::Log if self.lazy => self.buffer.push(a.clone()),
                Durability::Log | Durability::AfterLog => {
                    self.write_out();
                    self.recovered.apply(a);
                }
                Durability::Direct => self.recovered.apply(a),
                Durability::Snapshot => {
                    self.buffer.clear();
                    self.recovered.apply(a);
                }
            }
        }
        if now >= self.last_flush + LAZY_FLUSH_MS {
            self.last_flush = now;
            self.write_out();
        }
    }

    /// The process died (kill -9): what only lived in its memory is gone.
    pub fn crash(&mut self) {
        self.buffer.clear();
    }
}
