//! UDP other than DNS: one NAT flow per (app address, destination), datagrams relayed through
//! the driver's per-flow host socket, idle expiry.
//!
//! QUIC (UDP 443): the first datagrams are held (at most [`MAX_HELD`]) while the Initial is
//! decrypted for its SNI (keys from public salts, RFC 9001); a flow whose Initial cannot be read
//! (not QUIC, not in [`QUIC_SNIFF_WAIT`] or [`MAX_HELD`] datagrams, no room to decrypt) is
//! dropped, with the ICMP error of a block (fail closed: the app falls back to TCP, where its
//! ClientHello is read). An Initial whose ClientHello has no SNI is decided by address, as a
//! TCP ClientHello without one is.
//!
//! Blocked flows answer every datagram with ICMP "administratively prohibited" rather than
//! silence: the app's kernel reports an error on a connected socket at once (QUIC stacks then
//! fall back to TCP, where SNI inspection applies), while a silent drop makes the app retransmit
//! with backoff until its own timeout: more retry traffic for the same result.

use std::time::{Duration, Instant};

use embargo_policy::{NameSource, Protocol};

use super::{Engine, Flow, FlowKind};
use crate::api::{Command, DropReason, FlowId};
use crate::inspect::quic::{InitialSniffer, MAX_CRYPTO_BYTES};
use crate::inspect::Sniff;
use crate::packet::{self, Parsed};

/// Datagrams held while a decision is pending (a ClientHello with post-quantum key shares spans
/// two Initial packets; four leaves room for reordering).
pub(crate) const MAX_HELD: usize = 4;
/// How long QUIC datagrams are held for the SNI at most.
const QUIC_SNIFF_WAIT: Duration = Duration::from_millis(100);
/// Largest datagram relayed (IPv4 total length limit minus headers).
const MAX_DATAGRAM: usize = 65_535 - 48;

pub(crate) struct UdpFlow {
    pub decided: bool,
    pub blocked: bool,
    pub deadline: Option<Instant>,
    pub sniffer: Option<Box<InitialSniffer>>,
    pub sniff_done: bool,
    /// QUIC whose Initial could not be read: refused when decided (fail closed).
    pub unreadable: bool,
    pub name: Option<String>,
    pub held: Vec<Vec<u8>>,
}

impl UdpFlow {
    /// Bytes counted against the inspection pool.
    pub(crate) fn held_bytes(&self) -> usize {
        self.held.iter().map(Vec::capacity).sum::<usize>()
            + if self.sniffer.is_some() {
                MAX_CRYPTO_BYTES + 2048
            } else {
                0
            }
    }
}

impl Engine {
    pub(crate) fn on_udp(&mut self, packet: &[u8], p: &Parsed) {
        if p.dst_port == 53 {
            return self.dns_query(p.src_sock(), p.dst_sock(), &packet[p.payload..p.end], None);
        }
        let payload = &packet[p.payload..p.end];
        let key = (p.src_sock(), p.dst_sock());
        if let Some(id) = self.table.udp_flow(&key) {
            return self.udp_from_app(id, packet, p);
        }
        let (src, dst) = key;
        let cached = self.cached_app(Protocol::Udp, src);
        let ask_app = cached.is_none() && self.config.resolve_apps;
        let quic = dst.port() == 443;
        // Hold the datagrams for the app only when the app could change the verdict (QUIC is
        // held for its SNI anyway, and the name decides it: wait for both).
        let await_app = ask_app && (quic || self.app_matters(None, dst, Protocol::Udp, None));
        let app = cached.flatten();
        let id = self.next_flow_id();
        if ask_app && !await_app && self.start_app_wait(id, Protocol::Udp, src) {
            // Decided without the app, recorded with it: the event waits for the answer.
            self.commands.push_back(Command::ResolveApp {
                flow: id,
                protocol: Protocol::Udp,
                src,
                dst,
            });
        }
        let mut blocked = false;
        if !await_app && !quic {
            let (decision, event) =
                self.evaluate(id, app.as_deref(), None, dst, Protocol::Udp, None);
            self.record(event, &decision);
            blocked = decision.is_block();
        }
        if !self.make_room(&app) {
            return self.drop_packet(DropReason::TableFull);
        }
        let holding = await_app || quic;
        let now = self.now;
        let pool_full = !self.sockets.inspect_room(MAX_CRYPTO_BYTES);
        self.insert_flow(Flow {
            id,
            protocol: Protocol::Udp,
            src,
            dst,
            app,
            app_pending: await_app,
            last_active: now,
            bytes_from_app: 0,
            bytes_to_app: 0,
            timer_at: None,
            upstream_open: false,
            kind: FlowKind::Udp(UdpFlow {
                decided: !holding,
                blocked,
                deadline: holding.then(|| now + QUIC_SNIFF_WAIT.max(self.config.app_wait)),
                sniffer: (quic && !pool_full).then(|| Box::new(InitialSniffer::new())),
                sniff_done: !quic || pool_full,
                unreadable: quic && pool_full,
                name: None,
                held: Vec::new(),
            }),
        });
        if let Some(FlowKind::Udp(u)) = self.table.get(&id).map(|f| &f.kind) {
            self.sockets.hold(u.held_bytes());
        }
        if await_app {
            self.commands.push_back(Command::ResolveApp {
                flow: id,
                protocol: Protocol::Udp,
                src,
                dst,
            });
        }
        let _ = payload;
        self.udp_from_app(id, packet, p);
    }

