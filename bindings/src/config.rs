//! The configuration an app gives [`crate::Embargo::new`].

use std::net::SocketAddr;
use std::time::Duration;

use embargo_driver::dns_upstream::{route, ParseError};
use embargo_driver::{DnsUpstream, DnsUpstreams, DriverConfig};

use crate::EmbargoError;

/// How Embargo runs. Every field has a default, so Kotlin and Swift can write
/// `EmbargoConfig()` and change only what they need.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct EmbargoConfig {
    /// The resolver allowed DNS questions go to: `"ip:port"` or `"ip"` (port 53).
    /// Default Quad9 (`9.9.9.9:53`): no logging, and it does not itself block, so what
    /// Embargo blocks is what the user chose.
    #[uniffi(default = "9.9.9.9:53")]
    pub dns_upstream: String,
    /// An IPv6 resolver for questions that arrive over IPv6; `None` sends them to
    /// `dns_upstream`.
    #[uniffi(default = None)]
    pub dns_upstream_v6: Option<String>,
    /// Where allowed DNS questions go instead, in order, a failing one skipped for 30 s:
    /// `tls://NAME@ADDR[:PORT]` (DNS-over-TLS), `https://NAME[@ADDR][:PORT]/PATH`
    /// (DNS-over-HTTPS over HTTP/2), `ADDR[:PORT]` (plain), or `network` (the
    /// `network_resolvers`, plain). NAME is checked against the server's certificate. Empty
    /// (the default): `dns_upstream` and `dns_upstream_v6` over plain UDP.
    #[uniffi(default = [])]
    pub dns_upstreams: Vec<String>,
    /// The network's own resolvers (`"ip"` or `"ip:port"`), handed over by the shell (Android:
    /// `LinkProperties.getDnsServers()`), for the `network` choice of `dns_upstreams`.
    #[uniffi(default = [])]
    pub network_resolvers: Vec<String>,
    /// A PEM file of certificate authorities trusted for encrypted upstreams besides the
    /// Mozilla roots (a private resolver's CA). `None`: the Mozilla roots only.
    #[uniffi(default = None)]
    pub dns_roots_file: Option<String>,
    /// MTU of the tunnel, which the shell gives the system too (Android `Builder.setMtu`,
    /// iOS `NEPacketTunnelNetworkSettings.mtu`). 16 KiB: with the default 64 KiB rings a
    /// larger MTU measured no faster and costs memory (docs/decisions.md, 2026-12-08).
    #[uniffi(default = 16384)]
    pub mtu: u32,
    /// Answer blocked names with NXDOMAIN instead of the unspecified address (0.0.0.0 / ::),
    /// which apps retry less eagerly.
    #[uniffi(default = false)]
    pub nxdomain_for_blocked: bool,
    /// Include Embargo's built-in list (ByteDance, Tencent, Alibaba data endpoints and
    /// networks) before the lists the app adds.
    #[uniffi(default = true)]
    pub use_builtin_rules: bool,
    /// Record allowed connections in the history, not only blocked ones.
    #[uniffi(default = true)]
    pub record_allowed: bool,
    /// Days of history kept.
    #[uniffi(default = 30)]
    pub history_retention_days: u32,
    /// Cap on the history's size in bytes; `None` = no cap beyond retention.
    #[uniffi(default = None)]
    pub history_max_bytes: Option<u64>,
    /// Live events kept for the app when it does not read them; the oldest go first.
    #[uniffi(default = 1024)]
    pub event_queue_capacity: u32,
    /// Refuse encrypted DNS Embargo cannot read, so apps and the OS fall back to the plain DNS
    /// it answers: DNS over TLS/QUIC (port 853) and the known DNS-over-HTTPS providers (their
    /// names with subdomains, and their addresses on 443/853). One setting, on by default.
    #[uniffi(default = true)]
    pub block_encrypted_dns: bool,
    /// How long a new flow may wait for [`crate::PlatformHooks::app_of_flow`] (`appOwner` in the apps) before it is
    /// decided with the app unknown (ms). 20 ms covers Android's `getConnectionOwnerUid`
    /// binder call with room to spare while adding no delay a person notices; raise it when
    /// the platform's lookup is slower.
    #[uniffi(default = 20)]
    pub app_wait_ms: u32,
}

/// Events per history transaction on a phone (the store's default 16,384 holds ~5 MB).
const PHONE_HISTORY_BATCH: usize = 2_048;
/// The history writer's SQLite page cache on a phone (the store's default is 16 MB).
const PHONE_HISTORY_CACHE_BYTES: usize = 2 << 20;

