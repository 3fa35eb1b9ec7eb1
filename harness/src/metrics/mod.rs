//! Measures (being written).
