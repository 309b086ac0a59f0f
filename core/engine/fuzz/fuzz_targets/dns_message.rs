//! DNS: query parse, block answers (which must always parse back and be cacheable without harm),
//! answer parse, the name table, the cache and TCP framing, on arbitrary messages.
#![no_main]

use std::time::{Duration, Instant};

use embargo_engine::dns::{BlockResponse, Cache, DnsAnswer, DnsQuery, NameTable, TcpFramer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut cache = Cache::new();
    if let Ok(query) = DnsQuery::parse(data) {
        let mut out = Vec::new();
        for how in [
            BlockResponse::NxDomain,
            BlockResponse::Refused,
            BlockResponse::default(),
        ] {
            query
                .block_answer(data, how, &mut out)
                .expect("block answer for a parsed query");
            let answer = DnsAnswer::parse(&out).expect("our block answer parses");
            assert_eq!(answer.id, query.id);
        }
        // The last one (null address) is a cacheable answer for A/AAAA: serve it back.
        if cache.insert(&out, now) {
            let hit = cache.lookup(&query, data, usize::MAX, now + Duration::from_secs(1));
            let hit = hit.expect("a cached answer to this very query is served");
            assert_eq!(
                DnsAnswer::parse(&hit).expect("cache hit parses").id,
                query.id
            );
        }
    }
    if let Ok(answer) = DnsAnswer::parse(data) {
        let mut table = NameTable::new();
        table.learn(&answer, now);
        for learned in &answer.addresses {
            let _ = table.lookup(learned.addr, now);
        }
    }
    let _ = cache.insert(data, now);
    let mut framer = TcpFramer::new();
    for chunk in data.chunks(7) {
        if framer.push(chunk).is_err() {
            break;
        }
        while let Some(msg) = framer.next_message() {
            let _ = DnsQuery::parse(&msg);
        }
    }
});
