//! Criterion benchmarks of the history store (`cargo bench -p embargo-history`).
//!
//! - `insert/*`: events through `Recorder::record` until committed (`flush`), on one growing
//!   database; throughput in events/s. Target: >= 50,000/s with coalescing off.
//! - `query/*` and `aggregate/*`: on a database of `EMBARGO_BENCH_ROWS` rows (default 10
//!   million) spread over 30 days, built once by a bulk path (indexes dropped, one
//!   transaction, indexes re-created) under /tmp/embargo-history-bench and reused by later
//!   runs. Targets: newest 100 blocks of one app <= 10 ms; per-owner daily aggregate over 30
//!   days <= 200 ms. The size per million rows is printed.
//!
//! Recorded figures: docs/decisions.md.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use embargo_history::{
    AggregateQuery, Certainty, Coded, Config, Dimension, Event, History, Protocol, Query, Verdict,
    DAY_MS,
};
use rusqlite::params;

const BENCH_DIR: &str = "/tmp/embargo-history-bench";
/// Bumped when the schema or the generated data change, so a stale database is rebuilt.
const BENCH_FORMAT: i64 = 2;

/// CPU seconds (user + system) this process has used, from /proc/self/stat (Linux). The
/// machine is shared, so events per CPU-second is reported next to wall-clock throughput.
fn cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/self/stat")
}

/// CPU seconds of the writer thread(s) ("embargo-history-writer", truncated by the kernel to
/// 15 characters): the writer's own cost per event, whatever else the machine runs.
fn writer_cpu_seconds() -> f64 {
    let mut total = 0.0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.starts_with("embargo-history") {
                total += stat_cpu_seconds(&task.path().join("stat").to_string_lossy());
            }
        }
    }
    total
}

fn stat_cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are utime and stime; after the name they are 12, 13.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}
const APPS: u64 = 200;
const NAMES: u64 = 20_000;
const OWNERS: u64 = 300;
const COUNTRIES: [&str; 12] = [
    "US", "CN", "SG", "DE", "IE", "NL", "JP", "GB", "FR", "HK", "IN", "BR",
];

/// Small deterministic generator (SplitMix64): same data every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn app_name(i: u64) -> String {
    format!("com.example.app{i}")
}

/// A realistic event: app skewed towards low numbers (min of two uniform picks), 30% blocked.
fn random_event(rng: &mut Rng, time_ms: i64) -> Event {
    let app = rng.below(APPS).min(rng.below(APPS));
    let name = rng.below(NAMES);
    let owner = name % OWNERS;
    let blocked = rng.below(10) < 3;
    Event {
        time_ms,
        app: Some(app_name(app)),
        name: Some(format!("t{name}.tracker-host.example")),
        addr: Some(std::net::IpAddr::from((rng.next() as u32).to_be_bytes())),
        port: 443,
        protocol: Protocol::Tcp,
        verdict: if blocked {
            Verdict::Block
        } else {
            Verdict::Allow
        },
        rule: blocked.then(|| format!("||t{name}.tracker-host.example^")),
        list: blocked.then(|| "trackers.txt".to_string()),
        line: blocked.then_some((name % 5_000) as u32 + 1),
        owner: Some(format!("Owner {owner}")),
        owner_source: Some("ipdb-asn".into()),
        country: Some(COUNTRIES[(owner % COUNTRIES.len() as u64) as usize].into()),
        country_source: Some("ipdb-country".into()),
        certainty: Certainty::Certain,
        category: None,
    }
}

