//! Shared machinery of the reference nodes (being written).
