//! DNS: every query to port 53 (UDP or TCP, whatever the address) is decided here. Blocked
//! names are answered locally (nothing leaves); allowed ones are answered from the cache or
//! forwarded on the shared [`FlowId::DNS`] upstream flow with a fresh random transaction id;
//! answers feed the name table (address -> names) that attributes later connections.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use embargo_policy::{NameSource, Protocol};

use super::table::FlowIdHasher;
use super::Engine;
use crate::api::{Command, DropReason, Event, FlowId};
use crate::budget;
use crate::dns::{Cache, DnsAnswer, DnsQuery, NameTable, NamesForAddr, RecordType, ResponseCode};
use crate::packet;

/// Questions asked of the resolver over TCP at once ([`Command::DnsOverTcp`]). Each holds a
/// host socket and up to a 64 KiB answer in the driver; past it a truncated answer goes to the
/// app as it came. Apps fall back to TCP rarely (answers over 1,232 bytes).
const MAX_DNS_OVER_TCP: usize = 16;

/// Largest question kept to ask again over TCP: within the pending entry's budget
/// ([`crate::budget::DNS_PENDING_BYTES`]); questions are 30-100 bytes.
const MAX_RETRY_QUESTION: usize = 512;

/// A forwarded question waiting for its upstream answer.
pub(crate) struct PendingDns {
    /// The app's transaction id (restored in the answer).
    pub client_id: u16,
    /// The app's address and the resolver address it asked (the answer comes from there).
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// Set when the question came over TCP (the answer goes into that flow).
    pub tcp: Option<FlowId>,
    /// A question that came over TCP: the message as forwarded, kept to ask again over TCP if
    /// the answer over UDP is truncated (the app asked over TCP to get the whole answer).
    pub retry: Option<Vec<u8>>,
    /// The TCP exchange asking it again ([`Command::DnsOverTcp`]), once started.
    pub over_tcp: Option<FlowId>,
    pub name: String,
    pub qtype: RecordType,
    pub deadline: Instant,
    pub app: Option<String>,
}

/// What the engine knows and awaits of DNS: names learned from answers, cached answers, and
/// questions forwarded upstream.
pub(crate) struct DnsState {
    /// Address -> names, from answers (attributes later connections).
    names: NameTable,
    cache: Cache,
    /// Forwarded questions by the transaction id sent upstream. The engine draws these ids at
    /// random and an answer only looks one up, so no network input picks a key: no SipHash.
    pending: HashMap<u16, PendingDns, BuildHasherDefault<FlowIdHasher>>,
    /// Pending questions being asked again over TCP (`PendingDns::over_tcp` set).
    over_tcp: usize,
    /// Pending questions by deadline, oldest first (may hold answered ones; skipped lazily).
    order: VecDeque<(Instant, u16)>,
}

impl DnsState {
    pub fn new() -> Self {
        DnsState {
            names: NameTable::new(),
            cache: Cache::new(),
            pending: HashMap::default(),
            over_tcp: 0,
            order: VecDeque::new(),
        }
    }

    /// The names answers gave for `addr` (see [`NameTable::lookup`]).
    pub fn names_for(&mut self, addr: IpAddr, now: Instant) -> NamesForAddr {
        self.names.lookup(addr, now)
    }

    /// When the oldest pending question expires.
    #[inline]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.order.front().map(|(t, _)| *t)
    }

    /// Bytes the pending questions, the cache and the name table account for.
    pub fn memory_bytes(&self) -> usize {
        self.pending.len() * budget::DNS_PENDING_BYTES
            + self.cache.len() * budget::DNS_CACHE_ENTRY_BYTES
            + self.names.len() * 200
    }
}

