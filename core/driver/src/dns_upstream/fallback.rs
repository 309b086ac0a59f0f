//! Which upstream to ask first: the first one in the configured order that has not failed
//! lately. A failed upstream sits out [`Fallback::rest`] and is then tried again, so the
//! preferred one comes back by itself once it works.

use std::time::{Duration, Instant};

/// How long a failed upstream is skipped. Long enough that a dead first upstream does not
/// cost every question a timeout; short enough that a restarted one is back within a minute.
pub const DEFAULT_REST: Duration = Duration::from_secs(30);

/// Fallback state over `n` upstreams (indices into the configured list).
#[derive(Debug, Clone)]
pub struct Fallback {
    down_until: Vec<Option<Instant>>,
    rest: Duration,
}

impl Fallback {
    pub fn new(n: usize, rest: Duration) -> Self {
        Fallback {
            down_until: vec![None; n],
            rest,
        }
    }

    /// The order to try the upstreams in at `now`: the ones not resting, in configured order,
    /// then the resting ones (soonest back first), so a question is never refused for want of
    /// an upstream.
    pub fn order(&self, now: Instant) -> Vec<usize> {
        let mut up: Vec<usize> = Vec::with_capacity(self.down_until.len());
        let mut down: Vec<(Instant, usize)> = Vec::new();
        for (i, d) in self.down_until.iter().enumerate() {
            match d {
                Some(until) if *until > now => down.push((*until, i)),
                _ => up.push(i),
            }
        }
        down.sort();
        up.extend(down.into_iter().map(|(_, i)| i));
        up
    }

    /// Upstream `i` failed (connect, handshake, timeout): skip it for a while.
    pub fn failed(&mut self, i: usize, now: Instant) {
        if let Some(d) = self.down_until.get_mut(i) {
            *d = Some(now + self.rest);
        }
    }

    /// Upstream `i` answered: it is up.
    pub fn answered(&mut self, i: usize) {
        if let Some(d) = self.down_until.get_mut(i) {
            *d = None;
        }
    }

    /// Whether upstream `i` is resting at `now`.
    pub fn is_down(&self, i: usize, now: Instant) -> bool {
        matches!(self.down_until.get(i), Some(Some(until)) if *until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_order_while_all_are_up() {
        let f = Fallback::new(3, DEFAULT_REST);
        assert_eq!(f.order(Instant::now()), vec![0, 1, 2]);
    }

    #[test]
    fn a_failed_upstream_goes_last_until_it_has_rested() {
        let t0 = Instant::now();
        let mut f = Fallback::new(3, Duration::from_secs(30));
        f.failed(0, t0);
        assert!(f.is_down(0, t0));
        assert_eq!(f.order(t0), vec![1, 2, 0]);
        assert_eq!(f.order(t0 + Duration::from_secs(29)), vec![1, 2, 0]);
        // Rested: the preferred upstream is first again.
        assert_eq!(f.order(t0 + Duration::from_secs(30)), vec![0, 1, 2]);
    }

    #[test]
    fn all_down_are_still_tried_soonest_back_first() {
        let t0 = Instant::now();
        let mut f = Fallback::new(2, Duration::from_secs(30));
        f.failed(1, t0);
        f.failed(0, t0 + Duration::from_secs(1));
        assert_eq!(f.order(t0 + Duration::from_secs(2)), vec![1, 0]);
    }

    #[test]
    fn an_answer_brings_an_upstream_back_at_once() {
        let t0 = Instant::now();
        let mut f = Fallback::new(2, DEFAULT_REST);
        f.failed(0, t0);
        f.answered(0);
        assert!(!f.is_down(0, t0));
        assert_eq!(f.order(t0), vec![0, 1]);
        // Out-of-range indices are ignored.
        f.failed(7, t0);
        f.answered(7);
        assert_eq!(f.order(t0), vec![0, 1]);
    }
}
