//! DNS-over-TLS and DNS-over-HTTPS endpoints: the one list the engine refuses when
//! `EngineConfig::block_encrypted_dns` is set (the default), which keeps apps and the OS from
//! slipping past the engine's DNS inspection.
//!
//! Why block them: Android's Private DNS (DoT, port 853) and browsers' secure DNS (DoH on 443)
//! bypass a VPN's plain DNS, so the engine would learn no names and block none. When the known
//! endpoints are unreachable, Android and the browsers fall back to plain DNS (PCAPdroid does
//! this, see the field notes, DNS). DoT is recognisable by its port alone; DoH looks like any HTTPS
//! and is recognised by its server name (SNI, or the DNS name an app looked up) or, for clients
//! that connect by address, by the providers' well-known anycast addresses. The address list is
//! meant for TCP/UDP 443 and 853 only: the same addresses serve plain DNS on 53, which the engine
//! intercepts anyway.
//!
//! The list is short on purpose (the providers that ship as presets in Android, Chrome, Firefox
//! and common apps) and every entry says where it comes from. Providers outside it are left to
//! the blocklists.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// DNS-over-TLS port (RFC 7858 §3.1).
pub const DOT_PORT: u16 = 853;

/// True for the DNS-over-TLS port 853 (TCP; also DNS-over-QUIC on UDP, RFC 9250 §4.1.1).
pub fn is_dot_port(port: u16) -> bool {
    port == DOT_PORT
}

/// A well-known DNS-over-HTTPS (or DoT) host name and the source that lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DohName {
    /// Host name; subdomains match too (e.g. per-user `abc123.dns.nextdns.io`).
    pub name: &'static str,
    /// Where the entry comes from.
    pub source: &'static str,
}

/// A well-known anycast address of a public resolver that serves DoH/DoT, with its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DohAddr {
    /// The address.
    pub addr: IpAddr,
    /// Provider and source.
    pub source: &'static str,
}

const GOOGLE: &str = "Google Public DNS docs, developers.google.com/speed/public-dns/docs/doh";
const CLOUDFLARE: &str = "Cloudflare 1.1.1.1 docs, developers.cloudflare.com/1.1.1.1";
const CLOUDFLARE_FAMILIES: &str =
    "Cloudflare 1.1.1.1 for Families docs, developers.cloudflare.com/1.1.1.1/setup";
const QUAD9: &str = "Quad9 service addresses, quad9.net/service/service-addresses-and-features";
const OPENDNS: &str = "Cisco OpenDNS DoH docs, support.opendns.com (DNS-over-HTTPS)";
const ADGUARD: &str = "AdGuard DNS public servers, adguard-dns.io/kb/general/dns-providers";
const NEXTDNS: &str = "NextDNS setup page; Firefox TRR list (firefox.dns.nextdns.io)";
const CLEANBROWSING: &str = "CleanBrowsing filters docs, cleanbrowsing.org/filters";
const ALIDNS: &str = "AliDNS (Alibaba) public DNS docs, alidns.com";
const DNSPOD: &str = "DNSPod (Tencent) public DNS docs, docs.dnspod.cn/public-dns";
const CHROMIUM: &str =
    "Chromium DoH provider list, net/dns/public/doh_provider_entry.cc (auto-upgrade table)";
const FIREFOX: &str = "Firefox TRR defaults (network.trr.uri / resolvers list)";
const MULLVAD: &str = "Mullvad DNS docs, mullvad.net/help/dns-over-https-and-dns-over-tls";
const TWNIC: &str = "TWNIC Quad101 docs, 101.101.101.101 (dns.twnic.tw)";

