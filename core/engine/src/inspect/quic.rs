//! QUIC Initial sniffing: the ClientHello (and so the SNI) of a QUIC v1 (RFC 9000) or v2 (RFC 9369)
//! connection, read from the client's Initial packets.
//!
//! Initial packets are encrypted, but with keys derived from the Destination Connection ID and a
//! salt published in the RFC (RFC 9001 §5.2), so any on-path observer can open them: that is what
//! this module does. Steps: parse the long header, derive the client Initial keys (HKDF-SHA256,
//! labels "client in", "quic key"/"quic iv"/"quic hp"), remove header protection (AES-128-ECB of a
//! 16-byte sample), open the payload (AES-128-GCM), collect CRYPTO frames into a bounded
//! reassembler (browsers split the ClientHello over frames out of order and, with post-quantum key
//! shares, over several packets and datagrams), then read the ClientHello with [`super::tls`].

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes128;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Nonce, Tag};
use hkdf::Hkdf;
use sha2::Sha256;

use super::tls::{client_hello_from_handshake, ClientHelloRepr};
use super::Sniff;

/// QUIC version 1 (RFC 9000).
pub const VERSION_1: u32 = 0x0000_0001;
/// QUIC version 2 (RFC 9369 §3.1).
pub const VERSION_2: u32 = 0x6b33_43cf;

/// Initial salt of QUIC v1 (RFC 9001 §5.2).
const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
/// Initial salt of QUIC v2 (RFC 9369 §3.3.1).
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];

/// Longest connection ID QUIC v1/v2 allow (RFC 9000 §17.2).
const MAX_CID_LEN: usize = 20;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;
/// Header-protection sample length (RFC 9001 §5.4.2).
const SAMPLE_LEN: usize = 16;

/// Most CRYPTO bytes collected before giving up, for the same reason as
/// [`super::tls::SNIFF_LIMIT`]: every real ClientHello is well below 16 KiB (Chrome's, with an
/// X25519MLKEM768 key share, is about 1.8 KB and spans two Initial packets).
pub const MAX_CRYPTO_BYTES: usize = 16 * 1024;
/// Most disjoint byte ranges the reassembler tracks. Chrome's "chaos protection" splits its
/// ClientHello into a handful of CRYPTO frames sent out of order; more than 32 gaps is an attack
/// or a bug, and tracking them would cost per-flow memory.
const MAX_CRYPTO_RANGES: usize = 32;
/// Most Initial packets decrypted for one flow. A ClientHello spans 1-3 of them in practice; the
/// bound caps the AES work an app can make the engine do before it decides by address.
pub const MAX_INITIAL_PACKETS: u8 = 8;

/// Reads the ClientHello from a single datagram, when it fits in one (the common case for hellos
/// without post-quantum key shares). See [`InitialSniffer`] for the multi-datagram form.
pub fn initial_client_hello(datagram: &[u8]) -> Sniff<ClientHelloRepr> {
    InitialSniffer::new().push_datagram(datagram)
}

/// The client's Initial keys for one (version, DCID).
struct InitialKeys {
    version: u32,
    dcid: [u8; MAX_CID_LEN],
    dcid_len: u8,
    aead: Aes128Gcm,
    iv: [u8; 12],
    header_protection: Aes128,
}

