//! Cost of the per-flow inspection work: SNI extraction (TLS and QUIC), HTTP Host, DNS query parse
//! plus block answer, DNS answer parse, name-table lookup and cache hits. Inputs are real packets
//! from `shared/data/pcap/metadata.pcap` (committed as fuzz seeds) and the RFC 9001 A.2 sample.
//!
//! Baselines in the same run: `baseline/copy_hello` (copying the ClientHello bytes once, the floor
//! of any inspection that touches them) and `baseline/hickory_decode_encode` (decoding the query
//! into a full hickory `Message` and encoding a response with it, the straightforward way to do
//! what `dns/query_parse_block_answer` does).
//!
//! Run: `cargo bench -p embargo-engine --bench inspect`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use embargo_engine::dns::{BlockResponse, Cache, DnsAnswer, DnsQuery, NameTable};
use embargo_engine::inspect::{http, quic, tls};

/// A Firefox-style ClientHello record (512-byte hello, SNI google.it) from the capture.
const HELLO: &[u8] = include_bytes!("../fuzz/seeds/tls_client_hello/00601468c557a2d7");
/// `GET /imghp?test=1&v2=2 HTTP/1.1` with its Host header, from the capture.
const HTTP_REQUEST: &[u8] = include_bytes!("../fuzz/seeds/http_host/65f2e3d0ea87d923");
/// A query for www.google.com A (id 0x1b2c) and its upstream answer (with OPT) from the capture.
const QUERY: &[u8] = include_bytes!("../fuzz/seeds/dns_message/02edb95492514e34");
const ANSWER: &[u8] = include_bytes!("../fuzz/seeds/dns_message/578756544898450a");

fn rfc9001_initial() -> Vec<u8> {
    let hex: String = include_str!("../src/inspect/testdata/rfc9001-a2-client-initial.hex")
        .split_whitespace()
        .collect();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn inspect(c: &mut Criterion) {
    assert!(matches!(
        tls::client_hello_sni(HELLO),
        embargo_engine::inspect::Sniff::Done(Some(_))
    ));
    c.bench_function("tls/client_hello_sni_512B", |b| {
        b.iter(|| tls::client_hello_sni(black_box(HELLO)))
    });
    c.bench_function("baseline/copy_hello", |b| {
        b.iter(|| black_box(HELLO).to_vec())
    });

    let initial = rfc9001_initial();
    c.bench_function("quic/initial_client_hello_rfc9001", |b| {
        b.iter(|| quic::initial_client_hello(black_box(&initial)))
    });

    c.bench_function("http/request_host", |b| {
        b.iter(|| http::request(black_box(HTTP_REQUEST)))
    });
}

fn dns(c: &mut Criterion) {
    c.bench_function("dns/query_parse", |b| {
        b.iter(|| DnsQuery::parse(black_box(QUERY)).unwrap())
    });
    let mut out = Vec::with_capacity(512);
    c.bench_function("dns/query_parse_block_answer", |b| {
        b.iter(|| {
            let query = DnsQuery::parse(black_box(QUERY)).unwrap();
            query
                .block_answer(QUERY, BlockResponse::default(), &mut out)
                .unwrap();
            black_box(out.len())
        })
    });
    c.bench_function("baseline/hickory_decode_encode", |b| {
        use hickory_proto::op::{Message, MessageType};
        use hickory_proto::rr::{rdata::A, RData, Record};
        b.iter(|| {
            let query = Message::from_vec(black_box(QUERY)).unwrap();
            let mut response = query.clone();
            response.metadata.message_type = MessageType::Response;
            response.metadata.recursion_available = true;
            let name = query.queries[0].name.clone();
            response.add_answer(Record::from_rdata(
                name,
                5,
                RData::A(A(Ipv4Addr::UNSPECIFIED)),
            ));
            black_box(response.to_vec().unwrap())
        })
    });
    c.bench_function("dns/answer_parse", |b| {
        b.iter(|| DnsAnswer::parse(black_box(ANSWER)).unwrap())
    });

    let now = Instant::now();
    let mut table = NameTable::new();
    let answer = DnsAnswer::parse(ANSWER).unwrap();
    table.learn(&answer, now);
    // Fill the table to its bound so lookups pay the real hash-map cost.
    for i in 0..4000u32 {
        let chain: std::sync::Arc<[std::sync::Arc<str>]> = std::sync::Arc::from(Vec::new());
        let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        table.insert(
            addr,
            &std::sync::Arc::from(format!("n{i}.example")),
            &chain,
            300,
            now,
        );
    }
    let known = answer.addresses[0].addr;
    c.bench_function("dns/name_table_lookup", |b| {
        b.iter(|| table.lookup(black_box(known), now))
    });

    let mut cache = Cache::new();
    assert!(cache.insert(ANSWER, now));
    let query = DnsQuery::parse(QUERY).unwrap();
    let later = now + Duration::from_secs(1);
    c.bench_function("dns/cache_hit", |b| {
        b.iter(|| cache.lookup(black_box(&query), QUERY, 512, later).unwrap())
    });
}

criterion_group!(benches, inspect, dns);
criterion_main!(benches);
