//! The compiled, immutable rule set and its builder.
//!
//! A [`RuleSet`] is always a view over the bytes of a compiled file (see [`crate::format`]),
//! owned or memory-mapped: building one writes the file in memory and opens it, so there is one
//! code path for fresh and loaded rules.
//!
//! **Names are not stored.** Every rule that can apply to a name is keyed by a suffix of the
//! name that starts at a label boundary (`ads.example.com`, `example.com`, `com`). The name
//! index ([`index`]) keeps, per key, a 32-bit fingerprint of the key's hash in a bucket chosen by
//! the hash's top bits, and a bit-packed value: one pass over the query name from its end
//! hashes every suffix, the buckets of all suffixes are prefetched, then compared. At a million
//! keys that is about 4 bytes of fingerprint, 0.13 of directory and 2.6 of value per key
//! (6.8 bytes per name in all, measured in `examples/memory.rs`; history in docs/decisions.md),
//! read in place without parsing. The rule text shown to the user is rebuilt from the matched suffix of the query (which is the key) and the rule's
//! kind, so a decision still names its rule, list and line.
//!
//! **Values.** A value is `combination << low_bits | low`: the combination indexes a small
//! dictionary of the distinct (list, exception, `$important`, exact-or-subtree) tuples of the
//! set, and `low` is the rule's line, with `low_bits` as wide as the largest line needs (20 bits
//! for a million-line list). One combination means "see the side table": keys with several
//! rules, `$dnstype` / `$denyallow`, a noted text, exceptions, label patterns under the key,
//! or a hash that collides with another key's; `low` then indexes the side table in the
//! metadata section.
//!
//! **False matches** (see [`index`] for the odds, about 2^-27 per probe at a million keys)
//! can only block: a side-table key that can allow (an exception, or an exception pattern
//! under it) or whose hash is shared with
//! another key keeps its full name, and a match is confirmed against it. Domain-owner facts use
//! the same index, unconfirmed.
//!
//! **Label patterns** (`log*.tiktokv.com`, Embargo's native format: `*` within one label) are
//! keyed by their fixed suffix (`tiktokv.com`, the labels right of the last one with a `*`):
//! that key's value sends it to the side table, whose entry holds the suffix's patterns
//! (their wildcard labels and rule) beside any plain rules of the key. When a query's suffix
//! hits such a key, its labels left of the suffix are matched against each pattern by a small
//! label matcher (no allocation, no regex). A lookup of a set without patterns is unchanged:
//! no extra probe, no extra branch outside the side-table path.
//!
//! Globs and regexes are rare (AdBlock lists); they live in the metadata and are checked only
//! when a literal prefilter (globs) or the combined regex set says they may apply.
//!
//! The reader and its lookups live here; [`compile`] builds the file, [`ranges`] flattens and
//! reads address ranges, [`glob`] matches label patterns and globs, [`index`] is the
//! fingerprint index and [`categories`] the category section.

mod categories;
mod compile;
mod glob;
mod index;
mod ranges;

use std::net::IpAddr;
use std::sync::Arc;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::decision::Verdict;
use crate::format::{self, CompiledError, SectionId};
use crate::rules::{DnsTypeFilter, Intent, NamePattern};
use categories::Categories;
use glob::{glob_match, labels_match, longest_literal};
use index::IndexLayout;
use ranges::{lookup_v4, lookup_v6};

pub use compile::{BuildReport, RuleSetBuilder};

/// Anything that holds the bytes of a compiled file: `Vec<u8>`, a memory map, a static slice.
pub trait Backing: AsRef<[u8]> + Send + Sync + 'static {}
impl<T: AsRef<[u8]> + Send + Sync + 'static> Backing for T {}

/// Regexes are compiled with this size limit so that a hostile list cannot make matching (or
/// compiling) expensive: 1 MiB of compiled program is far beyond any real DNS regex.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Suffixes hashed (and their buckets prefetched) before their buckets are compared: real
/// names have 2-5 labels, so one batch almost always covers a name and every bucket load of
/// the name is in flight at once; longer names take several batches. Small, because the batch
/// lives on the stack of every lookup.
const PROBE_BATCH: usize = 8;

/// The combination that sends a key to the side table (always index 0).
const SIDE_COMBINATION: usize = 0;

/// No rule in an address table interval.
const NO_RULE: u32 = u32::MAX;

/// A window onto part of the backing bytes (one section).
#[derive(Clone)]
struct Section {
    data: Arc<dyn Backing>,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for Section {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        (*self.data)
            .as_ref()
            .get(self.start..self.end)
            .unwrap_or(&[])
    }
}

/// One name rule as the side table stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct NameEntry {
    pub list: u16,
    pub line: u32,
    pub allow: bool,
    pub important: bool,
    /// Exact name only (else the name and its subdomains).
    pub exact: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnstype: Option<DnsTypeFilter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denyallow: Vec<String>,
    /// The rule as written, kept only when it carries a note (`# source: ...`): the built-in
    /// list's sources are worth showing, and such rules are few.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl NameEntry {
    /// Whether `other` is the same rule apart from its list and line (a duplicate).
    fn same_as(&self, other: &NameEntry) -> bool {
        self.allow == other.allow
            && self.important == other.important
            && self.exact == other.exact
            && self.dnstype == other.dnstype
            && self.denyallow == other.denyallow
            && self.text == other.text
    }

    /// Whether the value fits a combination and a line (else it goes to the side table).
    fn is_plain(&self) -> bool {
        self.dnstype.is_none() && self.denyallow.is_empty() && self.text.is_none()
    }

    /// Whether `$dnstype` and `$denyallow` let this rule apply to the query.
    fn applies(&self, name: &str, dns_type: Option<u16>) -> bool {
        if let Some(filter) = &self.dnstype {
            match dns_type {
                Some(t) => {
                    if filter.exclude.contains(&t)
                        || (!filter.include.is_empty() && !filter.include.contains(&t))
                    {
                        return false;
                    }
                }
                // Not a DNS query (a connection): only exclusion-only filters still apply.
                None => {
                    if !filter.include.is_empty() {
                        return false;
                    }
                }
            }
        }
        !self
            .denyallow
            .iter()
            .any(|d| crate::ruleset::in_subtree(name, d))
    }
}

/// A glob or regex rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PatternEntry {
    pattern: NamePattern,
    entry: NameEntry,
    rule: String,
}

/// A rule whose value is stored once in the metadata (address, ASN, owner, country).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MetaRule {
    pub list: u16,
    pub line: u32,
    pub allow: bool,
    /// The rule as written (`1.2.3.0/24`, `AS45090`, `owner: Tencent`, `country: CN`).
    pub rule: String,
}

/// A domain-owner fact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OwnerFact {
    pub owner: String,
    pub display_name: String,
    pub list: u16,
    pub line: u32,
}

