//! The compiler: [`RuleSetBuilder`] collects rules and writes them as a compiled file
//! (name index, side table, address ranges, metadata) that a [`RuleSet`] opens.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::categories::Categories;
use super::ranges::flatten;
use super::{
    index, AppOwnerFact, Combination, LabelPattern, Meta, MetaRule, NameEntry, OwnerFact,
    PatternEntry, RuleSet, SideEntry, REGEX_SIZE_LIMIT, SIDE_COMBINATION,
};
use crate::format::{self, SectionId};
use crate::rules::{Action, DnsTypeFilter, Intent, IpNet, NamePattern, Rule};

/// What building found worth reporting (rules dropped, with reasons).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildReport {
    /// Rules removed by a matching `$badfilter`.
    pub badfiltered: u64,
    /// Regex rules refused (invalid or over the size budget), with the reason.
    pub rejected: Vec<(String, String)>,
    /// Duplicate rules merged.
    pub duplicates: u64,
}

/// Collects rules, then compiles them into a [`RuleSet`].
#[derive(Debug, Default)]
pub struct RuleSetBuilder {
    rules: Vec<Rule>,
    intent: Intent,
}

impl RuleSetBuilder {
    /// An empty builder.
    pub fn new() -> RuleSetBuilder {
        RuleSetBuilder::default()
    }

    /// Sets the intent of the set's name and address rules ([`Intent::Tracker`] unless set;
    /// see [`crate::parse::Format::intent`] for each format's own).
    pub fn set_intent(&mut self, intent: Intent) {
        self.intent = intent;
    }

    /// The builder with this intent.
    pub fn with_intent(mut self, intent: Intent) -> RuleSetBuilder {
        self.intent = intent;
        self
    }

    /// Adds one rule (parsers call this for every rule they produce).
    pub fn add(&mut self, rule: Rule) {
        self.rules.push(rule);
    }

    /// Rules added so far.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule was added.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Compiles the rules. Rules that cannot be compiled (a regex over budget) are dropped;
    /// use [`RuleSetBuilder::build_with_report`] to see them.
    pub fn build(self) -> RuleSet {
        self.build_with_report().0
    }

    /// Compiles the rules and reports what was dropped.
    pub fn build_with_report(self) -> (RuleSet, BuildReport) {
        let (bytes, report) = self.compile();
        match RuleSet::from_bytes(bytes) {
            Ok(set) => (set, report),
            // Invariant: `compile` writes a file that `from_bytes` accepts (tested); if that were
            // ever broken, an empty set is the safe answer rather than a panic on the packet path.
            Err(err) => {
                log::error!("freshly compiled rule set failed to open: {err}");
                let empty = Compiler::default().finish();
                (
                    RuleSet::from_bytes(empty).unwrap_or_else(|_| unreachable_empty()),
                    report,
                )
            }
        }
    }

