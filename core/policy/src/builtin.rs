//! The built-in default: Embargo's own rule list and the IP databases it may ship, compiled into
//! the binary so that blocking works with no file and no download.
//!
//! - `data/builtin.rules`: written by the Embargo authors (MIT OR Apache-2.0), one source note
//!   per entry.
//! - `data/asn-ipv{4,6}.chinese-cloud-subset.csv`: ip-location-db ASN rows of ByteDance,
//!   Tencent, Alibaba, Baidu and Huawei Cloud (CC BY 4.0: RouteViews, NRO, DB-IP).
//! - `data/geo-whois-asn-country-ipv{4,6}.csv.gz`: ip-location-db geo-whois-asn-country, the
//!   whole address space (CC0). `build.rs` encodes them into the compact form of
//!   `ipdb::compact` (550k ranges: 2.3 MB v4 + 5.2 MB v6 in the binary), read in place: no
//!   parse at start and no heap; only the pages lookups touch become resident.
//!
//! The rules and the small ASN subset are parsed once per process, on first use, and shared
//! (`Arc`).

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::ipdb::{IpDb, IpDbFormat};
use crate::rules::Intent;
use crate::ruleset::{RuleSet, RuleSetBuilder};

/// The text of the built-in rule list (Embargo native format).
pub const BUILTIN_RULES: &str = include_str!("../data/builtin.rules");

/// The list name decisions show for built-in rules.
pub const BUILTIN_LIST_NAME: &str = "builtin";

/// The text of the built-in rules added at level [`EmbargoLevel::Full`].
pub const BUILTIN_FULL_RULES: &str = include_str!("../data/builtin-full.rules");

/// The list name decisions show for the rules of level full.
pub const BUILTIN_FULL_LIST_NAME: &str = "builtin-full";

/// How much of the embargoed companies the built-in default blocks, for every app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbargoLevel {
    /// Their telemetry, analytics, crash, push-tracking, ad-measurement and fingerprinting
    /// endpoints (`builtin.rules`); the apps' content, API and login keep working.
    #[default]
    Telemetry,
    /// Also every endpoint they own (owner and ASN rules, whole clouds included) and every
    /// endpoint located in the embargoed countries (`builtin-full.rules`): their apps stop
    /// working, and so do other apps' servers rented in those clouds.
    Full,
}

impl EmbargoLevel {
    /// `telemetry` or `full`.
    pub fn name(self) -> &'static str {
        match self {
            EmbargoLevel::Telemetry => "telemetry",
            EmbargoLevel::Full => "full",
        }
    }

    /// The level for a `--embargo` value.
    pub fn from_name(s: &str) -> Option<EmbargoLevel> {
        match s {
            "telemetry" => Some(EmbargoLevel::Telemetry),
            "full" => Some(EmbargoLevel::Full),
            _ => None,
        }
    }
}

/// Networks whose servers anyone can rent, and how to name the owner of an address in them:
/// a server there is the cloud's tenant's, not (necessarily) the cloud company's own endpoint.
/// Sources: the registry organisation names in the bundled ASN subset and the providers' own
/// cloud product pages (Alibaba Cloud, Tencent Cloud, Huawei Cloud, Volcano Engine/BytePlus).
/// Networks that carry both the company's own services and its cloud say so.
const HOSTING_ASNS: &[(u32, &str)] = &[
    (37963, "Alibaba (or an Alibaba Cloud tenant)"),
    (45102, "Alibaba Cloud (hosting)"),
    (134963, "Alibaba Cloud (hosting)"),
    (45090, "Tencent (or a Tencent Cloud tenant)"),
    (132203, "Tencent Cloud (hosting)"),
    (133478, "Tencent Cloud (hosting)"),
    (137718, "Volcano Engine, ByteDance's cloud (hosting)"),
    (150436, "BytePlus, ByteDance's cloud (hosting)"),
    (55990, "Huawei Cloud (hosting)"),
    (136907, "Huawei Cloud (hosting)"),
    (131444, "Huawei Cloud (hosting)"),
    (141180, "Huawei Cloud (hosting)"),
    (149167, "Huawei Cloud (hosting)"),
    (151610, "Huawei Cloud (hosting)"),
];

/// How to name the owner of an address in a rented-cloud network, if `asn` is one.
pub(crate) fn hosting_owner(asn: u32) -> Option<&'static str> {
    HOSTING_ASNS
        .iter()
        .find(|(a, _)| *a == asn)
        .map(|(_, name)| *name)
}

/// The built-in rule sets of a level, in the order they are asked (each an embargo set).
pub fn rule_sets(level: EmbargoLevel) -> Vec<Arc<RuleSet>> {
    let shared = shared_sets();
    match level {
        EmbargoLevel::Telemetry => vec![shared.0.clone()],
        EmbargoLevel::Full => vec![shared.0.clone(), shared.1.clone()],
    }
}

