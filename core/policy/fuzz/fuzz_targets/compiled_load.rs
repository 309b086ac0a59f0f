//! Fuzzes the compiled rule-set loader and the matcher over whatever it accepts.
//!
//! The first byte chooses the mode: even = the bytes as they are (exercises header, length and
//! checksum checks); odd = the bytes with a valid magic, version, length and checksum written
//! in (`format::seal`), so that the fuzzer explores section tables, the name and owner
//! fingerprint indexes (headers, bucket directories, packed values), the address tables and
//! the metadata behind a checksum it could never guess. Every accepted set is then asked about
//! names and addresses: nothing may panic, whether or not `RuleSet::verify` accepts it (opening
//! parses each index's header and directory, so lookups are safe on any file that opens;
//! verify only adds per-key checks). The panic hook is silenced (the previous format's verify
//! caught panics of the `fst` crate); libfuzzer-sys still aborts on any panic that leaves the
//! closure, so a panic is a crash.
#![no_main]

use std::sync::Arc;

use embargo_policy::format::{seal, MAGIC, VERSION};
use embargo_policy::{AppRules, IpDb, Policy, Query, RuleSet};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 6] = [
    "example.org",
    "log.tiktokv.com",
    "a.b.c.d.e.f.g",
    "x",
    "com",
    "very-long-label-for-fuzzing.example.co.uk",
];

static HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    HOOK.call_once(|| {
        let _ = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
    });
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 && bytes.len() >= 32 {
        bytes[..8].copy_from_slice(&MAGIC);
        bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
        bytes[28..32].copy_from_slice(&[0; 4]);
        seal(&mut bytes);
    }
    let Ok(set) = RuleSet::from_bytes(bytes) else {
        return;
    };
    // Lookups must be safe on every file that opens, verified or not.
    let _ = set.verify();
    let _ = set.name_count();
    let _ = set.counts();
    let policy = Policy::new(vec![Arc::new(set)], IpDb::new(), AppRules::default());
    for name in NAMES {
        let _ = policy.decide(&Query::name(name).with_app("com.zhiliaoapp.musically"));
    }
    for addr in [
        "1.12.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "::",
        "2400:3200::1",
        "::ffff:10.0.0.1",
    ] {
        let _ = policy.decide(&Query::addr(addr.parse().unwrap()));
    }
    // Names drawn from the input itself reach deep FST paths.
    if let Ok(text) = std::str::from_utf8(rest) {
        for word in text.split(|c: char| c.is_whitespace() || c == '\0').take(8) {
            if !word.is_empty() && word.len() < 256 {
                let _ = policy.decide(&Query::name(word));
            }
        }
    }
});
