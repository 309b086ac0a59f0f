//! Two processes, one state (iOS: the app changes rules, the extension runs the tunnel): the
//! process that did not make a change reads it again with [`Embargo::reload`].

use crate::embargo::Embargo;
#[cfg(doc)]
use crate::embargo::ProcessRole;
use crate::error::{guard, lock};
use crate::EmbargoConfig;
use crate::EmbargoError;

#[uniffi::export]
impl Embargo {
    /// Reads the rules (lists, their settings, app rules, the embargo level in the storage
    /// directory's settings) again, as another process left them, and decides with them from
    /// the next decision on, without restarting the tunnel. A [`ProcessRole::Tunnel`] object
    /// maps the rules the app compiled ([`Embargo::compile_rules`]). The [`EmbargoConfig`]
    /// the app keeps (iOS: its settings file) is taken with [`Embargo::apply_settings`].
    pub fn reload(&self) -> Result<(), EmbargoError> {
        self.with_rules(|r| r.reload())
    }

    /// Takes new settings without a restart where the running tunnel can (iOS: the app saved
    /// them; the extension applies them on the reload message, then calls
    /// [`Embargo::reload`] for the rules). Applied at once: `nxdomain_for_blocked`,
    /// `block_encrypted_dns`, `app_wait_ms` (from the next decision) and `record_allowed`
    /// (from the next event). Kept for the next start: `mtu` (and the tunnel's addresses,
    /// which the platform sets), `dns_upstream`, `dns_upstream_v6`, `dns_upstreams`,
    /// `network_resolvers`, `dns_roots_file`, the history's retention and size cap,
    /// `event_queue_capacity` and `use_builtin_rules`. Returns the names of the changed
    /// fields that wait for the next start (empty when everything applied).
    pub fn apply_settings(&self, config: EmbargoConfig) -> Result<Vec<String>, EmbargoError> {
        guard(|| {
            config.validate()?;
            let (engine, _) = config.engine_and_driver(true)?;
            let mut current = lock(&self.config);
            let waiting = config.restart_fields(&current);
            if let Ok(driver) = self.driver() {
                driver.with_engine(move |e| e.set_live_settings(&engine));
            }
            self.set_record_allowed(config.record_allowed);
            *current = config;
            Ok(waiting.into_iter().map(str::to_owned).collect())
        })
    }

    /// Writes the rules in force (every enabled list and the built-in default at its level,
    /// compiled) to `rules.compiled` in the storage directory, where a
    /// [`ProcessRole::Tunnel`] object maps them instead of parsing lists. Call it after
    /// changing lists or the embargo level and before asking the extension to [`reload`]
    /// (`Embargo::reload`); the file is replaced atomically, so a running extension keeps
    /// its mapping of the old one until it reloads.
    pub fn compile_rules(&self) -> Result<CompiledRules, EmbargoError> {
        self.with_rules(|r| {
            r.changeable()?;
            let (rules, bytes) = r.compile()?;
            Ok(CompiledRules {
                path: r.store().compiled_rules_file().display().to_string(),
                rules,
                bytes,
            })
        })
    }
}

