//! Client-side load balancing: which node gets each try of an operation. A [`Balancing`] is
//! what the workload holds: one strategy behind the [`Balancer`] trait, per-node in-flight
//! counts and answer counters, passive outlier ejection and the retry budget, all shared by
//! every client task without a lock on the request path.
//!
//! ```text
//!  execute ── pick(key, view, tried) ──> candidates (healthy, not down, not ejected, not
//!     │                                  tried; one u64) ──> strategy.pick ──> node
//!     ├── start(node) ... finish(reply) ──> in-flight counts, counters, outlier detector
//!     └── allow_retry(now) ──> retry budget
//!  harness ── stats() / drain_events(now) ──> report and timeline
//! ```

mod budget;
mod mix;
mod nodes;
mod outlier;
mod ring;
mod strategies;
mod weighted;

#[cfg(test)]
mod tests;

pub use budget::RetryBudget;
pub use mix::RandomStream;
pub use nodes::{candidates, NodeSet, NodeStats, NodeTable, MAX_NODES};
pub use outlier::{OutlierDetector, OutlierEvent, Transition};
pub use ring::HashRing;
pub use strategies::{LeaderAware, LeastOutstanding, PowerOfChoices, Random, RoundRobin};
pub use weighted::SmoothWeighted;

use std::cell::OnceCell;
use std::time::{Duration, Instant};

use faultline_protocol::ErrorCode;

use crate::cluster::{CallError, ClusterView};
use crate::experiment::{BalancerCfg, BalancerKind, StrategyParams};

/// What a strategy sees when it picks. The candidate set costs a pass over the view, so it is
/// computed only when a strategy asks for it; a strategy that finds a [`fresh`](Self::fresh)
/// node some cheaper way (a probe, a ring walk, a learned leader) may return that instead,
/// since a fresh node is always a candidate.
pub struct Pick<'a> {
    /// The operation's key (empty for operations without one).
    pub key: &'a str,
    pub view: &'a ClusterView,
    /// Nodes this operation already got a definite failure from.
    pub tried: &'a [usize],
    /// Operations in flight per node.
    pub load: &'a NodeTable,
    /// Nodes outlier detection has out.
    pub excluded: NodeSet,
    nodes: usize,
    candidates: OnceCell<NodeSet>,
}

impl<'a> Pick<'a> {
    pub fn new(
        key: &'a str,
        view: &'a ClusterView,
        tried: &'a [usize],
        load: &'a NodeTable,
        excluded: NodeSet,
    ) -> Self {
        Pick {
            key,
            view,
            tried,
            load,
            excluded,
            nodes: load.len().min(view.nodes.len()).min(MAX_NODES),
            candidates: OnceCell::new(),
        }
    }

    /// How many nodes there are to choose from (indices `0..nodes()`).
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Whether node `i` is usable (not down, healthy, not ejected) and not yet tried by this
    /// operation: such a node is always a candidate.
    pub fn fresh(&self, i: usize) -> bool {
        i < self.nodes
            && self.view.nodes[i].healthy
            && !self.view.nodes[i].down
            && !self.excluded.contains(i)
            && !self.tried.contains(&i)
    }

    /// The nodes to choose from (see [`candidates`]); empty only when there are no nodes.
    pub fn candidates(&self) -> NodeSet {
        *self
            .candidates
            .get_or_init(|| candidates(self.view, self.nodes, self.tried, self.excluded))
    }
}

/// A balancing strategy. Shared by every client task, so implementations use atomics.
pub trait Balancer: Send + Sync {
    fn name(&self) -> &'static str;

    /// A node from `p.candidates()`; `None` only if that set is empty.
    fn pick(&self, p: &Pick<'_>) -> Option<usize>;

    /// A node answered `not_leader` naming `leader`, or served a write: remember it.
    fn learn_leader(&self, _leader: usize) {}

    /// A try was sent to `node` (the in-flight count is already up).
    fn started(&self, _node: usize) {}

    /// The try sent to `node` ended with `reply` (the in-flight count is already down).
    fn finished(&self, _node: usize, _reply: Reply) {}
}

/// How one try ended, as far as the balancer cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Success.
    Served,
    /// A definite failure about the operation itself (cas mismatch, bad request): the node
    /// works.
    Rejected,
    /// A definite failure: the node does not lead. Wasted, but the node works.
    NotLeader,
    /// A definite failure: the node cannot serve now (no quorum, recovering).
    Unavailable,
    /// A definite failure: no connection could be made. Wasted.
    Refused,
    /// A timeout, a lost connection, or an indefinite error.
    Indefinite,
}