impl Default for EmbargoConfig {
    fn default() -> Self {
        EmbargoConfig {
            dns_upstream: "9.9.9.9:53".into(),
            dns_upstream_v6: None,
            dns_upstreams: Vec::new(),
            network_resolvers: Vec::new(),
            dns_roots_file: None,
            mtu: 16384,
            nxdomain_for_blocked: false,
            use_builtin_rules: true,
            record_allowed: true,
            history_retention_days: 30,
            history_max_bytes: None,
            event_queue_capacity: 1024,
            block_encrypted_dns: true,
            app_wait_ms: 20,
        }
    }
}

/// Checks `config` as [`crate::Embargo::new`] does, without opening anything: a settings
/// screen calls it before saving (an encrypted DNS server's text, a resolver address), and
/// the error names the value at fault.
#[uniffi::export]
pub fn check_config(config: EmbargoConfig) -> Result<(), EmbargoError> {
    crate::error::guard(|| config.validate())
}

/// `"ip:port"`, `"[v6]:port"` or a bare address (port 53).
fn parse_resolver(text: &str) -> Result<SocketAddr, EmbargoError> {
    let t = text.trim();
    if let Ok(sa) = t.parse::<SocketAddr>() {
        return Ok(sa);
    }
    t.trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| EmbargoError::InvalidInput(format!("not a resolver address: {text:?}")))
}

impl EmbargoConfig {
    /// Checks the values before anything is created.
    pub(crate) fn validate(&self) -> Result<(), EmbargoError> {
        parse_resolver(&self.dns_upstream)?;
        if let Some(v6) = &self.dns_upstream_v6 {
            parse_resolver(v6)?;
        }
        self.dns_upstreams()?;
        if !(576..=65535).contains(&self.mtu) {
            return Err(EmbargoError::InvalidInput(format!(
                "MTU {} is not between 576 and 65535",
                self.mtu
            )));
        }
        if self.app_wait_ms > 10_000 {
            return Err(EmbargoError::InvalidInput(format!(
                "app wait {} ms is over the 10 s limit (connections would stall)",
                self.app_wait_ms
            )));
        }
        if self.history_retention_days == 0 {
            return Err(EmbargoError::InvalidInput(
                "history retention must be at least one day".into(),
            ));
        }
        Ok(())
    }

    /// The engine's configuration.
    pub(crate) fn engine(
        &self,
        resolve_apps: bool,
    ) -> Result<embargo_engine::EngineConfig, EmbargoError> {
        use std::hash::{BuildHasher, Hasher};
        let mut c = embargo_engine::EngineConfig {
            mtu: self.mtu as usize,
            dns_upstream_v4: parse_resolver(&self.dns_upstream)?,
            dns_upstream_v6: match &self.dns_upstream_v6 {
                Some(v6) => Some(parse_resolver(v6)?),
                None => None,
            },
            resolve_apps,
            block_encrypted_dns: self.block_encrypted_dns,
            app_wait: Duration::from_millis(u64::from(self.app_wait_ms)),
            ..Default::default()
        };
        if self.nxdomain_for_blocked {
            c.dns_block_answer = embargo_engine::DnsBlockAnswer::NxDomain;
        }
        // Initial sequence numbers and DNS ids must not be guessable: std's RandomState is
        // seeded from the OS's randomness.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(embargo_history::now_ms() as u64);
        c.random_seed = h.finish();
        Ok(c)
    }

    /// `dns_upstreams` parsed, `network` expanded to `network_resolvers`.
    fn dns_upstreams(&self) -> Result<Vec<DnsUpstream>, EmbargoError> {
        let mut out = Vec::new();
        for text in &self.dns_upstreams {
            if text.trim() == "network" {
                for r in &self.network_resolvers {
                    out.push(DnsUpstream::Plain(parse_resolver(r)?));
                }
                continue;
            }
            out.push(
                text.parse()
                    .map_err(|e: ParseError| EmbargoError::InvalidInput(e.to_string()))?,
            );
        }
        if !self.dns_upstreams.is_empty() && out.is_empty() {
            return Err(EmbargoError::InvalidInput(
                "dns_upstreams names only `network` and network_resolvers is empty".into(),
            ));
        }
        Ok(out)
    }

