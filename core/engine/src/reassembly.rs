//! IP fragment reassembly for UDP, within a fixed memory bound.
//!
//! A UDP datagram larger than the tunnel's MTU (a DNS answer over EDNS, a game's or a VoIP
//! app's large datagram) leaves the app's kernel as IP fragments; dropping them would make such
//! datagrams vanish. Fragments of UDP datagrams are held and joined:
//! IPv4 fragments (flags/offset in the header) and IPv6 fragments whose Fragment header follows
//! the fixed header directly (what Linux, Android and iOS send; a fragment behind other
//! extension headers is still dropped). The joined packet is an ordinary unfragmented packet,
//! parsed (checksums included) as if it had arrived whole.
//!
//! Bounds: at most [`MAX_DATAGRAMS`] datagrams in reassembly, [`MAX_BYTES`] held in all,
//! [`MAX_PIECES`] fragments per datagram, [`REASSEMBLY_TIMEOUT`] from the first fragment.
//! Beyond any bound the oldest datagram (or the new fragment) is dropped and counted, as are
//! overlapping fragments (RFC 5722: the whole datagram is dropped) and fragments of other
//! protocols (TCP lowers its segment size instead; nothing else is relayed).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::packet::PROTO_UDP;

/// Datagrams in reassembly at once.
pub const MAX_DATAGRAMS: usize = 32;
/// Bytes of fragment payload held in all (the largest UDP datagram is 64 KiB).
pub const MAX_BYTES: usize = 256 * 1024;
/// Fragments per datagram (64 KiB in 552-byte fragments, IPv4's smallest MTU, is 119).
pub const MAX_PIECES: usize = 128;
/// A datagram whose fragments are not all in by then is dropped (Linux waits 30 s; a UDP
/// exchange that lost a fragment is retried by the app long before).
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(10);

const IPV6_FRAGMENT: u8 = 44;

/// What became of one fragment.
pub(crate) enum Outcome {
    /// Held; the datagram is not complete yet.
    Held,
    /// The datagram is complete: a whole unfragmented IP packet.
    Complete(Vec<u8>),
    /// Dropped (not UDP, malformed, over a bound, overlapping): `n` fragments discarded.
    Dropped(u64),
}

#[derive(PartialEq, Eq, Clone, Copy)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
}

struct Datagram {
    key: Key,
    started: Instant,
    /// The unfragmentable header (IPv4 header, or the IPv6 fixed header), from the fragment at
    /// offset 0 once it arrived.
    header: Option<Vec<u8>>,
    /// The upper-layer protocol (IPv6: the Fragment header's next header).
    proto: u8,
    /// Length of the whole payload, known once the last fragment arrived.
    total: Option<usize>,
    /// (offset, bytes), in arrival order.
    pieces: Vec<(usize, Vec<u8>)>,
    held: usize,
}

/// The fragments being joined.
#[derive(Default)]
pub(crate) struct Reassembly {
    datagrams: Vec<Datagram>,
    held: usize,
}

/// A fragment's place, as read from its header.
struct Fragment<'a> {
    key: Key,
    proto: u8,
    offset: usize,
    more: bool,
    /// The unfragmentable header to rebuild the packet with (offset 0 only matters).
    header: &'a [u8],
    data: &'a [u8],
}

fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads a fragment's header fields; `None` for anything that is not a fragment this module
/// joins (malformed lengths were checked by `packet::parse` before it said "fragment").
fn fragment(packet: &[u8]) -> Option<Fragment<'_>> {
    match packet.first()? >> 4 {
        4 => {
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            let total = usize::from(read_u16(packet, 2));
            let flags = read_u16(packet, 6);
            let mut src = [0u8; 4];
            src.copy_from_slice(packet.get(12..16)?);
            let mut dst = [0u8; 4];
            dst.copy_from_slice(packet.get(16..20)?);
            Some(Fragment {
                key: Key {
                    src: IpAddr::from(src),
                    dst: IpAddr::from(dst),
                    id: u32::from(read_u16(packet, 4)) | u32::from(packet[9]) << 16,
                },
                proto: packet[9],
                offset: usize::from(flags & 0x1fff) * 8,
                more: flags & 0x2000 != 0,
                header: packet.get(..ihl)?,
                data: packet.get(ihl..total)?,
            })
        }
        6 => {
            if packet.get(6) != Some(&IPV6_FRAGMENT) {
                return None;
            }
            let end = 40 + usize::from(read_u16(packet, 4));
            let frag = packet.get(40..48)?;
            let word = read_u16(frag, 2);
            let mut src = [0u8; 16];
            src.copy_from_slice(packet.get(8..24)?);
            let mut dst = [0u8; 16];
            dst.copy_from_slice(packet.get(24..40)?);
            Some(Fragment {
                key: Key {
                    src: IpAddr::from(src),
                    dst: IpAddr::from(dst),
                    id: u32::from_be_bytes([frag[4], frag[5], frag[6], frag[7]]),
                },
                proto: frag[0],
                offset: usize::from(word & 0xfff8),
                more: word & 1 != 0,
                header: packet.get(..40)?,
                data: packet.get(48..end)?,
            })
        }
        _ => None,
    }
}

