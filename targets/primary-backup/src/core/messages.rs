//! Handling of peer messages, on every role.

use faultline_replica::{Millis, Outbox};

use super::{PbCore, Progress, State};
use crate::msg::{
    Append, AppendAck, Entry, Heartbeat, HeartbeatAck, Msg, NewView, NewViewAck, Persist, Probe,
    ProbeReply, Reject,
};
use crate::settings::Replication;

impl PbCore {
    /// A peer message: fenced by view, then handled by kind.
    pub(super) fn on_message(
        &mut self,
        now: Millis,
        from: String,
        msg: Msg,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let view = msg.view();
        let fences = matches!(msg, Msg::Heartbeat(_) | Msg::Append(_) | Msg::NewView(_));
        if view < self.seen_view && fences {
            let reject = Reject {
                view: self.seen_view,
            };
            out.send(from, Msg::Reject(reject));
            return;
        }
        if view > self.seen_view && !matches!(msg, Msg::NewView(_)) {
            self.adopt_view(view, out);
        }
        match msg {
            Msg::Heartbeat(heartbeat) => self.on_heartbeat(now, from, heartbeat, out),
            Msg::Append(append) => self.on_append(now, from, append, out),
            Msg::NewView(new_view) => self.on_new_view(now, from, new_view, out),
            Msg::Probe(probe) => self.on_probe(now, from, probe, out),
            Msg::ProbeReply(reply) => {
                if let State::Candidate(c) = &mut self.state {
                    if c.nonce == reply.nonce {
                        c.answers.insert(from, reply);
                    }
                }
            }
            Msg::HeartbeatAck(ack) => {
                if let Some(progress) =
                    self.acked_progress(now, from, ack.view, ack.in_sync, ack.last)
                {
                    progress.acked_round = progress.acked_round.max(ack.round);
                }
                if ack.view == self.seen_view {
                    self.renew_lease();
                }
            }
            Msg::AppendAck(ack) => {
                if let Some(progress) =
                    self.acked_progress(now, from, ack.view, ack.in_sync, ack.last)
                {
                    if ack.last > progress.matched {
                        progress.matched = ack.last;
                        progress.last_progress = now;
                    }
                    if ack.gap {
                        progress.sent = progress.matched;
                    }
                }
            }
            Msg::NewViewAck(NewViewAck { view }) => {
                if let State::Primary(p) = &mut self.state {
                    if let Some(c) = &mut p.change {
                        if c.view == view && c.targets.contains(&from) {
                            c.acked.insert(from);
                        }
                    }
                }
            }
            Msg::Reject(_) => {}
        }
    }

    fn on_heartbeat(
        &mut self,
        now: Millis,
        from: String,
        heartbeat: Heartbeat,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let Heartbeat {
            view,
            members,
            commit,
            round,
            ..
        } = heartbeat;
        self.last_heartbeat = now;
        if matches!(self.state, State::Candidate(ref c) if !c.bootstrap) {
            self.state = if self.installed_view == view {
                State::Backup
            } else {
                State::Recovering
            };
        }
        if matches!(self.state, State::Backup) {
            // Not listed: the primary did not count this node in (it acked the view late, or
            // was removed while unreachable). It stays a backup that may not take over; its
            // log is a prefix of the primary's (same view), so the primary catches it up and
            // lists it again.
            // A member is confirmed once it also holds everything committed, so a confirmed
            // backup can always take over without losing a write.
            // (With async replication backups always trail; being listed is enough.)
            let caught_up =
                self.settings.replication == Replication::Async || self.last() >= commit;
            self.confirmed = members.contains(&self.cluster.id) && caught_up;
            self.tentative = false;
        }
        self.view_members = members;
        let in_sync = matches!(self.state, State::Backup);
        if in_sync {
            self.apply_to(commit, out);
        }
        let ack = HeartbeatAck {
            view: self.seen_view,
            round,
            in_sync,
            last: self.last(),
        };
        out.send(from, Msg::HeartbeatAck(ack));
    }

    fn on_append(
        &mut self,
        now: Millis,
        from: String,
        append: Append,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let Append {
            view,
            first,
            entries,
            commit,
        } = append;
        if matches!(self.state, State::Candidate(ref c) if !c.bootstrap)
            && self.installed_view == view
        {
            // The primary is alive after all.
            self.state = State::Backup;
        }
        let in_sync = matches!(self.state, State::Backup) && self.installed_view == view;
        let ack = |view: u64, last: u64, gap: bool| {
            Msg::AppendAck(AppendAck {
                view,
                last,
                gap,
                in_sync,
            })
        };
        if !in_sync {
            out.send(from, ack(self.seen_view, self.last(), false));
            return;
        }
        self.last_heartbeat = now;
        let last = self.last();
        if first > last + 1 {
            out.send(from, ack(view, last, true));
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
        out.send(from, ack(view, self.last(), false));
    }

    fn on_new_view(
        &mut self,
        now: Millis,
        from: String,
        new_view: NewView,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let NewView {
            view,
            members,
            index,
            state,
        } = new_view;
        if view == self.seen_view && self.installed_view == view {
            out.send(from, Msg::NewViewAck(NewViewAck { view }));
            return;
        }
        self.step_down(out, "a newer view started");
        tracing::info!(node = %self.cluster.id, view, index, "installing the state of a new view");
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
        self.tentative = members.contains(&self.cluster.id);
        self.view_members = members;
        self.last_heartbeat = now;
        out.send(from, Msg::NewViewAck(NewViewAck { view }));
    }

    fn on_probe(
        &mut self,
        now: Millis,
        from: String,
        probe: Probe,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let (primary_alive, members, candidate) = match &self.state {
            State::Primary(p) => (p.change.is_none(), Some(self.view_members.clone()), false),
            State::Backup => (
                now.saturating_sub(self.last_heartbeat) < self.timing.takeover_timeout,
                self.confirmed.then(|| self.view_members.clone()),
                false,
            ),
            State::Candidate(c) => (false, None, !c.bootstrap),
            State::Recovering => (false, None, false),
        };
        let reply = ProbeReply {
            view: self.seen_view,
            nonce: probe.nonce,
            primary_alive,
            members,
            candidate,
        };
        out.send(from, Msg::ProbeReply(reply));
    }

    /// An ack of `view` at the primary: a node not in sync is to be invited again; an unknown
    /// one that holds this view's log (and no view change runs) starts as a learner; a
    /// tracked one's progress is returned, its last ack now.
    fn acked_progress(
        &mut self,
        now: Millis,
        from: String,
        view: u64,
        in_sync: bool,
        last: u64,
    ) -> Option<&mut Progress> {
        if view != self.seen_view {
            return None;
        }
        let base = self.base;
        let State::Primary(p) = &mut self.state else {
            return None;
        };
        if !in_sync {
            p.joiners.insert(from, now);
            return None;
        }
        if !p.progress.contains_key(&from) {
            if p.change.is_none() {
                p.add_learner(from, last, base, now);
            }
            return None;
        }
        let progress = p.progress.get_mut(&from)?;
        progress.last_ack = now;
        Some(progress)
    }
}
