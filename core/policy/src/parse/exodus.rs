//! Exodus Privacy's tracker list, `trackers.json` (ETIP's export, the same shape as the
//! `/api/trackers` answer): `{"trackers": {"1": {"name": "Teemo", "network_signature":
//! "databerries\\.com", "code_signature": "com.databerries.", "website": "...", "categories":
//! ["Analytics"], ...}, ...}}`.
//!
//! A network signature is a regular expression that Exodus searches for in host names, its
//! alternatives joined by `|`. Each alternative that only spells a domain (`\.?name\.tld`,
//! `name\.tld`, optionally after `^`, `.*\.` or `(.*\.)?` and before `$`) becomes a block of
//! that domain's subtree, with a [`Rule::DomainOwner`] fact naming the tracker (Exodus names
//! no company, so the tracker's name, `Google AdMob`, stands for its owner); an address
//! becomes an address block. Any other alternative is kept as a [`NamePattern::Regex`] when it
//! compiles within the regex budget ([`compile_name_regex`]), else it is skipped as
//! [`SkipReason::RegexTooCostly`]. Alternatives that cannot name a host (no dot, a URL path)
//! are [`SkipReason::NotApplicable`]; a tracker with no network signature (one known by its
//! code only) is [`SkipReason::Inert`].
//!
//! The tracker's categories (`Advertisement`, `Analytics`, ...) become a [`Rule::Category`]
//! over its lines, so a decision by its rules says them. A file that puts several trackers on
//! one line (compact JSON) gives those trackers no category: lines are the only key a decision
//! keeps.

use std::collections::HashSet;
use std::io::BufRead;
use std::net::IpAddr;

use serde::Deserialize;

use super::adblock::compile_name_regex;
use super::disconnect::emit_category;
use super::json::{from_slice, read_capped, KeyLocator, Ordered};
use super::lines::Emitter;
use super::name::normalize_name;
use super::name_rule;
use crate::rules::{Action, DomainOwner, IpNet, NamePattern, Rule, SkipReason};

#[derive(Deserialize)]
struct Tracker {
    name: String,
    #[serde(default)]
    network_signature: Option<String>,
    #[serde(default)]
    categories: Vec<String>,
}

#[derive(Deserialize)]
struct Trackers {
    trackers: Ordered<Tracker>,
}

/// What one alternative of a network signature is.
#[derive(Debug, PartialEq, Eq)]
enum Signature {
    /// A domain and its subtree.
    Domain(String),
    Address(IpAddr),
    /// Anything else, kept as a regex.
    Regex,
    /// Cannot name a host.
    NotApplicable,
}

/// Reads one alternative (no top-level `|`) of a network signature.
fn classify(alternative: &str) -> Signature {
    let mut s = alternative.trim();
    s = s.strip_prefix('^').unwrap_or(s);
    s = s.strip_suffix('$').unwrap_or(s);
    for prefix in [
        "(.*\\.)?", "(.+\\.)?", ".*\\.", ".+\\.", "\\.?", "\\.", ".*",
    ] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest;
            break;
        }
    }
    if s.contains('/') {
        return Signature::NotApplicable;
    }
    // `\.` is a literal dot; a bare `.` (any character) is almost always meant as one too.
    let literal = s.replace("\\.", ".").replace("\\-", "-");
    if literal
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        let literal = literal.trim_matches('.');
        if let Ok(addr) = literal.parse::<IpAddr>() {
            return Signature::Address(addr);
        }
        if !literal.contains('.') {
            return Signature::NotApplicable;
        }
        return match normalize_name(literal) {
            Ok(name) => Signature::Domain(name),
            Err(_) => Signature::NotApplicable,
        };
    }
    if !alternative.contains('.') {
        return Signature::NotApplicable;
    }
    Signature::Regex
}