/// What forwarded DNS records (`tests/bench/dns-forwarded.sh`): allowed questions of one app,
/// every name new, with no address, owner or country (no list names an ordinary name's owner).
fn dns_question(seq: u64, time_ms: i64) -> Event {
    let mut e = Event::new(time_ms, Protocol::Dns, Verdict::Allow);
    e.app = Some("/usr/bin/dnsperf".into());
    e.name = Some(format!("u{seq}.allowed.test"));
    e.certainty = Certainty::Certain;
    e
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn bench_insert(c: &mut Criterion) {
    std::fs::create_dir_all(BENCH_DIR).unwrap();
    let mut group = c.benchmark_group("insert");
    const EVENTS: u64 = 20_000;
    group.throughput(Throughput::Elements(EVENTS));
    // Criterion's minimum; each sample is whole 20,000-event batches committed.
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (label, window, dns) in [
        ("coalescing_off", Duration::ZERO, false),
        ("coalescing_60s", Duration::from_secs(60), false),
        ("unique_dns_questions", Duration::from_secs(60), true),
    ] {
        let path = PathBuf::from(format!("{BENCH_DIR}/insert-{label}.db"));
        remove_db(&path);
        let mut config = Config::new(&path);
        config.coalesce_window = window;
        // Room for a whole sample: this measures commit throughput, not the drop path.
        config.queue_capacity = 1 << 20;
        config.retention = Duration::from_secs(3650 * 86_400);
        let history = History::open(config).unwrap();
        let recorder = history.recorder();
        let mut rng = Rng(1);
        let mut seq = 0;
        let mut t = embargo_history::now_ms();
        let cpu_start = cpu_seconds();
        let writer_cpu_start = writer_cpu_seconds();
        let wall_start = Instant::now();
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                // Events are made before the clock starts: their synthetic strings are the
                // bench's cost, not the store's. Timed: record() of each, then flush() until
                // every one is committed.
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let events: Vec<Event> = (0..EVENTS)
                        .map(|_| {
                            t += 1;
                            seq += 1;
                            if dns {
                                dns_question(seq, t)
                            } else {
                                random_event(&mut rng, t)
                            }
                        })
                        .collect();
                    let start = Instant::now();
                    for e in events {
                        recorder.record(e);
                    }
                    history.flush().unwrap();
                    elapsed += start.elapsed();
                }
                elapsed
            })
        });
        let cpu = cpu_seconds() - cpu_start;
        let writer_cpu = writer_cpu_seconds() - writer_cpu_start;
        let wall = wall_start.elapsed().as_secs_f64();
        let counters = recorder.counters();
        let stats = history.stats().unwrap();
        if counters.committed == 0 {
            // Filtered out on the command line: nothing ran, nothing to report.
            drop(history);
            remove_db(&path);
            continue;
        }
        eprintln!(
            "insert/{label}: {} events committed, {} dropped, {} rows, {:.1} MB live; \
             {:.0} events per process CPU-second (incl. event generation and criterion's \
             analysis), {:.0} per writer-thread CPU-second, {:.0} events/s wall overall",
            counters.committed,
            counters.dropped,
            stats.rows,
            stats.live_bytes as f64 / 1e6,
            counters.committed as f64 / cpu,
            counters.committed as f64 / writer_cpu,
            counters.committed as f64 / wall
        );
        drop(history);
        remove_db(&path);
    }
    group.finish();
}

/// Builds (or reuses) the big database. Returns its path and the newest time in it.
fn big_db(rows: u64) -> (PathBuf, i64) {
    std::fs::create_dir_all(BENCH_DIR).unwrap();
    let path = PathBuf::from(format!("{BENCH_DIR}/history-{rows}.db"));
    if path.exists() {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let stored: Option<(i64, i64)> = conn
            .query_row(
                "SELECT (SELECT value FROM counters WHERE name = 'bench_rows') * 100 + \
                 (SELECT value FROM counters WHERE name = 'bench_format'), max(last_seen) \
                 FROM records",
                [],
                |r| Ok((r.get::<_, Option<i64>>(0)?.unwrap_or(-1), r.get(1)?)),
            )
            .ok();
        if let Some((n, newest)) = stored {
            if n == rows as i64 * 100 + BENCH_FORMAT {
                eprintln!("reusing {}", path.display());
                return (path, newest);
            }
        }
    }
    remove_db(&path);
    let started = Instant::now();
    // Schema through the real code (migrations, permissions, auto_vacuum).
    drop(History::open(Config::new(&path)).unwrap());
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;",
    )
    .unwrap();
    let indexes: Vec<(String, String)> = {
        let mut stmt = conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'records' AND sql IS NOT NULL")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    for (name, _) in &indexes {
        conn.execute_batch(&format!("DROP INDEX {name}")).unwrap();
    }
    let newest = embargo_history::now_ms();
    let span = 30 * DAY_MS;
    let first = newest - span;
    let mut daily: HashMap<(i64, String, String, String), (i64, i64)> = HashMap::new();
    let mut rng = Rng(42);
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO records (first_seen, last_seen, count, app, name, addr, port, \
                 protocol, decision, rule, list, line, owner, owner_source, country, \
                 country_source, certainty) VALUES (?1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, \
                 ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )
            .unwrap();
        for i in 0..rows {
            let t = first + (i as i128 * span as i128 / rows as i128) as i64;
            let e = random_event(&mut rng, t);
            // Coalesced rows: most count 1, some chatty ones more.
            let count = if rng.below(10) == 0 {
                1 + rng.below(50)
            } else {
                1
            } as i64;
            insert
                .execute(params![
                    t,
                    count,
                    e.app,
                    e.name,
                    e.addr.map(|a| a.to_string()),
                    e.port,
                    e.protocol.code(),
                    e.verdict.code(),
                    e.rule,
                    e.list,
                    e.line,
                    e.owner,
                    e.owner_source,
                    e.country,
                    e.country_source,
                    e.certainty.code(),
                ])
                .unwrap();
            let cell = daily
                .entry((
                    embargo_history::day_of(t),
                    e.app.unwrap(),
                    e.owner.unwrap(),
                    e.country.unwrap(),
                ))
                .or_default();
            match e.verdict {
                Verdict::Block => cell.0 += count,
                Verdict::Allow => cell.1 += count,
            }
            if i % 1_000_000 == 999_999 {
                eprintln!("  {} rows in {:?}", i + 1, started.elapsed());
            }
        }
        let mut upsert = tx
            .prepare("INSERT INTO daily (day, app, owner, country, blocked, allowed) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .unwrap();
        let mut by: HashMap<(i64, i64, &str), (i64, i64)> = HashMap::new();
        for ((day, app, owner, country), (b, a)) in &daily {
            upsert
                .execute(params![day, app, owner, country, b, a])
                .unwrap();
            for (dim, value) in [(0, app), (1, owner), (2, country)] {
                let cell = by.entry((dim, *day, value.as_str())).or_default();
                cell.0 += b;
                cell.1 += a;
            }
        }
        let mut upsert_by = tx
            .prepare("INSERT INTO daily_by (dim, day, value, blocked, allowed) VALUES (?1, ?2, ?3, ?4, ?5)")
            .unwrap();
        for ((dim, day, value), (b, a)) in &by {
            upsert_by.execute(params![dim, day, value, b, a]).unwrap();
        }
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ('bench_rows', ?1), ('bench_format', ?2)",
            [rows as i64, BENCH_FORMAT],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    for (name, sql) in &indexes {
        let t = Instant::now();
        conn.execute_batch(sql).unwrap();
        eprintln!("  index {name} in {:?}", t.elapsed());
    }
    conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
    drop(conn);
    eprintln!(
        "built {} ({rows} rows, {} daily rows) in {:?}",
        path.display(),
        daily.len(),
        started.elapsed()
    );
    (path, newest)
}

