//! Link proxy: one TCP relay per directed link, whose faults (partition, delay, bandwidth, ...)
//! change at run time and act on live connections, not only on new ones.
//!
//! Each accepted connection gets two pumps, one per direction, each a single task that reads
//! from one socket and writes to the other with a reused buffer. With no fault a pump is a
//! plain read/write loop; with a delay, jitter, bandwidth or slicer it keeps a small local
//! queue of (due time, bytes) in the same task, so order is kept and nothing goes through a
//! per-chunk channel. Fault changes arrive through a `watch` channel. A pump with no fault
//! waits in a bare `read` (no select, nothing registered per chunk: the hot path costs what a
//! plain relay costs) and looks at the fault after each read; a pump with a fault selects on
//! the channel. What must interrupt an idle pump (a reset cut, `reset_after`, shutdown, the
//! other direction tearing down) is watched by one task per connection, which shuts the read
//! side of both sockets so the pumps wake and tear down at once.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const BUF: usize = 64 * 1024;
/// Bytes a degraded pump holds in its queue before it stops reading (backpressure).
const MAX_QUEUED: usize = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Which way bytes flow through a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the dialing side to the upstream.
    Forward,
    /// From the upstream back to the dialer.
    Backward,
}

/// How a cut link behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Hold bytes: stop reading and forwarding. Nothing is lost and nothing arrives until the
    /// link heals (TCP backpressure does the rest).
    Blackhole,
    /// Close every connection with a TCP RST on both sides, and reset new ones at once.
    Reset,
}

/// Toxiproxy's slicer: chunks split into pieces of about `avg_size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub avg_size: usize,
    pub size_variation: usize,
    pub delay: Duration,
}

/// What one direction of a link suffers. The default passes bytes through untouched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkFault {
    pub cut: Option<Cut>,
    /// Added to every chunk; order is kept.
    pub delay: Duration,
    /// Uniform extra delay in `[0, jitter]`; a chunk never overtakes the one before it.
    pub jitter: Duration,
    /// Bytes per second.
    pub bandwidth: Option<u64>,
    pub slice: Option<Slice>,
    /// Close the connection (FIN, both sides) once this many bytes have passed this way since
    /// the fault was set.
    pub limit_data: Option<u64>,
    /// Reset connections this long after the fault was set (or after accept, if later).
    pub reset_after: Option<Duration>,
    /// When the source closes, wait this long before closing the destination.
    pub slow_close: Option<Duration>,
}

impl LinkFault {
    pub fn is_clear(&self) -> bool {
        *self == LinkFault::default()
    }

    pub fn blackhole() -> Self {
        LinkFault {
            cut: Some(Cut::Blackhole),
            ..LinkFault::default()
        }
    }

    pub fn reset() -> Self {
        LinkFault {
            cut: Some(Cut::Reset),
            ..LinkFault::default()
        }
    }

    /// Whether the pump needs its queue (anything that shapes bytes in time).
    fn shapes(&self) -> bool {
        !self.delay.is_zero()
            || !self.jitter.is_zero()
            || self.bandwidth.is_some()
            || self.slice.is_some()
    }
}

/// Counters of one proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub accepted: u64,
    pub active: u64,
    pub bytes_forward: u64,
    pub bytes_backward: u64,
    pub resets: u64,
}

#[derive(Debug, Clone)]
struct DirState {
    fault: LinkFault,
    set_at: Instant,
    /// Bumped on every change, so limit_data counts from the latest setting.
    generation: u64,
}

#[derive(Debug, Clone)]
struct State {
    forward: DirState,
    backward: DirState,
}

impl State {
    fn dir(&self, d: Direction) -> &DirState {
        match d {
            Direction::Forward => &self.forward,
            Direction::Backward => &self.backward,
        }
    }

    fn resets(&self) -> bool {
        self.forward.fault.cut == Some(Cut::Reset) || self.backward.fault.cut == Some(Cut::Reset)
    }
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    active: AtomicU64,
    forward: AtomicU64,
    backward: AtomicU64,
    resets: AtomicU64,
}

