//! Address -> names, learned from DNS answers, so that a later connection to an address can be
//! attributed to the name the app looked up.
//!
//! An address can belong to many names (CDNs, shared hosting, cloud front ends). The table keeps
//! that ambiguity visible: [`NameTable::lookup`] returns every live name, most recent first, and a
//! count, so the policy can say "one of these" with a lowered certainty rather than pick one and
//! be wrong (TrackerControl flags shared addresses the same way; DuckDuckGo refuses to block by
//! address at all for this reason).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::message::DnsAnswer;

/// Most addresses the table holds; past it the least recently learned address is evicted.
///
/// Why 4096: a full table measures 268 bytes per address with one name each (map slot, order
/// index, name entry, shared name string; `tests/dns_budget.rs`), 1.1 MiB in all, and 2.2 MiB in
/// the worst case of [`MAX_NAMES_PER_ADDR`] names on every address: a small share of the engine's
/// 20 MiB target. A phone's live set (names looked up within their TTL plus
/// [`ATTRIBUTION_GRACE`]) is a few hundred to a couple of thousand addresses.
pub const MAX_ADDRS: usize = 4096;

/// Most names kept per address. A CDN address can serve hundreds of names; past eight the newest
/// are kept and the others only counted (see [`NamesForAddr::count`]).
pub const MAX_NAMES_PER_ADDR: usize = 8;

/// How long past its TTL a mapping is still used for attribution.
///
/// Why 5 minutes: apps keep using an address after its TTL (Java/Android `InetAddress` caches 30 s
/// whatever the TTL, connection pools and Happy Eyeballs fallbacks reuse answers, some apps cache
/// for minutes), and an expired-but-true name is a better attribution than none. The risk, the
/// address moving to another name, shows up as a second name and a count above 1, not as a silent
/// wrong answer.
pub const ATTRIBUTION_GRACE: Duration = Duration::from_secs(5 * 60);

/// One name an address was learned for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedName {
    /// The name the app asked for (the question), lowercased, no trailing dot.
    pub name: Arc<str>,
    /// The CNAME chain from `name` to the address, in order (empty when none). Blocklists match
    /// these too: a tracker hidden behind a first-party CNAME ("CNAME cloaking") shows here.
    pub chain: Arc<[Arc<str>]>,
    /// When this mapping stops being used (TTL + [`ATTRIBUTION_GRACE`]).
    pub expires: Instant,
}

/// The answer of [`NameTable::lookup`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamesForAddr {
    /// Live names for the address, most recently learned first (at most [`MAX_NAMES_PER_ADDR`]).
    pub names: Vec<LearnedName>,
    /// How many distinct question names the address was learned for: `names.len()` plus names
    /// pushed out by the per-address bound. Above 1 the address is shared and attribution to any
    /// single name is uncertain.
    pub count: usize,
}

impl NamesForAddr {
    /// True when exactly one name is known: attribution is as certain as DNS can make it.
    pub fn is_unambiguous(&self) -> bool {
        self.count == 1
    }
}

#[derive(Debug)]
struct AddrEntry {
    /// Most recent first.
    names: Vec<LearnedName>,
    /// Names dropped by the per-address bound while still live.
    dropped: usize,
    /// Key in `order` (learning recency).
    seq: u64,
}

/// Bounded address -> names table with TTL expiry driven by the caller's clock.
#[derive(Debug)]
pub struct NameTable {
    addrs: HashMap<IpAddr, AddrEntry>,
    /// Learning recency: oldest first, for eviction.
    order: BTreeMap<u64, IpAddr>,
    next_seq: u64,
    max_addrs: usize,
    grace: Duration,
}

impl Default for NameTable {
    fn default() -> Self {
        Self::new()
    }
}

impl NameTable {
    /// A table bounded by [`MAX_ADDRS`] with [`ATTRIBUTION_GRACE`].
    pub fn new() -> Self {
        Self::with_limits(MAX_ADDRS, ATTRIBUTION_GRACE)
    }

    /// A table with another bound or grace (tests, memory-constrained builds).
    pub fn with_limits(max_addrs: usize, grace: Duration) -> Self {
        NameTable {
            addrs: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            max_addrs: max_addrs.max(1),
            grace,
        }
    }

