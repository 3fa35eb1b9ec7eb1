//! Fault *mechanisms* for faultline: supervised node processes and the signals that crash,
//! stop and resume them. No scheduling and no experiment types live here; the harness's
//! nemesis decides when and whom to hit.

pub mod process;

pub use process::{NodeProcess, PauseGuard, ProcessError, ProcessSpec};
