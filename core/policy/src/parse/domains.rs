//! Plain domain lists (one name per line) and `*.name` wildcard lists; `#` comments.
//!
//! Whether a plain name also covers its subdomains is the list's choice, so it is the
//! caller's ([`super::Format::Domains`]): hagezi's lists say "including possible subdomains".
//! A wildcard list's `*.name` covers `name` itself and every name below it: hagezi publishes
//! the same list as `||name^`, `*.name` and spelled-out domains, and the spelled-out form
//! holds every bare `name`, so the three can only agree if `*.name` includes `name`
//! (DNSCrypt-proxy, the main consumer of this syntax, matches it that way too). A bare name in
//! a wildcard list means the same as `*.name`.

use super::lines::Emitter;
use super::name::normalize_name;
use super::name_rule;
use crate::rules::{Action, NamePattern};

/// The rule part of a line, without a `#` comment and surrounding space.
fn content(text: &str) -> &str {
    match text.find('#') {
        Some(at) => text[..at].trim(),
        None => text.trim(),
    }
}

/// Parses one line of a plain domain list.
pub(crate) fn parse_domain_line(text: &str, line: u32, out: &mut Emitter<'_>, subtree: bool) {
    let token = content(text);
    if token.is_empty() {
        return;
    }
    match normalize_name(token) {
        Ok(name) => {
            let pattern = if subtree {
                NamePattern::Subtree(name)
            } else {
                NamePattern::Exact(name)
            };
            let source = out.rule_ref(line, token);
            out.accept(name_rule(pattern, Action::Block, source));
        }
        Err(why) => out.error(line, Some(token), why),
    }
}

/// Parses one line of a `*.name` wildcard list.
pub(crate) fn parse_wildcard_line(text: &str, line: u32, out: &mut Emitter<'_>) {
    let token = content(text);
    if token.is_empty() {
        return;
    }
    let bare = token.strip_prefix("*.").unwrap_or(token);
    match normalize_name(bare) {
        Ok(name) => {
            let source = out.rule_ref(line, token);
            out.accept(name_rule(NamePattern::Subtree(name), Action::Block, source));
        }
        Err(why) => out.error(line, Some(token), why),
    }
}

#[cfg(test)]
mod tests {
    use crate::parse::{parse_bytes, Format};
    use crate::rules::{NamePattern, Rule};

    fn run(format: Format, input: &str) -> (Vec<NamePattern>, crate::LoadReport) {
        let mut got = Vec::new();
        let report = parse_bytes(format, "t", input.as_bytes(), &mut |r| {
            if let Rule::Name(n) = r {
                got.push(n.pattern)
            }
        });
        (got, report)
    }

    #[test]
    fn exact_and_subtree() {
        let input = "# c\nA.com\n\nb.net # note\n";
        let (got, _) = run(Format::Domains { subdomains: false }, input);
        assert_eq!(
            got,
            [
                NamePattern::Exact("a.com".into()),
                NamePattern::Exact("b.net".into())
            ]
        );
        let (got, _) = run(Format::Domains { subdomains: true }, input);
        assert_eq!(
            got,
            [
                NamePattern::Subtree("a.com".into()),
                NamePattern::Subtree("b.net".into())
            ]
        );
    }

    #[test]
    fn wildcard_lines() {
        let (got, report) = run(Format::Wildcard, "*.a.com\nb.com\n*.*.c.com\n*\n");
        assert_eq!(
            got,
            [
                NamePattern::Subtree("a.com".into()),
                NamePattern::Subtree("b.com".into())
            ]
        );
        assert_eq!(report.error_count, 2);
        assert_eq!(report.errors[0].line, 3);
    }

    #[test]
    fn two_names_on_a_line_is_an_error() {
        let (got, report) = run(Format::Domains { subdomains: true }, "a.com b.com\n");
        assert!(got.is_empty());
        assert_eq!(report.errors[0].message, "name contains a space");
    }
}
