//! `/etc/hosts` syntax: `ADDRESS NAME [NAME...]`, `#` comments (full-line or inline).
//!
//! Every listed name is blocked, whatever the address: `0.0.0.0` and `127.0.0.1` are the usual
//! sinks, and a list that maps a name to some other address is still saying "not the real
//! one" (AdGuard's Private DNS blocks such entries too). A hosts entry covers exactly its name,
//! not its subdomains, unless the caller chose [`super::Format::HostsSubtree`] for a list whose
//! author says subdomains are meant.
//!
//! The housekeeping entries at the top of most hosts files (`localhost`, `broadcasthost`,
//! `ip6-allnodes`, `0.0.0.0` ...) are counted as [`SkipReason::LocalName`], never blocked.

use std::net::IpAddr;

use super::lines::Emitter;
use super::name::normalize_name;
use super::name_rule;
use crate::rules::{Action, NamePattern, SkipReason};

/// Names that hosts files map for the machine's own use; blocking them would break it.
const LOCAL_NAMES: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
];

/// Parses the address of a hosts line; IPv6 zone suffixes (`fe80::1%lo0`) are allowed.
pub(crate) fn parse_host_address(token: &str) -> Option<IpAddr> {
    let without_zone = match token.split_once('%') {
        Some((addr, zone)) if !zone.is_empty() => addr,
        Some(_) => return None,
        None => token,
    };
    without_zone.parse().ok()
}

fn is_local_name(name: &str) -> bool {
    LOCAL_NAMES
        .iter()
        .any(|local| local.eq_ignore_ascii_case(name))
        || name.parse::<IpAddr>().is_ok()
}

/// Parses one hosts-syntax line (`#` comments are stripped here).
pub(crate) fn parse_line(text: &str, line: u32, out: &mut Emitter<'_>, subtree: bool) {
    let content = match text.find('#') {
        Some(at) => &text[..at],
        None => text,
    };
    let content = content.trim();
    if content.is_empty() {
        return;
    }
    let mut tokens = content.split_ascii_whitespace();
    let Some(address) = tokens.next() else {
        return;
    };
    if parse_host_address(address).is_none() {
        out.error(
            line,
            Some(address),
            "expected an IP address at the start of a hosts line",
        );
        return;
    }
    let mut any_name = false;
    for token in tokens {
        any_name = true;
        if is_local_name(token.strip_suffix('.').unwrap_or(token)) {
            out.skip(SkipReason::LocalName);
            continue;
        }
        match normalize_name(token) {
            Ok(name) => {
                let pattern = if subtree {
                    NamePattern::Subtree(name)
                } else {
                    NamePattern::Exact(name)
                };
                let source = out.rule_ref(line, content);
                out.accept(name_rule(pattern, Action::Block, source));
            }
            Err(why) => out.error(line, Some(token), why),
        }
    }
    if !any_name {
        out.error(line, Some(address), "address without a host name");
    }
}

#[cfg(test)]
mod tests {
    use crate::parse::{parse_bytes, Format};
    use crate::rules::{NamePattern, Rule, SkipReason};

    fn names(input: &str) -> (Vec<NamePattern>, crate::LoadReport) {
        let mut got = Vec::new();
        let report = parse_bytes(Format::Hosts, "t", input.as_bytes(), &mut |r| {
            if let Rule::Name(n) = r {
                got.push(n.pattern)
            }
        });
        (got, report)
    }

    #[test]
    fn sinks_several_names_and_comments() {
        let (got, report) = names(
            "# header\n0.0.0.0 a.com\n127.0.0.1\tb.com  c.com # two\n:: d.com\n  \n1.2.3.4 E.com.\n",
        );
        assert_eq!(
            got,
            ["a.com", "b.com", "c.com", "d.com", "e.com"].map(|n| NamePattern::Exact(n.into()))
        );
        assert_eq!(report.accepted, 5);
        assert_eq!(report.error_count, 0);
    }

    #[test]
    fn local_names_are_counted_not_blocked() {
        let (got, report) = names(
            "127.0.0.1 localhost\n127.0.0.1 localhost.localdomain\n255.255.255.255 broadcasthost\n\
             ::1 ip6-localhost ip6-loopback\nfe80::1%lo0 localhost\n0.0.0.0 0.0.0.0\n127.0.0.1 local\n",
        );
        assert!(got.is_empty());
        assert_eq!(report.skipped[&SkipReason::LocalName], 8);
        assert_eq!(report.error_count, 0);
    }

    #[test]
    fn errors_name_line_and_field() {
        let (got, report) = names("0.0.0.0 ok.com\nnot-an-ip a.com\n0.0.0.0 bad_name!\n0.0.0.0\n");
        assert_eq!(got.len(), 1);
        assert_eq!(report.error_count, 3);
        assert_eq!(report.errors[0].line, 2);
        assert_eq!(report.errors[0].field.as_deref(), Some("not-an-ip"));
        assert_eq!(report.errors[1].line, 3);
        assert_eq!(report.errors[1].field.as_deref(), Some("bad_name!"));
        assert_eq!(report.errors[2].line, 4);
    }

    #[test]
    fn subtree_variant() {
        let mut got = Vec::new();
        parse_bytes(Format::HostsSubtree, "t", b"0.0.0.0 a.com\n", &mut |r| {
            if let Rule::Name(n) = r {
                got.push(n.pattern)
            }
        });
        assert_eq!(got, [NamePattern::Subtree("a.com".into())]);
    }
}
