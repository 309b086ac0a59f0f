//! TLS ClientHello sniffing: server name (SNI), ALPN and ECH presence from the first bytes of a
//! TCP stream, or from a bare handshake message (QUIC CRYPTO frames carry no record layer).
//!
//! Layout follows smoltcp's `wire` split: [`ClientHelloPacket`] checks every length field once in
//! [`ClientHelloPacket::new_checked`], after which its accessors cannot fail or panic;
//! [`ClientHelloRepr`] is the owned, high-level reading used by the engine.
//!
//! What is seen and what is not: with Encrypted Client Hello (RFC 9849 / draft-ietf-tls-esni) the
//! real name is encrypted; the SNI read here is then the *outer* (public, client-facing) name and
//! [`ClientHelloRepr::ech`] is set so the policy can lower its certainty.

use std::borrow::Cow;

use super::{normalize_host_name, Sniff};

/// How many bytes of a stream the caller should hold at most while waiting for a ClientHello.
///
/// Why 16 KiB + one record header: a TLS record carries at most 2^14 bytes (RFC 8446 §5.1), and every
/// ClientHello seen in practice fits in one record: a classic one is ~250-600 bytes, one with a
/// post-quantum hybrid key share (X25519MLKEM768, 1216-byte share) ~1.8 KB, one with large
/// extensions (many PSK tickets, padding, ECH) a few KB. A hello that needs more than one full record
/// is so rare that deciding by address is the better trade than holding more memory per flow.
pub const SNIFF_LIMIT: usize = MAX_RECORD_LEN + RECORD_HEADER_LEN;

/// TLS record content type of handshake messages (RFC 8446 §5.1).
const CONTENT_TYPE_HANDSHAKE: u8 = 22;
/// Handshake message type of a ClientHello (RFC 8446 §4).
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
/// Content type (1), legacy version (2), length (2).
const RECORD_HEADER_LEN: usize = 5;
/// Handshake type (1) and 24-bit length (3).
const HANDSHAKE_HEADER_LEN: usize = 4;
/// A plaintext record must not exceed 2^14 bytes (RFC 8446 §5.1); a longer one is not TLS.
const MAX_RECORD_LEN: usize = 1 << 14;
/// legacy_version (2) + random (32) + session id length (1) + cipher suites length (2) +
/// at least one suite (2) + compression methods length (1) + one method (1).
const MIN_CLIENT_HELLO_BODY: usize = 41;

/// Extension code points (IANA "TLS ExtensionType Values").
mod ext {
    /// server_name, RFC 6066 §3.
    pub const SERVER_NAME: u16 = 0;
    /// application_layer_protocol_negotiation, RFC 7301.
    pub const ALPN: u16 = 16;
    /// supported_versions, RFC 8446 §4.2.1.
    pub const SUPPORTED_VERSIONS: u16 = 43;
    /// encrypted_client_hello, draft-ietf-tls-esni (final code point).
    pub const ENCRYPTED_CLIENT_HELLO: u16 = 0xfe0d;
}

/// At most this many ALPN protocols are copied into [`ClientHelloRepr::alpn`]; real clients send
/// 1-3 ("h2", "http/1.1", "h3"). Bounds the allocation an attacker-chosen hello can cause.
const MAX_ALPN_PROTOCOLS: usize = 8;

/// What the engine learns from a ClientHello.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHelloRepr {
    /// The `host_name` of the server_name extension, lowercased, without a trailing dot. `None` when
    /// the extension is absent (IP-address connections, some apps) or holds something that is not a
    /// host name.
    pub server_name: Option<String>,
    /// ALPN protocol ids offered, in the client's order (e.g. `["h2", "http/1.1"]`), at most
    /// eight; ids that are not printable ASCII are skipped. Useful in events: it tells HTTP/2 from
    /// other TLS uses.
    pub alpn: Vec<String>,
    /// True when an encrypted_client_hello extension is present: `server_name` is then the outer,
    /// public name and the real destination is hidden.
    pub ech: bool,
    /// True when supported_versions offers TLS 1.3.
    pub offers_tls13: bool,
}

/// Reads a ClientHello from the first bytes of a TCP stream (record layer included) and returns its
/// server name.
///
/// The convenience form of [`client_hello`]; see it for the meaning of each state.
pub fn client_hello_sni(buf: &[u8]) -> Sniff<Option<String>> {
    client_hello(buf).map(|hello| hello.server_name)
}

