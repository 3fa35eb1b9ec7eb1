//! The pure primary-backup state machine: views, heartbeats, replication, takeover, fencing,
//! leases. No IO: the driver feeds inputs and performs the [`Persist`] writes, messages and
//! replies it returns (persist first). See README.md for the protocol and its guarantees.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use faultline_protocol::{ErrorCode, Op, Request, Response, Role, Status};
use faultline_replica::{ClientToken, Command, Core, Input, KvState, Millis, Outbox, Outcome};

use crate::msg::{Entry, Msg, Persist};
use crate::settings::{Replication, Settings};

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
    takeover: Millis,
    round: Millis,
    lease: Millis,
    drift: Millis,
    replication: Millis,
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
    last_hb: Option<Millis>,
    joiners: BTreeMap<String, Millis>,
    /// Nodes invited to a view that did not ack in time, and when: not invited again for a
    /// while, so a half-reachable node cannot stall writes with back-to-back view changes.
    snubbed: BTreeMap<String, Millis>,
    last_change_end: Millis,
}

impl Primary {
    /// Start catching up a node that holds a prefix of this view's log (it installed this
    /// view's state) but is not a member: it gets appends, and joins the members once it has
    /// everything committed. A node too far behind (compacted away) is re-invited instead.
    fn add_learner(&mut self, id: String, last: u64, base: u64, now: Millis) {
        if last < base {
            self.joiners.insert(id, now);
            return;
        }
        self.progress.insert(
            id,
            Progress {
                matched: last,
                sent: last,
                last_ack: now,
                last_progress: now,
                acked_round: 0,
            },
        );
    }
}

#[derive(Debug, Clone)]
struct ProbeAnswer {
    view: u64,
    primary_alive: bool,
    members: Option<Vec<String>>,
    candidate: bool,
}

#[derive(Debug)]
struct Candidate {
    nonce: u64,
    started: Millis,
    last_probe: Option<Millis>,
    answers: BTreeMap<String, ProbeAnswer>,
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
    id: String,
    nodes: Vec<String>,
    rank: usize,
    settings: Settings,
    t: Timing,
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
    pub fn new(
        id: &str,
        nodes: Vec<String>,
        settings: Settings,
        bugs: &[String],
        recovered: Recovered,
    ) -> Self {
        let rank = nodes.iter().position(|n| n == id).unwrap_or(0);
        let lease = ms(settings.lease_duration());
        let t = Timing {
            heartbeat: ms(settings.heartbeat).max(1),
            takeover: ms(settings.takeover_timeout).max(2),
            round: ms(settings.takeover_timeout).max(1),
            lease,
            drift: ms(settings.clock_drift),
            replication: ms(settings.replication_timeout).max(1),
            stall: (2 * ms(settings.heartbeat)).max(20),
        };
        let bugs = Bugs {
            ack_before_replicate: bugs.iter().any(|b| b == BUG_ACK_BEFORE_REPLICATE),
            stale_backup_reads: bugs.iter().any(|b| b == BUG_STALE_BACKUP_READS),
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
            id: id.to_owned(),
            nodes,
            rank,
            settings,
            t,
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
        if view == 0 || self.nodes.is_empty() {
            return None;
        }
        let n = self.nodes.len() as u64;
        Some(self.nodes[((view - 1) % n) as usize].as_str())
    }

    /// The smallest view above `above` that this node owns.
    fn next_owned(&self, above: u64) -> u64 {
        let n = self.nodes.len().max(1) as u64;
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
        Status {
            node: self.id.clone(),
            role: self.role(),
            term: self.seen_view,
            leader,
            commit: self.commit,
            applied: Some(self.applied),
        }
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
                .filter(|o| *o != self.id)
                .map(str::to_owned),
        }
    }

