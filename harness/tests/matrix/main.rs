//! The verdict matrices of the Raft and Multi-Paxos reference nodes, cell by cell
//! (`targets/raft/README.md`, `targets/paxos/README.md`). One test binary for both.

#[path = "../common/mod.rs"]
mod common;

/// The tests every matrix has: its experiment files and its cells agree; the leader-kill bar
/// (at least 20 kill -9 events of the leader under load in one run, every one followed by a
/// new leader, no acknowledged write lost); one `#[test]` per listed cell, so cells run in
/// parallel and fail by name; and every cell is run, by that list or by a test of its own
/// (`own:`). Defines `cell(name)`, which runs a cell and checks its verdict.
macro_rules! matrix_tests {
    ($kind:literal, own: [$($own:literal),*], cells: { $($test:ident => $file:literal,)* }) => {
        /// Run a cell's experiment and check its verdict (and that `expect:` agrees with the
        /// matrix, so the run exits 0); the report.
        fn cell(name: &str) -> serde_json::Value {
            crate::common::matrix_cell($kind, MATRIX, name, &[]).0
        }

        #[test]
        fn every_cell_has_a_test_and_every_experiment_a_cell() {
            crate::common::assert_matrix_matches_files($kind, MATRIX);
        }

        #[test]
        fn kill_leader() {
            crate::common::assert_leader_kills(&cell("kill-leader"), 20);
        }

        $(
            #[test]
            fn $test() {
                cell($file);
            }
        )*

        #[test]
        fn every_cell_is_run() {
            let mut run: Vec<&str> = vec!["kill-leader", $($own,)* $($file,)*];
            run.sort_unstable();
            let mut cells: Vec<&str> = MATRIX.iter().map(|(n, _)| *n).collect();
            cells.sort_unstable();
            assert_eq!(run, cells);
        }
    };
}

mod paxos_matrix;
mod raft_matrix;
