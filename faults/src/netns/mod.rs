//! The network of `network: {mode: netns}`: every node in a network namespace of its own, all on
//! a bridge in one more namespace, reached from the harness through a veth; partitions and packet
//! loss as nftables rules at the bridge, resets as `reject with tcp reset` at the sender's
//! bridge port (netdev ingress), bandwidth as tc token buckets on the bridge ports. Needs
//! CAP_NET_ADMIN.
//!
//! Nothing here can outlive the harness. Every namespace is held by a `sleep` process (no bind
//! mount under `/run/netns`) that the kernel kills when the harness dies (`PR_SET_PDEATHSIG`);
//! when the holder goes, its namespace goes, and with it the veths, the bridge, the nftables
//! tables and the qdiscs inside. The one object in the harness's own namespace, the host end
//! of the veth, dies with its peer. Even so, each object is written to a journal before it is
//! created, and [`cleanup`] removes whatever a journal names that is still there: what a run
//! that could not tidy up left behind, and only that.
//!
//! `rules.rs` renders the nftables text (pure), `journal.rs` writes and reads the journal and
//! cleans up after it; this file makes the namespaces and wiring and applies faults.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::process::{enter_netns, NetnsChoice, NodeProcess, ProcessError, ProcessSpec};

/// Where runs register their journals, so `faultline cleanup` finds them without a run directory.
pub const REGISTRY: &str = "/run/faultline";

/// Prefix of the one interface a run creates in the harness's namespace.
pub const HOST_LINK_PREFIX: &str = "flh-";

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error(
        "network mode netns needs CAP_NET_ADMIN (run as root), and `ip`, `nft` and `tc` \
         (Debian: iproute2, nftables): {0}"
    )]
    Unsupported(String),
    #[error("cannot write the network journal {path}: {source}")]
    Journal {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the namespace holder for {role}: {source}")]
    Holder { role: String, source: ProcessError },
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("no free /24 in 10.200.0.0/13 for the run's bridge: every candidate overlaps a route")]
    NoSubnet,
    #[error("{ip} does not route into this run's namespaces ({detail}); nothing was sent")]
    Route { ip: Ipv4Addr, detail: String },
    #[error("unknown node {0}")]
    UnknownNode(String),
}

/// An end of a flow of packets: a node, or the harness (its clients, observer and checks).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    Node(String),
    Harness,
}

/// What packets from one end to another suffer. Several rules on one flow combine: a cut wins,
/// the highest loss, the narrowest bandwidth.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NetRule {
    pub cut: Option<NetCut>,
    /// Percent of packets dropped at random (nftables `numgen random`).
    pub loss_percent: f64,
    /// Bytes per second (tc tbf).
    pub bandwidth: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetCut {
    /// Packets dropped at the bridge: connections hang, as in a real partition.
    Drop,
    /// TCP answered with RST at the receiver: connections break at once.
    Reset,
}

/// A namespace and the process holding it.
struct Holder {
    role: String,
    process: NodeProcess,
    /// `/proc/PID/ns/net`, kept open to join the namespace and run commands in it.
    ns: std::sync::Arc<File>,
}

impl Holder {
    fn fd(&self) -> std::os::fd::RawFd {
        self.ns.as_raw_fd()
    }
}

mod journal;
mod rules;

pub use journal::{cleanup, parse_journal, registered, Cleaned, JournalEntries};
use journal::{is_host_link_name, Journal};
use rules::{base_ruleset, loss_update, port_name, sets_update, Sets};

/// A run's namespaces, bridge and addresses, and the faults set on them. Dropping it removes
/// everything.
pub struct Netns {
    run_id: String,
    host_link: String,
    harness_ip: Ipv4Addr,
    bridge: Holder,
    /// libnftables in the bridge's namespace; `None`: the library did not load and every
    /// change runs `nft`.
    nft: Option<crate::nft::Nft>,
    nodes: BTreeMap<String, (Ipv4Addr, Holder)>,
    journal: Mutex<Journal>,
    registry_file: PathBuf,
    active: Mutex<Active>,
}

#[derive(Default)]
struct Active {
    /// Fault id -> the flows it set and what they suffer.
    by_fault: BTreeMap<u64, Vec<(Host, Host, NetRule)>>,
    /// Bridge ports that have qdiscs now, to clear on change.
    shaped_ports: std::collections::BTreeSet<String>,
    /// The ruleset last written to each table ("bridge", or a node id), to skip rewrites.
    written: BTreeMap<String, String>,
}

