//! Handling of peer messages, on every role.

use super::*;

impl PbCore {
    pub(super) fn on_peer(
        &mut self,
        now: Millis,
        from: String,
        msg: Msg,
        out: &mut Outbox<Msg, Persist>,
    ) {
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
                if matches!(self.state, State::Candidate(ref c) if !c.bootstrap)
                    && self.installed_view == view
                {
                    // The primary is alive after all.
                    self.state = State::Backup;
                }
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
                        now.saturating_sub(self.last_heartbeat) < self.timing.takeover,
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
}
