//! The verdict matrices of the Raft and Multi-Paxos reference nodes, cell by cell
//! (`targets/raft/README.md`, `targets/paxos/README.md`). One test binary for both.

#[path = "../common/mod.rs"]
mod common;

mod paxos_matrix;
mod raft_matrix;
