//! The decision: rule sets + IP databases + per-app rules -> allow or block, with one reason.
//!
//! [`Policy::decide`] is the single place where precedence is written; its doc comment lists the
//! order and says why, and `tests` checks each step against the one below it.

use std::net::IpAddr;
use std::sync::Arc;

use crate::apps::{AppRules, Target};
use crate::builtin::EmbargoLevel;
use crate::decision::{
    Attribution, AttributionSource, Certainty, Decision, NameSource, Query, Reason, RuleRef,
    Verdict,
};
use crate::format::read_u64;
use crate::ipdb::{AsnInfo, CountryInfo, IpDb};
use crate::rules::{Action, Intent};
use crate::ruleset::{
    owner_matches, MetaRule, NameClass, NameHitRef, NameMatch, OwnerFact, RuleSet,
};

/// Everything needed to decide: compiled rule sets, IP databases and the person's app rules.
///
/// Immutable once built; share it as `Arc<Policy>` (see [`crate::PolicyHandle`] for replacing
/// it while traffic flows). `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Arc<RuleSet>>,
    ipdb: Arc<IpDb>,
    apps: Arc<AppRules>,
}

/// The owner of an endpoint, before it becomes an [`Attribution`].
#[derive(Debug, Clone, Copy)]
enum OwnerRef<'p> {
    /// A list says so (by name); `set` is the rule set that holds the fact.
    List {
        fact: &'p OwnerFact,
        set: &'p RuleSet,
    },
    /// An ASN database says so (by address).
    Asn(AsnInfo<'p>),
}

/// What is known about the endpoint of a query.
struct Facts<'p, 'q> {
    name: Option<&'q str>,
    name_certainty: Certainty,
    owner: Option<OwnerRef<'p>>,
    asn: Option<AsnInfo<'p>>,
    country: Option<CountryInfo<'p>>,
}

impl Policy {
    /// A policy over these rule sets (asked in order), IP databases and app rules.
    pub fn new(rules: Vec<Arc<RuleSet>>, ipdb: impl Into<Arc<IpDb>>, apps: AppRules) -> Policy {
        Policy {
            rules,
            ipdb: ipdb.into(),
            apps: Arc::new(apps),
        }
    }

    /// The built-in default: Embargo's own list of ByteDance, Tencent and Alibaba data
    /// endpoints and networks, with the bundled IP databases, and default app rules. Needs no
    /// file or download. Built once per process and shared.
    pub fn builtin() -> Policy {
        Policy::builtin_at(EmbargoLevel::Telemetry)
    }

    /// The built-in default at this embargo level (see [`EmbargoLevel`]).
    pub fn builtin_at(level: EmbargoLevel) -> Policy {
        Policy::new(
            crate::builtin::rule_sets(level),
            crate::builtin::shared_ipdb(),
            AppRules::default(),
        )
    }

    /// The same rules and databases with other app rules (cheap: shares everything else).
    pub fn with_apps(&self, apps: AppRules) -> Policy {
        Policy {
            rules: self.rules.clone(),
            ipdb: self.ipdb.clone(),
            apps: Arc::new(apps),
        }
    }

    /// The same app rules and databases with other rule sets.
    pub fn with_rules(&self, rules: Vec<Arc<RuleSet>>) -> Policy {
        Policy {
            rules,
            ipdb: self.ipdb.clone(),
            apps: self.apps.clone(),
        }
    }

    /// The rule sets, in the order they are asked.
    pub fn rules(&self) -> &[Arc<RuleSet>] {
        &self.rules
    }

    /// The IP databases.
    pub fn ipdb(&self) -> &Arc<IpDb> {
        &self.ipdb
    }

    /// The app rules.
    pub fn apps(&self) -> &AppRules {
        &self.apps
    }

    /// Who owns the endpoint and where it is, each with its source and certainty. A name given
    /// here counts as stated by the user ([`Certainty::Certain`]); the address facts come from
    /// databases ([`Certainty::Inferred`]).
    pub fn attribute(
        &self,
        name: Option<&str>,
        addr: Option<IpAddr>,
    ) -> (Option<Attribution>, Option<Attribution>) {
        let mut q = match (name, addr) {
            (Some(n), _) => Query::name(n),
            (None, Some(a)) => Query::addr(a),
            (None, None) => return (None, None),
        };
        q.addr = addr;
        let lowered;
        let name = match q.name {
            Some(n) if needs_normalizing(n) => {
                lowered = normalize(n);
                Some(lowered.as_str())
            }
            other => other,
        };
        let facts = self.facts(&q, name);
        (self.owner_attribution(&facts), country_attribution(&facts))
    }