    fn udp_from_app(&mut self, id: FlowId, packet: &[u8], p: &Parsed) {
        let payload = &packet[p.payload..p.end];
        let Some(f) = self.table.get_mut(&id) else {
            return;
        };
        let FlowKind::Udp(u) = &mut f.kind else {
            return;
        };
        f.last_active = self.now;
        if u.blocked {
            self.drop_packet(DropReason::Blocked);
            self.emit_packet(|b| packet::build_icmp_prohibited(b, p, packet));
            return;
        }
        if u.decided {
            f.bytes_from_app += payload.len() as u64;
            f.upstream_open = true;
            let dst = f.dst;
            self.commands.push_back(Command::SendDatagram {
                flow: id,
                dst,
                data: payload.to_vec(),
            });
            return;
        }
        if u.held.len() >= MAX_HELD {
            return self.drop_packet(DropReason::TableFull);
        }
        let before = u.held_bytes();
        u.held.push(payload.to_vec());
        if let Some(sniffer) = u.sniffer.as_mut() {
            match sniffer.push_datagram(payload) {
                Sniff::Done(hello) => {
                    u.name = hello.server_name;
                    u.sniff_done = true;
                }
                Sniff::NotThisProtocol => {
                    u.sniff_done = true;
                    u.unreadable = true;
                }
                Sniff::NeedMore => {
                    u.sniff_done = u.held.len() >= MAX_HELD;
                    u.unreadable = u.sniff_done;
                }
            }
        }
        if u.sniff_done {
            u.sniffer = None;
        }
        self.sockets.resize(before, u.held_bytes());
        self.udp_try_decide(id);
    }

    /// Decide a held flow once its app and name are known (or waited for long enough).
    pub(crate) fn udp_try_decide(&mut self, id: FlowId) {
        let Some(f) = self.table.get(&id) else { return };
        let FlowKind::Udp(u) = &f.kind else { return };
        if u.decided || f.app_pending || !u.sniff_done {
            return;
        }
        let (app, dst, src) = (f.app.clone(), f.dst, f.src);
        let name = u.name.clone();
        let unreadable = u.unreadable;
        let (mut decision, mut event) = self.evaluate(
            id,
            app.as_deref(),
            name.as_deref().map(|n| (n, NameSource::QuicSni)),
            dst,
            Protocol::Udp,
            None,
        );
        if unreadable {
            super::fail_closed(
                &mut decision,
                &mut event,
                "QUIC Initial not readable on UDP 443 (fail closed)",
            );
        }
        self.record(event, &decision);
        let Some(f) = self.table.get_mut(&id) else {
            return;
        };
        let FlowKind::Udp(u) = &mut f.kind else {
            return;
        };
        let freed = u.held_bytes();
        let held = std::mem::take(&mut u.held);
        u.sniffer = None;
        u.decided = true;
        u.deadline = None;
        self.sockets.release(freed);
        if decision.is_block() {
            u.blocked = true;
            if let Some(first) = held.first() {
                // Quote a rebuilt copy of the app's datagram in the ICMP error.
                let mut original = Vec::new();
                packet::build_udp(&mut original, src, dst, first);
                if let Ok(p) = packet::parse(&original) {
                    self.emit_packet(|b| packet::build_icmp_prohibited(b, &p, &original));
                }
            }
            return;
        }
        f.upstream_open = true;
        for data in held {
            f.bytes_from_app += data.len() as u64;
            self.commands.push_back(Command::SendDatagram {
                flow: id,
                dst,
                data,
            });
        }
    }

    pub(crate) fn udp_deadline(&mut self, id: FlowId) {
        let Some(f) = self.table.get_mut(&id) else {
            return;
        };
        let FlowKind::Udp(u) = &mut f.kind else {
            return;
        };
        u.deadline = None;
        f.app_pending = false;
        if !u.sniff_done {
            // No readable Initial in time (junk first, or too slow): refused.
            u.sniff_done = true;
            u.unreadable = u.sniffer.is_some();
            u.sniffer = None;
        }
        self.udp_try_decide(id);
    }

    pub(crate) fn udp_upstream_datagram(&mut self, id: FlowId, data: &[u8]) {
        let Some(f) = self.table.get_mut(&id) else {
            return;
        };
        let FlowKind::Udp(u) = &f.kind else { return };
        if u.blocked || !u.decided || data.len() > MAX_DATAGRAM {
            return;
        }
        f.last_active = self.now;
        f.bytes_to_app += data.len() as u64;
        // Replies come from the address the app sent to, whatever the host socket saw (NAT).
        let (src, dst) = (f.dst, f.src);
        self.emit_packet(|b| packet::build_udp(b, src, dst, data));
    }
}