const ASN_V4: &[u8] = include_bytes!("../data/asn-ipv4.chinese-cloud-subset.csv");
const ASN_V6: &[u8] = include_bytes!("../data/asn-ipv6.chinese-cloud-subset.csv");
/// The country database in compact form, made by `build.rs` from the `.csv.gz` of the same name.
const COUNTRY_V4: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/geo-whois-asn-country-ipv4.eipd"));
const COUNTRY_V6: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/geo-whois-asn-country-ipv6.eipd"));

/// Database names shown in attributions (the upstream file names).
pub(crate) const ASN_V4_NAME: &str = "ip-location-db/asn-ipv4 (subset)";
pub(crate) const ASN_V6_NAME: &str = "ip-location-db/asn-ipv6 (subset)";
pub(crate) const COUNTRY_V4_NAME: &str = "ip-location-db/geo-whois-asn-country-ipv4";
pub(crate) const COUNTRY_V6_NAME: &str = "ip-location-db/geo-whois-asn-country-ipv6";

/// The built-in rule sets (telemetry, full additions), built once.
fn shared_sets() -> &'static (Arc<RuleSet>, Arc<RuleSet>) {
    static SETS: OnceLock<(Arc<RuleSet>, Arc<RuleSet>)> = OnceLock::new();
    SETS.get_or_init(|| (Arc::new(rules()), Arc::new(full_rules())))
}

/// The bundled IP databases, built once (without compiling the built-in lists).
pub fn shared_ipdb() -> Arc<IpDb> {
    static IPDB: OnceLock<Arc<IpDb>> = OnceLock::new();
    IPDB.get_or_init(|| Arc::new(ipdb())).clone()
}

/// Compiles the built-in list of level telemetry.
pub fn rules() -> RuleSet {
    compile(BUILTIN_LIST_NAME, BUILTIN_RULES)
}

/// Compiles the built-in rules that level full adds.
pub fn full_rules() -> RuleSet {
    compile(BUILTIN_FULL_LIST_NAME, BUILTIN_FULL_RULES)
}

fn compile(name: &str, text: &str) -> RuleSet {
    let mut builder = RuleSetBuilder::new().with_intent(Intent::Embargo);
    let report = crate::parse::parse_bytes(
        crate::parse::Format::Embargo,
        name,
        text.as_bytes(),
        &mut |rule| builder.add(rule),
    );
    // The built-in lists are tested to load with zero errors (`builtin_list_loads_cleanly`).
    if report.error_count > 0 {
        log::error!(
            "built-in list {name}: {} errors: {:?}",
            report.error_count,
            report.errors
        );
    }
    builder.build()
}

/// The bundled IP databases: ASN subset of the companies the built-in list names (parsed:
/// 1,094 rows, ~40 KB of heap), and the whole-space country database (read in place).
pub fn ipdb() -> IpDb {
    let mut db = IpDb::new();
    let reports = [
        db.load_bytes(ASN_V4_NAME, Some(IpDbFormat::AsnCsv), ASN_V4),
        db.load_bytes(ASN_V6_NAME, Some(IpDbFormat::AsnCsv), ASN_V6),
    ];
    db.extend_from(&static_ipdb());
    // Each is tested to load with zero errors (`builtin_ipdb_loads_cleanly`).
    for report in reports.iter().filter(|r| r.error_count > 0) {
        log::error!("built-in IP database {}: {:?}", report.list, report.errors);
    }
    db
}

