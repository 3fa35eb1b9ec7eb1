//! The pure primary-backup state machine: views, heartbeats, replication, takeover, fencing,
//! leases. No IO: the driver feeds inputs and performs the [`Persist`] writes, messages and
//! replies it returns (persist first). See README.md for the protocol and its guarantees.
//!
//! This file holds the state, role transitions and timers; `primary` the primary's work,
//! `takeover` a backup's failover, `messages` the handling of peer messages.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use faultline_protocol::{ErrorCode, Request, Response, Role, Status};
use faultline_replica::cluster::Cluster;
use faultline_replica::dispatch::Handlers;
use faultline_replica::forward::value_text;
use faultline_replica::node::Start;
use faultline_replica::{Applied, ClientToken, Command, Core, Input, KvState, Millis, Outbox};

use crate::msg::{Entry, Msg, Persist, ProbeReply};
use crate::settings::{Replication, Settings};

mod messages;
mod primary;
mod takeover;

/// Planted bug: in sync mode, answer writes after the primary's own fsync (like async).
pub const BUG_ACK_BEFORE_REPLICATE: &str = "ack-before-replicate";
/// Planted bug: backups answer reads from their own (possibly stale) state.
pub const BUG_STALE_BACKUP_READS: &str = "stale-backup-reads";

/// Applied entries kept in the log before they are folded into a snapshot.
pub const COMPACT_EVERY: u64 = 50_000;

/// Most entries in one `Append` message.
const MAX_APPEND: usize = 2048;

/// What a node recovered from its data directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovered {
    /// Highest view seen (0: fresh data directory).
    pub seen_view: u64,
    /// Index of the last entry folded into `state`.
    pub base: u64,
    pub state: KvState,
    /// Entries `base+1, base+2, ...`.
    pub entries: Vec<Command>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bugs {
    ack_before_replicate: bool,
    stale_backup_reads: bool,
}

#[derive(Debug, Clone, Copy)]
struct Timing {
    heartbeat: Millis,
    takeover_timeout: Millis,
    /// How long a candidate waits for every node to answer its probe.
    round: Millis,
    lease: Millis,
    clock_drift: Millis,
    replication_timeout: Millis,
    /// A gap between ticks longer than this means the node loop stalled.
    stall: Millis,
}

#[derive(Debug)]
struct Progress {
    matched: u64,
    sent: u64,
    last_ack: Millis,
    last_progress: Millis,
    acked_round: u64,
}

#[derive(Debug)]
struct ViewChange {
    view: u64,
    targets: BTreeSet<String>,
    acked: BTreeSet<String>,
    started: Millis,
    index: u64,
}

#[derive(Debug)]
struct Pending {
    index: u64,
    token: ClientToken,
    id: u64,
    at: Millis,
}

#[derive(Debug, Default)]
struct Primary {
    /// Backups of the view, in node order.
    members: Vec<String>,
    progress: BTreeMap<String, Progress>,
    change: Option<ViewChange>,
    pending: VecDeque<Pending>,
    deferred: VecDeque<(ClientToken, Request, Millis)>,
    round: u64,
    rounds: VecDeque<(u64, Millis)>,
    lease_until: Millis,
    last_heartbeat_sent: Option<Millis>,
    joiners: BTreeMap<String, Millis>,
    /// Nodes invited to a view that did not ack in time, and when: not invited again for a
    /// while, so a half-reachable node cannot stall writes with back-to-back view changes.
    snubbed: BTreeMap<String, Millis>,
    last_change_end: Millis,
}

#[derive(Debug)]
struct Candidate {
    nonce: u64,
    started: Millis,
    last_probe: Option<Millis>,
    answers: BTreeMap<String, ProbeReply>,
    /// First start of a fresh cluster: become primary of view 1 once every node answered with
    /// view 0.
    bootstrap: bool,
}

#[derive(Debug)]
enum State {
    Recovering,
    Backup,
    Candidate(Candidate),
    Primary(Box<Primary>),
}

/// A snapshot of a core's state, for tests and simulations.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspect {
    pub role: Role,
    pub view: u64,
    /// Primary: serving (not in the middle of a view change).
    pub serving: bool,
    pub commit: u64,
    pub last: u64,
    /// State after every entry in the log, committed or not.
    pub full_state: KvState,
}

