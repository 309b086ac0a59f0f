//! Tests across parsers: the real lists in `../shared/data/blocklists` (exact counts, zero
//! errors), the six syntaxes of one list agreeing, format detection, and garbage input.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::*;
use crate::rules::SkipReason;

use embargo_test_support::shared_data;

const DOH: [&str; 6] = [
    "blocklists/doh-vpn-proxy-bypass-2022/adblock.doh-vpn-proxy-bypass.txt",
    "blocklists/doh-vpn-proxy-bypass-2022/dnsmasq.doh-vpn-proxy-bypass.txt",
    "blocklists/doh-vpn-proxy-bypass-2022/domains.doh-vpn-proxy-bypass.txt",
    "blocklists/doh-vpn-proxy-bypass-2022/hosts.doh-vpn-proxy-bypass.txt",
    "blocklists/doh-vpn-proxy-bypass-2022/unbound.doh-vpn-proxy-bypass.txt",
    "blocklists/doh-vpn-proxy-bypass-2022/wildcard.doh-vpn-proxy-bypass.txt",
];

/// The six DOH files, or `None` (skipped) when one is missing.
fn doh() -> Option<Vec<PathBuf>> {
    DOH.iter().map(|rel| shared_data(rel)).collect()
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap()
}

fn load(format: Format, path: &Path) -> (Vec<Rule>, LoadReport) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rules = Vec::new();
    let report = parse_list(
        format,
        file_name(path),
        std::io::BufReader::new(file),
        &mut |r| rules.push(r),
    );
    (rules, report)
}

fn detect_file(path: &Path) -> Option<Format> {
    let bytes = std::fs::read(path).unwrap();
    Format::detect(file_name(path), &bytes[..bytes.len().min(4096)])
}

fn kinds(rules: &[Rule]) -> BTreeMap<&'static str, u64> {
    let mut counts = BTreeMap::new();
    for rule in rules {
        let kind = match rule {
            Rule::Name(n) => match (&n.pattern, n.action) {
                (NamePattern::Exact(_), Action::Block) => "exact",
                (NamePattern::Subtree(_), Action::Block) => "subtree",
                (_, Action::Allow) => "allow",
                _ => "other_name",
            },
            Rule::Address { .. } => "address",
            Rule::Asn { .. } => "asn",
            Rule::OwnerName { .. } => "owner",
            Rule::Country { .. } => "country",
            Rule::DomainOwner(_) => "domain_owner",
            Rule::AppOwner(_) => "app_owner",
            Rule::Category(_) => "category",
        };
        *counts.entry(kind).or_insert(0) += 1;
    }
    counts
}

/// Loads a real list, checks it has no error, and returns rule kinds and skips.
fn real(format: Format, path: &Path) -> (BTreeMap<&'static str, u64>, BTreeMap<SkipReason, u64>) {
    let (rules, report) = load(format, path);
    assert_eq!(
        report.error_count,
        0,
        "{}: {:?}",
        path.display(),
        report.errors
    );
    assert_eq!(report.accepted, rules.len() as u64);
    assert_eq!(report.list, file_name(path));
    (kinds(&rules), report.skipped)
}

#[test]
fn stevenblack_hosts() {
    let Some(path) = shared_data("blocklists/stevenblack-hosts.txt") else {
        return;
    };
    let path = &path;
    assert_eq!(detect_file(path), Some(Format::Hosts));
    let (kinds, skipped) = real(Format::Hosts, path);
    // SOURCES.md: 85,643 unique domains; the 14 housekeeping entries are local names.
    assert_eq!(kinds, BTreeMap::from([("exact", 85_643)]));
    assert_eq!(skipped, BTreeMap::from([(SkipReason::LocalName, 14)]));

    let Some(path) = shared_data("blocklists/stevenblack-hosts.head3000.txt") else {
        return;
    };
    let (kinds, skipped) = real(Format::Hosts, &path);
    assert_eq!(kinds, BTreeMap::from([("exact", 2_567)]));
    assert_eq!(skipped, BTreeMap::from([(SkipReason::LocalName, 14)]));
}