impl Engine {
    /// One DNS query from the app (UDP payload, or one message of a TCP stream).
    ///
    /// Its app: a TCP stream's own (resolved with its handshake); over UDP the cached answer
    /// for the source, else one [`Command::ResolveApp`] per source. The question is held for
    /// the app (up to `app_wait`) only when the policy says the app could change its verdict;
    /// otherwise it is answered at once and only its decision event waits for the app's name.
    pub(crate) fn dns_query(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        query: &[u8],
        tcp: Option<FlowId>,
    ) {
        self.dns_expire();
        let Ok(q) = DnsQuery::parse(query) else {
            return self.drop_packet(DropReason::Malformed);
        };
        let mut defer = None;
        let app = match tcp {
            Some(id) => self.table.get(&id).and_then(|f| f.app.clone()),
            None => match self.cached_app(Protocol::Udp, src) {
                Some(app) => app,
                None if self.config.resolve_apps => {
                    let matters = self.app_matters(
                        Some((q.name.as_str(), NameSource::DnsQuestion)),
                        dst,
                        Protocol::Udp,
                        Some(u16::from(q.qtype)),
                    );
                    let wait = self.dns_app_wait(src, dst);
                    if matters {
                        if self.apps.hold_question(wait, dst, query) {
                            return;
                        }
                    } else {
                        defer = wait;
                    }
                    None
                }
                None => None,
            },
        };
        self.dns_decide(src, dst, query, q, tcp, app, defer);
    }