/// One primary-backup node's protocol state.
#[derive(Debug)]
pub struct PbCore {
    cluster: Cluster,
    rank: usize,
    settings: Settings,
    timing: Timing,
    bugs: Bugs,
    seen_view: u64,
    /// The view whose NewView state this node installed (or started, as primary); 0: none
    /// since this process started.
    installed_view: u64,
    kv: KvState,
    base: u64,
    entries: Vec<Command>,
    applied: u64,
    commit: u64,
    state: State,
    last_heartbeat: Millis,
    last_tick: Option<Millis>,
    /// Members of `seen_view`, primary first, as last heard.
    view_members: Vec<String>,
    /// A heartbeat or append of `installed_view` listed this node as a member.
    confirmed: bool,
    /// Installed the state of `installed_view` and heard no heartbeat of it yet: the member
    /// list is the primary's invitation, which included this node.
    tentative: bool,
    nonce: u64,
    /// See [`COMPACT_EVERY`]; lowered by tests.
    pub(crate) compact_every: u64,
}

fn ms(d: std::time::Duration) -> Millis {
    d.as_millis() as Millis
}

impl PbCore {
    /// A core for node `id` of the static cluster `nodes` (sorted; `id` included), starting
    /// from what was recovered from disk. Unknown `bugs` are ignored (validated earlier).
    pub fn new(start: Start<Self>) -> Self {
        let bugs = Bugs {
            ack_before_replicate: start.has_bug(BUG_ACK_BEFORE_REPLICATE),
            stale_backup_reads: start.has_bug(BUG_STALE_BACKUP_READS),
        };
        let rank = start.rank();
        let cluster = start.cluster();
        let (settings, recovered) = (start.settings, start.recovered);
        let lease = ms(settings.lease_duration());
        let timing = Timing {
            heartbeat: ms(settings.heartbeat).max(1),
            takeover_timeout: ms(settings.takeover_timeout).max(2),
            round: ms(settings.takeover_timeout).max(1),
            lease,
            clock_drift: ms(settings.clock_drift),
            replication_timeout: ms(settings.replication_timeout).max(1),
            stall: (2 * ms(settings.heartbeat)).max(20),
        };
        let state = if recovered.seen_view == 0 && rank == 0 {
            State::Candidate(Candidate {
                nonce: 1,
                started: 0,
                last_probe: None,
                answers: BTreeMap::new(),
                bootstrap: true,
            })
        } else {
            State::Recovering
        };
        PbCore {
            cluster,
            rank,
            settings,
            timing,
            bugs,
            seen_view: recovered.seen_view,
            installed_view: 0,
            kv: recovered.state,
            base: recovered.base,
            entries: recovered.entries,
            applied: recovered.base,
            commit: recovered.base,
            state,
            last_heartbeat: 0,
            last_tick: None,
            view_members: Vec::new(),
            confirmed: false,
            tentative: false,
            nonce: 1,
            compact_every: COMPACT_EVERY,
        }
    }

    /// The node that owns (is primary of) `view`: views are dealt round-robin over the sorted
    /// node list, so two nodes can never both be primary of the same view.
    pub fn owner(&self, view: u64) -> Option<&str> {
        if view == 0 || self.cluster.nodes.is_empty() {
            return None;
        }
        let n = self.cluster.nodes.len() as u64;
        Some(self.cluster.nodes[((view - 1) % n) as usize].as_str())
    }

    /// The smallest view above `above` that this node owns.
    fn next_owned(&self, above: u64) -> u64 {
        let n = self.cluster.nodes.len().max(1) as u64;
        let first = above.saturating_add(1);
        first.saturating_add((self.rank as u64 + n - (first - 1) % n) % n)
    }