    /// The engine's and the driver's configuration: with `dns_upstreams` set, the driver
    /// carries the questions and the engine's resolver is the one
    /// [`embargo_driver::dns_upstream::route`] gives.
    pub(crate) fn engine_and_driver(
        &self,
        resolve_apps: bool,
    ) -> Result<(embargo_engine::EngineConfig, DriverConfig), EmbargoError> {
        let mut engine = self.engine(resolve_apps)?;
        let mut driver = DriverConfig::default();
        if let Some((resolver, upstreams)) = route(self.dns_upstreams()?) {
            engine.dns_upstream_v4 = resolver;
            engine.dns_upstream_v6 = Some(resolver);
            driver.dns = DnsUpstreams {
                upstreams,
                extra_roots: self.dns_roots_file.as_ref().map(Into::into),
            };
        }
        Ok((engine, driver))
    }

    /// The fields that differ from `before` and apply only at the next start (see
    /// `Embargo::apply_settings`).
    pub(crate) fn restart_fields(&self, before: &EmbargoConfig) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut differs = |name, changed: bool| {
            if changed {
                out.push(name);
            }
        };
        differs("mtu", self.mtu != before.mtu);
        differs("dns_upstream", self.dns_upstream != before.dns_upstream);
        differs(
            "dns_upstream_v6",
            self.dns_upstream_v6 != before.dns_upstream_v6,
        );
        differs("dns_upstreams", self.dns_upstreams != before.dns_upstreams);
        differs(
            "network_resolvers",
            self.network_resolvers != before.network_resolvers,
        );
        differs(
            "dns_roots_file",
            self.dns_roots_file != before.dns_roots_file,
        );
        differs(
            "history_retention_days",
            self.history_retention_days != before.history_retention_days,
        );
        differs(
            "history_max_bytes",
            self.history_max_bytes != before.history_max_bytes,
        );
        differs(
            "event_queue_capacity",
            self.event_queue_capacity != before.event_queue_capacity,
        );
        differs(
            "use_builtin_rules",
            self.use_builtin_rules != before.use_builtin_rules,
        );
        out
    }

    /// The history store's configuration for the database at `path`.
    pub(crate) fn history(&self, path: std::path::PathBuf) -> embargo_history::Config {
        let mut c = embargo_history::Config::new(path);
        c.retention = Duration::from_secs(u64::from(self.history_retention_days) * 24 * 3600);
        c.max_bytes = self.history_max_bytes;
        c.record_allowed = self.record_allowed;
        // The tunnel process of a phone lives under a memory cap (iOS: 50 MB for everything):
        // smaller batches and page cache cost more writes per event, not memory.
        c.batch_max = PHONE_HISTORY_BATCH;
        c.cache_bytes = PHONE_HISTORY_CACHE_BYTES;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolvers_parse_with_and_without_port() {
        assert_eq!(parse_resolver("1.1.1.1").unwrap().port(), 53);
        assert_eq!(parse_resolver("1.1.1.1:5353").unwrap().port(), 5353);
        assert_eq!(parse_resolver("[2620:fe::9]:53").unwrap().port(), 53);
        assert!(parse_resolver("dns.example").is_err());
        assert!(EmbargoConfig::default().validate().is_ok());
    }

    #[test]
    fn encrypted_upstreams_go_to_the_driver_and_network_expands() {
        let config = EmbargoConfig {
            dns_upstreams: vec![
                "tls://dns.example@192.0.2.1".into(),
                "network".into(),
                "https://dns.example@192.0.2.2/dns-query".into(),
            ],
            network_resolvers: vec!["10.0.0.1".into()],
            dns_roots_file: Some("/etc/ca.pem".into()),
            ..EmbargoConfig::default()
        };
        config.validate().unwrap();
        let (engine, driver) = config.engine_and_driver(false).unwrap();
        assert_eq!(engine.dns_upstream_v4, "192.0.2.1:853".parse().unwrap());
        assert_eq!(driver.dns.upstreams.len(), 3);
        assert_eq!(
            driver.dns.upstreams[1],
            DnsUpstream::Plain("10.0.0.1:53".parse().unwrap())
        );
        assert_eq!(driver.dns.extra_roots, Some("/etc/ca.pem".into()));
        // The default keeps the old behaviour: the engine's plain resolver, no driver client.
        let (engine, driver) = EmbargoConfig::default().engine_and_driver(false).unwrap();
        assert_eq!(engine.dns_upstream_v4, "9.9.9.9:53".parse().unwrap());
        assert!(!driver.dns.active());
    }

    #[test]
    fn bad_upstreams_are_refused_naming_the_text() {
        let bad = EmbargoConfig {
            dns_upstreams: vec!["tls://dns.example".into()],
            ..EmbargoConfig::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("tls://dns.example"), "{e}");
        let lonely = EmbargoConfig {
            dns_upstreams: vec!["network".into()],
            ..EmbargoConfig::default()
        };
        assert!(lonely.validate().is_err());
    }
}