impl InitialKeys {
    /// Derives the client Initial key, IV and header-protection key (RFC 9001 §5.2, RFC 9369 §3.3).
    fn client(version: u32, dcid: &[u8]) -> Option<Self> {
        let (salt, key_label, iv_label, hp_label): (&[u8], &[u8], &[u8], &[u8]) = match version {
            VERSION_1 => (&SALT_V1, b"quic key", b"quic iv", b"quic hp"),
            VERSION_2 => (&SALT_V2, b"quicv2 key", b"quicv2 iv", b"quicv2 hp"),
            _ => return None,
        };
        if dcid.len() > MAX_CID_LEN {
            return None;
        }
        let initial = Hkdf::<Sha256>::new(Some(salt), dcid);
        let mut client_secret = [0u8; 32];
        expand_label(&initial, b"client in", &mut client_secret)?;
        let client = Hkdf::<Sha256>::from_prk(&client_secret).ok()?;
        let mut key = [0u8; 16];
        let mut iv = [0u8; 12];
        let mut hp = [0u8; 16];
        expand_label(&client, key_label, &mut key)?;
        expand_label(&client, iv_label, &mut iv)?;
        expand_label(&client, hp_label, &mut hp)?;
        let mut stored = [0u8; MAX_CID_LEN];
        stored[..dcid.len()].copy_from_slice(dcid);
        Some(InitialKeys {
            version,
            dcid: stored,
            dcid_len: dcid.len() as u8,
            aead: Aes128Gcm::new(GenericArray::from_slice(&key)),
            iv,
            header_protection: Aes128::new(GenericArray::from_slice(&hp)),
        })
    }

    fn matches(&self, version: u32, dcid: &[u8]) -> bool {
        self.version == version && self.dcid.get(..usize::from(self.dcid_len)) == Some(dcid)
    }

    /// The 5-byte header-protection mask for a sample (RFC 9001 §5.4.3).
    fn mask(&self, sample: &[u8]) -> [u8; 5] {
        let mut block = GenericArray::clone_from_slice(sample);
        self.header_protection.encrypt_block(&mut block);
        [block[0], block[1], block[2], block[3], block[4]]
    }
}

/// HKDF-Expand-Label of TLS 1.3 (RFC 8446 §7.1) with an empty context.
fn expand_label(prk: &Hkdf<Sha256>, label: &[u8], out: &mut [u8]) -> Option<()> {
    const PREFIX: &[u8] = b"tls13 ";
    let mut info = [0u8; 2 + 1 + 6 + 10 + 1];
    let label_len = PREFIX.len() + label.len();
    let info_len = 2 + 1 + label_len + 1;
    let info = info.get_mut(..info_len)?;
    info[..2].copy_from_slice(&(out.len() as u16).to_be_bytes());
    info[2] = label_len as u8;
    info[3..3 + PREFIX.len()].copy_from_slice(PREFIX);
    info[3 + PREFIX.len()..3 + label_len].copy_from_slice(label);
    info[3 + label_len] = 0; // empty context
    prk.expand(info, out).ok()
}

/// A QUIC variable-length integer (RFC 9000 §16) at the start of `buf`: (value, bytes used).
fn varint(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let len = 1usize << (first >> 6);
    let bytes = buf.get(..len)?;
    let mut value = u64::from(first & 0x3f);
    for &b in &bytes[1..] {
        value = (value << 8) | u64::from(b);
    }
    Some((value, len))
}

/// The fields of a long-header Initial packet needed to open it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialHeader<'a> {
    /// QUIC version ([`VERSION_1`] or [`VERSION_2`]).
    pub version: u32,
    /// Destination Connection ID, from which the keys derive.
    pub dcid: &'a [u8],
    /// Offset of the (protected) packet number.
    pub pn_offset: usize,
    /// Length of this whole packet inside the datagram (coalesced packets may follow).
    pub packet_len: usize,
}

/// What the first bytes of a datagram hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LongPacket<'a> {
    /// An Initial packet of a version we can open.
    Initial(InitialHeader<'a>),
    /// Another long-header packet (0-RTT, Handshake) of a known version: skip `len` bytes.
    Other { len: usize },
}

