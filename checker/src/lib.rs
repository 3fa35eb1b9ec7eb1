//! faultline's histories and what is checked on them, as a library apart from the harness (as
//! Porcupine is apart from its users): `history` reads and writes the recorded operations and
//! events (and imports Jepsen's and Porcupine's), `check` decides linearizability per key and
//! finds lost writes, stale reads and two leaders in one term. Nothing here knows how a run is
//! driven; the harness re-exports both modules as `faultline::history` and `faultline::check`.

pub mod check;
pub mod history;
