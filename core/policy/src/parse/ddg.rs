//! DuckDuckGo tracker data (TDS) JSON, app and web forms.
//!
//! Both forms have `trackers{domain: {owner{name, displayName}, default}}`. Each tracker
//! becomes an owner fact ([`Rule::DomainOwner`], always) and, when `default` is `block`, a
//! block of the domain's subtree; `default: ignore` trackers are counted as
//! [`SkipReason::Inert`] (DuckDuckGo blocks only some of their URLs, which a DNS or connection
//! filter cannot see).
//!
//! - App form (`android-tds.json`): `packageNames{package: owner}` become
//!   [`Rule::AppOwner`] facts, used for the first-party exception. Its `entities` hold
//!   scores and signals only, and are ignored.
//! - Web form (`tds.json`): each tracker's `rules` are per-URL-path rules, counted as
//!   [`SkipReason::NotApplicable`]. `entities{name: {domains[], displayName}}` and
//!   `domains{domain: entity}` become owner facts (deduplicated against the trackers' own).
//!   `cnames{alias: target}` name first-party hosts that are CNAME-cloaked trackers: when the
//!   target falls under a tracker, the alias gets that tracker's owner and, for a blocking
//!   tracker, an exact block; an alias whose target is no tracker is [`SkipReason::Inert`].
//!
//! Unknown fields are ignored, so newer files keep loading.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::json::{from_slice, read_capped, KeyLocator, Ordered};
use super::lines::Emitter;
use super::name::normalize_name;
use super::name_rule;
use crate::rules::{Action, AppOwner, DomainOwner, NamePattern, Rule, SkipReason};

#[derive(Deserialize, Default)]
struct Owner {
    name: Option<String>,
    #[serde(rename = "displayName")]
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct Tracker {
    #[serde(default)]
    owner: Option<Owner>,
    default: Option<String>,
    #[serde(default)]
    rules: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
struct AppTds {
    trackers: Ordered<Tracker>,
    #[serde(default, rename = "packageNames")]
    package_names: Ordered<String>,
}

#[derive(Deserialize)]
struct Entity {
    #[serde(default)]
    domains: Option<Vec<String>>,
    #[serde(default, rename = "displayName")]
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct WebTds {
    trackers: Ordered<Tracker>,
    #[serde(default)]
    entities: Ordered<Entity>,
    #[serde(default)]
    domains: Ordered<String>,
    #[serde(default)]
    cnames: Ordered<String>,
}

/// A tracker after validation: its name, owner and whether it blocks.
struct Known<'a> {
    owner: Option<(&'a str, &'a str)>,
    blocks: bool,
}

/// Emits the facts and rules of every tracker; returns them by domain for `cnames`.
fn emit_trackers<'t>(
    trackers: &'t Ordered<Tracker>,
    bytes: &[u8],
    seen_owner: &mut HashSet<(String, String)>,
    out: &mut Emitter<'_>,
) -> HashMap<String, Known<'t>> {
    let mut known = HashMap::with_capacity(trackers.0.len());
    let mut locate = KeyLocator::new(bytes);
    locate.line_of("trackers");
    for (key, tracker) in &trackers.0 {
        let line = locate.line_of(key);
        let domain = match normalize_name(key) {
            Ok(domain) => domain,
            Err(why) => {
                out.error(line, Some(key), why);
                continue;
            }
        };
        let blocks = match tracker.default.as_deref() {
            Some("block") => true,
            Some("ignore") => false,
            Some(other) => {
                out.error(
                    line,
                    Some(other),
                    "tracker `default` must be `block` or `ignore`",
                );
                continue;
            }
            None => {
                out.error(line, Some(key), "tracker without a `default` action");
                continue;
            }
        };
        let rule_text = format!(
            "{key} (default: {})",
            if blocks { "block" } else { "ignore" }
        );
        let owner = tracker.owner.as_ref().and_then(|o| {
            let name = o.name.as_deref().filter(|n| !n.is_empty())?;
            Some((
                name,
                o.display_name
                    .as_deref()
                    .filter(|d| !d.is_empty())
                    .unwrap_or(name),
            ))
        });
        if let Some((name, display)) = owner {
            if seen_owner.insert((domain.clone(), name.to_owned())) {
                let source = out.rule_ref(line, &rule_text);
                out.accept(Rule::DomainOwner(DomainOwner {
                    domain: domain.clone(),
                    owner: name.to_owned(),
                    display_name: display.to_owned(),
                    source,
                }));
            }
        }
        if blocks {
            let source = out.rule_ref(line, &rule_text);
            out.accept(name_rule(
                NamePattern::Subtree(domain.clone()),
                Action::Block,
                source,
            ));
        } else {
            out.skip(SkipReason::Inert);
        }
        for _ in tracker.rules.iter().flatten() {
            out.skip(SkipReason::NotApplicable);
        }
        known.insert(domain, Known { owner, blocks });
    }
    known
}

