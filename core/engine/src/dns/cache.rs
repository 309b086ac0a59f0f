//! A small DNS answer cache: answers repeats of (name, type, class) without a trip upstream.
//!
//! Apps and the system resolver ask the same names again and again (every connection of an app
//! with its own resolver, A and AAAA pairs, retries): answering them locally saves a round trip
//! and radio wake-ups. The cache stores answer bytes as received; a hit copies them, writes the
//! new query's id, question bytes (keeping its letter case) and RD/CD flags, and lowers every TTL
//! by the time spent in the cache. Policy is decided *before* the cache is asked: it only holds
//! answers to allowed names.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use hickory_proto::op::{Header, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::message::{
    name_to_string, reject_compressed_question, DnsQuery, RecordWalker, HEADER_LEN, TYPE_OPT,
};

/// Most answers held. A phone's working set of names within their TTLs is a few hundred.
pub const MAX_CACHE_ENTRIES: usize = 512;
/// Most answer bytes held (entries are typically 60-300 bytes). 256 KiB keeps the cache a small
/// part of the engine's 20 MiB target.
pub const MAX_CACHE_BYTES: usize = 256 * 1024;
/// Longest time an answer is served from the cache, whatever its TTL: an upstream change (a
/// moved service, a resolver-side block) reaches apps within this.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    name: Box<str>,
    qtype: u16,
    qclass: u16,
}

#[derive(Debug)]
struct CacheEntry {
    msg: Box<[u8]>,
    /// Offsets of the TTL fields of every record but OPT.
    ttl_offsets: Box<[u16]>,
    /// Length of the question (from offset 12).
    question_len: usize,
    /// Start of the OPT record when it is the last record, so that it can be cut for a query
    /// without EDNS (RFC 6891 §7: no OPT in answers to queries without one).
    trailing_opt_at: Option<usize>,
    /// The message has an OPT record that is not last (cannot be cut cheaply).
    has_inner_opt: bool,
    stored_at: Instant,
    expires: Instant,
    seq: u64,
}

/// Bounded, least-recently-used DNS answer cache driven by the caller's clock.
#[derive(Debug)]
pub struct Cache {
    entries: HashMap<CacheKey, CacheEntry>,
    /// Use recency: oldest first, for eviction.
    order: BTreeMap<u64, CacheKey>,
    next_seq: u64,
    bytes: usize,
}

impl Default for Cache {
    fn default() -> Self {
        Self::new()
    }
}

impl Cache {
    /// An empty cache bounded by [`MAX_CACHE_ENTRIES`] and [`MAX_CACHE_BYTES`].
    pub fn new() -> Self {
        Cache {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            bytes: 0,
        }
    }

    /// Number of answers held (expired ones included until touched).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Stores an upstream answer if it is cacheable; returns whether it was stored.
    ///
    /// Cacheable: a NOERROR or NXDOMAIN response to a standard query with one question, not
    /// truncated, with at least one record other than OPT, and a smallest TTL above zero. The
    /// entry lives for that smallest TTL (at most [`MAX_CACHE_TTL`]). Negative answers without an
    /// SOA have no TTL to honour and are not stored (RFC 2308 §5).
    pub fn insert(&mut self, msg: &[u8], now: Instant) -> bool {
        self.insert_named(None, msg, now)
    }

    /// [`Self::insert`] for an answer whose question name the caller parsed already (as
    /// [`crate::dns::DnsAnswer::parse`] gives it: lowercased, no trailing dot). Reading it again
    /// cost a hickory name parse and two allocations per forwarded question.
    pub fn insert_answer(&mut self, name: &str, msg: &[u8], now: Instant) -> bool {
        self.insert_named(Some(name), msg, now)
    }

    fn insert_named(&mut self, name: Option<&str>, msg: &[u8], now: Instant) -> bool {
        let Some((key, entry)) = Self::entry_for(name, msg, now) else {
            return false;
        };
        if msg.len() > MAX_CACHE_BYTES / 8 {
            return false; // one answer may not take more than an eighth of the budget
        }
        self.remove(&key);
        while self.entries.len() >= MAX_CACHE_ENTRIES || self.bytes + msg.len() > MAX_CACHE_BYTES {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(evicted) = self.entries.remove(&oldest) {
                self.bytes -= evicted.msg.len();
            }
        }
        let seq = self.bump();
        self.order.insert(seq, key.clone());
        self.bytes += entry.msg.len();
        self.entries.insert(key, CacheEntry { seq, ..entry });
        true
    }