    /// Compiles the rules into the bytes of a compiled file.
    pub fn compile(self) -> (Vec<u8>, BuildReport) {
        let mut c = Compiler::default();
        c.meta.intent = self.intent;
        let mut report = BuildReport::default();
        // `$badfilter` disables the identical rule without it, across every list (AdGuard).
        let bad: HashSet<BadKey> = self
            .rules
            .iter()
            .filter_map(|r| match r {
                Rule::Name(n) if n.badfilter => Some(BadKey::of(n)),
                _ => None,
            })
            .collect();
        for rule in self.rules {
            match rule {
                Rule::Name(n) => {
                    if n.badfilter {
                        continue;
                    }
                    if !bad.is_empty() && bad.contains(&BadKey::of(&n)) {
                        report.badfiltered += 1;
                        continue;
                    }
                    let list = c.list(&n.source.list);
                    let entry = NameEntry {
                        list,
                        line: n.source.line,
                        allow: n.action == Action::Allow,
                        important: n.important,
                        exact: matches!(
                            n.pattern,
                            NamePattern::Exact(_) | NamePattern::Labels { exact: true, .. }
                        ),
                        dnstype: n.dnstype,
                        denyallow: n.denyallow.iter().map(|d| normalize(d)).collect(),
                        text: n.source.rule.contains('#').then(|| tidy(&n.source.rule)),
                    };
                    match n.pattern {
                        NamePattern::Exact(name) | NamePattern::Subtree(name) => {
                            c.push_name(&name, entry);
                        }
                        NamePattern::Labels { pattern, .. } => {
                            if let Err(why) = c.push_label_pattern(&pattern, entry) {
                                report.rejected.push((n.source.rule.into_string(), why));
                            }
                        }
                        NamePattern::Regex(r) => {
                            match regex::RegexBuilder::new(&r)
                                .size_limit(REGEX_SIZE_LIMIT)
                                .dfa_size_limit(REGEX_SIZE_LIMIT)
                                .build()
                            {
                                Ok(_) => c.meta.patterns.push(PatternEntry {
                                    pattern: NamePattern::Regex(r),
                                    entry,
                                    rule: n.source.rule.into_string(),
                                }),
                                Err(e) => report
                                    .rejected
                                    .push((n.source.rule.into_string(), e.to_string())),
                            }
                        }
                        glob @ NamePattern::Glob { .. } => c.meta.patterns.push(PatternEntry {
                            pattern: glob,
                            entry,
                            rule: n.source.rule.into_string(),
                        }),
                    }
                }
                Rule::Address {
                    net,
                    action,
                    source,
                } => {
                    let rule = c.meta_rule(&source, action);
                    c.addresses.push((net, rule));
                }
                Rule::Asn {
                    asn,
                    action,
                    source,
                } => {
                    let rule = c.meta_rule(&source, action);
                    c.meta.asn_rules.push((asn, rule));
                }
                Rule::OwnerName {
                    owner,
                    action,
                    source,
                } => {
                    let rule = c.meta_rule(&source, action);
                    c.meta
                        .owner_rules
                        .push((owner.trim().to_ascii_lowercase(), rule));
                }
                Rule::Country {
                    code,
                    action,
                    source,
                } => {
                    let rule = c.meta_rule(&source, action);
                    c.meta.country_rules.push((
                        [code[0].to_ascii_uppercase(), code[1].to_ascii_uppercase()],
                        rule,
                    ));
                }
                Rule::DomainOwner(d) => {
                    let list = c.list(&d.source.list);
                    let key = normalize(&d.domain);
                    if key.is_empty() {
                        continue;
                    }
                    let idx = c.meta.domain_owners.len() as u64;
                    c.meta.domain_owners.push(OwnerFact {
                        owner: d.owner,
                        display_name: d.display_name,
                        list,
                        line: d.source.line,
                    });
                    c.owner_keys.push((key, idx));
                }
                Rule::Category(r) => {
                    let list = c.list(&r.source.list);
                    c.categories
                        .add(list, r.first_line, r.last_line, &r.category);
                }
                Rule::AppOwner(a) => {
                    let list = c.list(&a.source.list);
                    c.meta.app_owners.push(AppOwnerFact {
                        app: a.app,
                        owner: a.owner,
                        list,
                        line: a.source.line,
                    });
                }
            }
        }
        report.duplicates = c.duplicates_hint;
        let bytes = c.finish_with(&mut report);
        (bytes, report)
    }
}

/// Never reached: an empty compiled file always opens (tested by `empty_set_opens`).
fn unreachable_empty() -> RuleSet {
    panic!("invariant broken: the empty compiled rule set does not open")
}

/// Identity of a rule for `$badfilter`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct BadKey {
    pattern: NamePattern,
    allow: bool,
    important: bool,
    dnstype: Option<DnsTypeFilter>,
    denyallow: Vec<String>,
}

impl BadKey {
    fn of(n: &crate::rules::NameRule) -> BadKey {
        BadKey {
            pattern: n.pattern.clone(),
            allow: n.action == Action::Allow,
            important: n.important,
            dnstype: n.dnstype.clone(),
            denyallow: n.denyallow.clone(),
        }
    }
}

