//! Scenario tests of the pure core, driven through the simulator with small fixed delays and
//! explicit partitions and crashes. Every step still runs the simulator's safety checks.