/// Splits a signature at its top-level `|` (not inside parentheses or brackets).
fn alternatives(signature: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut escaped, mut start) = (0i32, false, 0);
    for (i, c) in signature.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            '|' if depth == 0 => {
                out.push(&signature[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&signature[start..]);
    out
}

/// Parses a `trackers.json`.
pub(crate) fn parse<R: BufRead>(input: R, out: &mut Emitter<'_>) {
    let Some(bytes) = read_capped(input, out) else {
        return;
    };
    let Some(file) = from_slice::<Trackers>(&bytes, out) else {
        return;
    };
    let mut locate = KeyLocator::new(&bytes);
    locate.line_of("trackers");
    let mut lines = Vec::with_capacity(file.trackers.0.len());
    let mut blocked: HashSet<String> = HashSet::new();
    let mut owned: HashSet<String> = HashSet::new();
    for (id, tracker) in &file.trackers.0 {
        let line = locate.line_of(id).max(1);
        lines.push(line);
        let signature = tracker.network_signature.as_deref().unwrap_or("").trim();
        if signature.is_empty() {
            out.skip(SkipReason::Inert);
            continue;
        }
        locate.line_of("network_signature");
        for alternative in alternatives(signature) {
            if alternative.trim().is_empty() {
                continue;
            }
            let text = format!("{}: {alternative}", tracker.name);
            match classify(alternative) {
                Signature::Domain(domain) => {
                    if owned.insert(domain.clone()) {
                        let source = out.rule_ref(line, &text);
                        out.accept(Rule::DomainOwner(DomainOwner {
                            domain: domain.clone(),
                            owner: tracker.name.clone(),
                            display_name: tracker.name.clone(),
                            source,
                        }));
                    }
                    if blocked.insert(domain.clone()) {
                        let source = out.rule_ref(line, &text);
                        out.accept(name_rule(
                            NamePattern::Subtree(domain),
                            Action::Block,
                            source,
                        ));
                    }
                }
                Signature::Address(addr) => {
                    let source = out.rule_ref(line, &text);
                    out.accept(Rule::Address {
                        net: IpNet {
                            addr,
                            prefix_len: if addr.is_ipv4() { 32 } else { 128 },
                        },
                        action: Action::Block,
                        source,
                    });
                }
                Signature::Regex => match compile_name_regex(alternative) {
                    Ok(_) => {
                        let source = out.rule_ref(line, &text);
                        out.accept(name_rule(
                            NamePattern::Regex(alternative.to_owned()),
                            Action::Block,
                            source,
                        ));
                    }
                    Err(regex::Error::CompiledTooBig(_)) => out.skip(SkipReason::RegexTooCostly),
                    Err(e) => out.error(line, Some(alternative), format!("invalid regex: {e}")),
                },
                Signature::NotApplicable => out.skip(SkipReason::NotApplicable),
            }
        }
    }
    // A category for each tracker alone on its lines.
    for (i, (_, tracker)) in file.trackers.0.iter().enumerate() {
        if tracker.categories.is_empty() {
            continue;
        }
        let line = lines[i];
        let after_previous = i == 0 || lines[i - 1] < line;
        let next = lines.get(i + 1).copied();
        if !after_previous || next.is_some_and(|n| n <= line) {
            continue;
        }
        let last = next.map_or(u32::MAX, |n| n - 1);
        emit_category(out, &tracker.categories.join(", "), line, last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_shapes() {
        let d = |s: &str| Signature::Domain(s.into());
        assert_eq!(classify("\\.facebook\\.com"), d("facebook.com"));
        assert_eq!(classify("\\.?adjust\\.com"), d("adjust.com"));
        assert_eq!(classify("app.adjust.com"), d("app.adjust.com"));
        assert_eq!(classify("^ads\\.example\\.com$"), d("ads.example.com"));
        assert_eq!(classify(".*\\.example\\.net"), d("example.net"));
        assert_eq!(classify("(.*\\.)?example\\.org"), d("example.org"));
        assert_eq!(
            classify("100\\.69\\.165\\.28"),
            Signature::Address("100.69.165.28".parse().unwrap())
        );
        assert_eq!(classify("ads[0-9]*\\.example\\.com"), Signature::Regex);
        assert_eq!(classify("adjust"), Signature::NotApplicable);
        assert_eq!(classify("example\\.com/sdk"), Signature::NotApplicable);
        assert_eq!(
            alternatives("a\\.com|b\\.(net|org)|c\\.com"),
            ["a\\.com", "b\\.(net|org)", "c\\.com"]
        );
    }
}