/// A rule's text for display: runs of whitespace (column padding in lists) become one space.
fn tidy(rule: &str) -> String {
    rule.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lowercases and strips a trailing dot (contract: names arrive normalised; be lenient).
fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

#[derive(Default)]
struct Compiler {
    meta: Meta,
    list_index: HashMap<String, u16>,
    /// Lowercased name keys, back to back (one allocation for a million names).
    key_arena: Vec<u8>,
    /// One slot per name rule, pointing into `key_arena`; 24 bytes, so sorting a million is
    /// cheap.
    names: Vec<NameSlot>,
    /// Rules that are not plain (`$dnstype`, `$denyallow`, a noted text).
    complex: Vec<NameEntry>,
    /// Label patterns (their wildcard labels and rule), keyed by their fixed suffix.
    label_patterns: Vec<LabelPattern>,
    /// Normalised owner domains and the index of their fact.
    owner_keys: Vec<(String, u64)>,
    addresses: Vec<(IpNet, MetaRule)>,
    duplicates_hint: u64,
    categories: Categories,
}

/// A name rule during compilation.
#[derive(Debug, Clone, Copy)]
struct NameSlot {
    /// [`index::key_hash`] of the key.
    hash: u64,
    start: u32,
    len: u32,
    /// The rule's line, or its index in `Compiler::complex` when `complex`, or in
    /// `Compiler::label_patterns` when `pattern`.
    line: u32,
    list: u16,
    allow: bool,
    important: bool,
    exact: bool,
    complex: bool,
    /// A label pattern keyed by its fixed suffix.
    pattern: bool,
}

/// Where an indexed key's rules went: a plain combination and line, or the side table.
#[derive(Debug, Clone, Copy)]
struct KeyValue {
    hash: u64,
    combination: u32,
    low: u32,
}

/// The index of `c` in the combination dictionary `table`, added when new (`seen` maps each
/// entry of `table` to its index).
fn intern(
    seen: &mut HashMap<Combination, u32>,
    table: &mut Vec<Combination>,
    c: Combination,
) -> u32 {
    let next = table.len() as u32;
    let index = *seen.entry(c).or_insert(next);
    if index == next {
        table.push(c);
    }
    index
}

impl Compiler {
    fn entry(&self, slot: &NameSlot) -> NameEntry {
        if slot.complex {
            self.complex
                .get(slot.line as usize)
                .cloned()
                .unwrap_or_default()
        } else {
            NameEntry {
                list: slot.list,
                line: slot.line,
                allow: slot.allow,
                important: slot.important,
                exact: slot.exact,
                ..NameEntry::default()
            }
        }
    }

    /// Appends the lowercased name (without a trailing dot) to the arena.
    fn push_name(&mut self, name: &str, entry: NameEntry) {
        let name = name.trim().trim_end_matches('.');
        if name.is_empty() || self.key_arena.len() + name.len() > u32::MAX as usize {
            return;
        }
        let start = self.key_arena.len() as u32;
        self.key_arena
            .extend(name.bytes().map(|b| b.to_ascii_lowercase()));
        let key = &self.key_arena[start as usize..];
        let mut slot = NameSlot {
            hash: index::key_hash(key),
            start,
            len: name.len() as u32,
            line: entry.line,
            list: entry.list,
            allow: entry.allow,
            important: entry.important,
            exact: entry.exact,
            complex: false,
            pattern: false,
        };
        if !entry.is_plain() {
            slot.complex = true;
            slot.line = self.complex.len() as u32;
            self.complex.push(entry);
        }
        self.names.push(slot);
    }

    /// Keys a label pattern (`log*.tiktokv.com`) by its fixed suffix (`tiktokv.com`).
    fn push_label_pattern(&mut self, pattern: &str, entry: NameEntry) -> Result<(), String> {
        let pattern = normalize(pattern);
        let split = crate::parse::name::label_pattern_split(&pattern)?;
        let (labels, suffix) = (&pattern[..split - 1], &pattern[split..]);
        let index = self.label_patterns.len() as u32;
        let before = self.names.len();
        self.push_name(suffix, NameEntry::default());
        let Some(slot) = self.names.get_mut(before) else {
            return Err("no room for the pattern's suffix".into());
        };
        slot.pattern = true;
        slot.complex = false;
        slot.line = index;
        self.label_patterns.push(LabelPattern {
            labels: labels.to_owned(),
            rule: entry,
        });
        Ok(())
    }

    fn list(&mut self, name: &str) -> u16 {
        if let Some(&i) = self.list_index.get(name) {
            return i;
        }
        // More than 65,535 lists in one set is not a real configuration: fold the rest into the
        // last index rather than failing.
        let i = self.meta.lists.len().min(u16::MAX as usize) as u16;
        if (i as usize) == self.meta.lists.len() {
            self.meta.lists.push(name.into());
        }
        self.list_index.insert(name.to_owned(), i);
        i
    }

    fn meta_rule(&mut self, source: &crate::decision::RuleRef, action: Action) -> MetaRule {
        MetaRule {
            list: self.list(&source.list),
            line: source.line,
            allow: action == Action::Allow,
            rule: tidy(&source.rule),
        }
    }

    fn finish(self) -> Vec<u8> {
        self.finish_with(&mut BuildReport::default())
    }

    /// Groups the name rules by key and writes the name index (see the module doc): plain
    /// single-rule keys become a combination and a line, the others a side-table entry.
    fn name_index(&mut self, report: &mut BuildReport) -> Vec<u8> {
        // Sort by hash, then key (stable: rules of one key stay in the order they were added),
        // so that the rules of a key are adjacent and keys come in index order.
        let mut slots = std::mem::take(&mut self.names);
        let arena = std::mem::take(&mut self.key_arena);
        let key = |slot: &NameSlot| {
            arena
                .get(slot.start as usize..(slot.start + slot.len) as usize)
                .unwrap_or_default()
        };
        slots.sort_by(|a, b| a.hash.cmp(&b.hash).then_with(|| key(a).cmp(key(b))));
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        while i < slots.len() {
            let mut j = i + 1;
            while j < slots.len()
                && slots[j].hash == slots[i].hash
                && key(&slots[j]) == key(&slots[i])
            {
                j += 1;
            }
            groups.push((i, j));
            i = j;
        }
        let n = groups.len();
        self.meta.name_keys = n as u64;
        // Keys that the index cannot tell apart (same bucket and fingerprint) are confirmed by
        // name; they are adjacent in hash order.
        let tag = |g: usize| index::tag_of(slots[groups[g].0].hash, n);
        let mut combinations: HashMap<Combination, u32> = HashMap::new();
        self.meta.combinations = vec![Combination::default()];
        let mut values: Vec<KeyValue> = Vec::with_capacity(n);
        for (g, &(i, j)) in groups.iter().enumerate() {
            let hash = slots[i].hash;
            let collides = (g > 0 && tag(g - 1) == tag(g)) || (g + 1 < n && tag(g + 1) == tag(g));
            let first = &slots[i];
            if j == i + 1 && !first.complex && !first.pattern && !first.allow && !collides {
                let c = Combination {
                    list: first.list,
                    allow: false,
                    important: first.important,
                    exact: first.exact,
                };
                let combination = intern(&mut combinations, &mut self.meta.combinations, c);
                values.push(KeyValue {
                    hash,
                    combination,
                    low: first.line,
                });
                continue;
            }
            let mut rules: Vec<NameEntry> = Vec::with_capacity(j - i);
            let mut patterns: Vec<LabelPattern> = Vec::new();
            for slot in &slots[i..j] {
                if slot.pattern {
                    let Some(p) = self.label_patterns.get(slot.line as usize) else {
                        continue;
                    };
                    if patterns
                        .iter()
                        .any(|q| q.labels == p.labels && q.rule.same_as(&p.rule))
                    {
                        report.duplicates += 1;
                    } else {
                        patterns.push(p.clone());
                    }
                    continue;
                }
                let e = self.entry(slot);
                let dup = rules.iter().any(|g| g.same_as(&e));
                if dup {
                    report.duplicates += 1;
                } else {
                    rules.push(e);
                }
            }
            // A pattern that allows is confirmed like an exception: a false match of its
            // suffix must never allow.
            let confirm =
                collides || rules.iter().any(|r| r.allow) || patterns.iter().any(|p| p.rule.allow);
            let plain = rules.len() == 1 && patterns.is_empty() && rules[0].is_plain() && !confirm;
            if plain {
                let e = &rules[0];
                let c = Combination {
                    list: e.list,
                    allow: false,
                    important: e.important,
                    exact: e.exact,
                };
                let combination = intern(&mut combinations, &mut self.meta.combinations, c);
                values.push(KeyValue {
                    hash,
                    combination,
                    low: e.line,
                });
                continue;
            }
            let name = confirm.then(|| String::from_utf8_lossy(key(first)).into_owned());
            values.push(KeyValue {
                hash,
                combination: SIDE_COMBINATION as u32,
                low: self.meta.side.len() as u32,
            });
            self.meta.side.push(SideEntry {
                name,
                rules,
                patterns,
            });
        }
        let max_low = values.iter().map(|v| v.low).max().unwrap_or(0);
        let low_bits = index::bits_for(u64::from(max_low));
        let width = low_bits + index::bits_for(self.meta.combinations.len() as u64 - 1);
        let entries: Vec<(u64, u64)> = values
            .iter()
            .map(|v| {
                (
                    v.hash,
                    (u64::from(v.combination) << low_bits) | u64::from(v.low),
                )
            })
            .collect();
        let labels = index::LabelBounds::of(groups.iter().map(|&(i, _)| key(&slots[i])));
        index::write(&entries, width, low_bits, labels)
    }

    fn finish_with(mut self, report: &mut BuildReport) -> Vec<u8> {
        let names_bytes = self.name_index(report);

        // Owner facts: the first fact for a domain wins (lists loaded first take precedence).
        self.owner_keys
            .sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        self.owner_keys.dedup_by(|b, a| a.0 == b.0);
        let mut owner_entries: Vec<(u64, u64)> = self
            .owner_keys
            .iter()
            .map(|(k, v)| (index::key_hash(k.as_bytes()), *v))
            .collect();
        owner_entries.sort_unstable();
        let owner_width = index::bits_for(self.meta.domain_owners.len() as u64);
        let owner_labels =
            index::LabelBounds::of(self.owner_keys.iter().map(|(k, _)| k.as_bytes()));
        let owners_bytes = index::write(&owner_entries, owner_width, 0, owner_labels);

        // Addresses: flatten nested CIDRs into disjoint intervals, most specific wins.
        let mut v4: Vec<(u128, u128, u32)> = Vec::new();
        let mut v6: Vec<(u128, u128, u32)> = Vec::new();
        for (net, rule) in std::mem::take(&mut self.addresses) {
            let idx = self.meta.addr_rules.len() as u32;
            self.meta.addr_rules.push(rule);
            match net.addr {
                IpAddr::V4(a) => {
                    let len = net.prefix_len.min(32) as u32;
                    let mask: u32 = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                    let start = u32::from(a) & mask;
                    v4.push((start as u128, (start | !mask) as u128, idx));
                }
                IpAddr::V6(a) => {
                    let len = net.prefix_len.min(128) as u32;
                    let mask: u128 = if len == 0 {
                        0
                    } else {
                        u128::MAX << (128 - len)
                    };
                    let start = u128::from(a) & mask;
                    v6.push((start, start | !mask, idx));
                }
            }
        }
        let v4_points = flatten(v4, &self.meta.addr_rules, u32::MAX as u128);
        let v6_points = flatten(v6, &self.meta.addr_rules, u128::MAX);
        let mut v4_bytes = Vec::with_capacity(v4_points.len() * 8);
        for (s, _) in &v4_points {
            v4_bytes.extend_from_slice(&(*s as u32).to_le_bytes());
        }
        for (_, v) in &v4_points {
            v4_bytes.extend_from_slice(&v.to_le_bytes());
        }
        let mut v6_bytes = Vec::with_capacity(v6_points.len() * 20);
        for (s, _) in &v6_points {
            v6_bytes.extend_from_slice(&s.to_be_bytes());
        }
        for (_, v) in &v6_points {
            v6_bytes.extend_from_slice(&v.to_le_bytes());
        }

        self.meta.asn_rules.sort_by_key(|(a, r)| (*a, !r.allow));
        self.meta.asn_rules.dedup_by_key(|(a, _)| *a);
        // serde_json cannot fail on these plain types.
        let meta_bytes = serde_json::to_vec(&self.meta).unwrap_or_default();
        self.categories.finish();
        let categories_bytes = serde_json::to_vec(&self.categories).unwrap_or_default();
        format::write(&[
            (SectionId::Names, names_bytes),
            (SectionId::Owners, owners_bytes),
            (SectionId::V4, v4_bytes),
            (SectionId::V6, v6_bytes),
            (SectionId::Meta, meta_bytes),
            (SectionId::Categories, categories_bytes),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{matched, name_rule, src, strongest};
    use super::*;
    use crate::rules::NameRule;
    use crate::ruleset::NameMatch;

    #[test]
    fn badfilter_removes_identical_rule() {
        let mut b = RuleSetBuilder::new();
        b.add(name_rule(
            NamePattern::Subtree("example.com".into()),
            Action::Block,
            1,
        ));
        let mut bad = NameRule {
            pattern: NamePattern::Subtree("example.com".into()),
            action: Action::Block,
            important: false,
            dnstype: None,
            denyallow: vec![],
            badfilter: true,
            source: src(2),
        };
        b.add(Rule::Name(bad.clone()));
        bad.pattern = NamePattern::Subtree("other.com".into());
        bad.badfilter = false;
        bad.important = true;
        b.add(Rule::Name(bad));
        let (set, report) = b.build_with_report();
        assert_eq!(report.badfiltered, 1);
        assert!(matched(&set, "example.com").0.is_none());
        let mut m = NameMatch::default();
        set.match_name("other.com", None, &mut m);
        assert!(m.important_block.is_some());
    }

    #[test]
    fn builder_rejects_a_label_pattern_without_a_fixed_suffix() {
        let mut b = RuleSetBuilder::new();
        b.add(name_rule(
            NamePattern::Labels {
                pattern: "log*.com".into(),
                exact: false,
            },
            Action::Block,
            1,
        ));
        let (set, report) = b.build_with_report();
        assert_eq!(report.rejected.len(), 1);
        assert_eq!(strongest(&set, "log1.com"), None);
    }

    #[test]
    fn exceptions_and_colliding_keys_are_confirmed_by_name() {
        let mut b = RuleSetBuilder::new();
        b.add(name_rule(
            NamePattern::Subtree("example.com".into()),
            Action::Allow,
            1,
        ));
        b.add(name_rule(
            NamePattern::Subtree("tracker.net".into()),
            Action::Block,
            2,
        ));
        let (bytes, _) = {
            let mut c = Compiler::default();
            let mut e = NameEntry {
                list: c.list("t"),
                line: 1,
                allow: true,
                ..NameEntry::default()
            };
            c.push_name("example.com", e.clone());
            e.allow = false;
            e.line = 2;
            c.push_name("tracker.net", e);
            // Pretend a third key collides with `tracker.net`: same hash, other name (an
            // important block, so that a match would show in its own class).
            let mut slot = *c.names.last().unwrap();
            let start = c.key_arena.len() as u32;
            c.key_arena.extend_from_slice(b"other.org");
            slot.start = start;
            slot.len = 9;
            slot.line = 3;
            slot.important = true;
            c.names.push(slot);
            let mut report = BuildReport::default();
            (c.finish_with(&mut report), report)
        };
        let set = RuleSet::from_bytes(bytes).unwrap();
        set.verify().unwrap();
        // The exception and both colliding keys went to the side table with their names.
        let named: Vec<_> = set
            .meta
            .side
            .iter()
            .filter_map(|s| s.name.clone())
            .collect();
        assert_eq!(named.len(), 3, "{named:?}");
        let (_, allow) = matched(&set, "a.example.com");
        assert_eq!(allow.unwrap().rule, "@@example.com");
        // The name with the shared hash finds its own rule, not the other key's.
        let mut m = NameMatch::default();
        set.match_name("x.tracker.net", None, &mut m);
        assert!(m.important_block.is_none());
        assert_eq!(set.resolve_hit("x.tracker.net", m.block.unwrap()).line, 2);
        // Built normally, the exception is still confirmed by name.
        let set = b.build();
        assert_eq!(set.meta.side.len(), 1);
        assert_eq!(set.meta.side[0].name.as_deref(), Some("example.com"));
    }
}
