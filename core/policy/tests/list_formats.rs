//! Tracker-list formats end to end: a list is parsed, compiled (and reopened from its bytes,
//! as `embargo lists compile` stores it), and asked through `Policy::decide`.

use std::sync::Arc;

use embargo_policy::parse::{parse_bytes, Format};
use embargo_policy::{
    AppRules, Decision, IpDb, LoadReport, Policy, Query, Reason, Rule, RuleSet, RuleSetBuilder,
    Verdict,
};

/// Parses `bytes`, checks it has no error, and returns the rules.
fn parse(format: Format, list: &str, bytes: &[u8]) -> (Vec<Rule>, LoadReport) {
    let mut rules = Vec::new();
    let report = parse_bytes(format, list, bytes, &mut |r| rules.push(r));
    assert_eq!(report.error_count, 0, "{list}: {:?}", report.errors);
    assert_eq!(report.accepted, rules.len() as u64);
    (rules, report)
}

/// A policy over the rules, through the compiled file form.
fn policy(rules: Vec<Rule>) -> Policy {
    let mut builder = RuleSetBuilder::new();
    for rule in rules {
        builder.add(rule);
    }
    let (bytes, _) = builder.compile();
    let set = RuleSet::from_bytes(bytes).expect("compiled set opens");
    Policy::new(vec![Arc::new(set)], IpDb::new(), AppRules::default())
}

fn decide(p: &Policy, name: &str) -> Decision {
    let d = p.decide(&Query::name(name));
    assert_eq!(p.verdict(&Query::name(name)), d.verdict, "{name}");
    d
}

fn rule_line(d: &Decision) -> u32 {
    match &d.reason {
        Reason::NameRule { rule, .. } => rule.line,
        other => panic!("not a name rule: {other:?}"),
    }
}

/// Disconnect's shape (as in the parser's unit test): two blocking categories.
const SERVICES: &str = r#"{
  "license": "",
  "categories": {
    "Advertising": [
      {"AdNetwork.net": {"http://www.adnetwork.net/": ["adnetwork.net"]}}
    ],
    "Analytics": [
      {"ItIsATracker": {"https://itisatracker.com/": ["itisatracker.com"], "dnt": "eff"}}
    ]
  }
}"#;

#[test]
fn disconnect_category_reaches_the_decision() {
    let (rules, _) = parse(Format::Disconnect, "services.json", SERVICES.as_bytes());
    let p = policy(rules);
    let d = decide(&p, "ads.adnetwork.net");
    assert_eq!(d.verdict, Verdict::Block);
    assert_eq!(d.category.as_deref(), Some("Advertising"));
    assert_eq!(
        d.owner.as_ref().map(|o| o.value.as_str()),
        Some("AdNetwork.net")
    );
    let d = decide(&p, "itisatracker.com");
    assert_eq!(d.category.as_deref(), Some("Analytics"));
    let d = decide(&p, "example.org");
    assert_eq!(d.verdict, Verdict::Allow);
    assert_eq!(d.category, None);
    let _ = rule_line;
}
