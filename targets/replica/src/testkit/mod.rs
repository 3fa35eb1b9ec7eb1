//! Test support for the reference nodes' in-process cluster tests: nodes on their own threads
//! and runtimes over real loopback sockets and real data directories, a blocking protocol
//! client, and polling of status until a condition holds.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::pin::Pin;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use faultline_protocol::{decode_response, encode, NodeConfig, Op, Request, Response};
use tokio::sync::oneshot;

pub mod consensus;
pub mod core;
pub mod settings;

/// `n` distinct free ports on a loopback address of this process's own (`127.x.y.z`, from its
/// pid), all bound at once and then released: no two are the same, and a connection to
/// 127.0.0.1 made meanwhile by anything else on the machine cannot take one of them.
pub fn free_ports(n: usize) -> Vec<SocketAddr> {
    let pid = std::process::id();
    let ip = std::net::Ipv4Addr::new(
        127,
        (pid >> 16) as u8 | 1,
        (pid >> 8) as u8,
        (pid as u8).max(2),
    );
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind((ip, 0)).unwrap())
        .collect();
    held.iter().map(|l| l.local_addr().unwrap()).collect()
}

pub fn free_port() -> SocketAddr {
    free_ports(1)[0]
}

/// How a node kind serves: its crate's `serve(config, shutdown)`.
pub type ServeFn<E> = fn(
    NodeConfig,
    Pin<Box<dyn Future<Output = ()> + Send>>,
) -> Pin<Box<dyn Future<Output = Result<(), E>> + Send>>;

/// A node running on its own thread and runtime; stopped (cleanly) on drop.
pub struct Node<E: std::fmt::Debug + Send + 'static> {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), E>>>,
}

impl<E: std::fmt::Debug + Send + 'static> Node<E> {
    pub fn start(config: NodeConfig, serve: ServeFn<E>) -> Node<E> {
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(serve(
                config,
                Box::pin(async {
                    let _ = stopped.await;
                }),
            ))
        });
        Node {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stop the node and wait for it; panics if it ended with an error.
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
    }
}

impl<E: std::fmt::Debug + Send + 'static> Drop for Node<E> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A blocking client of the node protocol.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_id: u64,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let deadline = Instant::now() + Duration::from_secs(5);
        let stream = loop {
            match TcpStream::connect(addr) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("cannot connect to {addr}: {e}"),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            next_id: 0,
        }
    }

    pub fn call(&mut self, op: Op) -> Response {
        self.next_id += 1;
        let id = self.next_id;
        self.writer.write_all(&encode(&Request { id, op })).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let r = decode_response(line.trim_end().as_bytes()).unwrap();
        assert_eq!(r.id, id);
        r
    }

    /// Send one raw line (malformed input, say) and decode the response line.
    pub fn raw(&mut self, line: &[u8]) -> Response {
        self.writer.write_all(line).unwrap();
        let mut reply = String::new();
        self.reader.read_line(&mut reply).unwrap();
        decode_response(reply.trim_end().as_bytes()).unwrap()
    }

    /// Pipeline `n` writes, `k{i % keys} = i` for `i` in `0..n`; every one must succeed.
    pub fn write_all(&mut self, n: i64, keys: i64) {
        let ops = (0..n)
            .map(|i| Op::Write {
                key: format!("k{}", i % keys),
                value: i,
            })
            .collect();
        let replies = self.pipeline(ops);
        assert!(replies.values().all(|r| r.ok), "{replies:?}");
    }

    /// Pipeline `ops` and collect responses by id.
    pub fn pipeline(&mut self, ops: Vec<Op>) -> BTreeMap<u64, Response> {
        let mut buf = Vec::new();
        let first = self.next_id + 1;
        for op in ops {
            self.next_id += 1;
            buf.extend_from_slice(&encode(&Request {
                id: self.next_id,
                op,
            }));
        }
        self.writer.write_all(&buf).unwrap();
        let mut out = BTreeMap::new();
        while out.len() < (self.next_id + 1 - first) as usize {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            let r = decode_response(line.trim_end().as_bytes()).unwrap();
            out.insert(r.id, r);
        }
        out
    }
}

