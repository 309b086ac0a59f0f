//! The decision engine on the real data in ../shared/data: lists through the real parser and the
//! real compiled (and memory-mapped) matcher, IP databases head and full files.

use std::net::IpAddr;
use std::sync::Arc;

use embargo_policy::parse::{parse_bytes, Format};
use embargo_policy::{
    AppRules, CompiledError, IpDb, IpDbFormat, LoadReport, Policy, Query, Reason, RuleSet,
    RuleSetBuilder, Verdict,
};

use embargo_test_support::shared_data;

/// The bytes of `../shared/data/<rel>`, or `None` (the test is skipped) when it is missing.
fn read(rel: &str) -> Option<Vec<u8>> {
    let path = shared_data(rel)?;
    Some(std::fs::read(path).unwrap_or_else(|e| panic!("{rel}: {e}")))
}

fn compile(rel: &str, format: Format) -> Option<(RuleSet, LoadReport)> {
    let bytes = read(rel)?;
    let mut builder = RuleSetBuilder::new();
    let name = rel.rsplit('/').next().unwrap();
    let report = parse_bytes(format, name, &bytes, &mut |r| builder.add(r));
    Some((builder.build(), report))
}

/// Opens the compiled bytes from a real memory map of a real file.
fn via_mmap(set: &RuleSet) -> RuleSet {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("set.embargo");
    std::fs::write(&path, set.as_bytes()).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    RuleSet::from_backing(Arc::new(map)).unwrap()
}

fn policy(set: RuleSet) -> Policy {
    Policy::new(vec![Arc::new(set)], IpDb::new(), AppRules::default())
}

const DOH: &str = "blocklists/doh-vpn-proxy-bypass-2022";

#[test]
fn doh_six_syntaxes_decide_alike() {
    let sources = [
        ("adblock", Format::AdBlock),
        ("wildcard", Format::Wildcard),
        ("dnsmasq", Format::Dnsmasq),
        ("unbound", Format::Unbound),
        ("hosts", Format::HostsSubtree),
        ("domains", Format::Domains { subdomains: true }),
    ];
    let Some(compiled) = sources
        .iter()
        .map(|(name, format)| {
            compile(&format!("{DOH}/{name}.doh-vpn-proxy-bypass.txt"), *format).map(|c| (*name, c))
        })
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let policies: Vec<(&str, Policy)> = compiled
        .into_iter()
        .map(|(name, (set, report))| {
            assert_eq!(report.error_count, 0, "{name}: {:?}", report.errors);
            (name, policy(via_mmap(&set)))
        })
        .collect();
    let domains =
        String::from_utf8(read(&format!("{DOH}/domains.doh-vpn-proxy-bypass.txt")).unwrap())
            .unwrap();
    let names: Vec<&str> = domains
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(names.len() > 1200, "{}", names.len());
    let mut checked = 0;
    let mut blocked = 0;
    for name in &names {
        let parent = name.split_once('.').map(|(_, p)| p.to_owned());
        let candidates = [
            name.to_string(),
            format!("x1.{name}"),
            format!("a.b-c.{name}"),
            format!("not{name}"),
        ]
        .into_iter()
        .chain(parent);
        for candidate in candidates {
            let verdicts: Vec<(&str, Verdict)> = policies
                .iter()
                .map(|(n, p)| (*n, p.decide(&Query::name(&candidate)).verdict))
                .collect();
            assert!(
                verdicts.iter().all(|(_, v)| *v == verdicts[0].1),
                "{candidate}: {verdicts:?}"
            );
            checked += 1;
            blocked += (verdicts[0].1 == Verdict::Block) as usize;
        }
        // Every listed name and its subdomains are blocked.
        assert!(
            policies[0].1.decide(&Query::name(name)).is_block(),
            "{name}"
        );
    }
    assert!(
        checked > 5 * 1200 && blocked > 3 * 1200,
        "{checked} {blocked}"
    );
}

