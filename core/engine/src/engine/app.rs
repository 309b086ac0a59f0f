//! Waiting for the app: a flow or DNS question whose verdict the app could change, or that is
//! blocked, is held (up to [`crate::EngineConfig::app_wait`]) until [`Engine::app_resolved`]
//! names it; an allowed one whose verdict cannot depend on the app is decided at once, and only its decision event waits for
//! the app's name, so that the history still says which app it was (events are off the packet
//! path; the app is not).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use embargo_policy::{Decision, NameSource, Protocol};

use super::{engine_rule, Engine, FlowMap};
use crate::api::{Command, DecisionEvent, Event, FlowId};
use crate::dns::DnsQuery;

/// Most app answers awaited at once (flows that did not wait, and DNS sources). Past it new
/// ones decide and record with the app unknown: a driver that never answers cannot grow this.
pub(crate) const MAX_APP_WAITS: usize = 1024;

/// Most DNS questions held per source while its app is resolved. A resolver asks A and AAAA
/// (and HTTPS) together; more from one socket within the wait means retries.
pub(crate) const MAX_HELD_DNS: usize = 8;

/// Most bytes of DNS questions held across all waits. Questions are 30-100 bytes, so this holds
/// hundreds of them, and keeps the worst case (every wait full of MTU-sized messages: 12 MB) out
/// of the engine's memory budget. Past it questions are decided with the app unknown.
pub(crate) const MAX_HELD_DNS_BYTES: usize = 64 * 1024;

/// App answers cached at most.
const MAX_APP_CACHE: usize = 4096;

/// Expired waits remembered so that a late answer is still cached for the source (the next
/// question from it then needs no wait). A late answer is rare; 256 covers a burst.
pub(crate) const MAX_LATE_WAITS: usize = 256;

/// Work waiting for one [`Command::ResolveApp`] answer.
pub(crate) struct AppWait {
    /// The cache key the answer is stored under.
    pub protocol: Protocol,
    pub src: SocketAddr,
    /// When the engine stops waiting and goes on with the app unknown.
    pub deadline: Instant,
    /// Decisions already made (without the app) whose events name the app once known.
    pub events: Vec<DecisionEvent>,
    /// DNS questions (resolver address, message) held because the app could change them.
    pub dns: Vec<(SocketAddr, Vec<u8>)>,
    /// Block answers (resolver address, message) held until the app is named: the app
    /// exits on its answer, and its socket with it, before a slower lookup can find it.
    pub answers: Vec<(SocketAddr, Vec<u8>)>,
}

/// Answers to [`Command::ResolveApp`]: awaited by work that did not hold for them, and cached
/// per source once given.
#[derive(Default)]
pub(crate) struct AppWaits {
    waits: FlowMap<AppWait>,
    /// Waits by deadline, oldest first (may hold finished ones; skipped lazily).
    order: VecDeque<(Instant, FlowId)>,
    /// The wait of each DNS source whose app is being resolved.
    dns_sources: HashMap<SocketAddr, FlowId>,
    /// Bytes of DNS questions and answers held in `waits` (at most [`MAX_HELD_DNS_BYTES`]).
    held_dns_bytes: usize,
    /// Expired waits (id, cache key), newest last, at most [`MAX_LATE_WAITS`].
    late: VecDeque<(FlowId, Protocol, SocketAddr)>,
    /// The app of each source, until its expiry.
    cache: HashMap<(Protocol, SocketAddr), (Option<String>, Instant)>,
}

impl AppWaits {
    /// Whether wait `id` is live.
    #[inline]
    pub fn is_waiting(&self, id: FlowId) -> bool {
        self.waits.contains_key(&id)
    }

    /// The live wait of DNS source `src`, if any.
    pub fn source_wait(&self, src: SocketAddr) -> Option<FlowId> {
        self.dns_sources.get(&src).copied()
    }

    /// Hold a DNS question (to resolver `dst`) in `wait` until its app is known; `false` when
    /// there is no such wait or no room (decide it now).
    pub fn hold_question(&mut self, wait: Option<FlowId>, dst: SocketAddr, query: &[u8]) -> bool {
        let room = self.held_dns_bytes + query.len() <= MAX_HELD_DNS_BYTES;
        if let Some(w) = wait.and_then(|id| self.waits.get_mut(&id)) {
            if w.dns.len() < MAX_HELD_DNS && room {
                w.dns.push((dst, query.to_vec()));
                self.held_dns_bytes += query.len();
                return true;
            }
        }
        false
    }