/// An app-owner fact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AppOwnerFact {
    pub app: String,
    pub owner: String,
    pub list: u16,
    pub line: u32,
}

/// Everything small: decoded once at load.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Meta {
    lists: Vec<Arc<str>>,
    /// The intent of the set's name and address rules (owner, ASN and country rules are
    /// always [`Intent::Embargo`]).
    #[serde(default)]
    intent: Intent,
    name_keys: u64,
    /// The distinct (list, flags) tuples of indexed name rules; index 0 is the side table.
    combinations: Vec<Combination>,
    /// Indexed keys whose rules do not fit a combination and a line.
    side: Vec<SideEntry>,
    patterns: Vec<PatternEntry>,
    addr_rules: Vec<MetaRule>,
    /// Sorted by ASN.
    asn_rules: Vec<(u32, MetaRule)>,
    /// Owner names lowercased.
    owner_rules: Vec<(String, MetaRule)>,
    country_rules: Vec<([u8; 2], MetaRule)>,
    domain_owners: Vec<OwnerFact>,
    app_owners: Vec<AppOwnerFact>,
}

/// What a plain indexed rule is, apart from its line: one entry of the combination dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
struct Combination {
    list: u16,
    allow: bool,
    important: bool,
    exact: bool,
}

/// The rules of one indexed key that does not fit a combination and a line.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SideEntry {
    /// The key itself, when a fingerprint match must be confirmed: the key has an exception
    /// (a false match must never allow) or shares its hash with another key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    rules: Vec<NameEntry>,
    /// The label patterns whose fixed suffix is this key (`log*` for `log*.tiktokv.com`):
    /// tested against the query's labels left of the suffix when the key matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    patterns: Vec<LabelPattern>,
}

/// A label pattern, stored in the side entry of its fixed suffix.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LabelPattern {
    /// The labels left of the fixed suffix, lowercase, dot-separated, each `*` any run of
    /// characters inside its label (`log*`, `a*.b*`).
    labels: String,
    rule: NameEntry,
}

/// What a name matched in one rule set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameHit {
    pub list: u16,
    pub line: u32,
    pub allow: bool,
    pub important: bool,
    /// The text of the rule (rebuilt for indexed names; as written for globs and regexes).
    pub rule: CompactString,
}

/// The strongest rules of each class that matched a name.
#[derive(Debug, Default)]
pub(crate) struct NameMatch {
    pub important_allow: Option<NameHitRef>,
    pub important_block: Option<NameHitRef>,
    pub allow: Option<NameHitRef>,
    pub block: Option<NameHitRef>,
}

/// A cheap reference to a hit, turned into a [`NameHit`] only for the rule that decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameHitRef {
    /// An indexed name: its index value, the rule in a side-table entry (`u32::MAX` for a
    /// plain value; past the entry's rules, its label pattern `entry_index - rules`) and where
    /// the matched suffix starts in the query name.
    Indexed {
        value: u64,
        entry_index: u32,
        suffix_start: u32,
    },
    /// Pattern `i` of the metadata.
    Pattern(u32),
}

/// The precedence of name rules, strongest first (see `Policy::decide`, steps 5 and 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum NameClass {
    ImportantAllow,
    ImportantBlock,
    Allow,
    Block,
}

impl NameClass {
    pub fn verdict(self) -> Verdict {
        match self {
            NameClass::ImportantAllow | NameClass::Allow => Verdict::Allow,
            NameClass::ImportantBlock | NameClass::Block => Verdict::Block,
        }
    }
}

impl NameMatch {
    /// The hit of the strongest class that matched.
    pub fn strongest(&self) -> Option<(NameClass, NameHitRef)> {
        let class = |c: NameClass| move |h| (c, h);
        self.important_allow
            .map(class(NameClass::ImportantAllow))
            .or(self.important_block.map(class(NameClass::ImportantBlock)))
            .or(self.allow.map(class(NameClass::Allow)))
            .or(self.block.map(class(NameClass::Block)))
    }

    fn offer(&mut self, important: bool, allow: bool, hit: NameHitRef) {
        let slot = match (important, allow) {
            (true, true) => &mut self.important_allow,
            (true, false) => &mut self.important_block,
            (false, true) => &mut self.allow,
            (false, false) => &mut self.block,
        };
        // The walk goes from the shortest suffix to the full name: later = more specific,
        // which is the better rule to show.
        *slot = Some(hit);
    }
}

/// A compiled, immutable rule set: names, addresses, ASNs, owners, countries and owner facts.
///
/// Cheap to share (`Arc<RuleSet>`); `Send + Sync`; backed by owned bytes or a memory map.
pub struct RuleSet {
    data: Arc<dyn Backing>,
    names: IndexLayout,
    owners: IndexLayout,
    v4: Section,
    v6: Section,
    meta: Meta,
    regexes: Option<regex::RegexSet>,
    /// Indices into `meta.patterns` of the regexes in `regexes`, in order.
    regex_patterns: Vec<u32>,
    /// Indices of glob patterns with their required literal.
    globs: Vec<(u32, String)>,
    /// Line ranges -> category (the `categories` section).
    categories: Categories,
    /// Label patterns in the side table.
    label_patterns: usize,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("bytes", &self.as_bytes().len())
            .field("lists", &self.meta.lists)
            .field("name_keys", &self.meta.name_keys)
            .finish()
    }
}

impl RuleSet {
    /// An empty rule set (matches nothing).
    pub fn empty() -> RuleSet {
        RuleSetBuilder::new().build()
    }