/// What [`Embargo::compile_rules`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CompiledRules {
    /// The file.
    pub path: String,
    /// Rules in it.
    pub rules: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use crate::records::Verdict;
    use crate::rules::ListFormat;
    use crate::{Embargo, EmbargoConfig, EmbargoError, ProcessRole};

    struct Sink(std::sync::Mutex<std::sync::mpsc::Sender<Vec<u8>>>);
    impl crate::PacketSink for Sink {
        fn write_packet(&self, packet: Vec<u8>) -> Result<(), crate::HookError> {
            let _ = self.0.lock().unwrap().send(packet);
            Ok(())
        }
    }

    /// The app reads the history the tunnel's process writes, and writes nothing itself.
    #[test]
    fn the_app_reads_the_history_the_tunnel_writes() {
        use crate::history::{HiddenEntry, HistoryQuery};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display().to_string();
        let open = |role| Embargo::with_role(EmbargoConfig::default(), path.clone(), role);
        let app = open(ProcessRole::App).unwrap();
        app.compile_rules().unwrap();
        let query = || HistoryQuery {
            name_prefix: Some("log-va".into()),
            ..HistoryQuery::default()
        };
        assert!(
            app.history(query()).unwrap().records.is_empty(),
            "no file yet"
        );
        let tunnel = open(ProcessRole::Tunnel).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        tunnel
            .start_with_packets(
                Arc::new(Sink(std::sync::Mutex::new(tx))),
                Arc::new(crate::hooks::NoHooks),
            )
            .unwrap();
        let question = crate::engine_harness::udp(
            "10.111.0.2:40000".parse().unwrap(),
            "10.111.0.1:53".parse().unwrap(),
            &crate::engine_harness::dns_query(0x1234, "log-va.tiktokv.com", 1),
        );
        assert!(tunnel.push_packet(question).unwrap());
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        // The decision (and its history row) follows the answer once the app is named.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !matches!(
            tunnel.try_next_event(),
            Some(crate::LiveEvent::Decision { .. })
        ) {
            assert!(std::time::Instant::now() < deadline, "no decision event");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        tunnel.flush_history().unwrap();
        let page = app.history(query()).unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.records[0].list.as_deref(), Some("builtin"));
        assert_eq!(app.history_stats().unwrap().rows, 1);
        let csv = app
            .export_history_bytes(query(), crate::history::ExportFormat::Csv)
            .unwrap();
        assert!(String::from_utf8(csv)
            .unwrap()
            .contains("log-va.tiktokv.com"));
        let e = app
            .hide(HiddenEntry::Name {
                name: "log-va.tiktokv.com".into(),
            })
            .unwrap_err();
        assert!(
            matches!(&e, EmbargoError::State(m) if m.contains("history.db")),
            "{e}"
        );
        assert!(matches!(
            app.start_with_packets(
                Arc::new(Sink(std::sync::Mutex::new(std::sync::mpsc::channel().0))),
                Arc::new(crate::hooks::NoHooks)
            ),
            Err(EmbargoError::State(_))
        ));
        tunnel.stop().unwrap();
    }

    /// Settings that a running tunnel can take apply at once; the others are named.
    #[test]
    fn settings_apply_without_a_restart_where_they_can() {
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let e = Embargo::new(EmbargoConfig::default(), dir.path().display().to_string()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        e.start_with_packets(
            Arc::new(Sink(std::sync::Mutex::new(tx))),
            Arc::new(crate::hooks::NoHooks),
        )
        .unwrap();
        // The DNS answer's RCODE: 0 with 0.0.0.0, 3 (NXDOMAIN) when so configured.
        let rcode = |id: u16| {
            let question = crate::engine_harness::udp(
                format!("10.111.0.2:{}", 40_000 + id).parse().unwrap(),
                "10.111.0.1:53".parse().unwrap(),
                &crate::engine_harness::dns_query(id, "log-va.tiktokv.com", 1),
            );
            assert!(e.push_packet(question).unwrap());
            let answer = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
            answer[28 + 3] & 0x0f
        };
        assert_eq!(rcode(1), 0);
        let waiting = e
            .apply_settings(EmbargoConfig {
                nxdomain_for_blocked: true,
                mtu: 1400,
                dns_upstream: "192.0.2.53".into(),
                ..EmbargoConfig::default()
            })
            .unwrap();
        assert_eq!(waiting, ["mtu", "dns_upstream"]);
        assert_eq!(rcode(2), 3, "applied without a restart");
        assert!(e
            .apply_settings(EmbargoConfig {
                mtu: 10,
                ..EmbargoConfig::default()
            })
            .is_err());
        e.stop().unwrap();
    }

    /// The app compiles, the extension maps: with every list's text gone the extension still
    /// decides with the lists and the built-in default, and refuses a stale file by name.
    #[test]
    fn the_extension_decides_from_the_rules_the_app_compiled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display().to_string();
        let open = |role| Embargo::with_role(EmbargoConfig::default(), path.clone(), role);
        let app = open(ProcessRole::App).unwrap();
        let e = open(ProcessRole::Tunnel).err().unwrap().to_string();
        assert!(
            e.contains("rules.compiled") && e.contains("no compiled rules"),
            "{e}"
        );
        app.set_list(
            "mine".into(),
            b"tracker.example.org\n".to_vec(),
            Some(ListFormat::Domains),
        )
        .unwrap();
        let compiled = app.compile_rules().unwrap();
        assert!(compiled.path.ends_with("rules.compiled") && compiled.bytes > 0);
        std::fs::remove_dir_all(dir.path().join("lists")).unwrap();
        let extension = open(ProcessRole::Tunnel).unwrap();
        let verdict = |name: &str| extension.check(name.into(), None).unwrap().verdict;
        assert_eq!(verdict("tracker.example.org"), Verdict::Block);
        assert_eq!(verdict("log.tiktokv.com"), Verdict::Block);
        assert_eq!(verdict("example.com"), Verdict::Allow);
        // The IP databases: the ASN subset the app parsed, mapped; the country table read in
        // place from the binary.
        let tencent = extension.check("1.12.0.1".into(), None).unwrap();
        let owner = tencent.owner.expect("an owner from the mapped ASN table");
        assert_eq!(owner.asn, Some(45090));
        assert_eq!(owner.source, "ip-location-db/asn-ipv4 (subset)");
        assert_eq!(tencent.country.expect("a country").value, "CN");
        assert!(matches!(
            extension.set_list_enabled("mine".into(), false),
            Err(EmbargoError::State(_))
        ));
        assert!(matches!(
            extension.compile_rules(),
            Err(EmbargoError::State(_))
        ));
        app.set_list_enabled("mine".into(), false).unwrap();
        let e = extension.reload().unwrap_err().to_string();
        assert!(e.contains("rules.compiled") && e.contains("stale"), "{e}");
        assert_eq!(
            verdict("tracker.example.org"),
            Verdict::Block,
            "the old rules stay"
        );
        app.compile_rules().unwrap();
        extension.reload().unwrap();
        assert_eq!(verdict("tracker.example.org"), Verdict::Allow);
    }

    #[test]
    fn a_change_made_by_another_process_applies_after_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display().to_string();
        let extension = Embargo::new(EmbargoConfig::default(), path.clone()).unwrap();
        let app = Embargo::new(EmbargoConfig::default(), path).unwrap();
        app.set_list(
            "mine".into(),
            b"tracker.example.org\n".to_vec(),
            Some(ListFormat::Domains),
        )
        .unwrap();
        assert_eq!(
            app.check("tracker.example.org".into(), None)
                .unwrap()
                .verdict,
            Verdict::Block
        );
        assert_eq!(
            extension
                .check("tracker.example.org".into(), None)
                .unwrap()
                .verdict,
            Verdict::Allow,
            "not before the reload"
        );
        extension.reload().unwrap();
        assert_eq!(
            extension
                .check("tracker.example.org".into(), None)
                .unwrap()
                .verdict,
            Verdict::Block
        );
        app.set_list_enabled("mine".into(), false).unwrap();
        extension.reload().unwrap();
        assert_eq!(
            extension
                .check("tracker.example.org".into(), None)
                .unwrap()
                .verdict,
            Verdict::Allow
        );
    }
}