    /// Answers `query` (parsed from `query_msg`) from the cache, or `None`.
    ///
    /// `max_len` is the largest answer the transport allows: [`DnsQuery::max_udp_answer_len`] for
    /// UDP, `usize::MAX` for TCP. A cached answer that does not fit is not served (the query goes
    /// upstream, which truncates properly).
    pub fn lookup(
        &mut self,
        query: &DnsQuery,
        query_msg: &[u8],
        max_len: usize,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let key = CacheKey {
            name: query.name.as_str().into(),
            qtype: u16::from(query.qtype),
            qclass: u16::from(query.qclass),
        };
        let entry = self.entries.get(&key)?;
        if entry.expires <= now {
            self.remove(&key);
            return None;
        }
        let question = query.raw_question(query_msg).ok()?;
        if question.len() != entry.question_len {
            return None;
        }
        let mut len = entry.msg.len();
        let strip_opt = query.edns.is_none();
        if strip_opt {
            if entry.has_inner_opt {
                return None;
            }
            len = entry.trailing_opt_at.unwrap_or(len);
        }
        if len > max_len {
            return None;
        }
        let mut out = entry.msg.get(..len)?.to_vec();
        out.get_mut(..2)?.copy_from_slice(&query.id.to_be_bytes());
        out[2] = (out[2] & !0x01) | u8::from(query.recursion_desired);
        out[3] = (out[3] & !0x10) | (u8::from(query.checking_disabled) << 4);
        out.get_mut(HEADER_LEN..HEADER_LEN + question.len())?
            .copy_from_slice(question);
        if strip_opt && entry.trailing_opt_at.is_some() {
            let arcount = u16::from_be_bytes([out[10], out[11]]).saturating_sub(1);
            out[10..12].copy_from_slice(&arcount.to_be_bytes());
        }
        let elapsed =
            u32::try_from(now.duration_since(entry.stored_at).as_secs()).unwrap_or(u32::MAX);
        for &offset in entry.ttl_offsets.iter() {
            let at = usize::from(offset);
            if at + 4 > len {
                continue; // inside the cut OPT record: cannot happen, OPT TTLs are not listed
            }
            let field = out.get_mut(at..at + 4)?;
            let ttl = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
            field.copy_from_slice(&ttl.saturating_sub(elapsed).to_be_bytes());
        }
        let seq = self.bump();
        if let Some(entry) = self.entries.get_mut(&key) {
            self.order.remove(&entry.seq);
            entry.seq = seq;
            self.order.insert(seq, key);
        }
        Some(out)
    }