#[test]
fn hagezi_native_lists() {
    for (rel, count) in [
        ("blocklists/native.tiktok.txt", 375),
        ("blocklists/native.huawei.txt", 152),
        ("blocklists/native.xiaomi.txt", 461),
    ] {
        let Some(path) = shared_data(rel) else {
            return;
        };
        let path = &path;
        let format = detect_file(path);
        assert_eq!(format, Some(Format::Domains { subdomains: true }), "{rel}");
        let (kinds, skipped) = real(Format::Domains { subdomains: true }, path);
        assert_eq!(kinds, BTreeMap::from([("subtree", count)]), "{rel}");
        assert!(skipped.is_empty());
    }
}

#[test]
fn ddg_app_tds() {
    let Some(path) = shared_data("blocklists/ddg-app-android-tds.json") else {
        return;
    };
    let path = &path;
    assert_eq!(detect_file(path), Some(Format::DdgApp));
    let (kinds, skipped) = real(Format::DdgApp, path);
    // SOURCES.md: 339 trackers (274 `block`, 65 `ignore`), 407 packages.
    assert_eq!(
        kinds,
        BTreeMap::from([("app_owner", 407), ("domain_owner", 339), ("subtree", 274)])
    );
    assert_eq!(skipped, BTreeMap::from([(SkipReason::Inert, 65)]));
    // Facts carry the line of their key.
    let (rules, _) = load(Format::DdgApp, path);
    let Rule::DomainOwner(first) = &rules[0] else {
        panic!("{:?}", rules[0])
    };
    assert_eq!(
        (
            first.domain.as_str(),
            first.owner.as_str(),
            first.display_name.as_str()
        ),
        ("15.taboola.com", "Taboola, Inc.", "Taboola")
    );
    assert_eq!(first.source.line, 5);
    let text = std::fs::read_to_string(path).unwrap();
    for rule in &rules {
        if let Rule::AppOwner(app) = rule {
            let line = text.lines().nth(app.source.line as usize - 1).unwrap();
            assert!(line.contains(&format!("\"{}\"", app.app)), "{app:?}");
        }
    }
}

#[test]
fn doh_vpn_proxy_bypass_all_six_syntaxes_load() {
    let expected: [(Format, &str, u64); 6] = [
        (Format::AdBlock, "subtree", 714),
        (Format::Dnsmasq, "subtree", 714),
        (Format::Domains { subdomains: true }, "subtree", 1_205),
        (Format::HostsSubtree, "subtree", 1_205),
        (Format::Unbound, "subtree", 714),
        (Format::Wildcard, "subtree", 714),
    ];
    let Some(paths) = doh() else {
        return;
    };
    for (path, (format, kind, count)) in paths.iter().zip(expected) {
        let rel = path.display();
        assert_eq!(detect_file(path), Some(format), "{rel}");
        let (kinds, skipped) = real(format, path);
        assert_eq!(kinds, BTreeMap::from([(kind, count)]), "{rel}");
        assert!(skipped.is_empty(), "{rel}: {skipped:?}");
    }
    // Read as a plain hosts file, the same names are exact.
    let (kinds, _) = real(Format::Hosts, &paths[3]);
    assert_eq!(kinds, BTreeMap::from([("exact", 1_205)]));
}

/// A deliberately naive matcher over parsed patterns, independent of the real compiler: the
/// last word on whether two rule sets say the same thing.
struct ReferenceMatcher {
    rules: Vec<(NamePattern, Action)>,
}

impl ReferenceMatcher {
    fn new(rules: &[Rule]) -> Self {
        let rules = rules
            .iter()
            .filter_map(|r| match r {
                Rule::Name(n) => Some((n.pattern.clone(), n.action)),
                _ => None,
            })
            .collect();
        ReferenceMatcher { rules }
    }

    fn glob_matches(pattern: &[u8], name: &[u8]) -> bool {
        match pattern.split_first() {
            None => name.is_empty(),
            Some((b'*', rest)) => (0..=name.len()).any(|i| Self::glob_matches(rest, &name[i..])),
            Some((c, rest)) => name.first() == Some(c) && Self::glob_matches(rest, &name[1..]),
        }
    }