struct Shared {
    name: String,
    local: SocketAddr,
    upstream: SocketAddr,
    /// The network namespace the proxy's sockets live in (`None`: the harness's own).
    ns: Option<Namespace>,
    state: watch::Sender<State>,
    stop: watch::Sender<bool>,
    counters: Counters,
}

/// One directed link: a listener that relays every connection to `upstream`.
pub struct LinkProxy {
    shared: Arc<Shared>,
}

impl LinkProxy {
    /// Bind `listen` (port 0 allowed) and relay every accepted connection to `upstream`.
    /// Spawns its accept loop on the current tokio runtime.
    pub async fn bind(
        name: impl Into<String>,
        listen: SocketAddr,
        upstream: SocketAddr,
    ) -> std::io::Result<LinkProxy> {
        Self::bind_in(name, listen, upstream, None).await
    }

    /// As [`LinkProxy::bind`], with the listener and every upstream socket created in the
    /// network namespace `ns`: the proxy then sits inside a node's namespace, so its traffic to
    /// `upstream` leaves from the node's own address, as the node's would.
    pub async fn bind_in(
        name: impl Into<String>,
        listen: SocketAddr,
        upstream: SocketAddr,
        ns: Option<Namespace>,
    ) -> std::io::Result<LinkProxy> {
        let listener = match &ns {
            None => TcpListener::bind(listen).await?,
            Some(ns) => {
                let l = ns.run(move || {
                    let l = std::net::TcpListener::bind(listen)?;
                    l.set_nonblocking(true)?;
                    Ok(l)
                })?;
                TcpListener::from_std(l)?
            }
        };
        let now = Instant::now();
        let clear = DirState {
            fault: LinkFault::default(),
            set_at: now,
            generation: 0,
        };
        let (state, _) = watch::channel(State {
            forward: clear.clone(),
            backward: clear,
        });
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            name: name.into(),
            local: listener.local_addr()?,
            upstream,
            ns,
            state,
            stop,
            counters: Counters::default(),
        });
        tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(LinkProxy { shared })
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Replace the fault on one direction; takes effect at once on existing connections too.
    pub fn set(&self, dir: Direction, fault: LinkFault) {
        self.shared.state.send_modify(|s| {
            let d = match dir {
                Direction::Forward => &mut s.forward,
                Direction::Backward => &mut s.backward,
            };
            if d.fault != fault {
                d.fault = fault;
                d.set_at = Instant::now();
                d.generation += 1;
            }
        });
    }

    pub fn get(&self, dir: Direction) -> LinkFault {
        self.shared.state.borrow().dir(dir).fault.clone()
    }

    /// Both directions back to pass-through; held bytes then flow again.
    pub fn heal(&self) {
        self.set(Direction::Forward, LinkFault::default());
        self.set(Direction::Backward, LinkFault::default());
    }

    pub fn stats(&self) -> LinkStats {
        let c = &self.shared.counters;
        LinkStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            active: c.active.load(Ordering::Relaxed),
            bytes_forward: c.forward.load(Ordering::Relaxed),
            bytes_backward: c.backward.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
        }
    }

    /// Stop accepting and close every connection. Dropping the proxy does the same.
    pub fn shutdown(&self) {
        self.shared.stop.send_replace(true);
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A network namespace, by an open `/proc/PID/ns/net`, in which sockets can be made.
#[derive(Debug, Clone)]
pub struct Namespace(pub Arc<std::fs::File>);

impl Namespace {
    /// Run `f` on a short-lived thread that has joined the namespace (a thread's namespace
    /// is its own; the caller's is untouched). Sockets `f` creates stay in the namespace.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let file = self.0.clone();
        std::thread::Builder::new()
            .name("netns-socket".into())
            .spawn(move || {
                use std::os::fd::AsRawFd;
                crate::process::enter_netns(crate::process::NetnsChoice::Join(file.as_raw_fd()))?;
                f()
            })?
            .join()
            .map_err(|_| std::io::Error::other("the namespace thread panicked"))?
    }
}

