//! Log replication (§5.3) with batching, pipelining and fast backtracking, snapshots for
//! followers that fell behind compaction (§7), and the commit rule with the current-term
//! restriction (§5.4.2).

use faultline_replica::{Millis, Outbox};

use super::{Leader, Mode, RaftCore, State, MAX_INFLIGHT, ROUNDS_KEPT};
use crate::msg::{Append, AppendReply, InstallSnapshot, Msg, Persist};

impl RaftCore {
    /// Leader: send every follower what it is missing. `heartbeat`: also send an (empty)
    /// Append to followers that would otherwise get nothing, starting a new round.
    pub(crate) fn send_appends(
        &mut self,
        now: Millis,
        out: &mut Outbox<Msg, Persist>,
        heartbeat: bool,
    ) {
        let (term, commit, last, snap_index, max_batch, heartbeat_interval) = (
            self.hard.term,
            self.commit,
            self.last_index(),
            self.snap_index,
            self.settings.max_batch,
            self.timing.heartbeat,
        );
        let State::Leader(l) = &mut self.state else {
            return;
        };
        let heartbeat = heartbeat || l.need_round;
        if heartbeat {
            l.round += 1;
            l.round_starts.push_back((l.round, now));
            while l.round_starts.len() > ROUNDS_KEPT {
                l.round_starts.pop_front();
            }
            l.need_round = false;
            l.last_heartbeat = now;
        }
        let round = l.round;
        let mut sends: Vec<(String, u64, u64)> = Vec::new(); // (peer, from index, count)
        let mut snapshots: Vec<String> = Vec::new();
        for (peer, pr) in l.progress.iter_mut() {
            if pr.next <= snap_index {
                // Compacted away: ship the applied state instead (small: a KV map).
                if pr.probe_sent.is_none_or(|t| now >= t + heartbeat_interval) {
                    pr.probe_sent = Some(now);
                    pr.mode = Mode::Probe;
                    pr.inflight.clear();
                    snapshots.push(peer.clone());
                }
                continue;
            }
            match pr.mode {
                Mode::Probe => {
                    let due = pr.probe_sent.is_none_or(|t| now >= t + heartbeat_interval);
                    if due || heartbeat {
                        pr.probe_sent = Some(now);
                        let n = (last + 1 - pr.next).min(max_batch as u64);
                        sends.push((peer.clone(), pr.next, n));
                    }
                }
                Mode::Replicate => {
                    let mut sent = false;
                    while pr.next <= last && pr.inflight.len() < MAX_INFLIGHT {
                        let n = (last + 1 - pr.next).min(max_batch as u64);
                        sends.push((peer.clone(), pr.next, n));
                        pr.next += n;
                        pr.inflight.push_back(pr.next - 1);
                        sent = true;
                    }
                    if heartbeat && !sent {
                        sends.push((peer.clone(), pr.next, 0));
                    }
                }
            }
        }
        for (peer, from, n) in sends {
            let prev_index = from - 1;
            let prev_term = self.term_at(prev_index).unwrap_or(0);
            let lo = (from - snap_index - 1) as usize;
            let entries = self.entries[lo..lo + n as usize].to_vec();
            let append = Append {
                term,
                prev_index,
                prev_term,
                entries,
                commit,
                last,
                round,
            };
            out.send(peer, Msg::Append(append));
        }
        for peer in snapshots {
            let index = self.applied;
            tracing::debug!(node = %self.cluster.id, %peer, index, "sending snapshot");
            let snapshot = InstallSnapshot {
                term,
                index,
                snap_term: self.term_at(index).unwrap_or(self.snap_term),
                state: self.kv.clone(),
                last,
                round,
            };
            out.send(peer, Msg::Snapshot(snapshot));
        }
    }

    /// Leader: advance the commit index to the highest index a quorum holds, if it is of the
    /// current term (§5.4.2), and apply.
    pub(crate) fn advance_commit(&mut self, out: &mut Outbox<Msg, Persist>) {
        let last = self.last_index();
        let State::Leader(l) = &self.state else {
            return;
        };
        let candidate = if self.bugs.commit_without_quorum {
            last
        } else {
            let mut m: Vec<u64> = l.progress.values().map(|p| p.matched).collect();
            m.push(last);
            m.sort_unstable_by(|a, b| b.cmp(a));
            m[self.cluster.quorum - 1]
        };
        if candidate > self.commit && self.term_at(candidate) == Some(self.hard.term) {
            self.commit = candidate;
        }
        self.apply_committed(out);
    }

