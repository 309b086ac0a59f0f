//! HTTP/1.x request-head sniffer on arbitrary stream prefixes.
#![no_main]

use embargo_engine::inspect::{http, Sniff};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Sniff::Done(request) = http::request(data) {
        // Hosts handed to the policy are always plain lowercase names or IP literals.
        if let Some(host) = request.host {
            assert!(!host.is_empty());
            assert!(!host
                .bytes()
                .any(|b| b.is_ascii_uppercase() || b.is_ascii_whitespace()));
        }
    }
});