    fn last(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    fn role(&self) -> Role {
        match &self.state {
            State::Recovering => Role::Recovering,
            State::Backup => Role::Follower,
            State::Candidate(_) => Role::Candidate,
            State::Primary(_) => Role::Leader,
        }
    }

    pub fn status(&self) -> Status {
        let leader = match &self.state {
            State::Candidate(_) => None,
            _ => self.owner(self.seen_view).map(str::to_owned),
        };
        self.cluster.status(
            self.role(),
            self.seen_view,
            leader,
            self.commit,
            self.applied,
        )
    }

    pub fn inspect(&self) -> Inspect {
        let mut full_state = self.kv.clone();
        for cmd in &self.entries[(self.applied - self.base) as usize..] {
            full_state.apply(cmd);
        }
        Inspect {
            role: self.role(),
            view: self.seen_view,
            serving: matches!(&self.state, State::Primary(p) if p.change.is_none()),
            commit: self.commit,
            last: self.last(),
            full_state,
        }
    }

    /// Primary of its view and not in the middle of a view change.
    pub fn serving(&self) -> bool {
        matches!(&self.state, State::Primary(p) if p.change.is_none())
    }

    fn leader_hint(&self) -> Option<String> {
        match &self.state {
            State::Candidate(_) => None,
            _ => self
                .owner(self.seen_view)
                .filter(|o| *o != self.cluster.id)
                .map(str::to_owned),
        }
    }

    // ---- applying -------------------------------------------------------------------------

    /// Apply entries up to `upto`, answering the clients waiting for them (primary).
    fn apply_to(&mut self, upto: u64, out: &mut Outbox<Msg, Persist>) {
        let upto = upto.min(self.last());
        while self.applied < upto {
            let cmd = &self.entries[(self.applied - self.base) as usize];
            let outcome = self.kv.apply(cmd);
            self.applied += 1;
            if let State::Primary(p) = &mut self.state {
                while p.pending.front().is_some_and(|w| w.index < self.applied) {
                    p.pending.pop_front();
                }
                if p.pending.front().is_some_and(|w| w.index == self.applied) {
                    if let Some(w) = p.pending.pop_front() {
                        let resp = match outcome {
                            Applied::Done => Response::done(w.id),
                            Applied::CasMismatch { current } => Response::error(
                                w.id,
                                ErrorCode::CasMismatch,
                            )
                            .with_message(format!("current value is {}", value_text(current))),
                        };
                        out.reply(w.token, resp);
                    }
                }
            }
        }
        if self.commit < upto {
            self.commit = upto;
        }
    }

    // ---- view changes and roles -----------------------------------------------------------

    /// Learn of a view newer than any seen: persist it, give up any role in older views.
    fn adopt_view(&mut self, view: u64, out: &mut Outbox<Msg, Persist>) {
        if view <= self.seen_view {
            return;
        }
        tracing::info!(node = %self.cluster.id, view, "saw a newer view; recovering until a primary re-admits this node");
        self.step_down(out, "a newer view exists");
        self.seen_view = view;
        self.view_members.clear();
        self.confirmed = false;
        self.tentative = false;
        self.state = State::Recovering;
        out.persist(Persist::View(view));
    }

    /// Leave the primary role: pending writes may or may not survive (indefinite `timeout`);
    /// deferred requests never entered the log (definite `not_leader`).
    fn step_down(&mut self, out: &mut Outbox<Msg, Persist>, why: &str) {
        if let State::Primary(p) = std::mem::replace(&mut self.state, State::Recovering) {
            tracing::warn!(node = %self.cluster.id, view = self.seen_view, pending = p.pending.len(), why, "stepping down as primary");
            for w in p.pending {
                out.reply(
                    w.token,
                    Response::error(w.id, ErrorCode::Timeout)
                        .with_message(format!("primary stepped down: {why}")),
                );
            }
            for (token, req, _) in p.deferred {
                out.reply(token, Response::not_leader(req.id, None));
            }
        }
    }

    // ---- timers ---------------------------------------------------------------------------

    /// Fold applied entries into a snapshot once there are many, keeping what a primary may
    /// still have to send to a backup.
    fn maybe_compact(&mut self, out: &mut Outbox<Msg, Persist>) {
        if self.applied < self.base + self.compact_every {
            return;
        }
        if let State::Primary(p) = &self.state {
            let behind = p.members.iter().any(|m| !p.progress.contains_key(m))
                || p.progress
                    .values()
                    .any(|progress| progress.matched < self.applied);
            if p.change.is_some() || behind {
                return;
            }
        }
        let keep = (self.applied - self.base) as usize;
        let tail: Vec<Entry> = self.entries[keep..]
            .iter()
            .enumerate()
            .map(|(i, cmd)| Entry {
                index: self.applied + 1 + i as u64,
                cmd: cmd.clone(),
            })
            .collect();
        out.persist(Persist::Compact {
            index: self.applied,
            state: self.kv.clone(),
            tail,
        });
        self.entries.drain(..keep);
        self.base = self.applied;
    }
}

impl Core for PbCore {
    type Msg = Msg;
    type Persist = Persist;