    pub(super) fn on_append(
        &mut self,
        now: Millis,
        from: String,
        append: Append,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let Append {
            term,
            mut prev_index,
            mut prev_term,
            mut entries,
            commit,
            last: leader_last,
            round,
        } = append;
        let reject = |me: &Self, index: u64, hint_index: u64, hint_term: Option<u64>| {
            Msg::AppendReply(AppendReply {
                term: me.hard.term,
                success: false,
                index,
                hint_index,
                hint_term,
                round,
            })
        };
        if term < self.hard.term {
            out.send(from, reject(self, prev_index, 0, None));
            return;
        }
        self.heard_leader(now, term, &from, out);
        // Entries already folded into the snapshot are committed, hence identical: skip them.
        if prev_index < self.snap_index {
            let skip = (self.snap_index - prev_index) as usize;
            entries.drain(..skip.min(entries.len()));
            prev_index = self.snap_index;
            prev_term = self.snap_term;
        }
        if prev_index > self.last_index() {
            let hint = self.last_index() + 1;
            out.send(from, reject(self, prev_index, hint, None));
            return;
        }
        let have = self.term_at(prev_index).unwrap_or(0);
        if have != prev_term {
            // Fast backtracking: point at the first entry of the conflicting term.
            let mut first = prev_index;
            while first > self.snap_index + 1 && self.term_at(first - 1) == Some(have) {
                first -= 1;
            }
            out.send(from, reject(self, prev_index, first, Some(have)));
            return;
        }
        let matched = prev_index + entries.len() as u64;
        for (i, e) in entries.into_iter().enumerate() {
            let index = prev_index + 1 + i as u64;
            if index <= self.last_index() {
                if self.term_at(index) == Some(e.term) {
                    continue;
                }
                assert!(
                    index > self.commit,
                    "{}: leader {from} of term {term} overwrites committed entry {index}",
                    self.cluster.id
                );
                self.entries
                    .truncate((index - self.snap_index - 1) as usize);
            }
            out.persist(Persist::Append {
                index,
                entry: e.clone(),
            });
            self.entries.push(e);
        }
        self.maybe_become_voter(leader_last, out);
        let new_commit = commit.min(matched);
        if new_commit > self.commit {
            self.commit = new_commit;
            self.apply_committed(out);
        }
        out.send(from, self.append_reply(true, matched, round));
    }

    /// The reply to an Append or snapshot that needs no backtracking hint.
    fn append_reply(&self, success: bool, index: u64, round: u64) -> Msg {
        Msg::AppendReply(AppendReply {
            term: self.hard.term,
            success,
            index,
            hint_index: 0,
            hint_term: None,
            round,
        })
    }

    /// A valid leader of `term` spoke: follow it and restart the election timer.
    fn heard_leader(&mut self, now: Millis, term: u64, from: &str, out: &mut Outbox<Msg, Persist>) {
        if term > self.hard.term
            || !matches!(self.state, State::Follower)
            || self.leader.as_deref() != Some(from)
        {
            self.become_follower(now, term, Some(from.to_owned()), out);
        }
        self.reset_election_timer(now);
        self.vote_blocked_until = self
            .vote_blocked_until
            .max(now + self.timing.election_timeout_min);
    }

    pub(super) fn on_snapshot(
        &mut self,
        now: Millis,
        from: String,
        snapshot: InstallSnapshot,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let InstallSnapshot {
            term,
            index,
            snap_term,
            state,
            last: leader_last,
            round,
        } = snapshot;
        if term < self.hard.term {
            out.send(from, self.append_reply(false, index, round));
            return;
        }
        self.heard_leader(now, term, &from, out);
        if index > self.commit {
            tracing::info!(node = %self.cluster.id, index, "installing snapshot from the leader");
            // Keep the entries after the snapshot if the log matches there (§7).
            let tail = if self.term_at(index) == Some(snap_term) {
                self.entries[(index - self.snap_index) as usize..].to_vec()
            } else {
                Vec::new()
            };
            self.entries = tail;
            self.snap_index = index;
            self.snap_term = snap_term;
            self.kv = state;
            self.commit = index;
            self.applied = index;
            out.persist(Persist::Snapshot {
                index,
                term: snap_term,
                state: self.kv.clone(),
                tail: self.entries.clone(),
            });
            self.maybe_become_voter(leader_last, out);
        }
        out.send(from, self.append_reply(true, index, round));
    }