/// Reads a ClientHello from the first bytes of a TCP stream, which may hold it across several
/// records and segments.
///
/// - [`Sniff::NeedMore`]: a valid prefix of a TLS handshake record; call again with more bytes
///   (the caller stops at [`SNIFF_LIMIT`] bytes or a timeout and decides by address).
/// - [`Sniff::Done`]: the whole ClientHello was read (its server name may be `None`).
/// - [`Sniff::NotThisProtocol`]: not TLS (SSLv2-style hellos, HTTP, garbage) or a malformed hello.
pub fn client_hello(buf: &[u8]) -> Sniff<ClientHelloRepr> {
    match handshake_message(buf) {
        Sniff::NeedMore => Sniff::NeedMore,
        Sniff::NotThisProtocol => Sniff::NotThisProtocol,
        Sniff::Done(message) => parse_handshake(&message),
    }
}

/// Reads a ClientHello from a bare handshake message stream (no record layer), as carried in QUIC
/// CRYPTO frames (RFC 9001 §4.1).
///
/// `buf` is the contiguous stream from offset 0; bytes after the ClientHello are ignored.
pub fn client_hello_from_handshake(buf: &[u8]) -> Sniff<ClientHelloRepr> {
    let Some(header) = buf.get(..HANDSHAKE_HEADER_LEN) else {
        return match buf.first() {
            Some(&kind) if kind != HANDSHAKE_CLIENT_HELLO => Sniff::NotThisProtocol,
            _ => Sniff::NeedMore,
        };
    };
    if header[0] != HANDSHAKE_CLIENT_HELLO {
        return Sniff::NotThisProtocol;
    }
    let body_len = u24(&header[1..4]);
    if body_len < MIN_CLIENT_HELLO_BODY {
        return Sniff::NotThisProtocol;
    }
    match buf.get(..HANDSHAKE_HEADER_LEN + body_len) {
        Some(message) => parse_handshake(message),
        None => Sniff::NeedMore,
    }
}

/// Parses one complete handshake message (header included) that is known to be a ClientHello.
fn parse_handshake(message: &[u8]) -> Sniff<ClientHelloRepr> {
    let body = message.get(HANDSHAKE_HEADER_LEN..).unwrap_or_default();
    match ClientHelloPacket::new_checked(body) {
        Ok(packet) => Sniff::Done(ClientHelloRepr::parse(&packet)),
        Err(Malformed) => Sniff::NotThisProtocol,
    }
}

/// Extracts the first handshake message from TLS records at the start of `buf`, joining the
/// fragments of a message split over several records. Borrowed when it fits in the first record (the
/// usual case), copied otherwise.
fn handshake_message(buf: &[u8]) -> Sniff<Cow<'_, [u8]>> {
    // Reject early on the first bytes: a stream that is not TLS is told apart with 1-5 bytes.
    match buf {
        [] => return Sniff::NeedMore,
        [kind, ..] if *kind != CONTENT_TYPE_HANDSHAKE => return Sniff::NotThisProtocol,
        [_, major, ..] if *major != 3 => return Sniff::NotThisProtocol,
        [_, _, minor, ..] if *minor > 4 => return Sniff::NotThisProtocol,
        _ => {}
    }
    let mut records = RecordIter { rest: buf };
    let first = match records.next() {
        RecordStep::Record(fragment) => fragment,
        RecordStep::Partial(prefix) => {
            // Check what is there of the handshake header to fail fast on garbage.
            return match prefix.first() {
                Some(&kind) if kind != HANDSHAKE_CLIENT_HELLO => Sniff::NotThisProtocol,
                _ => Sniff::NeedMore,
            };
        }
        RecordStep::Invalid => return Sniff::NotThisProtocol,
    };
    if first.first() != Some(&HANDSHAKE_CLIENT_HELLO) {
        return Sniff::NotThisProtocol;
    }
    if first.len() < HANDSHAKE_HEADER_LEN {
        // A handshake header itself split over records: legal, but never seen from a real client.
        return join_fragments(first, records, None);
    }
    let wanted = HANDSHAKE_HEADER_LEN + u24(&first[1..4]);
    if wanted < HANDSHAKE_HEADER_LEN + MIN_CLIENT_HELLO_BODY {
        return Sniff::NotThisProtocol;
    }
    match first.get(..wanted) {
        Some(message) => Sniff::Done(Cow::Borrowed(message)),
        None => join_fragments(first, records, Some(wanted)),
    }
}

