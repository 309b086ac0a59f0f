//! AdGuard / AdBlock DNS filtering syntax
//! (`../shared/data/reference/adguard-dns-filtering-syntax.md`).
//!
//! `rule = ["@@"] pattern ["$" modifiers]`, comments start with `!` or `#`.
//!
//! How patterns map to [`NamePattern`]:
//!
//! | pattern | meaning | becomes |
//! |---|---|---|
//! | `\|\|name^`, `\|\|name\|` | the name and all subdomains | `Subtree(name)` |
//! | `name` (a valid name, no anchors) | exactly the name (AdGuard: "blocks example.org but not its subdomains") | `Exact(name)` |
//! | `\|name\|` | exactly the name | `Exact(name)` |
//! | with `*`, a lone `\|` anchor, or `\|\|name` without `^` | a glob | `Glob` (for `\|\|`, two globs: `x` and `*.x`, both anchored at the start, because `\|\|` means "at the start of the name or of any label") |
//! | `/regex/` | a regular expression over the name | `Regex`, compiled by [`compile_name_regex`] within a size budget; over budget is [`SkipReason::RegexTooCostly`] |
//! | `\|\|1.2.3.4^`, `1.2.3.4` | an address (AdGuard matches it against answer addresses) | [`Rule::Address`] |
//! | `0.0.0.0 name` | hosts syntax, accepted in AdGuard lists | `Exact(name)` |
//! | anything with a URL path, port or query (`\|\|a.com/ads`, `a.com:8080`) | cannot apply to DNS | [`SkipReason::NotApplicable`] |
//! | cosmetic and HTML rules (`##`, `#@#`, `#?#`, `#$#`, `#%#`, `$$` ...) | page content | [`SkipReason::NotApplicable`] |
//!
//! Modifiers: `important`, `badfilter`, `dnstype=A|~AAAA` (names or `TYPEnnn`), and
//! `denyallow=a.com|b.com` are supported. Any other modifier (`client`, `ctag`, `dnsrewrite`,
//! `respgeo`, every browser modifier such as `third-party` or `domain=`) makes the whole rule
//! skipped as [`SkipReason::UnsupportedModifier`], as the syntax requires: applying the rule
//! without the modifier would block more than its author meant.

use std::net::IpAddr;

use super::hosts;
use super::lines::Emitter;
use super::name::{normalize_glob, normalize_name};
use crate::rules::{Action, DnsTypeFilter, IpNet, NamePattern, NameRule, Rule, SkipReason};

/// Compiled-program budget for one `/regex/` rule, in bytes.
///
/// Host-name regexes in real lists (AdGuard DNS filter, hagezi) compile to well under 10 KiB;
/// 64 KiB leaves room for honest ones while a rule like `/(a{100}){100}/` is refused instead of
/// costing megabytes per rule in a list that may hold thousands.
pub const REGEX_SIZE_LIMIT: usize = 64 * 1024;

/// Lazy-DFA cache budget for one `/regex/` rule, in bytes: bounds the memory matching may use.
pub const REGEX_DFA_SIZE_LIMIT: usize = 256 * 1024;

/// Compiles a `/regex/` rule body the one way Embargo matches it: over the name's bytes,
/// ASCII-only (names are ASCII after IDNA), case-insensitive (AdGuard's regex rules are), and
/// within [`REGEX_SIZE_LIMIT`] / [`REGEX_DFA_SIZE_LIMIT`].
///
/// The matcher must compile with this function too, so that every rule a parser accepted
/// compiles there.
pub fn compile_name_regex(body: &str) -> Result<regex::bytes::Regex, regex::Error> {
    regex::bytes::RegexBuilder::new(body)
        .unicode(false)
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
}