impl Reply {
    /// The reply to an error answer.
    pub fn from_error(code: ErrorCode, definite: bool) -> Reply {
        match code {
            _ if !definite => Reply::Indefinite,
            ErrorCode::NotLeader => Reply::NotLeader,
            ErrorCode::CasMismatch | ErrorCode::BadRequest => Reply::Rejected,
            ErrorCode::Unavailable | ErrorCode::Timeout | ErrorCode::Other => Reply::Unavailable,
        }
    }

    /// The reply to a call that got no answer.
    pub fn from_call_error(e: &CallError) -> Reply {
        match e {
            CallError::NotSent(_) => Reply::Refused,
            CallError::Lost(_) | CallError::Timeout => Reply::Indefinite,
        }
    }

    /// Whether the reply counts towards ejecting the node: a definite failure of the node
    /// itself, or a timeout. (`not_leader` is a redirect from a working node.)
    pub fn counts_against_node(self) -> bool {
        matches!(
            self,
            Reply::Unavailable | Reply::Refused | Reply::Indefinite
        )
    }

    /// Whether the try was spent on a dead or non-leader node.
    pub fn wasted(self) -> bool {
        matches!(self, Reply::NotLeader | Reply::Refused)
    }
}

/// Why a balancer could not be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BalancerError {
    #[error("{nodes} nodes: a balancer handles at most {MAX_NODES}")]
    TooManyNodes { nodes: usize },
    #[error("balancer.weights: no node `{node}` (nodes: {known})")]
    UnknownNode { node: String, known: String },
}

/// The balancer of one run, shared by every client task.
pub struct Balancing {
    kind: BalancerKind,
    ids: Box<[String]>,
    strategy: Box<dyn Balancer>,
    load: NodeTable,
    outlier: Option<OutlierDetector>,
    budget: Option<RetryBudget>,
}

impl Balancing {
    /// The balancer `cfg` describes, over the nodes `ids` (indexed as in the view); `seed`
    /// drives the random strategies.
    pub fn new(cfg: &BalancerCfg, ids: &[String], seed: u64) -> Result<Self, BalancerError> {
        if ids.len() > MAX_NODES {
            return Err(BalancerError::TooManyNodes { nodes: ids.len() });
        }
        let mut weights = vec![1u32; ids.len()];
        for (name, &w) in &cfg.params.weights {
            let i =
                ids.iter()
                    .position(|id| id == name)
                    .ok_or_else(|| BalancerError::UnknownNode {
                        node: name.clone(),
                        known: ids.join(", "),
                    })?;
            weights[i] = w;
        }
        let epoch = Instant::now();
        Ok(Balancing {
            kind: cfg.kind,
            ids: ids.into(),
            strategy: strategy(cfg.kind, &cfg.params, &weights, ids, seed),
            load: NodeTable::new(ids.len()),
            outlier: cfg
                .outlier
                .map(|o| OutlierDetector::new(&o, ids.len(), epoch)),
            budget: cfg.retry_budget.map(|b| RetryBudget::new(&b, epoch)),
        })
    }

    /// `kind` with its default parameters, no outlier ejection and no retry budget, over the
    /// first [`MAX_NODES`] of `ids`.
    pub fn with_defaults(kind: BalancerKind, ids: &[String]) -> Self {
        let ids = &ids[..ids.len().min(MAX_NODES)];
        let weights = vec![1u32; ids.len()];
        Balancing {
            kind,
            ids: ids.into(),
            strategy: strategy(kind, &StrategyParams::default(), &weights, ids, 0),
            load: NodeTable::new(ids.len()),
            outlier: None,
            budget: None,
        }
    }

    pub fn kind(&self) -> BalancerKind {
        self.kind
    }