    /// Decides one query. Precedence, first match wins:
    ///
    /// 1. **App blocking off** (or paused) -> allow. The person turned Embargo off for this
    ///    app; nothing else may second-guess that.
    /// 2. **Per-app override** (allow or block a name, ASN, owner or country for this app) ->
    ///    as it says. It is the most specific statement a person can make, so it beats every
    ///    list and the global allowlist. Among overrides the most specific target wins
    ///    (name, then ASN, then owner, then country) and allow beats block on the same target.
    /// 3. **Global allowlist** -> allow. The person's word beats any list, including
    ///    `$important` rules (those are a list author's priority, not the user's).
    /// 4. **Embargo rules** ([`Intent::Embargo`]: Embargo's own lists, and every ASN, owner
    ///    and country rule): the steps below, in this order, over embargo rules only. No
    ///    first-party exception: an embargo is the person's statement that this company or
    ///    country must not get their data, from the company's own apps least of all.
    ///    a. `$important` name rules, then name rules (an exception beats a block);
    ///    b. address rules (most specific network wins; allow on an identical network);
    ///    c. ASN rules, then owner-name rules (list owner or AS organisation), allow first;
    ///    d. country rules, allow first.
    /// 5. **First party** (the app's owner, from app-owner facts, owns the endpoint) -> allow.
    ///    Blocking an app from its own servers with a third-party tracker list breaks it and
    ///    protects nothing (DuckDuckGo's packageNames rule).
    /// 6. **Tracker rules** ([`Intent::Tracker`]: third-party lists): 4a and 4b over them.
    /// 7. No rule -> allow ([`Reason::NoMatch`]).
    ///
    /// Within 4 and 6 the steps go from the most specific evidence (a name the app used) to
    /// the least (where a database places an address), so an exception for a name is not
    /// undone by a block of the network it is hosted on, and an allowed address is not
    /// undone by its country. An exception in a tracker list cannot undo an embargo: the
    /// allowlist and per-app overrides are the person's way to do that.
    pub fn decide(&self, q: &Query) -> Decision {
        let lowered;
        let name = match q.name {
            Some(n) if needs_normalizing(n) => {
                lowered = normalize(n);
                Some(lowered.as_str())
            }
            other => other,
        };
        let facts = self.facts(q, name);
        let (outcome, certainty) = self.evaluate(q, &facts);
        let intent = match &outcome {
            Outcome::Name(set, ..) => Some(self.rules[*set].intent()),
            Outcome::Address(set, _) => Some(set.intent()),
            Outcome::Owner(..) | Outcome::Country(..) => Some(Intent::Embargo),
            _ => None,
        };
        // The category the deciding rule's list gives its line (name rules set it below).
        let mut category = match &outcome {
            Outcome::Address(set, rule)
            | Outcome::Owner(set, rule)
            | Outcome::Country(set, rule) => {
                set.category_of(rule.list, rule.line).map(str::to_owned)
            }
            _ => None,
        };
        let (verdict, reason) = match outcome {
            Outcome::AppBlockingOff => (Verdict::Allow, Reason::AppBlockingOff),
            Outcome::AppOverride(target, action) => (
                verdict_of(action),
                Reason::AppOverride {
                    entry: format!("{} {target}", action_word(action)),
                },
            ),
            Outcome::Allowlisted(target) => (
                Verdict::Allow,
                Reason::Allowlisted {
                    entry: target.to_string(),
                },
            ),
            Outcome::FirstParty(owner) => (
                Verdict::Allow,
                Reason::FirstParty {
                    owner: owner.to_owned(),
                },
            ),
            Outcome::Name(set, hit, verdict) => {
                let rule_set = &self.rules[set];
                let hit = rule_set.resolve_hit(facts.name.unwrap_or_default(), hit);
                category = rule_set.category_of(hit.list, hit.line).map(str::to_owned);
                let reason = Reason::NameRule {
                    rule: RuleRef {
                        list: rule_set.list_ref(hit.list),
                        line: hit.line,
                        rule: hit.rule,
                    },
                    exception: hit.allow,
                };
                (verdict, reason)
            }
            Outcome::Address(set, rule) => (
                verdict_of_rule(rule),
                Reason::AddressRule {
                    rule: rule_ref(set, rule),
                },
            ),
            Outcome::Owner(set, rule) => (
                verdict_of_rule(rule),
                Reason::OwnerRule {
                    rule: rule_ref(set, rule),
                },
            ),
            Outcome::Country(set, rule) => (
                verdict_of_rule(rule),
                Reason::CountryRule {
                    rule: rule_ref(set, rule),
                },
            ),
            Outcome::NoMatch => (Verdict::Allow, Reason::NoMatch),
        };
        let owner = self.owner_attribution(&facts);
        let certainty = certainty.unwrap_or(match &owner {
            Some(o) => o.certainty,
            None => facts.name_certainty,
        });
        Decision {
            verdict,
            reason,
            intent,
            owner,
            country: country_attribution(&facts),
            certainty,
            category,
        }
    }