    /// Number of addresses held (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// True when no address is held.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// Learns every address of an upstream answer for its question name and CNAME chain.
    /// Addresses 0.0.0.0 and :: (block answers of other filters) teach nothing and are skipped.
    pub fn learn(&mut self, answer: &DnsAnswer, now: Instant) {
        if answer.addresses.is_empty() {
            return;
        }
        let name: Arc<str> = Arc::from(answer.name.as_str());
        let chain: Arc<[Arc<str>]> = answer.chain.iter().map(|c| Arc::from(c.as_str())).collect();
        for learned in &answer.addresses {
            if learned.addr.is_unspecified() {
                continue;
            }
            self.insert(learned.addr, &name, &chain, learned.ttl, now);
        }
    }

    /// Records that `addr` belongs to `name` (reached through `chain`) for `ttl` seconds.
    pub fn insert(
        &mut self,
        addr: IpAddr,
        name: &Arc<str>,
        chain: &Arc<[Arc<str>]>,
        ttl: u32,
        now: Instant,
    ) {
        let expires = now + Duration::from_secs(u64::from(ttl)) + self.grace;
        let seq = self.next_seq;
        self.next_seq += 1;
        if !self.addrs.contains_key(&addr) && self.addrs.len() >= self.max_addrs {
            self.evict_oldest();
        }
        let entry = self.addrs.entry(addr).or_insert_with(|| AddrEntry {
            // Most addresses have one name: capacity 1 instead of Vec's default first growth to
            // four 48-byte slots saves ~150 bytes per address (measured in tests/dns_budget.rs).
            names: Vec::with_capacity(1),
            dropped: 0,
            seq,
        });
        self.order.remove(&entry.seq);
        entry.seq = seq;
        self.order.insert(seq, addr);

        entry.names.retain(|n| n.expires > now);
        let previous = entry
            .names
            .iter()
            .position(|n| *n.name == **name)
            .map(|at| entry.names.remove(at));
        let expires = previous.map_or(expires, |p| p.expires.max(expires));
        entry.names.insert(
            0,
            LearnedName {
                name: Arc::clone(name),
                chain: Arc::clone(chain),
                expires,
            },
        );
        if entry.names.len() > MAX_NAMES_PER_ADDR {
            entry.names.truncate(MAX_NAMES_PER_ADDR);
            entry.dropped = entry.dropped.saturating_add(1);
        }
    }

    /// The live names of `addr`, most recent first, with the count of names sharing it.
    /// Expired names are dropped on the way.
    pub fn lookup(&mut self, addr: IpAddr, now: Instant) -> NamesForAddr {
        let Some(entry) = self.addrs.get_mut(&addr) else {
            return NamesForAddr::default();
        };
        entry.names.retain(|n| n.expires > now);
        if entry.names.is_empty() {
            let seq = entry.seq;
            self.addrs.remove(&addr);
            self.order.remove(&seq);
            return NamesForAddr::default();
        }
        NamesForAddr {
            count: entry.names.len() + entry.dropped,
            names: entry.names.clone(),
        }
    }

    /// Drops every expired mapping. Costs one pass over the table: call it rarely (e.g. once a
    /// minute from the engine's timer); lookups and the size bound handle the rest.
    pub fn sweep(&mut self, now: Instant) {
        let order = &mut self.order;
        self.addrs.retain(|_, entry| {
            entry.names.retain(|n| n.expires > now);
            if entry.names.is_empty() {
                order.remove(&entry.seq);
                false
            } else {
                true
            }
        });
    }