    /// Opens compiled bytes that the caller owns.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<RuleSet, CompiledError> {
        RuleSet::from_backing(Arc::new(bytes))
    }

    /// Opens compiled bytes from any backing (e.g. `memmap2::Mmap`). Validates the header, the
    /// checksum and every section's bounds; the name index is then used in place.
    pub fn from_backing(data: Arc<dyn Backing>) -> Result<RuleSet, CompiledError> {
        let layout = format::validate((*data).as_ref())?;
        let section = |id: SectionId| {
            let (start, end) = layout.range(id);
            Section {
                data: data.clone(),
                start,
                end,
            }
        };
        let index = |id: SectionId, name: &'static str| {
            let (start, end) = layout.range(id);
            IndexLayout::parse((*data).as_ref(), start, end).map_err(|message| {
                CompiledError::BadSection {
                    section: name,
                    message,
                }
            })
        };
        let names = index(SectionId::Names, "names")?;
        let owners = index(SectionId::Owners, "owners")?;
        let v4 = section(SectionId::V4);
        if v4.as_ref().len() % 8 != 0 {
            return Err(CompiledError::BadSection {
                section: "v4",
                message: "length is not a multiple of 8".into(),
            });
        }
        let v6 = section(SectionId::V6);
        if v6.as_ref().len() % 20 != 0 {
            return Err(CompiledError::BadSection {
                section: "v6",
                message: "length is not a multiple of 20".into(),
            });
        }
        let meta: Meta =
            serde_json::from_slice(section(SectionId::Meta).as_ref()).map_err(|e| {
                CompiledError::BadSection {
                    section: "meta",
                    message: e.to_string(),
                }
            })?;
        let categories_bytes = section(SectionId::Categories);
        let categories: Categories = if categories_bytes.as_ref().is_empty() {
            Ok(Categories::default())
        } else {
            serde_json::from_slice(categories_bytes.as_ref())
        }
        .map_err(|e| e.to_string())
        .and_then(|c: Categories| c.check().map(|()| c))
        .map_err(|message| CompiledError::BadSection {
            section: "categories",
            message,
        })?;
        if meta.combinations.is_empty() {
            return Err(CompiledError::BadSection {
                section: "meta",
                message: "no side-table combination".into(),
            });
        }
        let mut label_patterns = 0;
        for p in meta.side.iter().flat_map(|s| &s.patterns) {
            match crate::parse::name::label_pattern_wild_part(&p.labels) {
                Ok(wild) if wild == p.labels.len() => label_patterns += 1,
                Ok(_) => {
                    return Err(CompiledError::BadSection {
                        section: "meta",
                        message: format!(
                            "label pattern {:?} has no `*` in its last label",
                            p.labels
                        ),
                    })
                }
                Err(why) => {
                    return Err(CompiledError::BadSection {
                        section: "meta",
                        message: format!("label pattern {:?}: {why}", p.labels),
                    })
                }
            }
        }
        let mut regex_sources = Vec::new();
        let mut regex_patterns = Vec::new();
        let mut globs = Vec::new();
        for (i, p) in meta.patterns.iter().enumerate() {
            match &p.pattern {
                NamePattern::Regex(r) => {
                    regex_sources.push(r.clone());
                    regex_patterns.push(i as u32);
                }
                NamePattern::Glob { pattern, .. } => {
                    globs.push((i as u32, longest_literal(pattern).to_owned()));
                }
                _ => {}
            }
        }
        let regexes = if regex_sources.is_empty() {
            None
        } else {
            Some(
                regex::RegexSetBuilder::new(&regex_sources)
                    .size_limit(REGEX_SIZE_LIMIT * 4)
                    .dfa_size_limit(REGEX_SIZE_LIMIT * 4)
                    .build()
                    .map_err(|e| CompiledError::BadSection {
                        section: "meta",
                        message: format!("regex rules: {e}"),
                    })?,
            )
        };
        Ok(RuleSet {
            data,
            names,
            owners,
            v4,
            v6,
            meta,
            regexes,
            regex_patterns,
            globs,
            categories,
            label_patterns,
        })
    }

    /// Checks every entry of the name and owner indexes, for files Embargo did not write itself.
    ///
    /// Trust model: [`RuleSet::from_backing`] checks the header, the checksum, every section's
    /// bounds and each index's header and bucket directory: after that no lookup can panic or
    /// read outside the file, whatever the bytes (the `compiled_load` fuzz target checks this).
    /// What opening skips, to stay O(1) in the number of keys, is each key's content: a crafted
    /// file with a valid checksum can hold unsorted fingerprints (keys that are then not found)
    /// or values that point past the side table or the owner facts (ignored at lookup). Call
    /// `verify` (O(keys), a few ns per key) before using a file from an untrusted source to turn
    /// those into an error.
    pub fn verify(&self) -> Result<(), CompiledError> {
        let file = self.as_bytes();
        let low_bits = self.names.low_bits;
        let low_mask = (1u64 << low_bits) - 1;
        let combinations = self.meta.combinations.len() as u64;
        let side = self.meta.side.len() as u64;
        self.names
            .verify(file, |v| {
                let combination = v >> low_bits;
                combination < combinations
                    && (combination != SIDE_COMBINATION as u64 || (v & low_mask) < side)
            })
            .map_err(|message| CompiledError::BadSection {
                section: "names",
                message,
            })?;
        let facts = self.meta.domain_owners.len() as u64;
        self.owners
            .verify(file, |v| v < facts)
            .map_err(|message| CompiledError::BadSection {
                section: "owners",
                message,
            })
    }

    /// The compiled bytes (write them to a file to load them later).
    pub fn as_bytes(&self) -> &[u8] {
        (*self.data).as_ref()
    }

    /// The intent of this set's name and address rules.
    pub fn intent(&self) -> Intent {
        self.meta.intent
    }

    /// Names of the lists compiled into this set, in list-index order.
    pub fn lists(&self) -> &[Arc<str>] {
        &self.meta.lists
    }

    /// Number of distinct indexed names (exact and subtree keys).
    pub fn name_count(&self) -> u64 {
        self.meta.name_keys
    }

    /// Counts of the other rule kinds: (patterns: globs, regexes and label patterns; address
    /// rules, ASN rules, owner rules, country rules, domain-owner facts, app-owner facts).
    pub fn counts(&self) -> [usize; 7] {
        [
            self.meta.patterns.len() + self.label_patterns,
            self.meta.addr_rules.len(),
            self.meta.asn_rules.len(),
            self.meta.owner_rules.len(),
            self.meta.country_rules.len(),
            self.meta.domain_owners.len(),
            self.meta.app_owners.len(),
        ]
    }

    /// The category the list `list` gives its line `line`, if it gives one (Disconnect's
    /// `Advertising`). A binary search over a few hundred ranges: for explained decisions only.
    pub(crate) fn category_of(&self, list: u16, line: u32) -> Option<&str> {
        if self.categories.is_empty() {
            return None;
        }
        self.categories.lookup(list, line)
    }

    pub(crate) fn list_name(&self, list: u16) -> &str {
        self.meta.lists.get(list as usize).map_or("?", |s| s)
    }

    /// The name of list `list`, shared (a reference count, not a copy).
    pub(crate) fn list_ref(&self, list: u16) -> Arc<str> {
        match self.meta.lists.get(list as usize) {
            Some(name) => Arc::clone(name),
            None => Arc::from("?"),
        }
    }

    /// Reports the value of every key of `index` that is a suffix of `name` starting at a
    /// label boundary, shortest suffix first, with where the suffix starts.
    ///
    /// One pass from the end of the name hashes every suffix (the hash is a running state, so
    /// the hash of `example.com` is on the way to the hash of `ads.example.com`) and prefetches
    /// its bucket's directory entry; then each bucket's range is read (prefetching its
    /// fingerprints), then compared. The loads of all suffixes overlap instead of following
    /// one another.
    #[inline]
    fn walk(&self, index: &IndexLayout, name: &[u8], mut found: impl FnMut(usize, u64)) {
        if index.n == 0 {
            return;
        }
        let view = index.view(self.as_bytes());
        let mut pad = [0u8; 8];
        let mut suffixes = index::Suffixes::new(name, &mut pad, index.labels);
        loop {
            let mut batch = [(0u64, 0usize); PROBE_BATCH];
            let mut k = 0;
            while k < PROBE_BATCH {
                let Some((start, suffix)) = suffixes.next_suffix() else {
                    break;
                };
                view.prefetch_bucket(suffix);
                // `k < PROBE_BATCH`: the slot exists.
                if let Some(slot) = batch.get_mut(k) {
                    *slot = (suffix, start);
                }
                k += 1;
            }
            probe(&view, batch.get(..k).unwrap_or_default(), &mut found);
            if k < PROBE_BATCH {
                return;
            }
        }
    }

    /// Every name rule that applies to `name` (lowercase, no trailing dot), strongest per class.
    pub(crate) fn match_name(&self, name: &str, dns_type: Option<u16>, m: &mut NameMatch) {
        self.walk_names(name, dns_type, m);
        if !self.meta.patterns.is_empty() {
            self.match_patterns(name, dns_type, m);
        }
    }

    fn walk_names(&self, name: &str, dns_type: Option<u16>, m: &mut NameMatch) {
        let low_bits = self.names.low_bits;
        let low_mask = (1u64 << low_bits) - 1;
        self.walk(&self.names, name.as_bytes(), |start, value| {
            let full = start == 0;
            let combination = (value >> low_bits) as usize;
            let hit = |entry_index| NameHitRef::Indexed {
                value,
                entry_index,
                suffix_start: start as u32,
            };
            if combination != SIDE_COMBINATION {
                let Some(c) = self.meta.combinations.get(combination) else {
                    return;
                };
                if !c.exact || full {
                    m.offer(c.important, c.allow, hit(u32::MAX));
                }
                return;
            }
            self.offer_side(name, start, value, value & low_mask, dns_type, m);
        });
    }

    /// Offers the rules and label patterns of side-table entry `side` (the key matched at
    /// `start`). Out of line: plain values, the common hit, keep the walk's code small.
    #[inline(never)]
    fn offer_side(
        &self,
        name: &str,
        start: usize,
        value: u64,
        side: u64,
        dns_type: Option<u16>,
        m: &mut NameMatch,
    ) {
        let Some(side) = self.meta.side.get(side as usize) else {
            return;
        };
        if let Some(key) = &side.name {
            if name.get(start..) != Some(key.as_str()) {
                return;
            }
        }
        let full = start == 0;
        let hit = |entry_index| NameHitRef::Indexed {
            value,
            entry_index,
            suffix_start: start as u32,
        };
        for (j, e) in side.rules.iter().enumerate() {
            if (e.exact && !full) || !e.applies(name, dns_type) {
                continue;
            }
            m.offer(e.important, e.allow, hit(j as u32));
        }
        if !side.patterns.is_empty() && !full {
            offer_label_patterns(side, name, start, value, dns_type, m);
        }
    }

    fn match_patterns(&self, name: &str, dns_type: Option<u16>, m: &mut NameMatch) {
        for (i, literal) in &self.globs {
            if !name.contains(literal.as_str()) {
                continue;
            }
            let Some(p) = self.meta.patterns.get(*i as usize) else {
                continue;
            };
            if let NamePattern::Glob {
                pattern,
                anchored_start,
                anchored_end,
            } = &p.pattern
            {
                if glob_match(pattern, *anchored_start, *anchored_end, name)
                    && p.entry.applies(name, dns_type)
                {
                    m.offer(p.entry.important, p.entry.allow, NameHitRef::Pattern(*i));
                }
            }
        }
        if let Some(set) = &self.regexes {
            for k in set.matches(name).iter() {
                let Some(&i) = self.regex_patterns.get(k) else {
                    continue;
                };
                if let Some(p) = self.meta.patterns.get(i as usize) {
                    if p.entry.applies(name, dns_type) {
                        m.offer(p.entry.important, p.entry.allow, NameHitRef::Pattern(i));
                    }
                }
            }
        }
    }

    /// Turns a hit reference into the rule it names.
    pub(crate) fn resolve_hit(&self, name: &str, hit: NameHitRef) -> NameHit {
        match hit {
            NameHitRef::Indexed {
                value,
                entry_index,
                suffix_start,
            } => {
                let low_bits = self.names.low_bits;
                let low = value & ((1u64 << low_bits) - 1);
                let combination = (value >> low_bits) as usize;
                let suffix = name.get(suffix_start as usize..).unwrap_or(name);
                if combination != SIDE_COMBINATION {
                    // The common hit: a plain value, whose rule text is the suffix with the
                    // combination's flags; no side entry to copy.
                    let c = self
                        .meta
                        .combinations
                        .get(combination)
                        .copied()
                        .unwrap_or_default();
                    return NameHit {
                        list: c.list,
                        line: low as u32,
                        allow: c.allow,
                        important: c.important,
                        rule: name_rule_text(suffix, c.allow, c.exact, c.important),
                    };
                }
                // Read in place: a side entry owns its denyallow list and text.
                let none = NameEntry::default();
                let side = self.meta.side.get(low as usize);
                let pattern = side.and_then(|s| {
                    let j = (entry_index as usize).checked_sub(s.rules.len())?;
                    s.patterns.get(j)
                });
                if let Some(p) = pattern {
                    return label_pattern_hit(p, suffix);
                }
                let entry = side
                    .and_then(|s| s.rules.get(entry_index as usize))
                    .unwrap_or(&none);
                NameHit {
                    list: entry.list,
                    line: entry.line,
                    allow: entry.allow,
                    important: entry.important,
                    rule: match &entry.text {
                        Some(text) => text.as_str().into(),
                        None => name_rule_text(suffix, entry.allow, entry.exact, entry.important),
                    },
                }
            }
            NameHitRef::Pattern(i) => match self.meta.patterns.get(i as usize) {
                Some(p) => NameHit {
                    list: p.entry.list,
                    line: p.entry.line,
                    allow: p.entry.allow,
                    important: p.entry.important,
                    rule: p.rule.as_str().into(),
                },
                None => NameHit {
                    list: 0,
                    line: 0,
                    allow: false,
                    important: false,
                    rule: Default::default(),
                },
            },
        }
    }

    /// The most specific address rule covering `addr`.
    pub(crate) fn match_addr(&self, addr: IpAddr) -> Option<&MetaRule> {
        let idx = match addr {
            IpAddr::V4(a) => lookup_v4(self.v4.as_ref(), u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => lookup_v4(self.v4.as_ref(), u32::from(v4)),
                None => lookup_v6(self.v6.as_ref(), u128::from(a)),
            },
        }?;
        self.meta.addr_rules.get(idx as usize)
    }

    /// The rule for this AS number, if any.
    pub(crate) fn match_asn(&self, asn: u32) -> Option<&MetaRule> {
        let rules = &self.meta.asn_rules;
        let i = rules.partition_point(|(a, _)| *a < asn);
        rules.get(i).filter(|(a, _)| *a == asn).map(|(_, r)| r)
    }

    /// Owner-name rules matching an owner or AS organisation (allow rules first).
    pub(crate) fn match_owner(&self, owner: &str) -> Option<&MetaRule> {
        let mut best: Option<&MetaRule> = None;
        for (name, rule) in &self.meta.owner_rules {
            if owner_matches(name, owner) && best.is_none_or(|b| rule.allow && !b.allow) {
                best = Some(rule);
            }
        }
        best
    }

    /// The country rule for this code, if any.
    pub(crate) fn match_country(&self, code: [u8; 2]) -> Option<&MetaRule> {
        self.meta
            .country_rules
            .iter()
            .find(|(c, r)| *c == code && r.allow)
            .or_else(|| self.meta.country_rules.iter().find(|(c, _)| *c == code))
            .map(|(_, r)| r)
    }

    /// The most specific domain-owner fact for a name.
    pub(crate) fn owner_of_name(&self, name: &str) -> Option<&OwnerFact> {
        let mut best = None;
        // The longest suffix wins: it is reported last.
        self.walk(&self.owners, name.as_bytes(), |_, value| best = Some(value));
        self.meta.domain_owners.get(best? as usize)
    }

    /// The owner an app belongs to (first match).
    pub(crate) fn owner_of_app(&self, app: &str) -> Option<&AppOwnerFact> {
        self.meta.app_owners.iter().find(|f| f.app == app)
    }

    /// Whether this set has any owner-name rule (skips AS org matching when not).
    pub(crate) fn has_owner_rules(&self) -> bool {
        !self.meta.owner_rules.is_empty()
    }
}