    /// Only the verdict of [`Policy::decide`] (same precedence, same code), without building
    /// the explanation: no allocation on the common path. For hot paths that log nothing.
    pub fn verdict(&self, q: &Query) -> Verdict {
        let lowered;
        let name = match q.name {
            Some(n) if needs_normalizing(n) => {
                lowered = normalize(n);
                Some(lowered.as_str())
            }
            other => other,
        };
        let facts = self.facts(q, name);
        match self.evaluate(q, &facts).0 {
            Outcome::AppBlockingOff
            | Outcome::Allowlisted(_)
            | Outcome::FirstParty(_)
            | Outcome::NoMatch => Verdict::Allow,
            Outcome::AppOverride(_, action) => verdict_of(action),
            Outcome::Name(_, _, verdict) => verdict,
            Outcome::Address(_, rule) | Outcome::Owner(_, rule) | Outcome::Country(_, rule) => {
                verdict_of_rule(rule)
            }
        }
    }

    /// The precedence documented on [`Policy::decide`], step by step: which step decided, and
    /// how certain the facts behind it are (`None` = the certainty of the owner attribution).
    fn evaluate<'p>(
        &'p self,
        q: &Query<'_>,
        facts: &Facts<'p, '_>,
    ) -> (Outcome<'p>, Option<Certainty>) {
        // 1. App blocking off.
        if !self.apps.blocking_enabled(q.app) {
            return (Outcome::AppBlockingOff, None);
        }
        // 2. Per-app override.
        if let Some((target, action)) = self.app_override(q.app, facts) {
            let certainty = self.target_certainty(target, facts);
            return (Outcome::AppOverride(target, action), Some(certainty));
        }
        // 3. Global allowlist.
        if let Some(target) = self
            .apps
            .allowlist
            .iter()
            .find(|t| self.target_matches(t, facts))
        {
            let certainty = self.target_certainty(target, facts);
            return (Outcome::Allowlisted(target), Some(certainty));
        }
        // Name rules of both intents in one walk over the sets.
        let [embargo_name, tracker_name] = match facts.name {
            Some(name) => self.name_rules(name, q.dns_type),
            None => [None, None],
        };
        // 4. Embargo rules.
        if let Some(found) = self.rules_of(Intent::Embargo, embargo_name, q, facts) {
            return found;
        }
        // 5. First party.
        if let Some(owner) = self.first_party(q.app, facts) {
            return (
                Outcome::FirstParty(owner),
                Some(self.owner_certainty(facts)),
            );
        }
        // 6. Tracker rules.
        if let Some(found) = self.rules_of(Intent::Tracker, tracker_name, q, facts) {
            return found;
        }
        // 7. Nothing matched.
        (Outcome::NoMatch, None)
    }

    /// Steps 4a-4d (embargo) or 6 (tracker, names and addresses only) of the precedence.
    /// `name_hit`: this intent's deciding name rule ([`Policy::name_rules`]).
    fn rules_of<'p>(
        &'p self,
        intent: Intent,
        name_hit: Option<NameHit>,
        q: &Query<'_>,
        facts: &Facts<'p, '_>,
    ) -> Option<(Outcome<'p>, Option<Certainty>)> {
        // a. Name rules: important exception, important block, exception, block.
        if let Some((set, hit, verdict)) = name_hit {
            return Some((Outcome::Name(set, hit, verdict), Some(facts.name_certainty)));
        }
        // b. Address rules: the packet goes to that address, so the fact is certain.
        if let Some(addr) = q.addr {
            if let Some((set, rule)) = self.first_rule(intent, |s| s.match_addr(addr)) {
                return Some((Outcome::Address(set, rule), Some(Certainty::Certain)));
            }
        }
        if intent == Intent::Tracker {
            return None;
        }
        // c. Owner rules: ASN (a database fact: inferred), then owner name.
        if let Some(asn) = facts.asn {
            if let Some((set, rule)) = self.first_meta_rule(|s| s.match_asn(asn.asn)) {
                return Some((Outcome::Owner(set, rule), Some(Certainty::Inferred)));
            }
        }
        if let Some((set, rule)) = self.owner_rule(facts) {
            return Some((Outcome::Owner(set, rule), Some(self.owner_certainty(facts))));
        }
        // d. Country rules (a database fact: inferred).
        if let Some(country) = facts.country {
            if let Some((set, rule)) = self.first_meta_rule(|s| s.match_country(country.code)) {
                return Some((Outcome::Country(set, rule), Some(Certainty::Inferred)));
            }
        }
        None
    }

    /// The name rule that decides for each intent (`[embargo, tracker]`): the strongest class
    /// any set of that intent has (important exception, important block, exception, block),
    /// from the first set that has it.
    fn name_rules(&self, name: &str, dns_type: Option<u16>) -> [Option<NameHit>; 2] {
        let mut best: [Option<(NameClass, usize, NameHitRef)>; 2] = [None, None];
        for (i, set) in self.rules.iter().enumerate() {
            let mut m = NameMatch::default();
            set.match_name(name, dns_type, &mut m);
            if let Some((class, hit)) = m.strongest() {
                let slot = &mut best[usize::from(set.intent() == Intent::Tracker)];
                // Strictly stronger: on a tie the earlier set keeps it.
                if slot.is_none_or(|(b, _, _)| class < b) {
                    *slot = Some((class, i, hit));
                }
            }
        }
        best.map(|b| b.map(|(class, set, hit)| (set, hit, class.verdict())))
    }

    /// The first allow rule any set of this intent gives, else the first block rule.
    fn first_rule<'s>(
        &'s self,
        intent: Intent,
        f: impl Fn(&'s RuleSet) -> Option<&'s MetaRule>,
    ) -> Option<(&'s RuleSet, &'s MetaRule)> {
        self.first_rule_where(|s| s.intent() == intent, f)
    }

    /// [`Policy::first_rule`] over every set: ASN, owner and country rules are embargo rules
    /// whatever list holds them.
    fn first_meta_rule<'s>(
        &'s self,
        f: impl Fn(&'s RuleSet) -> Option<&'s MetaRule>,
    ) -> Option<(&'s RuleSet, &'s MetaRule)> {
        self.first_rule_where(|_| true, f)
    }

    fn first_rule_where<'s>(
        &'s self,
        keep: impl Fn(&RuleSet) -> bool,
        f: impl Fn(&'s RuleSet) -> Option<&'s MetaRule>,
    ) -> Option<(&'s RuleSet, &'s MetaRule)> {
        let mut block = None;
        for set in self.rules.iter().filter(|s| keep(s)) {
            if let Some(rule) = f(set) {
                if rule.allow {
                    return Some((set, rule));
                }
                block = block.or(Some((&**set, rule)));
            }
        }
        block
    }

    fn owner_rule(&self, facts: &Facts<'_, '_>) -> Option<(&RuleSet, &MetaRule)> {
        if !self.rules.iter().any(|s| s.has_owner_rules()) {
            return None;
        }
        let mut candidates: [Option<&str>; 3] = [None; 3];
        if let Some(OwnerRef::List { fact, .. }) = facts.owner {
            candidates[0] = Some(&fact.owner);
            candidates[1] = Some(&fact.display_name);
        }
        if let Some(asn) = facts.asn {
            candidates[2] = Some(asn.org);
        }
        self.first_meta_rule(|s| {
            candidates
                .iter()
                .flatten()
                .filter_map(|o| s.match_owner(o))
                .min_by_key(|r| !r.allow)
        })
    }

    fn facts<'p, 'q>(&'p self, q: &Query<'_>, name: Option<&'q str>) -> Facts<'p, 'q> {
        let name_certainty = match (name, q.name_source) {
            (None, _) => Certainty::Unknown,
            (Some(_), NameSource::DnsAnswer) if q.names_sharing_address > 1 => Certainty::Inferred,
            (Some(_), _) => Certainty::Certain,
        };
        let asn = q.addr.and_then(|a| self.ipdb.lookup_asn(a));
        let country = q.addr.and_then(|a| self.ipdb.lookup_country(a));
        let list_owner = name.and_then(|n| {
            self.rules.iter().find_map(|s| {
                s.owner_of_name(n)
                    .map(|fact| OwnerRef::List { fact, set: s })
            })
        });
        Facts {
            name,
            name_certainty,
            owner: list_owner.or(asn.map(OwnerRef::Asn)),
            asn,
            country,
        }
    }

    fn owner_certainty(&self, facts: &Facts<'_, '_>) -> Certainty {
        match facts.owner {
            Some(OwnerRef::List { .. }) => facts.name_certainty,
            Some(OwnerRef::Asn(_)) => Certainty::Inferred,
            None => Certainty::Unknown,
        }
    }

    fn owner_attribution(&self, facts: &Facts<'_, '_>) -> Option<Attribution> {
        let certainty = self.owner_certainty(facts);
        match facts.owner? {
            OwnerRef::List { fact, set } => Some(Attribution {
                value: fact.display_name.clone(),
                asn: None,
                source: AttributionSource::List {
                    list: set.list_name(fact.list).to_owned(),
                },
                certainty,
            }),
            OwnerRef::Asn(info) => Some(Attribution {
                // A rented cloud server is named as hosted there, not as the cloud's own.
                value: crate::builtin::hosting_owner(info.asn)
                    .map_or_else(|| info.org.to_owned(), str::to_owned),
                asn: Some(info.asn),
                source: AttributionSource::Database {
                    database: info.database.to_owned(),
                },
                certainty,
            }),
        }
    }

    fn app_override<'a>(
        &'a self,
        app: Option<&str>,
        facts: &Facts<'_, '_>,
    ) -> Option<(&'a Target, Action)> {
        let settings = self.apps.app(app?)?;
        settings
            .overrides
            .iter()
            .filter(|o| self.target_matches(&o.target, facts))
            .min_by_key(|o| (target_rank(&o.target), o.action != Action::Allow))
            .map(|o| (&o.target, o.action))
    }

    fn target_matches(&self, target: &Target, facts: &Facts<'_, '_>) -> bool {
        match target {
            Target::Name(domain) => facts
                .name
                .is_some_and(|n| crate::ruleset::in_subtree(n, &normalize(domain))),
            Target::Asn(asn) => facts.asn.is_some_and(|a| a.asn == *asn),
            Target::Owner(owner) => {
                let owner = owner.trim();
                let list = match facts.owner {
                    Some(OwnerRef::List { fact, .. }) => {
                        owner_matches(owner, &fact.owner)
                            || owner_matches(owner, &fact.display_name)
                    }
                    _ => false,
                };
                list || facts.asn.is_some_and(|a| owner_matches(owner, a.org))
            }
            Target::Country(code) => facts
                .country
                .is_some_and(|c| c.code_str().eq_ignore_ascii_case(code.trim())),
        }
    }

    fn target_certainty(&self, target: &Target, facts: &Facts<'_, '_>) -> Certainty {
        match target {
            Target::Name(_) => facts.name_certainty,
            Target::Owner(_) => self.owner_certainty(facts),
            Target::Asn(_) | Target::Country(_) => Certainty::Inferred,
        }
    }

    /// The app's owner, when it also owns the endpoint. Owners match when equal ignoring case,
    /// or when the app owner's first word names the AS organisation ("ByteDance Ltd." and
    /// "Bytedance Inc."): list owners and registry names are spelled differently.
    fn first_party<'p>(&'p self, app: Option<&str>, facts: &Facts<'_, '_>) -> Option<&'p str> {
        let app = app?;
        let endpoint = facts.owner?;
        let app_owner = self.rules.iter().find_map(|s| s.owner_of_app(app))?;
        let same = match endpoint {
            OwnerRef::List { fact, .. } => {
                fact.owner.eq_ignore_ascii_case(&app_owner.owner)
                    || fact.display_name.eq_ignore_ascii_case(&app_owner.owner)
                    || first_word(&app_owner.owner).is_some_and(|w| owner_matches(w, &fact.owner))
            }
            OwnerRef::Asn(info) => {
                first_word(&app_owner.owner).is_some_and(|w| owner_matches(w, info.org))
            }
        };
        same.then_some(app_owner.owner.as_str())
    }
}