    /// Hold a block answer (from resolver `dst`) in `wait` until its app is known; the answer
    /// back when there is no such wait or no room (send it now).
    pub fn hold_answer(
        &mut self,
        wait: Option<FlowId>,
        dst: SocketAddr,
        answer: Vec<u8>,
    ) -> Option<Vec<u8>> {
        let room = self.held_dns_bytes + answer.len() <= MAX_HELD_DNS_BYTES;
        match wait.and_then(|id| self.waits.get_mut(&id)) {
            Some(w) if room && w.answers.len() < MAX_HELD_DNS => {
                self.held_dns_bytes += answer.len();
                w.answers.push((dst, answer));
                None
            }
            _ => Some(answer),
        }
    }

    /// Keep a decision event in the wait of its flow (see [`AppWaits::is_waiting`]) until the
    /// app is known.
    pub fn hold_event(&mut self, event: DecisionEvent) {
        if let Some(wait) = self.waits.get_mut(&event.flow) {
            wait.events.push(event);
        }
    }

    /// When the oldest wait expires.
    #[inline]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.order.front().map(|(t, _)| *t)
    }

    /// Bytes of DNS messages held.
    pub fn held_dns_bytes(&self) -> usize {
        self.held_dns_bytes
    }
}

impl Engine {
    /// Whether this flow or question waits for its app: knowing the app could change its
    /// verdict (asked of the policy with the app unknown), or the verdict is a block. The
    /// engine's own rules ignore the app.
    pub(crate) fn app_matters(
        &mut self,
        name: Option<(&str, NameSource)>,
        dst: SocketAddr,
        protocol: Protocol,
        dns_type: Option<u16>,
    ) -> bool {
        let mut learned = None;
        let (query, _) = self.query(None, name, dst, protocol, dns_type, &mut learned);
        let port = if dns_type.is_some() { 0 } else { dst.port() };
        if engine_rule(&self.config, query.name, query.addr, port).is_some() {
            return false;
        }
        // A block waits for its app too, even when no per-app rule could change it: the
        // history must say which app tried, and a short-lived process (a resolver stub that
        // got its answer, a curl that got its RST) is gone before a lookup made after the
        // answer can find its socket. A blocked flow loses nothing by waiting; allowed ones,
        // the traffic users feel, go on at once.
        self.policy.app_can_change(&query)
            || self.policy.verdict(&query) == embargo_policy::Verdict::Block
    }

    /// Start waiting for `id`'s app; the caller sends the [`Command::ResolveApp`]. `false` when
    /// too many answers are outstanding (go on without the app).
    pub(crate) fn start_app_wait(
        &mut self,
        id: FlowId,
        protocol: Protocol,
        src: SocketAddr,
    ) -> bool {
        if self.apps.waits.len() >= MAX_APP_WAITS {
            return false;
        }
        let deadline = self.now + self.config.app_wait;
        self.apps.waits.insert(
            id,
            AppWait {
                protocol,
                src,
                deadline,
                events: Vec::new(),
                dns: Vec::new(),
                answers: Vec::new(),
            },
        );
        // `app_wait` is one constant, so deadlines come in order.
        self.apps.order.push_back((deadline, id));
        true
    }

    /// The wait for DNS questions from `src` (an existing one, or a new one with its
    /// [`Command::ResolveApp`] sent). `None` when no wait can be started.
    pub(crate) fn dns_app_wait(&mut self, src: SocketAddr, dst: SocketAddr) -> Option<FlowId> {
        if let Some(&id) = self.apps.dns_sources.get(&src) {
            if self.apps.waits.contains_key(&id) {
                return Some(id);
            }
        }
        let id = self.next_flow_id();
        if !self.start_app_wait(id, Protocol::Udp, src) {
            return None;
        }
        self.apps.dns_sources.insert(src, id);
        self.commands.push_back(Command::ResolveApp {
            flow: id,
            protocol: Protocol::Udp,
            src,
            dst,
        });
        Some(id)
    }

    /// Record a decision: at once, or, while `wait`'s app is being resolved, when it is known
    /// (at most [`MAX_HELD_DNS`] events per wait; more are recorded at once, app unknown).
    pub(crate) fn record_after_app(
        &mut self,
        wait: Option<FlowId>,
        event: DecisionEvent,
        decision: &Decision,
    ) {
        match wait
            .and_then(|id| self.apps.waits.get_mut(&id))
            .filter(|w| w.events.len() < MAX_HELD_DNS)
        {
            Some(w) => {
                w.events.push(event);
                if decision.is_block() {
                    self.stats.flows_blocked += 1;
                }
            }
            None => self.record(event, decision),
        }
    }

