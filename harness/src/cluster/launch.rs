//! Starting a cluster's nodes as child processes of the harness (the `process` backend):
//! reference nodes, etcd members, Redis servers with their Sentinels, or `command` targets;
//! ports, config files, log capture, readiness, and the process-level verbs faults use.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_faults::netns::{Netns, NetnsError};
use faultline_faults::{NetnsChoice, NodeProcess, PauseGuard, ProcessError, ProcessSpec};
use faultline_protocol::{NodeConfig, Op};

use super::client::{Driver, NodeClient};
use super::kind::{NodeStart, System, TargetKind};
use super::network::Mesh;
use super::NetworkMode;

/// What to launch.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The kind of system (the registry's entry).
    pub kind: &'static TargetKind,
    /// Its typed settings and how its nodes start.
    pub system: Arc<dyn System>,
    pub nodes: u32,
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub bugs: Vec<String>,
    /// The executable that runs nodes (`faultline` itself; tests pass the built binary).
    pub exe: PathBuf,
    /// `nodes/<id>/` goes here.
    pub run_dir: PathBuf,
    /// Connections per node in the client pool.
    pub pool: usize,
    /// `direct`, or `proxy`: every link through a relay of the harness ([`Mesh`]), or `netns`.
    pub network: NetworkMode,
    /// In `netns` mode, also put a link proxy on every link (for delays and the other TCP-level
    /// faults, which the kernel cannot do here): the node-to-node proxies sit in the sending
    /// node's namespace, so packets still cross the bridge from node to node.
    pub netns_proxies: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no free port on {ip}: {source}")]
    Port { ip: IpAddr, source: std::io::Error },
    #[error("node {node}: {source}")]
    Process { node: String, source: ProcessError },
    #[error("node {node} exited during startup ({status}); last log lines:\n{log}")]
    DiedAtStart {
        node: String,
        status: String,
        log: String,
    },
    #[error("cannot start the link proxies: {0}")]
    Proxy(std::io::Error),
    #[error("cannot build the netns network: {0}")]
    Netns(#[from] NetnsError),
    #[error("cannot find `{program}` ({hint})")]
    MissingProgram { program: String, hint: String },
    #[error("cluster not ready after {waited:?}: {detail}")]
    NotReady { waited: Duration, detail: String },
}

