//! Criterion benchmarks of the decision engine against a `HashSet<String>` parent-walk baseline
//! (what Blokada and NetGuard do), in the same run.
//!
//! `cargo bench -p embargo-policy --bench policy`. Data: ../shared/data (StevenBlack full hosts
//! list, ip-location-db full files) and a generated 1M-name list (see `gen.rs` for how).
//! Memory and compiled size are measured by `cargo run --release -p embargo-policy --example
//! memory` (a counting allocator cannot be installed in a criterion binary without skewing it).

use std::collections::{BTreeMap, HashSet};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use embargo_policy::parse::{parse_bytes, Format};
use embargo_policy::{
    Action, AppRules, IpDb, NamePattern, NameRule, Policy, Query, Rule, RuleRef, RuleSet,
    RuleSetBuilder,
};

#[path = "support/gen.rs"]
mod gen;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

/// Queries: half listed names (or subdomains of them), half names not listed, interleaved, so
/// the figure is neither the all-hit nor the all-miss best case. Stored back to back
/// ([`gen::Queries`]) the way names reach the engine, for all three contenders alike.
fn queries(listed: &[String], others: &[String], n: usize) -> Vec<String> {
    let mut rng = gen::SplitMix(7);
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                let name = &listed[rng.below(listed.len() as u64) as usize];
                if i % 4 == 0 {
                    name.clone()
                } else {
                    format!("x.{name}")
                }
            } else {
                others[rng.below(others.len() as u64) as usize].clone()
            }
        })
        .collect()
}

fn generated_rules(names: &[String]) -> Vec<Rule> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Rule::Name(NameRule {
                pattern: NamePattern::Subtree(n.clone()),
                action: Action::Block,
                important: false,
                dnstype: None,
                denyallow: vec![],
                badfilter: false,
                source: RuleRef {
                    list: "generated-1m".into(),
                    line: i as u32 + 1,
                    rule: n.as_str().into(),
                },
            })
        })
        .collect()
}

fn bench_decisions(
    c: &mut Criterion,
    label: &str,
    policy: &Policy,
    set: &HashSet<String>,
    qs: &gen::Queries,
) {
    let mut group = c.benchmark_group(format!("decide_name/{label}"));
    let mut i = 0usize;
    group.bench_function("embargo_decide", |b| {
        b.iter(|| {
            i = qs.after(i);
            black_box(policy.decide(&Query::name(black_box(qs.get(i)))))
        })
    });
    let mut i = 0usize;
    group.bench_function("embargo_verdict_only", |b| {
        b.iter(|| {
            i = qs.after(i);
            black_box(policy.verdict(&Query::name(black_box(qs.get(i)))))
        })
    });
    let mut i = 0usize;
    group.bench_function("baseline_hashset_parent_walk", |b| {
        b.iter(|| {
            i = qs.after(i);
            black_box(gen::baseline_blocked(set, black_box(qs.get(i))))
        })
    });
    group.finish();
}