/// Parses the long header at the start of `buf`; `None` when it is not a well-formed long header
/// of QUIC v1/v2 (short headers, version negotiation, unknown versions, truncation).
fn parse_long_header(buf: &[u8]) -> Option<LongPacket<'_>> {
    let first = *buf.first()?;
    if first & 0x80 == 0 {
        return None; // short header: nothing to read before keys are agreed
    }
    let version = u32::from_be_bytes(buf.get(1..5)?.try_into().ok()?);
    let packet_type = (first >> 4) & 0x03;
    let (initial_type, retry_type) = match version {
        VERSION_1 => (0, 3),
        VERSION_2 => (1, 0),
        _ => return None,
    };
    if packet_type == retry_type {
        return None; // Retry packets come from servers and have no Length field
    }
    let mut at = 5;
    let dcid_len = usize::from(*buf.get(at)?);
    if dcid_len > MAX_CID_LEN {
        return None;
    }
    let dcid = buf.get(at + 1..at + 1 + dcid_len)?;
    at += 1 + dcid_len;
    let scid_len = usize::from(*buf.get(at)?);
    if scid_len > MAX_CID_LEN {
        return None;
    }
    at += 1 + scid_len;
    if packet_type == initial_type {
        let (token_len, used) = varint(buf.get(at..)?)?;
        at = at
            .checked_add(used)?
            .checked_add(usize::try_from(token_len).ok()?)?;
    }
    let (length, used) = varint(buf.get(at..)?)?;
    at += used;
    let length = usize::try_from(length).ok()?;
    let packet_len = at.checked_add(length)?;
    if packet_len > buf.len() {
        return None;
    }
    if packet_type != initial_type {
        return Some(LongPacket::Other { len: packet_len });
    }
    Some(LongPacket::Initial(InitialHeader {
        version,
        dcid,
        pn_offset: at,
        packet_len,
    }))
}

/// Collects CRYPTO frame data that may arrive out of order, up to [`MAX_CRYPTO_BYTES`].
#[derive(Debug, Default, Clone)]
pub struct CryptoReassembler {
    buf: Vec<u8>,
    /// Sorted, disjoint, non-adjacent byte ranges `[start, end)` received so far.
    ranges: Vec<(usize, usize)>,
}

/// The reassembler refused data: past [`MAX_CRYPTO_BYTES`] or too many gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyOverflow;

impl CryptoReassembler {
    /// An empty reassembler (no allocation until data arrives).
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `data` at stream `offset`. Overlaps are allowed (retransmissions carry the same
    /// bytes; the later copy wins).
    pub fn insert(&mut self, offset: u64, data: &[u8]) -> Result<(), ReassemblyOverflow> {
        if data.is_empty() {
            return Ok(());
        }
        let start = usize::try_from(offset).map_err(|_| ReassemblyOverflow)?;
        let end = start.checked_add(data.len()).ok_or(ReassemblyOverflow)?;
        if end > MAX_CRYPTO_BYTES {
            return Err(ReassemblyOverflow);
        }
        // Merge [start, end) with every range it touches.
        let mut merged = (start, end);
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        let mut placed = false;
        for &(s, e) in &self.ranges {
            if e < merged.0 {
                kept.push((s, e));
            } else if s > merged.1 {
                if !placed {
                    kept.push(merged);
                    placed = true;
                }
                kept.push((s, e));
            } else {
                merged = (merged.0.min(s), merged.1.max(e));
            }
        }
        if !placed {
            kept.push(merged);
        }
        if kept.len() > MAX_CRYPTO_RANGES {
            return Err(ReassemblyOverflow);
        }
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        self.buf[start..end].copy_from_slice(data);
        self.ranges = kept;
        Ok(())
    }

    /// Stores the CRYPTO frames of a decrypted Initial payload. Returns false when the payload
    /// holds a frame not allowed in Initial packets, is malformed, or overflows the bounds.
    /// (Public so that fuzzing reaches the frame parser past the AEAD check.)
    pub fn push_frames(&mut self, plaintext: &[u8]) -> bool {
        read_frames(plaintext, self).is_ok()
    }

    /// The bytes received contiguously from offset 0.
    pub fn contiguous(&self) -> &[u8] {
        match self.ranges.first() {
            Some(&(0, end)) => self.buf.get(..end).unwrap_or_default(),
            _ => &[],
        }
    }
}

/// Reads the ClientHello of one QUIC flow from its first client datagrams.
///
/// Keep one per UDP flow while sniffing; feed each client datagram with
/// [`InitialSniffer::push_datagram`] until it answers `Done` or `NotThisProtocol`, then drop it
/// (it holds up to [`MAX_CRYPTO_BYTES`] plus one datagram of scratch space).
pub struct InitialSniffer {
    keys: Option<InitialKeys>,
    crypto: CryptoReassembler,
    scratch: Vec<u8>,
    packets_opened: u8,
}

impl Default for InitialSniffer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for InitialSniffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitialSniffer")
            .field("has_keys", &self.keys.is_some())
            .field("crypto", &self.crypto)
            .field("packets_opened", &self.packets_opened)
            .finish()
    }
}