/// A deciding name rule: rule set index, hit, verdict.
type NameHit = (usize, NameHitRef, Verdict);

/// Which step of the precedence decided, with borrowed references only (no allocation).
enum Outcome<'p> {
    AppBlockingOff,
    AppOverride(&'p Target, Action),
    Allowlisted(&'p Target),
    FirstParty(&'p str),
    /// Rule set index, hit, verdict.
    Name(usize, NameHitRef, Verdict),
    Address(&'p RuleSet, &'p MetaRule),
    Owner(&'p RuleSet, &'p MetaRule),
    Country(&'p RuleSet, &'p MetaRule),
    NoMatch,
}

fn country_attribution(facts: &Facts<'_, '_>) -> Option<Attribution> {
    facts.country.map(|c| Attribution {
        value: c.code_str().to_owned(),
        asn: None,
        source: AttributionSource::Database {
            database: c.database.to_owned(),
        },
        certainty: Certainty::Inferred,
    })
}

fn rule_ref(set: &RuleSet, rule: &MetaRule) -> RuleRef {
    RuleRef {
        list: set.list_ref(rule.list),
        line: rule.line,
        rule: rule.rule.as_str().into(),
    }
}

fn verdict_of(action: Action) -> Verdict {
    match action {
        Action::Allow => Verdict::Allow,
        Action::Block => Verdict::Block,
    }
}

fn verdict_of_rule(rule: &MetaRule) -> Verdict {
    if rule.allow {
        Verdict::Allow
    } else {
        Verdict::Block
    }
}

fn action_word(action: Action) -> &'static str {
    match action {
        Action::Allow => "allow",
        Action::Block => "block",
    }
}

/// Override specificity: lower is more specific.
fn target_rank(target: &Target) -> u8 {
    match target {
        Target::Name(_) => 0,
        Target::Asn(_) => 1,
        Target::Owner(_) => 2,
        Target::Country(_) => 3,
    }
}

/// The first alphanumeric word of an owner name, at least 3 characters ("ByteDance Ltd." ->
/// "ByteDance"); shorter words are too ambiguous to match organisations by.
fn first_word(owner: &str) -> Option<&str> {
    owner
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| !w.is_empty())
        .filter(|w| w.len() >= 3)
}

