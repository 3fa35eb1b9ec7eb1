//! Consistency checkers (being written).