    /// Evicts the least recently learned address.
    fn evict_oldest(&mut self) {
        if let Some((_, addr)) = self.order.pop_first() {
            self.addrs.remove(&addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::message::tests::{answer_msg, Rr};
    use std::net::Ipv4Addr;

    fn addr(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn learn(table: &mut NameTable, name: &str, ip: IpAddr, ttl: u32, now: Instant) {
        let chain: Arc<[Arc<str>]> = Arc::from(Vec::new());
        table.insert(ip, &Arc::from(name), &chain, ttl, now);
    }

    #[test]
    fn learns_question_and_chain_from_an_answer() {
        let msg = answer_msg(
            1,
            "metrics.shop.example",
            1,
            &[
                Rr::Cname("metrics.shop.example", "shop.tracker.example", 60),
                Rr::A("shop.tracker.example", Ipv4Addr::new(192, 0, 2, 7), 30),
            ],
        );
        let answer = DnsAnswer::parse(&msg).unwrap();
        let now = Instant::now();
        let mut table = NameTable::with_limits(16, Duration::ZERO);
        table.learn(&answer, now);
        let found = table.lookup(addr(7), now);
        assert_eq!(found.count, 1);
        assert!(found.is_unambiguous());
        assert_eq!(&*found.names[0].name, "metrics.shop.example");
        assert_eq!(&*found.names[0].chain[0], "shop.tracker.example");
        assert_eq!(found.names[0].expires, now + Duration::from_secs(30));
    }

    #[test]
    fn shared_address_keeps_every_name_most_recent_first() {
        let now = Instant::now();
        let mut table = NameTable::with_limits(16, Duration::ZERO);
        learn(&mut table, "a.example", addr(1), 60, now);
        learn(&mut table, "b.example", addr(1), 60, now);
        learn(
            &mut table,
            "a.example",
            addr(1),
            60,
            now + Duration::from_secs(1),
        );
        let found = table.lookup(addr(1), now);
        assert_eq!(found.count, 2);
        assert!(!found.is_unambiguous());
        let names: Vec<&str> = found.names.iter().map(|n| &*n.name).collect();
        assert_eq!(names, ["a.example", "b.example"]);
    }

    #[test]
    fn names_expire_with_their_ttl_plus_grace() {
        let now = Instant::now();
        let mut table = NameTable::with_limits(16, Duration::from_secs(100));
        learn(&mut table, "a.example", addr(1), 10, now);
        learn(&mut table, "b.example", addr(1), 500, now);
        assert_eq!(
            table.lookup(addr(1), now + Duration::from_secs(109)).count,
            2
        );
        let later = table.lookup(addr(1), now + Duration::from_secs(110));
        assert_eq!(later.count, 1);
        assert_eq!(&*later.names[0].name, "b.example");
        assert_eq!(
            table.lookup(addr(1), now + Duration::from_secs(600)).count,
            0
        );
        assert!(table.is_empty());
    }

    #[test]
    fn per_address_bound_counts_dropped_names() {
        let now = Instant::now();
        let mut table = NameTable::with_limits(16, Duration::ZERO);
        for i in 0..MAX_NAMES_PER_ADDR + 3 {
            learn(&mut table, &format!("n{i}.example"), addr(1), 60, now);
        }
        let found = table.lookup(addr(1), now);
        assert_eq!(found.names.len(), MAX_NAMES_PER_ADDR);
        assert_eq!(found.count, MAX_NAMES_PER_ADDR + 3);
        assert_eq!(&*found.names[0].name, "n10.example");
    }

    #[test]
    fn table_size_is_bounded_by_evicting_the_oldest() {
        let now = Instant::now();
        let mut table = NameTable::with_limits(3, Duration::ZERO);
        for i in 1..=3 {
            learn(&mut table, "x.example", addr(i), 60, now);
        }
        learn(&mut table, "y.example", addr(1), 60, now); // refreshes address 1
        learn(&mut table, "z.example", addr(4), 60, now); // evicts address 2
        assert_eq!(table.len(), 3);
        assert_eq!(table.lookup(addr(2), now).count, 0);
        assert_eq!(table.lookup(addr(1), now).count, 2);
        assert_eq!(table.lookup(addr(4), now).count, 1);
    }

    #[test]
    fn sweep_drops_expired_and_unspecified_is_not_learned() {
        let now = Instant::now();
        let mut table = NameTable::with_limits(16, Duration::ZERO);
        learn(&mut table, "a.example", addr(1), 1, now);
        learn(&mut table, "b.example", addr(2), 100, now);
        table.sweep(now + Duration::from_secs(2));
        assert_eq!(table.len(), 1);

        let msg = answer_msg(
            1,
            "blocked.example",
            1,
            &[Rr::A("blocked.example", Ipv4Addr::UNSPECIFIED, 5)],
        );
        table.learn(&DnsAnswer::parse(&msg).unwrap(), now);
        assert_eq!(table.len(), 1);
    }
}