    fn others(&self) -> impl Iterator<Item = &String> {
        self.nodes.iter().filter(move |n| **n != self.id)
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
                            Outcome::Done => Response::done(w.id),
                            Outcome::CasMismatch { current } => Response::error(
                                w.id,
                                ErrorCode::CasMismatch,
                            )
                            .with_message(format!("current value is {}", fmt_value(current))),
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
        tracing::info!(node = %self.id, view, "saw a newer view; recovering until a primary re-admits this node");
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
            tracing::warn!(node = %self.id, view = self.seen_view, pending = p.pending.len(), why, "stepping down as primary");
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

    fn become_candidate(&mut self, now: Millis, bootstrap: bool) {
        self.nonce += 1;
        tracing::info!(node = %self.id, view = self.seen_view, bootstrap, "starting takeover");
        self.state = State::Candidate(Candidate {
            nonce: self.nonce,
            started: now,
            last_probe: None,
            answers: BTreeMap::new(),
            bootstrap,
        });
    }

    /// Become primary of a new view inviting `targets` as backups.
    fn become_primary(
        &mut self,
        now: Millis,
        targets: BTreeSet<String>,
        out: &mut Outbox<Msg, Persist>,
    ) {
        self.state = State::Primary(Box::default());
        self.start_view_change(now, targets, out);
    }

    /// Move (as primary) to the next view this node owns, sending every target the full state
    /// (all of the log, committed or not: the primary's log is authoritative).
    fn start_view_change(
        &mut self,
        now: Millis,
        targets: BTreeSet<String>,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let view = self.next_owned(self.seen_view);
        self.seen_view = view;
        self.installed_view = view;
        self.confirmed = true;
        out.persist(Persist::View(view));
        let index = self.last();
        let state = self.inspect().full_state;
        let mut members = vec![self.id.clone()];
        members.extend(targets.iter().cloned());
        tracing::info!(node = %self.id, view, index, targets = ?targets, "starting view");
        for t in &targets {
            out.send(
                t.clone(),
                Msg::NewView {
                    view,
                    members: members.clone(),
                    index,
                    state: state.clone(),
                },
            );
        }
        self.view_members = members;
        if let State::Primary(p) = &mut self.state {
            p.change = Some(ViewChange {
                view,
                targets,
                acked: BTreeSet::new(),
                started: now,
                index,
            });
        }
    }

    /// Finish the running view change once every target acked or the round timed out.
    fn check_change_done(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let State::Primary(p) = &mut self.state else {
            return;
        };
        let Some(change) = &p.change else { return };
        if change.acked.len() < change.targets.len() && now < change.started + self.t.round {
            return;
        }
        let Some(change) = p.change.take() else {
            return;
        };
        let members: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| change.acked.contains(*n))
            .cloned()
            .collect();
        p.progress = members
            .iter()
            .map(|m| {
                (
                    m.clone(),
                    Progress {
                        matched: change.index,
                        sent: change.index,
                        last_ack: now,
                        last_progress: now,
                        acked_round: 0,
                    },
                )
            })
            .collect();
        p.members = members;
        p.joiners.retain(|j, _| !change.acked.contains(j));
        for t in change.targets.difference(&change.acked) {
            p.snubbed.insert(t.clone(), now);
        }
        p.last_change_end = now;
        p.rounds.clear();
        p.lease_until = change.started + self.t.lease.saturating_sub(self.t.drift);
        p.last_hb = None;
        let mut view_members = vec![self.id.clone()];
        view_members.extend(p.members.iter().cloned());
        tracing::info!(node = %self.id, view = change.view, members = ?view_members, "view established");
        self.view_members = view_members;
        self.apply_to(change.index, out);
        self.heartbeat(now, out);
        let deferred = match &mut self.state {
            State::Primary(p) => std::mem::take(&mut p.deferred),
            _ => VecDeque::new(),
        };
        for (token, request, _) in deferred {
            self.on_client(now, token, request, out);
        }
    }

    fn heartbeat(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let (commit, last) = (self.commit, self.last());
        let State::Primary(p) = &mut self.state else {
            return;
        };
        p.round += 1;
        p.rounds.push_back((p.round, now));
        while p.rounds.len() > 64 {
            p.rounds.pop_front();
        }
        p.last_hb = Some(now);
        if p.members.is_empty() {
            p.lease_until = p
                .lease_until
                .max(now + self.t.lease.saturating_sub(self.t.drift));
        }
        let msg = Msg::Heartbeat {
            view: self.seen_view,
            members: self.view_members.clone(),
            commit,
            last,
            round: p.round,
        };
        for n in self.nodes.iter().filter(|n| **n != self.id) {
            out.send(n.clone(), msg.clone());
        }
    }

    fn renew_lease(&mut self) {
        let State::Primary(p) = &mut self.state else {
            return;
        };
        let Some(round) = p
            .members
            .iter()
            .filter_map(|m| p.progress.get(m))
            .map(|g| g.acked_round)
            .min()
        else {
            return;
        };
        if let Some(&(_, sent)) = p.rounds.iter().find(|(r, _)| *r == round) {
            p.lease_until = p
                .lease_until
                .max(sent + self.t.lease.saturating_sub(self.t.drift));
        }
    }

    // ---- client requests ------------------------------------------------------------------