#[test]
fn stevenblack_full_list_decisions() {
    let Some((set, report)) = compile("blocklists/stevenblack-hosts.txt", Format::Hosts) else {
        return;
    };
    assert_eq!(report.error_count, 0, "{:?}", report.errors);
    assert!(set.name_count() > 85_000, "{}", set.name_count());
    let p = policy(via_mmap(&set));
    let text = String::from_utf8(read("blocklists/stevenblack-hosts.txt").unwrap()).unwrap();
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let Some(name) = line.strip_prefix("0.0.0.0 ") else {
            continue;
        };
        let name = name.split_whitespace().next().unwrap();
        if name == "0.0.0.0" {
            continue;
        }
        let d = p.decide(&Query::name(name));
        assert!(d.is_block(), "{name}");
        if n % 997 == 0 {
            match &d.reason {
                Reason::NameRule { rule, exception } => {
                    assert!(!exception);
                    assert_eq!(&*rule.list, "stevenblack-hosts.txt");
                    assert_eq!(rule.line as usize, i + 1, "{name}");
                }
                other => panic!("{other:?}"),
            }
            // Hosts entries are exact: a subdomain is not blocked by this entry.
            let sub = format!("zz-not-listed.{name}");
            let d = p.decide(&Query::name(&sub));
            if let Reason::NameRule { rule, .. } = &d.reason {
                assert_ne!(rule.rule, format!("={name}"));
            }
        }
        n += 1;
    }
    assert!(n > 85_000);
    assert!(!p.decide(&Query::name("example.org")).is_block());
}

#[test]
fn hagezi_native_lists_and_ddg() {
    for (rel, min) in [
        ("blocklists/native.tiktok.txt", 370),
        ("blocklists/native.huawei.txt", 150),
        ("blocklists/native.xiaomi.txt", 450),
    ] {
        let Some(bytes) = read(rel) else {
            return;
        };
        let format = Format::detect(rel, &bytes).unwrap();
        let (set, report) = compile(rel, format).unwrap();
        assert_eq!(report.error_count, 0, "{rel}: {:?}", report.errors);
        assert!(set.name_count() >= min, "{rel}: {}", set.name_count());
        let p = policy(set);
        // hagezi's lists mean subdomains too.
        let first = String::from_utf8(bytes)
            .unwrap()
            .lines()
            .find(|l| !l.starts_with('#') && !l.trim().is_empty())
            .unwrap()
            .trim()
            .to_owned();
        assert!(
            p.decide(&Query::name(&format!("sub.{first}"))).is_block(),
            "{rel}: {first}"
        );
    }
    let Some((set, report)) = compile("blocklists/ddg-app-android-tds.json", Format::DdgApp) else {
        return;
    };
    assert_eq!(report.error_count, 0, "{:?}", report.errors);
    let p = policy(set);
    // Whatever DDG blocks, the decision names an owner from the DDG list.
    let d = p.decide(&Query::name("graph.facebook.com"));
    if d.is_block() {
        let owner = d.owner.expect("ddg trackers carry their owner");
        assert!(
            owner.value.contains("Facebook") || owner.value.contains("Meta"),
            "{owner:?}"
        );
    }
}

#[test]
fn compiled_file_corruption_is_an_error_not_a_panic() {
    let Some((set, _)) = compile(
        "blocklists/native.tiktok.txt",
        Format::Domains { subdomains: true },
    ) else {
        return;
    };
    let bytes = set.as_bytes().to_vec();
    for len in (0..bytes.len()).step_by(97) {
        let err = RuleSet::from_bytes(bytes[..len].to_vec()).unwrap_err();
        assert!(
            matches!(
                err,
                CompiledError::Truncated { .. } | CompiledError::BadMagic
            ),
            "{len}: {err}"
        );
    }
    for i in (0..bytes.len()).step_by(13) {
        let mut bad = bytes.clone();
        bad[i] ^= 0x04;
        assert!(RuleSet::from_bytes(bad).is_err(), "flip at {i}");
    }
}

