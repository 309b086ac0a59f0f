//! Atomic replacement of the active policy while traffic flows.
//!
//! Readers on the packet path call [`PolicyHandle::load`] (a few atomic operations, no lock, no
//! allocation); a shell that changes lists or app rules builds a whole new [`Policy`] off the
//! packet path and calls [`PolicyHandle::store`]. Decisions in flight finish on the policy they
//! started with, so no decision ever sees half of an update.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::policy::Policy;

/// The active policy, replaceable atomically. `Send + Sync`; share it as `Arc<PolicyHandle>`.
pub struct PolicyHandle {
    current: ArcSwap<Policy>,
}

impl std::fmt::Debug for PolicyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyHandle").finish_non_exhaustive()
    }
}

impl PolicyHandle {
    /// A handle holding `policy`.
    pub fn new(policy: Arc<Policy>) -> PolicyHandle {
        PolicyHandle {
            current: ArcSwap::new(policy),
        }
    }

    /// The policy in force now. Keep the `Arc` for the duration of one decision (or a batch),
    /// not forever, or updates will not be seen.
    pub fn load(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    /// Replaces the policy; later `load`s see the new one.
    pub fn store(&self, policy: Arc<Policy>) {
        self.current.store(policy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AppRules, IpDb, Query, RuleSet};

    #[test]
    fn replace_while_reading() {
        let empty = Arc::new(Policy::new(vec![], IpDb::new(), AppRules::default()));
        let handle = Arc::new(PolicyHandle::new(empty));
        let reader = {
            let handle = handle.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    let p = handle.load();
                    let _ = p.decide(&Query::name("example.org"));
                }
            })
        };
        for _ in 0..100 {
            handle.store(Arc::new(Policy::new(
                vec![Arc::new(RuleSet::empty())],
                IpDb::new(),
                AppRules::default(),
            )));
        }
        reader.join().unwrap();
        assert_eq!(handle.load().rules().len(), 1);
    }
}