/// Writes `text` to `path`, as a [`ClusterError::Io`] on failure.
pub fn write_file(path: &Path, text: impl AsRef<[u8]>) -> Result<(), ClusterError> {
    std::fs::write(path, text).map_err(|source| ClusterError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Creates `dir` and its parents, as a [`ClusterError::Io`] on failure.
pub fn create_dir(dir: &Path) -> Result<(), ClusterError> {
    std::fs::create_dir_all(dir).map_err(|source| ClusterError::Io {
        path: dir.to_owned(),
        source,
    })
}

/// One node: its addresses, files and (when running) its process.
pub struct NodeHandle {
    pub id: String,
    /// Where the node listens for clients (the harness dials `client_via`).
    pub client_addr: SocketAddr,
    /// Where the harness's clients connect: the client link proxy, or `client_addr`.
    pub client_via: SocketAddr,
    pub peer_addr: SocketAddr,
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    /// The program and arguments that start the node.
    pub program: PathBuf,
    pub args: Vec<String>,
    /// How to speak to this node (a new client for the observer or health checks).
    pub driver: Driver,
    pub client: NodeClient,
    process: Mutex<Option<Arc<NodeProcess>>>,
    pause: Mutex<PauseHolds>,
    /// Set while the harness has the node down or is stopping it, so its exit is expected.
    pub expect_down: AtomicBool,
}

impl NodeHandle {
    pub fn stderr_path(&self) -> PathBuf {
        self.dir.join("stderr.log")
    }

    /// The last `n` lines of the node's stderr log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.stderr_path(), n)
    }

    pub fn process(&self) -> Option<Arc<NodeProcess>> {
        self.process.lock().expect("process slot").clone()
    }

    pub fn is_running(&self) -> bool {
        self.process().is_some_and(|p| p.is_running())
    }

    pub fn is_paused(&self) -> bool {
        self.pause.lock().expect("pause slot").guard.is_some()
    }

    /// Let go of every pause: the process is resumed (or is being killed or replaced).
    fn release_pauses(&self) {
        let mut holds = self.pause.lock().expect("pause slot");
        holds.holders.clear();
        holds.guard.take();
    }
}

/// Who holds a node stopped: the faults (by id) whose pause is in force, and the guard that
/// sends SIGCONT when the last of them lets go. Overlapping pauses of one node therefore nest:
/// the node stays stopped until every one of them has ended.
#[derive(Default)]
struct PauseHolds {
    guard: Option<PauseGuard>,
    holders: std::collections::BTreeSet<u64>,
}

/// A process that serves the cluster beside a node but is no target of faults (a Redis
/// Sentinel): started after the nodes, in the node's namespace, stopped with the cluster.
pub struct Sidecar {
    pub node: String,
    pub spec: ProcessSpec,
    process: Mutex<Option<NodeProcess>>,
}

impl Sidecar {
    /// The sidecar of `node`, not started yet.
    pub fn new(node: &str, spec: ProcessSpec) -> Sidecar {
        Sidecar {
            node: node.to_string(),
            spec,
            process: Mutex::new(None),
        }
    }

    /// How the sidecar ended, once it has (none while it runs or before it starts).
    pub fn exit_status(&self) -> Option<std::process::ExitStatus> {
        self.process
            .lock()
            .expect("sidecar slot")
            .as_ref()
            .and_then(|p| p.exit_status())
    }
}

/// A launched cluster. Dropping it kills every node.
pub struct Cluster {
    pub spec: ClusterSpec,
    pub nodes: Vec<Arc<NodeHandle>>,
    /// The link proxies, in `proxy` mode.
    pub mesh: Option<Arc<Mesh>>,
    /// The namespaces, bridge and packet rules, in `netns` mode. Declared after `nodes`, so
    /// it is taken down after them.
    pub netns: Option<Arc<Netns>>,
    /// How the harness talks to this kind of node.
    pub driver: Driver,
    pub sidecars: Vec<Sidecar>,
}

/// Ports every node listens on in `netns` mode, where each has an address of its own.
const NETNS_CLIENT_PORT: u16 = 7000;
const NETNS_PEER_PORT: u16 = 7001;

impl Cluster {
    /// Allocate addresses, write each node's config, and start every node. Nodes listen on a
    /// loopback address chosen at random in 127.0.0.0/8 for this run, on ports the kernel
    /// hands out, so runs side by side do not collide. In `proxy` mode every node dials its
    /// peers, and the harness dials every node, through the run's link proxies.
    pub async fn launch(spec: ClusterSpec) -> Result<Cluster, ClusterError> {
        if spec.network == NetworkMode::Netns {
            return Self::launch_netns(spec).await;
        }
        let ip = run_ip();
        let mut addrs = Vec::new();
        // Hold every listener until all ports are chosen and the link proxies (which bind
        // port 0 on the same address) are listening, so no two nodes get one port and no
        // proxy takes a node's port; released just before the nodes start.
        let mut held = Vec::new();
        for _ in 0..spec.nodes * 2 {
            let l = TcpListener::bind(SocketAddr::new(ip, 0))
                .map_err(|source| ClusterError::Port { ip, source })?;
            addrs.push(
                l.local_addr()
                    .map_err(|source| ClusterError::Port { ip, source })?,
            );
            held.push(l);
        }
        let ids: Vec<String> = (1..=spec.nodes).map(|i| format!("n{i}")).collect();
        let ends: Vec<(String, SocketAddr, SocketAddr)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), addrs[i * 2], addrs[i * 2 + 1]))
            .collect();
        let mesh = match spec.network {
            NetworkMode::Direct | NetworkMode::Netns => None,
            NetworkMode::Proxy => Some(Arc::new(
                Mesh::start(ip, &ends).await.map_err(ClusterError::Proxy)?,
            )),
        };
        drop(held);
        Self::assemble(spec, &ends, mesh, None)
    }

    /// `netns` mode: build the run's namespaces and bridge, give every node an address of its
    /// own there (same ports on each), and start each node inside its namespace. Peers dial each
    /// other across the bridge; the harness reaches them through its veth.
    async fn launch_netns(spec: ClusterSpec) -> Result<Cluster, ClusterError> {
        let ids: Vec<String> = (1..=spec.nodes).map(|i| format!("n{i}")).collect();
        let run_id = format!("{:08x}", rand::random::<u32>());
        let dir = spec.run_dir.clone();
        let net = {
            let ids = ids.clone();
            tokio::task::spawn_blocking(move || Netns::create(&run_id, &ids, &dir))
                .await
                .map_err(|e| {
                    ClusterError::Netns(NetnsError::Command {
                        command: "build the namespaces".into(),
                        detail: e.to_string(),
                    })
                })??
        };
        let addr = |id: &str, port: u16| {
            SocketAddr::new(
                IpAddr::V4(net.node_ip(id).expect("every node has an address")),
                port,
            )
        };
        let ends: Vec<(String, SocketAddr, SocketAddr)> = ids
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    addr(id, NETNS_CLIENT_PORT),
                    addr(id, NETNS_PEER_PORT),
                )
            })
            .collect();
        let mesh = if spec.netns_proxies {
            let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
            Some(Arc::new(
                Mesh::start_in(&ends, |a| (loopback, net.namespace(a)), loopback)
                    .await
                    .map_err(ClusterError::Proxy)?,
            ))
        } else {
            None
        };
        Self::assemble(spec, &ends, mesh, Some(Arc::new(net)))
    }

    /// Write every node's files and start the nodes. `ends` holds each node's (id, client
    /// address, peer address); with a mesh, nodes dial their peers and the harness dials the
    /// nodes through its proxies.
    fn assemble(
        spec: ClusterSpec,
        ends: &[(String, SocketAddr, SocketAddr)],
        mesh: Option<Arc<Mesh>>,
        netns: Option<Arc<Netns>>,
    ) -> Result<Cluster, ClusterError> {
        let driver = spec.system.driver(ends);
        let mut nodes = Vec::new();
        let mut sidecars = Vec::new();
        for (id, client_addr, peer_addr) in ends {
            let peers: BTreeMap<String, SocketAddr> = ends
                .iter()
                .filter(|(p, _, _)| p != id)
                .map(|(p, _, a)| {
                    let via = mesh.as_ref().and_then(|m| m.peer_addr(id, p));
                    (p.clone(), via.unwrap_or(*a))
                })
                .collect();
            let client_via = mesh
                .as_ref()
                .and_then(|m| m.client_addr(id))
                .unwrap_or(*client_addr);
            let node = Self::prepare_node(
                &spec,
                &driver,
                id,
                *client_addr,
                client_via,
                *peer_addr,
                peers.clone(),
            )?;
            sidecars.extend(spec.system.sidecar(&node, ends, netns.as_deref())?);
            let (program, args) = spec.system.command_line(&NodeStart {
                spec: &spec,
                node: &node,
                peers: &peers,
                ends,
            })?;
            nodes.push(Arc::new(NodeHandle {
                program,
                args,
                ..node
            }));
        }
        Self::start_all(Cluster {
            spec,
            nodes,
            mesh,
            netns,
            driver,
            sidecars,
        })
    }

    /// Start every node of a cluster just assembled (its sidecars start once the nodes are
    /// ready: [`Cluster::wait_ready`]).
    fn start_all(cluster: Cluster) -> Result<Cluster, ClusterError> {
        for n in &cluster.nodes {
            cluster.start(n)?;
        }
        Ok(cluster)
    }

    /// Start the sidecars not started yet.
    fn start_sidecars(&self) -> Result<(), ClusterError> {
        for s in &self.sidecars {
            let mut slot = s.process.lock().expect("sidecar slot");
            if slot.is_none() {
                let p = NodeProcess::spawn(&s.spec).map_err(|source| ClusterError::Process {
                    node: format!("{} (sentinel)", s.node),
                    source,
                })?;
                *slot = Some(p);
            }
        }
        Ok(())
    }

    /// Write a node's directories and config file; its handle, not yet started.
    fn prepare_node(
        spec: &ClusterSpec,
        driver: &Driver,
        id: &str,
        client_addr: SocketAddr,
        client_via: SocketAddr,
        peer_addr: SocketAddr,
        peers: BTreeMap<String, SocketAddr>,
    ) -> Result<NodeHandle, ClusterError> {
        let dir = spec.run_dir.join("nodes").join(id);
        let data_dir = dir.join("data");
        create_dir(&data_dir)?;
        let config = NodeConfig {
            id: id.to_string(),
            client_addr,
            peer_addr,
            peers,
            data_dir: data_dir.clone(),
            settings: spec.settings.clone(),
            bugs: spec.bugs.clone(),
        };
        let config_path = dir.join("config.json");
        write_file(
            &config_path,
            serde_json::to_vec_pretty(&config).expect("node config serializes"),
        )?;
        Ok(NodeHandle {
            id: id.to_string(),
            client_addr,
            client_via,
            peer_addr,
            dir,
            data_dir,
            config_path,
            program: PathBuf::new(),
            args: Vec::new(),
            driver: driver.clone(),
            client: driver.client(id, client_via, spec.pool, Duration::from_millis(200)),
            process: Mutex::new(None),
            pause: Mutex::new(PauseHolds::default()),
            expect_down: AtomicBool::new(false),
        })
    }

    pub fn ids(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.id.clone()).collect()
    }

    pub fn node(&self, id: &str) -> Option<&Arc<NodeHandle>> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Start a node's process (again). A node already running is left alone.
    pub fn start(&self, node: &NodeHandle) -> Result<u32, ClusterError> {
        let mut slot = node.process.lock().expect("process slot");
        if let Some(p) = slot.as_ref() {
            if p.is_running() {
                return Ok(p.pid());
            }
        }
        create_dir(&node.data_dir)?;
        let spec = ProcessSpec {
            program: node.program.clone(),
            args: node.args.clone(),
            env: vec![],
            stdout: node.dir.join("stdout.log"),
            stderr: node.stderr_path(),
            netns: self
                .netns
                .as_ref()
                .and_then(|n| n.node_netns(&node.id))
                .unwrap_or(NetnsChoice::Inherit),
        };
        let p = NodeProcess::spawn(&spec).map_err(|source| ClusterError::Process {
            node: node.id.clone(),
            source,
        })?;
        let pid = p.pid();
        *slot = Some(Arc::new(p));
        // A pause held the process that is gone, not this one.
        node.release_pauses();
        node.expect_down.store(false, Ordering::SeqCst);
        Ok(pid)
    }

    /// SIGKILL the node and wait until it is reaped.
    pub fn kill(&self, node: &NodeHandle) -> Result<(), ClusterError> {
        node.expect_down.store(true, Ordering::SeqCst);
        node.release_pauses();
        if let Some(p) = node.process() {
            p.kill().map_err(|source| ClusterError::Process {
                node: node.id.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// SIGTERM, SIGKILL after `grace`.
    pub fn terminate(&self, node: &NodeHandle, grace: Duration) -> Result<(), ClusterError> {
        node.expect_down.store(true, Ordering::SeqCst);
        node.release_pauses();
        if let Some(p) = node.process() {
            p.terminate(grace).map_err(|source| ClusterError::Process {
                node: node.id.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// SIGSTOP on behalf of fault `holder`, unless another fault already holds the node
    /// stopped; [`Cluster::resume`] with the same holder lets go. A node that is down has no
    /// process to stop: the pause does nothing to it.
    pub fn pause(&self, node: &NodeHandle, holder: u64) -> Result<(), ClusterError> {
        let Some(p) = node.process().filter(|p| p.is_running()) else {
            return Ok(());
        };
        let mut holds = node.pause.lock().expect("pause slot");
        if holds.guard.is_none() {
            holds.guard = Some(p.pause().map_err(|source| ClusterError::Process {
                node: node.id.clone(),
                source,
            })?);
        }
        holds.holders.insert(holder);
        Ok(())
    }

    /// Fault `holder` lets go of the node; SIGCONT once no other pause holds it.
    pub fn resume(&self, node: &NodeHandle, holder: u64) -> Result<(), ClusterError> {
        let mut holds = node.pause.lock().expect("pause slot");
        holds.holders.remove(&holder);
        if !holds.holders.is_empty() {
            return Ok(());
        }
        if let Some(g) = holds.guard.take() {
            g.resume().map_err(|source| ClusterError::Process {
                node: node.id.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Let go of every pause of the node (healing): SIGCONT.
    pub fn resume_all(&self, node: &NodeHandle) {
        node.release_pauses();
    }

    /// Delete a (stopped) node's data directory: amnesia.
    pub fn wipe(&self, node: &NodeHandle) -> Result<(), ClusterError> {
        match std::fs::remove_dir_all(&node.data_dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ClusterError::Io {
                path: node.data_dir.clone(),
                source,
            }),
        }
    }

    /// Wait until every running node answers `status` and one reports itself leader. Fails
    /// early, with the node's last log lines, if a node exits.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<Duration, ClusterError> {
        let started = Instant::now();
        let mut detail = String::from("no node answered yet");
        while started.elapsed() < timeout {
            for s in &self.sidecars {
                if let Some(status) = s
                    .process
                    .lock()
                    .expect("sidecar slot")
                    .as_ref()
                    .and_then(|p| p.exit_status())
                {
                    return Err(ClusterError::DiedAtStart {
                        node: format!("{} (sentinel)", s.node),
                        status: status.to_string(),
                        log: tail(&s.spec.stdout, 20),
                    });
                }
            }
            for n in &self.nodes {
                if let Some(p) = n.process() {
                    if let Some(status) = p.exit_status() {
                        return Err(ClusterError::DiedAtStart {
                            node: n.id.clone(),
                            status: status.to_string(),
                            log: n.log_tail(20),
                        });
                    }
                }
            }
            let mut answered = 0;
            let mut leader = None;
            for n in &self.nodes {
                if let Ok(r) = n.client.call(Op::Status, Duration::from_millis(100)).await {
                    if let Some(s) = r.status {
                        answered += 1;
                        if s.role == faultline_protocol::Role::Leader {
                            leader = Some(s.node);
                        }
                    }
                }
            }
            if answered == self.nodes.len() && leader.is_some() {
                match &self.driver {
                    // Sentinels start once every replica is attached, and the cluster is ready
                    // when each of them knows all servers and all other Sentinels.
                    Driver::Redis(shared) => {
                        let wait = Duration::from_millis(200);
                        let started_sidecars = self
                            .sidecars
                            .iter()
                            .all(|s| s.process.lock().expect("sidecar slot").is_some());
                        if !started_sidecars {
                            if shared.replicas_attached(wait).await {
                                self.start_sidecars()?;
                            }
                            detail = "replicas attaching to the primary".into();
                        } else {
                            match shared.settled(wait).await {
                                Ok(()) => return Ok(started.elapsed()),
                                Err(why) => detail = why,
                            }
                        }
                    }
                    _ => return Ok(started.elapsed()),
                }
            } else {
                detail = format!(
                    "{answered} of {} nodes answer status, leader: {}",
                    self.nodes.len(),
                    leader.as_deref().unwrap_or("none")
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(ClusterError::NotReady {
            waited: timeout,
            detail,
        })
    }

    /// Stop every node: SIGTERM, then SIGKILL after `grace`. Sidecars go first, so no
    /// Sentinel starts a failover while the servers shut down.
    pub fn stop(&self, grace: Duration) {
        for s in &self.sidecars {
            if let Some(p) = s.process.lock().expect("sidecar slot").take() {
                let _ = p.kill();
            }
        }
        for n in &self.nodes {
            n.expect_down.store(true, Ordering::SeqCst);
            n.release_pauses();
            if let Some(p) = n.process() {
                let _ = p.signal(nix::sys::signal::Signal::SIGTERM);
                let _ = p.signal(nix::sys::signal::Signal::SIGCONT);
            }
        }
        for n in &self.nodes {
            if let Some(p) = n.process() {
                if p.wait_timeout(grace).is_none() {
                    let _ = p.kill();
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for s in &self.sidecars {
            if let Some(p) = s.process.lock().ok().and_then(|mut p| p.take()) {
                let _ = p.kill();
            }
        }
        for n in &self.nodes {
            n.expect_down.store(true, Ordering::SeqCst);
            if let Ok(mut holds) = n.pause.lock() {
                holds.holders.clear();
                holds.guard.take();
            }
            if let Some(p) = n.process.lock().ok().and_then(|mut p| p.take()) {
                let _ = p.kill();
            }
        }
    }
}

/// A loopback address for this run: 127.x.y.z with x,y,z from the pid and the clock, so two
/// harnesses on one machine use different addresses. Falls back to 127.0.0.1 where the kernel
/// does not route all of 127.0.0.0/8 to loopback.
fn run_ip() -> IpAddr {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mix = (std::process::id()).wrapping_mul(2_654_435_761) ^ nanos;
    let ip = IpAddr::V4(Ipv4Addr::new(
        127,
        100 + (mix % 100) as u8,
        ((mix >> 8) % 256) as u8,
        1 + ((mix >> 16) % 250) as u8,
    ));
    if TcpListener::bind(SocketAddr::new(ip, 0)).is_ok() {
        ip
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }
}

/// The last `n` lines of a file (empty if it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The executable `name` names: a path as given, or the first match on `PATH`.
pub fn find_program(name: &str, hint: &str) -> Result<PathBuf, ClusterError> {
    let missing = || ClusterError::MissingProgram {
        program: name.to_string(),
        hint: hint.to_string(),
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if p.is_file() { Ok(p) } else { Err(missing()) };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(missing)
}
