//! Parsers for every rule source Embargo reads: what a list file *says*, as [`Rule`]s.
//!
//! Each parser streams rules into a sink and returns a [`LoadReport`]: rules accepted, lines
//! skipped with their reason, and errors with list, line and field. Parsers never panic on bad
//! input and use bounded memory whatever the input: text formats read lines of at most
//! [`MAX_LINE_BYTES`] (see [`lines`]), JSON formats refuse inputs over [`MAX_JSON_BYTES`].
//!
//! | format | module | syntax |
//! |---|---|---|
//! | [`Format::Hosts`], [`Format::HostsSubtree`] | [`hosts`] | `0.0.0.0 name [name...]` |
//! | [`Format::Domains`] | [`domains`] | `name` per line, exact or with subdomains |
//! | [`Format::Wildcard`] | [`domains`] | `*.name` per line |
//! | [`Format::AdBlock`] | [`adblock`] | AdGuard DNS filtering syntax |
//! | [`Format::Dnsmasq`] | [`dnsmasq`] | `address=/name/#`, `server=/name/` |
//! | [`Format::Unbound`] | [`unbound`] | `local-zone: "name." always_null` |
//! | [`Format::DdgApp`], [`Format::DdgWeb`] | [`ddg`] | DuckDuckGo tracker data JSON |
//! | [`Format::Disconnect`] | [`disconnect`] | Disconnect `services.json` |
//! | [`Format::DisconnectEntities`] | [`disconnect_entities`] | Disconnect `entities.json` (owners only) |
//! | [`Format::Xray`] | [`xray`] | TrackerControl's X-Ray `xray-blacklist.json` |
//! | [`Format::Exodus`] | [`exodus`] | Exodus Privacy `trackers.json` |
//! | [`Format::Embargo`] | [`embargo`] | Embargo's native rules (names, name patterns `log*.tiktokv.com`, `/regex/`, addresses, ASNs, owners, countries, facts) |

pub mod adblock;
pub mod ddg;
pub mod disconnect;
pub mod disconnect_entities;
pub mod dnsmasq;
pub mod domains;
pub mod embargo;
pub mod exodus;
pub mod hosts;
pub mod json;
pub mod lines;
pub mod name;
pub mod unbound;
pub mod xray;

use std::io::BufRead;

pub use adblock::{compile_name_regex, REGEX_DFA_SIZE_LIMIT, REGEX_SIZE_LIMIT};
pub use json::MAX_JSON_BYTES;
pub use lines::{MAX_LINE_BYTES, MAX_STORED_ERRORS};
pub use name::normalize_name;

use crate::decision::RuleRef;
use crate::rules::{Action, LoadReport, NamePattern, NameRule, Rule};
use lines::{for_each_line, Emitter};

/// The syntax of a rule source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `/etc/hosts` syntax; each name is blocked exactly (not its subdomains).
    Hosts,
    /// `/etc/hosts` syntax for lists whose author means "and subdomains" (hagezi's hosts
    /// lists spell out the subdomains they know, but mean the whole subtree).
    HostsSubtree,
    /// One name per line; `subdomains` says whether each also covers the names below it
    /// (hagezi's lists mean it does).
    Domains { subdomains: bool },
    /// AdGuard / AdBlock DNS filtering syntax.
    AdBlock,
    /// dnsmasq configuration (`address=/name/...`, `server=/name/`).
    Dnsmasq,
    /// unbound configuration (`local-zone:`, `local-data:`).
    Unbound,
    /// `*.name` lists (DNSCrypt-proxy style); `*.name` covers `name` too.
    Wildcard,
    /// DuckDuckGo app tracker data (`android-tds.json`).
    DdgApp,
    /// DuckDuckGo web tracker data (`tds.json`: trackers, entities, cnames).
    DdgWeb,
    /// Disconnect's `services.json`.
    Disconnect,
    /// Disconnect's `entities.json` (who owns which domains; no block rules).
    DisconnectEntities,
    /// TrackerControl's X-Ray company list (`xray-blacklist.json`).
    Xray,
    /// Exodus Privacy's tracker list (`trackers.json`).
    Exodus,
    /// Embargo's native rule format (see [`embargo`]).
    Embargo,
}

