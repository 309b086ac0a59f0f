//! Deterministic generator of realistic blocklist names, shared by the benchmarks and the
//! memory example (`#[path]`-included).
//!
//! How a name is made (splitmix64 seeded with a fixed constant, so every run and machine gets the
//! same list): a registrable label of 2-4 syllables drawn from 64 consonant-vowel syllables
//! (e.g. `tokavi`), optionally followed by a digit run (1 in 8), under a TLD drawn from a
//! weighted table of 16 (com 45 %, net, org, io, ru, de, cn, info, xyz, top, ...); then 0, 1 or 2
//! subdomain labels (probabilities 0.4 / 0.45 / 0.15) from 40 common tracker prefixes (`ads`,
//! `log`, `metrics`, `cdn`, ...), a prefix with a number (`log16`), or 3-8 random letters.
//! Duplicates are dropped until `n` distinct names exist. Shape: real aggregated blocklists (hagezi,
//! OISD) are mostly registrable domains with some tracker subdomains, like this.

#![allow(dead_code)]

pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

const CONSONANTS: &[u8] = b"bcdfgklmnprstvwz";
const VOWELS: &[u8] = b"aeio";
const TLDS: &[(&str, u64)] = &[
    ("com", 45),
    ("net", 10),
    ("org", 6),
    ("io", 5),
    ("ru", 5),
    ("de", 4),
    ("cn", 4),
    ("info", 4),
    ("xyz", 3),
    ("top", 3),
    ("co.uk", 2),
    ("fr", 2),
    ("br", 2),
    ("jp", 2),
    ("online", 2),
    ("site", 1),
];
const PREFIXES: &[&str] = &[
    "ads",
    "ad",
    "log",
    "logs",
    "metrics",
    "stats",
    "track",
    "tracking",
    "pixel",
    "analytics",
    "telemetry",
    "events",
    "collect",
    "beacon",
    "api",
    "cdn",
    "static",
    "img",
    "www",
    "m",
    "app",
    "sdk",
    "mon",
    "mcs",
    "click",
    "clk",
    "count",
    "tag",
    "tags",
    "sync",
    "match",
    "rtb",
    "bid",
    "data",
    "report",
    "crash",
    "push",
    "config",
    "abtest",
    "t",
];

fn syllables(rng: &mut SplitMix, out: &mut String) {
    for _ in 0..2 + rng.below(3) {
        out.push(CONSONANTS[rng.below(CONSONANTS.len() as u64) as usize] as char);
        out.push(VOWELS[rng.below(VOWELS.len() as u64) as usize] as char);
    }
}

fn tld(rng: &mut SplitMix) -> &'static str {
    let total: u64 = TLDS.iter().map(|t| t.1).sum();
    let mut pick = rng.below(total);
    for (t, w) in TLDS {
        if pick < *w {
            return t;
        }
        pick -= w;
    }
    "com"
}

fn subdomain(rng: &mut SplitMix, out: &mut String) {
    match rng.below(10) {
        0..=5 => out.push_str(PREFIXES[rng.below(PREFIXES.len() as u64) as usize]),
        6..=7 => {
            out.push_str(PREFIXES[rng.below(PREFIXES.len() as u64) as usize]);
            out.push_str(&rng.below(100).to_string());
        }
        _ => {
            for _ in 0..3 + rng.below(6) {
                out.push((b'a' + rng.below(26) as u8) as char);
            }
        }
    }
    out.push('.');
}

/// One generated name.
pub fn name(rng: &mut SplitMix) -> String {
    let mut s = String::with_capacity(40);
    let subs = match rng.below(100) {
        0..=39 => 0,
        40..=84 => 1,
        _ => 2,
    };
    for _ in 0..subs {
        subdomain(rng, &mut s);
    }
    syllables(rng, &mut s);
    if rng.below(8) == 0 {
        s.push_str(&rng.below(1000).to_string());
    }
    s.push('.');
    s.push_str(tld(rng));
    s
}

/// `n` distinct names, always the same for the same `n`.
pub fn names(n: usize) -> Vec<String> {
    let mut rng = SplitMix(0x454d_4241_5247_4f21); // "EMBARGO!"
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let s = name(&mut rng);
        if seen.insert(s.clone()) {
            out.push(s);
        }
    }
    out
}

/// Names that are not in the generated list (different seed; a few may collide, which only
/// makes them hits).
pub fn other_names(n: usize) -> Vec<String> {
    let mut rng = SplitMix(0x0bad_cafe_f00d_d00d);
    (0..n).map(|_| format!("q{}", name(&mut rng))).collect()
}

/// The StevenBlack hosts list's names (exact rules), in file order.
pub fn stevenblack_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("0.0.0.0 "))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|n| *n != "0.0.0.0")
        .map(str::to_owned)
        .collect()
}

/// The parent-walk baseline (Blokada, NetGuard): is the name or any parent in the set?
pub fn baseline_blocked(set: &std::collections::HashSet<String>, name: &str) -> bool {
    let mut rest = name;
    loop {
        if set.contains(rest) {
            return true;
        }
        match rest.find('.') {
            Some(i) => rest = &rest[i + 1..],
            None => return false,
        }
    }
}

/// Query names stored back to back in one buffer, as names arrive in the engine: each is read
/// from the packet it was just parsed from, so it is in the cache when the policy sees it. A
/// `Vec<String>` of queries instead scatters them over a heap that building a million-name set
/// has fragmented, and every lookup (the baseline's too) would then first wait on a cache miss
/// for the benchmark's own copy of the name, which no real decision pays.
pub struct Queries {
    text: String,
    ends: Vec<u32>,
}

impl Queries {
    pub fn new(names: &[String]) -> Queries {
        let mut text = String::with_capacity(names.iter().map(String::len).sum());
        let mut ends = Vec::with_capacity(names.len());
        for n in names {
            text.push_str(n);
            ends.push(text.len() as u32);
        }
        Queries { text, ends }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The query after `i`, back to the first after the last: a compare, not `%` (a 64-bit
    /// division costs more than the hash of a name, and would be timed with every decision).
    pub fn after(&self, i: usize) -> usize {
        if i + 1 >= self.ends.len() {
            0
        } else {
            i + 1
        }
    }

    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }
}
