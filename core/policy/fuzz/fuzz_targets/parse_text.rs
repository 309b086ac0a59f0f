//! Fuzzes every line-based parser. The first byte picks the format and the read-buffer size
//! (so that lines arrive split across `fill_buf` chunks at every possible point); the rest is
//! the list.
#![no_main]

use embargo_policy::parse::{
    compile_name_regex, normalize_name, parse_list, Format, MAX_STORED_ERRORS,
};
use embargo_policy::{NamePattern, Rule};
use libfuzzer_sys::fuzz_target;

const FORMATS: [Format; 9] = [
    Format::Hosts,
    Format::HostsSubtree,
    Format::Domains { subdomains: false },
    Format::Domains { subdomains: true },
    Format::AdBlock,
    Format::Dnsmasq,
    Format::Unbound,
    Format::Wildcard,
    Format::Embargo,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, list)) = data.split_first() else {
        return;
    };
    let format = FORMATS[usize::from(selector) % FORMATS.len()];
    let capacity = 1 + usize::from(selector / 9) * 17;
    let _ = Format::detect("fuzz.txt", list);
    let reader = std::io::BufReader::with_capacity(capacity, list);
    let mut emitted = 0u64;
    let report = parse_list(format, "fuzz", reader, &mut |rule| {
        emitted += 1;
        // Whatever a parser accepts must be something the matcher can use.
        if let Rule::Name(rule) = &rule {
            match &rule.pattern {
                NamePattern::Exact(n) | NamePattern::Subtree(n) => {
                    assert_eq!(normalize_name(n).as_deref(), Ok(n.as_str()), "{rule:?}")
                }
                NamePattern::Regex(r) => assert!(compile_name_regex(r).is_ok(), "{rule:?}"),
                NamePattern::Glob { pattern, .. } => assert!(!pattern.is_empty()),
                NamePattern::Labels { pattern, .. } => {
                    // A `*` somewhere, then a fixed suffix of at least two plain labels.
                    let star = pattern.rfind('*').expect("a label pattern has a star");
                    let suffix = pattern[star..].split_once('.').map(|(_, s)| s);
                    let suffix = suffix.unwrap_or_else(|| panic!("no fixed suffix: {rule:?}"));
                    assert_eq!(normalize_name(suffix).as_deref(), Ok(suffix), "{rule:?}");
                    assert!(suffix.contains('.'), "{rule:?}");
                }
            }
            assert!(rule.source.line >= 1);
        }
    });
    assert_eq!(report.accepted, emitted);
    assert!(report.errors.len() <= MAX_STORED_ERRORS);
    assert!(report.errors.len() as u64 <= report.error_count);
});
