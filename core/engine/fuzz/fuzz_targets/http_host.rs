//! HTTP/1.x request-head sniffer on arbitrary stream prefixes, proxy forms included (absolute
//! URIs, `CONNECT` heads read to their end).
#![no_main]

use embargo_engine::inspect::{http, Sniff};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Sniff::Done(request) = http::request(data) {
        // Hosts handed to the policy are always plain lowercase names or IP literals.
        let plain = |host: &str| {
            !host.is_empty()
                && !host
                    .bytes()
                    .any(|b| b.is_ascii_uppercase() || b.is_ascii_whitespace())
        };
        for host in [&request.host, &request.target_host, &request.host_header]
            .into_iter()
            .flatten()
        {
            assert!(plain(host));
        }
        // The host is one of the names, and the names are distinct.
        let names: Vec<&str> = request.names().collect();
        assert!(names.len() <= 2);
        if let Some(host) = &request.host {
            assert!(names.contains(&host.as_str()));
        }
        if names.len() == 2 {
            assert_ne!(names[0], names[1]);
        }
        // The head ends inside what was read, on its blank line.
        if let Some(len) = request.head_len {
            assert!(len <= data.len().min(http::SNIFF_LIMIT));
            assert_eq!(data[len - 1], b'\n');
        }
    }
});