impl Reassembly {
    /// Bytes held (for the engine's memory accounting).
    pub(crate) fn memory(&self) -> usize {
        self.held + self.datagrams.len() * 128
    }

    /// Forget datagrams older than [`REASSEMBLY_TIMEOUT`]; returns the fragments dropped.
    pub(crate) fn expire(&mut self, now: Instant) -> u64 {
        let mut dropped = 0;
        let held = &mut self.held;
        self.datagrams.retain(|d| {
            let keep = now.saturating_duration_since(d.started) < REASSEMBLY_TIMEOUT;
            if !keep {
                dropped += d.pieces.len() as u64;
                *held -= d.held;
            }
            keep
        });
        dropped
    }

    fn remove(&mut self, i: usize) -> Datagram {
        let d = self.datagrams.remove(i);
        self.held -= d.held;
        d
    }

    /// Take one fragment (a packet `packet::parse` refused as a fragment).
    pub(crate) fn push(&mut self, now: Instant, packet: &[u8]) -> Outcome {
        let mut dropped = self.expire(now);
        let Some(f) = fragment(packet) else {
            return Outcome::Dropped(dropped + 1);
        };
        if f.proto != PROTO_UDP || (f.more && f.data.len() % 8 != 0) || f.data.is_empty() {
            return Outcome::Dropped(dropped + 1);
        }
        let end = f.offset + f.data.len();
        let limit = 65_535 - f.header.len();
        if end > limit {
            return Outcome::Dropped(dropped + 1);
        }
        let i = match self.datagrams.iter().position(|d| d.key == f.key) {
            Some(i) => i,
            None => {
                if self.datagrams.len() >= MAX_DATAGRAMS {
                    dropped += self.remove(0).pieces.len() as u64;
                }
                self.datagrams.push(Datagram {
                    key: f.key,
                    started: now,
                    header: None,
                    proto: f.proto,
                    total: None,
                    pieces: Vec::new(),
                    held: 0,
                });
                self.datagrams.len() - 1
            }
        };
        // Room: the oldest other datagrams go first; a datagram that alone would exceed the
        // bound is dropped whole.
        let mut i = i;
        while self.held + f.data.len() > MAX_BYTES {
            let oldest = usize::from(i == 0);
            if oldest >= self.datagrams.len() {
                let d = self.remove(i);
                return Outcome::Dropped(dropped + d.pieces.len() as u64 + 1);
            }
            dropped += self.remove(oldest).pieces.len() as u64;
            if oldest < i {
                i -= 1;
            }
        }
        self.push_at(i, f, end, dropped)
    }

    fn push_at(&mut self, i: usize, f: Fragment<'_>, end: usize, dropped: u64) -> Outcome {
        let d = &mut self.datagrams[i];
        let overlaps = d
            .pieces
            .iter()
            .any(|(at, bytes)| f.offset < at + bytes.len() && *at < end);
        let bad_total = match (d.total, f.more) {
            (Some(total), _) if end > total => true,
            (Some(total), false) => total != end,
            _ => false,
        };
        if overlaps || bad_total || d.pieces.len() >= MAX_PIECES || d.proto != f.proto {
            let d = self.remove(i);
            return Outcome::Dropped(dropped + d.pieces.len() as u64 + 1);
        }
        if !f.more {
            d.total = Some(end);
        }
        if f.offset == 0 {
            d.header = Some(f.header.to_vec());
        }
        d.pieces.push((f.offset, f.data.to_vec()));
        d.held += f.data.len();
        self.held += f.data.len();
        let complete = d.header.is_some()
            && d.total
                .is_some_and(|total| d.pieces.iter().map(|(_, b)| b.len()).sum::<usize>() == total);
        if !complete {
            return if dropped > 0 {
                Outcome::Dropped(dropped)
            } else {
                Outcome::Held
            };
        }
        let d = self.remove(i);
        Outcome::Complete(join(d))
    }
}

/// The whole packet of a complete datagram (its pieces do not overlap and add up to its total,
/// so sorted by offset they tile it).
fn join(mut d: Datagram) -> Vec<u8> {
    let header = d.header.take().unwrap_or_default();
    let total = d.total.unwrap_or(0);
    d.pieces.sort_unstable_by_key(|(at, _)| *at);
    let mut out = Vec::with_capacity(header.len() + total);
    out.extend_from_slice(&header);
    for (_, bytes) in &d.pieces {
        out.extend_from_slice(bytes);
    }
    if header.first().is_some_and(|b| b >> 4 == 4) {
        let len = u16::try_from(out.len()).unwrap_or(u16::MAX);
        out[2..4].copy_from_slice(&len.to_be_bytes());
        out[6..8].copy_from_slice(&[0, 0]);
        out[10..12].copy_from_slice(&[0, 0]);
        let sum = crate::packet::checksum(0, &out[..header.len()]);
        out[10..12].copy_from_slice(&sum.to_be_bytes());
    } else {
        let len = u16::try_from(total).unwrap_or(u16::MAX);
        out[4..6].copy_from_slice(&len.to_be_bytes());
        out[6] = d.proto;
    }
    out
}
