//! The timers of a leader-based core (Raft, Multi-Paxos) in milliseconds, built from its
//! settings' durations with the floors that keep them usable (nothing zero, the election
//! timeout range never empty).

use std::time::Duration;

use crate::driver::Millis;

/// A duration in whole milliseconds, as the cores count time.
pub fn ms(d: Duration) -> Millis {
    d.as_millis() as Millis
}

/// A leader-based core's timers, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Interval of the leader's heartbeats (at least 1).
    pub heartbeat: Millis,
    /// Shortest election (takeover) timeout (at least 2).
    pub election_timeout_min: Millis,
    /// Longest election (takeover) timeout (at least the shortest).
    pub election_timeout_max: Millis,
    /// Clock drift a lease allows for.
    pub clock_drift: Millis,
    /// How long a client operation may wait for its outcome (at least 1).
    pub request_timeout: Millis,
}

impl Timing {
    /// The timers for these settings: `election_timeout` is `[min, max]`.
    pub fn new(
        heartbeat: Duration,
        election_timeout: [Duration; 2],
        clock_drift: Duration,
        request_timeout: Duration,
    ) -> Self {
        let election_timeout_min = ms(election_timeout[0]).max(2);
        Timing {
            heartbeat: ms(heartbeat).max(1),
            election_timeout_min,
            election_timeout_max: ms(election_timeout[1]).max(election_timeout_min),
            clock_drift: ms(clock_drift),
            request_timeout: ms(request_timeout).max(1),
        }
    }

    /// How much a randomized election timeout may add to the shortest one.
    pub fn election_span(&self) -> Millis {
        self.election_timeout_max - self.election_timeout_min
    }

    /// CheckQuorum: a leader in office since `since` heard from no quorum (itself and the
    /// peers whose last acknowledgements are `acks`) within the longest election timeout.
    pub fn quorum_lost(
        &self,
        now: Millis,
        since: Millis,
        quorum: usize,
        acks: impl Iterator<Item = Millis>,
    ) -> bool {
        if now < since + self.election_timeout_max {
            return false;
        }
        let mut acks: Vec<Millis> = acks.collect();
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let heard = if quorum <= 1 { now } else { acks[quorum - 2] };
        now.saturating_sub(heard) >= self.election_timeout_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_keep_every_timer_usable() {
        let zero = Duration::ZERO;
        let t = Timing::new(zero, [Duration::from_millis(5), zero], zero, zero);
        assert_eq!((t.heartbeat, t.request_timeout, t.clock_drift), (1, 1, 0));
        assert_eq!((t.election_timeout_min, t.election_timeout_max), (5, 5));
        assert_eq!(t.election_span(), 0);
    }

    #[test]
    fn a_quorum_is_lost_once_too_few_acknowledged_within_the_timeout() {
        let ms = Duration::from_millis;
        let t = Timing::new(ms(10), [ms(100), ms(200)], ms(0), ms(1000));
        let acks = || [150, 390].into_iter();
        assert!(!t.quorum_lost(399, 200, 3, acks()), "in office too briefly");
        assert!(!t.quorum_lost(400, 0, 2, acks()), "one peer heard lately");
        assert!(
            t.quorum_lost(400, 0, 3, acks()),
            "the second peer is silent"
        );
        assert!(!t.quorum_lost(400, 0, 1, std::iter::empty()), "alone");
    }
}