    fn matches(pattern: &NamePattern, name: &str) -> bool {
        match pattern {
            NamePattern::Exact(n) => n == name,
            NamePattern::Subtree(n) => name == n || name.ends_with(&format!(".{n}")),
            NamePattern::Glob {
                pattern,
                anchored_start,
                anchored_end,
            } => {
                let mut p = String::new();
                if !anchored_start {
                    p.push('*');
                }
                p.push_str(pattern);
                if !anchored_end {
                    p.push('*');
                }
                Self::glob_matches(p.as_bytes(), name.as_bytes())
            }
            NamePattern::Regex(r) => compile_name_regex(r).unwrap().is_match(name.as_bytes()),
            NamePattern::Labels { .. } => unimplemented!("no label patterns in these lists"),
        }
    }

    /// Blocked when a block rule matches and no exception does.
    fn blocks(&self, name: &str) -> bool {
        let hit = |action| {
            self.rules
                .iter()
                .any(|(p, a)| *a == action && Self::matches(p, name))
        };
        hit(Action::Block) && !hit(Action::Allow)
    }
}

#[test]
fn doh_vpn_proxy_bypass_six_syntaxes_agree() {
    let Some(paths) = doh() else {
        return;
    };
    let matchers: Vec<(String, ReferenceMatcher)> = paths
        .iter()
        .map(|path| {
            let format = detect_file(path).unwrap();
            let (rules, report) = load(format, path);
            assert_eq!(report.error_count, 0);
            (file_name(path).to_owned(), ReferenceMatcher::new(&rules))
        })
        .collect();
    let (domain_rules, _) = load(Format::Domains { subdomains: false }, &paths[2]);
    let names: Vec<String> = domain_rules
        .iter()
        .map(|r| match r {
            Rule::Name(NameRule {
                pattern: NamePattern::Exact(n),
                ..
            }) => n.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(names.len(), 1_205);
    let listed: HashSet<&str> = names.iter().map(String::as_str).collect();
    let mut checked = 0;
    // Every syntax must give the same answer as the first (AdBlock) on every probe; on the
    // listed names and the subdomains generated from them that answer must be "block".
    let mut probe = |name: &str, want: Option<bool>| {
        let first = matchers[0].1.blocks(name);
        if let Some(want) = want {
            assert_eq!(first, want, "{} on {name}", matchers[0].0);
        }
        for (file, matcher) in &matchers[1..] {
            assert_eq!(matcher.blocks(name), first, "{file} on {name}");
        }
        checked += 1;
    };
    for name in &names {
        probe(name, Some(true));
        probe(&format!("x.{name}"), Some(true));
        probe(&format!("a.b.{name}"), Some(true));
        // Neighbours: a longer first label, and the parent: blocked only if some rule says so.
        probe(&format!("x{name}"), None);
        if let Some((_, parent)) = name.split_once('.') {
            probe(
                parent,
                if listed.contains(parent) {
                    Some(true)
                } else {
                    None
                },
            );
        }
    }
    // Names no syntax lists.
    probe("example.org", Some(false));
    probe("xcloudflare-dns.com", Some(false));
    assert!(checked > 4 * 1_205);

    // A plain hosts reading covers exactly the listed names: same on those, not below.
    let (rules, _) = load(Format::Hosts, &paths[3]);
    let hosts = ReferenceMatcher::new(&rules);
    for name in &names {
        assert!(hosts.blocks(name));
        assert!(
            !hosts.blocks(&format!("zz-unlisted.{name}"))
                || listed.contains(format!("zz-unlisted.{name}").as_str())
        );
    }
}

#[test]
fn detects_other_formats() {
    assert_eq!(Format::detect("x.rules", b""), Some(Format::Embargo));
    assert_eq!(
        Format::detect("l.txt", b"# mine\nAS45090\n"),
        Some(Format::Embargo)
    );
    assert_eq!(
        Format::detect("l.txt", b"10.0.0.0/8\n"),
        Some(Format::Embargo)
    );
    assert_eq!(
        Format::detect("l.txt", b"owner: ByteDance\n"),
        Some(Format::Embargo)
    );
    assert_eq!(
        Format::detect("l.txt", b"example.com\n"),
        Some(Format::Domains { subdomains: false })
    );
    assert_eq!(
        Format::detect("l.txt", b"! c\nexample.com\n"),
        Some(Format::AdBlock)
    );
    assert_eq!(
        Format::detect("l.txt", b"*.example.com\n"),
        Some(Format::Wildcard)
    );
    assert_eq!(
        Format::detect("l.txt", b"127.0.0.1 localhost\n"),
        Some(Format::Hosts)
    );
    assert_eq!(
        Format::detect("l.conf", b"server:\n  local-zone: \"a.\" static\n"),
        Some(Format::Unbound)
    );
    assert_eq!(
        Format::detect("l.conf", b"address=/a.com/#\n"),
        Some(Format::Dnsmasq)
    );
    assert_eq!(
        Format::detect(
            "tds.json",
            br#"{"trackers": {"a.com": {"domain": "a.com", "prevalence": 1}}}"#
        ),
        Some(Format::DdgWeb)
    );
    assert_eq!(
        Format::detect(
            "services.json",
            br#"{"license": "x", "categories": {"Advertising": []}}"#
        ),
        Some(Format::Disconnect)
    );
    assert_eq!(
        Format::detect(
            "trackers.json",
            br#"{"trackers": {"1": {"name": "Teemo", "network_signature": "databerries\\.com"}}}"#
        ),
        Some(Format::Exodus)
    );
    assert_eq!(
        Format::detect(
            "entities.json",
            br#"{"Adobe": {"properties": ["adobe.com"], "resources": ["demdex.net"]}}"#
        ),
        Some(Format::DisconnectEntities)
    );
    assert_eq!(
        Format::detect(
            "xray-blacklist.json",
            br#"[{"country":"us","doms":["adsense.com"],"owner_name":"AdSense"}]"#
        ),
        Some(Format::Xray)
    );
    assert_eq!(Format::detect("x.bin", b"\x00\x01\x02"), None);
    assert_eq!(
        Format::detect("x.txt", b"hello world, this is prose\n"),
        None
    );
    assert_eq!(Format::detect("x.json", b"[1, 2]"), None);
    // Fuzz regression: a multi-byte character where a two-byte prefix was sliced.
    assert_eq!(Format::detect("x.txt", "\u{feff}itle\n".as_bytes()), None);
    assert_eq!(Format::detect("x.txt", "aé\n".as_bytes()), None);
}

#[test]
fn format_names_round_trip() {
    for name in [
        "hosts",
        "hosts-subtree",
        "domains",
        "domains-subtree",
        "adblock",
        "dnsmasq",
        "unbound",
        "wildcard",
        "ddg-app",
        "ddg-web",
        "disconnect",
        "disconnect-entities",
        "xray",
        "exodus",
        "embargo",
    ] {
        let format = Format::from_name(name).unwrap();
        assert_eq!(format.name(), name);
    }
    assert_eq!(Format::from_name("nope"), None);
}

const ALL_FORMATS: [Format; 15] = [
    Format::Hosts,
    Format::HostsSubtree,
    Format::Domains { subdomains: false },
    Format::Domains { subdomains: true },
    Format::AdBlock,
    Format::Dnsmasq,
    Format::Unbound,
    Format::Wildcard,
    Format::DdgApp,
    Format::DdgWeb,
    Format::Disconnect,
    Format::DisconnectEntities,
    Format::Xray,
    Format::Exodus,
    Format::Embargo,
];

fn count_only<R: std::io::BufRead>(format: Format, input: R) -> (u64, LoadReport) {
    let mut n = 0;
    let report = parse_list(format, "garbage", input, &mut |_| n += 1);
    (n, report)
}

#[test]
fn one_gigabyte_without_a_newline_is_one_bounded_error() {
    // 1 GiB generated on the fly: never in memory at once.
    let input = std::io::BufReader::new(std::io::repeat(b'a').take(1 << 30));
    let (n, report) = count_only(Format::Hosts, input);
    assert_eq!(n, 0);
    assert_eq!(report.error_count, 1);
    assert_eq!(report.errors[0].line, 1);
    assert!(report.errors[0].message.contains("longer than 4096 bytes"));
    // JSON formats stop at their cap instead of reading on.
    let input = std::io::BufReader::new(std::io::repeat(b' ').take(1 << 30));
    let (_, report) = count_only(Format::DdgWeb, input);
    assert!(report.errors[0].message.contains("larger than 16 MiB"));
}

#[test]
fn ten_megabyte_line_then_valid_lines() {
    let mut input = b"0.0.0.0 first.com\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 10 << 20));
    input.extend_from_slice(b"\n0.0.0.0 after.com\n");
    for format in [Format::Hosts, Format::AdBlock] {
        let (n, report) = count_only(format, &input[..]);
        assert_eq!(n, 2, "{format:?}");
        assert_eq!(report.error_count, 1);
        assert_eq!(report.errors[0].line, 2);
    }
}

#[test]
fn binary_and_invalid_utf8_never_panic() {
    // A deterministic pseudo-random byte soup (xorshift), with NULs.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let soup: Vec<u8> = (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    for format in ALL_FORMATS {
        let (_, report) = count_only(format, &soup[..]);
        assert!(report.error_count >= 1, "{format:?}");
    }
    // NUL stops a text list at the line that holds it.
    let (n, report) = count_only(
        Format::Domains { subdomains: false },
        &b"a.com\nb.com\x00\nc.com\n"[..],
    );
    assert_eq!(n, 1);
    assert_eq!(report.error_count, 1);
    assert_eq!(report.errors[0].line, 2);
    assert!(report.errors[0].message.contains("binary"));
    // Invalid UTF-8 is one error per line; the rest still loads.
    let (n, report) = count_only(
        Format::Domains { subdomains: false },
        &b"a.com\n\xC3\x28.com\nc.com\n"[..],
    );
    assert_eq!(n, 2);
    assert_eq!(report.errors[0].line, 2);
    assert!(report.errors[0].message.contains("UTF-8"));
}

#[test]
fn many_errors_are_capped() {
    let input = "not a name!\n".repeat(10_000);
    let (n, report) = count_only(Format::Domains { subdomains: false }, input.as_bytes());
    assert_eq!(n, 0);
    assert_eq!(report.error_count, 10_000);
    assert_eq!(report.errors.len(), MAX_STORED_ERRORS);
    assert_eq!(report.errors[99].line, 100);
}

/// Release-mode timing of the full StevenBlack list, printed, never asserted (benchmarks
/// belong to criterion), next to a baseline in the same run: the naive loader most blockers
/// use (`BufRead::lines`, unbounded, no validation, names into a `Vec<String>`).
/// `cargo test -p embargo-policy --release -- --ignored --nocapture parse_speed`
#[test]
#[ignore]
fn parse_speed_stevenblack() {
    use std::io::BufRead;
    let Some(path) = shared_data("blocklists/stevenblack-hosts.txt") else {
        return;
    };
    let bytes = std::fs::read(path).unwrap();
    let mut best = std::time::Duration::MAX;
    let mut best_naive = std::time::Duration::MAX;
    for _ in 0..10 {
        let start = std::time::Instant::now();
        let (n, _) = count_only(Format::Hosts, &bytes[..]);
        best = best.min(start.elapsed());
        assert_eq!(n, 85_643);

        let start = std::time::Instant::now();
        let mut names = Vec::new();
        for line in bytes.lines() {
            let line = line.unwrap();
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_ascii_whitespace();
            if fields.next() == Some("0.0.0.0") {
                names.extend(fields.map(str::to_owned));
            }
        }
        best_naive = best_naive.min(start.elapsed());
        assert!(names.len() >= 85_643);
    }
    eprintln!(
        "stevenblack-hosts.txt (85,643 names), best of 10: parse::parse_list {best:?}; \
         naive lines()+split baseline {best_naive:?}"
    );
}
