//! Fault *mechanisms* for faultline: supervised node processes and the signals that crash,
//! stop and resume them, and the link proxy that partitions and degrades TCP links. No
//! scheduling and no experiment types live here; the harness's nemesis decides when and whom
//! to hit.

pub mod process;
pub mod proxy;

pub mod netns;
pub mod nft;

pub use process::{NetnsChoice, NodeProcess, PauseGuard, ProcessError, ProcessSpec};
