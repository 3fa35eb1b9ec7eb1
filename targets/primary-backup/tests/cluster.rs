//! Three real primary-backup nodes on loopback, each on its own thread and runtime, talking
//! through real sockets and fsyncing into temporary directories.

use faultline_protocol::{NodeConfig, Op, Role};
use faultline_replica::testkit::{self, configs, report_throughput, wait_for, Client};

type Node = testkit::Node<faultline_primary_backup::Error>;

fn start(config: NodeConfig) -> Node {
    Node::start(config, |c, stop| {
        Box::pin(faultline_primary_backup::serve(c, stop))
    })
}

fn leader_of(statuses: &[(String, faultline_protocol::Status)]) -> Option<String> {
    let leaders: Vec<_> = statuses
        .iter()
        .filter(|(_, s)| s.role == Role::Leader)
        .collect();
    let followers = statuses
        .iter()
        .filter(|(_, s)| s.role == Role::Follower)
        .count();
    (leaders.len() == 1 && followers + 1 == statuses.len()).then(|| leaders[0].0.clone())
}

#[test]
fn three_nodes_replicate_fail_over_and_recover() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let settings = serde_json::json!({"heartbeat": "20ms", "takeover_timeout": "150ms"});
    let configs = configs(&dirs, settings);
    let mut nodes: Vec<Node> = configs.iter().cloned().map(start).collect();

    let statuses = wait_for(&configs, &[], "a primary", |s| leader_of(s).is_some());
    assert_eq!(leader_of(&statuses).as_deref(), Some("n1"));
    assert!(statuses.iter().all(|(_, s)| s.term == 1));

    // Writes and reads through the primary, pipelined on one connection.
    let mut c1 = Client::connect(configs[0].client_addr);
    c1.write_all(200, 5);
    let r = c1.call(Op::Read { key: "k4".into() });
    assert_eq!(r.value, Some(Some(199)));
    let r = c1.call(Op::Cas {
        key: "k4".into(),
        from: Some(1),
        to: 2,
    });
    assert_eq!(
        r.error.unwrap().code,
        faultline_protocol::ErrorCode::CasMismatch
    );
    let r = c1.call(Op::Read {
        key: "never".into(),
    });
    assert_eq!(r.value, Some(None));

    // Backups redirect to the primary.
    let r = Client::connect(configs[1].client_addr).call(Op::Read { key: "k4".into() });
    let err = r.error.unwrap();
    assert_eq!(err.code, faultline_protocol::ErrorCode::NotLeader);
    assert_eq!(err.leader.as_deref(), Some("n1"));

    // Bad input gets bad_request and the connection stays usable.
    let r = c1.raw(b"{\"id\":77,\"op\":\"bogus\"}\n");
    assert_eq!(
        (r.id, r.error.unwrap().code),
        (77, faultline_protocol::ErrorCode::BadRequest)
    );
    assert_eq!(
        c1.call(Op::Read { key: "k0".into() }).value,
        Some(Some(195))
    );
    drop(c1);

    // Stop the primary: n2 takes over with every acknowledged write.
    nodes[0].stop();
    let statuses = wait_for(&configs, &["n1"], "a takeover", |s| leader_of(s).is_some());
    assert_eq!(leader_of(&statuses).as_deref(), Some("n2"));
    let mut c2 = Client::connect(configs[1].client_addr);
    for k in 0..5 {
        let r = c2.call(Op::Read {
            key: format!("k{k}"),
        });
        assert_eq!(r.value, Some(Some(195 + k)), "k{k}");
    }
    assert!(
        c2.call(Op::Write {
            key: "after".into(),
            value: 1
        })
        .ok
    );

    // Restart n1 from its data directory: it recovers and rejoins as a backup.
    nodes[0] = start(configs[0].clone());
    let statuses = wait_for(&configs, &[], "n1 to rejoin", |s| {
        leader_of(s).is_some() && s.iter().all(|(_, st)| st.term == s[1].1.term)
    });
    assert_eq!(leader_of(&statuses).as_deref(), Some("n2"));
    assert!(
        c2.call(Op::Write {
            key: "after".into(),
            value: 2
        })
        .ok
    );
    for n in nodes.iter_mut() {
        n.stop();
    }
}

/// Closed-loop load against a 3-node cluster; prints throughput. Not a pass/fail test of
/// speed (tests do not assert wall-clock figures): run it with
/// `cargo test -p faultline-primary-backup --release --test cluster -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput_report() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let configs = configs(&dirs, serde_json::json!({}));
    let _nodes: Vec<Node> = configs.iter().cloned().map(start).collect();
    wait_for(&configs, &[], "a primary", |s| leader_of(s).is_some());
    let addr = configs[0].client_addr;
    report_throughput(addr, "PB_CLIENTS", 32, |c, n| {
        let key = format!("k{}", n % 8);
        match n & 1 {
            0 => Op::Read { key },
            _ => Op::Write {
                key,
                value: (c as i64) << 32 | n as i64,
            },
        }
    });
}