fn bench_big(c: &mut Criterion) {
    let rows: u64 = std::env::var("EMBARGO_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let (path, newest) = big_db(rows);
    let bytes = std::fs::metadata(&path).unwrap().len();
    eprintln!(
        "database: {rows} rows, {:.1} MB, {:.1} MB per million rows ({:.0} bytes/row incl. indexes)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / (rows as f64 / 1e6),
        bytes as f64 / rows as f64
    );
    let mut config = Config::new(&path);
    // The data ages between runs; keep it all.
    config.retention = Duration::from_secs(3650 * 86_400);
    let history = History::open(config).unwrap();
    let app = app_name(0);
    let app_rows = history
        .aggregate(&AggregateQuery {
            app: Some(app.clone()),
            include_hidden: true,
            ..AggregateQuery::default()
        })
        .unwrap();
    eprintln!(
        "{app}: {:?} events (blocked, allowed)",
        app_rows.first().map(|r| (r.blocked, r.allowed))
    );

    let mut group = c.benchmark_group("query");
    group.sample_size(50);
    let blocks = Query {
        app: Some(app.clone()),
        verdict: Some(Verdict::Block),
        limit: 100,
        ..Query::default()
    };
    eprintln!("plan: {:?}", history.explain(&blocks).unwrap());
    group.bench_function("newest_100_blocks_of_one_app", |b| {
        b.iter(|| {
            let page = history.query(black_box(&blocks)).unwrap();
            assert_eq!(page.records.len(), 100);
            page
        })
    });
    let all_of_app = Query {
        verdict: None,
        ..blocks.clone()
    };
    group.bench_function("newest_100_of_one_app_any_decision", |b| {
        b.iter(|| history.query(black_box(&all_of_app)).unwrap())
    });
    group.bench_function("newest_100_unfiltered", |b| {
        b.iter(|| history.query(black_box(&Query::default())).unwrap())
    });
    let page_50 = {
        let mut q = blocks.clone();
        for _ in 0..50 {
            q.after = history.query(&q).unwrap().next;
        }
        q
    };
    group.bench_function("page_51_of_blocks_of_one_app", |b| {
        b.iter(|| history.query(black_box(&page_50)).unwrap())
    });
    let owner = Query {
        owner: Some("Owner 7".into()),
        limit: 100,
        ..Query::default()
    };
    group.bench_function("newest_100_of_one_owner", |b| {
        b.iter(|| history.query(black_box(&owner)).unwrap())
    });
    let prefix = Query {
        name_prefix: Some("t1234".into()),
        limit: 100,
        ..Query::default()
    };
    group.bench_function("newest_100_name_prefix", |b| {
        b.iter(|| history.query(black_box(&prefix)).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("aggregate");
    group.sample_size(20);
    let per_owner_daily = AggregateQuery {
        since_ms: Some(newest - 30 * DAY_MS),
        group_by: vec![Dimension::Day, Dimension::Owner],
        ..AggregateQuery::default()
    };
    let n = history.aggregate(&per_owner_daily).unwrap().len();
    eprintln!("per-owner daily aggregate: {n} groups");
    group.bench_function("per_owner_daily_30_days", |b| {
        b.iter(|| history.aggregate(black_box(&per_owner_daily)).unwrap())
    });
    let per_country = AggregateQuery {
        since_ms: Some(newest - 30 * DAY_MS),
        group_by: vec![Dimension::Country],
        ..AggregateQuery::default()
    };
    group.bench_function("per_country_30_days", |b| {
        b.iter(|| history.aggregate(black_box(&per_country)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_insert, bench_big);
criterion_main!(benches);