/// Configurations of nodes n1..n3 on free loopback ports, with data in `dirs`.
pub fn configs(dirs: &[impl AsRef<Path>], settings: serde_json::Value) -> Vec<NodeConfig> {
    let ids = ["n1", "n2", "n3"];
    let mut ports = free_ports(2 * ids.len());
    let peer: Vec<SocketAddr> = ports.split_off(ids.len());
    let client: Vec<SocketAddr> = ports;
    ids.iter()
        .enumerate()
        .map(|(i, id)| NodeConfig {
            id: (*id).to_owned(),
            client_addr: client[i],
            peer_addr: peer[i],
            peers: ids
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(j, p)| ((*p).to_owned(), peer[j]))
                .collect(),
            data_dir: dirs[i].as_ref().to_owned(),
            settings: settings.as_object().unwrap().clone(),
            bugs: vec![],
        })
        .collect()
}

/// Poll every node's status until `pred` holds for the set, or fail after 10 s.
pub fn wait_for(
    configs: &[NodeConfig],
    skip: &[&str],
    what: &str,
    pred: impl Fn(&[(String, faultline_protocol::Status)]) -> bool,
) -> Vec<(String, faultline_protocol::Status)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let statuses: Vec<_> = configs
            .iter()
            .filter(|c| !skip.contains(&c.id.as_str()))
            .map(|c| {
                let s = Client::connect(c.client_addr)
                    .call(Op::Status)
                    .status
                    .unwrap();
                (c.id.clone(), s)
            })
            .collect();
        if pred(&statuses) {
            return statuses;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {statuses:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Start a node for every config.
pub fn start_all<E: std::fmt::Debug + Send + 'static>(
    configs: &[NodeConfig],
    serve: ServeFn<E>,
) -> Vec<Node<E>> {
    configs
        .iter()
        .cloned()
        .map(|c| Node::start(c, serve))
        .collect()
}

/// Closed-loop load for 3 s from as many clients as the environment variable `clients_var`
/// says (else `clients`), each sending `op(client, n)` for its `n`-th operation to `addr`;
/// prints the throughput. Not a pass/fail test of speed (tests do not assert wall-clock
/// figures).
pub fn report_throughput(
    addr: SocketAddr,
    clients_var: &str,
    clients: usize,
    op: fn(usize, u64) -> Op,
) {
    let secs = 3;
    let clients: usize = std::env::var(clients_var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(clients);
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                let (mut n, mut ok) = (0u64, 0u64);
                while start.elapsed() < Duration::from_secs(secs) {
                    n += 1;
                    ok += u64::from(client.call(op(c, n)).ok);
                }
                (n, ok)
            })
        })
        .collect();
    let (mut total, mut ok) = (0, 0);
    for t in threads {
        let (n, o) = t.join().unwrap();
        total += n;
        ok += o;
    }
    let elapsed = start.elapsed().as_secs_f64();
    eprintln!(
        "{clients} clients: {total} ops ({ok} ok) in {elapsed:.2}s = {:.0} ops/s, {:.0} ok/s",
        total as f64 / elapsed,
        ok as f64 / elapsed
    );
}

/// The position of node `id` in `configs`.
pub fn index_of(configs: &[NodeConfig], id: &str) -> usize {
    configs.iter().position(|c| c.id == id).unwrap()
}

/// A state machine that holds `key = value`.
pub fn state_with(key: &str, value: i64) -> crate::KvState {
    let mut state = crate::KvState::new();
    state.apply(&crate::Command::Write {
        key: key.to_owned(),
        value,
    });
    state
}

/// Persist `batches` through the file storage `S` in a fresh data directory and into the
/// simulator's in-memory disk: reopened, the files recover what the disk models. Returns it.
#[cfg(feature = "sim")]
pub fn assert_recovers_as_modelled<S>(batches: Vec<Vec<S::Persist>>) -> S::Recovered
where
    S: crate::OpenStorage,
    S::Persist: Clone,
    S::Recovered: crate::sim::DiskImage<Persist = S::Persist> + PartialEq + std::fmt::Debug,
{
    let dir = tempfile::tempdir().unwrap();
    let (mut st, rec) = S::open(dir.path(), false).unwrap();
    assert_eq!(rec, S::Recovered::default());
    let mut mem = crate::sim::Disk::<S::Recovered>::new(false);
    for b in batches {
        mem.persist(0, &b);
        st.persist(b).unwrap();
    }
    drop(st);
    let (_, rec) = S::open(dir.path(), false).unwrap();
    assert_eq!(rec, mem.recovered);
    rec
}
