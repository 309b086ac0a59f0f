//! Precedence, step by step: each test puts two adjacent steps of [`Policy::decide`] in conflict
//! and checks that the earlier one wins; `precedence_table` checks the whole order at once.
//! Sets built by [`policy`] are tracker sets (the default intent); ASN, owner and country rules
//! are embargo rules wherever they are.

use std::net::IpAddr;
use std::sync::Arc;

use super::*;
use crate::rules::{AppOwner, DomainOwner, IpNet, NamePattern, NameRule, Rule};
use crate::{RuleSet, RuleSetBuilder};

const TENCENT_ADDR: &str = "1.12.0.1";
const ALIBABA_SG_ADDR: &str = "47.74.0.9";
const TIKTOK_APP: &str = "com.zhiliaoapp.musically";

fn src(list: &str, line: u32, rule: &str) -> RuleRef {
    RuleRef {
        list: list.into(),
        line,
        rule: rule.into(),
    }
}

fn name(pattern: &str, action: Action, important: bool, line: u32) -> Rule {
    Rule::Name(NameRule {
        pattern: NamePattern::Subtree(pattern.into()),
        action,
        important,
        dnstype: None,
        denyallow: vec![],
        badfilter: false,
        source: src("test", line, pattern),
    })
}

fn set(rules: Vec<Rule>) -> Arc<RuleSet> {
    set_of(Intent::Tracker, rules)
}

fn set_of(intent: Intent, rules: Vec<Rule>) -> Arc<RuleSet> {
    let mut b = RuleSetBuilder::new().with_intent(intent);
    for r in rules {
        b.add(r);
    }
    Arc::new(b.build())
}

fn ipdb() -> IpDb {
    let mut db = IpDb::new();
    let r = db.load(
        "asn.csv",
        None,
        &b"1.12.0.0,1.12.33.255,45090,Shenzhen Tencent Computer Systems Company Limited\n\
47.74.0.0,47.74.255.255,45102,\"Alibaba (US) Technology Co., Ltd.\"\n"[..],
    );
    assert_eq!(r.error_count, 0);
    let r = db.load(
        "country.csv",
        None,
        &b"1.12.0.0,1.12.255.255,CN\n47.74.0.0,47.74.255.255,SG\n"[..],
    );
    assert_eq!(r.error_count, 0);
    db
}

/// Facts shared by the tests: ByteDance owns tiktokv.com, the TikTok app is ByteDance's.
fn facts() -> Vec<Rule> {
    vec![
        Rule::DomainOwner(DomainOwner {
            domain: "tiktokv.com".into(),
            owner: "ByteDance".into(),
            display_name: "ByteDance".into(),
            source: src("facts", 1, "owns: ByteDance = tiktokv.com"),
        }),
        Rule::AppOwner(AppOwner {
            app: TIKTOK_APP.into(),
            owner: "ByteDance".into(),
            source: src("facts", 2, "app-owner"),
        }),
        Rule::AppOwner(AppOwner {
            app: "com.tencent.mm".into(),
            owner: "Tencent".into(),
            source: src("facts", 3, "app-owner"),
        }),
    ]
}

fn policy(rules: Vec<Rule>, apps: AppRules) -> Policy {
    let mut all = facts();
    all.extend(rules);
    Policy::new(vec![set(all)], ipdb(), apps)
}

/// `decide`, checking that the allocation-free `verdict` agrees (same precedence code).
fn decide(p: &Policy, q: &Query) -> Decision {
    let d = p.decide(q);
    assert_eq!(p.verdict(q), d.verdict, "{q:?}");
    d
}

fn addr(a: &str) -> IpAddr {
    a.parse().unwrap()
}

fn kind(d: &Decision) -> &'static str {
    match d.reason {
        Reason::NoMatch => "no_match",
        Reason::AppBlockingOff => "app_off",
        Reason::Allowlisted { .. } => "allowlist",
        Reason::AppOverride { .. } => "override",
        Reason::FirstParty { .. } => "first_party",
        Reason::NameRule {
            exception: true, ..
        } => "name_exception",
        Reason::NameRule { .. } => "name_block",
        Reason::AddressRule { .. } => "address",
        Reason::OwnerRule { .. } => "owner",
        Reason::CountryRule { .. } => "country",
    }
}

