//! Contract tests every consensus node (Raft, Multi-Paxos) passes in-process over real
//! sockets: the same client-visible behaviour, so each crate's `tests/cluster.rs` only names
//! its `serve`.

use faultline_protocol::{ErrorCode, Op, Role, Status};

use super::{configs, index_of, report_throughput, start_all, wait_for, Client, Node, ServeFn};

/// The leader every node agrees on (same term, same leader), if any.
pub fn leader_of(statuses: &[(String, Status)]) -> Option<String> {
    let leaders: Vec<_> = statuses
        .iter()
        .filter(|(_, s)| s.role == Role::Leader)
        .collect();
    let agreed = statuses.iter().all(|(_, s)| {
        leaders.len() == 1
            && s.term == leaders[0].1.term
            && s.leader.as_deref() == Some(&leaders[0].0)
    });
    agreed.then(|| leaders[0].0.clone())
}

/// Writes, reads and cas through the leader; followers redirect; the leader stops and the
/// others take over holding every acknowledged write; the old leader rejoins and catches up.
pub fn replicate_fail_over_and_recover<E: std::fmt::Debug + Send + 'static>(serve: ServeFn<E>) {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let settings = serde_json::json!({"heartbeat": "20ms", "election_timeout": ["100ms", "200ms"]});
    let configs = configs(&dirs, settings);
    let mut nodes: Vec<Node<E>> = start_all(&configs, serve);

    let statuses = wait_for(&configs, &[], "a leader", |s| leader_of(s).is_some());
    let first = leader_of(&statuses).unwrap();
    let li = index_of(&configs, &first);

    // Writes and reads through the leader, pipelined on one connection.
    let mut c = Client::connect(configs[li].client_addr);
    c.write_all(300, 5);
    assert_eq!(c.call(Op::Read { key: "k4".into() }).value, Some(Some(299)));
    let r = c.call(Op::Cas {
        key: "k4".into(),
        from: Some(1),
        to: 2,
    });
    assert_eq!(r.error.unwrap().code, ErrorCode::CasMismatch);
    assert!(
        c.call(Op::Cas {
            key: "k4".into(),
            from: Some(299),
            to: 300,
        })
        .ok
    );
    assert_eq!(
        c.call(Op::Read {
            key: "never".into()
        })
        .value,
        Some(None)
    );

    // Followers redirect to the leader.
    let fi = (li + 1) % 3;
    let r = Client::connect(configs[fi].client_addr).call(Op::Read { key: "k4".into() });
    let err = r.error.unwrap();
    assert_eq!(err.code, ErrorCode::NotLeader);
    assert!(err.definite);
    assert_eq!(err.leader.as_deref(), Some(first.as_str()));

    // Status reports commit and applied.
    let s = c.call(Op::Status).status.unwrap();
    assert!(s.commit >= 302 && s.applied == Some(s.commit), "{s:?}");
    drop(c);

    // Stop the leader: the others take over and hold every acknowledged write.
    nodes[li].stop();
    let statuses = wait_for(&configs, &[first.as_str()], "a new leader", |s| {
        leader_of(s).is_some()
    });
    let second = leader_of(&statuses).unwrap();
    assert_ne!(second, first);
    let mut c2 = Client::connect(configs[index_of(&configs, &second)].client_addr);
    for k in 0..4 {
        let r = c2.call(Op::Read {
            key: format!("k{k}"),
        });
        assert_eq!(r.value, Some(Some(295 + k)), "k{k}");
    }
    assert_eq!(
        c2.call(Op::Read { key: "k4".into() }).value,
        Some(Some(300))
    );
    assert!(
        c2.call(Op::Write {
            key: "after".into(),
            value: 1
        })
        .ok
    );

    // Restart the old leader from its data directory: it rejoins as a follower.
    nodes[li] = Node::start(configs[li].clone(), serve);
    let statuses = wait_for(&configs, &[], "the old leader to rejoin", |s| {
        leader_of(s).is_some()
    });
    assert_eq!(leader_of(&statuses).as_deref(), Some(second.as_str()));
    assert!(
        c2.call(Op::Write {
            key: "after".into(),
            value: 2
        })
        .ok
    );
    let want = c2.call(Op::Status).status.unwrap().commit;
    wait_for(&configs, &[], "the old leader to catch up", |s| {
        s.iter().all(|(_, st)| st.applied.unwrap_or(0) >= want)
    });
    for n in nodes.iter_mut() {
        n.stop();
    }
}

