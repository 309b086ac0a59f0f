//! DNS messages as the engine meets them: queries from apps (parsed, answered when blocked),
//! answers from the upstream resolver (parsed for name -> address learning), and the 2-byte length
//! framing of DNS over TCP.
//!
//! Parsing uses hickory-proto's decoders for names and records. Block answers are written by hand
//! from the query's own bytes: the question is echoed byte for byte, which keeps the letter case
//! of a "0x20"-randomized question (resolvers such as Android's and Unbound's compare it) and costs
//! one small allocation.

use std::net::IpAddr;

use hickory_proto::op::{Header, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::DnsError;

/// DNS header length (RFC 1035 §4.1.1).
pub(crate) const HEADER_LEN: usize = 12;
/// Record type of the EDNS(0) OPT pseudo-record (RFC 6891).
pub(crate) const TYPE_OPT: u16 = 41;
/// Record types the answer parse learns from (RFC 1035 §3.2.2, RFC 3596).
const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
/// Smallest question: root name (1) + type (2) + class (2).
const MIN_QUESTION_LEN: usize = 5;
/// Smallest resource record: root name (1) + type, class, TTL, rdlength (10).
const MIN_RECORD_LEN: usize = 11;
/// UDP payload size we announce in the OPT record of block answers: 1232 bytes, the value agreed
/// at DNS Flag Day 2020 to avoid IP fragmentation on any path.
const OUR_EDNS_UDP_SIZE: u16 = 1232;
/// Longest CNAME chain followed in an answer. Real chains are 1-4 long (CDNs); the bound stops a
/// looping or hostile answer from costing more.
const MAX_CNAME_CHAIN: usize = 16;
/// Most addresses taken from one answer. Large CDN answers carry 8-16; the bound caps what one
/// answer can push into the name table.
const MAX_ADDRESSES_PER_ANSWER: usize = 32;

/// Default TTL of block answers, in seconds.
///
/// Why 5 s: short enough that a name the user unblocks works again within seconds (the app's
/// resolver cache forgets the null answer), long enough that an app retrying in a loop is served
/// from its own cache instead of hammering the tunnel. RethinkDNS and Blokada use 5 s, PCAPdroid
/// 10 s (see the field notes, DNS).
pub const DEFAULT_BLOCK_TTL: u32 = 5;

/// How a blocked query is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockResponse {
    /// NOERROR with 0.0.0.0 for A and :: for AAAA; every other type (HTTPS/SVCB 65/64, MX, TXT...)
    /// gets NOERROR with no data. The default, because it looks like a normal answer: apps accept
    /// it, their connection to 0.0.0.0 fails locally at once, and they do not retry in a storm as
    /// some do after NXDOMAIN (PCAPdroid: "plain blocking makes apps spam retries"). HTTPS/SVCB get
    /// no data so that no ECH config or alternative endpoint leaks through them.
    NullAddress {
        /// TTL of the null address records, seconds ([`DEFAULT_BLOCK_TTL`]).
        ttl: u32,
    },
    /// NXDOMAIN: the honest "no such name" (NetGuard, DuckDuckGo); some apps retry it quickly.
    NxDomain,
    /// REFUSED: the resolver declines to answer; clients usually try the next resolver.
    Refused,
}

impl Default for BlockResponse {
    fn default() -> Self {
        BlockResponse::NullAddress {
            ttl: DEFAULT_BLOCK_TTL,
        }
    }
}

/// What the EDNS(0) OPT record of a message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdnsInfo {
    /// The requestor's UDP payload size (values below 512 are read as 512, RFC 6891 §6.2.5).
    pub udp_payload_size: u16,
    /// The DNSSEC OK bit.
    pub dnssec_ok: bool,
}

/// A DNS query from an app, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsQuery {
    /// Transaction id, echoed in the answer.
    pub id: u16,
    /// The question name, lowercased, without the trailing dot ("" for the root). Labels with bytes
    /// outside printable ASCII appear escaped (`\000`), so they never look like an ordinary name.
    pub name: String,
    /// The question type (A, AAAA, HTTPS...).
    pub qtype: RecordType,
    /// The question class (IN in practice).
    pub qclass: DNSClass,
    /// RD flag of the query, echoed in the answer.
    pub recursion_desired: bool,
    /// CD flag of the query, echoed in the answer.
    pub checking_disabled: bool,
    /// The query's OPT record, if any: the answer then carries one too (RFC 6891 §6.1.1).
    pub edns: Option<EdnsInfo>,
    /// Wire length of the question (name + type + class), which starts at offset 12.
    question_len: usize,
}

