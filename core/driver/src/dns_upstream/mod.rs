//! Where allowed DNS questions go: plain DNS (UDP), DNS-over-TLS (RFC 7858) or
//! DNS-over-HTTPS (RFC 8484, HTTP/2), several in order with fallback.
//!
//! The engine decides and frames every question as before (one [`Command::SendDatagram`] on
//! [`FlowId::DNS`]); with upstreams configured here the driver carries it instead of the UDP
//! socket, on the [`client`] worker, and hands the answer back as if the engine's configured
//! resolver had sent it. The engine stays unaware of the transport.
//!
//! [`Command::SendDatagram`]: embargo_engine::Command::SendDatagram
//! [`FlowId::DNS`]: embargo_engine::FlowId::DNS

pub(crate) mod client;
mod fallback;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

pub use fallback::Fallback;

/// Port of plain DNS.
pub const DNS_PORT: u16 = 53;
/// Port of DNS-over-TLS (RFC 7858 §3.1).
pub const DOT_PORT: u16 = 853;
/// Port of HTTPS.
pub const HTTPS_PORT: u16 = 443;

/// One resolver allowed DNS questions may go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsUpstream {
    /// Plain DNS over UDP: `1.1.1.1`, `1.1.1.1:53`, `[2606:4700::1111]:53`, `udp://1.1.1.1`.
    Plain(SocketAddr),
    /// DNS-over-TLS: `tls://dns.example@192.0.2.1[:853]`. `name` is checked against the
    /// server's certificate.
    Tls { name: String, addr: SocketAddr },
    /// DNS-over-HTTPS: `https://dns.example[:443]/dns-query`, or with the address given
    /// (`https://dns.example@192.0.2.1[:443]/dns-query`) so no plain lookup of the name is
    /// needed first. Without it the name is looked up once through the host's resolver.
    Https {
        name: String,
        /// The server's address, or `None` to look `name` up (then `port`).
        addr: Option<SocketAddr>,
        port: u16,
        path: String,
    },
}

/// The upstreams and how to check their certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsUpstreams {
    /// Tried in order; a failing one is skipped for a while ([`Fallback`]). Empty: questions
    /// go to the engine's configured resolver over UDP, as the engine addressed them.
    pub upstreams: Vec<DnsUpstream>,
    /// A PEM file of certificate authorities trusted besides the Mozilla roots of
    /// `webpki-roots` (a private resolver's CA, the test CA).
    pub extra_roots: Option<PathBuf>,
}

impl DnsUpstreams {
    /// True when the driver's own client carries the questions (anything but none).
    pub fn active(&self) -> bool {
        !self.upstreams.is_empty()
    }
}

/// Splits an ordered list of upstreams between the engine and the driver: returns the
/// resolver address the engine forwards to and the list the driver's client carries. A lone
/// plain resolver stays on the engine's own UDP path (no worker hop); with anything else the
/// client carries every question and the engine's address is only the label its answers come
/// back under. `None` for an empty list.
pub fn route(upstreams: Vec<DnsUpstream>) -> Option<(SocketAddr, Vec<DnsUpstream>)> {
    let first = upstreams.first()?;
    let label = match first {
        DnsUpstream::Plain(addr) | DnsUpstream::Tls { addr, .. } => *addr,
        DnsUpstream::Https { addr: Some(a), .. } => *a,
        DnsUpstream::Https { addr: None, .. } => SocketAddr::from(([0, 0, 0, 0], DNS_PORT)),
    };
    if let [DnsUpstream::Plain(addr)] = upstreams[..] {
        return Some((addr, Vec::new()));
    }
    Some((label, upstreams))
}

/// Why an upstream's text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub text: String,
    pub reason: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DNS upstream {:?}: {} (expected ADDR[:PORT], tls://NAME@ADDR[:PORT] or \
             https://NAME[@ADDR][:PORT]/PATH)",
            self.text, self.reason
        )
    }
}

impl std::error::Error for ParseError {}

impl std::str::FromStr for DnsUpstream {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        let err = |reason| ParseError {
            text: text.to_string(),
            reason,
        };
        let t = text.trim();
        if let Some(rest) = t.strip_prefix("udp://") {
            return addr_with_port(rest, DNS_PORT)
                .map(DnsUpstream::Plain)
                .ok_or(err("bad address"));
        }
        if let Some(rest) = t.strip_prefix("tls://") {
            let rest = rest.trim_end_matches('/');
            let (name, addr) = match rest.split_once('@') {
                Some((name, addr)) => (name, addr),
                // An address alone: its certificate must name that address.
                None => {
                    let addr = addr_with_port(rest, DOT_PORT)
                        .ok_or(err("needs NAME@ADDR (the address to connect to)"))?;
                    return Ok(DnsUpstream::Tls {
                        name: addr.ip().to_string(),
                        addr,
                    });
                }
            };
            check_name(name).ok_or(err("bad server name"))?;
            let addr = addr_with_port(addr, DOT_PORT).ok_or(err("bad address after '@'"))?;
            return Ok(DnsUpstream::Tls {
                name: name.to_ascii_lowercase(),
                addr,
            });
        }
        if let Some(rest) = t.strip_prefix("https://") {
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => return Err(err("needs a path (e.g. /dns-query)")),
            };
            if path.len() < 2 || path.contains(char::is_whitespace) {
                return Err(err("bad path"));
            }
            let (name, addr, port) = match authority.split_once('@') {
                Some((name, addr)) => {
                    let addr =
                        addr_with_port(addr, HTTPS_PORT).ok_or(err("bad address after '@'"))?;
                    (name, Some(addr), addr.port())
                }
                None => match authority.rsplit_once(':') {
                    Some((name, port)) if !name.contains(':') => {
                        (name, None, port.parse().map_err(|_| err("bad port"))?)
                    }
                    _ => (authority, None, HTTPS_PORT),
                },
            };
            check_name(name).ok_or(err("bad server name"))?;
            return Ok(DnsUpstream::Https {
                name: name.to_ascii_lowercase(),
                addr,
                port,
                path: path.to_string(),
            });
        }
        if t.contains("://") {
            return Err(err("unknown scheme"));
        }
        addr_with_port(t, DNS_PORT)
            .map(DnsUpstream::Plain)
            .ok_or(err("bad address"))
    }
}

