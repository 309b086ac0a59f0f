//! Disconnect's tracking-protection `services.json`:
//! `{"categories": {"Advertising": [{"OrgName": {"https://homepage/": ["domain", ...],
//! "dnt": "eff"}}, ...], ...}}`.
//!
//! Every domain gives an owner fact ([`Rule::DomainOwner`], the organisation is the owner).
//! Domains in blocking categories are blocked with their subtree, once each. Categories that
//! Disconnect and Firefox do not block by default ([`NON_BLOCKING_CATEGORIES`]: embedded
//! content, anti-fraud, consent managers, general fingerprinting, aggressive email tracking)
//! give only the owner fact and count as [`SkipReason::Inert`]. Entries with a URL path
//! (`host/script.js`) cannot apply to names and count as [`SkipReason::NotApplicable`].
//! Non-array values in an organisation (`"dnt": "eff"`, `"performance": "true"`) are tags and
//! are ignored.
//!
//! Each category's run of lines (from its key to the line before the next category's) gives a
//! [`Rule::Category`], so that a decision by one of its rules says `Advertising`.

use std::collections::HashSet;
use std::io::BufRead;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::json::{from_slice, listed_domain, read_capped, KeyLocator, Ordered};
use super::lines::Emitter;
use super::name_rule;
use crate::rules::{Action, CategoryRange, DomainOwner, NamePattern, Rule, SkipReason};

/// Categories whose domains are attributed but not blocked.
pub const NON_BLOCKING_CATEGORIES: &[&str] = &[
    "Content",
    "Anti-fraud",
    "ConsentManagers",
    "FingerprintingGeneral",
    "EmailAggressive",
];

#[derive(Deserialize)]
#[serde(untagged)]
enum OrgValue {
    Domains(Vec<String>),
    Tag(IgnoredAny),
}

#[derive(Deserialize)]
struct Services {
    categories: Ordered<Vec<Ordered<Ordered<OrgValue>>>>,
}

/// Parses a `services.json`.
pub(crate) fn parse<R: BufRead>(input: R, out: &mut Emitter<'_>) {
    let Some(bytes) = read_capped(input, out) else {
        return;
    };
    let Some(services) = from_slice::<Services>(&bytes, out) else {
        return;
    };
    let mut seen_owner: HashSet<(String, String)> = HashSet::new();
    let mut blocked: HashSet<String> = HashSet::new();
    let mut locate = KeyLocator::new(&bytes);
    locate.line_of("categories");
    let mut open: Option<(&str, u32)> = None;
    for (category, orgs) in &services.categories.0 {
        let category_line = locate.line_of(category);
        if category_line != 0 {
            if let Some((name, first)) = open.take() {
                emit_category(out, name, first, category_line - 1);
            }
            open = Some((category, category_line));
        }
        let blocking = !NON_BLOCKING_CATEGORIES.contains(&category.as_str());
        for org_map in orgs {
            for (org, values) in &org_map.0 {
                let org_line = locate.line_of(org);
                for (_homepage, value) in &values.0 {
                    let OrgValue::Domains(domains) = value else {
                        continue;
                    };
                    for raw in domains {
                        let Some((domain, line)) = listed_domain(out, &mut locate, raw, org_line)
                        else {
                            continue;
                        };
                        let text = format!("{category}: {org}: {raw}");
                        if seen_owner.insert((domain.clone(), org.clone())) {
                            let source = out.rule_ref(line, &text);
                            out.accept(Rule::DomainOwner(DomainOwner {
                                domain: domain.clone(),
                                owner: org.clone(),
                                display_name: org.clone(),
                                source,
                            }));
                        }
                        if !blocking {
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
        }
    }
    if let Some((name, first)) = open {
        emit_category(out, name, first, u32::MAX);
    }
}

/// Gives the lines `first..=last` the category `name`.
pub(crate) fn emit_category(out: &mut Emitter<'_>, name: &str, first: u32, last: u32) {
    let source = out.rule_ref(first, name);
    out.accept(Rule::Category(CategoryRange {
        category: name.to_owned(),
        first_line: first,
        last_line: last,
        source,
    }));
}

#[cfg(test)]
mod tests {
    use crate::parse::{parse_bytes, Format};
    use crate::rules::{NamePattern, Rule, SkipReason};

    /// The shape of the real file, as Mozilla's shavar-list-creation test fixture has it.
    const SERVICES: &str = r#"{
  "license": "",
  "categories": {
    "Advertising": [
      {"AdNetwork.net": {"http://www.adnetwork.net/": ["adnetwork.net"]}},
      {"AppCast": {"https://appcast.io/": ["appcast.io"]}}
    ],
    "Content": [
      {"Vimeo": {"http://vimeo.com/": ["vimeo.com", "vimeocdn.com"]}}
    ],
    "Analytics": [
      {"ItIsATracker": {"https://itisatracker.com/": ["itisatracker.com"], "dnt": "eff"}}
    ],
    "FingerprintingInvasive": [
      {"AppCast": {"https://appcast.io/": ["appcast.io"]}},
      {"dummytracker": {"https://dummytracker.org/": ["fp.dummytracker.org/tracker.js"]}}
    ],
    "Cryptomining": [
      {"CoinPot": {"http://coinpot.co": ["coinpot.co"], "performance": "true"}}
    ]
  }
}"#;

    #[test]
    fn services_json() {
        let mut got = Vec::new();
        let report = parse_bytes(
            Format::Disconnect,
            "services.json",
            SERVICES.as_bytes(),
            &mut |r| got.push(r),
        );
        assert_eq!(report.error_count, 0, "{:?}", report.errors);
        let blocks: Vec<_> = got
            .iter()
            .filter_map(|r| match r {
                Rule::Name(n) => Some(n.pattern.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            blocks,
            [
                "adnetwork.net",
                "appcast.io",
                "itisatracker.com",
                "coinpot.co"
            ]
            .map(|d| NamePattern::Subtree(d.into()))
        );
        let owners: Vec<_> = got
            .iter()
            .filter_map(|r| match r {
                Rule::DomainOwner(f) => Some((f.domain.as_str(), f.owner.as_str(), f.source.line)),
                _ => None,
            })
            .collect();
        assert_eq!(
            owners,
            [
                ("adnetwork.net", "AdNetwork.net", 5),
                ("appcast.io", "AppCast", 6),
                ("vimeo.com", "Vimeo", 9),
                ("vimeocdn.com", "Vimeo", 9),
                ("itisatracker.com", "ItIsATracker", 12),
                ("coinpot.co", "CoinPot", 19),
            ]
        );
        assert_eq!(report.skipped[&SkipReason::Inert], 2);
        assert_eq!(report.skipped[&SkipReason::NotApplicable], 1);
        let categories: Vec<_> = got
            .iter()
            .filter_map(|r| match r {
                Rule::Category(c) => Some((c.category.as_str(), c.first_line, c.last_line)),
                _ => None,
            })
            .collect();
        assert_eq!(
            categories,
            [
                ("Advertising", 4, 7),
                ("Content", 8, 10),
                ("Analytics", 11, 13),
                ("FingerprintingInvasive", 14, 17),
                ("Cryptomining", 18, u32::MAX),
            ]
        );
    }

    #[test]
    fn wrong_shape_is_an_error() {
        let report = parse_bytes(
            Format::Disconnect,
            "s.json",
            br#"{"categories": {"Ads": {"x": 1}}}"#,
            &mut |_| {},
        );
        assert_eq!(report.error_count, 1);
        assert_eq!(report.errors[0].line, 1);
    }
}
