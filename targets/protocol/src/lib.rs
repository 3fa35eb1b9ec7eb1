//! The client wire protocol spoken by every faultline target, and the node configuration file.
//!
//! Clients talk to nodes over TCP with newline-delimited JSON: one request object per line, one
//! response object per line, matched by `id` (responses may come back in any order on one
//! connection). The full specification, with examples, is `targets/protocol/README.md`.

mod config;
mod wire;

pub use config::{ConfigError, NodeConfig};
pub use wire::{
    decode_request, decode_response, encode, ErrorBody, ErrorCode, Op, OpKind, Request, Response,
    Role, Status, Value, WireError,
};
