//! Hostile clients against real reference nodes (`faultline node <kind>` processes, three per
//! cluster): generated garbage, JSON with the wrong shapes and types, lines past the 1 MiB
//! limit, lines cut off by a closed connection, garbage on the peer port, and 2,000 idle
//! connections. The documented behaviour (targets/replica/src/server.rs): one response per
//! non-blank line, `bad_request` for a line that does not decode (or is too long), the
//! connection kept open, and the node still serving everyone else afterwards.
//! `PROPTEST_CASES` sets the generated cases per node kind (default 48).

use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faultline_protocol::{decode_request, decode_response, encode, ErrorCode, Op, Request};
use faultline_replica::server::MAX_LINE;
use faultline_replica::testkit;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Three node processes of one kind on loopback; killed when dropped.
struct Nodes {
    children: Vec<Child>,
    clients: Vec<SocketAddr>,
    peers: Vec<SocketAddr>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(kind: &str, dir: &Path) -> Nodes {
    let settings = match kind {
        "primary-backup" => serde_json::json!({ "heartbeat": "50ms", "takeover_timeout": "300ms" }),
        _ => serde_json::json!({ "heartbeat": "50ms", "election_timeout": ["150ms", "300ms"] }),
    };
    let dirs: Vec<_> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| dir.join(kind).join(id))
        .collect();
    let configs = testkit::configs(
        &dirs.iter().map(|d| d.join("data")).collect::<Vec<_>>(),
        settings,
    );
    let mut children = Vec::new();
    for (node_dir, config) in dirs.iter().zip(&configs) {
        std::fs::create_dir_all(&config.data_dir).unwrap();
        let path = node_dir.join("config.json");
        std::fs::write(&path, serde_json::to_vec(config).unwrap()).unwrap();
        let stderr = std::fs::File::create(node_dir.join("stderr.log")).unwrap();
        children.push(
            Command::new(common::exe())
                .args(["node", kind, "--config"])
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap(),
        );
    }
    let clients = configs.iter().map(|c| c.client_addr).collect();
    let peers = configs.iter().map(|c| c.peer_addr).collect();
    let nodes = Nodes {
        children,
        clients,
        peers,
    };
    wait_serving(&nodes, kind);
    nodes
}

/// One request on a fresh connection; its response, if one comes within 5 s.
fn call(addr: SocketAddr, op: Op) -> Option<faultline_protocol::Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(&encode(&Request { id: 7, op })).ok()?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while s.read(&mut byte).ok()? == 1 {
        if byte[0] == b'\n' {
            return decode_response(&line).ok();
        }
        line.push(byte[0]);
    }
    None
}

/// Until some node accepts a write (a leader or primary is in place), at most 20 s.
fn wait_serving(nodes: &Nodes, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        for addr in &nodes.clients {
            let op = Op::Write {
                key: "probe".into(),
                value: 1,
            };
            if call(*addr, op).is_some_and(|r| r.ok) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: no node accepted a write within 20 s");
}

fn assert_alive(nodes: &mut Nodes, what: &str) {
    for (i, c) in nodes.children.iter_mut().enumerate() {
        assert!(
            c.try_wait().unwrap().is_none(),
            "{what}: node n{} exited",
            i + 1
        );
    }
}

/// A JSON value of any shape, for fields of the wrong type.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value as J;
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::from),
        any::<u64>().prop_map(J::from),
        any::<f64>().prop_map(J::from),
        "[ -~]{0,12}".prop_map(J::String),
        prop_oneof![Just("read"), Just("write"), Just("cas"), Just("status")]
            .prop_map(|s| J::String(s.into())),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map("[a-z]{1,4}", inner, 0..3)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with the protocol's field names (and others) holding anything.
fn json_line() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        Just("id".to_string()),
        Just("op".to_string()),
        Just("key".to_string()),
        Just("value".to_string()),
        Just("from".to_string()),
        Just("to".to_string()),
        "[a-z]{1,5}",
    ];
    proptest::collection::btree_map(field, any_json(), 0..6).prop_map(|m| {
        let mut line = serde_json::to_vec(&serde_json::Value::Object(m.into_iter().collect()))
            .expect("JSON values serialize");
        line.push(b'\n');
        line
    })
}

/// A request the protocol accepts.
fn valid_line() -> impl Strategy<Value = Vec<u8>> {
    let key = "[a-z]{1,6}";
    let op = prop_oneof![
        key.prop_map(|key| Op::Read { key }),
        (key, any::<i64>()).prop_map(|(key, value)| Op::Write { key, value }),
        (key, proptest::option::of(any::<i64>()), any::<i64>())
            .prop_map(|(key, from, to)| Op::Cas { key, from, to }),
        Just(Op::Status),
    ];
    (any::<u64>(), op).prop_map(|(id, op)| encode(&Request { id, op }))
}

/// One piece of a connection's input.
fn chunk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..120),
        4 => json_line(),
        3 => valid_line(),
        1 => (1usize..4096).prop_map(|extra| {
            let mut v = vec![b'x'; MAX_LINE + extra];
            v.push(b'\n');
            v
        }),
    ]
}

/// What the node must answer to `input`: (bad lines, the ids of the good requests).
fn expected(input: &[u8]) -> (usize, Vec<u64>) {
    let mut pieces: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
    if input.ends_with(b"\n") || input.is_empty() {
        pieces.pop();
    }
    let (mut bad, mut good) = (0, Vec::new());
    for p in pieces {
        // Generated lines are either tiny or past the limit by far.
        if p.len() > MAX_LINE / 2 {
            bad += 1;
            continue;
        }
        let mut end = p.len();
        while end > 0 && matches!(p[end - 1], b'\r' | b' ' | b'\t') {
            end -= 1;
        }
        if end == 0 {
            continue;
        }
        match decode_request(&p[..end]) {
            Ok(r) => good.push(r.id),
            Err(_) => bad += 1,
        }
    }
    good.sort_unstable();
    (bad, good)
}

