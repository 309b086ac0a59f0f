//! The built-in default: Embargo's own rule list and the IP databases it may ship, compiled into
//! the binary so that blocking works with no file and no download.
//!
//! - `data/builtin.rules`: written by the Embargo authors (MIT OR Apache-2.0), one source note
//!   per entry.
//! - `data/asn-ipv{4,6}.chinese-cloud-subset.csv`: ip-location-db ASN rows of ByteDance,
//!   Tencent, Alibaba, Baidu and Huawei Cloud (CC BY 4.0: RouteViews, NRO, DB-IP).
//! - `data/geo-whois-asn-country-ipv{4,6}.csv.gz`: ip-location-db geo-whois-asn-country, the
//!   whole address space (CC0), gzip as published: 3.4 MB in the binary.
//!
//! Everything is parsed once per process, on first use, and shared (`Arc`).

use std::sync::{Arc, OnceLock};

use crate::ipdb::{IpDb, IpDbFormat};
use crate::ruleset::{RuleSet, RuleSetBuilder};

/// The text of the built-in rule list (Embargo native format).
pub const BUILTIN_RULES: &str = include_str!("../data/builtin.rules");

/// The list name decisions show for built-in rules.
pub const BUILTIN_LIST_NAME: &str = "builtin";

const ASN_V4: &[u8] = include_bytes!("../data/asn-ipv4.chinese-cloud-subset.csv");
const ASN_V6: &[u8] = include_bytes!("../data/asn-ipv6.chinese-cloud-subset.csv");
const COUNTRY_V4: &[u8] = include_bytes!("../data/geo-whois-asn-country-ipv4.csv.gz");
const COUNTRY_V6: &[u8] = include_bytes!("../data/geo-whois-asn-country-ipv6.csv.gz");

/// Database names shown in attributions (the upstream file names).
pub(crate) const ASN_V4_NAME: &str = "ip-location-db/asn-ipv4 (subset)";
pub(crate) const ASN_V6_NAME: &str = "ip-location-db/asn-ipv6 (subset)";
pub(crate) const COUNTRY_V4_NAME: &str = "ip-location-db/geo-whois-asn-country-ipv4";
pub(crate) const COUNTRY_V6_NAME: &str = "ip-location-db/geo-whois-asn-country-ipv6";

/// The built-in rule set and IP database, built once.
pub(crate) fn shared() -> (Arc<RuleSet>, Arc<IpDb>) {
    static SHARED: OnceLock<(Arc<RuleSet>, Arc<IpDb>)> = OnceLock::new();
    SHARED
        .get_or_init(|| (Arc::new(rules()), Arc::new(ipdb())))
        .clone()
}

/// Compiles the built-in list.
pub fn rules() -> RuleSet {
    let mut builder = RuleSetBuilder::new();
    let report = crate::parse::parse_bytes(
        crate::parse::Format::Embargo,
        BUILTIN_LIST_NAME,
        BUILTIN_RULES.as_bytes(),
        &mut |rule| builder.add(rule),
    );
    // The built-in list is tested to load with zero errors (`builtin_list_loads_cleanly`).
    if report.error_count > 0 {
        log::error!(
            "built-in list: {} errors: {:?}",
            report.error_count,
            report.errors
        );
    }
    builder.build()
}

/// The bundled IP databases: ASN subset of the companies the built-in list names, and the
/// whole-space country database.
pub fn ipdb() -> IpDb {
    let mut db = IpDb::new();
    for (name, format, bytes) in [
        (ASN_V4_NAME, IpDbFormat::AsnCsv, ASN_V4),
        (ASN_V6_NAME, IpDbFormat::AsnCsv, ASN_V6),
        (COUNTRY_V4_NAME, IpDbFormat::CountryCsv, COUNTRY_V4),
        (COUNTRY_V6_NAME, IpDbFormat::CountryCsv, COUNTRY_V6),
    ] {
        let report = db.load_bytes(name, Some(format), bytes);
        if report.error_count > 0 {
            log::error!("built-in IP database {name}: {:?}", report.errors);
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
        let mut rules = Vec::new();
        let report = crate::parse::parse_bytes(
            crate::parse::Format::Embargo,
            BUILTIN_LIST_NAME,
            BUILTIN_RULES.as_bytes(),
            &mut |r| rules.push(r),
        );
        assert_eq!(report.error_count, 0, "{:?}", report.errors);
        assert!(report.accepted > 300, "{report:?}");
    }

    #[test]
    fn builtin_ipdb_loads_cleanly() {
        let db = ipdb();
        let (asn, country) = db.range_counts();
        assert_eq!(asn, 916 + 178);
        assert!(country > 500_000, "{country}");
    }

    #[test]
    fn builtin_blocks_tiktok_telemetry_and_tencent_network() {
        let policy = Policy::builtin();
        let d = policy.decide(&Query::name("log16-normal-c-useast1a.tiktokv.com"));
        assert_eq!(d.verdict, Verdict::Block, "{d:?}");
        assert_eq!(d.owner.as_ref().unwrap().value, "ByteDance");
        let d = policy.decide(&Query::name("mon.tiktokv.com"));
        assert_eq!(d.verdict, Verdict::Block);
        match &d.reason {
            Reason::NameRule { rule, exception } => {
                assert!(!exception);
                assert_eq!(rule.list, BUILTIN_LIST_NAME);
                assert!(rule.line > 0);
            }
            other => panic!("{other:?}"),
        }
        // 1.12.0.0-1.12.33.255 is AS45090 in the bundled subset.
        let d = policy.decide(&Query::addr("1.12.0.1".parse().unwrap()));
        assert_eq!(d.verdict, Verdict::Block, "{d:?}");
        let owner = d.owner.unwrap();
        assert_eq!(owner.asn, Some(45090));
        assert!(owner.value.contains("Tencent"));
        assert_eq!(d.country.unwrap().value, "CN");
        let d = policy.decide(&Query::name("example.org"));
        assert_eq!(d.verdict, Verdict::Allow);
        assert_eq!(d.reason, Reason::NoMatch);
    }
}
