//! A UDP datagram larger than the MTU arrives as IP fragments. They used
//! to be dropped one by one (the datagram vanished); now they are joined within a memory bound
//! and the datagram is relayed whole. Fake clock, no IO.

use std::net::SocketAddr;
use std::time::Duration;

use embargo_engine::{Command, DropReason};
use embargo_test_support::*;

fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum = 0u32;
    for pair in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Split an IPv4 packet (20-byte header) into fragments of at most `size` payload bytes.
fn fragments_v4(whole: &[u8], size: usize, id: u16) -> Vec<Vec<u8>> {
    let payload = &whole[20..];
    let chunks: Vec<&[u8]> = payload.chunks(size).collect();
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut p = whole[..20].to_vec();
            p.extend_from_slice(chunk);
            let len = p.len() as u16;
            p[2..4].copy_from_slice(&len.to_be_bytes());
            p[4..6].copy_from_slice(&id.to_be_bytes());
            let more = if i + 1 < chunks.len() { 0x2000 } else { 0 };
            let flags = more | (i * size / 8) as u16;
            p[6..8].copy_from_slice(&flags.to_be_bytes());
            p[10..12].copy_from_slice(&[0, 0]);
            let sum = ip_checksum(&p[..20]);
            p[10..12].copy_from_slice(&sum.to_be_bytes());
            p
        })
        .collect()
}

/// Split an IPv6 packet (40-byte header, no extensions) into fragments with a Fragment header.
fn fragments_v6(whole: &[u8], size: usize, id: u32) -> Vec<Vec<u8>> {
    let next = whole[6];
    let payload = &whole[40..];
    let chunks: Vec<&[u8]> = payload.chunks(size).collect();
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut p = whole[..40].to_vec();
            p[6] = 44;
            let more = u16::from(i + 1 < chunks.len());
            let word = (i * size) as u16 | more;
            p.extend_from_slice(&[next, 0]);
            p.extend_from_slice(&word.to_be_bytes());
            p.extend_from_slice(&id.to_be_bytes());
            p.extend_from_slice(chunk);
            let len = (p.len() - 40) as u16;
            p[4..6].copy_from_slice(&len.to_be_bytes());
            p
        })
        .collect()
}

fn sent(cmds: &[Command]) -> Vec<Vec<u8>> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::SendDatagram { data, .. } => Some(data.clone()),
            _ => None,
        })
        .collect()
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// Before: 0 datagrams relayed and 3 fragments dropped. After: 1 datagram of 3000 bytes.
#[test]
fn a_fragmented_udp_datagram_is_joined_and_relayed() {
    let mut h = Harness::new();
    let app: SocketAddr = "10.0.0.2:7000".parse().unwrap();
    let server: SocketAddr = "198.51.100.50:9000".parse().unwrap();
    let data = payload(3000);
    let whole = udp(app, server, &data);
    let frags = fragments_v4(&whole, 1480, 0x1234);
    assert_eq!(frags.len(), 3);
    // Out of order: the last first.
    for f in frags.iter().rev() {
        h.send(f);
    }
    assert_eq!(sent(&h.commands()), vec![data]);
    let s = h.engine.stats();
    assert_eq!(s.dropped[DropReason::Fragment as usize], 0);
    assert_eq!(s.datagrams_reassembled, 1);
}

#[test]
fn a_fragmented_ipv6_udp_datagram_is_joined_and_relayed() {
    let mut h = Harness::new();
    let app: SocketAddr = "[fd00::2]:7001".parse().unwrap();
    let server: SocketAddr = "[2001:db8::50]:9000".parse().unwrap();
    let data = payload(4000);
    let whole = udp(app, server, &data);
    for f in fragments_v6(&whole, 1232, 77) {
        h.send(&f);
    }
    assert_eq!(sent(&h.commands()), vec![data]);
}

/// Overlaps, incomplete datagrams past the timeout and fragments of TCP are dropped and
/// counted; memory stays bounded whatever arrives.
#[test]
fn bad_and_stale_fragments_are_dropped_and_counted() {
    let mut h = Harness::new();
    let app: SocketAddr = "10.0.0.2:7002".parse().unwrap();
    let server: SocketAddr = "198.51.100.50:9000".parse().unwrap();
    let whole = udp(app, server, &payload(3000));
    let frags = fragments_v4(&whole, 1480, 1);
    // Overlap: the first fragment twice.
    h.send(&frags[0]);
    h.send(&frags[0]);
    assert!(sent(&h.commands()).is_empty());
    assert_eq!(h.engine.stats().dropped[DropReason::Fragment as usize], 2);
    // Incomplete, then the timeout passes: dropped when the next fragment comes.
    let frags = fragments_v4(&whole, 1480, 2);
    h.send(&frags[0]);
    h.advance(embargo_engine::reassembly::REASSEMBLY_TIMEOUT + Duration::from_secs(1));
    let other = fragments_v4(&whole, 1480, 3);
    h.send(&other[0]);
    assert_eq!(h.engine.stats().dropped[DropReason::Fragment as usize], 3);
    // A flood of first fragments of distinct datagrams: memory stays bounded.
    let before = h.engine.stats().memory_bytes;
    for id in 100..1100u16 {
        h.send(&fragments_v4(&whole, 1480, id)[0]);
    }
    let grown = h.engine.stats().memory_bytes - before;
    assert!(grown <= embargo_engine::budget::REASSEMBLY_TOTAL, "{grown}");
    assert!(h.commands().is_empty());
}
