//! Engine configuration: upstream resolver, block actions, limits and timeouts.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use crate::dns::BlockResponse;

/// How a blocked DNS question is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnsBlockAnswer {
    /// A: 0.0.0.0, AAAA: ::, other types (HTTPS/SVCB...) NOERROR with no data, TTL
    /// [`EngineConfig::dns_block_ttl`]. The default: apps treat it as an answer and do not
    /// retry in a storm (PCAPdroid, RethinkDNS), and connecting to 0.0.0.0 fails locally.
    #[default]
    Unspecified,
    /// NXDOMAIN (NetGuard, DuckDuckGo): honest, but some apps retry it quickly.
    NxDomain,
}

impl DnsBlockAnswer {
    /// The [`crate::dns::BlockResponse`] this style stands for, with block answers' `ttl`.
    pub fn to_block_response(self, ttl: u32) -> BlockResponse {
        match self {
            DnsBlockAnswer::Unspecified => BlockResponse::NullAddress { ttl },
            DnsBlockAnswer::NxDomain => BlockResponse::NxDomain,
        }
    }
}

/// The common HTTP proxy ports: Squid's 3128, 8080 (also inspected as plain web), tinyproxy's
/// and many apps' 8888, Privoxy's 8118.
pub const DEFAULT_PROXY_PORTS: [u16; 4] = [3128, 8080, 8888, 8118];

/// Everything the engine needs to know up front. [`EngineConfig::default`] fits the iOS budget
/// (see [`crate::budget`]).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// MTU of the tunnel (IP packet size). 1500 on most tunnels; larger is faster.
    pub mtu: usize,
    /// The resolver allowed DNS questions are forwarded to (IPv4).
    pub dns_upstream_v4: SocketAddr,
    /// Optional IPv6 resolver; questions that arrived over IPv6 use it when set.
    pub dns_upstream_v6: Option<SocketAddr>,
    /// Answer style for blocked names.
    pub dns_block_answer: DnsBlockAnswer,
    /// TTL of block answers: short, so unblocking takes effect soon; not zero, so apps do not
    /// hammer (5 s, like RethinkDNS and Blokada).
    pub dns_block_ttl: u32,
    /// Maximum flows (TCP + UDP) in the table. Beyond it, fair shares (`Engine::make_room`):
    /// an app holding half of it gives up its own oldest flow (UDP first), else the oldest UDP
    /// flow goes, else the oldest idle one.
    pub max_flows: usize,
    /// Initial TCP ring sizes of every flow (receive = from the app, send = to the app).
    pub tcp_small_rx: usize,
    pub tcp_small_tx: usize,
    /// The largest a flow's ring grows to, doubling each time the flow fills it (throughput
    /// needs the window; see `budget::MAX_RX`).
    pub tcp_max_rx: usize,
    pub tcp_max_tx: usize,
    /// Bytes all flows' rings may hold together at their initial sizes (a flow holds its
    /// rings only while bytes wait in them).
    pub tcp_ring_total: usize,
    /// Bytes all flows' rings may grow by together, beyond their initial sizes.
    pub tcp_grow_total: usize,
    /// Bytes of the first app data read to find an SNI/Host; a client-first flow (see
    /// `engine::tcp`) that names nothing within them is refused (fail closed).
    pub inspect_max_bytes: usize,
    /// Time to wait for the first bytes (ClientHello/Host) of a client-first flow; past it the
    /// flow is refused (fail closed), never connected by address. Generous: an app whose first
    /// bytes are this late has given up on its own connect timeout anyway.
    pub inspect_timeout: Duration,
    /// Ports of HTTP proxies, inspected first like 80/443/8080/8443: a `CONNECT host:port` is
    /// decided on its target before the proxy is asked, then the tunnel's own first bytes
    /// (the inner ClientHello) are held until their name is decided too; an absolute-URI
    /// request (`GET http://host/`) is decided on its host and its Host header. Default
    /// [`DEFAULT_PROXY_PORTS`]; SOCKS (1080) is not HTTP and is not inspected.
    pub proxy_ports: Vec<u16>,
    /// Time to wait for [`crate::Engine::app_resolved`] before deciding with the app unknown.
    pub app_wait: Duration,
    /// Whether the driver can resolve apps; when false no `ResolveApp` command is sent.
    pub resolve_apps: bool,
    /// How long an app answer is cached by (protocol, source address, source port).
    pub app_cache_ttl: Duration,
    /// Upstream connect timeout (driver-independent guard): the app gets an RST after it.
    pub connect_timeout: Duration,
    /// Idle timeouts.
    pub tcp_idle_timeout: Duration,
    pub udp_idle_timeout: Duration,
    /// DNS questions waiting for upstream are dropped after this.
    pub dns_timeout: Duration,
    /// Maximum DNS questions waiting for the upstream at once.
    pub max_pending_dns: usize,
    /// Entries in the DNS answer cache, as counted by the memory budget; the cache itself is
    /// bounded by [`crate::dns::MAX_CACHE_ENTRIES`] and [`crate::dns::MAX_CACHE_BYTES`].
    pub dns_cache_entries: usize,
    /// Refuse encrypted DNS the engine cannot read, so apps and the OS fall back to the plain
    /// DNS it answers: DNS over TLS and over QUIC (port 853, TCP and UDP), and the known
    /// DNS-over-HTTPS endpoints of [`crate::dns::doh`] (their names and subdomains, in DNS
    /// questions, SNI and Host; their anycast addresses on ports 443 and 853). On by default.
    pub block_encrypted_dns: bool,
    /// Seed for TCP initial sequence numbers and DNS transaction ids (give real randomness).
    pub random_seed: u64,
}

impl EngineConfig {
    /// How blocked DNS questions are answered: [`EngineConfig::dns_block_answer`] with
    /// [`EngineConfig::dns_block_ttl`].
    pub fn block_response(&self) -> BlockResponse {
        self.dns_block_answer.to_block_response(self.dns_block_ttl)
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            mtu: 1500,
            dns_upstream_v4: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(9, 9, 9, 9), 53)),
            dns_upstream_v6: Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::new(0x2620, 0xfe, 0, 0, 0, 0, 0, 9),
                53,
                0,
                0,
            ))),
            dns_block_answer: DnsBlockAnswer::Unspecified,
            dns_block_ttl: 5,
            max_flows: crate::budget::DEFAULT_MAX_FLOWS,
            tcp_small_rx: crate::budget::SMALL_RX,
            tcp_small_tx: crate::budget::SMALL_TX,
            tcp_max_rx: crate::budget::MAX_RX,
            tcp_max_tx: crate::budget::MAX_TX,
            tcp_ring_total: crate::budget::RING_TOTAL,
            tcp_grow_total: crate::budget::GROW_TOTAL,
            inspect_max_bytes: crate::budget::INSPECT_MAX,
            inspect_timeout: Duration::from_secs(30),
            proxy_ports: DEFAULT_PROXY_PORTS.to_vec(),
            app_wait: Duration::from_millis(20),
            resolve_apps: false,
            app_cache_ttl: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(15),
            tcp_idle_timeout: Duration::from_secs(7200),
            udp_idle_timeout: Duration::from_secs(60),
            dns_timeout: Duration::from_secs(5),
            max_pending_dns: 1024,
            dns_cache_entries: 1024,
            block_encrypted_dns: true,
            random_seed: 0x0123_4567_89ab_cdef,
        }
    }
}