/// Send `input` on one connection, close our side, and read every response to the end.
fn exchange(addr: SocketAddr, input: &[u8]) -> Result<Vec<u8>, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut writer = s.try_clone().map_err(|e| e.to_string())?;
    let input = input.to_vec();
    // Write on another thread: the node answers while we send, and a large input must not
    // deadlock on full socket buffers in both directions.
    let sender = std::thread::spawn(move || {
        let r = writer.write_all(&input);
        let _ = writer.shutdown(Shutdown::Write);
        r
    });
    let mut out = Vec::new();
    let read = s.read_to_end(&mut out);
    let sent = sender.join().expect("sender thread");
    sent.map_err(|e| format!("send: {e}"))?;
    read.map_err(|e| format!("read (after {} bytes): {e}", out.len()))?;
    Ok(out)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

fn garbage_on_the_client_port(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = start(kind, dir.path());
    let addrs = nodes.clients.clone();
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let input = (
        proptest::collection::vec(chunk(), 1..8),
        any::<bool>(),
        0usize..3,
    );
    let result = runner.run(&input, |(chunks, cut_last, node)| {
        let mut bytes: Vec<u8> = chunks.concat();
        if cut_last && bytes.ends_with(b"\n") {
            bytes.pop();
        }
        let (bad, good) = expected(&bytes);
        let out = exchange(addrs[node], &bytes).map_err(TestCaseError::fail)?;
        let (mut got_bad, mut got_good) = (0, Vec::new());
        for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let r = decode_response(line).map_err(|e| {
                TestCaseError::fail(format!(
                    "undecodable response {:?}: {e}",
                    String::from_utf8_lossy(line)
                ))
            })?;
            match r.error.map(|e| e.code) {
                Some(ErrorCode::BadRequest) => got_bad += 1,
                _ => got_good.push(r.id),
            }
        }
        got_good.sort_unstable();
        prop_assert_eq!(got_bad, bad, "bad_request responses");
        prop_assert_eq!(got_good, good, "answers to good requests");
        Ok(())
    });
    if let Err(e) = result {
        panic!("{kind}: {e}");
    }
    assert_alive(&mut nodes, kind);
    wait_serving(&nodes, kind);
}

#[test]
fn raft_nodes_answer_garbage_with_bad_request_and_keep_serving() {
    garbage_on_the_client_port("raft");
}

#[test]
fn paxos_nodes_answer_garbage_with_bad_request_and_keep_serving() {
    garbage_on_the_client_port("paxos");
}

#[test]
fn primary_backup_nodes_answer_garbage_with_bad_request_and_keep_serving() {
    garbage_on_the_client_port("primary-backup");
}

/// Garbage on the peer port (length-prefixed frames between nodes) costs the sender its
/// connection, never the node: the cluster keeps serving.
#[test]
fn garbage_on_the_peer_port_leaves_the_cluster_serving() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["raft", "paxos", "primary-backup"] {
        let mut nodes = start(kind, dir.path());
        let peers = nodes.peers.clone();
        let mut runner = TestRunner::new(Config {
            cases: cases(),
            failure_persistence: None,
            ..Config::default()
        });
        let input = (proptest::collection::vec(any::<u8>(), 0..400), 0usize..3);
        runner
            .run(&input, |(bytes, node)| {
                if let Ok(mut s) = TcpStream::connect(peers[node]) {
                    let _ = s.write_all(&bytes);
                    let _ = s.shutdown(Shutdown::Write);
                    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                    let mut sink = Vec::new();
                    let _ = s.read_to_end(&mut sink);
                }
                Ok(())
            })
            .unwrap();
        assert_alive(&mut nodes, kind);
        wait_serving(&nodes, kind);
    }
}

/// File descriptors a process has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// How far the node's descriptor count may drift from the client connections alone: peer
/// connections are redialled now and then.
const SLACK: usize = 16;

/// The node's descriptor count once it has held still for half a second (at most 10 s).
fn settled_fds(pid: u32) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = open_fds(pid);
    let mut since = Instant::now();
    while Instant::now() < deadline && since.elapsed() < Duration::from_millis(500) {
        std::thread::sleep(Duration::from_millis(50));
        let now = open_fds(pid);
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    last
}

/// 2,000 idle client connections to one Raft node: it still answers a new client at once,
/// and once they close, it holds no more descriptors than before.
#[test]
fn two_thousand_idle_connections_are_held_and_released() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < 2_500 {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        soft >= 2_500,
        "this test needs 2,500 open files; the hard limit here is {hard}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = start("raft", dir.path());
    let pid = nodes.children[0].id();
    let addr = nodes.clients[0];
    let before = settled_fds(pid);
    let idle: Vec<TcpStream> = (0..2_000)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    // Every connection was accepted: the node holds one descriptor for each (give or take
    // the few peer connections that come and go meanwhile).
    let deadline = Instant::now() + Duration::from_secs(30);
    while open_fds(pid) < before + 2_000 - SLACK && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let held = open_fds(pid);
    assert!(
        held >= before + 2_000 - SLACK,
        "{held} descriptors, {before} before"
    );
    // A new client is served while they idle.
    let r = call(addr, Op::Status).expect("a status answer beside 2,000 idle connections");
    assert!(r.ok, "{r:?}");
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(30);
    while open_fds(pid) > before + SLACK && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = open_fds(pid);
    assert!(
        after <= before + SLACK,
        "{after} descriptors after the idle connections closed, {before} before"
    );
    assert_alive(&mut nodes, "raft");
}