impl InitialSniffer {
    /// A sniffer that has seen nothing yet.
    pub fn new() -> Self {
        InitialSniffer {
            keys: None,
            crypto: CryptoReassembler::new(),
            scratch: Vec::new(),
            packets_opened: 0,
        }
    }

    /// Feeds one client-to-server datagram.
    ///
    /// - [`Sniff::NeedMore`]: Initial packets opened, ClientHello not complete yet.
    /// - [`Sniff::Done`]: the ClientHello was read.
    /// - [`Sniff::NotThisProtocol`]: not a QUIC v1/v2 client Initial (short header, other
    ///   version, failed authentication, malformed frames), or the bounds were hit.
    pub fn push_datagram(&mut self, datagram: &[u8]) -> Sniff<ClientHelloRepr> {
        let mut rest = datagram;
        let mut opened_any = false;
        let mut saw_other = false;
        while !rest.is_empty() {
            let Some(packet) = parse_long_header(rest) else {
                break; // padding after coalesced packets, or a short header
            };
            match packet {
                LongPacket::Other { len } => {
                    saw_other = true;
                    rest = &rest[len..];
                }
                LongPacket::Initial(header) => {
                    if self.packets_opened >= MAX_INITIAL_PACKETS {
                        return Sniff::NotThisProtocol;
                    }
                    if self
                        .open_initial(&rest[..header.packet_len], &header)
                        .is_err()
                    {
                        return Sniff::NotThisProtocol;
                    }
                    self.packets_opened += 1;
                    opened_any = true;
                    rest = &rest[header.packet_len..];
                }
            }
        }
        if !opened_any {
            // A 0-RTT-only datagram overtaking the rest of a split ClientHello is still this
            // flow's first flight: keep waiting. Anything else is not a client Initial.
            if saw_other && self.packets_opened > 0 {
                return Sniff::NeedMore;
            }
            return Sniff::NotThisProtocol;
        }
        client_hello_from_handshake(self.crypto.contiguous())
    }