/// Can this process manage network namespaces? `Err` says why not.
pub fn supported() -> Result<(), NetnsError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    if eff & (1 << CAP_NET_ADMIN) == 0 || eff & (1 << CAP_SYS_ADMIN) == 0 {
        return Err(NetnsError::Unsupported(
            "this process lacks CAP_NET_ADMIN or CAP_SYS_ADMIN".into(),
        ));
    }
    for tool in ["ip", "nft", "tc", "sleep"] {
        if find_program(tool).is_none() {
            return Err(NetnsError::Unsupported(format!(
                "`{tool}` is not installed"
            )));
        }
    }
    Ok(())
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/bin".into()])
        .map(|d: PathBuf| d.join(name))
        .find(|p| p.is_file())
}

/// Run a command in a namespace (`None`: the harness's), feeding it `stdin`.
fn run_in(
    ns: Option<&Holder>,
    program: &str,
    args: &[&str],
    stdin: &str,
) -> Result<String, NetnsError> {
    let command = format!(
        "{}{program} {}",
        ns.map(|h| format!("[{}] ", h.role)).unwrap_or_default(),
        args.join(" ")
    );
    let exe = find_program(program).ok_or_else(|| NetnsError::Command {
        command: command.clone(),
        detail: "not installed".into(),
    })?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(h) = ns {
        let fd = h.fd();
        // SAFETY: setns is async-signal-safe, and `h` keeps the descriptor open until the
        // child has been spawned (this function waits for it).
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || enter_netns(NetnsChoice::Join(fd)));
        }
    }
    let mut child = cmd.spawn().map_err(|e| NetnsError::Command {
        command: command.clone(),
        detail: e.to_string(),
    })?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| NetnsError::Command {
        command: command.clone(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetnsError::Command {
            command,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// The process start time (field 22 of `/proc/PID/stat`), to tell a holder from a later process
/// that got its pid.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(19)?.parse().ok()
}

fn spawn_holder(role: &str, dir: &Path) -> Result<Holder, NetnsError> {
    let spec = ProcessSpec {
        program: find_program("sleep").unwrap_or_else(|| "sleep".into()),
        args: vec!["infinity".into()],
        env: vec![],
        stdout: dir.join("netns-holders.log"),
        stderr: dir.join("netns-holders.log"),
        netns: NetnsChoice::New,
    };
    let process = NodeProcess::spawn(&spec).map_err(|source| NetnsError::Holder {
        role: role.into(),
        source,
    })?;
    let path = format!("/proc/{}/ns/net", process.pid());
    // The child unshares before exec; wait until its namespace differs from ours.
    let mine = std::fs::read_link("/proc/self/ns/net").ok();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let theirs = std::fs::read_link(&path).ok();
        if theirs.is_some() && theirs != mine {
            break;
        }
        if Instant::now() > deadline || !process.is_running() {
            return Err(NetnsError::Command {
                command: format!("unshare for {role}"),
                detail: "the holder did not get a namespace of its own".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let ns = File::open(&path).map_err(|e| NetnsError::Command {
        command: format!("open {path}"),
        detail: e.to_string(),
    })?;
    Ok(Holder {
        role: role.into(),
        process,
        ns: std::sync::Arc::new(ns),
    })
}

impl Netns {
    /// Build the run's network: a holder and namespace for the bridge and for each node, a veth
    /// from the harness to the bridge, one from the bridge to each node, addresses in a /24 of
    /// 10.200.0.0/13 that no route of this machine covers, and an empty nftables table at the
    /// bridge. Checks that every node address routes through the run's veth before returning.
    /// `dir` gets the journal (`netns.journal`).
    pub fn create(run_id: &str, nodes: &[String], dir: &Path) -> Result<Netns, NetnsError> {
        supported()?;
        let run_id: String = run_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(11)
            .collect();
        let host_link = format!("{HOST_LINK_PREFIX}{run_id}");
        let registry_file = Path::new(REGISTRY).join(format!("{run_id}.journal"));
        let mut journal = Journal::create(&[dir.join("netns.journal"), registry_file.clone()])?;
        let me = std::process::id();
        journal.write(&format!(
            "run {run_id} pid {me} start {}",
            start_time(me).unwrap_or(0)
        ))?;
        let subnet = pick_subnet(&run_id)?;
        let harness_ip = Ipv4Addr::new(subnet[0], subnet[1], subnet[2], 254);

        let holder = |role: &str, journal: &mut Journal| -> Result<Holder, NetnsError> {
            journal.write(&format!("holder-spawning {role}"))?;
            let h = spawn_holder(role, dir)?;
            let pid = h.process.pid();
            journal.write(&format!(
                "holder {role} {pid} {}",
                start_time(pid).unwrap_or(0)
            ))?;
            Ok(h)
        };
        let bridge = holder("bridge", &mut journal)?;
        let mut node_ns = BTreeMap::new();
        for (i, id) in nodes.iter().enumerate() {
            let ip = Ipv4Addr::new(subnet[0], subnet[1], subnet[2], (i + 1) as u8);
            node_ns.insert(
                id.clone(),
                (ip, holder(&format!("node {id}"), &mut journal)?),
            );
        }
        let nft = match crate::nft::Nft::open(Some(bridge.ns.clone())) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!("{e}: every rule change runs `nft` instead (tens of ms each)");
                None
            }
        };
        let net = Netns {
            run_id,
            host_link: host_link.clone(),
            harness_ip,
            bridge,
            nft,
            nodes: node_ns,
            journal: Mutex::new(journal),
            registry_file,
            active: Mutex::new(Active::default()),
        };
        // From here on, dropping `net` takes everything down.
        net.wire(subnet, nodes)?;
        net.check_routes()?;
        Ok(net)
    }

    fn journal(&self, line: &str) -> Result<(), NetnsError> {
        self.journal.lock().expect("netns journal").write(line)
    }

    fn wire(&self, subnet: [u8; 3], order: &[String]) -> Result<(), NetnsError> {
        let b = Some(&self.bridge);
        let bpid = self.bridge.process.pid().to_string();
        self.journal(&format!("link {}", self.host_link))?;
        run_in(
            None,
            "ip",
            &[
                "link",
                "add",
                &self.host_link,
                "type",
                "veth",
                "peer",
                "name",
                "harness",
                "netns",
                &bpid,
            ],
            "",
        )?;
        let mut batch = String::from("link add br0 type bridge\nlink set lo up\n");
        batch.push_str("link set harness master br0\nlink set harness up\n");
        for (i, id) in order.iter().enumerate() {
            let (_, h) = &self.nodes[id];
            let port = port_name(i);
            batch.push_str(&format!(
                "link add {port} type veth peer name eth0 netns {}\nlink set {port} master br0\nlink set {port} up\n",
                h.process.pid()
            ));
        }
        batch.push_str("link set br0 up\n");
        run_in(b, "ip", &["-batch", "-"], &batch)?;
        for (ip, h) in self.nodes.values() {
            let batch = format!("link set lo up\naddr add {ip}/24 dev eth0\nlink set eth0 up\n");
            run_in(Some(h), "ip", &["-batch", "-"], &batch)?;
        }
        let net = format!("{}.{}.{}", subnet[0], subnet[1], subnet[2]);
        run_in(
            None,
            "ip",
            &["-batch", "-"],
            &format!(
                "addr add {net}.254/24 dev {}\nlink set {} up\n",
                self.host_link, self.host_link
            ),
        )?;
        self.journal("table bridge bridge faultline")?;
        self.journal("table bridge netdev faultline")?;
        self.nft(&base_ruleset(&self.ports()))?;
        // Warm the set path up (the netlink socket, and the kernel's first insertion into each
        // set, which costs about 1.5 ms once): add a flow no packet has, then empty the sets.
        if let Some(n) = &self.nft {
            let none = Ipv4Addr::UNSPECIFIED;
            let dummy = Sets {
                cut: vec![(none, none)],
                reset: vec![(none, none)],
                cut_other: vec![(none, none)],
                loss: Vec::new(),
            };
            for sets in [dummy, Sets::default()] {
                n.replace_sets(sets.contents())
                    .map_err(|e| NetnsError::Command {
                        command: "[bridge] set elements over netlink".into(),
                        detail: e.to_string(),
                    })?;
            }
        }
        Ok(())
    }

    /// Run nftables text in the bridge's namespace: through libnftables in this process, or
    /// `nft -f -` when the library is missing.
    fn nft(&self, text: &str) -> Result<String, NetnsError> {
        match &self.nft {
            Some(n) => n.run(text).map_err(|e| NetnsError::Command {
                command: "[bridge] nft (libnftables)".into(),
                detail: e.to_string(),
            }),
            None => run_in(Some(&self.bridge), "nft", &["-f", "-"], text),
        }
    }

    /// Every node address must route out through this run's veth (and nowhere else) before the
    /// harness sends it anything.
    pub fn check_routes(&self) -> Result<(), NetnsError> {
        for (ip, _) in self.nodes.values() {
            let out = run_in(None, "ip", &["-o", "route", "get", &ip.to_string()], "")?;
            let dev = out
                .split_whitespace()
                .skip_while(|w| *w != "dev")
                .nth(1)
                .unwrap_or("");
            if dev != self.host_link {
                return Err(NetnsError::Route {
                    ip: *ip,
                    detail: format!("the kernel routes it via `{}`", out.trim()),
                });
            }
        }
        Ok(())
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn harness_ip(&self) -> Ipv4Addr {
        self.harness_ip
    }

    pub fn node_ip(&self, id: &str) -> Option<Ipv4Addr> {
        self.nodes.get(id).map(|(ip, _)| *ip)
    }

    /// What a node process is spawned with to live in the node's namespace. The descriptor
    /// stays open as long as `self`.
    pub fn node_netns(&self, id: &str) -> Option<NetnsChoice> {
        self.nodes.get(id).map(|(_, h)| NetnsChoice::Join(h.fd()))
    }

    /// `id`'s namespace, for sockets made there (the link proxies of `id`'s outgoing links).
    pub fn namespace(&self, id: &str) -> Option<crate::proxy::Namespace> {
        self.nodes
            .get(id)
            .map(|(_, h)| crate::proxy::Namespace(h.ns.clone()))
    }

    /// Run `f` on a thread that lives in `id`'s namespace (tests use it to open sockets there).
    pub fn in_node<T: Send + 'static>(
        &self,
        id: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<std::thread::JoinHandle<T>, NetnsError> {
        let (_, h) = self
            .nodes
            .get(id)
            .ok_or_else(|| NetnsError::UnknownNode(id.into()))?;
        let ns = h.ns.try_clone().map_err(|e| NetnsError::Command {
            command: format!("dup namespace of {id}"),
            detail: e.to_string(),
        })?;
        Ok(std::thread::spawn(move || {
            enter_netns(NetnsChoice::Join(ns.as_raw_fd())).expect("setns into the node namespace");
            drop(ns);
            f()
        }))
    }

    fn ip_of(&self, h: &Host) -> Result<Ipv4Addr, NetnsError> {
        match h {
            Host::Harness => Ok(self.harness_ip),
            Host::Node(n) => self
                .node_ip(n)
                .ok_or_else(|| NetnsError::UnknownNode(n.clone())),
        }
    }

    /// Set fault `id` on every flow (packets from `.0` to `.1`).
    pub fn apply(&self, id: u64, flows: &[(Host, Host)], rule: NetRule) -> Result<(), NetnsError> {
        for (a, b) in flows {
            self.ip_of(a)?;
            self.ip_of(b)?;
        }
        let mut active = self.active.lock().expect("netns faults");
        active.by_fault.insert(
            id,
            flows
                .iter()
                .filter(|(a, b)| a != b)
                .map(|(a, b)| (a.clone(), b.clone(), rule))
                .collect(),
        );
        self.render(&mut active)
    }

    /// Undo fault `id`; flows other faults share keep theirs.
    pub fn heal(&self, id: u64) -> Result<(), NetnsError> {
        let mut active = self.active.lock().expect("netns faults");
        if active.by_fault.remove(&id).is_some() {
            self.render(&mut active)?;
        }
        Ok(())
    }

    /// Undo every fault.
    pub fn heal_all(&self) -> Result<(), NetnsError> {
        let mut active = self.active.lock().expect("netns faults");
        active.by_fault.clear();
        self.render(&mut active)
    }

    /// Write the whole rule set again from the active faults: in the bridge's namespace, one
    /// nft transaction refills the bridge chain (drops and loss) and the ports' ingress chains
    /// (resets), and one tc batch the bridge ports' qdiscs (bandwidth).
    fn render(&self, active: &mut Active) -> Result<(), NetnsError> {
        // Merge per flow.
        let mut flows: BTreeMap<(Host, Host), NetRule> = BTreeMap::new();
        for (a, b, r) in active.by_fault.values().flatten() {
            let m = flows.entry((a.clone(), b.clone())).or_default();
            m.cut = match (m.cut, r.cut) {
                (Some(NetCut::Reset), _) | (_, Some(NetCut::Reset)) => Some(NetCut::Reset),
                (x, y) => x.or(y),
            };
            m.loss_percent = m.loss_percent.max(r.loss_percent);
            m.bandwidth = match (m.bandwidth, r.bandwidth) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
        }
        // Bridge: drops (set `cut`), non-TCP drops of reset flows (`cut_other`) and loss
        // (rules); resets at the sender's port (set `rst`).
        let mut sets = Sets::default();
        let mut shaping: BTreeMap<String, Vec<(Ipv4Addr, u64)>> = BTreeMap::new();
        for ((a, b), r) in &flows {
            let (sa, sb) = (self.ip_of(a)?, self.ip_of(b)?);
            match r.cut {
                Some(NetCut::Drop) => sets.cut.push((sa, sb)),
                Some(NetCut::Reset) => {
                    sets.reset.push((sa, sb));
                    sets.cut_other.push((sa, sb));
                }
                None => {}
            }
            if r.loss_percent > 0.0 && r.cut.is_none() {
                let per_10k = (r.loss_percent * 100.0).round().clamp(1.0, 10_000.0) as u32;
                sets.loss.push(format!(
                    "ip saddr {sa} ip daddr {sb} numgen random mod 10000 < {per_10k} drop"
                ));
            }
            if let Some(bw) = r.bandwidth {
                shaping.entry(self.port_of(b)).or_default().push((sa, bw));
            }
        }
        // Write only what changes: set contents in one netlink transaction (a fraction of a
        // millisecond), the loss chain through libnftables; bandwidth needs `tc`, a process
        // (tens of ms on a busy machine), run beside them.
        let mut wrote = Vec::new();
        let mut changed = |key: &str, text: String| {
            (active.written.get(key) != Some(&text)).then(|| {
                wrote.push((key.to_string(), text.clone()));
                text
            })
        };
        let sets_job = changed("sets", sets_update(&sets));
        let loss_job = changed("loss", loss_update(&sets.loss));
        // Bandwidth: one htb per shaped port, a class and a tbf per source.
        let had = std::mem::take(&mut active.shaped_ports);
        let mut batch = String::new();
        for port in &had {
            if !shaping.contains_key(port) {
                batch.push_str(&format!("qdisc del dev {port} root\n"));
            }
        }
        for (port, sources) in &shaping {
            if !had.contains(port) {
                self.journal(&format!("qdisc bridge {port}"))?;
            } else {
                batch.push_str(&format!("qdisc del dev {port} root\n"));
            }
            batch.push_str(&format!(
                "qdisc add dev {port} root handle 1: htb default 1\n\
                 class add dev {port} parent 1: classid 1:1 htb rate 100gbit\n"
            ));
            for (k, (src, bw)) in sources.iter().enumerate() {
                let class = 10 + k;
                // Burst: 10 ms worth, at least one full-size packet burst.
                let burst = (bw / 100).max(16 * 1024);
                batch.push_str(&format!(
                    "class add dev {port} parent 1: classid 1:{class} htb rate 100gbit\n\
                     qdisc add dev {port} parent 1:{class} handle {class}: tbf rate {bw}bps burst {burst} latency 200ms\n\
                     filter add dev {port} parent 1: protocol ip prio 1 u32 match ip src {src}/32 flowid 1:{class}\n"
                ));
            }
            active.shaped_ports.insert(port.clone());
        }
        let (tc, nft) = std::thread::scope(|scope| {
            let tc = (!batch.is_empty()).then(|| {
                scope.spawn(|| run_in(Some(&self.bridge), "tc", &["-batch", "-"], &batch))
            });
            let mut nft = Ok(());
            if let Some(text) = sets_job {
                nft = match &self.nft {
                    Some(n) => n
                        .replace_sets(sets.contents())
                        .map_err(|e| NetnsError::Command {
                            command: "[bridge] set elements over netlink".into(),
                            detail: e.to_string(),
                        }),
                    None => self.nft(&text).map(drop),
                };
            }
            if let (Ok(()), Some(text)) = (&nft, loss_job) {
                nft = self.nft(&text).map(drop);
            }
            let nft = Some(nft);
            let tc = tc.map(|j| {
                j.join().unwrap_or_else(|_| {
                    Err(NetnsError::Command {
                        command: "tc".into(),
                        detail: "the command thread panicked".into(),
                    })
                })
            });
            (tc, nft)
        });
        for r in [tc.map(|r| r.map(drop)), nft].into_iter().flatten() {
            if let Err(e) = r {
                // Unknown state: write everything again next time.
                active.written.clear();
                return Err(e);
            }
        }
        active.written.extend(wrote);
        Ok(())
    }

    /// Every bridge port: the harness's, then the nodes'.
    fn ports(&self) -> Vec<String> {
        std::iter::once("harness".to_string())
            .chain((0..self.nodes.len()).map(port_name))
            .collect()
    }

    /// The bridge port a host's packets enter by (and leave to it by).
    fn port_of(&self, h: &Host) -> String {
        match h {
            Host::Harness => "harness".to_string(),
            Host::Node(n) => port_name(self.index(n)),
        }
    }

    fn index(&self, node: &str) -> usize {
        // Ports were made in the order nodes were given, which is the map's order for n1..n9
        // and for any list the caller sorted; look it up by address to be exact.
        let ip = self.nodes[node].0;
        ip.octets()[3] as usize - 1
    }

    /// The bridge's nftables tables now, with their sets' elements (for tests and the run
    /// files).
    pub fn bridge_rules(&self) -> Result<String, NetnsError> {
        // One listing per call: libnftables 1.0.6 fails a second `list` in the same buffer.
        Ok(self.nft("list table bridge faultline")? + &self.nft("list table netdev faultline")?)
    }

    /// Take everything down: kill the holders (their namespaces, and all inside, go with
    /// them), delete the host veth if the kernel has not yet, close the journal.
    pub fn close(&self) {
        for (_, h) in self.nodes.values() {
            let _ = h.process.kill();
        }
        let _ = self.bridge.process.kill();
        remove_link(&self.host_link);
        let _ = self.journal("closed");
        let _ = std::fs::remove_file(&self.registry_file);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.close();
    }
}

/// Delete a host-side link this crate names, if it is there (deleting one end of a veth
/// deletes both). True when it was there and is now gone.
fn remove_link(name: &str) -> bool {
    if !is_host_link_name(name) {
        return false;
    }
    let path = Path::new("/sys/class/net").join(name);
    if !path.exists() {
        return false;
    }
    // The kernel may be removing it already (its namespace's last holder just died).
    let _ = run_in(None, "ip", &["link", "del", name], "");
    !path.exists()
}

/// A /24 in 10.200.0.0/13 that overlaps no route of this machine, picked from the run id so
/// runs side by side get different ones.
fn pick_subnet(run_id: &str) -> Result<[u8; 3], NetnsError> {
    let routes = run_in(
        None,
        "ip",
        &["-o", "-4", "route", "show", "table", "all"],
        "",
    )?;
    let taken: Vec<(u32, u32)> = routes
        .lines()
        .filter_map(|l| {
            // `local 10.1.2.3 dev ...`, `broadcast ...`: the route type comes first.
            let mut w = l.split_whitespace();
            let first = w.next()?;
            if first.starts_with(|c: char| c.is_ascii_digit()) {
                Some(first)
            } else {
                w.next()
            }
        })
        .filter_map(|dst| {
            let (addr, len) = dst.split_once('/').unwrap_or((dst, "32"));
            let a: Ipv4Addr = addr.parse().ok()?;
            let len: u32 = len.parse().ok()?;
            if len == 0 {
                return None;
            }
            Some((u32::from(a), len))
        })
        .collect();
    let mut h: u32 = 2_166_136_261;
    for b in run_id.bytes() {
        h = (h ^ b as u32).wrapping_mul(16_777_619);
    }
    for i in 0..2048u32 {
        let k = (h.wrapping_add(i.wrapping_mul(7919))) % 2048;
        let cand = [10u8, 200 + (k / 256) as u8, (k % 256) as u8];
        let net = u32::from(Ipv4Addr::new(cand[0], cand[1], cand[2], 0));
        let overlaps = taken.iter().any(|&(a, len)| {
            let common = len.min(24);
            let mask = if common == 0 {
                0
            } else {
                u32::MAX << (32 - common)
            };
            a & mask == net & mask
        });
        if !overlaps {
            return Ok(cand);
        }
    }
    Err(NetnsError::NoSubnet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_reads_past_a_command_name_with_spaces() {
        let me = std::process::id();
        assert!(start_time(me).is_some());
        assert_eq!(start_time(u32::MAX - 1), None);
    }
}
