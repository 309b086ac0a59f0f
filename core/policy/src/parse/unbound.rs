//! unbound configuration lines that block names.
//!
//! - `local-zone: "name." TYPE`: the zone covers the name and every name below it. Types that
//!   answer locally (`always_nxdomain`, `always_null`, `always_refuse`, `always_deny`, `deny`,
//!   `refuse`, `static`, `redirect`, `inform_deny`) block the subtree. Transparent types
//!   (`transparent`, `typetransparent`, `always_transparent`, `inform`) resolve normally; in a
//!   blocklist they punch a hole in a wider blocked zone, so they become exceptions
//!   ([`Action::Allow`]). `nodefault` only undoes unbound's built-in zones: it is
//!   [`SkipReason::Inert`].
//! - `local-data: "name [TTL] [IN] TYPE DATA"`: a made-up record for exactly that name: a
//!   block of the name (not its subtree).
//! - `server:` and other section headers are ignored; every other option is counted as
//!   [`SkipReason::NotApplicable`].

use super::lines::Emitter;
use super::name::normalize_name;
use super::name_rule;
use crate::rules::{Action, NamePattern, SkipReason};

fn zone_action(kind: &str) -> Option<Option<Action>> {
    Some(match kind {
        "always_nxdomain" | "always_null" | "always_refuse" | "always_deny" | "deny" | "refuse"
        | "static" | "redirect" | "inform_deny" | "inform_redirect" => Some(Action::Block),
        "transparent" | "typetransparent" | "always_transparent" | "inform" => Some(Action::Allow),
        "nodefault" => None,
        _ => return None,
    })
}

/// Removes one pair of surrounding double quotes, if present.
fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

/// Parses one unbound line.
pub(crate) fn parse_line(text: &str, line: u32, out: &mut Emitter<'_>) {
    let content = text.trim();
    if content.is_empty() || content.starts_with('#') {
        return;
    }
    let Some((option, value)) = content.split_once(':') else {
        out.error(line, Some(content), "expected `option: value`");
        return;
    };
    let value = value.trim();
    // Strip an inline comment after the value; names cannot hold `#`.
    let value = match value.find('#') {
        Some(at) => value[..at].trim(),
        None => value,
    };
    match option.trim() {
        "local-zone" => {
            let (zone, kind) = match value.rsplit_once(|c: char| c.is_ascii_whitespace()) {
                Some((zone, kind)) => (unquote(zone.trim()), kind),
                None => {
                    out.error(line, Some(value), "local-zone needs a zone and a type");
                    return;
                }
            };
            let Some(action) = zone_action(kind) else {
                out.error(line, Some(kind), "unknown local-zone type");
                return;
            };
            let Some(action) = action else {
                out.skip(SkipReason::Inert);
                return;
            };
            match normalize_name(zone) {
                Ok(name) => {
                    let source = out.rule_ref(line, content);
                    out.accept(name_rule(NamePattern::Subtree(name), action, source));
                }
                Err(why) => out.error(line, Some(zone), why),
            }
        }
        "local-data" => {
            let record = unquote(value);
            let Some(owner) = record.split_ascii_whitespace().next() else {
                out.error(line, Some(value), "local-data needs a record");
                return;
            };
            match normalize_name(owner) {
                Ok(name) => {
                    let source = out.rule_ref(line, content);
                    out.accept(name_rule(NamePattern::Exact(name), Action::Block, source));
                }
                Err(why) => out.error(line, Some(owner), why),
            }
        }
        // Section headers carry no rule.
        _ if value.is_empty() => {}
        _ => out.skip(SkipReason::NotApplicable),
    }
}

#[cfg(test)]
mod tests {
    use crate::parse::{parse_bytes, Format};
    use crate::rules::{Action, NamePattern, Rule, SkipReason};

    fn run(input: &str) -> (Vec<(NamePattern, Action)>, crate::LoadReport) {
        let mut got = Vec::new();
        let report = parse_bytes(Format::Unbound, "t", input.as_bytes(), &mut |r| {
            if let Rule::Name(n) = r {
                got.push((n.pattern, n.action))
            }
        });
        (got, report)
    }

    #[test]
    fn zones_and_data() {
        let (got, report) = run(
            "server:\nlocal-zone: \"a.com.\" always_null\nlocal-zone: b.com static\n\
             local-zone: \"ok.a.com.\" transparent\nlocal-data: \"c.com. 60 IN A 0.0.0.0\"\n\
             local-zone: \"d.com\" nodefault\nverbosity: 1\n",
        );
        assert_eq!(
            got,
            [
                (NamePattern::Subtree("a.com".into()), Action::Block),
                (NamePattern::Subtree("b.com".into()), Action::Block),
                (NamePattern::Subtree("ok.a.com".into()), Action::Allow),
                (NamePattern::Exact("c.com".into()), Action::Block),
            ]
        );
        assert_eq!(report.skipped[&SkipReason::Inert], 1);
        assert_eq!(report.skipped[&SkipReason::NotApplicable], 1);
        assert_eq!(report.error_count, 0);
    }

    #[test]
    fn errors() {
        let (got, report) =
            run("local-zone: \"a.com.\" sideways\nlocal-zone: \"a b.\" static\nlocal-zone:x\n");
        assert!(got.is_empty());
        assert_eq!(report.error_count, 3);
        assert_eq!(report.errors[0].field.as_deref(), Some("sideways"));
    }
}