    /// Opens one Initial packet and feeds its CRYPTO frames to the reassembler.
    fn open_initial(&mut self, packet: &[u8], header: &InitialHeader<'_>) -> Result<(), Unusable> {
        if !self
            .keys
            .as_ref()
            .is_some_and(|k| k.matches(header.version, header.dcid))
        {
            self.keys = Some(InitialKeys::client(header.version, header.dcid).ok_or(Unusable)?);
        }
        let keys = self.keys.as_ref().ok_or(Unusable)?;
        let pn_offset = header.pn_offset;
        let sample = packet
            .get(pn_offset + 4..pn_offset + 4 + SAMPLE_LEN)
            .ok_or(Unusable)?;
        let mask = keys.mask(sample);

        self.scratch.clear();
        self.scratch.extend_from_slice(packet);
        let first = self.scratch[0] ^ (mask[0] & 0x0f);
        self.scratch[0] = first;
        // Reserved bits must be zero once unprotected (RFC 9000 §17.2); else it is not ours.
        if first & 0x0c != 0 {
            return Err(Unusable);
        }
        let pn_len = usize::from(first & 0x03) + 1;
        let mut packet_number = 0u64;
        for i in 0..pn_len {
            let byte = self.scratch.get_mut(pn_offset + i).ok_or(Unusable)?;
            *byte ^= mask[1 + i];
            packet_number = (packet_number << 8) | u64::from(*byte);
        }
        let payload_start = pn_offset + pn_len;
        if self.scratch.len() < payload_start + TAG_LEN {
            return Err(Unusable);
        }
        let mut nonce = keys.iv;
        for (n, p) in nonce[4..].iter_mut().zip(packet_number.to_be_bytes()) {
            *n ^= p;
        }
        let tag_start = self.scratch.len() - TAG_LEN;
        let (head, body) = self.scratch.split_at_mut(payload_start);
        let (ciphertext, tag) = body.split_at_mut(tag_start - payload_start);
        keys.aead
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                head,
                ciphertext,
                Tag::from_slice(tag),
            )
            .map_err(|_| Unusable)?;
        let plaintext = &self.scratch[payload_start..tag_start];
        read_frames(plaintext, &mut self.crypto)
    }
}

/// The packet cannot be used: not ours, bad authentication, or a bound was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unusable;

