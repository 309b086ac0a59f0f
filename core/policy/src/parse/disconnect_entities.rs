//! Disconnect's `entities.json`: `{"Company": {"properties": ["site.com", ...], "resources":
//! ["tracker.net", ...]}, ...}`.
//!
//! Attribution only, no block rule: every property (the company's own sites) and resource
//! (the domains it serves from) gives a [`Rule::DomainOwner`] fact, the company being the owner,
//! once per domain and company. With an app-owner fact for an app (from another list), these
//! facts give the app its first-party exception for the company's domains.

use std::collections::HashSet;
use std::io::BufRead;

use serde::Deserialize;

use super::json::{from_slice, listed_domain, read_capped, KeyLocator, Ordered};
use super::lines::Emitter;
use crate::rules::{DomainOwner, Rule};

#[derive(Deserialize)]
struct Entity {
    #[serde(default)]
    properties: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
}

/// Parses an `entities.json`.
pub(crate) fn parse<R: BufRead>(input: R, out: &mut Emitter<'_>) {
    let Some(bytes) = read_capped(input, out) else {
        return;
    };
    let Some(entities) = from_slice::<Ordered<Entity>>(&bytes, out) else {
        return;
    };
    let mut locate = KeyLocator::new(&bytes);
    for (company, entity) in &entities.0 {
        let company_line = locate.line_of(company).max(1);
        let mut seen: HashSet<String> = HashSet::new();
        for (kind, list) in [
            ("properties", &entity.properties),
            ("resources", &entity.resources),
        ] {
            locate.line_of(kind);
            for raw in list {
                let Some((domain, line)) = listed_domain(out, &mut locate, raw, company_line)
                else {
                    continue;
                };
                if !seen.insert(domain.clone()) {
                    continue;
                }
                let source = out.rule_ref(line, &format!("{company}: {raw}"));
                out.accept(Rule::DomainOwner(DomainOwner {
                    domain,
                    owner: company.clone(),
                    display_name: company.clone(),
                    source,
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::parse::{parse_bytes, Format};
    use crate::rules::Rule;

    #[test]
    fn properties_and_resources_are_owned_once() {
        let json = br#"{
  "Adobe": {
    "properties": ["adobe.com", "typekit.com"],
    "resources": ["2o7.net", "adobe.com", "demdex.net"]
  },
  "Tiny": {"properties": [], "resources": ["tiny.example"]}
}"#;
        let mut got = Vec::new();
        let report = parse_bytes(
            Format::DisconnectEntities,
            "entities.json",
            json,
            &mut |r| got.push(r),
        );
        assert_eq!(report.error_count, 0, "{:?}", report.errors);
        let owners: Vec<_> = got
            .iter()
            .map(|r| match r {
                Rule::DomainOwner(o) => (o.domain.as_str(), o.owner.as_str(), o.source.line),
                other => panic!("not an owner fact: {other:?}"),
            })
            .collect();
        assert_eq!(
            owners,
            [
                ("adobe.com", "Adobe", 3),
                ("typekit.com", "Adobe", 3),
                ("2o7.net", "Adobe", 4),
                ("demdex.net", "Adobe", 4),
                ("tiny.example", "Tiny", 6),
            ]
        );
    }
}