    pub fn name(&self) -> &'static str {
        self.strategy.name()
    }

    /// The node for a try of an operation on `key`: a candidate (see
    /// [`candidates`]) chosen by the strategy. `tried` lists the nodes this operation
    /// already got a definite failure from. `None` only when there are no nodes.
    pub fn pick(&self, key: &str, view: &ClusterView, tried: &[usize]) -> Option<usize> {
        let pick = Pick::new(key, view, tried, &self.load, self.ejected());
        if pick.nodes() == 0 {
            return None;
        }
        self.strategy.pick(&pick)
    }

    /// A node answered `not_leader` naming `leader`, or served a write.
    pub fn learn_leader(&self, leader: usize) {
        self.strategy.learn_leader(leader);
    }

    /// A try goes to `node` at `now`; finish it with its reply. Dropped unfinished (its task
    /// cancelled), it leaves the in-flight count without counting a reply.
    pub fn start(&self, node: usize, now: Instant) -> InFlight<'_> {
        self.load.started(node);
        self.strategy.started(node);
        InFlight {
            lb: self,
            node,
            at: now,
            open: true,
        }
    }

    fn finished(&self, node: usize, reply: Reply, latency: Duration, now: Instant) {
        self.load.finished(node, reply, latency);
        if let Some(o) = &self.outlier {
            o.record(node, reply, now);
        }
        self.strategy.finished(node, reply);
    }

    /// An operation starts (its first try): it earns its share of the retry budget.
    pub fn operation_started(&self, now: Instant) {
        if let Some(b) = &self.budget {
            b.deposit(now);
        }
    }

    /// Whether a retry may be made now; if so it is counted against the retry budget. Always
    /// true without a budget.
    pub fn allow_retry(&self, now: Instant) -> bool {
        self.budget.as_ref().is_none_or(|b| b.try_retry(now))
    }

    /// Retries the budget refused so far.
    pub fn retries_denied(&self) -> u64 {
        self.budget.as_ref().map_or(0, RetryBudget::denied)
    }

    /// The nodes outlier detection has out now.
    pub fn ejected(&self) -> NodeSet {
        self.outlier
            .as_ref()
            .map_or(NodeSet::EMPTY, OutlierDetector::ejected)
    }

    /// Ejections and re-admissions since the last call, oldest first, after re-admitting the
    /// nodes whose time is up at `now`. Call it at least every observer tick.
    pub fn drain_events(&self, now: Instant) -> Vec<OutlierEvent> {
        self.outlier
            .as_ref()
            .map_or_else(Vec::new, |o| o.drain(now))
    }

    /// The node ids, indexed like the view and the events.
    pub fn node_ids(&self) -> &[String] {
        &self.ids
    }

    /// Each node's counters now, in view order.
    pub fn stats(&self) -> Vec<NodeStats> {
        let ejected = self.ejected();
        self.ids
            .iter()
            .enumerate()
            .map(|(i, id)| NodeStats {
                ejections: self.outlier.as_ref().map_or(0, |o| o.times_ejected(i)),
                ejected: ejected.contains(i),
                ..self.load.snapshot(i, id)
            })
            .collect()
    }
}

/// A try in flight; see [`Balancing::start`].
#[must_use = "finish the try with its reply"]
pub struct InFlight<'a> {
    lb: &'a Balancing,
    node: usize,
    at: Instant,
    open: bool,
}

impl InFlight<'_> {
    /// The try ended at `now` with `reply`.
    pub fn finish(mut self, reply: Reply, now: Instant) {
        self.open = false;
        let latency = now.saturating_duration_since(self.at);
        self.lb.finished(self.node, reply, latency, now);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.open {
            self.lb.load.abandoned(self.node);
        }
    }
}

/// The strategy `kind` over `ids`, with `weights[i]` for node `i`.
fn strategy(
    kind: BalancerKind,
    params: &StrategyParams,
    weights: &[u32],
    ids: &[String],
    seed: u64,
) -> Box<dyn Balancer> {
    // Distinct streams for the strategy and its fallback.
    let seed = seed ^ 0x62_616c_616e_6365; // "balance"
    match kind {
        BalancerKind::RoundRobin => Box::new(RoundRobin::default()),
        BalancerKind::Random => Box::new(Random::new(seed)),
        BalancerKind::Weighted => Box::new(SmoothWeighted::new(weights, seed)),
        BalancerKind::LeastOutstanding => Box::new(LeastOutstanding::default()),
        BalancerKind::PowerOfTwoChoices => {
            Box::new(PowerOfChoices::new(params.choice_count as usize, seed))
        }
        BalancerKind::ConsistentHash => {
            Box::new(HashRing::new(ids, params.vnodes, params.bounded_load))
        }
        BalancerKind::LeaderAware => {
            let fallback = match params.fallback {
                // Not reachable from YAML; keep the recursion finite anyway.
                BalancerKind::LeaderAware => BalancerKind::RoundRobin,
                k => k,
            };
            Box::new(LeaderAware::new(strategy(
                fallback,
                params,
                weights,
                ids,
                seed.rotate_left(17),
            )))
        }
    }
}
