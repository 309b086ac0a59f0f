//! Embargo's own rule format, for the built-in default and for user rule files.
//!
//! One statement per line. `#` starts a comment when it begins the line or follows a space;
//! a trailing `# source: ...` note is the customary way to say where an entry comes from, and
//! it is kept in the rule text ([`crate::RuleRef::rule`]) so that a decision can show it.
//!
//! ```text
//! # Names
//! tiktokv.com                  # block tiktokv.com and every name below it
//! =log.example.com             # block exactly this name
//! @@help.tiktokv.com           # exception: allow this name and its subtree
//! @@=www.example.com           # exception for exactly this name
//!
//! # Name patterns: `*` matches any run (possibly empty) of characters inside one label,
//! # never a dot; labels right of the last `*` label (at least two) are fixed
//! log*.tiktokv.com             # log.tiktokv.com, log15.tiktokv.com, a.log15.tiktokv.com
//! *-normal*.tiktokv.com        # api16-normal-c.tiktokv.com and its subtree
//! log*-*.byteoversea.com       # several stars in one label
//! *.*.tiktokv.com              # any name at least two labels below tiktokv.com
//! =mon-*.tiktokv.com           # exactly mon-va.tiktokv.com, not a.mon-va.tiktokv.com
//! @@log*.us.tiktokv.com        # exceptions take patterns too
//! /^ad[0-9]+\./                # a regular expression over the whole name (AdBlock's `/re/`)
//!
//! # Addresses (v4 or v6, bare address = /32 or /128; host bits must be zero)
//! 203.0.113.0/24
//! 2001:db8::/32
//! 198.51.100.7
//!
//! # Networks by autonomous system, owner or country
//! AS45090                      # every address the AS announces
//! owner: ByteDance             # every endpoint whose owner is named so (case-insensitive)
//! country: CN                  # every address located in this ISO 3166-1 alpha-2 country
//!
//! # Exceptions of any of the above: `@@` (as in AdBlock syntax) or the word `allow`
//! @@AS45090
//! allow country: SG
//! allow 203.0.113.7
//! allow owner: Example Corp
//!
//! # Facts, not decisions
//! owns: ByteDance = tiktokv.com, byteoversea.com    # these domains (and subtrees) belong to ByteDance
//! app-owner: com.zhiliaoapp.musically = ByteDance   # this app belongs to ByteDance (first-party exception)
//! ```
//!
//! `owns:` and `app-owner:` emit [`Rule::DomainOwner`] and [`Rule::AppOwner`]; they never
//! block anything by themselves. An owner's key and display name are the same string here.
//! Plain IP/CIDR lists (one per line) are valid files in this format.

use std::net::IpAddr;

use super::lines::Emitter;
use super::name::{normalize_label_pattern, normalize_name};
use super::{compile_name_regex, name_rule};
use crate::rules::{Action, AppOwner, DomainOwner, IpNet, NamePattern, Rule};

/// Longest owner name accepted. Registry organisation names run to ~100 characters.
const MAX_OWNER_LEN: usize = 200;
/// Longest app id accepted (Android package names are limited to 255 characters).
const MAX_APP_LEN: usize = 255;

/// Splits off a comment: `#` at the start or after whitespace.
fn strip_comment(text: &str) -> &str {
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &text[..i];
        }
    }
    text
}

fn parse_owner(value: &str) -> Result<String, String> {
    let owner = value.trim();
    if owner.is_empty() {
        return Err("empty owner name".into());
    }
    if owner.len() > MAX_OWNER_LEN {
        return Err(format!("owner name longer than {MAX_OWNER_LEN} bytes"));
    }
    if owner.chars().any(char::is_control) {
        return Err("control character in owner name".into());
    }
    Ok(owner.to_owned())
}

/// Parses `ADDR` or `ADDR/LEN`.
pub(crate) fn parse_net(text: &str) -> Result<IpNet, String> {
    let (addr_text, len_text) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: IpAddr = addr_text
        .parse()
        .map_err(|_| format!("{addr_text:?} is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix_len = match len_text {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max && !l.starts_with('+') => n,
            _ => return Err(format!("prefix length {l:?} is not 0..={max}")),
        },
    };
    let masked = mask(addr, prefix_len);
    if masked != addr {
        return Err(format!(
            "host bits set after /{prefix_len}; did you mean {masked}/{prefix_len}?"
        ));
    }
    Ok(IpNet { addr, prefix_len })
}

