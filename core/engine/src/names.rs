//! What DNS taught the engine: which names each address was given for (to attribute later
//! connections), and a small answer cache for repeated questions.
//!
//! Both are bounded tables with TTL expiry. An address shared by several names keeps all of
//! them (up to [`MAX_NAMES_PER_ADDR`]) so the ambiguity reaches the policy and the history
//! instead of being hidden behind whichever name came last.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Names remembered per address; beyond it the oldest is replaced (the count stays honest:
/// "at least this many").
pub(crate) const MAX_NAMES_PER_ADDR: usize = 8;
/// Addresses remembered (about 200 bytes each: 16,384 x 200 B = 3.2 MiB worst case).
pub(crate) const MAX_ADDRS: usize = 16_384;
/// Longest a mapping is kept, whatever the TTL says: answers with day-long TTLs would otherwise
/// attribute a recycled cloud address to an old name.
const MAX_MAPPING_TTL: Duration = Duration::from_secs(3600);
/// Shortest: apps connect right after the answer, even with TTL 0.
const MIN_MAPPING_TTL: Duration = Duration::from_secs(60);

/// Address -> names, from DNS answers.
#[derive(Debug, Default)]
pub(crate) struct NameTable {
    map: HashMap<IpAddr, Vec<(Box<str>, Instant)>>,
}

impl NameTable {
    /// Remember that `name` resolved to `addr` for `ttl` seconds.
    pub(crate) fn learn(&mut self, now: Instant, addr: IpAddr, name: &str, ttl: u32) {
        let ttl = Duration::from_secs(u64::from(ttl)).clamp(MIN_MAPPING_TTL, MAX_MAPPING_TTL);
        let expires = now + ttl;
        if self.map.len() >= MAX_ADDRS && !self.map.contains_key(&addr) {
            self.map.retain(|_, names| {
                names.retain(|(_, e)| *e > now);
                !names.is_empty()
            });
            if self.map.len() >= MAX_ADDRS {
                // Still full of live entries: forget one arbitrary address.
                if let Some(k) = self.map.keys().next().copied() {
                    self.map.remove(&k);
                }
            }
        }
        let names = self.map.entry(addr).or_default();
        names.retain(|(_, e)| *e > now);
        if let Some(entry) = names.iter_mut().find(|(n, _)| &**n == name) {
            entry.1 = expires;
            // Most recent last.
            let pos = names.iter().position(|(n, _)| &**n == name).unwrap_or(0);
            let e = names.remove(pos);
            names.push(e);
            return;
        }
        if names.len() >= MAX_NAMES_PER_ADDR {
            names.remove(0);
        }
        names.push((name.into(), expires));
    }

    /// The most recently learned live name for `addr` and how many live names share it.
    pub(crate) fn lookup(&self, now: Instant, addr: IpAddr) -> Option<(&str, u32)> {
        let names = self.map.get(&addr)?;
        let mut count = 0u32;
        let mut best = None;
        for (n, e) in names {
            if *e > now {
                count += 1;
                best = Some(&**n);
            }
        }
        best.map(|b| (b, count))
    }

    /// Addresses held.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// Cached upstream answers by (name, type).
#[derive(Debug)]
pub(crate) struct AnswerCache {
    map: HashMap<(Box<str>, u16), (Vec<u8>, Instant)>,
    capacity: usize,
}

/// Largest answer cached (the classic 512-byte limit plus EDNS headroom; bigger ones are rare
/// and re-asked).
pub(crate) const MAX_CACHED_ANSWER: usize = 1232;
/// Longest an answer is served from the cache.
const MAX_CACHE_TTL: u32 = 300;

impl AnswerCache {
    pub(crate) fn new(capacity: usize) -> Self {
        AnswerCache {
            map: HashMap::new(),
            capacity,
        }
    }

    /// Store an answer for `ttl` seconds (nothing for TTL 0 or oversized answers).
    pub(crate) fn insert(&mut self, now: Instant, name: &str, qtype: u16, answer: &[u8], ttl: u32) {
        if ttl == 0 || answer.len() > MAX_CACHED_ANSWER || self.capacity == 0 {
            return;
        }
        if self.map.len() >= self.capacity {
            self.map.retain(|_, (_, e)| *e > now);
            if self.map.len() >= self.capacity {
                if let Some(k) = self.map.keys().next().cloned() {
                    self.map.remove(&k);
                }
            }
        }
        let expires = now + Duration::from_secs(u64::from(ttl.min(MAX_CACHE_TTL)));
        self.map
            .insert((name.into(), qtype), (answer.to_vec(), expires));
    }

    /// A live cached answer.
    pub(crate) fn get(&self, now: Instant, name: &str, qtype: u16) -> Option<&[u8]> {
        // The key borrows as (Box<str>, u16); build it once (names are short).
        let (answer, expires) = self.map.get(&(Box::<str>::from(name), qtype))?;
        (*expires > now).then_some(answer.as_slice())
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_addresses_keep_their_ambiguity_and_expire() {
        let t0 = Instant::now();
        let mut t = NameTable::default();
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        t.learn(t0, a, "a.example", 30);
        t.learn(t0, a, "b.example", 600);
        assert_eq!(t.lookup(t0, a), Some(("b.example", 2)));
        t.learn(t0, a, "a.example", 30);
        assert_eq!(t.lookup(t0, a), Some(("a.example", 2)));
        // a.example's 30 s TTL is raised to the 60 s minimum; after it only b remains.
        assert_eq!(
            t.lookup(t0 + Duration::from_secs(61), a),
            Some(("b.example", 1))
        );
        assert_eq!(t.lookup(t0 + Duration::from_secs(4000), a), None);
    }

    #[test]
    fn cache_respects_ttl_and_capacity() {
        let t0 = Instant::now();
        let mut c = AnswerCache::new(2);
        c.insert(t0, "a", 1, b"x", 10);
        c.insert(t0, "b", 1, b"y", 10);
        c.insert(t0, "c", 1, b"z", 10);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(t0, "c", 1), Some(&b"z"[..]));
        assert_eq!(c.get(t0 + Duration::from_secs(11), "c", 1), None);
        c.insert(t0, "d", 1, b"w", 0);
        assert_eq!(c.get(t0, "d", 1), None);
    }
}
