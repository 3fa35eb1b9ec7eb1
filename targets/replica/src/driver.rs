//! The thin driver around a protocol's pure core: sockets, timers and fsync live here, the
//! protocol logic lives in a [`Core`] that only sees inputs and writes outputs.
//!
//! ```text
//!   client lines ──> server ──┐                         ┌──> Storage::persist (one fsync
//!   peer frames ──> PeerNet ──┼─> Core::step(now, in) ──┤     per batch: group commit)
//!   timer ticks ──────────────┘   Core::flush(now)      ├──> PeerNet::send   (after persist)
//!                                                       └──> client replies  (after persist)
//! ```
//!
//! One loop iteration waits for an input, then drains every input already queued (bounded), so
//! requests that arrive together share one fsync. The rule a core can rely on: **all persist
//! actions written during an iteration are durable before any message or reply written during
//! that iteration leaves the node.** A core may therefore emit "append entry" and "ack" in the
//! same step. If persisting fails the driver stops with the error: after a failed fsync the node
//! cannot know what is on disk, and the only safe move is to crash.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_protocol::{Request, Response, Role};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::log::StorageError;
use crate::peer::PeerNet;
use crate::server::{ClientRequest, Reply};

/// Milliseconds on the node's monotonic clock (since its driver started). Cores only compare
/// and subtract these; simulations feed virtual time.
pub type Millis = u64;

/// Inputs processed per iteration at most, so timers are never starved.
pub const MAX_BATCH: usize = 4096;

/// Identifies a client request while the core works on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientToken(pub u64);

/// One input to a core.
#[derive(Debug, Clone)]
pub enum Input<M> {
    /// A client request; answer it with [`Outbox::reply`] using `token`, now or later.
    Client {
        token: ClientToken,
        request: Request,
    },
    /// A message from a peer.
    Peer { from: String, msg: M },
    /// Time passed; check timeouts.
    Tick,
}

/// What a core wants done, collected across one iteration.
#[derive(Debug)]
pub struct Outbox<M, P> {
    /// Durable writes, performed in order and fsynced before anything else leaves.
    pub persist: Vec<P>,
    /// Messages to peers, by id (best effort).
    pub messages: Vec<(String, M)>,
    /// Client responses.
    pub replies: Vec<(ClientToken, Response)>,
}

impl<M, P> Default for Outbox<M, P> {
    fn default() -> Self {
        Outbox {
            persist: Vec::new(),
            messages: Vec::new(),
            replies: Vec::new(),
        }
    }
}

impl<M, P> Outbox<M, P> {
    pub fn persist(&mut self, p: P) {
        self.persist.push(p);
    }
    pub fn send(&mut self, to: impl Into<String>, msg: M) {
        self.messages.push((to.into(), msg));
    }
    pub fn reply(&mut self, token: ClientToken, response: Response) {
        self.replies.push((token, response));
    }
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty() && self.messages.is_empty() && self.replies.is_empty()
    }
}

/// A protocol's pure state machine.
pub trait Core {
    /// Peer message type.
    type Msg: Serialize + DeserializeOwned + Send + 'static;
    /// A durable write the core asks for (applied by the matching [`Storage`]).
    type Persist: Send + 'static;

    /// Process one input.
    fn step(
        &mut self,
        now: Millis,
        input: Input<Self::Msg>,
        out: &mut Outbox<Self::Msg, Self::Persist>,
    );

    /// Called once per iteration after the inputs of the batch: the place to send batched
    /// replication messages and advance commit points.
    fn flush(&mut self, _now: Millis, _out: &mut Outbox<Self::Msg, Self::Persist>) {}

    /// The node's role and term (view, ballot) now. The driver dates changes of it and puts
    /// their age into every status reply (`role_us`); `None` leaves `role_us` out.
    fn role_term(&self) -> Option<(Role, u64)> {
        None
    }
}

/// Performs a core's durable writes. Runs on a blocking thread.
pub trait Storage: Send + 'static {
    type Persist: Send + 'static;
    /// Perform `actions` in order; return only once all of them are durable.
    fn persist(&mut self, actions: Vec<Self::Persist>) -> Result<(), StorageError>;
}

/// Why a driver stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("persisting state failed: {0}")]
    Storage(#[from] StorageError),
    #[error("storage thread failed: {0}")]
    Join(String),
}

/// Everything a driver needs besides the core and its storage.
pub struct DriverIo<M> {
    pub net: PeerNet<M>,
    pub inbound: mpsc::Receiver<(String, M)>,
    pub clients: mpsc::Receiver<ClientRequest>,
    /// Interval of [`Input::Tick`].
    pub tick: Duration,
}

/// Run `core` until `shutdown` completes (returns `Ok`) or storage fails (returns the error).
pub async fn drive<C, S>(
    mut core: C,
    storage: S,
    io: DriverIo<C::Msg>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError>
where
    C: Core,
    S: Storage<Persist = C::Persist>,
{
    let DriverIo {
        net,
        mut inbound,
        mut clients,
        tick,
    } = io;
    let start = Instant::now();
    let now = || start.elapsed().as_millis() as Millis;
    let storage = Arc::new(Mutex::new(storage));
    let mut waiting: HashMap<ClientToken, Reply> = HashMap::new();
    let mut next_token = 0u64;
    let mut out: Outbox<C::Msg, C::Persist> = Outbox::default();
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(shutdown);
    // When the core took its current role and term (to within one iteration).
    let mut role = core.role_term();
    let mut role_since = Instant::now();

    let mut client_input = |c: ClientRequest, waiting: &mut HashMap<ClientToken, Reply>| {
        next_token += 1;
        let token = ClientToken(next_token);
        waiting.insert(token, c.reply);
        Input::Client {
            token,
            request: c.request,
        }
    };

    loop {
        let first = tokio::select! {
            biased;
            () = &mut shutdown => return Ok(()),
            Some((from, msg)) = inbound.recv() => Input::Peer { from, msg },
            Some(c) = clients.recv() => client_input(c, &mut waiting),
            _ = ticker.tick() => Input::Tick,
        };
        core.step(now(), first, &mut out);
        for _ in 0..MAX_BATCH {
            let mut progressed = false;
            if let Ok((from, msg)) = inbound.try_recv() {
                core.step(now(), Input::Peer { from, msg }, &mut out);
                progressed = true;
            }
            if let Ok(c) = clients.try_recv() {
                let input = client_input(c, &mut waiting);
                core.step(now(), input, &mut out);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        core.flush(now(), &mut out);
        let role_now = core.role_term();
        if role_now != role {
            role = role_now;
            role_since = Instant::now();
        }

        if !out.persist.is_empty() {
            let actions = std::mem::take(&mut out.persist);
            let storage = Arc::clone(&storage);
            tokio::task::spawn_blocking(move || match storage.lock() {
                Ok(mut s) => s.persist(actions),
                Err(_) => Err(StorageError::Corrupt {
                    what: "storage state",
                    path: Default::default(),
                    detail: "an earlier persist panicked".into(),
                }),
            })
            .await
            .map_err(|e| DriverError::Join(e.to_string()))??;
        }
        for (to, msg) in out.messages.drain(..) {
            net.send(&to, msg);
        }
        for (token, mut response) in out.replies.drain(..) {
            if let (Some(status), Some(_)) = (response.status.as_mut(), role) {
                status.role_us = Some(role_since.elapsed().as_micros() as u64);
            }
            if let Some(reply) = waiting.remove(&token) {
                reply.send(response);
            }
        }
    }
}