impl DnsQuery {
    /// Parses a query message (a UDP payload, or one TCP message without its length prefix).
    ///
    /// Only the header, the single question and the OPT record are read: a query has nothing else
    /// of use, and reading no more keeps the cost at one name decode and one `String`.
    pub fn parse(msg: &[u8]) -> Result<Self, DnsError> {
        let mut decoder = BinDecoder::new(msg);
        let header = Header::read(&mut decoder).map_err(|_| DnsError::Truncated)?;
        if header.metadata.message_type != MessageType::Query {
            return Err(DnsError::NotAQuery);
        }
        if header.metadata.op_code != OpCode::Query {
            return Err(DnsError::UnsupportedOpcode(u8::from(
                header.metadata.op_code,
            )));
        }
        if header.counts.queries != 1 {
            // RFC 9619: a query carries exactly one question.
            return Err(DnsError::QuestionCount(header.counts.queries));
        }
        reject_compressed_question(msg)?;
        let query = Query::read(&mut decoder).map_err(|e| DnsError::Malformed(e.to_string()))?;
        let question_end = decoder.index();
        let records = usize::from(header.counts.answers)
            + usize::from(header.counts.authorities)
            + usize::from(header.counts.additionals);
        let mut edns = None;
        let mut walker = RecordWalker::new(msg, question_end, records)?;
        while let Some(record) = walker.next_record()? {
            if record.rtype == TYPE_OPT {
                edns = Some(EdnsInfo {
                    udp_payload_size: record.class.max(512),
                    dnssec_ok: record.ttl & 0x8000 != 0,
                });
            }
        }
        Ok(DnsQuery {
            id: header.metadata.id,
            name: name_to_string(&query.name),
            qtype: query.query_type,
            qclass: query.query_class,
            recursion_desired: header.metadata.recursion_desired,
            checking_disabled: header.metadata.checking_disabled,
            edns,
            question_len: question_end - HEADER_LEN,
        })
    }

    /// The raw question bytes of `msg` (the message this query was parsed from).
    pub(crate) fn raw_question<'a>(&self, msg: &'a [u8]) -> Result<&'a [u8], DnsError> {
        if msg.get(..2) != Some(&self.id.to_be_bytes()[..]) {
            return Err(DnsError::NotTheParsedMessage);
        }
        msg.get(HEADER_LEN..HEADER_LEN + self.question_len)
            .ok_or(DnsError::NotTheParsedMessage)
    }

    /// The largest answer the client accepts over UDP: 512 bytes without EDNS (RFC 1035 §4.2.1),
    /// else its announced payload size.
    pub fn max_udp_answer_len(&self) -> usize {
        self.edns
            .map_or(512, |edns| usize::from(edns.udp_payload_size))
    }

    /// Writes the answer to a blocked query into `out` (cleared first).
    ///
    /// `msg` must be the bytes this query was parsed from. The answer has the same id, the question
    /// echoed byte for byte, QR=1, RD and CD copied, RA=1 (we act as the recursive resolver the
    /// app asked), AA=0, and an OPT record when the query had one.
    pub fn block_answer(
        &self,
        msg: &[u8],
        how: BlockResponse,
        out: &mut Vec<u8>,
    ) -> Result<(), DnsError> {
        let question = self.raw_question(msg)?;
        let null_address: Option<(u16, &[u8])> = match (how, self.qtype, self.qclass) {
            (BlockResponse::NullAddress { .. }, RecordType::A, DNSClass::IN) => Some((1, &[0; 4])),
            (BlockResponse::NullAddress { .. }, RecordType::AAAA, DNSClass::IN) => {
                Some((28, &[0; 16]))
            }
            _ => None,
        };
        let rcode = match how {
            BlockResponse::NullAddress { .. } => ResponseCode::NoError,
            BlockResponse::NxDomain => ResponseCode::NXDomain,
            BlockResponse::Refused => ResponseCode::Refused,
        };
        out.clear();
        out.reserve(HEADER_LEN + question.len() + 16 + 16 + 11);
        out.extend_from_slice(&self.id.to_be_bytes());
        // QR=1, opcode QUERY, AA=0, TC=0, RD copied.
        out.push(0x80 | u8::from(self.recursion_desired));
        // RA=1, Z=0, AD=0, CD copied, RCODE.
        out.push(0x80 | (u8::from(self.checking_disabled) << 4) | rcode.low());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&u16::from(null_address.is_some()).to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&u16::from(self.edns.is_some()).to_be_bytes());
        out.extend_from_slice(question);
        if let (Some((rtype, rdata)), BlockResponse::NullAddress { ttl }) = (null_address, how) {
            out.extend_from_slice(&[0xc0, HEADER_LEN as u8]); // pointer to the question name
            out.extend_from_slice(&rtype.to_be_bytes());
            out.extend_from_slice(&1u16.to_be_bytes()); // class IN
            out.extend_from_slice(&ttl.to_be_bytes());
            out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            out.extend_from_slice(rdata);
        }
        if self.edns.is_some() {
            out.push(0); // root name
            out.extend_from_slice(&TYPE_OPT.to_be_bytes());
            out.extend_from_slice(&OUR_EDNS_UDP_SIZE.to_be_bytes());
            out.extend_from_slice(&0u32.to_be_bytes()); // extended rcode, version 0, no flags
            out.extend_from_slice(&0u16.to_be_bytes()); // no options
        }
        Ok(())
    }
}

/// One address learned from an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerAddress {
    /// The address (from an A or AAAA record).
    pub addr: IpAddr,
    /// Seconds the mapping is valid: the smallest TTL along the CNAME chain and the record.
    pub ttl: u32,
}

/// An upstream answer, parsed for what the engine learns from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// Transaction id (matches the forwarded query).
    pub id: u16,
    /// The question name, lowercased, without the trailing dot.
    pub name: String,
    /// The question type.
    pub qtype: RecordType,
    /// The response code (NOERROR, NXDOMAIN, SERVFAIL...).
    pub rcode: ResponseCode,
    /// TC flag: a truncated UDP answer (the client will retry over TCP).
    pub truncated: bool,
    /// The CNAME chain from the question name, in order, without the question name itself.
    pub chain: Vec<String>,
    /// A and AAAA addresses of the question name or of a name in its chain, at most 32.
    pub addresses: Vec<AnswerAddress>,
}