    /// Decide and answer one parsed DNS query for `app`; the decision event waits for the
    /// app's name while `defer`'s app wait lasts.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn dns_decide(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        query: &[u8],
        q: DnsQuery,
        tcp: Option<FlowId>,
        app: Option<String>,
        defer: Option<FlowId>,
    ) {
        let flow = tcp.unwrap_or(FlowId::DNS);
        let (decision, event) = self.evaluate(
            flow,
            app.as_deref(),
            Some((q.name.as_str(), NameSource::DnsQuestion)),
            dst,
            if tcp.is_some() {
                Protocol::Tcp
            } else {
                Protocol::Udp
            },
            Some(u16::from(q.qtype)),
        );
        self.record_after_app(defer, event, &decision);
        if decision.is_block() {
            self.stats.dns_blocked += 1;
            let mut answer = std::mem::take(&mut self.scratch);
            // `query` is the message `q` was parsed from, so this cannot fail; answer nothing
            // rather than something wrong if it ever did.
            if q.block_answer(query, self.config.block_response(), &mut answer)
                .is_ok()
            {
                self.dns_reply(src, dst, tcp, &answer);
            }
            self.scratch = answer;
            return;
        }
        let max_len = if tcp.is_some() {
            usize::MAX
        } else {
            q.max_udp_answer_len()
        };
        if let Some(answer) = self.dns.cache.lookup(&q, query, max_len, self.now) {
            self.stats.dns_cached += 1;
            self.dns_answered_event(&answer, true);
            self.dns_reply(src, dst, tcp, &answer);
            return;
        }
        if self.dns.pending.len() >= self.config.max_pending_dns {
            // The upstream is not answering fast enough; the app will retry.
            return self.drop_packet(DropReason::TableFull);
        }
        let mut id = 0;
        for _ in 0..16 {
            id = (self.next_random() >> 48) as u16;
            if !self.dns.pending.contains_key(&id) {
                break;
            }
        }
        if self.dns.pending.contains_key(&id) {
            return self.drop_packet(DropReason::TableFull);
        }
        let upstream = match (dst, self.config.dns_upstream_v6) {
            (SocketAddr::V6(_), Some(v6)) => v6,
            _ => self.config.dns_upstream_v4,
        };
        let mut data = query.to_vec();
        data[..2].copy_from_slice(&id.to_be_bytes());
        let deadline = self.now + self.config.dns_timeout;
        self.dns.pending.insert(
            id,
            PendingDns {
                client_id: q.id,
                src,
                dst,
                tcp,
                retry: tcp
                    .filter(|_| data.len() <= MAX_RETRY_QUESTION)
                    .map(|_| data.clone()),
                over_tcp: None,
                name: q.name,
                qtype: q.qtype,
                deadline,
                app,
            },
        );
        self.dns.order.push_back((deadline, id));
        if let Some(flow) = tcp {
            self.tcp_dns_outstanding(flow, true);
        }
        self.stats.dns_forwarded += 1;
        self.commands.push_back(Command::SendDatagram {
            flow: FlowId::DNS,
            dst: upstream,
            data,
        });
    }

    pub(crate) fn dns_reply(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        tcp: Option<FlowId>,
        answer: &[u8],
    ) {
        match tcp {
            Some(flow) => self.tcp_dns_reply(flow, answer),
            None => self.emit_packet(|b| packet::build_udp(b, dst, src, answer)),
        }
    }

    fn dns_answered_event(&mut self, answer: &[u8], from_cache: bool) {
        if let Ok(info) = DnsAnswer::parse(answer) {
            self.push_event(Event::DnsAnswered {
                time: self.now,
                name: info.name,
                dns_type: u16::from(info.qtype),
                addrs: info.addresses.iter().map(|a| a.addr).collect(),
                cnames: info.chain,
                from_cache,
            });
        }
    }

    /// An answer from the upstream resolver.
    pub(crate) fn dns_upstream_answer(&mut self, from: SocketAddr, data: &[u8]) {
        // TTLs over a day are lowered to a day before anything reads the answer: what the app
        // gets, the cache and the name table all see the clamped value. The clamped copy is
        // the scratch buffer and becomes the app's answer: one copy and no allocation.
        let mut answer = std::mem::take(&mut self.scratch);
        answer.clear();
        answer.extend_from_slice(data);
        self.stats.dns_ttls_clamped +=
            crate::dns::clamp_ttls(&mut answer, crate::dns::MAX_ANSWER_TTL) as u64;
        self.dns_clamped_answer(from, &mut answer);
        self.scratch = answer;
    }

    /// An upstream answer, its TTLs clamped; rewritten in place into the app's answer.
    fn dns_clamped_answer(&mut self, from: SocketAddr, answer: &mut [u8]) {
        let data = &answer[..];
        let expected =
            from == self.config.dns_upstream_v4 || Some(from) == self.config.dns_upstream_v6;
        let Some(info) = DnsAnswer::parse(data).ok().filter(|_| expected) else {
            self.stats.dns_bad_answers += 1;
            return;
        };
        let Some(pending) = self.dns.pending.get(&info.id) else {
            self.stats.dns_bad_answers += 1;
            return;
        };
        if pending.name != info.name || pending.qtype != info.qtype {
            // Not the answer to our question (spoofed or confused): keep waiting.
            self.stats.dns_bad_answers += 1;
            return;
        }
        if info.truncated && pending.tcp.is_some() {
            // Asked over TCP for the whole answer: ask the resolver over TCP too. A truncated
            // answer is passed on only when it cannot be asked again.
            if pending.over_tcp.is_some() {
                return; // a duplicate while the TCP exchange runs
            }
            if pending.retry.is_some() && self.dns.over_tcp < MAX_DNS_OVER_TCP {
                self.dns.over_tcp += 1;
                let exchange = self.next_flow_id();
                if let Some(p) = self.dns.pending.get_mut(&info.id) {
                    p.over_tcp = Some(exchange);
                    if let Some(data) = p.retry.take() {
                        self.commands.push_back(Command::DnsOverTcp {
                            flow: exchange,
                            dst: from,
                            data,
                        });
                    }
                }
                return;
            }
        }
        let Some(pending) = self.dns.pending.remove(&info.id) else {
            return;
        };
        if pending.over_tcp.is_some() {
            self.dns.over_tcp = self.dns.over_tcp.saturating_sub(1);
        }
        if let Some(flow) = pending.tcp {
            self.tcp_dns_outstanding(flow, false);
        }
        // The app was asked for when the question went out; by the answer it is usually
        // known (else the event waits for it, as the question's would have).
        let (app, defer) = match (&pending.app, pending.tcp) {
            (Some(app), _) => (Some(app.clone()), None),
            (None, Some(_)) => (None, None),
            (None, None) => match self.cached_app(Protocol::Udp, pending.src) {
                Some(app) => (app, None),
                None => (None, self.apps.source_wait(pending.src)),
            },
        };
        // CNAME cloaking: an allowed name whose chain leads to a blocked one is blocked.
        for cname in &info.chain {
            let (decision, event) = self.evaluate(
                pending.tcp.unwrap_or(FlowId::DNS),
                app.as_deref(),
                Some((cname.as_str(), NameSource::DnsAnswer)),
                pending.dst,
                Protocol::Udp,
                Some(u16::from(pending.qtype)),
            );
            if decision.is_block() {
                self.record_after_app(defer, event, &decision);
                self.stats.dns_blocked += 1;
                // Rebuild the app's question to answer it the blocked way.
                if let Some(query) = query_of_answer(data, pending.client_id) {
                    if let Ok(q) = DnsQuery::parse(&query) {
                        let mut answer = Vec::new();
                        if q.block_answer(&query, self.config.block_response(), &mut answer)
                            .is_ok()
                        {
                            if let Some(answer) = self.apps.hold_answer(defer, pending.dst, answer)
                            {
                                self.dns_reply(pending.src, pending.dst, pending.tcp, &answer);
                            }
                        }
                    }
                }
                return;
            }
        }
        self.dns.names.learn(&info, self.now);
        if matches!(info.rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
            // NOERROR and NXDOMAIN are worth caching; SERVFAIL and REFUSED are not (the cache
            // also refuses truncated answers and negative ones without an SOA TTL).
            self.dns.cache.insert_answer(&info.name, data, self.now);
        }
        self.push_event(Event::DnsAnswered {
            time: self.now,
            name: info.name,
            dns_type: u16::from(info.qtype),
            addrs: info.addresses.iter().map(|a| a.addr).collect(),
            cnames: info.chain,
            from_cache: false,
        });
        answer[..2].copy_from_slice(&pending.client_id.to_be_bytes());
        self.dns_reply(pending.src, pending.dst, pending.tcp, answer);
    }

    /// Forget questions the upstream never answered.
    pub(crate) fn dns_expire(&mut self) {
        while let Some(&(deadline, id)) = self.dns.order.front() {
            if deadline > self.now {
                break;
            }
            self.dns.order.pop_front();
            if self
                .dns
                .pending
                .get(&id)
                .is_some_and(|p| p.deadline == deadline)
            {
                if let Some(p) = self.dns.pending.remove(&id) {
                    if let Some(exchange) = p.over_tcp {
                        self.dns.over_tcp = self.dns.over_tcp.saturating_sub(1);
                        self.commands.push_back(Command::Close { flow: exchange });
                    }
                    if let Some(flow) = p.tcp {
                        self.tcp_dns_outstanding(flow, false);
                    }
                }
            }
        }
        // Entries answered early leave stale order entries; keep the queue bounded.
        if self.dns.order.len() > 2 * self.dns.pending.len() + 64 {
            let pending = &self.dns.pending;
            self.dns
                .order
                .retain(|(d, id)| pending.get(id).is_some_and(|p| p.deadline == *d));
        }
    }
}

/// The query an upstream answer answers: its header with query flags (RD kept), id `client_id`,
/// one question and nothing else. `None` when the question cannot be located (it was parsed
/// before, so only a compressed question name ends here).
fn query_of_answer(answer: &[u8], client_id: u16) -> Option<Vec<u8>> {
    let mut at = 12;
    loop {
        match *answer.get(at)? {
            0 => break,
            len @ 1..=63 => at += 1 + usize::from(len),
            _ => return None,
        }
    }
    let question_end = at + 1 + 4;
    let mut query = answer.get(..question_end)?.to_vec();
    query[..2].copy_from_slice(&client_id.to_be_bytes());
    query[2] &= 0x01; // RD only: a query's flags
    query[3] = 0;
    query[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    Some(query)
}