/// Reads the candidate range of every suffix in `batch` (prefetching its fingerprints), then
/// reports the matches: by the time the second loop reads a bucket, its load has been in
/// flight since the first.
#[inline(always)]
fn probe(view: &index::IndexView<'_>, batch: &[(u64, usize)], found: &mut impl FnMut(usize, u64)) {
    let mut ranges = [index::Candidates::default(); PROBE_BATCH];
    for (range, &(h, _)) in ranges.iter_mut().zip(batch) {
        *range = view.candidates(h);
    }
    for (&range, &(h, start)) in ranges.iter().zip(batch) {
        view.matches(h, range, |i| found(start, view.value(i)));
    }
}

/// Whether `name` is `domain` or below it.
pub(crate) fn in_subtree(name: &str, domain: &str) -> bool {
    name.len() >= domain.len()
        && name.ends_with(domain)
        && (name.len() == domain.len() || name.as_bytes()[name.len() - domain.len() - 1] == b'.')
}

/// Whether an owner rule `needle` (lowercase) names `owner`: case-insensitive, at word
/// boundaries, so `tencent` matches "Shenzhen Tencent Computer Systems" and `bytedance` matches
/// "Bytedance Inc." but `ali` does not match "Alibaba".
pub(crate) fn owner_matches(needle: &str, owner: &str) -> bool {
    let n = needle.as_bytes();
    let o = owner.as_bytes();
    if n.is_empty() || n.len() > o.len() {
        return false;
    }
    (0..=o.len() - n.len()).any(|i| {
        (i == 0 || !o[i - 1].is_ascii_alphanumeric())
            && o[i..i + n.len()].eq_ignore_ascii_case(n)
            && o.get(i + n.len())
                .is_none_or(|c| !c.is_ascii_alphanumeric())
    })
}