impl fmt::Display for DnsUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsUpstream::Plain(addr) => write!(f, "udp://{addr}"),
            DnsUpstream::Tls { name, addr } => write!(f, "tls://{name}@{addr}"),
            DnsUpstream::Https {
                name,
                addr: Some(addr),
                path,
                ..
            } => write!(f, "https://{name}@{addr}{path}"),
            DnsUpstream::Https {
                name,
                addr: None,
                port,
                path,
            } => write!(f, "https://{name}:{port}{path}"),
        }
    }
}

/// `ADDR`, `ADDR:PORT`, `[V6]:PORT` or a bare IPv6 address.
fn addr_with_port(text: &str, default_port: u16) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, default_port))
    })
}

/// A DNS name (letters, digits, '-', '.') or an IP address, as a certificate can name.
fn check_name(name: &str) -> Option<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && (name.parse::<IpAddr>().is_ok()
            || name.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }));
    ok.then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DnsUpstream, ParseError> {
        text.parse()
    }

    #[test]
    fn parses_plain_addresses() {
        let a: SocketAddr = "192.0.2.1:53".parse().unwrap();
        assert_eq!(parse("192.0.2.1"), Ok(DnsUpstream::Plain(a)));
        assert_eq!(parse("192.0.2.1:53"), Ok(DnsUpstream::Plain(a)));
        assert_eq!(parse("udp://192.0.2.1"), Ok(DnsUpstream::Plain(a)));
        assert_eq!(
            parse("2001:db8::1"),
            Ok(DnsUpstream::Plain("[2001:db8::1]:53".parse().unwrap()))
        );
        assert_eq!(
            parse("[2001:db8::1]:5353"),
            Ok(DnsUpstream::Plain("[2001:db8::1]:5353".parse().unwrap()))
        );
    }

    #[test]
    fn parses_tls_with_name_and_address() {
        assert_eq!(
            parse("tls://dns.example@192.0.2.1"),
            Ok(DnsUpstream::Tls {
                name: "dns.example".into(),
                addr: "192.0.2.1:853".parse().unwrap()
            })
        );
        assert_eq!(
            parse("tls://Dns.Example@[2001:db8::1]:8853"),
            Ok(DnsUpstream::Tls {
                name: "dns.example".into(),
                addr: "[2001:db8::1]:8853".parse().unwrap()
            })
        );
        assert_eq!(
            parse("tls://192.0.2.1"),
            Ok(DnsUpstream::Tls {
                name: "192.0.2.1".into(),
                addr: "192.0.2.1:853".parse().unwrap()
            })
        );
    }

    #[test]
    fn parses_https_with_and_without_address() {
        assert_eq!(
            parse("https://dns.example/dns-query"),
            Ok(DnsUpstream::Https {
                name: "dns.example".into(),
                addr: None,
                port: 443,
                path: "/dns-query".into()
            })
        );
        assert_eq!(
            parse("https://dns.example:8443/q"),
            Ok(DnsUpstream::Https {
                name: "dns.example".into(),
                addr: None,
                port: 8443,
                path: "/q".into()
            })
        );
        assert_eq!(
            parse("https://dns.example@192.0.2.1:8443/dns-query"),
            Ok(DnsUpstream::Https {
                name: "dns.example".into(),
                addr: Some("192.0.2.1:8443".parse().unwrap()),
                port: 8443,
                path: "/dns-query".into()
            })
        );
    }

    #[test]
    fn a_lone_plain_resolver_stays_with_the_engine() {
        assert_eq!(route(Vec::new()), None);
        let plain = parse("192.0.2.1").unwrap();
        let addr: SocketAddr = "192.0.2.1:53".parse().unwrap();
        assert_eq!(route(vec![plain.clone()]), Some((addr, Vec::new())));
        let tls = parse("tls://dns.example@192.0.2.2").unwrap();
        assert_eq!(
            route(vec![tls.clone(), plain.clone()]),
            Some(("192.0.2.2:853".parse().unwrap(), vec![tls, plain.clone()]))
        );
        let two = vec![plain.clone(), parse("192.0.2.3").unwrap()];
        assert_eq!(route(two.clone()), Some((addr, two)));
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "udp://192.0.2.1:53",
            "tls://dns.example@192.0.2.1:853",
            "https://dns.example@192.0.2.1:443/dns-query",
            "https://dns.example:443/dns-query",
        ] {
            assert_eq!(parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn refuses_bad_text_naming_the_problem() {
        for (text, reason) in [
            ("", "bad address"),
            ("dns.example", "bad address"),
            ("quic://192.0.2.1", "unknown scheme"),
            (
                "tls://dns.example",
                "needs NAME@ADDR (the address to connect to)",
            ),
            ("tls://dns.example@nowhere", "bad address after '@'"),
            ("tls://bad name@192.0.2.1", "bad server name"),
            ("https://dns.example", "needs a path (e.g. /dns-query)"),
            ("https://dns.example:x/q", "bad port"),
            ("https://dns.example@1.2.3/q", "bad address after '@'"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.reason, reason, "{text}");
            assert!(e.to_string().contains(&format!("{text:?}")));
        }
    }
}