/// Well-known DoH/DoT host names.
pub const DOH_NAMES: &[DohName] = &[
    DohName {
        name: "dns.google",
        source: GOOGLE,
    },
    DohName {
        name: "dns.google.com",
        source: GOOGLE,
    },
    DohName {
        name: "cloudflare-dns.com",
        source: CLOUDFLARE,
    },
    DohName {
        name: "one.one.one.one",
        source: CLOUDFLARE,
    },
    DohName {
        name: "1dot1dot1dot1.cloudflare-dns.com",
        source: CLOUDFLARE,
    },
    DohName {
        name: "mozilla.cloudflare-dns.com",
        source: FIREFOX,
    },
    DohName {
        name: "chrome.cloudflare-dns.com",
        source: CHROMIUM,
    },
    DohName {
        name: "security.cloudflare-dns.com",
        source: CLOUDFLARE_FAMILIES,
    },
    DohName {
        name: "family.cloudflare-dns.com",
        source: CLOUDFLARE_FAMILIES,
    },
    DohName {
        name: "dns.quad9.net",
        source: QUAD9,
    },
    DohName {
        name: "dns9.quad9.net",
        source: QUAD9,
    },
    DohName {
        name: "dns10.quad9.net",
        source: QUAD9,
    },
    DohName {
        name: "dns11.quad9.net",
        source: QUAD9,
    },
    DohName {
        name: "doh.opendns.com",
        source: OPENDNS,
    },
    DohName {
        name: "doh.familyshield.opendns.com",
        source: OPENDNS,
    },
    DohName {
        name: "dns.adguard-dns.com",
        source: ADGUARD,
    },
    DohName {
        name: "dns.adguard.com",
        source: ADGUARD,
    },
    DohName {
        name: "dns.nextdns.io",
        source: NEXTDNS,
    },
    DohName {
        name: "doh.cleanbrowsing.org",
        source: CLEANBROWSING,
    },
    DohName {
        name: "dns.alidns.com",
        source: ALIDNS,
    },
    DohName {
        name: "doh.pub",
        source: DNSPOD,
    },
    DohName {
        name: "dot.pub",
        source: DNSPOD,
    },
    DohName {
        name: "doh.xfinity.com",
        source: FIREFOX,
    },
    DohName {
        name: "doh.mullvad.net",
        source: MULLVAD,
    },
    DohName {
        name: "dns.mullvad.net",
        source: MULLVAD,
    },
    DohName {
        name: "dns.twnic.tw",
        source: TWNIC,
    },
];

/// Well-known anycast addresses of the same providers.
pub const DOH_ADDRS: &[DohAddr] = &[
    DohAddr {
        addr: IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
        source: GOOGLE,
    },
    DohAddr {
        addr: IpAddr::V4(Ipv4Addr::new(8, 8, 4, 4)),
        source: GOOGLE,
    },
    DohAddr {
        addr: IpAddr::V6(Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888)),
        source: GOOGLE,
    },
    DohAddr {
        addr: IpAddr::V6(Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8844)),
        source: GOOGLE,
    },
    DohAddr {
        addr: IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1)),
        source: CLOUDFLARE,
    },
    DohAddr {
        addr: IpAddr::V4(Ipv4Addr::new(1, 0, 0, 1)),
        source: CLOUDFLARE,
    },
    DohAddr {
        addr: IpAddr::V6(Ipv6Addr::new(0x2606, 0x4700, 0x4700, 0, 0, 0, 0, 0x1111)),
        source: CLOUDFLARE,
    },
    DohAddr {
        addr: IpAddr::V6(Ipv6Addr::new(0x2606, 0x4700, 0x4700, 0, 0, 0, 0, 0x1001)),
        source: CLOUDFLARE,
    },
    DohAddr {
        addr: IpAddr::V4(Ipv4Addr::new(1, 1, 1, 2)),
        source: CLOUDFLARE_FAMILIES,
    },
    DohAddr {
        addr: IpAddr::V4(Ipv4Addr::new(1, 0, 0, 2)),
        source: CLOUDFLARE_FAMILIES,
    },
    DohAddr {
        addr: IpAddr::V4(Ipv4Addr::new(1, 1, 1, 3)),
        source: CLOUDFLARE_FAMILIES,
    },
    DohAddr {
        addr: IpAddr::V4(Ipv4Addr::new(1, 0, 0, 3)),
        source: CLOUDFLARE_FAMILIES,
    },
    DohAddr {
        addr: IpAddr::V4(Ipv4Addr::new(9, 9, 9, 9)),
        source: QUAD9,
    },
    DohAddr {
        addr: IpAddr::V4(Ipv4Addr::new(149, 112, 112, 112)),
        source: QUAD9,
    },
    DohAddr {
        addr: IpAddr::V6(Ipv6Addr::new(0x2620, 0xfe, 0, 0, 0, 0, 0, 0xfe)),
        source: QUAD9,
    },
    DohAddr {
        addr: IpAddr::V6(Ipv6Addr::new(0x2620, 0xfe, 0, 0, 0, 0, 0, 0x9)),
        source: QUAD9,
    },
    DohAddr {
        addr: IpAddr::V4(Ipv4Addr::new(208, 67, 222, 222)),
        source: OPENDNS,
    },
    DohAddr {
        addr: IpAddr::V4(Ipv4Addr::new(208, 67, 220, 220)),
        source: OPENDNS,
    },
    DohAddr {
        addr: IpAddr::V6(Ipv6Addr::new(0x2620, 0x119, 0x35, 0, 0, 0, 0, 0x35)),
        source: OPENDNS,
    },
    DohAddr {
        addr: IpAddr::V6(Ipv6Addr::new(0x2620, 0x119, 0x53, 0, 0, 0, 0, 0x53)),
        source: OPENDNS,
    },
    DohAddr {
        addr: IpAddr::V4(Ipv4Addr::new(94, 140, 14, 14)),
        source: ADGUARD,
    },
    DohAddr {
        addr: IpAddr::V4(Ipv4Addr::new(94, 140, 15, 15)),
        source: ADGUARD,
    },
    DohAddr {
        addr: IpAddr::V4(Ipv4Addr::new(223, 5, 5, 5)),
        source: ALIDNS,
    },
    DohAddr {
        addr: IpAddr::V4(Ipv4Addr::new(223, 6, 6, 6)),
        source: ALIDNS,
    },
    DohAddr {
        addr: IpAddr::V4(Ipv4Addr::new(1, 12, 12, 12)),
        source: DNSPOD,
    },
    DohAddr {
        addr: IpAddr::V4(Ipv4Addr::new(120, 53, 53, 53)),
        source: DNSPOD,
    },
];