/// The rule text shown for an indexed name, in the Embargo native syntax.
fn name_rule_text(name: &str, allow: bool, exact: bool, important: bool) -> CompactString {
    const IMPORTANT: &str = " $important";
    if !(allow || exact || important) {
        // The usual subtree block (hagezi, OISD, AdGuard `||name^`): the text is the name.
        return CompactString::new(name);
    }
    // The exact length: up to 24 bytes the text stays inline (no allocation).
    let len = name.len()
        + if allow { 2 } else { 0 }
        + usize::from(exact)
        + if important { IMPORTANT.len() } else { 0 };
    let mut s = CompactString::with_capacity(len);
    if allow {
        s.push_str("@@");
    }
    if exact {
        s.push('=');
    }
    s.push_str(name);
    if important {
        s.push_str(IMPORTANT);
    }
    s
}

/// Offers every label pattern of a side entry that matches the labels of `name` left of its
/// suffix at `start` (> 0). Out of line: the lookup of a set without patterns never comes here
/// and keeps its code as it was.
#[inline(never)]
fn offer_label_patterns(
    side: &SideEntry,
    name: &str,
    start: usize,
    value: u64,
    dns_type: Option<u16>,
    m: &mut NameMatch,
) {
    // The labels left of the suffix, without the dot before it.
    let left = name
        .as_bytes()
        .get(..start.saturating_sub(1))
        .unwrap_or_default();
    for (j, p) in side.patterns.iter().enumerate() {
        let e = &p.rule;
        if labels_match(p.labels.as_bytes(), left, e.exact) && e.applies(name, dns_type) {
            // Label pattern `j` is entry `rules + j` of the side entry.
            let hit = NameHitRef::Indexed {
                value,
                entry_index: (side.rules.len() + j) as u32,
                suffix_start: start as u32,
            };
            m.offer(e.important, e.allow, hit);
        }
    }
}