impl DnsAnswer {
    /// Parses a response message (UDP payload, or one TCP message without its length prefix).
    ///
    /// Malformed answers give an error, never a panic. Records that are not about the question's
    /// name or its CNAME chain are ignored: an answer cannot teach the table about unrelated names.
    pub fn parse(msg: &[u8]) -> Result<Self, DnsError> {
        check_counts_fit(msg)?;
        // Only what the engine learns is decoded: the header, the question, and the owner
        // names and data of the answer section's A, AAAA and CNAME records. Every other record
        // is walked with its lengths checked, not decoded: hickory's whole-message decode (every
        // record, EDNS options into a map) was most of the cost of a forwarded answer.
        let malformed =
            |e: hickory_proto::serialize::binary::DecodeError| DnsError::Malformed(e.to_string());
        let mut decoder = BinDecoder::new(msg);
        let header = Header::read(&mut decoder).map_err(malformed)?;
        if header.metadata.message_type != MessageType::Response {
            return Err(DnsError::NotAResponse);
        }
        if header.counts.queries != 1 {
            return Err(DnsError::QuestionCount(header.counts.queries));
        }
        let query = Query::read(&mut decoder).map_err(malformed)?;
        let name = name_to_string(&query.name);
        let answers = usize::from(header.counts.answers);
        let others =
            usize::from(header.counts.authorities) + usize::from(header.counts.additionals);
        let mut walker = RecordWalker::new(msg, decoder.index(), answers + others)?;
        // (owner, data, TTL) of the records that can teach a name -> address mapping.
        let mut learned: Vec<(String, Learned, u32)> = Vec::new();
        let mut walked = 0;
        while let Some(record) = walker.next_record()? {
            walked += 1;
            if walked > answers {
                continue; // authority and additional sections: checked, not learned from
            }
            let rdata = msg
                .get(record.data_start..record.end)
                .ok_or(DnsError::Truncated)?;
            let data = match record.rtype {
                TYPE_A => Learned::Addr(IpAddr::V4(
                    <[u8; 4]>::try_from(rdata)
                        .map_err(|_| bad_rdata("A"))?
                        .into(),
                )),
                TYPE_AAAA => Learned::Addr(IpAddr::V6(
                    <[u8; 16]>::try_from(rdata)
                        .map_err(|_| bad_rdata("AAAA"))?
                        .into(),
                )),
                TYPE_CNAME => {
                    let mut at = decoder_at(msg, record.data_start)?;
                    let target = Name::read(&mut at).map_err(malformed)?;
                    if at.index() > record.end {
                        return Err(bad_rdata("CNAME"));
                    }
                    Learned::Cname(name_to_string(&target))
                }
                _ => continue,
            };
            let owner = Name::read(&mut decoder_at(msg, record.start)?).map_err(malformed)?;
            learned.push((name_to_string(&owner), data, record.ttl));
        }

        // Follow the CNAME chain from the question name.
        let mut chain: Vec<String> = Vec::new();
        let mut chain_ttls: Vec<u32> = Vec::new();
        let mut min_ttl = u32::MAX;
        while chain.len() < MAX_CNAME_CHAIN {
            let current = chain.last().unwrap_or(&name);
            let next = learned.iter().find_map(|(owner, data, ttl)| match data {
                Learned::Cname(target) if owner == current => Some((target, *ttl)),
                _ => None,
            });
            let Some((target, ttl)) = next else { break };
            let target = target.clone();
            if target == name || chain.contains(&target) {
                break; // a loop
            }
            min_ttl = min_ttl.min(ttl);
            chain.push(target);
            chain_ttls.push(min_ttl);
        }

        let mut addresses = Vec::new();
        for (owner, data, ttl) in &learned {
            let Learned::Addr(addr) = *data else {
                continue;
            };
            // TTL of the path: the chain links up to the owner, and the record itself.
            let path_ttl = if *owner == name {
                u32::MAX
            } else if let Some(at) = chain.iter().position(|c| c == owner) {
                chain_ttls.get(at).copied().unwrap_or(0)
            } else {
                continue; // not about the question
            };
            if addresses.len() == MAX_ADDRESSES_PER_ANSWER {
                break;
            }
            addresses.push(AnswerAddress {
                addr,
                ttl: (*ttl).min(path_ttl),
            });
        }
        Ok(DnsAnswer {
            id: header.metadata.id,
            name,
            qtype: query.query_type,
            rcode: header.metadata.response_code,
            truncated: header.metadata.truncation,
            chain,
            addresses,
        })
    }

    /// The question name followed by every name of its CNAME chain.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str()).chain(self.chain.iter().map(String::as_str))
    }
}

/// The data of an answer-section record the engine learns from.
enum Learned {
    Addr(IpAddr),
    Cname(String),
}

fn bad_rdata(kind: &str) -> DnsError {
    DnsError::Malformed(format!("{kind} record with malformed data"))
}

/// A decoder at `at`, for names that may point back into the message (compression).
fn decoder_at(msg: &[u8], at: usize) -> Result<BinDecoder<'_>, DnsError> {
    // A message longer than 64 KiB is refused before this (UDP, or one TCP-framed message).
    let at = u16::try_from(at).map_err(|_| DnsError::Truncated)?;
    Ok(BinDecoder::new(msg).clone(at))
}