fn load_ipdb(rel: &str, format: Option<IpDbFormat>) -> Option<(IpDb, LoadReport)> {
    let mut db = IpDb::new();
    let report = db.load_bytes(rel.rsplit('/').next().unwrap(), format, &read(rel)?);
    assert_eq!(report.error_count, 0, "{rel}: {:?}", report.errors);
    Some((db, report))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn ipdb_head_files() {
    let Some((db, r)) = load_ipdb("ipdb/asn-ipv4.head20000.csv", None) else {
        return;
    };
    assert_eq!(r.accepted, 20_000);
    let a = db.lookup_asn(ip("1.0.0.1")).unwrap();
    assert_eq!((a.asn, a.org), (13335, "Cloudflare, Inc."));
    let Some((db, r)) = load_ipdb("ipdb/asn-ipv4.chinese-cloud-subset.csv", None) else {
        return;
    };
    assert_eq!(r.accepted, 916);
    assert_eq!(db.lookup_asn(ip("1.12.0.1")).unwrap().asn, 45090);
    let Some((db, r)) = load_ipdb("ipdb/asn-ipv6.chinese-cloud-subset.csv", None) else {
        return;
    };
    assert_eq!(r.accepted, 178);
    assert_eq!(db.lookup_asn(ip("2400:3200::1")).unwrap().asn, 37963);
    let Some((db, _)) = load_ipdb("ipdb/geo-whois-asn-country-ipv4.head20000.csv", None) else {
        return;
    };
    assert_eq!(db.lookup_country(ip("1.0.1.1")).unwrap().code_str(), "CN");
    let Some((db, _)) = load_ipdb("ipdb/geo-whois-asn-country-ipv6.head5000.csv", None) else {
        return;
    };
    assert_eq!(
        db.lookup_country(ip("2001:200::1")).unwrap().code_str(),
        "AU"
    );
    let Some((db, r)) = load_ipdb("ipdb/ip2asn-v4.asn-db-excerpt.tsv", None) else {
        return;
    };
    assert!(r.accepted > 1_000);
    assert_eq!(db.lookup_asn(ip("8.8.8.8")).unwrap().asn, 15169);
    assert_eq!(db.lookup_country(ip("8.8.8.8")).unwrap().code_str(), "US");
}

#[test]
fn ipdb_full_files_and_owner_vs_country() {
    let mut db = IpDb::new();
    for (rel, rows) in [
        ("ipdb/full/asn-ipv4.csv.gz", 411_961),
        ("ipdb/full/asn-ipv6.csv.gz", 0),
        ("ipdb/full/geo-whois-asn-country-ipv4.csv.gz", 334_373),
        ("ipdb/full/geo-whois-asn-country-ipv6.csv.gz", 216_295),
        ("ipdb/full/asn-country-ipv4.csv.gz", 0),
    ] {
        let Some(bytes) = read(rel) else {
            return;
        };
        let report = db.load_bytes(rel.rsplit('/').next().unwrap(), None, &bytes);
        assert_eq!(report.error_count, 0, "{rel}: {:?}", report.errors);
        if rows > 0 {
            assert_eq!(report.accepted, rows, "{rel}");
        }
    }
    let a = db.lookup_asn(ip("1.12.0.1")).unwrap();
    assert_eq!(a.asn, 45090);
    assert_eq!(a.database, "asn-ipv4.csv.gz");
    assert_eq!(db.lookup_asn(ip("8.8.8.8")).unwrap().asn, 15169);
    // Owner and country are separate facts, each from its own database.
    let c = db.lookup_country(ip("1.12.0.1")).unwrap();
    assert_eq!(
        (c.code_str(), c.database),
        ("CN", "geo-whois-asn-country-ipv4.csv.gz")
    );
    // Both country databases are kept and can be asked.
    assert_eq!(db.lookup_countries(ip("8.8.8.8")).count(), 2);
    assert!(db.lookup_asn(ip("2400:3200::1")).is_some());
}

#[test]
fn builtin_policy_with_app_rules() {
    let p = Policy::builtin();
    let d = p.decide(&Query::name("log.tiktokv.com").with_app("com.example.game"));
    assert!(d.is_block());
    // The TikTok app reaching its own owner's telemetry: the built-in rules are an embargo,
    // so the first-party exception does not apply.
    let d = p.decide(&Query::name("log.tiktokv.com").with_app("com.zhiliaoapp.musically"));
    assert_eq!(d.verdict, Verdict::Block);
    assert!(
        matches!(d.reason, Reason::NameRule { .. }),
        "{:?}",
        d.reason
    );
    assert_eq!(d.intent, Some(embargo_policy::Intent::Embargo));
    let (owner, country) = p.attribute(None, Some(ip("1.12.0.1")));
    assert_eq!(owner.unwrap().asn, Some(45090));
    assert_eq!(country.unwrap().value, "CN");
}

/// A file found by the `compiled_load` fuzz target against format version 1: valid header and
/// checksum over a malformed FST. Resealed as the current version, its name section is not a
/// valid index: opening it is an error (the index header and directory are parsed at open),
/// never a panic.
#[test]
fn crafted_files_are_rejected() {
    let input = include_bytes!("fixtures/compiled-crafted-fst.bin");
    let mut bytes = input[1..].to_vec();
    if input[0] & 1 == 1 {
        bytes[..8].copy_from_slice(&embargo_policy::format::MAGIC);
        bytes[8..12].copy_from_slice(&embargo_policy::format::VERSION.to_le_bytes());
        bytes[28..32].copy_from_slice(&[0; 4]);
        embargo_policy::format::seal(&mut bytes);
    }
    let err = RuleSet::from_bytes(bytes)
        .and_then(|set| set.verify())
        .unwrap_err();
    assert!(err.to_string().contains("names"), "{err}");

    // Every set Embargo writes verifies.
    let Some((good, _)) = compile(
        "blocklists/native.tiktok.txt",
        Format::Domains { subdomains: true },
    ) else {
        return;
    };
    good.verify().unwrap();

    // A crafted name index behind a valid checksum: its header and directory are checked at
    // open; what is per key (sorted fingerprints, values in range) by `verify`.
    let bytes = good.as_bytes().to_vec();
    let section = |id: u32| {
        let count = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        (0..count)
            .map(|i| &bytes[32 + 24 * i..32 + 24 * (i + 1)])
            .find(|e| u32::from_le_bytes(e[..4].try_into().unwrap()) == id)
            .map(|e| {
                let off = u64::from_le_bytes(e[8..16].try_into().unwrap()) as usize;
                let len = u64::from_le_bytes(e[16..24].try_into().unwrap()) as usize;
                (off, len)
            })
            .unwrap()
    };
    let (names, len) = section(1);
    let read = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let keys = u64::from_le_bytes(bytes[names..names + 8].try_into().unwrap()) as usize;
    let d = read(&bytes, names + 8);
    let dir = names + 24;
    let fingerprints = dir + ((1usize << d) + 1) * 4;
    assert!(keys > 300);
    // 1. A directory that goes backwards: refused at open.
    let mut bad = bytes.clone();
    bad[dir + 4..dir + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    embargo_policy::format::seal(&mut bad);
    let err = RuleSet::from_bytes(bad).unwrap_err();
    assert!(err.to_string().contains("directory"), "{err}");
    // 2. Fingerprints out of order in a bucket: opens, lookups stay safe, verify refuses.
    let bucket = (0..1usize << d)
        .find(|b| read(&bytes, dir + 4 * (b + 1)) - read(&bytes, dir + 4 * b) >= 2)
        .unwrap();
    let first = fingerprints + 4 * read(&bytes, dir + 4 * bucket) as usize;
    let mut bad = bytes.clone();
    bad[first..first + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    embargo_policy::format::seal(&mut bad);
    let set = RuleSet::from_bytes(bad).unwrap();
    let _ = policy(RuleSet::from_bytes(set.as_bytes().to_vec()).unwrap())
        .decide(&Query::name("log.tiktokv.com"));
    let err = set.verify().unwrap_err();
    assert!(err.to_string().contains("not sorted"), "{err}");
    // 3. Values that point past the side table (all zero: the side-table combination, entry
    // 0, and this list has no side entry): opens, decides safely, verify refuses.
    let values = fingerprints + 4 * keys;
    let mut bad = bytes.clone();
    for b in &mut bad[values..names + len - 8] {
        *b = 0;
    }
    embargo_policy::format::seal(&mut bad);
    let set = RuleSet::from_bytes(bad).unwrap();
    let err = set.verify().unwrap_err();
    assert!(err.to_string().contains("points nowhere"), "{err}");
    let p = policy(set);
    assert!(!p.decide(&Query::name("example.org")).is_block());
    let _ = p.decide(&Query::name("log.tiktokv.com"));
}

/// How many names of each hagezi list of these companies' hosts the built-in default blocks, at
/// each level (the README's table; `tests/tools/default_coverage.py` counts the same with an
/// independent matcher). A list's name counts when the name itself is blocked; hagezi lists
/// mean "and subdomains", which the name's own block covers under the same rule.
#[test]
fn builtin_default_covers_the_embargoed_companies_telemetry() {
    use embargo_policy::EmbargoLevel;
    // The names, and content that must stay open at the telemetry level.
    let telemetry = Policy::builtin();
    for blocked in [
        "log.tiktokv.com",
        "mssdk-va.tiktokv.com",
        "log.us.tiktokv.com",
        "ib.snssdk.com",
        "toblog.ctobsnssdk.com",
        "sdk-log.pangle.io",
        "mon.isnssdk.com",
        "log16-normal-c-useast1a.tiktokv.com",
    ] {
        let d = telemetry.decide(&Query::name(blocked).with_app("com.zhiliaoapp.musically"));
        assert_eq!(d.verdict, Verdict::Block, "{blocked}: {d:?}");
        assert_eq!(d.intent, Some(embargo_policy::Intent::Embargo), "{blocked}");
    }
    for open in [
        "api16-normal-c-useast1a.tiktokv.com",
        "webcast-va.tiktokv.com",
        "v16m.tiktokcdn.com",
        "login.tiktok.com",
    ] {
        let d = telemetry.decide(&Query::name(open).with_app("com.zhiliaoapp.musically"));
        assert_eq!(d.verdict, Verdict::Allow, "{open}: {d:?}");
    }

    // The coverage counts need the hagezi lists (test data of ../shared only).
    let count = |rel: &str, level: EmbargoLevel| -> Option<(usize, usize)> {
        let text = String::from_utf8(read(rel)?).unwrap();
        let policy = Policy::builtin_at(level);
        let names: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let blocked = names
            .iter()
            .filter(|n| policy.verdict(&Query::name(n)) == Verdict::Block)
            .count();
        Some((blocked, names.len()))
    };
    let Some(tiktok) = count("blocklists/native.tiktok.txt", EmbargoLevel::Telemetry) else {
        return;
    };
    let Some(tiktok_full) = count("blocklists/native.tiktok.txt", EmbargoLevel::Full) else {
        return;
    };
    let Some(huawei) = count("blocklists/native.huawei.txt", EmbargoLevel::Telemetry) else {
        return;
    };
    let Some(huawei_full) = count("blocklists/native.huawei.txt", EmbargoLevel::Full) else {
        return;
    };
    eprintln!(
        "default coverage: native.tiktok {}/{} telemetry, {} full; native.huawei {}/{} \
         telemetry, {} full",
        tiktok.0, tiktok.1, tiktok_full.0, huawei.0, huawei.1, huawei_full.0
    );
    assert_eq!(tiktok.1, 375);
    assert!(tiktok.0 >= 363, "native.tiktok: {tiktok:?}");
    assert!(tiktok_full.0 >= 373, "native.tiktok full: {tiktok_full:?}");
    assert!(huawei.0 >= 110, "native.huawei: {huawei:?}");
    assert!(huawei_full.0 >= 145, "native.huawei full: {huawei_full:?}");
}
