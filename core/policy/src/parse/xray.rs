//! TrackerControl's X-Ray company list, `xray-blacklist.json` (from the X-Ray 2017 study of
//! third-party tracking in apps): `[{"owner_name": "AdSense", "doms": ["adsense.com", ...],
//! "parent": "Google", "root_parent": "Alphabet", "country": "us", "necessary": true}, ...]`.
//!
//! Every domain is blocked with its subtree and gets a [`Rule::DomainOwner`] fact whose owner
//! is the company's root parent (`Alphabet` for AdSense), or the company itself when it has no
//! parent; the rule text names the company (`AdSense: adsense.com`). Companies marked
//! `necessary` (CDNs and clouds such as Akamai and AWS, which TrackerControl does not block by
//! default) give only the owner fact and count as [`SkipReason::Inert`]. A "domain" that is an
//! address (`124.17.1.253`) is blocked as an address. Stray quotes around a domain are dropped
//! (the published file has `"fwmrm.net'"`).
//!
//! The company's `country` is where the company is based, not where an endpoint is: the
//! decision's country comes from IP databases, and an owner fact has no country, so it is not
//! kept.

use std::collections::HashSet;
use std::io::BufRead;
use std::net::IpAddr;

use serde::Deserialize;

use super::json::{from_slice, read_capped, KeyLocator};
use super::lines::Emitter;
use super::name::normalize_name;
use super::name_rule;
use crate::rules::{Action, DomainOwner, IpNet, NamePattern, Rule, SkipReason};

#[derive(Deserialize)]
struct Company {
    owner_name: String,
    #[serde(default)]
    doms: Vec<String>,
    #[serde(default)]
    root_parent: Option<String>,
    #[serde(default)]
    necessary: bool,
}

/// Parses an `xray-blacklist.json`.
pub(crate) fn parse<R: BufRead>(input: R, out: &mut Emitter<'_>) {
    let Some(bytes) = read_capped(input, out) else {
        return;
    };
    let Some(companies) = from_slice::<Vec<Company>>(&bytes, out) else {
        return;
    };
    let mut locate = KeyLocator::new(&bytes);
    let mut blocked: HashSet<String> = HashSet::new();
    let mut owned: HashSet<String> = HashSet::new();
    for company in &companies {
        let company_line = locate.line_of(&company.owner_name).max(1);
        let owner = company
            .root_parent
            .as_deref()
            .filter(|p| !p.trim().is_empty())
            .unwrap_or(&company.owner_name);
        for raw in &company.doms {
            let line = locate.line_or(raw, company_line);
            let text = format!("{}: {raw}", company.owner_name);
            if let Ok(addr) = raw.parse::<IpAddr>() {
                if company.necessary {
                    out.skip(SkipReason::Inert);
                    continue;
                }
                let source = out.rule_ref(line, &text);
                out.accept(Rule::Address {
                    net: IpNet {
                        addr,
                        prefix_len: if addr.is_ipv4() { 32 } else { 128 },
                    },
                    action: Action::Block,
                    source,
                });
                continue;
            }
            let domain = match normalize_name(
                raw.trim_matches(|c: char| c == '\'' || c == '"' || c.is_ascii_whitespace()),
            ) {
                Ok(domain) => domain,
                Err(why) => {
                    out.error(line, Some(raw), why);
                    continue;
                }
            };
            if owned.insert(domain.clone()) {
                let source = out.rule_ref(line, &text);
                out.accept(Rule::DomainOwner(DomainOwner {
                    domain: domain.clone(),
                    owner: owner.to_owned(),
                    display_name: owner.to_owned(),
                    source,
                }));
            }
            if company.necessary {
                out.skip(SkipReason::Inert);
            } else if blocked.insert(domain.clone()) {
                let source = out.rule_ref(line, &text);
                out.accept(name_rule(
                    NamePattern::Subtree(domain),
                    Action::Block,
                    source,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::parse::{parse_bytes, Format};
    use crate::rules::{NamePattern, Rule, SkipReason};

    #[test]
    fn companies_owners_and_necessary_domains() {
        let json = br#"[{"country":"us","doms":["adsense.com"],"owner_name":"AdSense","root_parent":"Alphabet","parent":"Google"},
{"country":"us","doms":["akamai.net"],"owner_name":"Akamai","root_parent":null,"parent":null,"necessary":true},
{"country":"cn","doms":["124.17.1.253","cnnic.cn"],"owner_name":"CNIC","root_parent":null,"parent":null},
{"country":"us","doms":["fwmrm.net'"],"owner_name":"FreeWheel","root_parent":"Comcast","parent":"Comcast"},
{"country":"us","doms":[],"owner_name":"AT&T","root_parent":null,"parent":null}]"#;
        let mut got = Vec::new();
        let report = parse_bytes(Format::Xray, "xray.json", json, &mut |r| got.push(r));
        assert_eq!(report.error_count, 0, "{:?}", report.errors);
        let owners: Vec<_> = got
            .iter()
            .filter_map(|r| match r {
                Rule::DomainOwner(o) => Some((o.domain.as_str(), o.owner.as_str(), o.source.line)),
                _ => None,
            })
            .collect();
        assert_eq!(
            owners,
            [
                ("adsense.com", "Alphabet", 1),
                ("akamai.net", "Akamai", 2),
                ("cnnic.cn", "CNIC", 3),
                ("fwmrm.net", "Comcast", 4)
            ]
        );
        let blocks: Vec<_> = got
            .iter()
            .filter_map(|r| match r {
                Rule::Name(n) => Some(n.pattern.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            blocks,
            ["adsense.com", "cnnic.cn", "fwmrm.net"].map(|d| NamePattern::Subtree(d.into()))
        );
        assert!(got.iter().any(
            |r| matches!(r, Rule::Address { net, .. } if net.addr.to_string() == "124.17.1.253")
        ));
        assert_eq!(report.skipped[&SkipReason::Inert], 1);
    }

    #[test]
    fn wrong_shape_is_an_error() {
        let report = parse_bytes(Format::Xray, "x.json", br#"{"doms": 1}"#, &mut |_| {});
        assert_eq!(report.error_count, 1);
    }
}