/// Rejects a message whose section counts cannot fit in its length, before any decoder sizes a
/// `Vec` from them (a 12-byte message claiming 65535 records would otherwise reserve megabytes).
fn check_counts_fit(msg: &[u8]) -> Result<(), DnsError> {
    let header = msg.get(..HEADER_LEN).ok_or(DnsError::Truncated)?;
    let count = |at: usize| usize::from(u16::from_be_bytes([header[at], header[at + 1]]));
    let records = count(6) + count(8) + count(10);
    let needed = count(4) * MIN_QUESTION_LEN + records * MIN_RECORD_LEN;
    if HEADER_LEN + needed > msg.len() {
        return Err(DnsError::Truncated);
    }
    Ok(())
}

/// Rejects a question name that uses compression. Nothing precedes the question but the header,
/// so a pointer there can only point into the header: the name would then read differently in an
/// answer (whose header differs) that echoes the question bytes. Returns where the name ends
/// (its type field).
pub(crate) fn reject_compressed_question(msg: &[u8]) -> Result<usize, DnsError> {
    let mut at = HEADER_LEN;
    loop {
        match *msg.get(at).ok_or(DnsError::Truncated)? {
            0 => return Ok(at + 1),
            len @ 1..=63 => at += 1 + usize::from(len),
            _ => {
                return Err(DnsError::Malformed(
                    "compressed or invalid question name".into(),
                ))
            }
        }
    }
}

/// A name as text: lowercased ASCII, escaped where needed, no trailing dot.
///
/// Every forwarded question costs a few of these (the question, the answer's question and owner
/// names, the cache key). hickory's `to_ascii` writes character by character through its
/// escaping formatter; names whose bytes need no escape (nearly all) are copied here in one
/// pass instead, with the same result, and only the others go through hickory.
pub(crate) fn name_to_string(name: &Name) -> String {
    // Bytes, not chars: the labels are checked ASCII, so each is copied whole and lowercased in
    // one pass at the end (pushing chars one by one was half the function's cost).
    let mut text = Vec::with_capacity(name.len());
    for (i, label) in name.iter().enumerate() {
        let plain = label.iter().enumerate().all(|(at, &b)| {
            // hickory's `is_safe_ascii` for encoding: these are written as they are.
            b.is_ascii_alphanumeric()
                || b == b'_'
                || (b == b'-' && at > 0)
                || (b == b'*' && at == 0)
        });
        if !plain {
            return name_to_string_escaped(name);
        }
        if i > 0 {
            text.push(b'.');
        }
        text.extend_from_slice(label);
    }
    text.make_ascii_lowercase();
    // Every byte is ASCII (checked above), so this is the text; hickory's path if it ever is not.
    String::from_utf8(text).unwrap_or_else(|_| name_to_string_escaped(name))
}

/// [`name_to_string`] through hickory's escaping, for names with bytes that need it.
fn name_to_string_escaped(name: &Name) -> String {
    let mut text = name.to_ascii();
    if text.ends_with('.') {
        text.pop();
    }
    text.make_ascii_lowercase();
    text
}

/// The fixed fields of one resource record, located in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawRecord {
    /// Record type.
    pub rtype: u16,
    /// Class field (the UDP payload size for OPT).
    pub class: u16,
    /// TTL field (extended rcode and flags for OPT).
    pub ttl: u32,
    /// Offset of the TTL field in the message.
    pub ttl_offset: usize,
    /// Offset of the record's first byte.
    pub start: usize,
    /// Offset just past the record.
    pub end: usize,
    /// Offset of the record's data (it ends at `end`).
    pub data_start: usize,
}

/// Walks the resource records of a message without decoding them: enough to find TTL fields and
/// the OPT record, with every length checked.
pub(crate) struct RecordWalker<'a> {
    msg: &'a [u8],
    at: usize,
    remaining: usize,
}

impl<'a> RecordWalker<'a> {
    /// Starts at `at` (just past the question section) for `count` records.
    pub(crate) fn new(msg: &'a [u8], at: usize, count: usize) -> Result<Self, DnsError> {
        if count.saturating_mul(MIN_RECORD_LEN) > msg.len().saturating_sub(at) {
            return Err(DnsError::Truncated);
        }
        Ok(RecordWalker {
            msg,
            at,
            remaining: count,
        })
    }

    /// The next record, `None` after the last.
    pub(crate) fn next_record(&mut self) -> Result<Option<RawRecord>, DnsError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let start = self.at;
        let fixed = skip_name(self.msg, start)?;
        let field = self.msg.get(fixed..fixed + 10).ok_or(DnsError::Truncated)?;
        let rtype = u16::from_be_bytes([field[0], field[1]]);
        let class = u16::from_be_bytes([field[2], field[3]]);
        let ttl = u32::from_be_bytes([field[4], field[5], field[6], field[7]]);
        let rdlen = usize::from(u16::from_be_bytes([field[8], field[9]]));
        let end = fixed + 10 + rdlen;
        if end > self.msg.len() {
            return Err(DnsError::Truncated);
        }
        self.at = end;
        Ok(Some(RawRecord {
            rtype,
            class,
            ttl,
            ttl_offset: fixed + 4,
            start,
            end,
            data_start: fixed + 10,
        }))
    }
}

/// The longest TTL the engine passes on or caches: one day. An upstream's TTL of 2^32-1 (or any
/// value over 2^31-1, which RFC 2181 §8 says to treat as zero but many stubs do not) would pin a
/// name's address in apps' caches for as long as they run.
pub const MAX_ANSWER_TTL: u32 = 24 * 60 * 60;