    fn on_client(
        &mut self,
        now: Millis,
        token: ClientToken,
        req: Request,
        out: &mut Outbox<Msg, Persist>,
    ) {
        if matches!(req.op, Op::Status) {
            out.reply(token, Response::status(req.id, self.status()));
            return;
        }
        let lease_on = self.settings.lease;
        let State::Primary(p) = &mut self.state else {
            if let (Op::Read { key }, true, State::Backup) =
                (&req.op, self.bugs.stale_backup_reads, &self.state)
            {
                out.reply(token, Response::value(req.id, self.kv.read(key)));
                return;
            }
            let resp = match self.state {
                State::Candidate(_) => Response::error(req.id, ErrorCode::Unavailable)
                    .with_message("taking over; no primary yet"),
                _ => Response::not_leader(req.id, self.leader_hint()),
            };
            out.reply(token, resp);
            return;
        };
        if p.change.is_some() {
            p.deferred.push_back((token, req, now));
            return;
        }
        if lease_on && now >= p.lease_until {
            out.reply(
                token,
                Response::error(req.id, ErrorCode::Unavailable)
                    .with_message("primary lease not held"),
            );
            return;
        }
        let cmd = match req.op {
            Op::Read { key } => {
                out.reply(token, Response::value(req.id, self.kv.read(&key)));
                return;
            }
            Op::Write { key, value } => Command::Write { key, value },
            Op::Cas { key, from, to } => Command::Cas { key, from, to },
            Op::Status => return,
        };
        let index = self.base + self.entries.len() as u64 + 1;
        p.pending.push_back(Pending {
            index,
            token,
            id: req.id,
            at: now,
        });
        out.persist(Persist::Append(Entry {
            index,
            cmd: cmd.clone(),
        }));
        self.entries.push(cmd);
    }

    // ---- timers ---------------------------------------------------------------------------