    pub(super) fn on_append_reply(
        &mut self,
        now: Millis,
        from: String,
        reply: AppendReply,
        out: &mut Outbox<Msg, Persist>,
    ) {
        let AppendReply {
            term,
            success,
            index,
            hint_index,
            hint_term,
            round,
        } = reply;
        if term > self.hard.term {
            self.become_follower(now, term, None, out);
            return;
        }
        if term < self.hard.term {
            return;
        }
        let last = self.last_index();
        // Fast backtracking target, computed before borrowing the leader state.
        let backtrack = match hint_term {
            Some(t) => {
                let mut i = last;
                while i > self.snap_index && self.term_at(i).is_some_and(|x| x > t) {
                    i -= 1;
                }
                if self.term_at(i) == Some(t) {
                    i + 1
                } else {
                    hint_index
                }
            }
            None => hint_index,
        };
        let lease_bug = self.bugs.lease_without_margin;
        let State::Leader(l) = &mut self.state else {
            return;
        };
        let Some(pr) = l.progress.get_mut(&from) else {
            return;
        };
        pr.last_ack = now;
        pr.acked_round = pr.acked_round.max(round);
        if success {
            if index > pr.matched {
                pr.matched = index;
            }
            pr.next = pr.next.max(pr.matched + 1);
            while pr.inflight.front().is_some_and(|&i| i <= index) {
                pr.inflight.pop_front();
            }
            if pr.mode == Mode::Probe {
                pr.mode = Mode::Replicate;
                pr.probe_sent = None;
                pr.inflight.clear();
                pr.next = pr.matched + 1;
            }
        } else if hint_term.is_none() && hint_index <= pr.matched {
            // The follower's log is shorter than what it acknowledged: it lost its tail
            // (restarted with an empty data directory). Resend from where it is now.
            tracing::warn!(node = %self.cluster.id, follower = %from, had = pr.matched, has = hint_index - 1, "follower lost acknowledged entries");
            pr.matched = hint_index.saturating_sub(1);
            pr.next = hint_index.clamp(1, last + 1);
            pr.mode = Mode::Probe;
            pr.probe_sent = None;
            pr.inflight.clear();
        } else if index > pr.matched && (pr.mode == Mode::Replicate || index + 1 == pr.next) {
            // A real rejection (not a stale one): restart from the hint, one probe at a time.
            pr.next = backtrack.clamp(pr.matched + 1, last + 1);
            pr.mode = Mode::Probe;
            pr.probe_sent = None;
            pr.inflight.clear();
        }
        if lease_bug {
            let mut acks: Vec<Millis> = l.progress.values().map(|p| p.last_ack).collect();
            acks.sort_unstable_by(|a, b| b.cmp(a));
            let quorum = self.cluster.quorum;
            if quorum >= 2 {
                l.lease_until = l
                    .lease_until
                    .max(acks[quorum - 2] + self.timing.election_timeout_max);
            }
        } else {
            self.renew_lease();
        }
        self.advance_commit(out);
        self.serve_reads(out);
        if success {
            self.send_appends(now, out, false);
        }
    }

    /// Lease (thesis §6.4.1): a round acknowledged by a quorum proves no other leader can be
    /// elected before `round start + election_timeout[0]` (voters refuse votes that long after
    /// hearing from this leader); minus the clock-drift margin.
    pub(crate) fn renew_lease(&mut self) {
        let quorum = self.cluster.quorum;
        let (election_timeout_min, drift) =
            (self.timing.election_timeout_min, self.timing.clock_drift);
        let State::Leader(l) = &mut self.state else {
            return;
        };
        let round = quorum_round(l, quorum);
        if let Some(&(_, at)) = l.round_starts.iter().find(|(r, _)| *r == round) {
            l.lease_until = l
                .lease_until
                .max((at + election_timeout_min).saturating_sub(drift));
        }
    }
}

/// The highest heartbeat round a quorum (the leader included) has acknowledged.
pub(crate) fn quorum_round(l: &Leader, quorum: usize) -> u64 {
    if quorum <= 1 {
        return l.round;
    }
    let mut r: Vec<u64> = l.progress.values().map(|p| p.acked_round).collect();
    r.sort_unstable_by(|a, b| b.cmp(a));
    r[quorum - 2]
}