/// Clamps the TTL of every record of `msg` (answers, authorities, additionals; not OPT, whose
/// TTL field holds EDNS flags) to `max`, in place. Returns how many were lowered; a message that
/// cannot be walked is left as it is (the caller's parse rejects it).
pub fn clamp_ttls(msg: &mut [u8], max: u32) -> usize {
    let Some(header) = msg.get(..HEADER_LEN) else {
        return 0;
    };
    let count = |i: usize| usize::from(u16::from_be_bytes([header[i], header[i + 1]]));
    let (questions, records) = (count(4), count(6) + count(8) + count(10));
    let mut at = HEADER_LEN;
    for _ in 0..questions {
        match skip_name(msg, at) {
            Ok(end) => at = end + 4,
            Err(_) => return 0,
        }
    }
    let mut offsets = Vec::new();
    let Ok(mut walker) = RecordWalker::new(msg, at, records) else {
        return 0;
    };
    while let Ok(Some(record)) = walker.next_record() {
        if record.rtype != TYPE_OPT && record.ttl > max {
            offsets.push(record.ttl_offset);
        }
    }
    for &offset in &offsets {
        msg[offset..offset + 4].copy_from_slice(&max.to_be_bytes());
    }
    offsets.len()
}

/// Offset just past the (possibly compressed) name at `at`.
pub(crate) fn skip_name(msg: &[u8], mut at: usize) -> Result<usize, DnsError> {
    // 128 labels is more than a 255-byte name can hold: the bound ends any malformed walk.
    for _ in 0..128 {
        let len = *msg.get(at).ok_or(DnsError::Truncated)?;
        match len {
            0 => return Ok(at + 1),
            1..=63 => at += 1 + usize::from(len),
            0xc0..=0xff => {
                msg.get(at + 1).ok_or(DnsError::Truncated)?;
                return Ok(at + 2);
            }
            _ => return Err(DnsError::Malformed("reserved label type".into())),
        }
    }
    Err(DnsError::Malformed("name too long".into()))
}

/// Accumulates a DNS-over-TCP byte stream (across segments) and yields whole messages.
///
/// DNS over TCP prefixes each message with its 2-byte length (RFC 1035 §4.2.2, RFC 7766); a
/// message can be split over segments and several can share one.
#[derive(Debug, Default, Clone)]
pub struct TcpFramer {
    buf: Vec<u8>,
}

/// Most bytes a [`TcpFramer`] holds: one largest possible message and its prefix. A client that
/// sends more without a complete message is broken or hostile; the engine resets the flow.
pub const MAX_TCP_FRAMER_BYTES: usize = 2 + u16::MAX as usize;