/// Writes through a follower (`forward: true`) with lease reads and snapshots; a full restart
/// recovers the state from snapshots and logs.
pub fn forward_lease_reads_and_restart<E: std::fmt::Debug + Send + 'static>(serve: ServeFn<E>) {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let settings = serde_json::json!({
        "heartbeat": "20ms", "election_timeout": ["100ms", "200ms"],
        "forward": true, "read": "lease", "snapshot_threshold": 50
    });
    let configs = configs(&dirs, settings);
    let mut nodes: Vec<Node<E>> = start_all(&configs, serve);
    let statuses = wait_for(&configs, &[], "a leader", |s| leader_of(s).is_some());
    let leader = leader_of(&statuses).unwrap();
    let fi = (index_of(&configs, &leader) + 1) % 3;
    let mut c = Client::connect(configs[fi].client_addr);
    // Enough writes through a follower to compact the logs a few times.
    c.write_all(200, 3);
    assert_eq!(c.call(Op::Read { key: "k2".into() }).value, Some(Some(197)));
    for n in nodes.iter_mut() {
        n.stop();
    }
    // Restart everything: state comes back from snapshots and logs.
    let mut nodes: Vec<Node<E>> = start_all(&configs, serve);
    wait_for(&configs, &[], "a leader after a full restart", |s| {
        leader_of(s).is_some()
    });
    let mut c = Client::connect(configs[fi].client_addr);
    assert_eq!(c.call(Op::Read { key: "k1".into() }).value, Some(Some(199)));
    for n in nodes.iter_mut() {
        n.stop();
    }
}

/// Closed-loop write load against a 3-node cluster for 3 s; prints throughput. Not a pass/fail
/// test of speed (tests do not assert wall-clock figures). `clients_var`: the environment
/// variable that sets the number of clients (default 64).
pub fn throughput_report<E: std::fmt::Debug + Send + 'static>(
    serve: ServeFn<E>,
    clients_var: &str,
) {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let configs = configs(&dirs, serde_json::json!({}));
    let _nodes: Vec<Node<E>> = start_all(&configs, serve);
    let statuses = wait_for(&configs, &[], "a leader", |s| leader_of(s).is_some());
    let leader = leader_of(&statuses).unwrap();
    let addr = configs[index_of(&configs, &leader)].client_addr;
    report_throughput(addr, clients_var, 64, |c, n| Op::Write {
        key: format!("k{}", n % 8),
        value: (c as i64) << 32 | n as i64,
    });
}

/// The contract tests of a consensus node crate, in its `tests/cluster.rs`:
/// `faultline_replica::consensus_tests!(faultline_raft, "RAFT_CLIENTS");` (the variable sets
/// the clients of the ignored throughput report).
#[macro_export]
macro_rules! consensus_tests {
    ($node:ident, $clients_var:literal) => {
        const SERVE: $crate::testkit::ServeFn<$node::Error> =
            |c, stop| Box::pin($node::serve(c, stop));

        #[test]
        fn three_nodes_replicate_fail_over_and_recover() {
            $crate::testkit::consensus::replicate_fail_over_and_recover(SERVE);
        }

        #[test]
        fn followers_forward_and_lease_reads_work() {
            $crate::testkit::consensus::forward_lease_reads_and_restart(SERVE);
        }

        /// Prints closed-loop write throughput: run it with
        /// `cargo test -p <crate> --release --test cluster -- --ignored --nocapture`.
        #[test]
        #[ignore]
        fn throughput_report() {
            $crate::testkit::consensus::throughput_report(SERVE, $clients_var);
        }
    };
}
