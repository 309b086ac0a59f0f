//! The flow table: every live flow by id, the address pairs that find them, the eviction order
//! and each app's share of the table. What a flow does lives in [`super::tcp`] and
//! [`super::udp`]; when the table is full, `Engine::make_room` picks the flow to end.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Flow, FlowKind};
use crate::api::FlowId;

/// Hasher for maps keyed by [`FlowId`]: ids are the engine's own counter, not input an app
/// controls, so SipHash's flood resistance buys nothing there and its cost is paid several
/// times per packet. A multiplicative (Fibonacci) hash spreads consecutive ids over both the
/// bucket bits and the tag bits hashbrown uses.
#[derive(Default, Clone, Copy)]
pub(crate) struct FlowIdHasher(u64);

impl std::hash::Hasher for FlowIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_u16(&mut self, n: u16) {
        // The DNS transaction ids of forwarded questions (`DnsState::pending`): drawn by the
        // engine, like flow ids.
        self.write_u64(u64::from(n));
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for FlowId (a single u64); correct for anything else.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
}

/// A map keyed by flow id (see [`FlowIdHasher`]).
pub(crate) type FlowMap<V> = HashMap<FlowId, V, BuildHasherDefault<FlowIdHasher>>;

/// The app's address and the destination it asked for: what finds a flow from a packet.
type Key = (SocketAddr, SocketAddr);

/// Flows of one app (or of the unknown app) count in this map: `share_add` / `share_sub`.
type Shares = HashMap<Option<String>, usize>;

fn share_add(shares: &mut Shares, app: &Option<String>) {
    // The app's name is copied only for its first flow (`entry` would copy it every time).
    match shares.get_mut(app) {
        Some(n) => *n += 1,
        None => {
            shares.insert(app.clone(), 1);
        }
    }
}

fn share_sub(shares: &mut Shares, app: &Option<String>) {
    if let Some(n) = shares.get_mut(app) {
        *n -= 1;
        if *n == 0 {
            shares.remove(app);
        }
    }
}

/// Every live flow, by id and by address pair.
pub(crate) struct FlowTable {
    flows: FlowMap<Flow>,
    tcp_keys: HashMap<Key, FlowId>,
    udp_keys: HashMap<Key, FlowId>,
    next_flow: u64,
    /// Second-chance eviction order (may hold ids of removed flows; compacted lazily).
    lru: VecDeque<FlowId>,
    /// Flows in the table per app (`None`: not known), for the fair shares of `make_room`.
    shares: Shares,
}

impl FlowTable {
    pub fn new(max_flows: usize) -> Self {
        FlowTable {
            flows: FlowMap::with_capacity_and_hasher(max_flows, Default::default()),
            tcp_keys: HashMap::with_capacity(max_flows),
            udp_keys: HashMap::new(),
            next_flow: 1,
            lru: VecDeque::new(),
            shares: HashMap::new(),
        }
    }

    #[inline]
    pub fn get(&self, id: &FlowId) -> Option<&Flow> {
        self.flows.get(id)
    }

    #[inline]
    pub fn get_mut(&mut self, id: &FlowId) -> Option<&mut Flow> {
        self.flows.get_mut(id)
    }

