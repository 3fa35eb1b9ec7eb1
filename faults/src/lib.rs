//! Fault mechanisms (being written).