impl TcpFramer {
    /// An empty framer (no allocation until bytes arrive).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends stream bytes. Fails when more than [`MAX_TCP_FRAMER_BYTES`] would be buffered.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), DnsError> {
        if self.buf.len() + bytes.len() > MAX_TCP_FRAMER_BYTES {
            return Err(DnsError::FramingOverflow);
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// The next complete message, without its length prefix. A zero-length message is returned
    /// as an empty `Vec` (and fails to parse).
    pub fn next_message(&mut self) -> Option<Vec<u8>> {
        let len = usize::from(u16::from_be_bytes([*self.buf.first()?, *self.buf.get(1)?]));
        let message = self.buf.get(2..2 + len)?.to_vec();
        self.buf.drain(..2 + len);
        Some(message)
    }

    /// Bytes held that do not form a complete message yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends `msg` with its 2-byte length prefix to `out`, for answers sent over TCP.
    pub fn frame(msg: &[u8], out: &mut Vec<u8>) -> Result<(), DnsError> {
        let len = u16::try_from(msg.len()).map_err(|_| DnsError::FramingOverflow)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(msg);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Builds a query for `name` (case kept as given) and `qtype`, optionally with an OPT record.
    pub(crate) fn query_msg(id: u16, name: &str, qtype: u16, edns: bool) -> Vec<u8> {
        let mut msg = id.to_be_bytes().to_vec();
        msg.extend_from_slice(&[0x01, 0x20]); // RD, AD
        msg.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
        push_name(&mut msg, name);
        msg.extend_from_slice(&qtype.to_be_bytes());
        msg.extend_from_slice(&1u16.to_be_bytes());
        if edns {
            msg.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
        }
        msg
    }

    #[test]
    fn name_text_matches_hickorys_escaping() {
        let labels: &[&[&[u8]]] = &[
            &[],
            &[b"WWW", b"Example", b"COM"],
            &[b"u123", b"allowed", b"test"],
            &[b"_sip", b"_tcp", b"example", b"com"],
            &[b"*", b"example", b"com"],
            &[b"a*b", b"com"],
            &[b"-lead", b"com"],
            &[b"mid-dle", b"com"],
            &[b"xn--bcher-kva", b"example"],
            &[b"sp ace", b"com"],
            &[b"dot.inside", b"com"],
            &[b"nul\0", b"c\x7f"],
            &[b"caf\xc3\xa9", b"com"],
            &[b"\\back", b"com"],
        ];
        for raw in labels {
            let mut name = Name::from_labels(raw.iter().copied()).expect("valid labels");
            name.set_fqdn(true); // as decoded from a message
            assert_eq!(
                name_to_string(&name),
                name_to_string_escaped(&name),
                "{raw:?}"
            );
        }
    }

    pub(crate) fn push_name(msg: &mut Vec<u8>, name: &str) {
        for label in name.split('.').filter(|l| !l.is_empty()) {
            msg.push(label.len() as u8);
            msg.extend_from_slice(label.as_bytes());
        }
        msg.push(0);
    }

    /// A record in an answer under construction.
    pub(crate) enum Rr<'a> {
        Cname(&'a str, &'a str, u32),
        A(&'a str, Ipv4Addr, u32),
        Aaaa(&'a str, Ipv6Addr, u32),
    }

    /// Builds a NOERROR response to `name`/`qtype` with the given answer records.
    pub(crate) fn answer_msg(id: u16, name: &str, qtype: u16, records: &[Rr<'_>]) -> Vec<u8> {
        let mut msg = id.to_be_bytes().to_vec();
        msg.extend_from_slice(&[0x81, 0x80, 0, 1]);
        msg.extend_from_slice(&(records.len() as u16).to_be_bytes());
        msg.extend_from_slice(&[0, 0, 0, 0]);
        push_name(&mut msg, name);
        msg.extend_from_slice(&qtype.to_be_bytes());
        msg.extend_from_slice(&1u16.to_be_bytes());
        for record in records {
            let (owner, rtype, ttl, rdata) = match record {
                Rr::Cname(owner, target, ttl) => {
                    let mut rdata = Vec::new();
                    push_name(&mut rdata, target);
                    (owner, 5u16, ttl, rdata)
                }
                Rr::A(owner, addr, ttl) => (owner, 1, ttl, addr.octets().to_vec()),
                Rr::Aaaa(owner, addr, ttl) => (owner, 28, ttl, addr.octets().to_vec()),
            };
            push_name(&mut msg, owner);
            msg.extend_from_slice(&rtype.to_be_bytes());
            msg.extend_from_slice(&1u16.to_be_bytes());
            msg.extend_from_slice(&ttl.to_be_bytes());
            msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            msg.extend_from_slice(&rdata);
        }
        msg
    }

    #[test]
    fn parses_a_query_lowercased_without_trailing_dot() {
        let msg = query_msg(0xbeef, "WwW.ExAmple.ORG", 1, false);
        let query = DnsQuery::parse(&msg).unwrap();
        assert_eq!(query.id, 0xbeef);
        assert_eq!(query.name, "www.example.org");
        assert_eq!(query.qtype, RecordType::A);
        assert_eq!(query.qclass, DNSClass::IN);
        assert!(query.recursion_desired);
        assert_eq!(query.edns, None);
        assert_eq!(query.max_udp_answer_len(), 512);
    }

    #[test]
    fn reads_edns_from_a_query() {
        let query = DnsQuery::parse(&query_msg(1, "a.example", 65, true)).unwrap();
        assert_eq!(
            query.edns,
            Some(EdnsInfo {
                udp_payload_size: 1232,
                dnssec_ok: true
            })
        );
        assert_eq!(query.qtype, RecordType::HTTPS);
    }

    #[test]
    fn rejects_what_is_not_a_single_question_query() {
        let mut msg = query_msg(1, "a.example", 1, false);
        assert!(matches!(
            DnsQuery::parse(&msg[..5]),
            Err(DnsError::Truncated)
        ));
        assert!(DnsQuery::parse(&msg[..msg.len() - 1]).is_err());
        msg[2] |= 0x80;
        assert!(matches!(DnsQuery::parse(&msg), Err(DnsError::NotAQuery)));
        msg[2] = 0x01 | (5 << 3); // UPDATE
        assert!(matches!(
            DnsQuery::parse(&msg),
            Err(DnsError::UnsupportedOpcode(5))
        ));
        let mut msg = query_msg(1, "a.example", 1, false);
        msg[5] = 2;
        assert!(matches!(
            DnsQuery::parse(&msg),
            Err(DnsError::QuestionCount(2))
        ));
        let mut msg = query_msg(1, "a.example", 1, false);
        msg[11] = 200; // claims 200 additional records
        assert!(matches!(DnsQuery::parse(&msg), Err(DnsError::Truncated)));
    }

    #[test]
    fn null_address_block_answer_for_a_echoes_the_question_bytes() {
        let msg = query_msg(0x1234, "TrAcker.Example", 1, false);
        let query = DnsQuery::parse(&msg).unwrap();
        let mut out = Vec::new();
        query
            .block_answer(&msg, BlockResponse::default(), &mut out)
            .unwrap();
        assert_eq!(&out[..2], &[0x12, 0x34]);
        assert_eq!(out[2], 0x81); // QR, RD
        assert_eq!(out[3], 0x80); // RA, NOERROR
        assert_eq!(&out[4..12], &[0, 1, 0, 1, 0, 0, 0, 0]);
        assert_eq!(&out[12..msg.len()], &msg[12..]); // 0x20 case kept

        let parsed = hickory_proto::op::Message::from_vec(&out).unwrap();
        assert_eq!(parsed.answers.len(), 1);
        assert_eq!(parsed.answers[0].ttl, DEFAULT_BLOCK_TTL);
        assert_eq!(
            parsed.answers[0].data,
            hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A(Ipv4Addr::UNSPECIFIED))
        );
        let learned = DnsAnswer::parse(&out).unwrap();
        assert_eq!(learned.addresses[0].addr, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn null_address_for_aaaa_and_no_data_for_https_with_edns() {
        let msg = query_msg(7, "t.example", 28, true);
        let query = DnsQuery::parse(&msg).unwrap();
        let mut out = Vec::new();
        query
            .block_answer(&msg, BlockResponse::NullAddress { ttl: 10 }, &mut out)
            .unwrap();
        let parsed = hickory_proto::op::Message::from_vec(&out).unwrap();
        assert_eq!(
            parsed.answers[0].data,
            hickory_proto::rr::RData::AAAA(hickory_proto::rr::rdata::AAAA(Ipv6Addr::UNSPECIFIED))
        );
        assert_eq!(parsed.answers[0].ttl, 10);
        assert!(parsed.edns.is_some());

        for qtype in [65, 64, 16, 255] {
            let msg = query_msg(7, "t.example", qtype, false);
            let query = DnsQuery::parse(&msg).unwrap();
            query
                .block_answer(&msg, BlockResponse::default(), &mut out)
                .unwrap();
            let parsed = hickory_proto::op::Message::from_vec(&out).unwrap();
            assert_eq!(parsed.metadata.response_code, ResponseCode::NoError);
            assert!(parsed.answers.is_empty(), "type {qtype}");
            assert_eq!(parsed.queries.len(), 1);
        }
    }

    #[test]
    fn nxdomain_and_refused_answers() {
        let msg = query_msg(9, "t.example", 1, false);
        let query = DnsQuery::parse(&msg).unwrap();
        let mut out = Vec::new();
        for (how, rcode) in [
            (BlockResponse::NxDomain, ResponseCode::NXDomain),
            (BlockResponse::Refused, ResponseCode::Refused),
        ] {
            query.block_answer(&msg, how, &mut out).unwrap();
            let parsed = hickory_proto::op::Message::from_vec(&out).unwrap();
            assert_eq!(parsed.metadata.response_code, rcode);
            assert_eq!(parsed.metadata.id, 9);
            assert!(parsed.metadata.recursion_available);
            assert!(parsed.metadata.recursion_desired);
            assert!(parsed.answers.is_empty());
        }
        // A different message than the one parsed is refused, not answered wrongly.
        let other = query_msg(10, "t.example", 1, false);
        assert!(query
            .block_answer(&other, BlockResponse::NxDomain, &mut out)
            .is_err());
    }

    #[test]
    fn answer_follows_cname_chains_with_the_smallest_ttl() {
        let msg = answer_msg(
            5,
            "www.Example.com",
            1,
            &[
                Rr::Cname("www.example.com", "www.example.com.cdn.net", 300),
                Rr::Cname("www.example.com.cdn.net", "edge.cdn.net", 60),
                Rr::A("edge.cdn.net", Ipv4Addr::new(192, 0, 2, 1), 20),
                Rr::A("edge.cdn.net", Ipv4Addr::new(192, 0, 2, 2), 100),
                Rr::A("unrelated.example", Ipv4Addr::new(192, 0, 2, 99), 100),
            ],
        );
        let answer = DnsAnswer::parse(&msg).unwrap();
        assert_eq!(answer.name, "www.example.com");
        assert_eq!(answer.chain, ["www.example.com.cdn.net", "edge.cdn.net"]);
        assert_eq!(
            answer.addresses,
            [
                AnswerAddress {
                    addr: "192.0.2.1".parse().unwrap(),
                    ttl: 20
                },
                AnswerAddress {
                    addr: "192.0.2.2".parse().unwrap(),
                    ttl: 60
                },
            ]
        );
        assert_eq!(
            answer.names().collect::<Vec<_>>(),
            ["www.example.com", "www.example.com.cdn.net", "edge.cdn.net"]
        );
    }

    /// Names compressed as hickory (and real resolvers) write them, records in every section
    /// and an OPT record: the parse reads only the answer section's A, AAAA and CNAME records,
    /// following compression pointers in owner names and CNAME targets.
    #[test]
    fn answer_reads_compressed_names_and_skips_other_sections() {
        use hickory_proto::op::{Message, MessageType, Query};
        use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS};
        use hickory_proto::rr::{RData, Record};
        let name = |n: &str| Name::from_ascii(n).unwrap();
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(name("Video.Example.com."), RecordType::AAAA));
        m.add_answer(Record::from_rdata(
            name("video.example.com."),
            300,
            RData::CNAME(CNAME(name("edge.example.com."))),
        ));
        m.add_answer(Record::from_rdata(
            name("edge.example.com."),
            40,
            RData::AAAA(AAAA("2001:db8::7".parse().unwrap())),
        ));
        m.add_answer(Record::from_rdata(
            name("elsewhere.example.com."),
            40,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 66))),
        ));
        m.add_authority(Record::from_rdata(
            name("example.com."),
            600,
            RData::NS(NS(name("ns.example.com."))),
        ));
        m.add_additional(Record::from_rdata(
            name("ns.example.com."),
            600,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 53))),
        ));
        let msg = m.to_vec().unwrap();
        // hickory compressed the repeated suffixes: the message is shorter than its names
        assert!(
            msg.windows(7).filter(|w| w == b"example").count() == 1,
            "{msg:?}"
        );
        let answer = DnsAnswer::parse(&msg).unwrap();
        assert_eq!(answer.id, 7);
        assert_eq!(answer.name, "video.example.com");
        assert_eq!(answer.qtype, RecordType::AAAA);
        assert_eq!(answer.chain, ["edge.example.com"]);
        assert_eq!(
            answer.addresses,
            [AnswerAddress {
                addr: "2001:db8::7".parse().unwrap(),
                ttl: 40
            }]
        );
    }

    #[test]
    fn answer_records_with_malformed_data_are_errors() {
        let msg = answer_msg(
            9,
            "x.example",
            1,
            &[Rr::A("x.example", Ipv4Addr::new(192, 0, 2, 1), 60)],
        );
        // The A record's data is its last 4 bytes: claim 3 (and drop one byte).
        let mut short = msg[..msg.len() - 1].to_vec();
        let rdlen_at = short.len() - 3 - 2;
        short[rdlen_at..rdlen_at + 2].copy_from_slice(&3u16.to_be_bytes());
        assert!(matches!(
            DnsAnswer::parse(&short),
            Err(DnsError::Malformed(m)) if m.contains("A record")
        ));
        // A CNAME whose target runs past its data into the next record.
        let msg = answer_msg(
            9,
            "x.example",
            1,
            &[
                Rr::Cname("x.example", "y.example", 60),
                Rr::A("y.example", Ipv4Addr::new(192, 0, 2, 1), 60),
            ],
        );
        let mut long_target = msg.clone();
        // question: header 12 + name 11 + 4; the CNAME's owner is 11 bytes, then type, class,
        // TTL and the data length, which now claims only the target's first label.
        let rdlen_at = 12 + 11 + 4 + 11 + 8;
        long_target[rdlen_at..rdlen_at + 2].copy_from_slice(&2u16.to_be_bytes());
        assert!(DnsAnswer::parse(&long_target).is_err());
    }

    #[test]
    fn answer_with_aaaa_and_a_cname_loop() {
        let msg = answer_msg(
            5,
            "a.example",
            28,
            &[
                Rr::Cname("a.example", "b.example", 30),
                Rr::Cname("b.example", "a.example", 30),
                Rr::Aaaa("a.example", "2001:db8::1".parse().unwrap(), 50),
            ],
        );
        let answer = DnsAnswer::parse(&msg).unwrap();
        assert_eq!(answer.chain, ["b.example"]);
        assert_eq!(answer.addresses.len(), 1);
        assert_eq!(answer.addresses[0].ttl, 50);
    }

    #[test]
    fn malformed_answers_are_errors() {
        let msg = answer_msg(
            5,
            "a.example",
            1,
            &[Rr::A("a.example", Ipv4Addr::LOCALHOST, 5)],
        );
        for cut in 0..msg.len() {
            assert!(DnsAnswer::parse(&msg[..cut]).is_err(), "cut {cut}");
        }
        let mut huge_counts = msg[..12].to_vec();
        huge_counts[6..8].copy_from_slice(&[0xff, 0xff]);
        assert!(matches!(
            DnsAnswer::parse(&huge_counts),
            Err(DnsError::Truncated)
        ));
        assert!(matches!(
            DnsAnswer::parse(&query_msg(1, "a", 1, false)),
            Err(DnsError::NotAResponse)
        ));
    }

    #[test]
    fn tcp_framer_joins_and_splits_messages() {
        let a = query_msg(1, "a.example", 1, false);
        let b = query_msg(2, "b.example", 28, false);
        let mut stream = Vec::new();
        TcpFramer::frame(&a, &mut stream).unwrap();
        TcpFramer::frame(&b, &mut stream).unwrap();
        let mut framer = TcpFramer::new();
        let mut got = Vec::new();
        for byte in &stream {
            framer.push(std::slice::from_ref(byte)).unwrap();
            while let Some(message) = framer.next_message() {
                got.push(message);
            }
        }
        assert_eq!(got, [a, b]);
        assert_eq!(framer.buffered(), 0);
        assert!(framer.push(&vec![0; MAX_TCP_FRAMER_BYTES + 1]).is_err());
        assert!(TcpFramer::frame(&vec![0; 70_000], &mut stream).is_err());
    }

    #[test]
    fn compressed_question_names_are_refused() {
        let mut msg = query_msg(1, "a.example", 1, false);
        msg.truncate(12);
        msg.extend_from_slice(&[0xc0, 0x00, 0, 1, 0, 1]);
        assert!(matches!(DnsQuery::parse(&msg), Err(DnsError::Malformed(_))));
    }

    #[test]
    fn skip_name_bounds() {
        assert_eq!(skip_name(&[0], 0).unwrap(), 1);
        assert_eq!(skip_name(&[1, b'a', 0xc0, 0], 0).unwrap(), 4);
        assert!(skip_name(&[1, b'a'], 0).is_err());
        assert!(skip_name(&[0x40], 0).is_err());
        assert!(skip_name(&[0xc0], 0).is_err());
        let many = [1u8, b'a'].repeat(200);
        assert!(skip_name(&many, 0).is_err());
    }
}