    /// Flows in the table.
    #[inline]
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&FlowId, &Flow)> {
        self.flows.iter()
    }

    /// The TCP flow of this address pair.
    #[inline]
    pub fn tcp_flow(&self, key: &Key) -> Option<FlowId> {
        self.tcp_keys.get(key).copied()
    }

    /// The UDP flow of this address pair.
    #[inline]
    pub fn udp_flow(&self, key: &Key) -> Option<FlowId> {
        self.udp_keys.get(key).copied()
    }

    pub fn tcp_count(&self) -> usize {
        self.tcp_keys.len()
    }

    pub fn udp_count(&self) -> usize {
        self.udp_keys.len()
    }

    /// A fresh id (flows and app waits share the counter: a wait for a flow has its id).
    #[inline]
    pub fn next_id(&mut self) -> FlowId {
        let id = FlowId(self.next_flow);
        self.next_flow += 1;
        id
    }

    /// Add a flow, last in the eviction order.
    pub fn insert(&mut self, flow: Flow) {
        let id = flow.id;
        match flow.kind {
            FlowKind::Tcp(_) => self.tcp_keys.insert((flow.src, flow.dst), id),
            FlowKind::Udp(_) => self.udp_keys.insert((flow.src, flow.dst), id),
        };
        share_add(&mut self.shares, &flow.app);
        self.flows.insert(id, flow);
        self.lru.push_back(id);
        if self.lru.len() > 2 * self.flows.len() + 64 {
            let flows = &self.flows;
            self.lru.retain(|id| flows.contains_key(id));
        }
    }

    /// Take a flow out of the table (its resources are the caller's to free).
    pub fn remove(&mut self, id: FlowId) -> Option<Flow> {
        let f = self.flows.remove(&id)?;
        share_sub(&mut self.shares, &f.app);
        match f.kind {
            FlowKind::Tcp(_) => self.tcp_keys.remove(&(f.src, f.dst)),
            FlowKind::Udp(_) => self.udp_keys.remove(&(f.src, f.dst)),
        };
        Some(f)
    }

    /// Name the app of flow `id` (moving it to that app's share); the flow, if live.
    pub fn name_app(&mut self, id: FlowId, app: &Option<String>) -> Option<&mut Flow> {
        let f = self.flows.get_mut(&id)?;
        if f.app != *app {
            share_sub(&mut self.shares, &f.app);
            share_add(&mut self.shares, app);
        }
        f.app.clone_from(app);
        Some(f)
    }

    /// The app holding at least `share` flows if `app` is that one, else the app holding the
    /// most flows above `share`, if any.
    pub fn hog(&self, app: &Option<String>, share: usize) -> Option<Option<String>> {
        if self.shares.get(app).copied().unwrap_or(0) >= share {
            return Some(app.clone());
        }
        self.shares
            .iter()
            .filter(|&(_, &n)| n > share)
            .max_by_key(|&(_, &n)| n)
            .map(|(a, _)| a.clone())
    }

    /// The oldest flow (in eviction order) that `pred` picks.
    pub fn oldest_where(&mut self, pred: impl Fn(&Flow) -> bool) -> Option<FlowId> {
        while let Some(id) = self.lru.front() {
            if self.flows.contains_key(id) {
                break;
            }
            self.lru.pop_front();
        }
        let flows = &self.flows;
        self.lru
            .iter()
            .copied()
            .find(|id| flows.get(id).is_some_and(&pred))
    }

    /// The oldest flow by the second-chance rule: flows active within `recent` of `now` go to
    /// the back, within `tries` looks (the last look takes any); `None` when none is left.
    pub fn second_chance(
        &mut self,
        now: Instant,
        recent: Duration,
        tries: &mut usize,
    ) -> Option<FlowId> {
        while *tries > 0 {
            *tries -= 1;
            let id = self.lru.pop_front()?;
            let Some(f) = self.flows.get(&id) else {
                continue;
            };
            if f.last_active + recent > now && *tries > 0 {
                self.lru.push_back(id);
                continue;
            }
            return Some(id);
        }
        None
    }

    /// Entries in the eviction order (live or not): how many looks `second_chance` may take.
    pub fn order_len(&self) -> usize {
        self.lru.len()
    }

    /// Whether any UDP flow is live.
    pub fn has_udp(&self) -> bool {
        !self.udp_keys.is_empty()
    }
}

#[cfg(test)]
mod flow_id_hash_tests {
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::{FlowId, FlowIdHasher};

    #[test]
    fn consecutive_ids_spread_over_buckets_and_tags() {
        let build = BuildHasherDefault::<FlowIdHasher>::default();
        let hashes: Vec<u64> = (1..=1024u64).map(|i| build.hash_one(FlowId(i))).collect();
        let buckets: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 1023).collect();
        let tags: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(buckets.len(), 1024, "low bits collide");
        assert!(
            tags.len() >= 100,
            "top 7 bits (hashbrown's tag) barely vary: {}",
            tags.len()
        );
    }
}