/// DNS resource-record type names accepted by `$dnstype` (IANA registry, the types a name
/// query may ask for), with their numbers.
const DNS_TYPES: &[(&str, u16)] = &[
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("NULL", 10),
    ("WKS", 11),
    ("PTR", 12),
    ("HINFO", 13),
    ("MINFO", 14),
    ("MX", 15),
    ("TXT", 16),
    ("RP", 17),
    ("AFSDB", 18),
    ("SIG", 24),
    ("KEY", 25),
    ("AAAA", 28),
    ("LOC", 29),
    ("SRV", 33),
    ("NAPTR", 35),
    ("KX", 36),
    ("CERT", 37),
    ("DNAME", 39),
    ("OPT", 41),
    ("APL", 42),
    ("DS", 43),
    ("SSHFP", 44),
    ("IPSECKEY", 45),
    ("RRSIG", 46),
    ("NSEC", 47),
    ("DNSKEY", 48),
    ("DHCID", 49),
    ("NSEC3", 50),
    ("NSEC3PARAM", 51),
    ("TLSA", 52),
    ("SMIMEA", 53),
    ("HIP", 55),
    ("CDS", 59),
    ("CDNSKEY", 60),
    ("OPENPGPKEY", 61),
    ("CSYNC", 62),
    ("ZONEMD", 63),
    ("SVCB", 64),
    ("HTTPS", 65),
    ("SPF", 99),
    ("NID", 104),
    ("L32", 105),
    ("L64", 106),
    ("LP", 107),
    ("EUI48", 108),
    ("EUI64", 109),
    ("TKEY", 249),
    ("TSIG", 250),
    ("IXFR", 251),
    ("AXFR", 252),
    ("ANY", 255),
    ("URI", 256),
    ("CAA", 257),
];

/// Maps a record-type name (case-insensitive) or RFC 3597 `TYPEnnn` to its number.
pub fn dns_type_number(name: &str) -> Option<u16> {
    if let Some((_, number)) = DNS_TYPES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
        return Some(*number);
    }
    let digits = name
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("type"))
        .map(|_| &name[4..])?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Markers of cosmetic, scriptlet and HTML-filtering rules: they act on page content.
const COSMETIC_MARKERS: &[&str] = &[
    "##", "#@#", "#?#", "#@?#", "#$#", "#@$#", "#$?#", "#@$?#", "#%#", "#@%#", "$$", "$@$",
];

/// What the modifiers of one rule say.
#[derive(Default)]
struct Modifiers {
    important: bool,
    badfilter: bool,
    dnstype: Option<DnsTypeFilter>,
    denyallow: Vec<String>,
    any: bool,
}

enum ModifierError {
    Unsupported,
    Invalid { field: String, message: String },
}

fn invalid(field: &str, message: impl Into<String>) -> ModifierError {
    ModifierError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

fn parse_modifiers(text: &str) -> Result<Modifiers, ModifierError> {
    let mut mods = Modifiers {
        any: true,
        ..Modifiers::default()
    };
    // First pass: any unknown modifier discards the whole rule, even if a known one is also
    // malformed (splitting on `,` can cut a quoted `client` value in pieces; those pieces are
    // unknown modifiers too, which is the right outcome).
    for token in text.split(',') {
        let name = token.split_once('=').map_or(token, |(n, _)| n).trim();
        if !matches!(name, "important" | "badfilter" | "dnstype" | "denyallow") {
            if name.is_empty() {
                return Err(invalid(text, "empty modifier"));
            }
            return Err(ModifierError::Unsupported);
        }
    }
    for token in text.split(',') {
        let (name, value) = match token.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (token.trim(), None),
        };
        match (name, value) {
            ("important", None) => mods.important = true,
            ("badfilter", None) => mods.badfilter = true,
            ("important" | "badfilter", Some(_)) => {
                return Err(invalid(token, "this modifier takes no value"))
            }
            ("dnstype", Some(value)) if !value.is_empty() => {
                mods.dnstype = Some(parse_dnstype(value)?)
            }
            ("denyallow", Some(value)) if !value.is_empty() => {
                for domain in value.split('|') {
                    if domain.starts_with('~') || domain.contains('*') {
                        return Err(invalid(
                            domain,
                            "denyallow takes plain domains (no `~`, no `*`)",
                        ));
                    }
                    let domain = normalize_name(domain).map_err(|m| invalid(domain, m))?;
                    mods.denyallow.push(domain);
                }
            }
            _ => return Err(invalid(token, "this modifier needs a value")),
        }
    }
    Ok(mods)
}