/// Connect to the upstream, from the proxy's namespace.
async fn dial(shared: &Shared) -> std::io::Result<TcpStream> {
    let Some(ns) = &shared.ns else {
        return TcpStream::connect(shared.upstream).await;
    };
    let domain = socket2::Domain::for_address(shared.upstream);
    let ns = ns.clone();
    let sock = tokio::task::spawn_blocking(move || {
        ns.run(move || {
            let s = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
            s.set_nonblocking(true)?;
            Ok(std::net::TcpStream::from(s))
        })
    })
    .await
    .map_err(std::io::Error::other)??;
    tokio::net::TcpSocket::from_std_stream(sock)
        .connect(shared.upstream)
        .await
}

/// Set SO_LINGER to zero, so closing the socket sends an RST instead of a FIN.
fn arm_rst(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            a = listener.accept() => a,
        };
        let Ok((client, _)) = accepted else {
            // Out of file descriptors and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let seq = shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        if shared.state.borrow().resets() {
            shared.counters.resets.fetch_add(1, Ordering::Relaxed);
            arm_rst(&client);
            continue;
        }
        tokio::spawn(connection(client, seq, shared.clone()));
    }
}

/// One accepted connection: dial the upstream, then run one pump per direction.
async fn connection(client: TcpStream, seq: u64, shared: Arc<Shared>) {
    let accepted_at = Instant::now();
    let mut stop = shared.stop.subscribe();
    let dial = tokio::time::timeout(CONNECT_TIMEOUT, dial(&shared));
    let up = tokio::select! {
        biased;
        _ = stop.wait_for(|s| *s) => return,
        r = dial => r,
    };
    let Ok(Ok(up)) = up else {
        // As the dialer would see a refused connection: reset.
        arm_rst(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    shared.counters.active.fetch_add(1, Ordering::Relaxed);
    let (cr, cw) = client.into_split();
    let (ur, uw) = up.into_split();
    let teardown = Arc::new(watch::channel(None).0);
    let fds = [cr.as_ref().as_raw_fd(), ur.as_ref().as_raw_fd()];
    let watcher = tokio::spawn(watch_connection(
        shared.clone(),
        teardown.subscribe(),
        fds,
        accepted_at,
    ));
    let fwd = tokio::spawn(
        Pump::new(Direction::Forward, seq, accepted_at, &shared, &teardown).run(cr, uw),
    );
    let bwd = Pump::new(Direction::Backward, seq, accepted_at, &shared, &teardown).run(ur, cw);
    // The pumps hand their read halves back, so both sockets (and the descriptors the
    // watcher acts on) stay open until the watcher is gone.
    let bwd_rd = bwd.await;
    let fwd_rd = fwd.await;
    watcher.abort();
    let _ = watcher.await;
    drop((bwd_rd, fwd_rd));
    shared.counters.active.fetch_sub(1, Ordering::Relaxed);
}

/// Wakes a connection's idle pumps when it must go: a reset cut, a `reset_after` deadline,
/// shutdown, or one pump tearing down. It shuts the read side of both sockets (the pumps'
/// reads return at once) and ends; the pumps see why and tear down as before. `fds` stay open
/// while this task runs: `connection` keeps the sockets until it has ended.
async fn watch_connection(
    shared: Arc<Shared>,
    mut peer: watch::Receiver<Option<Teardown>>,
    fds: [std::os::fd::RawFd; 2],
    accepted_at: Instant,
) {
    let mut state = shared.state.subscribe();
    let mut stop = shared.stop.subscribe();
    loop {
        let deadline = {
            let st = state.borrow_and_update();
            if st.resets() || *stop.borrow_and_update() || peer.borrow_and_update().is_some() {
                break;
            }
            [Direction::Forward, Direction::Backward]
                .iter()
                .filter_map(|d| reset_deadline(st.dir(*d), accepted_at))
                .min()
        };
        tokio::select! {
            biased;
            _ = state.changed() => {}
            _ = stop.changed() => {}
            _ = peer.changed() => {}
            _ = sleep_opt(deadline) => break,
        }
    }
    for fd in fds {
        // SAFETY: `connection` keeps the sockets open until this task has ended.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let _ = socket2::SockRef::from(&fd).shutdown(std::net::Shutdown::Read);
    }
}

/// Why a connection is torn down (both directions at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Teardown {
    /// Normal close (FIN): limit_data, shutdown, an I/O error.
    Close,
    /// RST to both peers: `Cut::Reset` or `reset_after`.
    Reset,
}

/// How a pump ended.
enum Ended {
    /// The source closed: the destination was half-closed, the other way goes on.
    Eof,
    /// The whole connection goes; the other pump follows.
    Torn(Teardown),
}

/// One direction of one connection: reads from one socket and writes to the other, in a
/// single task, with one reused buffer.
/// When a `reset_after` fault tears a connection down: that long after the fault was set, or
/// after the connection was accepted, whichever is later.
fn reset_deadline(d: &DirState, accepted_at: Instant) -> Option<Instant> {
    d.fault
        .reset_after
        .map(|after| (d.set_at + after).max(accepted_at + after))
}

struct Pump {
    dir: Direction,
    accepted_at: Instant,
    shared: Arc<Shared>,
    state: watch::Receiver<State>,
    stop: watch::Receiver<bool>,
    /// Shared by the two pumps of a connection; the first to tear down records why.
    teardown: Arc<watch::Sender<Option<Teardown>>>,
    peer: watch::Receiver<Option<Teardown>>,
    rng: StdRng,
}

impl Pump {
    fn new(
        dir: Direction,
        seq: u64,
        accepted_at: Instant,
        shared: &Arc<Shared>,
        teardown: &Arc<watch::Sender<Option<Teardown>>>,
    ) -> Pump {
        Pump {
            dir,
            accepted_at,
            shared: shared.clone(),
            state: shared.state.subscribe(),
            stop: shared.stop.subscribe(),
            teardown: teardown.clone(),
            peer: teardown.subscribe(),
            rng: StdRng::seed_from_u64(seq.wrapping_mul(2).wrapping_add(dir as u64)),
        }
    }

    /// Pump until the direction ends; hands the read half back (see `connection`).
    async fn run(mut self, mut rd: OwnedReadHalf, wr: OwnedWriteHalf) -> OwnedReadHalf {
        let mut wr = Some(wr);
        let ended = self.pump(&mut rd, wr.as_mut().expect("write half")).await;
        let Ended::Torn(mut why) = ended else {
            return rd;
        };
        if *self.peer.borrow() == Some(Teardown::Reset) {
            why = Teardown::Reset;
        }
        let first = self.teardown.send_if_modified(|t| {
            let first = t.is_none();
            if first {
                *t = Some(why);
            }
            first
        });
        if why == Teardown::Reset {
            if first {
                self.shared.counters.resets.fetch_add(1, Ordering::Relaxed);
            }
            let wr = wr.take().expect("write half");
            let _ = socket2::SockRef::from(wr.as_ref()).set_linger(Some(Duration::ZERO));
            // No FIN on drop: the socket closes (with RST) once both halves are gone.
            wr.forget();
        }
        rd
    }

    /// Something to stop for regardless of the fault: shutdown, or the other pump gave up.
    fn doomed(&self) -> Option<Teardown> {
        if *self.stop.borrow() {
            return Some(Teardown::Close);
        }
        *self.peer.borrow()
    }

    /// When `reset_after` (if set) fires for this connection.
    fn reset_at(&self, d: &DirState) -> Option<Instant> {
        reset_deadline(d, self.accepted_at)
    }

    /// Resolves when the fault changes, the proxy shuts down or the other pump tears down.
    /// The senders all outlive the pump, so none of these errors out.
    async fn event(
        state: &mut watch::Receiver<State>,
        stop: &mut watch::Receiver<bool>,
        peer: &mut watch::Receiver<Option<Teardown>>,
    ) {
        tokio::select! {
            biased;
            _ = state.changed() => {}
            _ = stop.changed() => {}
            _ = peer.changed() => {}
        }
    }

    /// Write all of `bytes`, unless the connection is torn down meanwhile. A blackhole set
    /// mid-write holds the rest of the chunk until it heals.
    async fn send(&mut self, wr: &mut OwnedWriteHalf, mut bytes: &[u8]) -> Result<(), Teardown> {
        while !bytes.is_empty() {
            if let Some(t) = self.doomed() {
                return Err(t);
            }
            let (held, reset_at) = {
                let s = self.state.borrow();
                if s.resets() {
                    return Err(Teardown::Reset);
                }
                let d = s.dir(self.dir);
                (d.fault.cut == Some(Cut::Blackhole), self.reset_at(d))
            };
            if reset_at.is_some_and(|t| t <= Instant::now()) {
                return Err(Teardown::Reset);
            }
            if !held && !self.state.has_changed().unwrap_or(false) {
                // Fast path: the socket usually has room, no need to build a select.
                match wr.try_write(bytes) {
                    Ok(0) => return Err(Teardown::Close),
                    Ok(n) => {
                        bytes = &bytes[n..];
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return Err(Teardown::Close),
                }
            }
            tokio::select! {
                biased;
                _ = Self::event(&mut self.state, &mut self.stop, &mut self.peer) => {}
                _ = sleep_opt(reset_at) => return Err(Teardown::Reset),
                r = wr.writable(), if !held => {
                    if r.is_err() {
                        return Err(Teardown::Close);
                    }
                }
            }
        }
        Ok(())
    }

    /// Queue a chunk read under `fault`: due after its delay and jitter (never before the
    /// chunk before it, so order is kept), split by the slicer.
    fn enqueue(
        &mut self,
        fault: &LinkFault,
        queue: &mut VecDeque<(Instant, Vec<u8>)>,
        chunk: Vec<u8>,
        last_due: &mut Instant,
        queued: &mut usize,
    ) {
        let n = chunk.len();
        let extra = if fault.jitter.is_zero() {
            Duration::ZERO
        } else {
            fault.jitter.mul_f64(self.rng.gen::<f64>())
        };
        let mut due = (Instant::now() + fault.delay + extra).max(*last_due);
        match fault.slice {
            Some(s) => {
                let var = s.size_variation.min(s.avg_size.saturating_sub(1));
                let mut off = 0;
                while off < n {
                    let size = if var == 0 {
                        s.avg_size
                    } else {
                        self.rng.gen_range(s.avg_size - var..=s.avg_size + var)
                    }
                    .clamp(1, n - off);
                    if off > 0 {
                        due += s.delay;
                    }
                    queue.push_back((due, chunk[off..off + size].to_vec()));
                    off += size;
                }
            }
            None => queue.push_back((due, chunk)),
        }
        *last_due = due;
        *queued += n;
    }

    async fn pump(&mut self, rd: &mut OwnedReadHalf, wr: &mut OwnedWriteHalf) -> Ended {
        // A handle of our own on the shared counters, so the loop can borrow `self` mutably.
        let shared = self.shared.clone();
        let accepted_at = self.accepted_at;
        let counter: &AtomicU64 = match self.dir {
            Direction::Forward => &shared.counters.forward,
            Direction::Backward => &shared.counters.backward,
        };
        let mut buf = vec![0u8; BUF];
        let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
        let mut queued = 0usize;
        let mut last_due = Instant::now();
        let mut next_send = Instant::now();
        let mut eof = false;
        // (generation, bytes passed since it was set) for limit_data.
        let mut limit_count = (u64::MAX, 0u64);
        // A chunk the fast path read just as the fault changed.
        let mut carried: Option<Vec<u8>> = None;

        loop {
            if let Some(t) = self.doomed() {
                return Ended::Torn(t);
            }
            let (fault, generation, reset_at) = {
                let s = self.state.borrow_and_update();
                if s.resets() {
                    return Ended::Torn(Teardown::Reset);
                }
                let d = s.dir(self.dir);
                (
                    d.fault.clone(),
                    d.generation,
                    reset_deadline(d, accepted_at),
                )
            };
            if limit_count.0 != generation {
                limit_count = (generation, 0);
            }
            if fault.cut == Some(Cut::Blackhole) {
                // Hold everything: read nothing, write nothing, until the fault changes.
                tokio::select! {
                    biased;
                    _ = Self::event(&mut self.state, &mut self.stop, &mut self.peer) => continue,
                    _ = sleep_opt(reset_at) => return Ended::Torn(Teardown::Reset),
                }
            }
            if eof && queue.is_empty() {
                if let Some(d) = fault.slow_close {
                    let until = Instant::now() + d;
                    while Instant::now() < until {
                        tokio::select! {
                            biased;
                            _ = Self::event(&mut self.state, &mut self.stop, &mut self.peer) => {
                                if let Some(t) = self.doomed() {
                                    return Ended::Torn(t);
                                }
                                if self.state.borrow().resets() {
                                    return Ended::Torn(Teardown::Reset);
                                }
                            }
                            _ = tokio::time::sleep_until(until.into()) => {}
                        }
                    }
                }
                let _ = wr.shutdown().await;
                return Ended::Eof;
            }
            let budget = fault
                .limit_data
                .map(|l| usize::try_from(l.saturating_sub(limit_count.1)).unwrap_or(usize::MAX));
            if budget == Some(0) {
                let _ = wr.shutdown().await;
                return Ended::Torn(Teardown::Close);
            }
            if let Some(chunk) = carried.take() {
                // Read under the previous fault, forwarded under this one.
                self.enqueue(&fault, &mut queue, chunk, &mut last_due, &mut queued);
            }
            if !fault.shapes() && queue.is_empty() && fault.cut.is_none() && reset_at.is_none() {
                // Fast path: a bare read (the connection's watcher wakes it if it must tear
                // down), then a look at the fault, then the write.
                let n = match rd.read(&mut buf).await {
                    Ok(0) => {
                        eof = true;
                        continue;
                    }
                    Ok(n) => n,
                    Err(_) => return Ended::Torn(Teardown::Close),
                };
                if self.state.has_changed().unwrap_or(true) || self.doomed().is_some() {
                    carried = Some(buf[..n].to_vec());
                    continue;
                }
                let n = budget.map_or(n, |b| n.min(b));
                if let Err(t) = self.send(wr, &buf[..n]).await {
                    return Ended::Torn(t);
                }
                counter.fetch_add(n as u64, Ordering::Relaxed);
                limit_count.1 += n as u64;
                continue;
            }
            // Shaped path: a queue of (due, bytes), written in order when due and paced.
            let head_due = queue.front().map(|(due, _)| (*due).max(next_send));
            let can_read = !eof && queued < MAX_QUEUED;
            tokio::select! {
                biased;
                _ = Self::event(&mut self.state, &mut self.stop, &mut self.peer) => continue,
                _ = sleep_opt(reset_at) => return Ended::Torn(Teardown::Reset),
                _ = sleep_opt(head_due), if head_due.is_some() => {
                    let (due, mut bytes) = queue.pop_front().expect("queue head");
                    let mut take = bytes.len();
                    if let Some(bw) = fault.bandwidth {
                        // At most 10 ms worth of bandwidth per write, so pacing stays smooth.
                        take = take.min(usize::try_from(bw / 100).unwrap_or(usize::MAX).max(1));
                    }
                    if let Some(b) = budget {
                        take = take.min(b);
                    }
                    let rest = bytes.split_off(take);
                    queued -= bytes.len() + rest.len();
                    if !rest.is_empty() {
                        queued += rest.len();
                        queue.push_front((due, rest));
                    }
                    if let Err(t) = self.send(wr, &bytes).await {
                        return Ended::Torn(t);
                    }
                    counter.fetch_add(take as u64, Ordering::Relaxed);
                    limit_count.1 += take as u64;
                    if let Some(bw) = fault.bandwidth {
                        next_send = next_send.max(Instant::now())
                            + Duration::from_secs_f64(take as f64 / bw.max(1) as f64);
                    }
                }
                r = rd.read(&mut buf), if can_read => match r {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        let chunk = buf[..n].to_vec();
                        self.enqueue(&fault, &mut queue, chunk, &mut last_due, &mut queued);
                    }
                    Err(_) => return Ended::Torn(Teardown::Close),
                },
            }
        }
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