/// The bundled IP databases already in compact form in the binary (the country tables),
/// read in place: what a process that maps the rest (`IpDb::runtime_tables`, written by
/// another) needs, without parsing the ASN subset's text.
pub fn static_ipdb() -> IpDb {
    let mut db = IpDb::new();
    for report in [
        db.load_compact(COUNTRY_V4_NAME, COUNTRY_V4),
        db.load_compact(COUNTRY_V6_NAME, COUNTRY_V6),
    ] {
        if report.error_count > 0 {
            log::error!("built-in IP database {}: {:?}", report.list, report.errors);
        }
    }
    db
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Policy, Query, Reason, Verdict};

    #[test]
    fn builtin_list_loads_cleanly() {
        for (name, text) in [
            (BUILTIN_LIST_NAME, BUILTIN_RULES),
            (BUILTIN_FULL_LIST_NAME, BUILTIN_FULL_RULES),
        ] {
            let mut rules = Vec::new();
            let report = crate::parse::parse_bytes(
                crate::parse::Format::Embargo,
                name,
                text.as_bytes(),
                &mut |r| rules.push(r),
            );
            assert_eq!(report.error_count, 0, "{name}: {:?}", report.errors);
            assert!(report.accepted > 25, "{name}: {report:?}");
        }
    }

    #[test]
    fn builtin_ipdb_loads_cleanly() {
        let db = ipdb();
        let (asn, country) = db.range_counts();
        assert_eq!(asn, 916 + 178);
        assert_eq!(country, 334_373 + 216_295);
        // The country tables are read in place: only the ASN subset is on the heap.
        assert!(db.heap_bytes() < 100_000, "{}", db.heap_bytes());
        for (name, bytes) in [(COUNTRY_V4_NAME, COUNTRY_V4), (COUNTRY_V6_NAME, COUNTRY_V6)] {
            let layout = crate::ipdb::compact::parse(bytes).unwrap();
            crate::ipdb::compact::verify(bytes, &layout).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    /// The build-time compact tables answer exactly what the runtime parse of the same
    /// `.csv.gz` answers: at every range start and end, one past each end, and pseudo-random
    /// addresses.
    #[test]
    fn compact_country_matches_the_csv_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
        for (file, compact) in [
            ("geo-whois-asn-country-ipv4.csv.gz", COUNTRY_V4),
            ("geo-whois-asn-country-ipv6.csv.gz", COUNTRY_V6),
        ] {
            let gz = std::fs::read(dir.join(file)).unwrap();
            let mut parsed = IpDb::new();
            let report = parsed.load_bytes(file, Some(IpDbFormat::CountryCsv), &gz);
            assert_eq!(report.error_count, 0, "{:?}", report.errors);
            let mut built = IpDb::new();
            assert_eq!(built.load_compact(file, compact).error_count, 0);
            assert_eq!(built.range_counts(), parsed.range_counts());
            let text = {
                use std::io::Read;
                let mut s = String::new();
                flate2::read::GzDecoder::new(&gz[..])
                    .read_to_string(&mut s)
                    .unwrap();
                s
            };
            let mut probes: Vec<std::net::IpAddr> = Vec::new();
            for line in text.lines().step_by(7) {
                let mut f = line.split(',');
                let (s, e): (std::net::IpAddr, std::net::IpAddr) = (
                    f.next().unwrap().parse().unwrap(),
                    f.next().unwrap().parse().unwrap(),
                );
                probes.push(s);
                probes.push(e);
                match e {
                    std::net::IpAddr::V4(a) => {
                        probes.push(std::net::Ipv4Addr::from(u32::from(a).wrapping_add(1)).into())
                    }
                    std::net::IpAddr::V6(a) => {
                        probes.push(std::net::Ipv6Addr::from(u128::from(a).wrapping_add(1)).into())
                    }
                }
            }
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            for _ in 0..100_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                probes.push(std::net::Ipv4Addr::from(x as u32).into());
                let hi = 0x2000_0000_0000_0000u64 | (x >> 4);
                probes
                    .push(std::net::Ipv6Addr::from((u128::from(hi) << 64) | u128::from(x)).into());
            }
            for a in probes {
                let want = parsed.lookup_country(a).map(|c| c.code);
                let got = built.lookup_country(a).map(|c| c.code);
                assert_eq!(got, want, "{file}: {a}");
            }
        }
    }

    #[test]
    fn builtin_blocks_tiktok_telemetry_and_tencent_network_at_level_full() {
        let policy = Policy::builtin();
        let d = policy.decide(&Query::name("log16-normal-c-useast1a.tiktokv.com"));
        assert_eq!(d.verdict, Verdict::Block, "{d:?}");
        assert_eq!(d.owner.as_ref().unwrap().value, "ByteDance");
        let d = policy.decide(&Query::name("mon.tiktokv.com"));
        assert_eq!(d.verdict, Verdict::Block);
        match &d.reason {
            Reason::NameRule { rule, exception } => {
                assert!(!exception);
                assert_eq!(&*rule.list, BUILTIN_LIST_NAME);
                assert!(rule.line > 0);
            }
            other => panic!("{other:?}"),
        }
        // 1.12.0.0-1.12.33.255 is AS45090 in the bundled subset: attributed at every level,
        // blocked at level full only (a whole network is more than telemetry).
        let d = policy.decide(&Query::addr("1.12.0.1".parse().unwrap()));
        assert_eq!(d.verdict, Verdict::Allow, "{d:?}");
        assert!(d.owner.unwrap().value.contains("Tencent"));
        let full = Policy::builtin_at(EmbargoLevel::Full);
        let d = full.decide(&Query::addr("1.12.0.1".parse().unwrap()));
        assert_eq!(d.verdict, Verdict::Block, "{d:?}");
        assert_eq!(d.intent, Some(Intent::Embargo));
        let owner = d.owner.unwrap();
        assert_eq!(owner.asn, Some(45090));
        assert!(owner.value.contains("Tencent"));
        assert_eq!(d.country.unwrap().value, "CN");
        let d = policy.decide(&Query::name("example.org"));
        assert_eq!(d.verdict, Verdict::Allow);
        assert_eq!(d.reason, Reason::NoMatch);
    }
}