/// Whether `name` has a trailing dot or an uppercase letter. Runs on every name decision, so
/// it reads 8 bytes at a time and tests them together (see [`upper_bytes`]); names up to 32
/// bytes, nearly all of them, take a fixed four words with no branch on the length.
fn needs_normalizing(name: &str) -> bool {
    let bytes = name.as_bytes();
    let len = bytes.len();
    if name.ends_with('.') {
        return true;
    }
    if len < 8 {
        return bytes.iter().any(u8::is_ascii_uppercase);
    }
    // Words at fixed steps, clamped to the last whole word: a word read twice is harmless.
    let last = len - 8;
    let word = |at: usize| {
        let at = at.min(last);
        upper_bytes(read_u64(bytes, at))
    };
    let mut upper = word(0) | word(8) | word(16) | word(24);
    let mut at = 32;
    while at < len {
        upper |= word(at);
        at += 8;
    }
    upper != 0
}

/// The top bit of each byte of `w` that is an ASCII uppercase letter (`A` to `Z`), and
/// nothing else: bytes of 0x80 and above are not ASCII, and the sums cannot carry between
/// bytes because each is taken of 7-bit values.
fn upper_bytes(w: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low = w & LOW7;
    // Top bit set where the low 7 bits are >= 'A' (0x41), and where they are > 'Z' (0x5a).
    let at_least_a = low + 0x3f3f_3f3f_3f3f_3f3f;
    let above_z = low + 0x2525_2525_2525_2525;
    at_least_a & !above_z & !w & HIGH
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests;
