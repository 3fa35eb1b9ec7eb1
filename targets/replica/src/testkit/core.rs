//! Helpers for the protocol crates' scenario tests of their pure cores: client operations
//! and node lists as the tests write them.

use faultline_protocol::Op;

/// A client write of `value` to `key`.
pub fn write(key: &str, value: i64) -> Op {
    Op::Write {
        key: key.into(),
        value,
    }
}

/// A client read of `key`.
pub fn read(key: &str) -> Op {
    Op::Read { key: key.into() }
}

/// A client compare-and-set of `key` from `from` to `to`.
pub fn cas(key: &str, from: Option<i64>, to: i64) -> Op {
    Op::Cas {
        key: key.into(),
        from,
        to,
    }
}

/// Every node of `nodes` but `id`, in order.
pub fn others(nodes: &[String], id: &str) -> Vec<String> {
    nodes.iter().filter(|n| *n != id).cloned().collect()
}
