//! Fuzzes the JSON parsers (DuckDuckGo app and web tracker data, Disconnect services.json and
//! entities.json, TrackerControl's X-Ray list, Exodus trackers.json).
//! The first byte picks the format; the rest is the document.
#![no_main]

use embargo_policy::parse::{
    compile_name_regex, normalize_name, parse_bytes, Format, MAX_STORED_ERRORS,
};
use embargo_policy::{NamePattern, Rule};
use libfuzzer_sys::fuzz_target;

const FORMATS: [Format; 6] = [
    Format::DdgApp,
    Format::DdgWeb,
    Format::Disconnect,
    Format::DisconnectEntities,
    Format::Xray,
    Format::Exodus,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, document)) = data.split_first() else {
        return;
    };
    let format = FORMATS[usize::from(selector) % FORMATS.len()];
    let _ = Format::detect("fuzz.json", document);
    let mut emitted = 0u64;
    let report = parse_bytes(format, "fuzz.json", document, &mut |rule| {
        emitted += 1;
        match &rule {
            Rule::Name(rule) => match &rule.pattern {
                NamePattern::Exact(n) | NamePattern::Subtree(n) => {
                    assert_eq!(normalize_name(n).as_deref(), Ok(n.as_str()))
                }
                // Exodus keeps network signatures that are not plain domains as regexes, and
                // only those that compile within the budget.
                NamePattern::Regex(r) if format == Format::Exodus => {
                    assert!(compile_name_regex(r).is_ok(), "{r}")
                }
                other => panic!("JSON formats only name whole domains: {other:?}"),
            },
            Rule::DomainOwner(fact) => {
                assert_eq!(
                    normalize_name(&fact.domain).as_deref(),
                    Ok(fact.domain.as_str())
                )
            }
            _ => {}
        }
    });
    assert_eq!(report.accepted, emitted);
    assert!(report.errors.len() <= MAX_STORED_ERRORS);
});