impl Format {
    /// The format for a `--format` flag value: `hosts`, `hosts-subtree`, `domains`,
    /// `domains-subtree`, `adblock`, `dnsmasq`, `unbound`, `wildcard`, `ddg-app`, `ddg-web`,
    /// `disconnect`, `disconnect-entities`, `xray`, `exodus`, `embargo`.
    pub fn from_name(s: &str) -> Option<Format> {
        Some(match s {
            "hosts" => Format::Hosts,
            "hosts-subtree" => Format::HostsSubtree,
            "domains" => Format::Domains { subdomains: false },
            "domains-subtree" => Format::Domains { subdomains: true },
            "adblock" | "adguard" => Format::AdBlock,
            "dnsmasq" => Format::Dnsmasq,
            "unbound" => Format::Unbound,
            "wildcard" => Format::Wildcard,
            "ddg-app" => Format::DdgApp,
            "ddg-web" => Format::DdgWeb,
            "disconnect" => Format::Disconnect,
            "disconnect-entities" => Format::DisconnectEntities,
            "xray" => Format::Xray,
            "exodus" => Format::Exodus,
            "embargo" => Format::Embargo,
            _ => return None,
        })
    }

    /// The name [`Format::from_name`] accepts for this format.
    pub fn name(self) -> &'static str {
        match self {
            Format::Hosts => "hosts",
            Format::HostsSubtree => "hosts-subtree",
            Format::Domains { subdomains: false } => "domains",
            Format::Domains { subdomains: true } => "domains-subtree",
            Format::AdBlock => "adblock",
            Format::Dnsmasq => "dnsmasq",
            Format::Unbound => "unbound",
            Format::Wildcard => "wildcard",
            Format::DdgApp => "ddg-app",
            Format::DdgWeb => "ddg-web",
            Format::Disconnect => "disconnect",
            Format::DisconnectEntities => "disconnect-entities",
            Format::Xray => "xray",
            Format::Exodus => "exodus",
            Format::Embargo => "embargo",
        }
    }

    /// The intent of a list in this format: Embargo's own rule files are embargo statements;
    /// every other format is a third-party tracker list (see [`crate::Intent`]).
    pub fn intent(self) -> crate::rules::Intent {
        match self {
            Format::Embargo => crate::rules::Intent::Embargo,
            _ => crate::rules::Intent::Tracker,
        }
    }

    /// Guesses the format from the file name and the first bytes of the file (a few KiB is
    /// enough). `None` when nothing fits; the caller should then ask for `--format`.
    ///
    /// hagezi lists (a `Homepage:` naming hagezi, or `including possible subdomains`) are read
    /// with subdomains, as their author means; other plain lists exactly, as AdGuard reads
    /// them.
    pub fn detect(file_name: &str, head: &[u8]) -> Option<Format> {
        let lower_name = file_name.to_ascii_lowercase();
        if lower_name.ends_with(".rules") || lower_name.ends_with(".embargo") {
            return Some(Format::Embargo);
        }
        // Only whole UTF-8 is inspected; a cut in the middle of a character at the end of
        // `head` is fine.
        let text = match std::str::from_utf8(head) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or(""),
        };
        if text.contains('\0') {
            return None;
        }
        let trimmed = text.trim_start_matches('\u{feff}').trim_start();
        if trimmed.starts_with('[') {
            // X-Ray: an array of companies.
            if text.contains("\"owner_name\"") && text.contains("\"doms\"") {
                return Some(Format::Xray);
            }
            return None;
        }
        if trimmed.starts_with('{') {
            // Exodus: trackers keyed by id, each with its signatures.
            if text.contains("\"trackers\"")
                && (text.contains("\"network_signature\"") || text.contains("\"code_signature\""))
            {
                return Some(Format::Exodus);
            }
            // Disconnect's entities.json: companies with properties and resources.
            if text.contains("\"properties\"")
                && text.contains("\"resources\"")
                && !text.contains("\"trackers\"")
                && !text.contains("\"categories\"")
            {
                return Some(Format::DisconnectEntities);
            }
            if text.contains("\"categories\"") && !text.contains("\"trackers\"") {
                return Some(Format::Disconnect);
            }
            if text.contains("\"trackers\"") {
                let web = text.contains("\"cnames\"")
                    || text.contains("\"prevalence\"")
                    || text.contains("\"rules\"");
                let app = lower_name.contains("android")
                    || lower_name.contains("app")
                    || text.contains("\"packageNames\"");
                return Some(if app && !web {
                    Format::DdgApp
                } else if web {
                    Format::DdgWeb
                } else {
                    Format::DdgApp
                });
            }
            return None;
        }
        let hagezi = text.contains("hagezi") || text.contains("including possible subdomains");
        // A declared syntax header (hagezi writes `# Syntax: ...` / `! Syntax: ...`).
        for line in text.lines().take(64) {
            let line = line.trim();
            let Some(rest) = line
                .strip_prefix('#')
                .or_else(|| line.strip_prefix('!'))
                .map(str::trim)
            else {
                continue;
            };
            if let Some(syntax) = rest.strip_prefix("Syntax:").map(str::trim) {
                let syntax = syntax.to_ascii_lowercase();
                let format = if syntax.starts_with("adblock") {
                    Format::AdBlock
                } else if syntax.starts_with("dnsmasq") {
                    Format::Dnsmasq
                } else if syntax.starts_with("unbound") {
                    Format::Unbound
                } else if syntax.starts_with("domains wildcard") || syntax.starts_with("wildcard") {
                    Format::Wildcard
                } else if syntax.starts_with("hosts") {
                    if hagezi {
                        Format::HostsSubtree
                    } else {
                        Format::Hosts
                    }
                } else if syntax.starts_with("domains") {
                    Format::Domains { subdomains: hagezi }
                } else {
                    continue;
                };
                return Some(format);
            }
        }
        // Otherwise the first rule line decides.
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('!')
                || line.starts_with("||")
                || line.starts_with("@@")
                || line.to_ascii_lowercase().starts_with("[adblock")
            {
                return Some(Format::AdBlock);
            }
            if line.starts_with("address=")
                || line.starts_with("server=")
                || line.starts_with("local=")
            {
                return Some(Format::Dnsmasq);
            }
            if line.starts_with("server:")
                || line.starts_with("local-zone:")
                || line.starts_with("local-data:")
            {
                return Some(Format::Unbound);
            }
            if line.starts_with("*.") {
                return Some(Format::Wildcard);
            }
            let first = line.split_ascii_whitespace().next().unwrap_or("");
            if line.contains(|c: char| c.is_ascii_whitespace())
                && hosts::parse_host_address(first).is_some()
            {
                return Some(Format::Hosts);
            }
            if first.contains('/') && embargo::parse_net(first).is_ok()
                || first.parse::<std::net::IpAddr>().is_ok()
                || line.starts_with('=')
                || line.starts_with("owner:")
                || line.starts_with("country:")
                || line.starts_with("owns:")
                || line.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("as"))
                    && line.len() > 2
                    && line.bytes().skip(2).all(|b| b.is_ascii_digit())
            {
                return Some(Format::Embargo);
            }
            let without_comment = line.split('#').next().unwrap_or("").trim();
            if !without_comment.contains(|c: char| c.is_ascii_whitespace())
                && normalize_name(without_comment).is_ok()
            {
                return Some(Format::Domains { subdomains: hagezi });
            }
            return None;
        }
        None
    }
}