/// Concatenates handshake fragments until `wanted` bytes (or, when not known yet, the length given by
/// the handshake header) are collected.
fn join_fragments<'a>(
    first: &[u8],
    mut records: RecordIter<'_>,
    mut wanted: Option<usize>,
) -> Sniff<Cow<'a, [u8]>> {
    let mut joined = first.to_vec();
    loop {
        if wanted.is_none() && joined.len() >= HANDSHAKE_HEADER_LEN {
            let total = HANDSHAKE_HEADER_LEN + u24(&joined[1..4]);
            if total < HANDSHAKE_HEADER_LEN + MIN_CLIENT_HELLO_BODY {
                return Sniff::NotThisProtocol;
            }
            wanted = Some(total);
        }
        if let Some(total) = wanted {
            if joined.len() >= total {
                joined.truncate(total);
                return Sniff::Done(Cow::Owned(joined));
            }
        }
        match records.next() {
            RecordStep::Record(fragment) => joined.extend_from_slice(fragment),
            RecordStep::Partial(_) => return Sniff::NeedMore,
            RecordStep::Invalid => return Sniff::NotThisProtocol,
        }
    }
}

/// One step over the TLS records at the start of a buffer.
enum RecordStep<'a> {
    /// A complete handshake record's fragment.
    Record(&'a [u8]),
    /// The next record is incomplete (or absent): the bytes of its fragment so far.
    Partial(&'a [u8]),
    /// The next record is not a well-formed handshake record.
    Invalid,
}

struct RecordIter<'a> {
    rest: &'a [u8],
}

impl<'a> RecordIter<'a> {
    fn next(&mut self) -> RecordStep<'a> {
        let Some(header) = self.rest.get(..RECORD_HEADER_LEN) else {
            return RecordStep::Partial(&[]);
        };
        if header[0] != CONTENT_TYPE_HANDSHAKE || header[1] != 3 || header[2] > 4 {
            return RecordStep::Invalid;
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > MAX_RECORD_LEN {
            return RecordStep::Invalid;
        }
        let body = &self.rest[RECORD_HEADER_LEN..];
        match body.get(..len) {
            Some(fragment) => {
                self.rest = &body[len..];
                RecordStep::Record(fragment)
            }
            None => RecordStep::Partial(body),
        }
    }
}

fn u24(bytes: &[u8]) -> usize {
    match bytes {
        [a, b, c, ..] => (usize::from(*a) << 16) | (usize::from(*b) << 8) | usize::from(*c),
        _ => 0,
    }
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let pair = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([pair[0], pair[1]]))
}

/// The ClientHello body failed a length check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// A read-only view of a ClientHello body (after the 4-byte handshake header), with every length
/// field checked once by [`ClientHelloPacket::new_checked`].
#[derive(Debug, Clone, Copy)]
pub struct ClientHelloPacket<'a> {
    body: &'a [u8],
    /// The extensions block (without its 2-byte length), empty when the hello has none.
    extensions: &'a [u8],
}

impl<'a> ClientHelloPacket<'a> {
    /// Checks the structure of a ClientHello body: session id, cipher suites, compression methods
    /// and every extension header must lie inside their enclosing lengths.
    pub fn new_checked(body: &'a [u8]) -> Result<Self, Malformed> {
        if body.len() < MIN_CLIENT_HELLO_BODY || body[0] != 3 {
            return Err(Malformed);
        }
        // legacy_version (2) + random (32).
        let mut at = 34;
        let session_id_len = usize::from(*body.get(at).ok_or(Malformed)?);
        if session_id_len > 32 {
            return Err(Malformed);
        }
        at += 1 + session_id_len;
        let suites_len = usize::from(u16_at(body, at).ok_or(Malformed)?);
        if suites_len == 0 || suites_len % 2 != 0 {
            return Err(Malformed);
        }
        at += 2 + suites_len;
        let compression_len = usize::from(*body.get(at).ok_or(Malformed)?);
        if compression_len == 0 {
            return Err(Malformed);
        }
        at += 1 + compression_len;
        if at > body.len() {
            return Err(Malformed);
        }
        if at == body.len() {
            // No extensions block at all (allowed before TLS 1.3).
            return Ok(ClientHelloPacket {
                body,
                extensions: &[],
            });
        }
        let extensions_len = usize::from(u16_at(body, at).ok_or(Malformed)?);
        let extensions = body.get(at + 2..at + 2 + extensions_len).ok_or(Malformed)?;
        // Walk the extension headers once so that the iterator below never meets a bad length.
        let mut rest = extensions;
        while !rest.is_empty() {
            let len = usize::from(u16_at(rest, 2).ok_or(Malformed)?);
            rest = rest.get(4 + len..).ok_or(Malformed)?;
        }
        Ok(ClientHelloPacket { body, extensions })
    }