    fn bump(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    fn remove(&mut self, key: &CacheKey) {
        if let Some(old) = self.entries.remove(key) {
            self.order.remove(&old.seq);
            self.bytes -= old.msg.len();
        }
    }

    /// Checks cacheability and locates the TTL fields. `name` is the question name when the
    /// caller has it as text already.
    fn entry_for(name: Option<&str>, msg: &[u8], now: Instant) -> Option<(CacheKey, CacheEntry)> {
        if msg.len() > usize::from(u16::MAX) {
            return None;
        }
        let mut decoder = BinDecoder::new(msg);
        let header = Header::read(&mut decoder).ok()?;
        let meta = &header.metadata;
        if meta.message_type != MessageType::Response
            || meta.op_code != OpCode::Query
            || meta.truncation
            || !matches!(
                meta.response_code,
                ResponseCode::NoError | ResponseCode::NXDomain
            )
            || header.counts.queries != 1
        {
            return None;
        }
        let name_end = reject_compressed_question(msg).ok()?;
        let fields = msg.get(name_end..name_end + 4)?;
        let qtype = u16::from_be_bytes([fields[0], fields[1]]);
        let qclass = u16::from_be_bytes([fields[2], fields[3]]);
        let question_end = name_end + 4;
        let name: Box<str> = match name {
            Some(name) => name.into(),
            None => name_to_string(&Query::read(&mut decoder).ok()?.name).into(),
        };
        let count = usize::from(header.counts.answers)
            + usize::from(header.counts.authorities)
            + usize::from(header.counts.additionals);
        let mut walker = RecordWalker::new(msg, question_end, count).ok()?;
        let mut ttl_offsets = Vec::new();
        let mut min_ttl = u32::MAX;
        let mut opt_at = None;
        let mut has_inner_opt = false;
        let mut last_end = question_end;
        while let Some(record) = walker.next_record().ok()? {
            if opt_at.is_some() {
                has_inner_opt = true; // a record follows the OPT record
            }
            if record.rtype == TYPE_OPT {
                if opt_at.is_some() {
                    return None; // two OPT records: malformed (RFC 6891 §6.1.1)
                }
                opt_at = Some(record.start);
            } else {
                ttl_offsets.push(u16::try_from(record.ttl_offset).ok()?);
                min_ttl = min_ttl.min(record.ttl);
            }
            last_end = record.end;
        }
        if last_end != msg.len() || ttl_offsets.is_empty() || min_ttl == 0 {
            return None;
        }
        let trailing_opt_at = if has_inner_opt { None } else { opt_at };
        let lifetime = Duration::from_secs(u64::from(min_ttl)).min(MAX_CACHE_TTL);
        Some((
            CacheKey {
                name,
                qtype,
                qclass,
            },
            CacheEntry {
                msg: msg.into(),
                ttl_offsets: ttl_offsets.into(),
                question_len: question_end - HEADER_LEN,
                trailing_opt_at,
                has_inner_opt,
                stored_at: now,
                expires: now + lifetime,
                seq: 0,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::message::tests::{answer_msg, query_msg, Rr};
    use crate::dns::DnsAnswer;
    use std::net::Ipv4Addr;

    fn answer(ttl: u32) -> Vec<u8> {
        answer_msg(
            0x1111,
            "www.example.com",
            1,
            &[
                Rr::Cname("www.example.com", "edge.example.net", 300),
                Rr::A("edge.example.net", Ipv4Addr::new(192, 0, 2, 1), ttl),
            ],
        )
    }

    #[test]
    fn repeat_is_answered_with_new_id_case_and_aged_ttls() {
        let now = Instant::now();
        let mut cache = Cache::new();
        assert!(cache.insert(&answer(60), now));
        let msg = query_msg(0x2222, "WWW.example.COM", 1, false);
        let query = DnsQuery::parse(&msg).unwrap();
        let later = now + Duration::from_secs(25);
        let hit = cache.lookup(&query, &msg, 512, later).unwrap();
        assert_eq!(&hit[..2], &[0x22, 0x22]);
        assert_eq!(&hit[12..msg.len()], &msg[12..]);
        let parsed = DnsAnswer::parse(&hit).unwrap();
        assert_eq!(parsed.addresses[0].ttl, 35);
        let message = hickory_proto::op::Message::from_vec(&hit).unwrap();
        assert_eq!(message.answers[0].ttl, 275);
    }

    /// The engine stores answers under the name its own parse gave; a question asked in any
    /// case finds them, and the stored entry is the one `insert` makes of the same bytes.
    #[test]
    fn an_answer_stored_under_its_parsed_name_is_found() {
        let now = Instant::now();
        let msg = answer_msg(
            0x1111,
            "Mixed.Example.COM",
            28,
            &[Rr::A("mixed.example.com", Ipv4Addr::new(192, 0, 2, 7), 60)],
        );
        let info = DnsAnswer::parse(&msg).unwrap();
        assert_eq!(info.name, "mixed.example.com");
        let mut named = Cache::new();
        assert!(named.insert_answer(&info.name, &msg, now));
        let mut parsed = Cache::new();
        assert!(parsed.insert(&msg, now));
        assert_eq!(
            format!("{:?}", named.entries.keys().collect::<Vec<_>>()),
            format!("{:?}", parsed.entries.keys().collect::<Vec<_>>())
        );
        let query = query_msg(0x2222, "MIXED.example.com", 28, false);
        let q = DnsQuery::parse(&query).unwrap();
        let hit = named.lookup(&q, &query, 512, now).unwrap();
        assert_eq!(&hit[..2], &[0x22, 0x22]);
        // a question of another type misses
        let other = query_msg(0x3333, "mixed.example.com", 1, false);
        let q = DnsQuery::parse(&other).unwrap();
        assert!(named.lookup(&q, &other, 512, now).is_none());
    }

    #[test]
    fn expires_at_the_smallest_ttl() {
        let now = Instant::now();
        let mut cache = Cache::new();
        cache.insert(&answer(10), now);
        let msg = query_msg(1, "www.example.com", 1, false);
        let query = DnsQuery::parse(&msg).unwrap();
        assert!(cache
            .lookup(&query, &msg, 512, now + Duration::from_secs(9))
            .is_some());
        assert!(cache
            .lookup(&query, &msg, 512, now + Duration::from_secs(10))
            .is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn other_type_or_name_misses_and_uncacheable_answers_are_refused() {
        let now = Instant::now();
        let mut cache = Cache::new();
        cache.insert(&answer(10), now);
        let msg = query_msg(1, "www.example.com", 28, false);
        assert!(cache
            .lookup(&DnsQuery::parse(&msg).unwrap(), &msg, 512, now)
            .is_none());
        let msg = query_msg(1, "example.com", 1, false);
        assert!(cache
            .lookup(&DnsQuery::parse(&msg).unwrap(), &msg, 512, now)
            .is_none());

        assert!(!cache.insert(&answer(0), now)); // TTL 0
        let mut truncated = answer(10);
        truncated[2] |= 0x02;
        assert!(!cache.insert(&truncated, now));
        let mut servfail = answer(10);
        servfail[3] = (servfail[3] & 0xf0) | 2;
        assert!(!cache.insert(&servfail, now));
        assert!(!cache.insert(&answer_msg(1, "nodata.example", 1, &[]), now));
        assert!(!cache.insert(&query_msg(1, "q.example", 1, false), now));
        assert!(!cache.insert(&answer(10)[..20], now));
    }

    #[test]
    fn opt_is_cut_for_queries_without_edns_and_size_is_respected() {
        let now = Instant::now();
        let mut with_opt = answer(60);
        with_opt[11] = 1; // ARCOUNT 1
        with_opt.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        let mut cache = Cache::new();
        assert!(cache.insert(&with_opt, now));
        let plain = query_msg(3, "www.example.com", 1, false);
        let hit = cache
            .lookup(&DnsQuery::parse(&plain).unwrap(), &plain, 512, now)
            .unwrap();
        assert_eq!(hit.len(), with_opt.len() - 11);
        assert_eq!(hit[11], 0);
        assert!(hickory_proto::op::Message::from_vec(&hit)
            .unwrap()
            .edns
            .is_none());
        let edns = query_msg(4, "www.example.com", 1, true);
        let hit = cache
            .lookup(&DnsQuery::parse(&edns).unwrap(), &edns, 1232, now)
            .unwrap();
        assert_eq!(hit.len(), with_opt.len());
        assert!(cache
            .lookup(&DnsQuery::parse(&edns).unwrap(), &edns, 40, now)
            .is_none());
    }

    #[test]
    fn bounded_by_entries_with_lru_eviction() {
        let now = Instant::now();
        let mut cache = Cache::new();
        let n0 = query_msg(1, "n0.example", 1, false);
        for i in 0..MAX_CACHE_ENTRIES + 10 {
            let name = format!("n{i}.example");
            let msg = answer_msg(
                1,
                &name,
                1,
                &[Rr::A(&name, Ipv4Addr::new(192, 0, 2, 1), 60)],
            );
            assert!(cache.insert(&msg, now));
            if i == MAX_CACHE_ENTRIES - 1 {
                // Use n0 just before the cache overflows: it becomes the most recent.
                assert!(cache
                    .lookup(&DnsQuery::parse(&n0).unwrap(), &n0, 512, now)
                    .is_some());
            }
        }
        assert_eq!(cache.len(), MAX_CACHE_ENTRIES);
        assert!(cache.bytes <= MAX_CACHE_BYTES);
        let gone = query_msg(1, "n1.example", 1, false);
        assert!(cache
            .lookup(&DnsQuery::parse(&gone).unwrap(), &gone, 512, now)
            .is_none());
        assert!(cache
            .lookup(&DnsQuery::parse(&n0).unwrap(), &n0, 512, now)
            .is_some());
    }
}
