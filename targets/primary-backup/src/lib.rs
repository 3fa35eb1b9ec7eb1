//! Reference primary-backup node (being written).