/// The hit of label pattern `p` whose fixed suffix is `suffix` in the query: the rule text is
/// the pattern (its wildcard labels, the suffix) as the native format writes it, or its noted
/// text.
fn label_pattern_hit(p: &LabelPattern, suffix: &str) -> NameHit {
    let e = &p.rule;
    let rule = match &e.text {
        Some(text) => text.as_str().into(),
        None => {
            let mut pattern = CompactString::with_capacity(p.labels.len() + 1 + suffix.len());
            pattern.push_str(&p.labels);
            pattern.push('.');
            pattern.push_str(suffix);
            name_rule_text(&pattern, e.allow, e.exact, e.important)
        }
    };
    NameHit {
        list: e.list,
        line: e.line,
        allow: e.allow,
        important: e.important,
        rule,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::RuleRef;
    use crate::rules::NameRule;
    use crate::rules::{Action, IpNet, Rule};

    pub(super) fn src(line: u32) -> RuleRef {
        RuleRef {
            list: "t".into(),
            line,
            rule: format!("rule{line}").into(),
        }
    }

    pub(super) fn name_rule(pattern: NamePattern, action: Action, line: u32) -> Rule {
        Rule::Name(NameRule {
            pattern,
            action,
            important: false,
            dnstype: None,
            denyallow: vec![],
            badfilter: false,
            source: src(line),
        })
    }

    pub(super) fn matched(set: &RuleSet, name: &str) -> (Option<NameHit>, Option<NameHit>) {
        let mut m = NameMatch::default();
        set.match_name(name, None, &mut m);
        (
            m.block.map(|h| set.resolve_hit(name, h)),
            m.allow.map(|h| set.resolve_hit(name, h)),
        )
    }

    #[test]
    fn empty_set_opens() {
        let set = RuleSet::empty();
        assert_eq!(set.name_count(), 0);
        assert_eq!(matched(&set, "example.org"), (None, None));
    }

    #[test]
    fn exact_and_subtree() {
        let mut b = RuleSetBuilder::new();
        b.add(name_rule(
            NamePattern::Subtree("tiktokv.com".into()),
            Action::Block,
            1,
        ));
        b.add(name_rule(
            NamePattern::Exact("ads.example.org".into()),
            Action::Block,
            2,
        ));
        let set = b.build();
        assert_eq!(matched(&set, "log.tiktokv.com").0.unwrap().line, 1);
        assert_eq!(matched(&set, "tiktokv.com").0.unwrap().rule, "tiktokv.com");
        assert!(matched(&set, "xtiktokv.com").0.is_none());
        assert!(matched(&set, "com").0.is_none());
        assert_eq!(
            matched(&set, "ads.example.org").0.unwrap().rule,
            "=ads.example.org"
        );
        assert!(matched(&set, "x.ads.example.org").0.is_none());
        assert!(matched(&set, "example.org").0.is_none());
    }

    #[test]
    fn most_specific_rule_is_reported_and_exceptions_are_separate() {
        let mut b = RuleSetBuilder::new();
        b.add(name_rule(
            NamePattern::Subtree("example.com".into()),
            Action::Block,
            1,
        ));
        b.add(name_rule(
            NamePattern::Subtree("a.example.com".into()),
            Action::Block,
            2,
        ));
        b.add(name_rule(
            NamePattern::Subtree("a.example.com".into()),
            Action::Allow,
            3,
        ));
        let set = b.build();
        let (block, allow) = matched(&set, "x.a.example.com");
        assert_eq!(block.unwrap().line, 2);
        assert_eq!(allow.unwrap().rule, "@@a.example.com");
    }

    #[test]
    fn dnstype_and_denyallow() {
        let mut b = RuleSetBuilder::new();
        b.add(Rule::Name(NameRule {
            pattern: NamePattern::Subtree("example.com".into()),
            action: Action::Block,
            important: false,
            dnstype: Some(DnsTypeFilter {
                include: vec![28],
                exclude: vec![],
            }),
            denyallow: vec!["ok.example.com".into()],
            badfilter: false,
            source: src(1),
        }));
        let set = b.build();
        let check = |name: &str, t: Option<u16>| {
            let mut m = NameMatch::default();
            set.match_name(name, t, &mut m);
            m.block.is_some()
        };
        assert!(check("x.example.com", Some(28)));
        assert!(!check("x.example.com", Some(1)));
        assert!(!check("x.example.com", None));
        assert!(!check("a.ok.example.com", Some(28)));
    }

    #[test]
    fn globs_and_regexes() {
        let mut b = RuleSetBuilder::new();
        b.add(name_rule(
            NamePattern::Glob {
                pattern: "ad*.example.*".into(),
                anchored_start: true,
                anchored_end: true,
            },
            Action::Block,
            1,
        ));
        b.add(name_rule(
            NamePattern::Regex(r"^track[0-9]+\.".into()),
            Action::Block,
            2,
        ));
        b.add(name_rule(
            NamePattern::Regex("a{99999}{99999}".into()),
            Action::Block,
            3,
        ));
        let (set, report) = b.build_with_report();
        assert_eq!(report.rejected.len(), 1);
        assert_eq!(matched(&set, "ads1.example.net").0.unwrap().line, 1);
        assert!(matched(&set, "x.ads1.example.net").0.is_none());
        assert_eq!(matched(&set, "track12.foo.com").0.unwrap().line, 2);
        assert!(matched(&set, "tracker.foo.com").0.is_none());
    }

    #[test]
    fn every_suffix_is_probed_and_nothing_else_matches() {
        let mut b = RuleSetBuilder::new();
        b.add(name_rule(
            NamePattern::Subtree("tiktokv.com".into()),
            Action::Block,
            1,
        ));
        b.add(name_rule(
            NamePattern::Exact("a.b.example.org".into()),
            Action::Block,
            2,
        ));
        let set = b.build();
        assert_eq!(matched(&set, "log.tiktokv.com").0.unwrap().line, 1);
        assert_eq!(matched(&set, "a.b.example.org").0.unwrap().line, 2);
        assert!(matched(&set, "zz.a.b.example.org").0.is_none());
        assert!(matched(&set, "b.example.org").0.is_none());
        // A suffix must start at a label boundary.
        assert!(matched(&set, "xa.b.example.org").0.is_none());
        // One-label keys (a TLD rule).
        let mut b = RuleSetBuilder::new();
        b.add(name_rule(
            NamePattern::Subtree("cn".into()),
            Action::Block,
            1,
        ));
        let set = b.build();
        assert!(matched(&set, "baidu.cn").0.is_some());
        assert!(matched(&set, "cn").0.is_some());
        assert!(matched(&set, "baidu.com").0.is_none());
        // Many keys: every one found with its line, unrelated names never.
        let mut b = RuleSetBuilder::new();
        for i in 0..20_000 {
            b.add(name_rule(
                NamePattern::Subtree(format!("d{i}.com")),
                Action::Block,
                i + 1,
            ));
        }
        let set = b.build();
        assert_eq!(set.name_count(), 20_000);
        set.verify().unwrap();
        for i in 0..20_000 {
            let hit = matched(&set, &format!("a.d{i}.com")).0.unwrap();
            assert_eq!(
                (hit.line, hit.rule.as_str()),
                (i + 1, format!("d{i}.com").as_str())
            );
        }
        for i in 0..20_000 {
            assert!(matched(&set, &format!("x.q{i}.net")).0.is_none());
        }
        // Names with more labels than one probe batch.
        let deep: String = (0..40).map(|i| format!("l{i}.")).collect::<String>() + "d7.com";
        assert_eq!(matched(&set, &deep).0.unwrap().line, 8);
    }

    #[test]
    fn plain_values_pack_line_and_combination() {
        let mut b = RuleSetBuilder::new();
        for (i, list) in ["a", "b", "c"].iter().enumerate() {
            b.add(Rule::Name(NameRule {
                pattern: NamePattern::Exact(format!("n{i}.com")),
                action: Action::Block,
                important: i == 2,
                dnstype: None,
                denyallow: vec![],
                badfilter: false,
                source: RuleRef {
                    list: (*list).into(),
                    line: 1_000_000 + i as u32,
                    rule: Default::default(),
                },
            }));
        }
        let set = b.build();
        assert!(set.meta.side.is_empty());
        assert_eq!(set.meta.combinations.len(), 4);
        assert_eq!(set.names.low_bits, 20);
        for i in 0..3u32 {
            let name = format!("n{i}.com");
            let mut m = NameMatch::default();
            set.match_name(&name, None, &mut m);
            let hit = m.block.or(m.important_block).unwrap();
            let hit = set.resolve_hit(&name, hit);
            assert_eq!(hit.line, 1_000_000 + i);
            assert_eq!(set.list_name(hit.list), ["a", "b", "c"][i as usize]);
            assert_eq!(hit.important, i == 2);
            assert_eq!(
                hit.rule,
                format!("={name}{}", if i == 2 { " $important" } else { "" })
            );
        }
    }

    /// A rule set from Embargo-format text (list "p"), with no load error.
    fn native(text: &str) -> RuleSet {
        native_with(text, vec![])
    }

    /// [`native`] with more rules added after the text's.
    fn native_with(text: &str, more: Vec<Rule>) -> RuleSet {
        let mut b = RuleSetBuilder::new();
        let report = crate::parse::parse_bytes(
            crate::parse::Format::Embargo,
            "p",
            text.as_bytes(),
            &mut |r| b.add(r),
        );
        assert_eq!(report.error_count, 0, "{:?}", report.errors);
        for r in more {
            b.add(r);
        }
        let (set, build) = b.build_with_report();
        assert!(build.rejected.is_empty(), "{:?}", build.rejected);
        set.verify().unwrap();
        set
    }

    /// The strongest hit's rule text and verdict class, as a decision would show it.
    pub(super) fn strongest(set: &RuleSet, name: &str) -> Option<(NameClass, String, u32)> {
        let mut m = NameMatch::default();
        set.match_name(name, None, &mut m);
        m.strongest().map(|(class, hit)| {
            let hit = set.resolve_hit(name, hit);
            (class, hit.rule.to_string(), hit.line)
        })
    }

    #[test]
    fn label_patterns_are_keyed_by_their_fixed_suffix() {
        let set = native(
            "log*.tiktokv.com\n\
             mon-*.tiktokv.com\n\
             *-normal*.tiktokv.com\n\
             log*-*.byteoversea.com\n\
             =api*.*.sgsnssdk.com\n\
             ads.tiktokv.com\n",
        );
        assert_eq!(set.counts()[0], 5);
        let rule = |name: &str| strongest(&set, name).map(|(_, rule, _)| rule);
        // Prefix, infix and suffix stars; the star may match nothing.
        assert_eq!(
            rule("log15.tiktokv.com").as_deref(),
            Some("log*.tiktokv.com")
        );
        assert_eq!(rule("log.tiktokv.com").as_deref(), Some("log*.tiktokv.com"));
        assert_eq!(
            rule("mon-va.tiktokv.com").as_deref(),
            Some("mon-*.tiktokv.com")
        );
        assert_eq!(
            rule("api16-normal-c-useast1a.tiktokv.com").as_deref(),
            Some("*-normal*.tiktokv.com")
        );
        assert_eq!(
            rule("log16-va.byteoversea.com").as_deref(),
            Some("log*-*.byteoversea.com")
        );
        // The subtree of a match.
        assert_eq!(
            rule("a.b.log15.tiktokv.com").as_deref(),
            Some("log*.tiktokv.com")
        );
        // A star never crosses a dot, and the suffix itself is not matched.
        assert_eq!(rule("logx.a.tiktokv.com"), None);
        assert_eq!(rule("xlog.tiktokv.com"), None);
        assert_eq!(rule("tiktokv.com"), None);
        assert_eq!(rule("log15.tiktokv.net"), None);
        assert_eq!(rule("log15.xtiktokv.com"), None);
        assert_eq!(rule("log16.byteoversea.com"), None);
        // Several starred labels, exact: exactly that many labels.
        assert_eq!(
            rule("api1.x.sgsnssdk.com").as_deref(),
            Some("=api*.*.sgsnssdk.com")
        );
        assert_eq!(rule("z.api1.x.sgsnssdk.com"), None);
        assert_eq!(rule("x.sgsnssdk.com"), None);
        // A plain name under the same suffix as patterns keeps its own rule, and its subtree.
        assert_eq!(rule("ads.tiktokv.com").as_deref(), Some("ads.tiktokv.com"));
        assert_eq!(
            rule("log1.ads.tiktokv.com").as_deref(),
            Some("ads.tiktokv.com")
        );
        assert_eq!(rule("www.tiktokv.com"), None);
    }

    #[test]
    fn label_pattern_exceptions_beat_blocks() {
        let important = Rule::Name(NameRule {
            pattern: NamePattern::Labels {
                pattern: "log*.ttlivecdn.com".into(),
                exact: false,
            },
            action: Action::Block,
            important: true,
            dnstype: None,
            denyallow: vec![],
            badfilter: false,
            source: src(9),
        });
        let set = native_with(
            "tiktokv.com\n\
             log*.tiktokv.com\n\
             @@log*.us.tiktokv.com\n\
             @@=mon-*.tiktokv.com\n\
             @@log1*.ttlivecdn.com\n\
             allow api*.tiktokv.com\n",
            vec![important],
        );
        let got = |name: &str| strongest(&set, name).map(|(c, rule, _)| (c, rule));
        let allow = |r: &str| Some((NameClass::Allow, r.to_owned()));
        let block = |r: &str| Some((NameClass::Block, r.to_owned()));
        assert_eq!(got("log1.us.tiktokv.com"), allow("@@log*.us.tiktokv.com"));
        assert_eq!(got("a.log1.us.tiktokv.com"), allow("@@log*.us.tiktokv.com"));
        assert_eq!(got("log1.tiktokv.com"), block("log*.tiktokv.com"));
        assert_eq!(got("mon-va.tiktokv.com"), allow("@@=mon-*.tiktokv.com"));
        // The exact exception does not cover the subtree: the plain suffix rule blocks.
        assert_eq!(got("a.mon-va.tiktokv.com"), block("tiktokv.com"));
        assert_eq!(got("api16.tiktokv.com"), allow("@@api*.tiktokv.com"));
        // An important pattern beats an exception pattern.
        assert_eq!(
            got("log15.ttlivecdn.com"),
            Some((
                NameClass::ImportantBlock,
                "log*.ttlivecdn.com $important".to_owned()
            ))
        );
        // Patterns that allow are confirmed by their suffix's name.
        assert!(set
            .meta
            .side
            .iter()
            .filter(|s| s.patterns.iter().any(|p| p.rule.allow))
            .all(|s| s.name.is_some()));
    }

    #[test]
    fn label_patterns_take_names_as_the_policy_normalises_them() {
        let set = native("LOG*.TikTokv.COM.\n");
        let policy = crate::Policy::new(
            vec![Arc::new(set)],
            crate::IpDb::new(),
            crate::AppRules::default(),
        );
        for name in [
            "LOG15.TikTokv.com.",
            "log15.tiktokv.com",
            "a.Log.tiktokv.com",
        ] {
            let d = policy.decide(&crate::Query::name(name));
            assert_eq!(d.verdict, Verdict::Block, "{name}");
            let crate::Reason::NameRule { rule, exception } = d.reason else {
                panic!("{name}: {:?}", d.reason)
            };
            assert!(!exception);
            assert_eq!((&*rule.list, rule.line), ("p", 1));
            assert_eq!(rule.rule, "log*.tiktokv.com");
        }
        assert_eq!(
            policy
                .decide(&crate::Query::name("Logs.X.tiktokv.com"))
                .verdict,
            Verdict::Allow
        );
    }

    #[test]
    fn label_patterns_round_trip_through_the_compiled_file() {
        let text = "log*.tiktokv.com  # source: issue 15\n\
                    @@=mon-*.tiktokv.com\n\
                    *-normal*.tiktokv.com\n\
                    tiktokv.com\n\
                    /^ad[0-9]+\\./\n";
        let set = native(text);
        let bytes = set.as_bytes().to_vec();
        let dir = std::env::temp_dir().join(format!("embargo-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.embargo");
        std::fs::write(&path, &bytes).unwrap();
        let again = RuleSet::from_bytes(std::fs::read(&path).unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        again.verify().unwrap();
        assert_eq!(again.counts()[0], 4);
        for name in [
            "log1.tiktokv.com",
            "mon-va.tiktokv.com",
            "x.mon-va.tiktokv.com",
            "api-normal.tiktokv.com",
            "ad12.example.org",
            "tiktokv.com",
        ] {
            assert_eq!(strongest(&again, name), strongest(&set, name), "{name}");
        }
        assert_eq!(
            strongest(&again, "log1.tiktokv.com").unwrap().1,
            "log*.tiktokv.com # source: issue 15"
        );
        assert_eq!(strongest(&again, "ad12.example.org").unwrap().2, 5);
        assert_eq!(
            strongest(&again, "mon-va.tiktokv.com").unwrap().1,
            "@@=mon-*.tiktokv.com"
        );
    }

    #[test]
    fn a_malformed_label_pattern_table_is_an_error() {
        let set = native("log*.tiktokv.com\n");
        let meta = set.meta.clone();
        for bad in ["", "log**", "a..b*", "log", "lo g*", "a*.b"] {
            let mut meta = meta.clone();
            meta.side[0].patterns[0].labels = bad.into();
            // Rewrite the file with this metadata (checksum and all), then open it.
            let sections = [
                SectionId::Names,
                SectionId::Owners,
                SectionId::V4,
                SectionId::V6,
            ]
            .map(|id| {
                let (s, e) = format::validate(set.as_bytes()).unwrap().range(id);
                (id, set.as_bytes()[s..e].to_vec())
            });
            let mut all = sections.to_vec();
            all.push((SectionId::Meta, serde_json::to_vec(&meta).unwrap()));
            let err = RuleSet::from_bytes(format::write(&all)).unwrap_err();
            assert!(
                matches!(
                    err,
                    CompiledError::BadSection {
                        section: "meta",
                        ..
                    }
                ),
                "{bad:?}: {err}"
            );
        }
        // The same table, well formed, opens.
        let sections = [
            SectionId::Names,
            SectionId::Owners,
            SectionId::V4,
            SectionId::V6,
            SectionId::Meta,
        ]
        .map(|id| {
            let (s, e) = format::validate(set.as_bytes()).unwrap().range(id);
            (id, set.as_bytes()[s..e].to_vec())
        });
        assert!(RuleSet::from_bytes(format::write(&sections)).is_ok());
    }

    #[test]
    fn owner_facts_and_rules() {
        let mut b = RuleSetBuilder::new();
        b.add(Rule::DomainOwner(crate::rules::DomainOwner {
            domain: "tiktokv.com".into(),
            owner: "ByteDance Ltd.".into(),
            display_name: "ByteDance".into(),
            source: src(1),
        }));
        b.add(Rule::Asn {
            asn: 45090,
            action: Action::Block,
            source: src(2),
        });
        b.add(Rule::OwnerName {
            owner: "Tencent".into(),
            action: Action::Block,
            source: src(3),
        });
        let set = b.build();
        assert_eq!(
            set.owner_of_name("mon.tiktokv.com").unwrap().display_name,
            "ByteDance"
        );
        assert!(set.owner_of_name("tiktokv.com.evil").is_none());
        assert_eq!(set.match_asn(45090).unwrap().line, 2);
        assert!(set.match_asn(45091).is_none());
        assert!(set
            .match_owner("Shenzhen Tencent Computer Systems")
            .is_some());
        assert!(set.match_owner("Tencentish").is_none());
    }

    #[test]
    fn owner_word_matching() {
        assert!(owner_matches("bytedance", "Bytedance Inc."));
        assert!(owner_matches(
            "alibaba",
            "Hangzhou Alibaba Advertising Co.,Ltd."
        ));
        assert!(!owner_matches("ali", "Hangzhou Alibaba Advertising"));
        assert!(!owner_matches("", "x"));
    }

    pub(super) fn addr_rule(net: &str, len: u8, action: Action, line: u32) -> Rule {
        Rule::Address {
            net: IpNet {
                addr: net.parse().unwrap(),
                prefix_len: len,
            },
            action,
            source: src(line),
        }
    }

    #[test]
    fn compiled_bytes_roundtrip_and_corruption() {
        let mut b = RuleSetBuilder::new();
        b.add(name_rule(
            NamePattern::Subtree("tiktokv.com".into()),
            Action::Block,
            1,
        ));
        b.add(addr_rule("10.0.0.0", 8, Action::Block, 2));
        let set = b.build();
        let bytes = set.as_bytes().to_vec();
        let again = RuleSet::from_bytes(bytes.clone()).unwrap();
        assert!(matched(&again, "a.tiktokv.com").0.is_some());
        for len in [0, 7, 31, 32, 100, bytes.len() - 1] {
            assert!(RuleSet::from_bytes(bytes[..len].to_vec()).is_err());
        }
        let mut flipped = bytes.clone();
        let mid = bytes.len() / 2;
        flipped[mid] ^= 0x10;
        let err = RuleSet::from_bytes(flipped).unwrap_err();
        assert!(
            matches!(err, CompiledError::ChecksumMismatch { .. }),
            "{err}"
        );
    }
}