/// Walks the frames of a decrypted Initial payload and stores CRYPTO data. Only the frames allowed
/// in Initial packets (RFC 9000 §12.4) are understood; anything else ends the walk as malformed.
fn read_frames(mut payload: &[u8], crypto: &mut CryptoReassembler) -> Result<(), Unusable> {
    while let Some((frame_type, used)) = varint(payload) {
        payload = &payload[used..];
        match frame_type {
            0x00 | 0x01 => {} // PADDING, PING
            0x02 | 0x03 => {
                // ACK: largest, delay, range count, first range, ranges, [ECN counts].
                let mut fields = [0u64; 4];
                for field in &mut fields {
                    let (value, used) = varint(payload).ok_or(Unusable)?;
                    *field = value;
                    payload = &payload[used..];
                }
                let extra = fields[2]
                    .checked_mul(2)
                    .and_then(|n| n.checked_add(if frame_type == 0x03 { 3 } else { 0 }))
                    .ok_or(Unusable)?;
                for _ in 0..extra {
                    let (_, used) = varint(payload).ok_or(Unusable)?;
                    payload = &payload[used..];
                }
            }
            0x06 => {
                let (offset, used) = varint(payload).ok_or(Unusable)?;
                payload = &payload[used..];
                let (len, used) = varint(payload).ok_or(Unusable)?;
                payload = &payload[used..];
                let len = usize::try_from(len).map_err(|_| Unusable)?;
                let data = payload.get(..len).ok_or(Unusable)?;
                payload = &payload[len..];
                crypto.insert(offset, data).map_err(|_| Unusable)?;
            }
            0x1c => return Ok(()), // CONNECTION_CLOSE: nothing more to read
            _ => return Err(Unusable),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::tls::tests::{hello_message, sni_ext};

    pub(crate) fn from_hex(hex: &str) -> Vec<u8> {
        let digits: Vec<u8> = hex.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    /// RFC 9001 Appendix A.2: the client Initial of the sample handshake (DCID 8394c8f03e515708,
    /// packet number 2, ClientHello for "example.com", padded to 1200 bytes).
    pub(crate) fn rfc9001_client_initial() -> Vec<u8> {
        from_hex(include_str!("testdata/rfc9001-a2-client-initial.hex"))
    }

    const RFC_DCID: [u8; 8] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];

    #[test]
    fn derives_the_rfc9001_a1_client_keys() {
        let keys = InitialKeys::client(VERSION_1, &RFC_DCID).unwrap();
        assert_eq!(keys.iv.to_vec(), from_hex("fa044b2f42a3fd3b46fb255c"));
        // A.2: sample d1b1c98dd7689fb8ec11d242b123dc9b gives mask 437b9aec36.
        let mask = keys.mask(&from_hex("d1b1c98dd7689fb8ec11d242b123dc9b"));
        assert_eq!(mask.to_vec(), from_hex("437b9aec36"));
    }

    #[test]
    fn reads_example_com_from_the_rfc9001_sample() {
        let Sniff::Done(hello) = initial_client_hello(&rfc9001_client_initial()) else {
            panic!("sample not read")
        };
        assert_eq!(hello.server_name.as_deref(), Some("example.com"));
        assert_eq!(hello.alpn, ["alpn"]); // the RFC sample offers the literal id "alpn"
        assert!(hello.offers_tls13);
    }

    #[test]
    fn tampered_or_truncated_sample_is_not_this_protocol() {
        let mut packet = rfc9001_client_initial();
        packet[100] ^= 0xff;
        assert_eq!(initial_client_hello(&packet), Sniff::NotThisProtocol);
        let packet = rfc9001_client_initial();
        for cut in [0, 1, 5, 18, 24, 40, 600, 1199] {
            assert_eq!(
                initial_client_hello(&packet[..cut]),
                Sniff::NotThisProtocol,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn short_headers_and_other_versions_are_not_this_protocol() {
        assert_eq!(initial_client_hello(&[0x40; 60]), Sniff::NotThisProtocol);
        let mut packet = rfc9001_client_initial();
        packet[4] = 0x02; // version 2 in a v1-type header: unknown type bits/keys
        assert_eq!(initial_client_hello(&packet), Sniff::NotThisProtocol);
        packet[1..5].copy_from_slice(&0xff00_001du32.to_be_bytes()); // draft-29
        assert_eq!(initial_client_hello(&packet), Sniff::NotThisProtocol);
    }

    /// Builds and protects a client Initial (no token, empty SCID, 4-byte packet number) holding
    /// `frames`, padded to 1200 bytes like a real client.
    fn seal(version: u32, dcid: &[u8], pn: u32, frames: &[u8]) -> Vec<u8> {
        let keys = InitialKeys::client(version, dcid).unwrap();
        let type_bits = if version == VERSION_2 { 0x10 } else { 0x00 };
        let mut header = vec![0xc3 | type_bits];
        header.extend_from_slice(&version.to_be_bytes());
        header.push(dcid.len() as u8);
        header.extend_from_slice(dcid);
        header.push(0); // SCID
        header.push(0); // token length
        let header_len_without_length = header.len();
        let mut payload = frames.to_vec();
        let fixed = header_len_without_length + 2 + 4 + TAG_LEN;
        if fixed + payload.len() < 1200 {
            payload.resize(1200 - fixed, 0); // PADDING frames
        }
        let length = (4 + payload.len() + TAG_LEN) as u16 | 0x4000;
        header.extend_from_slice(&length.to_be_bytes());
        let pn_offset = header.len();
        header.extend_from_slice(&pn.to_be_bytes());
        let mut nonce = keys.iv;
        for (n, p) in nonce[4..].iter_mut().zip(u64::from(pn).to_be_bytes()) {
            *n ^= p;
        }
        let tag = keys
            .aead
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &header, &mut payload)
            .unwrap();
        let mut packet = header;
        packet.extend_from_slice(&payload);
        packet.extend_from_slice(&tag);
        let mask = keys.mask(&packet[pn_offset + 4..pn_offset + 4 + SAMPLE_LEN]);
        packet[0] ^= mask[0] & 0x0f;
        for i in 0..4 {
            packet[pn_offset + i] ^= mask[1 + i];
        }
        packet
    }

    fn crypto_frame(offset: usize, data: &[u8]) -> Vec<u8> {
        let mut frame = vec![0x06];
        frame.extend_from_slice(&(offset as u32 | 0x8000_0000).to_be_bytes());
        frame.extend_from_slice(&(data.len() as u16 | 0x4000).to_be_bytes());
        frame.extend_from_slice(data);
        frame
    }

    #[test]
    fn parses_the_rfc_sample_header_and_reseals_it_byte_for_byte() {
        let packet = rfc9001_client_initial();
        let header = match parse_long_header(&packet) {
            Some(LongPacket::Initial(header)) => header,
            other => panic!("{other:?}"),
        };
        assert_eq!(header.version, VERSION_1);
        assert_eq!(header.dcid, RFC_DCID);
        assert_eq!(header.pn_offset, 18);
        assert_eq!(header.packet_len, 1200);
        // The test sealer below builds the multi-packet cases, so it must agree with the RFC.
        let mut sniffer = InitialSniffer::new();
        assert!(matches!(sniffer.push_datagram(&packet), Sniff::Done(_)));
        let plaintext = sniffer.scratch[22..1200 - TAG_LEN].to_vec();
        assert_eq!(seal(VERSION_1, &RFC_DCID, 2, &plaintext), packet);
    }

    #[test]
    fn v2_keys_and_round_trip() {
        // RFC 9369 Appendix A.1 client keys.
        let keys = InitialKeys::client(VERSION_2, &RFC_DCID).unwrap();
        assert_eq!(keys.iv.to_vec(), from_hex("91f73e2351d8fa91660e909f"));
        let hello = hello_message(&[sni_ext("v2.example")]);
        let packet = seal(VERSION_2, &RFC_DCID, 0, &crypto_frame(0, &hello));
        let result = initial_client_hello(&packet).map(|h| h.server_name);
        assert_eq!(result, Sniff::Done(Some("v2.example".into())));
    }

    #[test]
    fn hello_split_out_of_order_over_two_datagrams() {
        // Like Chrome with a post-quantum key share: ~1.8 KB over two Initials, frames shuffled,
        // PING and PADDING frames interleaved.
        let hello = hello_message(&[sni_ext("pq.example"), (51, vec![7; 1300])]);
        let dcid = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        let (a, rest) = hello.split_at(500);
        let (b, c) = rest.split_at(400);
        let mut first = crypto_frame(500, b);
        first.push(0x01);
        first.extend(crypto_frame(0, a));
        let second = crypto_frame(900, c);

        let mut sniffer = InitialSniffer::new();
        assert_eq!(
            sniffer.push_datagram(&seal(VERSION_1, &dcid, 0, &first)),
            Sniff::NeedMore
        );
        let result = sniffer.push_datagram(&seal(VERSION_1, &dcid, 1, &second));
        assert_eq!(
            result.map(|h| h.server_name),
            Sniff::Done(Some("pq.example".into()))
        );
    }

    #[test]
    fn coalesced_second_initial_in_one_datagram() {
        let hello = hello_message(&[sni_ext("co.example")]);
        let dcid = [9; 8];
        let (a, b) = hello.split_at(60);
        let mut datagram = seal(VERSION_1, &dcid, 0, &crypto_frame(0, a));
        datagram.extend(seal(VERSION_1, &dcid, 1, &crypto_frame(60, b)));
        let result = initial_client_hello(&datagram).map(|h| h.server_name);
        assert_eq!(result, Sniff::Done(Some("co.example".into())));
    }

    #[test]
    fn zero_rtt_between_the_initials_keeps_waiting() {
        let hello = hello_message(&[sni_ext("zr.example")]);
        let dcid = [5; 8];
        let (a, b) = hello.split_at(60);
        // A v1 0-RTT packet (type 1): header, empty SCID, length 20, 20 opaque bytes.
        let mut zero_rtt = vec![0xd0, 0, 0, 0, 1, 8];
        zero_rtt.extend_from_slice(&dcid);
        zero_rtt.extend_from_slice(&[0, 20]);
        zero_rtt.extend_from_slice(&[0xaa; 20]);

        let mut sniffer = InitialSniffer::new();
        assert_eq!(sniffer.push_datagram(&zero_rtt), Sniff::NotThisProtocol);
        let mut sniffer = InitialSniffer::new();
        let first = seal(VERSION_1, &dcid, 0, &crypto_frame(0, a));
        assert_eq!(sniffer.push_datagram(&first), Sniff::NeedMore);
        assert_eq!(sniffer.push_datagram(&zero_rtt), Sniff::NeedMore);
        let second = seal(VERSION_1, &dcid, 1, &crypto_frame(60, b));
        let result = sniffer.push_datagram(&second).map(|h| h.server_name);
        assert_eq!(result, Sniff::Done(Some("zr.example".into())));
    }

    #[test]
    fn ack_and_unknown_frames() {
        let hello = hello_message(&[sni_ext("ack.example")]);
        let mut frames = vec![0x02, 0x05, 0x00, 0x01, 0x00, 0x01, 0x02]; // ACK with one extra range
        frames.extend(crypto_frame(0, &hello));
        let packet = seal(VERSION_1, &[3; 8], 0, &frames);
        assert!(matches!(initial_client_hello(&packet), Sniff::Done(_)));
        // A STREAM frame (0x08) is not allowed in Initial packets.
        let packet = seal(VERSION_1, &[3; 8], 0, &[0x08, 0x00, 0x00]);
        assert_eq!(initial_client_hello(&packet), Sniff::NotThisProtocol);
    }

    #[test]
    fn crypto_beyond_the_bound_is_refused() {
        let packet = seal(VERSION_1, &[3; 8], 0, &crypto_frame(MAX_CRYPTO_BYTES, &[1]));
        assert_eq!(initial_client_hello(&packet), Sniff::NotThisProtocol);
    }

    #[test]
    fn reassembler_merges_ranges_and_bounds_gaps() {
        let mut r = CryptoReassembler::new();
        r.insert(5, b"fgh").unwrap();
        assert_eq!(r.contiguous(), b"");
        r.insert(0, b"abcde").unwrap();
        assert_eq!(r.contiguous(), b"abcdefgh");
        r.insert(3, b"DEF").unwrap();
        assert_eq!(r.contiguous(), b"abcDEFgh");
        r.insert(20, b"x").unwrap();
        assert_eq!(r.contiguous(), b"abcDEFgh");
        r.insert(8, &[b'i'; 12]).unwrap();
        assert_eq!(r.contiguous().len(), 21);
        let mut r = CryptoReassembler::new();
        for i in 0..MAX_CRYPTO_RANGES {
            r.insert((i * 2) as u64 + 1, b"z").unwrap();
        }
        assert_eq!(r.insert(1000, b"z"), Err(ReassemblyOverflow));
        assert_eq!(r.insert(u64::MAX, b"z"), Err(ReassemblyOverflow));
    }

    #[test]
    fn bounded_number_of_packets_per_flow() {
        let dcid = [4; 8];
        let mut sniffer = InitialSniffer::new();
        for pn in 0..u32::from(MAX_INITIAL_PACKETS) {
            let packet = seal(VERSION_1, &dcid, pn, &[0x01]);
            assert_eq!(sniffer.push_datagram(&packet), Sniff::NeedMore);
        }
        let packet = seal(VERSION_1, &dcid, 99, &[0x01]);
        assert_eq!(sniffer.push_datagram(&packet), Sniff::NotThisProtocol);
    }

    #[test]
    fn varint_forms() {
        assert_eq!(varint(&[0x25]), Some((37, 1)));
        assert_eq!(varint(&[0x7b, 0xbd]), Some((15293, 2)));
        assert_eq!(varint(&[0x9d, 0x7f, 0x3e, 0x7d]), Some((494_878_333, 4)));
        assert_eq!(
            varint(&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c]),
            Some((151_288_809_941_952_652, 8))
        );
        assert_eq!(varint(&[0x40]), None);
        assert_eq!(varint(&[]), None);
    }
}