    /// The legacy_version field (0x0303 for TLS 1.2 and 1.3 clients).
    pub fn legacy_version(&self) -> u16 {
        // new_checked guarantees body.len() >= MIN_CLIENT_HELLO_BODY.
        u16::from_be_bytes([self.body[0], self.body[1]])
    }

    /// The extensions in the order sent, as `(type, data)`.
    pub fn extensions(&self) -> Extensions<'a> {
        Extensions {
            rest: self.extensions,
        }
    }

    /// The data of the first extension of type `kind`.
    pub fn extension(&self, kind: u16) -> Option<&'a [u8]> {
        self.extensions()
            .find(|(t, _)| *t == kind)
            .map(|(_, data)| data)
    }

    /// The raw `host_name` of the server_name extension, if present and well formed.
    pub fn server_name(&self) -> Option<&'a [u8]> {
        let data = self.extension(ext::SERVER_NAME)?;
        let list_len = usize::from(u16_at(data, 0)?);
        let mut list = data.get(2..2 + list_len)?;
        while let [name_type, rest @ ..] = list {
            let len = usize::from(u16_at(rest, 0)?);
            let name = rest.get(2..2 + len)?;
            if *name_type == 0 {
                return Some(name);
            }
            list = &rest[2 + len..];
        }
        None
    }

    /// The ALPN protocol ids offered, raw; empty when absent or malformed.
    pub fn alpn(&self) -> AlpnIter<'a> {
        let list = self
            .extension(ext::ALPN)
            .and_then(|data| data.get(2..2 + usize::from(u16_at(data, 0)?)))
            .unwrap_or_default();
        AlpnIter { rest: list }
    }

    /// True when the encrypted_client_hello extension is present.
    pub fn has_ech(&self) -> bool {
        self.extension(ext::ENCRYPTED_CLIENT_HELLO).is_some()
    }

    /// True when supported_versions lists TLS 1.3 (0x0304).
    pub fn offers_tls13(&self) -> bool {
        let Some(data) = self.extension(ext::SUPPORTED_VERSIONS) else {
            return false;
        };
        let Some((&len, versions)) = data.split_first() else {
            return false;
        };
        versions
            .get(..usize::from(len))
            .unwrap_or(versions)
            .chunks_exact(2)
            .any(|v| v == [3, 4])
    }
}

/// Iterator over `(type, data)` of the extensions of a checked [`ClientHelloPacket`].
#[derive(Debug, Clone)]
pub struct Extensions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Extensions<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let kind = u16_at(self.rest, 0)?;
        let len = usize::from(u16_at(self.rest, 2)?);
        let data = self.rest.get(4..4 + len)?;
        self.rest = &self.rest[4 + len..];
        Some((kind, data))
    }
}

/// Iterator over the raw ALPN protocol ids of a ClientHello; stops at the first malformed entry.
#[derive(Debug, Clone)]
pub struct AlpnIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for AlpnIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<Self::Item> {
        let (&len, rest) = self.rest.split_first()?;
        let id = rest.get(..usize::from(len))?;
        self.rest = &rest[usize::from(len)..];
        Some(id)
    }
}

