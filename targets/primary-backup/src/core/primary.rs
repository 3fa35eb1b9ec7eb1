//! The primary's side: starting views, heartbeats and leases, client requests, shipping
//! entries to backups and committing them.

use std::collections::{BTreeSet, VecDeque};

use faultline_protocol::{ErrorCode, Op, Request, Response};
use faultline_replica::dispatch::{ClientHandler, Handlers};
use faultline_replica::{ClientToken, Command, Millis, Outbox};

use super::{PbCore, Pending, Primary, Progress, State, ViewChange, MAX_APPEND};
use crate::msg::{Append, Entry, Heartbeat, Msg, NewView, Persist};
use crate::settings::Replication;

impl Primary {
    /// Start catching up a node that holds a prefix of this view's log (it installed this
    /// view's state) but is not a member: it gets appends, and joins the members once it has
    /// everything committed. A node too far behind (compacted away) is re-invited instead.
    pub(super) fn add_learner(&mut self, id: String, last: u64, base: u64, now: Millis) {
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

impl PbCore {
    /// Become primary of a new view inviting `targets` as backups.
    pub(super) fn become_primary(
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
    pub(super) fn start_view_change(
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
        let mut members = vec![self.cluster.id.clone()];
        members.extend(targets.iter().cloned());
        tracing::info!(node = %self.cluster.id, view, index, targets = ?targets, "starting view");
        for t in &targets {
            let new_view = NewView {
                view,
                members: members.clone(),
                index,
                state: state.clone(),
            };
            out.send(t.clone(), Msg::NewView(new_view));
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
    pub(super) fn check_change_done(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let State::Primary(p) = &mut self.state else {
            return;
        };
        let Some(change) = &p.change else { return };
        if change.acked.len() < change.targets.len() && now < change.started + self.timing.round {
            return;
        }
        let Some(change) = p.change.take() else {
            return;
        };
        let members: Vec<String> = self
            .cluster
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
        p.lease_until = change.started + self.timing.lease.saturating_sub(self.timing.clock_drift);
        p.last_heartbeat_sent = None;
        let mut view_members = vec![self.cluster.id.clone()];
        view_members.extend(p.members.iter().cloned());
        tracing::info!(node = %self.cluster.id, view = change.view, members = ?view_members, "view established");
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

    pub(super) fn heartbeat(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let (commit, last) = (self.commit, self.last());
        let State::Primary(p) = &mut self.state else {
            return;
        };
        p.round += 1;
        p.rounds.push_back((p.round, now));
        while p.rounds.len() > 64 {
            p.rounds.pop_front();
        }
        p.last_heartbeat_sent = Some(now);
        if p.members.is_empty() {
            p.lease_until = p
                .lease_until
                .max(now + self.timing.lease.saturating_sub(self.timing.clock_drift));
        }
        let msg = Msg::Heartbeat(Heartbeat {
            view: self.seen_view,
            members: self.view_members.clone(),
            commit,
            last,
            round: p.round,
        });
        for n in self.peers() {
            out.send(n, msg.clone());
        }
    }

    pub(super) fn renew_lease(&mut self) {
        let State::Primary(p) = &mut self.state else {
            return;
        };
        let Some(round) = p
            .members
            .iter()
            .filter_map(|m| p.progress.get(m))
            .map(|progress| progress.acked_round)
            .min()
        else {
            return;
        };
        if let Some(&(_, sent)) = p.rounds.iter().find(|(r, _)| *r == round) {
            p.lease_until = p
                .lease_until
                .max(sent + self.timing.lease.saturating_sub(self.timing.clock_drift));
        }
    }

    pub(super) fn tick_primary(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let timing = self.timing;
        let State::Primary(p) = &mut self.state else {
            return;
        };
        while p
            .pending
            .front()
            .is_some_and(|w| now >= w.at + timing.replication_timeout)
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
            .is_some_and(|(_, _, at)| now >= at + timing.replication_timeout)
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
        for progress in p.progress.values_mut() {
            if progress.matched < progress.sent
                && now.saturating_sub(progress.last_progress) > 2 * timing.heartbeat
            {
                progress.sent = progress.matched;
                progress.last_progress = now;
            }
        }
        p.joiners
            .retain(|_, at| now.saturating_sub(*at) <= timing.takeover_timeout);
        p.snubbed
            .retain(|_, at| now.saturating_sub(*at) <= 5 * timing.takeover_timeout);
        let snubbed = &p.snubbed;
        p.joiners.retain(|j, _| !snubbed.contains_key(j));
        let members = &p.members;
        p.progress.retain(|id, progress| {
            members.contains(id) || now.saturating_sub(progress.last_ack) <= timing.takeover_timeout
        });
        let dead: Vec<String> = p
            .members
            .iter()
            .filter(|m| {
                !matches!(p.progress.get(*m), Some(progress) if now.saturating_sub(progress.last_ack) <= timing.takeover_timeout)
            })
            .cloned()
            .collect();
        let join =
            !p.joiners.is_empty() && now.saturating_sub(p.last_change_end) >= timing.heartbeat;
        if !dead.is_empty() || join {
            let mut targets: BTreeSet<String> = p
                .members
                .iter()
                .filter(|m| !dead.contains(m))
                .cloned()
                .collect();
            targets.extend(p.joiners.keys().cloned());
            if !dead.is_empty() {
                tracing::warn!(node = %self.cluster.id, removed = ?dead, "backups stopped acknowledging; removing them");
            }
            self.start_view_change(now, targets, out);
            return;
        }
        if !matches!(p.last_heartbeat_sent, Some(at) if now.saturating_sub(at) < timing.heartbeat) {
            self.heartbeat(now, out);
        }
        self.flush_primary(now, out, true);
    }

    /// Advance the commit point and promote caught-up learners; with `ship`, also send every
    /// backup the entries it has not been sent. Sync replication ships at the end of every loop
    /// iteration; async replication ships on ticks, in the background of client replies.
    pub(super) fn flush_primary(
        &mut self,
        now: Millis,
        out: &mut Outbox<Msg, Persist>,
        ship: bool,
    ) {
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
        // What every member has: the commit point in sync mode.
        let members_have = p
            .members
            .iter()
            .filter_map(|m| p.progress.get(m))
            .map(|progress| progress.matched)
            .fold(last, u64::min);
        let commit = if sync { members_have } else { last };
        let mut promoted = false;
        for (m, progress) in p.progress.iter_mut() {
            // Promote a learner once it is within one append of the log's end: it catches up
            // within a round trip (sync commits wait for it from now on), and it counts as a
            // confirmed backup only once it holds everything committed.
            if !p.members.contains(m) && progress.matched + MAX_APPEND as u64 >= last {
                tracing::info!(node = %self.cluster.id, view, backup = %m, "caught-up backup joins the view");
                p.members.push(m.clone());
                promoted = true;
            }
            while ship && progress.sent < last {
                let from = progress.sent + 1;
                let upto = last.min(progress.sent + MAX_APPEND as u64);
                let entries =
                    self.entries[(from - base - 1) as usize..(upto - base) as usize].to_vec();
                let append = Append {
                    view,
                    first: from,
                    entries,
                    commit: commit.max(commit0),
                };
                out.send(m.clone(), Msg::Append(append));
                progress.sent = upto;
            }
        }
        if promoted {
            let nodes = &self.cluster.nodes;
            p.members.sort_by_key(|m| nodes.iter().position(|n| n == m));
            let mut view_members = vec![self.cluster.id.clone()];
            view_members.extend(p.members.iter().cloned());
            self.view_members = view_members;
            self.heartbeat(now, out);
        }
        if commit > commit0 {
            self.apply_to(commit, out);
        }
    }
}

impl ClientHandler for PbCore {
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
}