fn mask(addr: IpAddr, prefix_len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = u32::MAX
                .checked_shl(32 - u32::from(prefix_len))
                .unwrap_or(0);
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = u128::MAX
                .checked_shl(128 - u32::from(prefix_len))
                .unwrap_or(0);
            IpAddr::V6((bits & keep).into())
        }
    }
}

fn parse_asn(text: &str) -> Option<Result<u32, String>> {
    let digits = text
        .get(..2)
        .filter(|p| p.eq_ignore_ascii_case("as"))
        .map(|_| &text[2..])?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match digits.parse::<u32>() {
        Ok(0) => Err("AS0 is reserved and announces nothing".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("AS number larger than 4294967295".into()),
    })
}

fn parse_country(value: &str) -> Result<[u8; 2], String> {
    let code = value.trim().as_bytes();
    match code {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Ok([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => Err("a country is a two-letter ISO 3166-1 code, e.g. CN".into()),
    }
}

/// Parses one line of the native format.
pub(crate) fn parse_line(text: &str, line: u32, out: &mut Emitter<'_>) {
    let statement = strip_comment(text).trim();
    if statement.is_empty() {
        return;
    }
    // The rule text keeps the `# source:` note (trimmed line), for explanations.
    let rule_text = text.trim();
    let (action, body) = if let Some(rest) = statement.strip_prefix("@@") {
        (Action::Allow, rest.trim_start())
    } else if let Some(rest) = statement
        .strip_prefix("allow")
        .filter(|r| r.starts_with(|c: char| c.is_ascii_whitespace()))
    {
        (Action::Allow, rest.trim_start())
    } else {
        (Action::Block, statement)
    };
    if body.is_empty() {
        out.error(line, Some(statement), "exception without a rule");
        return;
    }

    if body.len() >= 2 && body.starts_with('/') && body.ends_with('/') {
        let regex = &body[1..body.len() - 1];
        match compile_name_regex(regex) {
            _ if regex.is_empty() => out.error(line, Some(body), "empty regular expression"),
            Ok(_) => {
                let source = out.rule_ref(line, rule_text);
                out.accept(name_rule(
                    NamePattern::Regex(regex.to_owned()),
                    action,
                    source,
                ));
            }
            Err(regex::Error::CompiledTooBig(limit)) => out.error(
                line,
                Some(body),
                format!("regular expression compiles to more than {limit} bytes"),
            ),
            Err(e) => out.error(line, Some(body), format!("invalid regular expression: {e}")),
        }
        return;
    }
    if let Ok(net) = parse_net(body) {
        let source = out.rule_ref(line, rule_text);
        out.accept(Rule::Address {
            net,
            action,
            source,
        });
        return;
    }
    if let Some((keyword, value)) = body.split_once(':') {
        let keyword = keyword.trim();
        // IPv6 addresses hold `:` too; keywords are letters and `-` only.
        if keyword
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'-')
            && !keyword.is_empty()
        {
            parse_keyword(keyword, value, action, line, rule_text, out);
            return;
        }
    }

    if body.contains(|c: char| c.is_ascii_whitespace()) {
        out.error(line, Some(body), "one rule per line: unexpected space");
        return;
    }
    if body.contains(['/', ':']) || body.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // Looks like an address or network, but is not a valid one.
        let why = parse_net(body).err().unwrap_or_default();
        out.error(line, Some(body), why);
        return;
    }
    if let Some(asn) = parse_asn(body) {
        match asn {
            Ok(asn) => {
                let source = out.rule_ref(line, rule_text);
                out.accept(Rule::Asn {
                    asn,
                    action,
                    source,
                });
            }
            Err(why) => out.error(line, Some(body), why),
        }
        return;
    }
    let (exact, name) = match body.strip_prefix('=') {
        Some(name) => (true, name),
        None => (false, body),
    };
    if name.contains('*') {
        match normalize_label_pattern(name) {
            Ok(pattern) => {
                let source = out.rule_ref(line, rule_text);
                out.accept(name_rule(
                    NamePattern::Labels { pattern, exact },
                    action,
                    source,
                ));
            }
            Err(why) => out.error(line, Some(body), why),
        }
        return;
    }
    match normalize_name(name) {
        Ok(name) => {
            let pattern = if exact {
                NamePattern::Exact(name)
            } else {
                NamePattern::Subtree(name)
            };
            let source = out.rule_ref(line, rule_text);
            out.accept(name_rule(pattern, action, source));
        }
        Err(why) => out.error(line, Some(body), why),
    }
}