impl ClientHelloRepr {
    /// Reads the high-level fields of a checked ClientHello.
    pub fn parse(packet: &ClientHelloPacket<'_>) -> Self {
        let alpn = packet
            .alpn()
            .filter(|id| !id.is_empty() && id.iter().all(|b| b.is_ascii_graphic()))
            .take(MAX_ALPN_PROTOCOLS)
            .filter_map(|id| std::str::from_utf8(id).ok().map(str::to_owned))
            .collect();
        ClientHelloRepr {
            server_name: packet.server_name().and_then(normalize_host_name),
            alpn,
            ech: packet.has_ech(),
            offers_tls13: packet.offers_tls13(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a ClientHello handshake message (header included) with the given extensions.
    pub(crate) fn hello_message(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[0x11; 32]); // random
        body.push(32);
        body.extend_from_slice(&[0x22; 32]); // session id
        body.extend_from_slice(&[0, 4, 0x13, 0x01, 0x13, 0x02]); // two suites
        body.extend_from_slice(&[1, 0]); // null compression
        let mut ext_block = Vec::new();
        for (kind, data) in extensions {
            ext_block.extend_from_slice(&kind.to_be_bytes());
            ext_block.extend_from_slice(&(data.len() as u16).to_be_bytes());
            ext_block.extend_from_slice(data);
        }
        body.extend_from_slice(&(ext_block.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext_block);
        let mut message = vec![HANDSHAKE_CLIENT_HELLO];
        message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        message.extend_from_slice(&body);
        message
    }

    pub(crate) fn sni_ext(name: &str) -> (u16, Vec<u8>) {
        let mut data = Vec::new();
        data.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
        data.push(0);
        data.extend_from_slice(&(name.len() as u16).to_be_bytes());
        data.extend_from_slice(name.as_bytes());
        (ext::SERVER_NAME, data)
    }

    fn alpn_ext(ids: &[&str]) -> (u16, Vec<u8>) {
        let mut list = Vec::new();
        for id in ids {
            list.push(id.len() as u8);
            list.extend_from_slice(id.as_bytes());
        }
        let mut data = (list.len() as u16).to_be_bytes().to_vec();
        data.extend_from_slice(&list);
        (ext::ALPN, data)
    }

    /// Wraps a handshake message into records of at most `max_fragment` bytes each.
    fn records(message: &[u8], max_fragment: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in message.chunks(max_fragment) {
            out.extend_from_slice(&[CONTENT_TYPE_HANDSHAKE, 3, 1]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    fn typical_hello() -> Vec<u8> {
        hello_message(&[
            sni_ext("WWW.Example.org"),
            alpn_ext(&["h2", "http/1.1"]),
            (ext::SUPPORTED_VERSIONS, vec![4, 3, 4, 3, 3]),
        ])
    }

    #[test]
    fn reads_sni_alpn_and_version_from_one_record() {
        let stream = records(&typical_hello(), MAX_RECORD_LEN);
        let Sniff::Done(hello) = client_hello(&stream) else {
            panic!("not done")
        };
        assert_eq!(hello.server_name.as_deref(), Some("www.example.org"));
        assert_eq!(hello.alpn, ["h2", "http/1.1"]);
        assert!(hello.offers_tls13);
        assert!(!hello.ech);
    }

    #[test]
    fn needs_more_for_every_strict_prefix_then_done() {
        let stream = records(&typical_hello(), MAX_RECORD_LEN);
        for cut in 0..stream.len() {
            assert_eq!(
                client_hello_sni(&stream[..cut]),
                Sniff::NeedMore,
                "cut at {cut}"
            );
        }
        assert_eq!(
            client_hello_sni(&stream),
            Sniff::Done(Some("www.example.org".into()))
        );
    }

    #[test]
    fn joins_a_hello_split_over_many_records() {
        let message = typical_hello();
        for fragment in [1, 2, 3, 7, 100] {
            let stream = records(&message, fragment);
            for cut in 0..stream.len() {
                assert_eq!(
                    client_hello_sni(&stream[..cut]),
                    Sniff::NeedMore,
                    "{fragment}/{cut}"
                );
            }
            assert_eq!(
                client_hello_sni(&stream),
                Sniff::Done(Some("www.example.org".into())),
                "fragment {fragment}"
            );
        }
    }

    #[test]
    fn trailing_bytes_after_the_hello_are_ignored() {
        let mut stream = records(&typical_hello(), MAX_RECORD_LEN);
        stream.extend_from_slice(&[0x14, 3, 3, 0, 1, 1]);
        assert_eq!(
            client_hello_sni(&stream),
            Sniff::Done(Some("www.example.org".into()))
        );
    }

    #[test]
    fn hello_without_sni_or_without_extensions_is_done_none() {
        let stream = records(&hello_message(&[alpn_ext(&["h2"])]), MAX_RECORD_LEN);
        assert_eq!(client_hello_sni(&stream), Sniff::Done(None));

        // No extensions block at all: strip the 2-byte (zero) extensions length.
        let mut message = hello_message(&[]);
        message.truncate(message.len() - 2);
        let body_len = (message.len() - 4) as u32;
        message[1..4].copy_from_slice(&body_len.to_be_bytes()[1..]);
        assert_eq!(client_hello_sni(&records(&message, 512)), Sniff::Done(None));
    }

    #[test]
    fn ech_is_flagged_and_outer_sni_reported() {
        let message = hello_message(&[
            sni_ext("public.example"),
            (ext::ENCRYPTED_CLIENT_HELLO, vec![0; 40]),
        ]);
        let hello = client_hello(&records(&message, 4096)).done().unwrap();
        assert!(hello.ech);
        assert_eq!(hello.server_name.as_deref(), Some("public.example"));
    }

    #[test]
    fn not_tls_is_told_apart_on_the_first_bytes() {
        assert_eq!(client_hello_sni(b"G"), Sniff::NotThisProtocol);
        assert_eq!(
            client_hello_sni(b"GET / HTTP/1.1\r\n"),
            Sniff::NotThisProtocol
        );
        // SSLv2-compatible hello: high bit set in the first byte.
        assert_eq!(
            client_hello_sni(&[0x80, 0x2e, 0x01, 0x03, 0x01]),
            Sniff::NotThisProtocol
        );
        // Handshake record, bad major version.
        assert_eq!(client_hello_sni(&[22, 2]), Sniff::NotThisProtocol);
        // Handshake record holding a ServerHello (type 2).
        assert_eq!(
            client_hello_sni(&[22, 3, 1, 0, 50, 2]),
            Sniff::NotThisProtocol
        );
        // Oversized record.
        assert_eq!(
            client_hello_sni(&[22, 3, 1, 0x40, 0x01]),
            Sniff::NotThisProtocol
        );
        // Empty record.
        assert_eq!(client_hello_sni(&[22, 3, 1, 0, 0]), Sniff::NotThisProtocol);
    }

    #[test]
    fn malformed_lengths_inside_the_hello_are_not_this_protocol() {
        let mut message = typical_hello();
        // Corrupt the cipher-suites length (offset 4 + 2 + 32 + 1 + 32).
        message[71] = 0xff;
        assert_eq!(
            client_hello_sni(&records(&message, 4096)),
            Sniff::NotThisProtocol
        );

        let mut message = typical_hello();
        let last = message.len() - 1;
        message.truncate(last); // extension block shorter than announced
        let body_len = (message.len() - 4) as u32;
        message[1..4].copy_from_slice(&body_len.to_be_bytes()[1..]);
        assert_eq!(
            client_hello_sni(&records(&message, 4096)),
            Sniff::NotThisProtocol
        );
    }

    #[test]
    fn non_hostname_sni_is_none() {
        let message = hello_message(&[sni_ext("bad name\u{1}")]);
        assert_eq!(
            client_hello_sni(&records(&message, 4096)),
            Sniff::Done(None)
        );
    }

    #[test]
    fn bare_handshake_form_for_quic() {
        let mut message = typical_hello();
        assert_eq!(client_hello_from_handshake(&message[..10]), Sniff::NeedMore);
        message.extend_from_slice(&[0xde, 0xad]);
        let hello = client_hello_from_handshake(&message).done().unwrap();
        assert_eq!(hello.server_name.as_deref(), Some("www.example.org"));
        assert_eq!(
            client_hello_from_handshake(&[2, 0, 0]),
            Sniff::NotThisProtocol
        );
        assert_eq!(client_hello_from_handshake(&[]), Sniff::NeedMore);
    }

    #[test]
    fn large_post_quantum_sized_hello_in_one_record() {
        // A 1216-byte key share as sent with X25519MLKEM768, plus padding: ~1.8 KB like Chrome.
        let message = hello_message(&[
            sni_ext("pq.example"),
            (51, vec![0x42; 1216 + 32 + 8]),
            (21, vec![0; 400]),
        ]);
        let stream = records(&message, MAX_RECORD_LEN);
        assert!(stream.len() > 1700 && stream.len() < SNIFF_LIMIT);
        assert_eq!(
            client_hello_sni(&stream),
            Sniff::Done(Some("pq.example".into()))
        );
    }
}
