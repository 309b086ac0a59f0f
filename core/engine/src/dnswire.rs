//! The engine's view of DNS messages: the question of a query (parsed by hand, allocation-free
//! apart from the name), block answers built from the query's own bytes, and the addresses and
//! CNAME chain of an upstream answer (parsed with hickory-proto).
//!
//! Kept minimal and private: the `dns` module owns the full DNS toolkit; this is the part of it
//! the packet path needs with the exact shape the engine uses.

use std::net::IpAddr;

use hickory_proto::op::Message;
use hickory_proto::rr::RData;

use crate::config::DnsBlockAnswer;

/// Record types with special block handling.
pub(crate) const TYPE_A: u16 = 1;
pub(crate) const TYPE_AAAA: u16 = 28;

/// The question of a DNS query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Question {
    pub id: u16,
    /// Lowercase, no trailing dot ("." for the root).
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// Offset just after the question (header + question = what an answer echoes).
    pub end: usize,
}

/// Parse the single question of a query. `None`: not a plain query with exactly one question.
pub(crate) fn parse_query(msg: &[u8]) -> Option<Question> {
    if msg.len() < 12 {
        return None;
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    // QR must be 0 (a query) and the opcode QUERY (0).
    if flags & 0x8000 != 0 || (flags >> 11) & 0xf != 0 {
        return None;
    }
    if u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return None;
    }
    let (name, at) = read_name(msg, 12)?;
    if at + 4 > msg.len() {
        return None;
    }
    Some(Question {
        id: u16::from_be_bytes([msg[0], msg[1]]),
        name,
        qtype: u16::from_be_bytes([msg[at], msg[at + 1]]),
        qclass: u16::from_be_bytes([msg[at + 2], msg[at + 3]]),
        end: at + 4,
    })
}

/// An uncompressed name at `at` (questions are never compressed in practice; a pointer is
/// refused). Returns the lowercase dotted name and the offset after it.
fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    loop {
        let len = usize::from(*msg.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = msg.get(at..at + len)?;
        if !name.is_empty() {
            name.push('.');
        }
        for &b in label {
            // Keep the name printable and unambiguous: other bytes would make a name that no
            // rule matches and that confuses the history.
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                name.push(char::from(b.to_ascii_lowercase()));
            } else {
                return None;
            }
        }
        at += len;
        if name.len() > 253 {
            return None;
        }
    }
    if name.is_empty() {
        name.push('.');
    }
    Some((name, at))
}

/// The answer to a blocked question: the query's header and question, QR/RA set, and for
/// `Unspecified` an A 0.0.0.0 / AAAA :: record (other types: no data).
pub(crate) fn block_answer(
    out: &mut Vec<u8>,
    query: &[u8],
    q: &Question,
    style: DnsBlockAnswer,
    ttl: u32,
) {
    out.clear();
    out.extend_from_slice(&query[..q.end]);
    // Flags: QR=1, opcode 0, AA=0, TC=0, RD copied, RA=1, rcode.
    let rd = query[2] & 0x01;
    out[2] = 0x80 | rd;
    let rcode = match style {
        DnsBlockAnswer::NxDomain => 3,
        DnsBlockAnswer::Unspecified => 0,
    };
    out[3] = 0x80 | rcode;
    let data: &[u8] = match (style, q.qtype) {
        (DnsBlockAnswer::Unspecified, TYPE_A) => &[0; 4],
        (DnsBlockAnswer::Unspecified, TYPE_AAAA) => &[0; 16],
        _ => &[],
    };
    let ancount: u16 = u16::from(!data.is_empty());
    out[6..8].copy_from_slice(&ancount.to_be_bytes());
    out[8..12].copy_from_slice(&[0, 0, 0, 0]);
    if !data.is_empty() {
        // Name: pointer to the question name at offset 12.
        out.extend_from_slice(&[0xc0, 12]);
        out.extend_from_slice(&q.qtype.to_be_bytes());
        out.extend_from_slice(&q.qclass.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
}

/// What an upstream answer says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AnswerInfo {
    pub id: u16,
    /// The question, to match against the pending query.
    pub name: String,
    pub qtype: u16,
    /// Response code (0 NOERROR, 3 NXDOMAIN...).
    pub rcode: u8,
    /// Addresses with their TTLs, from the end of the CNAME chain.
    pub addrs: Vec<(IpAddr, u32)>,
    /// CNAME targets, in chain order.
    pub cnames: Vec<String>,
    /// The smallest TTL of the answer records (for the cache).
    pub min_ttl: u32,
}

fn lower_name(n: &hickory_proto::rr::Name) -> String {
    let mut s = n.to_ascii();
    if s.len() > 1 && s.ends_with('.') {
        s.pop();
    }
    s.make_ascii_lowercase();
    s
}

/// Parse an upstream answer. `None` when it is not a parseable response with one question.
pub(crate) fn parse_answer(msg: &[u8]) -> Option<AnswerInfo> {
    // The question by hand (flags aside) so it compares exactly with `parse_query`'s.
    if msg.len() < 12 || msg[2] & 0x80 == 0 || u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return None;
    }
    let (name, at) = read_name(msg, 12)?;
    let qtype = u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]);
    let message = Message::from_vec(msg).ok()?;
    let mut info = AnswerInfo {
        id: u16::from_be_bytes([msg[0], msg[1]]),
        name,
        qtype,
        rcode: msg[3] & 0x0f,
        min_ttl: u32::MAX,
        ..AnswerInfo::default()
    };
    // Follow the chain from the question name; answers may come in any order.
    let mut current = info.name.clone();
    for _ in 0..16 {
        let mut next = None;
        for record in &message.answers {
            if lower_name(&record.name) != current {
                continue;
            }
            info.min_ttl = info.min_ttl.min(record.ttl);
            match &record.data {
                RData::A(a) => info.addrs.push((IpAddr::V4(a.0), record.ttl)),
                RData::AAAA(a) => info.addrs.push((IpAddr::V6(a.0), record.ttl)),
                RData::CNAME(c) => next = Some(lower_name(&c.0)),
                _ => {}
            }
        }
        match next {
            Some(n) if !info.cnames.contains(&n) && n != info.name => {
                info.cnames.push(n.clone());
                current = n;
            }
            _ => break,
        }
    }
    if info.min_ttl == u32::MAX {
        info.min_ttl = 0;
    }
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `name`/`qtype` with id 0x1234 and an EDNS OPT record.
    pub(crate) fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
        q
    }

    #[test]
    fn question_and_block_answers() {
        let msg = query("Ads.Example.COM", TYPE_AAAA);
        let q = parse_query(&msg).unwrap();
        assert_eq!(
            (q.id, q.name.as_str(), q.qtype),
            (0x1234, "ads.example.com", TYPE_AAAA)
        );
        let mut out = Vec::new();
        block_answer(&mut out, &msg, &q, DnsBlockAnswer::Unspecified, 5);
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].ttl, 5);
        assert_eq!(
            m.answers[0].data,
            RData::AAAA(hickory_proto::rr::rdata::AAAA(
                std::net::Ipv6Addr::UNSPECIFIED
            ))
        );
        let info = parse_answer(&out).unwrap();
        assert_eq!(
            info.addrs,
            vec![(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 5)]
        );
        block_answer(&mut out, &msg, &q, DnsBlockAnswer::NxDomain, 5);
        assert_eq!(out[3] & 0x0f, 3);
        assert!(parse_query(&msg[..20]).is_none());
        assert!(parse_query(&out).is_none(), "a response is not a query");
    }
}
