//! Protocol inspectors: learn which name a flow is for from its first bytes.
//!
//! Each inspector is a pure function of the bytes seen so far (no IO, no clock, no state kept between
//! calls except where a protocol needs it, as QUIC's CRYPTO reassembly does). The engine holds the
//! first bytes of a flow, calls the inspector after each segment, and decides as soon as it answers
//! [`Sniff::Done`] or [`Sniff::NotThisProtocol`]. The *caller* bounds how many bytes and how long it
//! waits (see [`tls::SNIFF_LIMIT`] and [`http::SNIFF_LIMIT`]); inspectors never panic on any input.

#![warn(missing_docs)]

pub mod http;
pub mod quic;
pub mod tls;

/// The answer of an inspector given the first bytes of a stream or datagram.
///
/// Why three states and not `Result<Option<T>>`: "not enough bytes yet" is the normal case for a
/// ClientHello split over TCP segments, and must be told apart from "this is not the protocol"
/// (decide by address now) without the caller inspecting an error kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sniff<T> {
    /// The bytes so far are a valid prefix of the protocol; call again with more bytes.
    NeedMore,
    /// The protocol was recognized and the wanted value extracted.
    Done(T),
    /// The bytes cannot be this protocol (or are malformed beyond use): stop waiting.
    NotThisProtocol,
}

impl<T> Sniff<T> {
    /// Maps the value of a [`Sniff::Done`], keeping the other states.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Sniff<U> {
        match self {
            Sniff::NeedMore => Sniff::NeedMore,
            Sniff::Done(value) => Sniff::Done(f(value)),
            Sniff::NotThisProtocol => Sniff::NotThisProtocol,
        }
    }

    /// True for [`Sniff::NeedMore`].
    pub fn is_need_more(&self) -> bool {
        matches!(self, Sniff::NeedMore)
    }

    /// The value of a [`Sniff::Done`], if any.
    pub fn done(self) -> Option<T> {
        match self {
            Sniff::Done(value) => Some(value),
            _ => None,
        }
    }
}

/// Lowercases and checks a host name as it appears in SNI or an HTTP Host header.
///
/// Returns `None` unless every byte is a letter, digit, `-`, `_` or `.` and the name is 1..=253
/// bytes long once a single trailing dot is removed. Why so strict: the result is matched against
/// blocklists and written to the history; a name with spaces, control bytes or non-ASCII cannot be
/// a real DNS name and must not look like one (it is then treated as "no name").
pub(crate) fn normalize_host_name(raw: &[u8]) -> Option<String> {
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    if raw.is_empty() || raw.len() > 253 {
        return None;
    }
    if !raw
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return None;
    }
    if raw.starts_with(b".") || raw.windows(2).any(|w| w == b"..") {
        return None;
    }
    // All bytes are ASCII (checked above), so this conversion cannot fail.
    let mut name = String::from_utf8(raw.to_vec()).ok()?;
    name.make_ascii_lowercase();
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_host_name_lowercases_and_strips_trailing_dot() {
        assert_eq!(
            normalize_host_name(b"WWW.Example.COM.").as_deref(),
            Some("www.example.com")
        );
        assert_eq!(normalize_host_name(b"a_b-c.d").as_deref(), Some("a_b-c.d"));
    }

    #[test]
    fn normalize_host_name_rejects_non_names() {
        for bad in [
            &b""[..],
            b".",
            b"a b",
            b"a..b",
            b".a",
            b"\xc3\xa9",
            b"a\0",
            b"a:80",
        ] {
            assert_eq!(normalize_host_name(bad), None, "{bad:?}");
        }
        assert_eq!(normalize_host_name(&[b'a'; 254]), None);
        assert!(normalize_host_name(&[b'a'; 253]).is_some());
    }

    #[test]
    fn sniff_map_and_done() {
        assert_eq!(Sniff::Done(2).map(|v| v * 2), Sniff::Done(4));
        assert_eq!(Sniff::<u8>::NeedMore.map(|v| v), Sniff::NeedMore);
        assert!(Sniff::<u8>::NeedMore.is_need_more());
        assert_eq!(Sniff::<u8>::NotThisProtocol.done(), None);
    }
}
