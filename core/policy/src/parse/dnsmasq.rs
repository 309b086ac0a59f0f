//! dnsmasq configuration lines that block names.
//!
//! - `address=/name/[name2/...]ADDRESS`: answer the names and all their subdomains with
//!   ADDRESS. hagezi writes `address=/name/#` (`#` = the null address); an empty ADDRESS means
//!   NXDOMAIN. Any address is taken as a block, as in hosts files.
//! - `server=/name/` and `local=/name/` with no upstream: answer only locally, i.e. NXDOMAIN
//!   for the subtree: a block. `server=/name/1.2.3.4` forwards to another resolver: it does
//!   not block, so it is counted as [`SkipReason::NotApplicable`].
//! - The domain `#` means "every name": it becomes the match-all glob `*`.
//! - Every other dnsmasq option is counted as [`SkipReason::NotApplicable`].

use super::lines::Emitter;
use super::name::normalize_name;
use super::name_rule;
use crate::rules::{Action, NamePattern, SkipReason};

/// Parses one dnsmasq line.
pub(crate) fn parse_line(text: &str, line: u32, out: &mut Emitter<'_>) {
    let content = text.trim();
    if content.is_empty() || content.starts_with('#') {
        return;
    }
    let (option, value) = match content.split_once('=') {
        Some((option, value)) => (option.trim(), value.trim()),
        None => (content, ""),
    };
    let is_server = match option {
        "address" => false,
        "server" | "local" => true,
        _ => {
            out.skip(SkipReason::NotApplicable);
            return;
        }
    };
    // `/name1/name2/target`: names between slashes, the target after the last one.
    let Some(rest) = value.strip_prefix('/') else {
        // `server=1.1.1.1` (a default upstream) or `address=1.2.3.4` without domains.
        out.skip(SkipReason::NotApplicable);
        return;
    };
    let Some(last_slash) = rest.rfind('/') else {
        out.error(line, Some(value), "expected /name/ between slashes");
        return;
    };
    let names = &rest[..last_slash];
    let target = &rest[last_slash + 1..];
    if is_server && !target.is_empty() && target != "#" {
        // Forwarding a domain to a chosen upstream is routing, not blocking.
        out.skip(SkipReason::NotApplicable);
        return;
    }
    if names.is_empty() {
        out.error(line, Some(value), "no name between the slashes");
        return;
    }
    for raw in names.split('/') {
        let pattern = if raw == "#" {
            NamePattern::Glob {
                pattern: "*".into(),
                anchored_start: true,
                anchored_end: true,
            }
        } else {
            match normalize_name(raw) {
                Ok(name) => NamePattern::Subtree(name),
                Err(why) => {
                    out.error(line, Some(raw), why);
                    continue;
                }
            }
        };
        let source = out.rule_ref(line, content);
        out.accept(name_rule(pattern, Action::Block, source));
    }
}

#[cfg(test)]
mod tests {
    use crate::parse::{parse_bytes, Format};
    use crate::rules::{NamePattern, Rule, SkipReason};

    fn run(input: &str) -> (Vec<NamePattern>, crate::LoadReport) {
        let mut got = Vec::new();
        let report = parse_bytes(Format::Dnsmasq, "t", input.as_bytes(), &mut |r| {
            if let Rule::Name(n) = r {
                got.push(n.pattern)
            }
        });
        (got, report)
    }

    #[test]
    fn address_server_local() {
        let (got, report) = run(
            "# c\naddress=/a.com/#\naddress=/b.com/0.0.0.0\naddress=/c.com/\n\
             server=/d.com/\nlocal=/e.com/\naddress=/f.com/g.com/::\n",
        );
        let want: Vec<_> = [
            "a.com", "b.com", "c.com", "d.com", "e.com", "f.com", "g.com",
        ]
        .iter()
        .map(|n| NamePattern::Subtree((*n).into()))
        .collect();
        assert_eq!(got, want);
        assert_eq!(report.error_count, 0);
    }

    #[test]
    fn other_options_and_forwarding_are_not_blocks() {
        let (got, report) =
            run("server=/corp.example/10.0.0.1\nserver=1.1.1.1\ncache-size=1000\ndomain-needed\n");
        assert!(got.is_empty());
        assert_eq!(report.skipped[&SkipReason::NotApplicable], 4);
        assert_eq!(report.error_count, 0);
    }

    #[test]
    fn match_all_and_errors() {
        let (got, report) = run("address=/#/\naddress=/a b/#\naddress=/x.com\n");
        assert_eq!(
            got,
            [NamePattern::Glob {
                pattern: "*".into(),
                anchored_start: true,
                anchored_end: true
            }]
        );
        assert_eq!(report.error_count, 2);
        assert_eq!((report.errors[0].line, report.errors[1].line), (2, 3));
    }
}