    fn role_term(&self) -> Option<(Role, u64)> {
        Some((self.role(), self.seen_view))
    }

    fn step(&mut self, now: Millis, input: Input<Msg>, out: &mut Outbox<Msg, Persist>) {
        self.dispatch(now, input, out);
    }

    fn flush(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let eager =
            self.settings.replication == Replication::Sync && !self.bugs.ack_before_replicate;
        self.flush_primary(now, out, eager);
    }
}

impl Handlers for PbCore {
    fn on_peer(&mut self, now: Millis, from: String, msg: Msg, out: &mut Outbox<Msg, Persist>) {
        self.on_message(now, from, msg, out);
    }

    fn on_tick(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let stalled = self
            .last_tick
            .is_some_and(|t| now.saturating_sub(t) > self.timing.stall);
        self.last_tick = Some(now);
        if stalled {
            // We were paused or starved: give peers a fresh timeout before judging them, so a
            // resumed node hears about newer views before acting on stale timers.
            tracing::warn!(node = %self.cluster.id, "node loop stalled; restarting failure timers");
            self.last_heartbeat = now;
            if let State::Primary(p) = &mut self.state {
                for progress in p.progress.values_mut() {
                    progress.last_ack = now;
                    progress.last_progress = now;
                }
            }
        }
        self.maybe_compact(out);
        match &self.state {
            State::Primary(_) => self.tick_primary(now, out),
            State::Backup => {
                if let Some(rank) = self.takeover_rank() {
                    let wait = self.timing.takeover_timeout
                        + rank as u64 * self.timing.takeover_timeout / 2;
                    if now.saturating_sub(self.last_heartbeat) > wait {
                        self.become_candidate(now, false);
                        self.tick_candidate(now, out);
                    }
                }
            }
            State::Candidate(_) => self.tick_candidate(now, out),
            State::Recovering => {}
        }
    }

    fn cluster(&self) -> &Cluster {
        &self.cluster
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_view_has_exactly_one_owner_and_views_grow() {
        let nodes: Vec<String> = (1..=3).map(|i| format!("n{i}")).collect();
        let cores: Vec<PbCore> = nodes
            .iter()
            .map(|id| {
                PbCore::new(Start {
                    id: id.clone(),
                    nodes: nodes.clone(),
                    settings: Settings::default(),
                    bugs: Vec::new(),
                    recovered: Recovered::default(),
                    seed: 0,
                })
            })
            .collect();
        // (node, above) -> the view it would pick
        let table = [
            (0, 0, 1),
            (1, 1, 2),
            (2, 1, 3),
            (0, 1, 4),
            (1, 4, 5),
            (0, 4, 7),
            (2, 9, 12),
        ];
        for (i, above, expect) in table {
            assert_eq!(
                cores[i].next_owned(above),
                expect,
                "n{} above {above}",
                i + 1
            );
        }
        for view in 1..50 {
            let owners: Vec<&str> = cores.iter().filter_map(|c| c.owner(view)).collect();
            assert!(owners.iter().all(|o| *o == owners[0]), "view {view}");
            let owner = cores.iter().find(|c| c.cluster.id == owners[0]).unwrap();
            assert_eq!(owner.next_owned(view - 1), view);
        }
        assert_eq!(
            cores[0].next_owned(u64::MAX),
            u64::MAX,
            "no overflow on hostile input"
        );
        assert_eq!(cores[0].owner(0), None);
    }
}