    fn on_tick(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let stalled = self
            .last_tick
            .is_some_and(|t| now.saturating_sub(t) > self.t.stall);
        self.last_tick = Some(now);
        if stalled {
            // We were paused or starved: give peers a fresh timeout before judging them, so a
            // resumed node hears about newer views before acting on stale timers.
            tracing::warn!(node = %self.id, "node loop stalled; restarting failure timers");
            self.last_heartbeat = now;
            if let State::Primary(p) = &mut self.state {
                for g in p.progress.values_mut() {
                    g.last_ack = now;
                    g.last_progress = now;
                }
            }
        }
        self.maybe_compact(out);
        match &self.state {
            State::Primary(_) => self.tick_primary(now, out),
            State::Backup => {
                if let Some(rank) = self.takeover_rank() {
                    let wait = self.t.takeover + rank as u64 * self.t.takeover / 2;
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

    /// Fold applied entries into a snapshot once there are many, keeping what a primary may
    /// still have to send to a backup.
    fn maybe_compact(&mut self, out: &mut Outbox<Msg, Persist>) {
        if self.applied < self.base + self.compact_every {
            return;
        }
        if let State::Primary(p) = &self.state {
            let behind = p.members.iter().any(|m| !p.progress.contains_key(m))
                || p.progress.values().any(|g| g.matched < self.applied);
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

    /// This backup's position in the takeover order, if it may take over at all: it must have
    /// installed its latest view's state and be listed in that view.
    fn takeover_rank(&self) -> Option<usize> {
        if self.installed_view == 0 || self.installed_view != self.seen_view {
            return None;
        }
        if !self.confirmed && !self.tentative {
            return None;
        }
        let primary = self.owner(self.seen_view)?;
        self.view_members
            .iter()
            .filter(|m| m.as_str() != primary)
            .position(|m| *m == self.id)
    }

    fn tick_primary(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let t = self.t;
        let State::Primary(p) = &mut self.state else {
            return;
        };
        while p
            .pending
            .front()
            .is_some_and(|w| now >= w.at + t.replication)
        {
            if let Some(w) = p.pending.pop_front() {
                out.reply(
                    w.token,
                    Response::error(w.id, ErrorCode::Timeout)
                        .with_message("not replicated in time"),
                );
            }
        }
        while p
            .deferred
            .front()
            .is_some_and(|(_, _, at)| now >= at + t.replication)
        {
            if let Some((token, req, _)) = p.deferred.pop_front() {
                out.reply(
                    token,
                    Response::error(req.id, ErrorCode::Unavailable)
                        .with_message("view change did not finish"),
                );
            }
        }
        if p.change.is_some() {
            self.check_change_done(now, out);
            return;
        }
        for g in p.progress.values_mut() {
            if g.matched < g.sent && now.saturating_sub(g.last_progress) > 2 * t.heartbeat {
                g.sent = g.matched;
                g.last_progress = now;
            }
        }
        p.joiners
            .retain(|_, at| now.saturating_sub(*at) <= t.takeover);
        p.snubbed
            .retain(|_, at| now.saturating_sub(*at) <= 5 * t.takeover);
        let snubbed = &p.snubbed;
        p.joiners.retain(|j, _| !snubbed.contains_key(j));
        let members = &p.members;
        p.progress
            .retain(|id, g| members.contains(id) || now.saturating_sub(g.last_ack) <= t.takeover);
        let dead: Vec<String> = p
            .members
            .iter()
            .filter(|m| {
                !matches!(p.progress.get(*m), Some(g) if now.saturating_sub(g.last_ack) <= t.takeover)
            })
            .cloned()
            .collect();
        let join = !p.joiners.is_empty() && now.saturating_sub(p.last_change_end) >= t.heartbeat;
        if !dead.is_empty() || join {
            let mut targets: BTreeSet<String> = p
                .members
                .iter()
                .filter(|m| !dead.contains(m))
                .cloned()
                .collect();
            targets.extend(p.joiners.keys().cloned());
            if !dead.is_empty() {
                tracing::warn!(node = %self.id, removed = ?dead, "backups stopped acknowledging; removing them");
            }
            self.start_view_change(now, targets, out);
            return;
        }
        if !matches!(p.last_hb, Some(at) if now.saturating_sub(at) < t.heartbeat) {
            self.heartbeat(now, out);
        }
    }

    fn tick_candidate(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let t = self.t;
        let seen = self.seen_view;
        let old_primary = self.owner(seen).map(str::to_owned);
        let others: Vec<String> = self.others().cloned().collect();
        let State::Candidate(c) = &mut self.state else {
            return;
        };
        if !matches!(c.last_probe, Some(at) if now.saturating_sub(at) < t.heartbeat) {
            c.last_probe = Some(now);
            for n in &others {
                out.send(
                    n.clone(),
                    Msg::Probe {
                        view: seen,
                        nonce: c.nonce,
                    },
                );
            }
        }
        if let Some(higher) = c
            .answers
            .values()
            .map(|a| a.view)
            .filter(|v| *v > seen)
            .max()
        {
            self.adopt_view(higher, out);
            return;
        }
        if c.bootstrap {
            if others.iter().all(|n| c.answers.contains_key(n)) {
                tracing::info!(node = %self.id, "every node is fresh; bootstrapping view 1");
                let targets = others.into_iter().collect();
                self.become_primary(now, targets, out);
            }
            return;
        }
        let expected = others.iter().filter(|n| Some(*n) != old_primary.as_ref());
        let all_in = expected.clone().all(|n| c.answers.contains_key(n));
        if !all_in && now < c.started + t.round {
            return;
        }
        let answers = std::mem::take(&mut c.answers);
        let me = self.id.clone();
        let my_rank = self.takeover_rank();
        if answers
            .values()
            .any(|a| a.members.as_ref().is_some_and(|m| !m.contains(&me)))
        {
            tracing::info!(node = %self.id, "a peer's view excludes this node; recovering");
            self.state = State::Recovering;
            return;
        }
        let better_candidate = answers.iter().any(|(n, a)| {
            a.candidate && {
                let primary = old_primary.as_deref().unwrap_or_default();
                let r = self
                    .view_members
                    .iter()
                    .filter(|m| m.as_str() != primary)
                    .position(|m| m == n);
                matches!((r, my_rank), (Some(r), Some(mine)) if r < mine)
            }
        });
        if answers.values().any(|a| a.primary_alive) || better_candidate {
            tracing::info!(node = %self.id, "primary alive or better candidate; standing back");
            self.state = State::Backup;
            self.last_heartbeat = now;
            return;
        }
        let targets = answers.keys().cloned().collect();
        self.become_primary(now, targets, out);
    }

    // ---- peer messages --------------------------------------------------------------------

    fn on_peer(&mut self, now: Millis, from: String, msg: Msg, out: &mut Outbox<Msg, Persist>) {
        let view = msg.view();
        let fences = matches!(
            msg,
            Msg::Heartbeat { .. } | Msg::Append { .. } | Msg::NewView { .. }
        );
        if view < self.seen_view && fences {
            out.send(
                from,
                Msg::Reject {
                    view: self.seen_view,
                },
            );
            return;
        }
        if view > self.seen_view && !matches!(msg, Msg::NewView { .. }) {
            self.adopt_view(view, out);
        }
        match msg {
            Msg::Heartbeat {
                members,
                commit,
                round,
                ..
            } => {
                self.last_heartbeat = now;
                if matches!(self.state, State::Candidate(ref c) if !c.bootstrap) {
                    self.state = if self.installed_view == view {
                        State::Backup
                    } else {
                        State::Recovering
                    };
                }
                if matches!(self.state, State::Backup) {
                    // Not listed: the primary did not count this node in (it acked the view
                    // late, or was removed while unreachable). It stays a backup that may
                    // not take over; its log is a prefix of the primary's (same view), so the
                    // primary catches it up and lists it again.
                    // A member is confirmed once it also holds everything committed, so
                    // a confirmed backup can always take over without losing a write.
                    // (With async replication backups always trail; being listed is enough.)
                    let caught_up =
                        self.settings.replication == Replication::Async || self.last() >= commit;
                    self.confirmed = members.contains(&self.id) && caught_up;
                    self.tentative = false;
                }
                self.view_members = members;
                let in_sync = matches!(self.state, State::Backup);
                if in_sync {
                    self.apply_to(commit, out);
                }
                out.send(
                    from,
                    Msg::HeartbeatAck {
                        view: self.seen_view,
                        round,
                        in_sync,
                        last: self.last(),
                    },
                );
            }
            Msg::Append {
                from: first,
                entries,
                commit,
                ..
            } => {
                let in_sync = matches!(self.state, State::Backup) && self.installed_view == view;
                if !in_sync {
                    out.send(
                        from,
                        Msg::AppendAck {
                            view: self.seen_view,
                            last: self.last(),
                            gap: false,
                            in_sync,
                        },
                    );
                    return;
                }
                self.last_heartbeat = now;
                let last = self.last();
                if first > last + 1 {
                    out.send(
                        from,
                        Msg::AppendAck {
                            view,
                            last,
                            gap: true,
                            in_sync,
                        },
                    );
                    return;
                }
                let skip = (last + 1 - first) as usize;
                for cmd in entries.into_iter().skip(skip) {
                    let index = self.last() + 1;
                    out.persist(Persist::Append(Entry {
                        index,
                        cmd: cmd.clone(),
                    }));
                    self.entries.push(cmd);
                }
                self.apply_to(commit, out);
                out.send(
                    from,
                    Msg::AppendAck {
                        view,
                        last: self.last(),
                        gap: false,
                        in_sync,
                    },
                );
            }
            Msg::NewView {
                members,
                index,
                state,
                ..
            } => {
                if view == self.seen_view && self.installed_view == view {
                    out.send(from, Msg::NewViewAck { view });
                    return;
                }
                self.step_down(out, "a newer view started");
                tracing::info!(node = %self.id, view, index, "installing the state of a new view");
                out.persist(Persist::Install {
                    index,
                    state: state.clone(),
                });
                out.persist(Persist::View(view));
                self.seen_view = view;
                self.installed_view = view;
                self.kv = state;
                self.base = index;
                self.entries.clear();
                self.applied = index;
                self.commit = index;
                self.state = State::Backup;
                self.confirmed = false;
                self.tentative = members.contains(&self.id);
                self.view_members = members;
                self.last_heartbeat = now;
                out.send(from, Msg::NewViewAck { view });
            }
            Msg::Probe { nonce, .. } => {
                let (primary_alive, members, candidate) = match &self.state {
                    State::Primary(p) => {
                        (p.change.is_none(), Some(self.view_members.clone()), false)
                    }
                    State::Backup => (
                        now.saturating_sub(self.last_heartbeat) < self.t.takeover,
                        self.confirmed.then(|| self.view_members.clone()),
                        false,
                    ),
                    State::Candidate(c) => (false, None, !c.bootstrap),
                    State::Recovering => (false, None, false),
                };
                out.send(
                    from,
                    Msg::ProbeReply {
                        view: self.seen_view,
                        nonce,
                        primary_alive,
                        members,
                        candidate,
                    },
                );
            }
            Msg::ProbeReply {
                nonce,
                primary_alive,
                members,
                candidate,
                ..
            } => {
                if let State::Candidate(c) = &mut self.state {
                    if c.nonce == nonce {
                        c.answers.insert(
                            from,
                            ProbeAnswer {
                                view,
                                primary_alive,
                                members,
                                candidate,
                            },
                        );
                    }
                }
            }
            Msg::HeartbeatAck {
                round,
                in_sync,
                last,
                ..
            } => {
                if view != self.seen_view {
                    return;
                }
                let base = self.base;
                if let State::Primary(p) = &mut self.state {
                    if !in_sync {
                        p.joiners.insert(from, now);
                    } else if let Some(g) = p.progress.get_mut(&from) {
                        g.last_ack = now;
                        g.acked_round = g.acked_round.max(round);
                    } else if p.change.is_none() {
                        p.add_learner(from, last, base, now);
                    }
                    self.renew_lease();
                }
            }
            Msg::AppendAck {
                last, gap, in_sync, ..
            } => {
                if view != self.seen_view {
                    return;
                }
                let base = self.base;
                if let State::Primary(p) = &mut self.state {
                    if !in_sync {
                        p.joiners.insert(from, now);
                    } else if let Some(g) = p.progress.get_mut(&from) {
                        g.last_ack = now;
                        if last > g.matched {
                            g.matched = last;
                            g.last_progress = now;
                        }
                        if gap {
                            g.sent = g.matched;
                        }
                    } else if p.change.is_none() {
                        p.add_learner(from, last, base, now);
                    }
                }
            }
            Msg::NewViewAck { .. } => {
                if let State::Primary(p) = &mut self.state {
                    if let Some(c) = &mut p.change {
                        if c.view == view && c.targets.contains(&from) {
                            c.acked.insert(from);
                        }
                    }
                }
            }
            Msg::Reject { .. } => {}
        }
    }

    fn flush_primary(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let last = self.last();
        let sync =
            self.settings.replication == Replication::Sync && !self.bugs.ack_before_replicate;
        let (view, commit0, base) = (self.seen_view, self.commit, self.base);
        let State::Primary(p) = &mut self.state else {
            return;
        };
        if p.change.is_some() {
            self.check_change_done(now, out);
            return;
        }
        // What every member has; the commit point in sync mode, and the bar a learner must
        // reach to become a member in either mode.
        let members_have = p
            .members
            .iter()
            .filter_map(|m| p.progress.get(m))
            .map(|g| g.matched)
            .fold(last, u64::min);
        let commit = if sync { members_have } else { last };
        let mut promoted = false;
        for (m, g) in p.progress.iter_mut() {
            // Promote a learner once it is within one append of the log's end: it catches up
            // within a round trip (sync commits wait for it from now on), and it counts as a
            // confirmed backup only once it holds everything committed.
            if !p.members.contains(m) && g.matched + MAX_APPEND as u64 >= last {
                tracing::info!(node = %self.id, view, backup = %m, "caught-up backup joins the view");
                p.members.push(m.clone());
                promoted = true;
            }
            while g.sent < last {
                let from = g.sent + 1;
                let upto = last.min(g.sent + MAX_APPEND as u64);
                let entries =
                    self.entries[(from - base - 1) as usize..(upto - base) as usize].to_vec();
                out.send(
                    m.clone(),
                    Msg::Append {
                        view,
                        from,
                        entries,
                        commit: commit.max(commit0),
                    },
                );
                g.sent = upto;
            }
        }
        if promoted {
            let nodes = &self.nodes;
            p.members.sort_by_key(|m| nodes.iter().position(|n| n == m));
            let mut view_members = vec![self.id.clone()];
            view_members.extend(p.members.iter().cloned());
            self.view_members = view_members;
            self.heartbeat(now, out);
        }
        if commit > commit0 {
            self.apply_to(commit, out);
        }
    }
}

fn fmt_value(v: Option<i64>) -> String {
    v.map_or_else(|| "null".to_owned(), |v| v.to_string())
}

impl Core for PbCore {
    type Msg = Msg;
    type Persist = Persist;

    fn step(&mut self, now: Millis, input: Input<Msg>, out: &mut Outbox<Msg, Persist>) {
        match input {
            Input::Client { token, request } => self.on_client(now, token, request, out),
            Input::Peer { from, msg } => {
                if from != self.id && self.nodes.contains(&from) {
                    self.on_peer(now, from, msg, out);
                }
            }
            Input::Tick => self.on_tick(now, out),
        }
    }

    fn flush(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        self.flush_primary(now, out);
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
                PbCore::new(
                    id,
                    nodes.clone(),
                    Settings::default(),
                    &[],
                    Recovered::default(),
                )
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
            let owner = cores.iter().find(|c| c.id == owners[0]).unwrap();
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
