//! A backup's side of failover: when it may take over, and the probe round before it does.

use std::collections::BTreeMap;

use faultline_replica::dispatch::Handlers;
use faultline_replica::{Millis, Outbox};

use super::{Candidate, PbCore, State};
use crate::msg::{Msg, Persist, Probe};

impl PbCore {
    pub(super) fn become_candidate(&mut self, now: Millis, bootstrap: bool) {
        self.nonce += 1;
        tracing::info!(node = %self.cluster.id, view = self.seen_view, bootstrap, "starting takeover");
        self.state = State::Candidate(Candidate {
            nonce: self.nonce,
            started: now,
            last_probe: None,
            answers: BTreeMap::new(),
            bootstrap,
        });
    }

    /// This backup's position in the takeover order, if it may take over at all: it must have
    /// installed its latest view's state and be listed in that view.
    pub(super) fn takeover_rank(&self) -> Option<usize> {
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
            .position(|m| *m == self.cluster.id)
    }

    pub(super) fn tick_candidate(&mut self, now: Millis, out: &mut Outbox<Msg, Persist>) {
        let timing = self.timing;
        let seen = self.seen_view;
        let old_primary = self.owner(seen).map(str::to_owned);
        let others = self.peers();
        let State::Candidate(c) = &mut self.state else {
            return;
        };
        if !matches!(c.last_probe, Some(at) if now.saturating_sub(at) < timing.heartbeat) {
            c.last_probe = Some(now);
            for n in &others {
                let probe = Probe {
                    view: seen,
                    nonce: c.nonce,
                };
                out.send(n.clone(), Msg::Probe(probe));
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
                tracing::info!(node = %self.cluster.id, "every node is fresh; bootstrapping view 1");
                let targets = others.into_iter().collect();
                self.become_primary(now, targets, out);
            }
            return;
        }
        let expected = others.iter().filter(|n| Some(*n) != old_primary.as_ref());
        let all_in = expected.clone().all(|n| c.answers.contains_key(n));
        if !all_in && now < c.started + timing.round {
            return;
        }
        let answers = std::mem::take(&mut c.answers);
        let me = self.cluster.id.clone();
        let my_rank = self.takeover_rank();
        if answers
            .values()
            .any(|a| a.members.as_ref().is_some_and(|m| !m.contains(&me)))
        {
            tracing::info!(node = %self.cluster.id, "a peer's view excludes this node; recovering");
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
            tracing::info!(node = %self.cluster.id, "primary alive or better candidate; standing back");
            self.state = State::Backup;
            self.last_heartbeat = now;
            return;
        }
        let targets = answers.keys().cloned().collect();
        self.become_primary(now, targets, out);
    }
}