fn parse_keyword(
    keyword: &str,
    value: &str,
    action: Action,
    line: u32,
    rule_text: &str,
    out: &mut Emitter<'_>,
) {
    let fact = matches!(keyword, "owns" | "app-owner");
    if fact && action == Action::Allow {
        out.error(
            line,
            Some(keyword),
            "facts (owns:, app-owner:) cannot be exceptions",
        );
        return;
    }
    match keyword {
        "owner" => match parse_owner(value) {
            Ok(owner) => {
                let source = out.rule_ref(line, rule_text);
                out.accept(Rule::OwnerName {
                    owner,
                    action,
                    source,
                });
            }
            Err(why) => out.error(line, Some(value.trim()), why),
        },
        "country" => match parse_country(value) {
            Ok(code) => {
                let source = out.rule_ref(line, rule_text);
                out.accept(Rule::Country {
                    code,
                    action,
                    source,
                });
            }
            Err(why) => out.error(line, Some(value.trim()), why),
        },
        "owns" => {
            let Some((owner, domains)) = value.split_once('=') else {
                out.error(
                    line,
                    Some(value.trim()),
                    "expected `owns: OWNER = domain, ...`",
                );
                return;
            };
            let owner = match parse_owner(owner) {
                Ok(owner) => owner,
                Err(why) => return out.error(line, Some(owner.trim()), why),
            };
            let mut any = false;
            for domain in domains.split([',', ' ', '\t']).filter(|d| !d.is_empty()) {
                any = true;
                match normalize_name(domain) {
                    Ok(domain) => {
                        let source = out.rule_ref(line, rule_text);
                        out.accept(Rule::DomainOwner(DomainOwner {
                            domain,
                            owner: owner.clone(),
                            display_name: owner.clone(),
                            source,
                        }));
                    }
                    Err(why) => out.error(line, Some(domain), why),
                }
            }
            if !any {
                out.error(line, Some(value.trim()), "no domain after `=`");
            }
        }
        "app-owner" => {
            let Some((app, owner)) = value.split_once('=') else {
                out.error(
                    line,
                    Some(value.trim()),
                    "expected `app-owner: APP = OWNER`",
                );
                return;
            };
            let app = app.trim();
            if app.is_empty()
                || app.len() > MAX_APP_LEN
                || app.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                out.error(
                    line,
                    Some(app),
                    "an app id is 1 to 255 characters without spaces",
                );
                return;
            }
            match parse_owner(owner) {
                Ok(owner) => {
                    let source = out.rule_ref(line, rule_text);
                    out.accept(Rule::AppOwner(AppOwner {
                        app: app.to_owned(),
                        owner,
                        source,
                    }));
                }
                Err(why) => out.error(line, Some(owner.trim()), why),
            }
        }
        _ => out.error(
            line,
            Some(keyword),
            "unknown keyword (known: owner, country, owns, app-owner)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse_bytes, Format};
    use crate::LoadReport;

    fn run(input: &str) -> (Vec<Rule>, LoadReport) {
        let mut got = Vec::new();
        let report = parse_bytes(Format::Embargo, "builtin", input.as_bytes(), &mut |r| {
            got.push(r)
        });
        (got, report)
    }

    fn one(input: &str) -> Rule {
        let (got, report) = run(input);
        assert_eq!(report.error_count, 0, "{input}: {:?}", report.errors);
        assert_eq!(got.len(), 1, "{input}");
        got.into_iter().next().unwrap()
    }

    fn err(input: &str) -> String {
        let (got, report) = run(input);
        assert!(got.is_empty(), "{input}: {got:?}");
        assert_eq!(report.error_count, 1, "{input}");
        report.errors[0].message.clone()
    }

    #[test]
    fn names() {
        let Rule::Name(rule) = one("TikTokv.com  # source: hagezi native.tiktok") else {
            panic!()
        };
        assert_eq!(rule.pattern, NamePattern::Subtree("tiktokv.com".into()));
        assert_eq!(rule.action, Action::Block);
        assert_eq!(
            rule.source.rule,
            "TikTokv.com  # source: hagezi native.tiktok"
        );
        let Rule::Name(rule) = one("=log.example.com") else {
            panic!()
        };
        assert_eq!(rule.pattern, NamePattern::Exact("log.example.com".into()));
        let Rule::Name(rule) = one("@@help.example.com") else {
            panic!()
        };
        assert_eq!(rule.action, Action::Allow);
        assert_eq!(
            rule.pattern,
            NamePattern::Subtree("help.example.com".into())
        );
        let Rule::Name(rule) = one("@@=www.example.com") else {
            panic!()
        };
        assert_eq!(rule.pattern, NamePattern::Exact("www.example.com".into()));
        let Rule::Name(rule) = one("allow example.org") else {
            panic!()
        };
        assert_eq!(rule.action, Action::Allow);
        // `allowed.com` is a name, not the word `allow`.
        let Rule::Name(rule) = one("allowed.com") else {
            panic!()
        };
        assert_eq!(rule.pattern, NamePattern::Subtree("allowed.com".into()));
        assert_eq!(rule.action, Action::Block);
    }

    #[test]
    fn label_patterns() {
        let labels = |input: &str| match one(input) {
            Rule::Name(rule) => match rule.pattern {
                NamePattern::Labels { pattern, exact } => (pattern, exact, rule.action),
                other => panic!("{input}: {other:?}"),
            },
            other => panic!("{input}: {other:?}"),
        };
        let block = |p: &str, exact| (p.to_owned(), exact, Action::Block);
        assert_eq!(labels("log*.tiktokv.com"), block("log*.tiktokv.com", false));
        assert_eq!(
            labels("Mon-*.TikTokv.com."),
            block("mon-*.tiktokv.com", false)
        );
        assert_eq!(
            labels("*-normal*.tiktokv.com"),
            block("*-normal*.tiktokv.com", false)
        );
        assert_eq!(
            labels("log*-*.byteoversea.com"),
            block("log*-*.byteoversea.com", false)
        );
        assert_eq!(labels("*.tiktokv.com"), block("*.tiktokv.com", false));
        assert_eq!(
            labels("a*.b.*c.tiktokv.com # source: x"),
            block("a*.b.*c.tiktokv.com", false)
        );
        assert_eq!(labels("=log*.tiktokv.com"), block("log*.tiktokv.com", true));
        assert_eq!(
            labels("@@log*.us.tiktokv.com"),
            ("log*.us.tiktokv.com".into(), false, Action::Allow)
        );
        assert_eq!(
            labels("allow =mon-*.tiktokv.com"),
            ("mon-*.tiktokv.com".into(), true, Action::Allow)
        );
        let Rule::Name(rule) = one("log*.tiktokv.com  # source: issue 15") else {
            panic!()
        };
        assert_eq!(rule.source.rule, "log*.tiktokv.com  # source: issue 15");
    }

    #[test]
    fn label_pattern_errors_name_the_line() {
        let (got, report) = run("tiktokv.com\nlog*.com\n");
        assert_eq!(got.len(), 1);
        assert_eq!(report.error_count, 1);
        assert_eq!(report.errors[0].line, 2);
        assert!(
            report.errors[0].message.contains("two labels"),
            "{:?}",
            report.errors
        );
        for bad in ["log.tiktokv.c*m", "log.tikto*v.com", "*.com", "*"] {
            assert!(err(bad).contains("two labels without `*`"), "{bad}");
        }
        assert!(err("lo**g.tiktokv.com").contains("`**`"));
        assert!(err("a..log*.tiktokv.com").contains("empty label"));
        assert!(err(".log*.tiktokv.com").contains("empty label"));
        assert!(err("log*!.tiktokv.com").contains("not allowed"));
    }

    #[test]
    fn regexes() {
        let Rule::Name(rule) = one(r"/^ad[0-9]+\./") else {
            panic!()
        };
        assert_eq!(rule.pattern, NamePattern::Regex(r"^ad[0-9]+\.".into()));
        assert_eq!(rule.action, Action::Block);
        let Rule::Name(rule) = one(r"@@/^ok\.example\.com$/  # source: me") else {
            panic!()
        };
        assert_eq!(rule.action, Action::Allow);
        assert_eq!(
            rule.pattern,
            NamePattern::Regex(r"^ok\.example\.com$".into())
        );
        assert!(err("//").contains("empty regular expression"));
        assert!(err("/a(/").contains("invalid regular expression"));
        assert!(err("/(a{100}){100}/").contains("more than"));
    }

    #[test]
    fn addresses() {
        let Rule::Address { net, action, .. } = one("203.0.113.0/24") else {
            panic!()
        };
        assert_eq!(
            (net.addr.to_string(), net.prefix_len, action),
            ("203.0.113.0".into(), 24, Action::Block)
        );
        let Rule::Address { net, .. } = one("2001:db8::/32") else {
            panic!()
        };
        assert_eq!(net.prefix_len, 32);
        let Rule::Address { net, .. } = one("198.51.100.7") else {
            panic!()
        };
        assert_eq!(net.prefix_len, 32);
        let Rule::Address { net, action, .. } = one("allow ::1") else {
            panic!()
        };
        assert_eq!((net.prefix_len, action), (128, Action::Allow));
        let Rule::Address { net, .. } = one("0.0.0.0/0") else {
            panic!()
        };
        assert_eq!(net.prefix_len, 0);
        assert!(err("10.0.0.1/8").contains("did you mean 10.0.0.0/8"));
        assert!(err("10.0.0.0/33").contains("prefix length"));
        assert!(err("2001:db8::/129").contains("prefix length"));
        assert!(err("1.2.3.999").contains("not an IP address"));
    }

    #[test]
    fn networks_owners_countries() {
        let Rule::Address { net, .. } = one("fe80::1") else {
            panic!()
        };
        assert_eq!(net.prefix_len, 128);
        assert!(matches!(
            one("AS45090"),
            Rule::Asn {
                asn: 45090,
                action: Action::Block,
                ..
            }
        ));
        assert!(matches!(
            one("@@as138699"),
            Rule::Asn {
                asn: 138699,
                action: Action::Allow,
                ..
            }
        ));
        assert!(err("AS0").contains("reserved"));
        assert!(err("AS99999999999").contains("larger"));
        let Rule::OwnerName { owner, action, .. } = one("owner: ByteDance Ltd.  # source: x")
        else {
            panic!()
        };
        assert_eq!((owner.as_str(), action), ("ByteDance Ltd.", Action::Block));
        assert!(matches!(
            one("allow owner: Example"),
            Rule::OwnerName {
                action: Action::Allow,
                ..
            }
        ));
        assert!(matches!(
            one("country: cn"),
            Rule::Country {
                code: [b'C', b'N'],
                ..
            }
        ));
        assert!(matches!(
            one("@@country: SG"),
            Rule::Country {
                action: Action::Allow,
                ..
            }
        ));
        assert!(err("country: CHN").contains("two-letter"));
        assert!(err("owner:   ").contains("empty owner"));
        assert!(err("colour: red").contains("unknown keyword"));
    }

    #[test]
    fn facts() {
        let (got, report) = run("owns: ByteDance = tiktokv.com, byteoversea.com\n");
        assert_eq!(report.error_count, 0);
        assert_eq!(got.len(), 2);
        let Rule::DomainOwner(fact) = &got[1] else {
            panic!()
        };
        assert_eq!(
            (fact.domain.as_str(), fact.owner.as_str()),
            ("byteoversea.com", "ByteDance")
        );
        let Rule::AppOwner(app) = one("app-owner: com.zhiliaoapp.musically = ByteDance") else {
            panic!()
        };
        assert_eq!(
            (app.app.as_str(), app.owner.as_str()),
            ("com.zhiliaoapp.musically", "ByteDance")
        );
        assert!(err("@@owns: X = a.com").contains("cannot be exceptions"));
        assert!(err("owns: X").contains("expected"));
        assert!(err("owns: X = ").contains("no domain"));
        assert!(err("app-owner: a b = X").contains("app id"));
    }

    #[test]
    fn errors_and_comments() {
        let (got, report) = run("# only a comment\n\n   # indented\n");
        assert!(got.is_empty());
        assert_eq!(report.error_count, 0);
        assert!(err("two names.com").contains("one rule per line"));
        assert!(err("@@").contains("without a rule"));
        assert!(err("bad_chars!.com").contains("not allowed"));
    }
}
