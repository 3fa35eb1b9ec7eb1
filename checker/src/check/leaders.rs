//! Election safety as the nodes themselves report it: at most one leader (primary) per term
//! (view), Raft's Figure 3 property. Read from the observer's role changes in `events.jsonl`,
//! so a split brain is named even when no client operation happened to show it.

use std::collections::BTreeMap;

use faultline_protocol::Role;
use serde::Serialize;

use crate::history::{Event, EventKind};

/// Two or more nodes reported themselves leader in one term.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TwoLeaders {
    pub term: u64,
    /// Each node that claimed the term, with when the observer first saw it do so.
    pub leaders: Vec<LeaderClaim>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaderClaim {
    pub node: String,
    /// Milliseconds since run start.
    pub first_seen_ms: f64,
}

/// Every term that more than one node claimed, in term order. The observer polls status, so
/// a second leader that lived shorter than a poll interval can be missed: an empty answer
/// means none was seen, not that none existed.
pub fn two_leaders(events: &[Event]) -> Vec<TwoLeaders> {
    let mut claims: BTreeMap<u64, Vec<LeaderClaim>> = BTreeMap::new();
    for e in events {
        let EventKind::Role {
            node, role, term, ..
        } = &e.kind
        else {
            continue;
        };
        if *role != Role::Leader {
            continue;
        }
        let seen = claims.entry(*term).or_default();
        if !seen.iter().any(|c| &c.node == node) {
            seen.push(LeaderClaim {
                node: node.clone(),
                first_seen_ms: e.t as f64 / 1e6,
            });
        }
    }
    claims
        .into_iter()
        .filter(|(_, l)| l.len() > 1)
        .map(|(term, leaders)| TwoLeaders { term, leaders })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(t_ms: u64, node: &str, role: Role, term: u64) -> Event {
        Event {
            t: t_ms * 1_000_000,
            kind: EventKind::Role {
                node: node.into(),
                role,
                term,
                leader: None,
            },
        }
    }

    #[test]
    fn one_leader_per_term_is_safe_even_across_restarts_and_stale_leaders() {
        let events = [
            role(0, "n1", Role::Leader, 1),
            role(5, "n2", Role::Follower, 1),
            // n1 paused; n2 wins term 2 while n1 still claims term 1: different terms.
            role(300, "n2", Role::Leader, 2),
            role(310, "n1", Role::Leader, 1),
            role(320, "n1", Role::Follower, 2),
            // n2 restarts, reports leader of term 2 again: the same node, no violation.
            role(900, "n2", Role::Recovering, 2),
            role(950, "n2", Role::Leader, 2),
            role(960, "n3", Role::Candidate, 2),
        ];
        assert!(two_leaders(&events).is_empty());
    }

    #[test]
    fn two_nodes_leading_one_term_are_named_with_when_they_were_seen() {
        let events = [
            role(0, "n1", Role::Leader, 1),
            role(400, "n2", Role::Leader, 2),
            role(420, "n3", Role::Follower, 2),
            role(450, "n1", Role::Leader, 2),
            role(460, "n3", Role::Leader, 2),
            role(900, "n1", Role::Leader, 3),
        ];
        let v = two_leaders(&events);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].term, 2);
        let names: Vec<(&str, f64)> = v[0]
            .leaders
            .iter()
            .map(|c| (c.node.as_str(), c.first_seen_ms))
            .collect();
        assert_eq!(names, vec![("n2", 400.0), ("n1", 450.0), ("n3", 460.0)]);
    }
}