fn parse_dnstype(value: &str) -> Result<DnsTypeFilter, ModifierError> {
    let mut filter = DnsTypeFilter {
        include: Vec::new(),
        exclude: Vec::new(),
    };
    for item in value.split('|') {
        let (negated, name) = match item.strip_prefix('~') {
            Some(name) => (true, name),
            None => (false, item),
        };
        let number =
            dns_type_number(name.trim()).ok_or_else(|| invalid(item, "unknown DNS record type"))?;
        let list = if negated {
            &mut filter.exclude
        } else {
            &mut filter.include
        };
        if !list.contains(&number) {
            list.push(number);
        }
    }
    // The syntax says `~A|AAAA` means `AAAA`: an explicit inclusion wins over exclusions.
    if !filter.include.is_empty() {
        filter.exclude.clear();
    }
    Ok(filter)
}

/// Splits `pattern$modifiers`. A `/regex/` may itself hold `$`, so its modifiers start after
/// the closing slash; other patterns cannot hold `$`, so the first one starts the modifiers.
fn split_modifiers(rule: &str) -> (&str, Option<&str>) {
    if rule.starts_with('/') {
        if rule.len() >= 2 && rule.ends_with('/') {
            return (rule, None);
        }
        if let Some(at) = rule.rfind("/$") {
            if at > 0 {
                return (&rule[..=at], Some(&rule[at + 2..]));
            }
        }
        return (rule, None);
    }
    match rule.split_once('$') {
        Some((pattern, modifiers)) => (pattern, Some(modifiers)),
        None => (rule, None),
    }
}

/// What one pattern turned into.
enum Parsed {
    Names(Vec<NamePattern>),
    Address(IpNet),
    Skip(SkipReason),
    Error(String),
}

fn glob(pattern: String, anchored_start: bool, anchored_end: bool) -> NamePattern {
    NamePattern::Glob {
        pattern,
        anchored_start,
        anchored_end,
    }
}

fn parse_pattern(raw: &str) -> Parsed {
    if raw.len() >= 2 && raw.starts_with('/') && raw.ends_with('/') {
        let body = &raw[1..raw.len() - 1];
        if body.is_empty() {
            return Parsed::Error("empty regular expression".into());
        }
        return match compile_name_regex(body) {
            Ok(_) => Parsed::Names(vec![NamePattern::Regex(body.to_owned())]),
            Err(regex::Error::CompiledTooBig(_)) => Parsed::Skip(SkipReason::RegexTooCostly),
            Err(e) => Parsed::Error(format!("invalid regular expression: {e}")),
        };
    }
    if raw.starts_with('/') {
        // `/ads/banner` and the like: a URL path.
        return Parsed::Skip(SkipReason::NotApplicable);
    }
    if raw.chars().any(|c| c.is_whitespace()) {
        return Parsed::Error("space inside a rule".into());
    }
    let (label_anchor, start_anchor, mut core) = if let Some(rest) = raw.strip_prefix("||") {
        (true, false, rest)
    } else if let Some(rest) = raw.strip_prefix('|') {
        (false, true, rest)
    } else {
        (false, false, raw)
    };
    let mut end_anchor = false;
    if let Some(rest) = core.strip_suffix('|') {
        core = rest;
        end_anchor = true;
    }
    if let Some(rest) = core.strip_suffix('^') {
        core = rest;
        end_anchor = true;
    }
    if core.is_empty() {
        if label_anchor || start_anchor || end_anchor {
            return Parsed::Error("anchors without a name".into());
        }
        // An empty pattern with modifiers applies to every name (e.g. `$dnstype=AAAA`).
        return Parsed::Names(vec![glob("*".into(), false, false)]);
    }
    if let Ok(addr) = core.parse::<IpAddr>() {
        let prefix_len = if addr.is_ipv4() { 32 } else { 128 };
        return Parsed::Address(IpNet { addr, prefix_len });
    }
    let host_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*');
    if !core.chars().all(host_chars) {
        if core.is_ascii() {
            // A path, port, query or other URL part: nothing a DNS name can match.
            return Parsed::Skip(SkipReason::NotApplicable);
        }
        return Parsed::Error("non-ASCII character in pattern; write names in IDNA form".into());
    }
    if !core.contains('*') {
        let plain_name = normalize_name(core);
        match (label_anchor, start_anchor, end_anchor, plain_name) {
            (true, _, true, Ok(name)) => return Parsed::Names(vec![NamePattern::Subtree(name)]),
            (false, false, false, Ok(name)) | (false, true, true, Ok(name)) => {
                return Parsed::Names(vec![NamePattern::Exact(name)])
            }
            (_, _, _, Err(why)) if label_anchor || start_anchor => return Parsed::Error(why),
            // Partial names (`|ads`, `.doubleclick.`, `||ads`) fall through to globs.
            _ => {}
        }
    }
    let core = match normalize_glob(core) {
        Ok(core) => core,
        Err(why) => return Parsed::Error(why),
    };
    if label_anchor {
        // `||x` matches where a name, or one of its labels, starts with `x`.
        let mut globs = vec![glob(core.clone(), true, end_anchor)];
        if !core.starts_with('*') {
            globs.push(glob(format!("*.{core}"), true, end_anchor));
        }
        return Parsed::Names(globs);
    }
    Parsed::Names(vec![glob(core, start_anchor, end_anchor)])
}