/// A name rule with no modifiers, as every format but AdBlock produces.
pub(crate) fn name_rule(pattern: NamePattern, action: Action, source: RuleRef) -> Rule {
    Rule::Name(NameRule {
        pattern,
        action,
        important: false,
        dnstype: None,
        denyallow: Vec::new(),
        badfilter: false,
        source,
    })
}

/// Parses a rule source, handing each rule to `sink` as it is read.
///
/// Memory stays bounded regardless of the input: text formats hold one line of at most
/// [`MAX_LINE_BYTES`]; JSON formats hold at most [`MAX_JSON_BYTES`] of input plus what they
/// emit. `list_name` is the name rules and errors are attributed to (a file name, `builtin`).
pub fn parse_list<R: BufRead>(
    format: Format,
    list_name: &str,
    input: R,
    sink: &mut dyn FnMut(Rule),
) -> LoadReport {
    let mut out = Emitter::new(list_name, sink);
    match format {
        Format::Hosts => {
            for_each_line(input, &mut out, |t, n, o| hosts::parse_line(t, n, o, false))
        }
        Format::HostsSubtree => {
            for_each_line(input, &mut out, |t, n, o| hosts::parse_line(t, n, o, true))
        }
        Format::Domains { subdomains } => for_each_line(input, &mut out, |t, n, o| {
            domains::parse_domain_line(t, n, o, subdomains)
        }),
        Format::Wildcard => for_each_line(input, &mut out, domains::parse_wildcard_line),
        Format::AdBlock => for_each_line(input, &mut out, adblock::parse_line),
        Format::Dnsmasq => for_each_line(input, &mut out, dnsmasq::parse_line),
        Format::Unbound => for_each_line(input, &mut out, unbound::parse_line),
        Format::Embargo => for_each_line(input, &mut out, embargo::parse_line),
        Format::DdgApp => ddg::parse_app(input, &mut out),
        Format::DdgWeb => ddg::parse_web(input, &mut out),
        Format::Disconnect => disconnect::parse(input, &mut out),
        Format::DisconnectEntities => disconnect_entities::parse(input, &mut out),
        Format::Xray => xray::parse(input, &mut out),
        Format::Exodus => exodus::parse(input, &mut out),
    }
    debug_assert!(!out.list().is_empty() || list_name.is_empty());
    out.finish()
}

/// [`parse_list`] over bytes already in memory.
pub fn parse_bytes(
    format: Format,
    list_name: &str,
    bytes: &[u8],
    sink: &mut dyn FnMut(Rule),
) -> LoadReport {
    parse_list(format, list_name, bytes, sink)
}

#[cfg(test)]
mod tests;
