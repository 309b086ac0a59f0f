//! DNS in the engine: parse the queries apps send to port 53 (UDP or TCP), answer blocked ones
//! locally, parse upstream answers to learn which names an address belongs to, answer repeats from
//! a small cache, and recognise DNS-over-TLS/HTTPS endpoints that would bypass all of this.
//!
//! Everything here is IO-free and clock-free: time comes in as a `now: Instant` argument, so the
//! engine's fake clock drives expiry in tests.
//!
//! - [`DnsQuery::parse`] / [`DnsQuery::block_answer`]: query in, block answer out
//!   ([`BlockResponse`], default 0.0.0.0 / :: with a 5 s TTL, see [`DEFAULT_BLOCK_TTL`]).
//! - [`DnsAnswer::parse`]: A/AAAA/CNAME chains with TTLs from an upstream answer.
//! - [`NameTable`]: address -> names, bounded, TTL-driven, keeping shared-address ambiguity.
//! - [`Cache`]: answers repeats of (name, type, class) with the id rewritten and TTLs aged.
//! - [`TcpFramer`]: the 2-byte length framing of DNS over TCP.
//! - [`doh`]: port 853 and the well-known DNS-over-HTTPS endpoints.

#![warn(missing_docs)]

mod cache;
pub mod doh;
mod message;
mod names;

pub use cache::{Cache, MAX_CACHE_BYTES, MAX_CACHE_ENTRIES, MAX_CACHE_TTL};
pub use doh::{is_dot_port, is_known_doh_addr, is_known_doh_name};
pub use message::{
    clamp_ttls, AnswerAddress, BlockResponse, DnsAnswer, DnsQuery, EdnsInfo, TcpFramer,
    DEFAULT_BLOCK_TTL, MAX_ANSWER_TTL, MAX_TCP_FRAMER_BYTES,
};
pub use names::{
    LearnedName, NameTable, NamesForAddr, ATTRIBUTION_GRACE, MAX_ADDRS, MAX_NAMES_PER_ADDR,
};

/// Re-exported hickory-proto types that appear in this module's API.
pub use hickory_proto::op::ResponseCode;
pub use hickory_proto::rr::{DNSClass, RecordType};

/// Why a DNS message was not usable. Never a panic: every malformed input ends here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// The message ends before a field it announces (header, name, record, counts).
    Truncated,
    /// A query was expected but the QR bit says response.
    NotAQuery,
    /// A response was expected but the QR bit says query.
    NotAResponse,
    /// The opcode is not QUERY (e.g. NOTIFY, UPDATE); the engine does not answer those.
    UnsupportedOpcode(u8),
    /// The question count is not 1 (RFC 9619 allows exactly one).
    QuestionCount(u16),
    /// A field is invalid; the text comes from the decoder.
    Malformed(String),
    /// [`DnsQuery::block_answer`] was given bytes other than those the query was parsed from.
    NotTheParsedMessage,
    /// DNS-over-TCP framing: more buffered than one maximal message, or a message too long to frame.
    FramingOverflow,
}

impl std::fmt::Display for DnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DnsError::Truncated => write!(f, "DNS message truncated"),
            DnsError::NotAQuery => write!(f, "DNS message is a response, expected a query"),
            DnsError::NotAResponse => write!(f, "DNS message is a query, expected a response"),
            DnsError::UnsupportedOpcode(op) => write!(f, "DNS opcode {op} is not QUERY"),
            DnsError::QuestionCount(n) => write!(f, "DNS message has {n} questions, expected 1"),
            DnsError::Malformed(why) => write!(f, "malformed DNS message: {why}"),
            DnsError::NotTheParsedMessage => {
                write!(f, "bytes differ from the message the query was parsed from")
            }
            DnsError::FramingOverflow => write!(f, "DNS over TCP framing overflow"),
        }
    }
}

impl std::error::Error for DnsError {}