fn app_query<'a>(app: &'a str, name: &'a str) -> Query<'a> {
    Query::name(name).with_app(app)
}

#[test]
fn step10_nothing_matches_allows() {
    let p = policy(vec![], AppRules::default());
    let d = decide(&p, &Query::name("example.org"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Allow, "no_match"));
    assert_eq!(d.certainty, Certainty::Certain);
    assert!(d.owner.is_none() && d.country.is_none());
}

#[test]
fn step1_app_blocking_off_beats_app_block_override() {
    let mut apps = AppRules::default();
    apps.add_override("app", Target::Name("tiktokv.com".into()), Action::Block);
    apps.set_blocking("app", false);
    let p = policy(vec![name("tiktokv.com", Action::Block, true, 1)], apps);
    let d = decide(&p, &app_query("app", "log.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Allow, "app_off"));
    // The owner is still named.
    assert_eq!(d.owner.unwrap().value, "ByteDance");
}

#[test]
fn step2_app_override_beats_allowlist() {
    let mut apps = AppRules::default();
    apps.allowlist.push(Target::Name("tiktokv.com".into()));
    apps.add_override("app", Target::Owner("ByteDance".into()), Action::Block);
    let p = policy(vec![], apps);
    let d = decide(&p, &app_query("app", "log.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Block, "override"));
    assert_eq!(
        d.reason,
        Reason::AppOverride {
            entry: "block owner ByteDance".into()
        }
    );
    // Another app gets the allowlist.
    let d = decide(&p, &app_query("other", "log.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Allow, "allowlist"));
}

#[test]
fn step2_app_override_beats_first_party() {
    let mut apps = AppRules::default();
    apps.add_override(
        TIKTOK_APP,
        Target::Name("log.tiktokv.com".into()),
        Action::Block,
    );
    let p = policy(vec![], apps);
    let d = decide(&p, &app_query(TIKTOK_APP, "log.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Block, "override"));
    let d = decide(&p, &app_query(TIKTOK_APP, "api.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Allow, "first_party"));
}

#[test]
fn step2_app_allow_override_beats_important_block() {
    let mut apps = AppRules::default();
    apps.add_override("app", Target::Name("tiktokv.com".into()), Action::Allow);
    let p = policy(vec![name("tiktokv.com", Action::Block, true, 1)], apps);
    let d = decide(&p, &app_query("app", "log.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Allow, "override"));
}

#[test]
fn step2_most_specific_override_wins_and_allow_wins_ties() {
    let mut apps = AppRules::default();
    apps.add_override("app", Target::Country("CN".into()), Action::Block);
    apps.add_override("app", Target::Asn(45090), Action::Allow);
    let p = policy(vec![], apps.clone());
    let d = decide(&p, &Query::addr(addr(TENCENT_ADDR)).with_app("app"));
    assert_eq!(d.verdict, Verdict::Allow);
    assert_eq!(
        d.reason,
        Reason::AppOverride {
            entry: "allow AS45090".into()
        }
    );
    apps.add_override("app", Target::Asn(45090), Action::Block);
    let p = policy(vec![], apps);
    let d = decide(&p, &Query::addr(addr(TENCENT_ADDR)).with_app("app"));
    assert_eq!(
        d.verdict,
        Verdict::Allow,
        "allow wins a tie on the same target"
    );
}

#[test]
fn step3_allowlist_beats_first_party_and_important_block() {
    let mut apps = AppRules::default();
    apps.allowlist.push(Target::Name("tiktokv.com".into()));
    let p = policy(vec![name("tiktokv.com", Action::Block, true, 1)], apps);
    let d = decide(&p, &app_query(TIKTOK_APP, "log.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Allow, "allowlist"));
    let d = decide(&p, &app_query("other", "log.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Allow, "allowlist"));
}

#[test]
fn step4_first_party_beats_important_block() {
    let p = policy(
        vec![name("tiktokv.com", Action::Block, true, 1)],
        AppRules::default(),
    );
    let d = decide(&p, &app_query(TIKTOK_APP, "log.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Allow, "first_party"));
    assert_eq!(
        d.reason,
        Reason::FirstParty {
            owner: "ByteDance".into()
        }
    );
    // A different app is blocked.
    let d = decide(&p, &app_query("com.example", "log.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Block, "name_block"));
}

#[test]
fn step5_first_party_by_asn_organisation() {
    // A tracker list blocks Tencent's network by address: WeChat (Tencent's app) may reach it.
    let p = policy(
        vec![addr_rule("1.12.0.0", 16, Action::Block, 1)],
        AppRules::default(),
    );
    let d = decide(
        &p,
        &Query::addr(addr(TENCENT_ADDR)).with_app("com.tencent.mm"),
    );
    assert_eq!((d.verdict, kind(&d)), (Verdict::Allow, "first_party"));
    assert_eq!(d.certainty, Certainty::Inferred);
    let d = decide(&p, &Query::addr(addr(TENCENT_ADDR)).with_app("com.example"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Block, "address"));
    assert_eq!(d.intent, Some(Intent::Tracker));
}

#[test]
fn step4_embargo_rules_have_no_first_party_exception() {
    // An ASN rule is an embargo rule: Tencent's own app is blocked from Tencent's network.
    let p = policy(
        vec![Rule::Asn {
            asn: 45090,
            action: Action::Block,
            source: src("test", 1, "AS45090"),
        }],
        AppRules::default(),
    );
    let d = decide(
        &p,
        &Query::addr(addr(TENCENT_ADDR)).with_app("com.tencent.mm"),
    );
    assert_eq!((d.verdict, kind(&d)), (Verdict::Block, "owner"));
    assert_eq!(d.intent, Some(Intent::Embargo));
    // So is an embargo list's name rule for TikTok's own telemetry, and an owner rule.
    let embargo = set_of(
        Intent::Embargo,
        vec![
            name("log.tiktokv.com", Action::Block, false, 1),
            Rule::OwnerName {
                owner: "ByteDance".into(),
                action: Action::Block,
                source: src("e", 2, "owner: ByteDance"),
            },
        ],
    );
    let p = Policy::new(vec![set(facts()), embargo], ipdb(), AppRules::default());
    let d = decide(&p, &app_query(TIKTOK_APP, "log.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Block, "name_block"));
    assert_eq!(d.intent, Some(Intent::Embargo));
    let d = decide(&p, &app_query(TIKTOK_APP, "api.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Block, "owner"));
}

#[test]
fn step4_tracker_exception_does_not_undo_an_embargo() {
    let embargo = set_of(
        Intent::Embargo,
        vec![name("log.tiktokv.com", Action::Block, false, 1)],
    );
    let tracker = set(vec![name("log.tiktokv.com", Action::Allow, true, 1)]);
    let p = Policy::new(vec![tracker, embargo], ipdb(), AppRules::default());
    let d = decide(&p, &Query::name("log.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Block, "name_block"));
    // An exception in an embargo list does (the list's author said so).
    let embargo = set_of(
        Intent::Embargo,
        vec![
            name("tiktokv.com", Action::Block, false, 1),
            name("help.tiktokv.com", Action::Allow, false, 2),
        ],
    );
    let p = Policy::new(vec![embargo], ipdb(), AppRules::default());
    let d = decide(&p, &Query::name("help.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Allow, "name_exception"));
}

/// The whole precedence as a table: allowlist, per-app override, pause (blocking off),
/// embargo, first party, tracker, default. Each row is decided by the step it names, against
/// one policy in which the later steps would decide otherwise.
#[test]
fn precedence_table() {
    const WECHAT: &str = "com.tencent.mm";
    let embargo = set_of(
        Intent::Embargo,
        vec![
            name("log.tiktokv.com", Action::Block, false, 1),
            Rule::Asn {
                asn: 45090,
                action: Action::Block,
                source: src("embargo", 2, "AS45090"),
            },
        ],
    );
    let mut tracker_rules = facts();
    tracker_rules.push(name("tiktokv.com", Action::Block, false, 9));
    let tracker = set(tracker_rules);
    let mut apps = AppRules::default();
    apps.allowlist
        .push(Target::Name("ok.log.tiktokv.com".into()));
    apps.add_override(
        "com.override2",
        Target::Name("log.tiktokv.com".into()),
        Action::Allow,
    );
    apps.add_override(
        "com.override",
        Target::Name("ok.log.tiktokv.com".into()),
        Action::Block,
    );
    apps.add_override(
        "com.paused",
        Target::Name("example.org".into()),
        Action::Block,
    );
    apps.set_blocking("com.paused", false);
    let p = Policy::new(vec![tracker, embargo], ipdb(), apps);

    let rows: &[(&str, &str, Verdict, &str, Option<Intent>)] = &[
        // allowlist beats an embargo rule
        (
            "com.example",
            "ok.log.tiktokv.com",
            Verdict::Allow,
            "allowlist",
            None,
        ),
        // a per-app override beats the allowlist and an embargo rule
        (
            "com.override",
            "ok.log.tiktokv.com",
            Verdict::Block,
            "override",
            None,
        ),
        (
            "com.override2",
            "log.tiktokv.com",
            Verdict::Allow,
            "override",
            None,
        ),
        // blocking off (a pause) beats the app's overrides
        ("com.paused", "example.org", Verdict::Allow, "app_off", None),
        // an embargo rule beats the first-party exception
        (
            TIKTOK_APP,
            "log.tiktokv.com",
            Verdict::Block,
            "name_block",
            Some(Intent::Embargo),
        ),
        (
            WECHAT,
            TENCENT_ADDR,
            Verdict::Block,
            "owner",
            Some(Intent::Embargo),
        ),
        // the first-party exception beats a tracker rule
        (
            TIKTOK_APP,
            "api.tiktokv.com",
            Verdict::Allow,
            "first_party",
            None,
        ),
        // a tracker rule blocks for other apps
        (
            "com.example",
            "api.tiktokv.com",
            Verdict::Block,
            "name_block",
            Some(Intent::Tracker),
        ),
        // nothing matches: allow
        (
            "com.example",
            "example.org",
            Verdict::Allow,
            "no_match",
            None,
        ),
    ];
    for &(app, target, verdict, step, intent) in rows {
        let q = match target.parse::<IpAddr>() {
            Ok(a) => Query::addr(a).with_app(app),
            Err(_) => app_query(app, target),
        };
        let d = decide(&p, &q);
        assert_eq!(
            (d.verdict, kind(&d), d.intent),
            (verdict, step, intent),
            "{app} {target}: {d:?}"
        );
    }
}

#[test]
fn step5_important_block_beats_exception() {
    let p = policy(
        vec![
            name("tiktokv.com", Action::Block, true, 1),
            name("log.tiktokv.com", Action::Allow, false, 2),
        ],
        AppRules::default(),
    );
    let d = decide(&p, &Query::name("log.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Block, "name_block"));
    match d.reason {
        Reason::NameRule { rule, .. } => {
            assert_eq!(rule.line, 1);
            assert_eq!(&*rule.list, "test");
            assert_eq!(rule.rule, "tiktokv.com $important");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn step5_important_exception_beats_important_block() {
    let p = policy(
        vec![
            name("tiktokv.com", Action::Block, true, 1),
            name("log.tiktokv.com", Action::Allow, true, 2),
        ],
        AppRules::default(),
    );
    let d = decide(&p, &Query::name("log.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Allow, "name_exception"));
}

#[test]
fn step6_exception_beats_block_across_rule_sets() {
    let a = set(vec![name("tiktokv.com", Action::Block, false, 1)]);
    let b = set(vec![name("help.tiktokv.com", Action::Allow, false, 7)]);
    let p = Policy::new(vec![a, b], ipdb(), AppRules::default());
    let d = decide(&p, &Query::name("help.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Allow, "name_exception"));
    let d = decide(&p, &Query::name("log.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Block, "name_block"));
}

fn addr_rule(net: &str, len: u8, action: Action, line: u32) -> Rule {
    Rule::Address {
        net: IpNet {
            addr: addr(net),
            prefix_len: len,
        },
        action,
        source: src("test", line, net),
    }
}

#[test]
fn step6_name_rules_beat_address_rules() {
    let p = policy(
        vec![
            name("cdn.example", Action::Allow, false, 1),
            name("ads.example", Action::Block, false, 2),
            addr_rule("1.12.0.0", 16, Action::Block, 3),
            addr_rule("47.74.0.0", 16, Action::Allow, 4),
        ],
        AppRules::default(),
    );
    let mut q = Query::name("cdn.example");
    q.addr = Some(addr(TENCENT_ADDR));
    let d = decide(&p, &q);
    assert_eq!((d.verdict, kind(&d)), (Verdict::Allow, "name_exception"));
    let mut q = Query::name("ads.example");
    q.addr = Some(addr(ALIBABA_SG_ADDR));
    let d = decide(&p, &q);
    assert_eq!((d.verdict, kind(&d)), (Verdict::Block, "name_block"));
}

#[test]
fn step7_address_rules_beat_owner_rules() {
    // Within the embargo step (an address rule of a tracker list comes after every embargo).
    let p = Policy::new(
        vec![set_of(
            Intent::Embargo,
            vec![
                addr_rule("1.12.0.0", 24, Action::Allow, 1),
                Rule::Asn {
                    asn: 45090,
                    action: Action::Block,
                    source: src("test", 2, "AS45090"),
                },
            ],
        )],
        ipdb(),
        AppRules::default(),
    );
    let d = decide(&p, &Query::addr(addr(TENCENT_ADDR)));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Allow, "address"));
    assert_eq!(d.certainty, Certainty::Certain);
    let d = decide(&p, &Query::addr(addr("1.12.1.1")));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Block, "owner"));
    assert_eq!(d.certainty, Certainty::Inferred);
}

#[test]
fn step8_owner_rules_beat_country_rules() {
    let p = policy(
        vec![
            Rule::OwnerName {
                owner: "Alibaba".into(),
                action: Action::Allow,
                source: src("test", 1, "allow owner: Alibaba"),
            },
            Rule::Country {
                code: *b"SG",
                action: Action::Block,
                source: src("test", 2, "country: SG"),
            },
            Rule::OwnerName {
                owner: "Tencent".into(),
                action: Action::Block,
                source: src("test", 3, "owner: Tencent"),
            },
        ],
        AppRules::default(),
    );
    let d = decide(&p, &Query::addr(addr(ALIBABA_SG_ADDR)));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Allow, "owner"));
    let d = decide(&p, &Query::addr(addr(TENCENT_ADDR)));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Block, "owner"));
    let owner = d.owner.unwrap();
    assert_eq!(owner.asn, Some(45090));
    assert_eq!(
        owner.source,
        AttributionSource::Database {
            database: "asn.csv".into()
        }
    );
}

#[test]
fn step8_owner_name_rule_matches_list_owner() {
    let p = policy(
        vec![Rule::OwnerName {
            owner: "bytedance".into(),
            action: Action::Block,
            source: src("test", 1, "owner: ByteDance"),
        }],
        AppRules::default(),
    );
    let d = decide(&p, &Query::name("anything.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Block, "owner"));
    assert_eq!(d.certainty, Certainty::Certain);
}

#[test]
fn step9_country_rules() {
    let p = policy(
        vec![Rule::Country {
            code: *b"CN",
            action: Action::Block,
            source: src("test", 1, "country: CN"),
        }],
        AppRules::default(),
    );
    let d = decide(&p, &Query::addr(addr(TENCENT_ADDR)));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Block, "country"));
    let c = d.country.unwrap();
    assert_eq!(c.value, "CN");
    assert_eq!(
        c.source,
        AttributionSource::Database {
            database: "country.csv".into()
        }
    );
    let d = decide(&p, &Query::addr(addr(ALIBABA_SG_ADDR)));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Allow, "no_match"));
    assert_eq!(d.country.unwrap().value, "SG");
    assert!(d.owner.unwrap().value.starts_with("Alibaba"));
}

#[test]
fn certainty_follows_how_the_name_was_learned() {
    let p = policy(
        vec![name("tiktokv.com", Action::Block, false, 1)],
        AppRules::default(),
    );
    let mut q = Query::name("log.tiktokv.com");
    q.addr = Some(addr(TENCENT_ADDR));
    q.name_source = NameSource::DnsAnswer;
    q.names_sharing_address = 1;
    let d = decide(&p, &q);
    assert_eq!(d.certainty, Certainty::Certain);
    assert_eq!(d.owner.as_ref().unwrap().certainty, Certainty::Certain);
    q.names_sharing_address = 3;
    let d = decide(&p, &q);
    assert_eq!(d.certainty, Certainty::Inferred);
    assert_eq!(d.owner.unwrap().certainty, Certainty::Inferred);
    q.name_source = NameSource::TlsSni;
    assert_eq!(decide(&p, &q).certainty, Certainty::Certain);
    // Address alone: database facts are inferred.
    let d = decide(&p, &Query::addr(addr(TENCENT_ADDR)));
    assert_eq!(d.owner.unwrap().certainty, Certainty::Inferred);
    assert_eq!(d.country.unwrap().certainty, Certainty::Inferred);
}

#[test]
fn a_rented_cloud_server_is_attributed_as_hosted_there() {
    let p = policy(vec![], AppRules::default());
    let d = decide(&p, &Query::addr(addr(ALIBABA_SG_ADDR)));
    let owner = d.owner.unwrap();
    assert_eq!(owner.value, "Alibaba Cloud (hosting)");
    assert_eq!(
        (owner.asn, owner.certainty),
        (Some(45102), Certainty::Inferred)
    );
    assert_eq!(d.country.unwrap().value, "SG");
    // An owner rule still matches the registry organisation.
    let p = policy(
        vec![Rule::OwnerName {
            owner: "Alibaba".into(),
            action: Action::Block,
            source: src("test", 1, "owner: Alibaba"),
        }],
        AppRules::default(),
    );
    let d = decide(&p, &Query::addr(addr(ALIBABA_SG_ADDR)));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Block, "owner"));
}

#[test]
fn attribute_keeps_owner_and_country_apart() {
    let p = policy(vec![], AppRules::default());
    let (owner, country) = p.attribute(Some("LOG.TikTokV.com."), Some(addr(ALIBABA_SG_ADDR)));
    let owner = owner.unwrap();
    assert_eq!(owner.value, "ByteDance");
    assert_eq!(owner.certainty, Certainty::Certain);
    assert_eq!(
        owner.source,
        AttributionSource::List {
            list: "facts".into()
        }
    );
    assert_eq!(country.unwrap().value, "SG");
    assert_eq!(p.attribute(None, None), (None, None));
}

#[test]
fn dns_type_reaches_the_rules() {
    let p = policy(
        vec![Rule::Name(NameRule {
            pattern: NamePattern::Subtree("example.com".into()),
            action: Action::Block,
            important: false,
            dnstype: Some(crate::DnsTypeFilter {
                include: vec![65],
                exclude: vec![],
            }),
            denyallow: vec![],
            badfilter: false,
            source: src("test", 1, "||example.com^$dnstype=HTTPS"),
        })],
        AppRules::default(),
    );
    let mut q = Query::name("example.com");
    q.dns_type = Some(65);
    assert_eq!(decide(&p, &q).verdict, Verdict::Block);
    q.dns_type = Some(1);
    assert_eq!(decide(&p, &q).verdict, Verdict::Allow);
}

#[test]
fn system_apps_default_to_blocking_off() {
    let mut apps = AppRules::default();
    apps.app_mut("android").system = true;
    let p = policy(vec![name("tiktokv.com", Action::Block, false, 1)], apps);
    let d = decide(&p, &app_query("android", "log.tiktokv.com"));
    assert_eq!((d.verdict, kind(&d)), (Verdict::Allow, "app_off"));
    let d = decide(&p, &app_query("new.app", "log.tiktokv.com"));
    assert_eq!(d.verdict, Verdict::Block);
}

#[test]
fn policy_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Policy>();
    check::<crate::PolicyHandle>();
    check::<RuleSet>();
}

#[test]
fn needs_normalizing_finds_every_uppercase_letter_and_a_trailing_dot() {
    // Every byte value at every position of names of 1 to 70 bytes, against the plain
    // definition: the word-at-a-time test must agree on all of them.
    let reference = |n: &[u8]| n.last() == Some(&b'.') || n.iter().any(u8::is_ascii_uppercase);
    for len in 1..70usize {
        for at in 0..len {
            for b in 0..=255u8 {
                let mut name = vec![b'a'; len];
                name[at] = b;
                // Only valid UTF-8 reaches a query; other bytes are covered by the ASCII ones.
                let Ok(text) = std::str::from_utf8(&name) else {
                    continue;
                };
                assert_eq!(
                    super::needs_normalizing(text),
                    reference(&name),
                    "{len} bytes, {b:#x} at {at}"
                );
            }
        }
    }
    assert!(!super::needs_normalizing(""));
    assert!(super::needs_normalizing("é.Ü.example.COM"));
    assert!(!super::needs_normalizing("é.ü.example.com"));
}