fn names_benches(c: &mut Criterion) {
    // StevenBlack, full list.
    let text = std::fs::read_to_string(data("blocklists/stevenblack-hosts.txt")).unwrap();
    let sb_names = gen::stevenblack_names(&text);
    let mut builder = RuleSetBuilder::new();
    let report = parse_bytes(
        Format::Hosts,
        "stevenblack-hosts.txt",
        text.as_bytes(),
        &mut |r| builder.add(r),
    );
    assert_eq!(report.error_count, 0);
    let sb = Policy::new(
        vec![Arc::new(builder.build())],
        IpDb::new(),
        AppRules::default(),
    );
    let sb_set: HashSet<String> = sb_names.iter().cloned().collect();
    let others = gen::other_names(100_000);
    let qs = gen::Queries::new(&queries(&sb_names, &others, 1 << 16));
    bench_decisions(c, "stevenblack", &sb, &sb_set, &qs);

    // Generated 1M names (subtree rules).
    let names = gen::names(1_000_000);
    let rules = generated_rules(&names);
    let mut builder = RuleSetBuilder::new();
    for r in rules.iter().cloned() {
        builder.add(r);
    }
    let set = builder.build();
    let compiled = set.as_bytes().to_vec();
    let gen_policy = Policy::new(vec![Arc::new(set)], IpDb::new(), AppRules::default());
    let gen_set: HashSet<String> = names.iter().cloned().collect();
    let qs = gen::Queries::new(&queries(&names, &others, 1 << 16));
    bench_decisions(c, "generated_1m", &gen_policy, &gen_set, &qs);

    let mut group = c.benchmark_group("build_1m");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("embargo_compile", |b| {
        b.iter_batched(
            || rules.clone(),
            |rules| {
                let mut builder = RuleSetBuilder::new();
                for r in rules {
                    builder.add(r);
                }
                black_box(builder.build())
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("baseline_hashset_insert", |b| {
        b.iter_batched(
            || names.clone(),
            |names| black_box(names.into_iter().collect::<HashSet<String>>()),
            BatchSize::PerIteration,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("load_1m");
    group.sample_size(20);
    let dir = std::env::temp_dir().join(format!("embargo-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("generated-1m.embargo");
    std::fs::write(&path, &compiled).unwrap();
    group.bench_function("embargo_open_mmap", |b| {
        b.iter(|| {
            let file = std::fs::File::open(&path).unwrap();
            let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
            black_box(RuleSet::from_backing(Arc::new(map)).unwrap())
        })
    });
    let list_text: String = names.iter().map(|n| format!("{n}\n")).collect();
    group.bench_function("baseline_hashset_from_text", |b| {
        b.iter(|| {
            black_box(
                list_text
                    .lines()
                    .map(str::to_owned)
                    .collect::<HashSet<String>>(),
            )
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn ip_benches(c: &mut Criterion) {
    let mut db = IpDb::new();
    for f in ["asn-ipv4.csv.gz", "geo-whois-asn-country-ipv4.csv.gz"] {
        let bytes = std::fs::read(data(&format!("ipdb/full/{f}"))).unwrap();
        let r = db.load_bytes(f, None, &bytes);
        assert_eq!(r.error_count, 0);
    }
    // Baseline: BTreeMap start -> (end, asn), range query.
    let text = {
        use std::io::Read;
        let bytes = std::fs::read(data("ipdb/full/asn-ipv4.csv.gz")).unwrap();
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    let mut tree: BTreeMap<u32, (u32, u32)> = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.splitn(4, ',');
        let (Some(s), Some(e), Some(a)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let (Ok(s), Ok(e), Ok(a)) = (
            s.parse::<Ipv4Addr>(),
            e.parse::<Ipv4Addr>(),
            a.parse::<u32>(),
        ) else {
            continue;
        };
        tree.insert(u32::from(s), (u32::from(e), a));
    }
    let mut rng = gen::SplitMix(11);
    let addrs: Vec<IpAddr> = (0..1 << 16)
        .map(|_| IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32)))
        .collect();
    let mut group = c.benchmark_group("ip_lookup_full_v4");
    let mut i = 0usize;
    group.bench_function("embargo_asn_and_country", |b| {
        b.iter(|| {
            i = (i + 1) % addrs.len();
            let a = black_box(addrs[i]);
            black_box((
                db.lookup_asn(a).map(|x| x.asn),
                db.lookup_country(a).map(|c| c.code),
            ))
        })
    });
    let mut i = 0usize;
    group.bench_function("baseline_btreemap_asn", |b| {
        b.iter(|| {
            i = (i + 1) % addrs.len();
            let IpAddr::V4(a) = black_box(addrs[i]) else {
                unreachable!()
            };
            let k = u32::from(a);
            black_box(
                tree.range(..=k)
                    .next_back()
                    .filter(|(_, (e, _))| *e >= k)
                    .map(|(_, (_, asn))| *asn),
            )
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = names_benches, ip_benches
}
criterion_main!(benches);