    /// The app of wait `id` is known (or the wait expired: `None`): name it in the waiting
    /// events and decide the held DNS questions.
    pub(crate) fn finish_app_wait(&mut self, id: FlowId, app: Option<String>) {
        let Some(wait) = self.apps.waits.remove(&id) else {
            return;
        };
        // An inspected flow found blocked while its app was unknown: decide it again now (with
        // the app, or at the wait's end without it) from the bytes it holds.
        if self
            .table
            .get(&id)
            .is_some_and(|f| f.app_pending && f.app.is_none())
        {
            if let Some(f) = self.table.name_app(id, &app) {
                f.app_pending = false;
            }
            self.dirty.push(id);
        }
        if self.apps.dns_sources.get(&wait.src) == Some(&id) {
            self.apps.dns_sources.remove(&wait.src);
        }
        for mut event in wait.events {
            event.app.clone_from(&app);
            self.push_event(Event::Decision(Box::new(event)));
        }
        for (dst, answer) in wait.answers {
            self.apps.held_dns_bytes -= answer.len();
            self.dns_reply(wait.src, dst, None, &answer);
        }
        for (dst, message) in wait.dns {
            self.apps.held_dns_bytes -= message.len();
            if let Ok(query) = DnsQuery::parse(&message) {
                self.dns_decide(wait.src, dst, &message, query, None, app.clone(), None);
            }
        }
    }

    /// Whether traffic waits for the app of `flow`: a handshake or datagrams held for it, or a
    /// DNS source's wait (its questions may be held at any time while it lasts). A driver
    /// should deliver such an answer at once; any other answer only names decision events,
    /// which can wait for the driver's next pass (the wait's own deadline, `app_wait`, wakes
    /// the driver at the latest, and answers are taken before deadlines run).
    pub fn holds_for_app(&self, flow: FlowId) -> bool {
        self.table.get(&flow).is_some_and(|f| f.app_pending)
            || self
                .apps
                .waits
                .get(&flow)
                .is_some_and(|w| self.apps.dns_sources.get(&w.src) == Some(&flow))
    }

    /// The cache key of wait `id`, live or expired.
    pub(crate) fn app_wait_key(&self, id: FlowId) -> Option<(Protocol, SocketAddr)> {
        match self.apps.waits.get(&id) {
            Some(w) => Some((w.protocol, w.src)),
            None => self
                .apps
                .late
                .iter()
                .find(|(late, _, _)| *late == id)
                .map(|&(_, protocol, src)| (protocol, src)),
        }
    }

    pub(crate) fn cache_app(&mut self, protocol: Protocol, src: SocketAddr, app: Option<String>) {
        let cache = &mut self.apps.cache;
        if cache.len() >= MAX_APP_CACHE {
            let now = self.now;
            cache.retain(|_, (_, e)| *e > now);
            if cache.len() >= MAX_APP_CACHE {
                cache.clear();
            }
        }
        cache.insert((protocol, src), (app, self.now + self.config.app_cache_ttl));
    }

    /// The cached app of a source, if any; `None` outer = not cached.
    pub(crate) fn cached_app(&self, protocol: Protocol, src: SocketAddr) -> Option<Option<String>> {
        let (app, expires) = self.apps.cache.get(&(protocol, src))?;
        (*expires > self.now).then(|| app.clone())
    }

    /// Stop waiting for apps whose answer is late: go on with the app unknown.
    pub(crate) fn expire_app_waits(&mut self) {
        while let Some(&(deadline, id)) = self.apps.order.front() {
            if deadline > self.now {
                break;
            }
            self.apps.order.pop_front();
            if self
                .apps
                .waits
                .get(&id)
                .is_some_and(|w| w.deadline == deadline)
            {
                if let Some(w) = self.apps.waits.get(&id) {
                    if self.apps.late.len() >= MAX_LATE_WAITS {
                        self.apps.late.pop_front();
                    }
                    self.apps.late.push_back((id, w.protocol, w.src));
                }
                self.finish_app_wait(id, None);
            }
        }
        if self.apps.order.len() > 2 * self.apps.waits.len() + 64 {
            let waits = &self.apps.waits;
            self.apps
                .order
                .retain(|(d, id)| waits.get(id).is_some_and(|w| w.deadline == *d));
        }
    }
}