/// Parses the app form (`android-tds.json`).
pub(crate) fn parse_app<R: BufRead>(input: R, out: &mut Emitter<'_>) {
    let Some(bytes) = read_capped(input, out) else {
        return;
    };
    let Some(tds) = from_slice::<AppTds>(&bytes, out) else {
        return;
    };
    let mut seen_owner = HashSet::new();
    emit_trackers(&tds.trackers, &bytes, &mut seen_owner, out);
    let mut locate = KeyLocator::new(&bytes);
    locate.line_of("packageNames");
    for (app, owner) in &tds.package_names.0 {
        let line = locate.line_of(app);
        if app.is_empty() || app.chars().any(|c| c.is_whitespace() || c.is_control()) {
            out.error(
                line,
                Some(app),
                "an app id has no spaces or control characters",
            );
            continue;
        }
        if owner.trim().is_empty() {
            out.error(line, Some(app), "empty owner");
            continue;
        }
        let source = out.rule_ref(line, &format!("{app}: {owner}"));
        out.accept(Rule::AppOwner(AppOwner {
            app: app.clone(),
            owner: owner.clone(),
            source,
        }));
    }
}

/// Parses the web form (`tds.json`).
pub(crate) fn parse_web<R: BufRead>(input: R, out: &mut Emitter<'_>) {
    let Some(bytes) = read_capped(input, out) else {
        return;
    };
    let Some(tds) = from_slice::<WebTds>(&bytes, out) else {
        return;
    };
    let mut seen_owner = HashSet::new();
    let known = emit_trackers(&tds.trackers, &bytes, &mut seen_owner, out);

    let display_of: HashMap<&str, &str> = tds
        .entities
        .0
        .iter()
        .map(|(name, e)| (name.as_str(), e.display_name.as_deref().unwrap_or(name)))
        .collect();
    let mut owner_fact =
        |domain_raw: &str, owner: &str, line: u32, text: &str, out: &mut Emitter<'_>| {
            match normalize_name(domain_raw) {
                Ok(domain) => {
                    if seen_owner.insert((domain.clone(), owner.to_owned())) {
                        let display = display_of.get(owner).copied().unwrap_or(owner);
                        let source = out.rule_ref(line, text);
                        out.accept(Rule::DomainOwner(DomainOwner {
                            domain,
                            owner: owner.to_owned(),
                            display_name: display.to_owned(),
                            source,
                        }));
                    }
                }
                Err(why) => out.error(line, Some(domain_raw), why),
            }
        };

    let mut locate = KeyLocator::new(&bytes);
    locate.line_of("entities");
    for (entity, info) in &tds.entities.0 {
        let line = locate.line_of(entity);
        for domain in info.domains.iter().flatten() {
            owner_fact(domain, entity, line, &format!("{entity}: {domain}"), out);
        }
    }
    let mut locate = KeyLocator::new(&bytes);
    locate.line_of("domains");
    for (domain, entity) in &tds.domains.0 {
        let line = locate.line_of(domain);
        owner_fact(domain, entity, line, &format!("{domain}: {entity}"), out);
    }

    let mut locate = KeyLocator::new(&bytes);
    locate.line_of("cnames");
    for (alias_raw, target_raw) in &tds.cnames.0 {
        let line = locate.line_of(alias_raw);
        let (alias, target) = match (normalize_name(alias_raw), normalize_name(target_raw)) {
            (Ok(alias), Ok(target)) => (alias, target),
            (Err(why), _) => {
                out.error(line, Some(alias_raw), why);
                continue;
            }
            (_, Err(why)) => {
                out.error(line, Some(target_raw), why);
                continue;
            }
        };
        // The tracker whose subtree holds the target: the target itself or a parent.
        let mut tracker = None;
        let mut suffix = target.as_str();
        loop {
            if let Some(found) = known.get(suffix) {
                tracker = Some(found);
                break;
            }
            match suffix.split_once('.') {
                Some((_, parent)) => suffix = parent,
                None => break,
            }
        }
        let Some(tracker) = tracker else {
            out.skip(SkipReason::Inert);
            continue;
        };
        let text = format!("{alias_raw} -> {target_raw}");
        if let Some((name, display)) = tracker.owner {
            if seen_owner.insert((alias.clone(), name.to_owned())) {
                let source = out.rule_ref(line, &text);
                out.accept(Rule::DomainOwner(DomainOwner {
                    domain: alias.clone(),
                    owner: name.to_owned(),
                    display_name: display.to_owned(),
                    source,
                }));
            }
        }
        if tracker.blocks {
            let source = out.rule_ref(line, &text);
            out.accept(name_rule(NamePattern::Exact(alias), Action::Block, source));
        } else {
            out.skip(SkipReason::Inert);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::parse::{parse_bytes, Format};
    use crate::rules::{Action, NamePattern, Rule, SkipReason};
    use crate::LoadReport;

    fn run(format: Format, input: &str) -> (Vec<Rule>, LoadReport) {
        let mut got = Vec::new();
        let report = parse_bytes(format, "tds.json", input.as_bytes(), &mut |r| got.push(r));
        (got, report)
    }

    const APP: &str = r#"{
  "readme": "x",
  "trackers": {
    "ads.example.com": {
      "owner": {"name": "Example Inc.", "displayName": "Example"},
      "default": "block"
    },
    "cdn.example.com": {
      "owner": {"name": "Example Inc.", "displayName": "Example"},
      "default": "ignore",
      "newField": [1, 2]
    }
  },
  "packageNames": {
    "com.example.app": "Example Inc."
  },
  "entities": {"Example Inc.": {"score": 1, "signals": ["a"]}}
}"#;

    #[test]
    fn app_form() {
        let (got, report) = run(Format::DdgApp, APP);
        assert_eq!(report.error_count, 0, "{:?}", report.errors);
        assert_eq!(got.len(), 4);
        let Rule::DomainOwner(fact) = &got[0] else {
            panic!()
        };
        assert_eq!(
            (
                fact.domain.as_str(),
                fact.owner.as_str(),
                fact.display_name.as_str()
            ),
            ("ads.example.com", "Example Inc.", "Example")
        );
        assert_eq!(fact.source.line, 4);
        let Rule::Name(block) = &got[1] else { panic!() };
        assert_eq!(
            block.pattern,
            NamePattern::Subtree("ads.example.com".into())
        );
        assert_eq!(block.action, Action::Block);
        assert!(matches!(&got[2], Rule::DomainOwner(f) if f.domain == "cdn.example.com"));
        let Rule::AppOwner(app) = &got[3] else {
            panic!()
        };
        assert_eq!(
            (app.app.as_str(), app.owner.as_str()),
            ("com.example.app", "Example Inc.")
        );
        assert_eq!(app.source.line, 15);
        assert_eq!(report.skipped[&SkipReason::Inert], 1);
    }

    const WEB: &str = r#"{
  "trackers": {
    "tracker.net": {
      "domain": "tracker.net",
      "owner": {"name": "Tracker Co", "displayName": "Tracker", "privacyPolicy": "", "url": ""},
      "prevalence": 0.1,
      "categories": ["Advertising"],
      "default": "block",
      "rules": [{"rule": "tracker\\.net\\/px", "exceptions": {"domains": ["a.com"]}}]
    },
    "quiet.net": {"domain": "quiet.net", "owner": {"name": "Quiet"}, "default": "ignore",
      "rules": [{"rule": "quiet\\.net\\/t\\.js", "action": "block"}]}
  },
  "entities": {
    "Tracker Co": {"domains": ["tracker.net", "tracker-cdn.net"], "displayName": "Tracker", "prevalence": 1}
  },
  "domains": {"tracker.net": "Tracker Co", "tracker-static.net": "Tracker Co"},
  "cnames": {
    "metrics.shop.example": "shop.example.eu.tracker.net",
    "cdn.shop.example": "shop.example.cdn.quiet.net",
    "www.shop.example": "shop.example.cdnprovider.com"
  }
}"#;

    #[test]
    fn web_form() {
        let (got, report) = run(Format::DdgWeb, WEB);
        assert_eq!(report.error_count, 0, "{:?}", report.errors);
        let facts: Vec<_> = got
            .iter()
            .filter_map(|r| match r {
                Rule::DomainOwner(f) => Some((f.domain.as_str(), f.display_name.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(
            facts,
            [
                ("tracker.net", "Tracker"),
                ("quiet.net", "Quiet"),
                ("tracker-cdn.net", "Tracker"),
                ("tracker-static.net", "Tracker"),
                ("metrics.shop.example", "Tracker"),
                ("cdn.shop.example", "Quiet"),
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
            [
                NamePattern::Subtree("tracker.net".into()),
                NamePattern::Exact("metrics.shop.example".into()),
            ]
        );
        // quiet.net, its cname alias, and the alias of a non-tracker.
        assert_eq!(report.skipped[&SkipReason::Inert], 3);
        assert_eq!(report.skipped[&SkipReason::NotApplicable], 2);
    }

    #[test]
    fn json_errors_have_line_and_column() {
        let (got, report) = run(Format::DdgApp, "{\n  \"trackers\": {\n    \"a.com\": {,}\n");
        assert!(got.is_empty());
        assert_eq!(report.error_count, 1);
        assert_eq!(report.errors[0].line, 3);
        assert!(
            report.errors[0].message.contains("column"),
            "{}",
            report.errors[0].message
        );
        let (_, report) = run(Format::DdgApp, "[1,2]");
        assert_eq!(report.error_count, 1);
        let (_, report) = run(Format::DdgWeb, "{}");
        assert!(report.errors[0]
            .message
            .contains("missing field `trackers`"));
        let (_, report) = run(Format::DdgApp, "\u{0}\u{1}binary");
        assert_eq!(report.error_count, 1);
    }

    #[test]
    fn bad_entries_are_errors_with_lines() {
        let input = "{\"trackers\": {\n\"bad name\": {\"default\": \"block\"},\n\"ok.com\": {\"default\": \"maybe\"},\n\"x.com\": {}}}";
        let (got, report) = run(Format::DdgApp, input);
        assert!(got.is_empty());
        assert_eq!(report.error_count, 3);
        let lines: Vec<_> = report.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4]);
    }
}