#[cfg(test)]
mod clamp_tests {
    use super::*;

    #[test]
    fn clamps_record_ttls_but_not_opt_flags() {
        // Header: 1 question, 1 answer, 0 authority, 1 additional (OPT).
        let mut msg = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 1];
        msg.extend_from_slice(b"\x01a\x07example\x00\x00\x01\x00\x01");
        msg.extend_from_slice(&[
            0xc0, 12, 0, 1, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 4, 1, 2, 3, 4,
        ]);
        msg.extend_from_slice(&[0, 0, 41, 0x10, 0, 0xff, 0xff, 0xff, 0xff, 0, 0]);
        let before = msg.clone();
        assert_eq!(clamp_ttls(&mut msg, MAX_ANSWER_TTL), 1);
        let ttl_at = 12 + 15 + 6;
        assert_eq!(&msg[ttl_at..ttl_at + 4], &MAX_ANSWER_TTL.to_be_bytes());
        let opt_ttl = msg.len() - 6;
        assert_eq!(&msg[opt_ttl..opt_ttl + 4], &[0xff; 4], "OPT flags kept");
        assert_eq!(msg.len(), before.len());
        // Malformed: left alone.
        let mut cut = before[..20].to_vec();
        assert_eq!(clamp_ttls(&mut cut, MAX_ANSWER_TTL), 0);
        assert_eq!(cut, before[..20]);
    }
}