/// The list entry for `name` (lowercase, no trailing dot) when it is a known DoH/DoT host or a
/// subdomain of one.
pub fn known_doh_name(name: &str) -> Option<&'static DohName> {
    DOH_NAMES.iter().find(|entry| {
        name == entry.name
            || name
                .strip_suffix(entry.name)
                .is_some_and(|prefix| prefix.ends_with('.'))
    })
}

/// True when `name` (lowercase, no trailing dot) is a known DoH/DoT host or a subdomain of one.
pub fn is_known_doh_name(name: &str) -> bool {
    known_doh_name(name).is_some()
}

/// True when `addr` is a well-known anycast address of a public DoH/DoT resolver.
pub fn is_known_doh_addr(addr: IpAddr) -> bool {
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    };
    DOH_ADDRS.iter().any(|entry| entry.addr == addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_names_and_addresses() {
        assert!(is_dot_port(853));
        assert!(!is_dot_port(443));
        for name in [
            "dns.google",
            "cloudflare-dns.com",
            "dns.quad9.net",
            "doh.opendns.com",
        ] {
            assert!(is_known_doh_name(name), "{name}");
        }
        assert!(is_known_doh_name("abc123.dns.nextdns.io"));
        assert!(!is_known_doh_name("notdns.google"));
        assert!(!is_known_doh_name("google"));
        assert!(!is_known_doh_name("www.google.com"));
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "9.9.9.9",
            "2606:4700:4700::1111",
            "::ffff:8.8.4.4",
        ] {
            assert!(is_known_doh_addr(addr.parse().unwrap()), "{addr}");
        }
        assert!(!is_known_doh_addr("8.8.8.9".parse().unwrap()));
    }

    #[test]
    fn every_entry_has_a_source_and_a_valid_lowercase_name() {
        for entry in DOH_NAMES {
            assert!(!entry.source.is_empty());
            assert_eq!(
                crate::inspect::normalize_host_name(entry.name.as_bytes()).as_deref(),
                Some(entry.name)
            );
        }
        assert!(DOH_ADDRS.iter().all(|entry| !entry.source.is_empty()));
    }
}