fn is_cosmetic(rule: &str) -> bool {
    COSMETIC_MARKERS.iter().any(|m| rule.contains(m))
}

/// Parses one AdBlock-syntax line.
pub(crate) fn parse_line(text: &str, line: u32, out: &mut Emitter<'_>) {
    let rule = text.trim();
    if rule.is_empty() || rule.starts_with('!') {
        return;
    }
    if rule.starts_with('[') && rule.ends_with(']') {
        // `[Adblock Plus 2.0]` header.
        return;
    }
    if is_cosmetic(rule) {
        out.skip(SkipReason::NotApplicable);
        return;
    }
    if rule.starts_with('#') {
        return;
    }
    if let Some((first, _)) = rule.split_once(|c: char| c.is_ascii_whitespace()) {
        if hosts::parse_host_address(first).is_some() {
            hosts::parse_line(rule, line, out, false);
            return;
        }
    }
    let (action, body) = match rule.strip_prefix("@@") {
        Some(body) => (Action::Allow, body),
        None => (Action::Block, rule),
    };
    let (pattern, modifiers) = split_modifiers(body);
    let mods = match modifiers.map(parse_modifiers) {
        None => Modifiers::default(),
        Some(Ok(mods)) => mods,
        Some(Err(ModifierError::Unsupported)) => {
            out.skip(SkipReason::UnsupportedModifier);
            return;
        }
        Some(Err(ModifierError::Invalid { field, message })) => {
            out.error(line, Some(&field), message);
            return;
        }
    };
    match parse_pattern(pattern) {
        Parsed::Names(patterns) => {
            for pattern in patterns {
                let source = out.rule_ref(line, rule);
                out.accept(Rule::Name(NameRule {
                    pattern,
                    action,
                    important: mods.important,
                    dnstype: mods.dnstype.clone(),
                    denyallow: mods.denyallow.clone(),
                    badfilter: mods.badfilter,
                    source,
                }));
            }
        }
        Parsed::Address(net) => {
            if mods.any {
                // Modifiers on an address rule have no meaning Embargo could honour.
                out.skip(SkipReason::UnsupportedModifier);
                return;
            }
            let source = out.rule_ref(line, rule);
            out.accept(Rule::Address {
                net,
                action,
                source,
            });
        }
        Parsed::Skip(reason) => out.skip(reason),
        Parsed::Error(message) => out.error(line, Some(pattern), message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse_bytes, Format};
    use crate::LoadReport;

    fn run(input: &str) -> (Vec<Rule>, LoadReport) {
        let mut got = Vec::new();
        let report = parse_bytes(Format::AdBlock, "t", input.as_bytes(), &mut |r| got.push(r));
        (got, report)
    }

    fn one(input: &str) -> NameRule {
        let (got, report) = run(input);
        assert_eq!(report.error_count, 0, "{input}: {:?}", report.errors);
        assert_eq!(got.len(), 1, "{input}: {got:?}");
        match got.into_iter().next() {
            Some(Rule::Name(rule)) => rule,
            other => panic!("{input}: {other:?}"),
        }
    }

    fn pattern(input: &str) -> NamePattern {
        one(input).pattern
    }

    fn skipped(input: &str) -> SkipReason {
        let (got, report) = run(input);
        assert!(got.is_empty(), "{input}: {got:?}");
        assert_eq!(report.error_count, 0, "{input}: {:?}", report.errors);
        let reasons: Vec<_> = report.skipped.keys().copied().collect();
        assert_eq!(reasons.len(), 1, "{input}");
        reasons[0]
    }

    fn error(input: &str) -> String {
        let (got, report) = run(input);
        assert!(got.is_empty(), "{input}: {got:?}");
        assert_eq!(report.error_count, 1, "{input}");
        report.errors[0].message.clone()
    }

    #[test]
    fn basic_patterns() {
        assert_eq!(
            pattern("||Example.org^"),
            NamePattern::Subtree("example.org".into())
        );
        assert_eq!(
            pattern("||example.org|"),
            NamePattern::Subtree("example.org".into())
        );
        assert_eq!(
            pattern("||example.org^|"),
            NamePattern::Subtree("example.org".into())
        );
        assert_eq!(
            pattern("example.org"),
            NamePattern::Exact("example.org".into())
        );
        assert_eq!(
            pattern("|example.org|"),
            NamePattern::Exact("example.org".into())
        );
        assert_eq!(
            pattern("|example"),
            NamePattern::Glob {
                pattern: "example".into(),
                anchored_start: true,
                anchored_end: false
            }
        );
        assert_eq!(
            pattern("ample.org|"),
            NamePattern::Glob {
                pattern: "ample.org".into(),
                anchored_start: false,
                anchored_end: true
            }
        );
        assert_eq!(
            pattern("*ads*"),
            NamePattern::Glob {
                pattern: "*ads*".into(),
                anchored_start: false,
                anchored_end: false
            }
        );
        assert_eq!(
            pattern("||*.example.org^"),
            NamePattern::Glob {
                pattern: "*.example.org".into(),
                anchored_start: true,
                anchored_end: true
            }
        );
    }

    #[test]
    fn label_anchor_with_wildcard_gives_two_globs() {
        let (got, _) = run("||ads*.example.org^");
        let patterns: Vec<_> = got
            .into_iter()
            .map(|r| match r {
                Rule::Name(n) => n.pattern,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            patterns,
            [
                NamePattern::Glob {
                    pattern: "ads*.example.org".into(),
                    anchored_start: true,
                    anchored_end: true
                },
                NamePattern::Glob {
                    pattern: "*.ads*.example.org".into(),
                    anchored_start: true,
                    anchored_end: true
                },
            ]
        );
        // `||example.org` without `^` also matches `example.organic.com`: globs, not a subtree.
        let (got, _) = run("||example.org");
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn exceptions_and_important() {
        let rule = one("@@||example.org^");
        assert_eq!(rule.action, Action::Allow);
        assert!(!rule.important);
        let rule = one("||example.org^$important");
        assert_eq!(rule.action, Action::Block);
        assert!(rule.important);
        let rule = one("@@/example.*/$important");
        assert_eq!(rule.action, Action::Allow);
        assert!(rule.important);
        assert_eq!(rule.pattern, NamePattern::Regex("example.*".into()));
    }

    #[test]
    fn regexes() {
        assert_eq!(
            pattern("/^ad[0-9]+\\./"),
            NamePattern::Regex("^ad[0-9]+\\.".into())
        );
        // `$` inside the regex is not a modifier separator.
        assert_eq!(
            pattern("/example\\.com$/"),
            NamePattern::Regex("example\\.com$".into())
        );
        let rule = one("/example\\.com$/$dnstype=AAAA");
        assert_eq!(rule.pattern, NamePattern::Regex("example\\.com$".into()));
        assert_eq!(rule.dnstype.unwrap().include, [28]);
        assert_eq!(skipped("/(a{100}){100}/"), SkipReason::RegexTooCostly);
        assert!(error("/(unclosed/").contains("invalid regular expression"));
        // Look-around is JavaScript-only: a clear error, not a panic.
        assert!(error("/(?=ads)/").contains("invalid regular expression"));
        assert!(error("//").contains("empty"));
    }

    #[test]
    fn dnstype() {
        let filter = one("||example.org^$dnstype=A|aaaa|TYPE65").dnstype.unwrap();
        assert_eq!((filter.include, filter.exclude), (vec![1, 28, 65], vec![]));
        let filter = one("||example.org^$dnstype=~A|~CNAME").dnstype.unwrap();
        assert_eq!((filter.include, filter.exclude), (vec![], vec![1, 5]));
        // `~A|AAAA` is `AAAA`.
        let filter = one("||example.org^$dnstype=~A|AAAA").dnstype.unwrap();
        assert_eq!((filter.include, filter.exclude), (vec![28], vec![]));
        assert!(error("||example.org^$dnstype=BOGUS").contains("unknown DNS record type"));
        assert!(error("||example.org^$dnstype=").contains("needs a value"));
        assert_eq!(dns_type_number("https"), Some(65));
        assert_eq!(dns_type_number("type"), None);
        assert_eq!(dns_type_number("TYPE99999"), None);
    }

    #[test]
    fn denyallow_and_badfilter() {
        let rule = one("*$denyallow=com|Net");
        assert_eq!(
            rule.pattern,
            NamePattern::Glob {
                pattern: "*".into(),
                anchored_start: false,
                anchored_end: false
            }
        );
        assert_eq!(rule.denyallow, ["com", "net"]);
        let rule = one("||example.org^$denyallow=sub.example.org,important");
        assert_eq!(rule.denyallow, ["sub.example.org"]);
        assert!(rule.important);
        assert!(error("||a.org^$denyallow=~b.org").contains("plain domains"));
        assert!(error("||a.org^$denyallow=*.b.org").contains("plain domains"));
        let rule = one("@@||example.org^$badfilter");
        assert!(rule.badfilter);
        assert_eq!(rule.action, Action::Allow);
        assert!(error("||a.org^$important=1").contains("no value"));
    }

    #[test]
    fn unsupported_modifiers_skip_the_whole_rule() {
        for rule in [
            "||example.org^$client=127.0.0.1",
            "||example.org^$client='Frank\\'s laptop'",
            "||example.org^$ctag=device_pc|device_phone",
            "||example.com^$dnsrewrite=1.2.3.4",
            "||example.org^$important,third-party",
            "||*^$respgeo=US",
            "||example.org^$client=~'Mary\\'s\\, John\\'s'",
            "||ads.example.org^$script,domain=a.com",
            "@@||example.com^$dnsrewrite",
            "$dnstype=AAAA,denyallow=example.org,dnsrewrite=NOERROR;;",
            "||1.2.3.4^$important",
        ] {
            assert_eq!(skipped(rule), SkipReason::UnsupportedModifier, "{rule}");
        }
    }

    #[test]
    fn not_applicable_rules() {
        for rule in [
            "example.org##.banner",
            "##.ad-banner",
            "example.org#@#.banner",
            "example.org#?#div:has(> a)",
            "example.org#$#body { color: red }",
            "example.org#%#window.x=1",
            "example.org$$script[data-src]",
            "||example.org/ads/",
            "||example.org:8080^",
            "/ads/banner.js",
            "||example.org^*?utm=",
        ] {
            assert_eq!(skipped(rule), SkipReason::NotApplicable, "{rule}");
        }
    }

    #[test]
    fn comments_and_hosts_lines() {
        let (got, report) =
            run("! c\n# c\n[Adblock Plus 2.0]\n\n0.0.0.0 a.com b.com\n127.0.0.1 localhost\n");
        assert_eq!(got.len(), 2);
        assert_eq!(report.skipped[&SkipReason::LocalName], 1);
        assert_eq!(report.error_count, 0);
    }

    #[test]
    fn address_patterns() {
        let (got, _) = run("||1.2.3.4^\n@@2001:db8::1\n");
        assert_eq!(got.len(), 2);
        assert!(matches!(
            &got[0],
            Rule::Address {
                net: IpNet { prefix_len: 32, .. },
                action: Action::Block,
                ..
            }
        ));
        assert!(matches!(
            &got[1],
            Rule::Address {
                net: IpNet {
                    prefix_len: 128,
                    ..
                },
                action: Action::Allow,
                ..
            }
        ));
    }

    #[test]
    fn errors_name_the_pattern() {
        let (_, report) = run("ok.com\n||bad..name^\n");
        assert_eq!(report.errors[0].line, 2);
        assert_eq!(report.errors[0].field.as_deref(), Some("||bad..name^"));
        assert!(error("||exa mple.org^").contains("space"));
        assert!(error("||^").contains("anchors"));
        assert!(error("||bücher.de^").contains("non-ASCII"));
        assert!(error("||a.org^$").contains("empty modifier"));
    }

    #[test]
    fn source_keeps_rule_text_and_line() {
        let rule = one("! c\n||a.org^$important\n");
        assert_eq!(rule.source.line, 2);
        assert_eq!(rule.source.rule, "||a.org^$important");
        assert_eq!(&*rule.source.list, "t");
    }
}
