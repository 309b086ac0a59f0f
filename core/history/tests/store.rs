//! Behaviour of the store through its public API, on real SQLite files.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{config, event, now};
use embargo_history::{
    AggregateQuery, Dimension, Format, Hidden, History, OpenOutcome, Query, Recorded, Verdict,
    CSV_HEADER,
};

#[test]
fn new_file_is_owner_only_wal_incremental_vacuum_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let path = cfg.path.clone();
    let history = History::open(cfg).unwrap();
    assert_eq!(history.open_outcome(), &OpenOutcome::Created);
    history
        .recorder()
        .record(event(now(), "app", "a.example", Verdict::Block));
    history.flush().unwrap();
    // While open, the -wal and -shm files exist; all three must be owner-only.
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} has mode {mode:o}");
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let auto_vacuum: i64 = conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(auto_vacuum, 2, "auto_vacuum must be INCREMENTAL (2)");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, embargo_history::migrations::CURRENT_VERSION);
}

#[test]
fn existing_world_readable_file_is_tightened() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    drop(History::open(cfg.clone()).unwrap());
    std::fs::set_permissions(&cfg.path, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(History::open(cfg.clone()).unwrap());
    let mode = std::fs::metadata(&cfg.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn schema_holds_no_payload_or_url_columns() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let path = cfg.path.clone();
    drop(History::open(cfg).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info('records')")
        .unwrap();
    let cols: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        cols,
        [
            "id",
            "first_seen",
            "last_seen",
            "count",
            "app",
            "name",
            "addr",
            "port",
            "protocol",
            "decision",
            "rule",
            "list",
            "line",
            "owner",
            "owner_source",
            "country",
            "country_source",
            "certainty",
            "category"
        ]
    );
    // No BLOB column anywhere in the schema.
    let blobs: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master m, pragma_table_info(m.name) c \
             WHERE m.type = 'table' AND upper(c.type) = 'BLOB'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(blobs, 0);
}

/// A version-1 database exactly as version 1 of the code created it, written by hand here
/// (not through `migrations::MIGRATIONS`) so a later edit of migration 1 cannot hide a break.
fn make_v1(path: &std::path::Path, t: i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA auto_vacuum = INCREMENTAL;
         PRAGMA journal_mode = WAL;
         CREATE TABLE records (
            id INTEGER PRIMARY KEY, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
            count INTEGER NOT NULL DEFAULT 1, app TEXT, name TEXT, addr TEXT,
            port INTEGER NOT NULL, protocol INTEGER NOT NULL, decision INTEGER NOT NULL,
            rule TEXT, list TEXT, line INTEGER, owner TEXT, owner_source TEXT, country TEXT,
            country_source TEXT, certainty INTEGER NOT NULL);
         CREATE INDEX records_by_time ON records (last_seen);
         CREATE INDEX records_by_app ON records (app, decision, last_seen);
         CREATE INDEX records_by_owner ON records (owner, last_seen);
         PRAGMA user_version = 1;",
    )
    .unwrap();
    let mut insert = conn
        .prepare(
            "INSERT INTO records (first_seen, last_seen, count, app, name, addr, port, protocol,
             decision, rule, list, line, owner, owner_source, country, country_source, certainty)
             VALUES (?1, ?1, ?2, ?3, ?4, '203.0.113.9', 443, 0, ?5, NULL, NULL, NULL, ?6, 'asn',
             'CN', 'geo', 2)",
        )
        .unwrap();
    insert
        .execute(rusqlite::params![
            t,
            5,
            "tiktok",
            "log.tiktokv.com",
            1,
            "ByteDance"
        ])
        .unwrap();
    insert
        .execute(rusqlite::params![
            t + 1,
            2,
            "tiktok",
            "cdn.example",
            0,
            "Akamai"
        ])
        .unwrap();
    insert
        .execute(rusqlite::params![
            t + 2,
            1,
            "wechat",
            "qq.com",
            1,
            "Tencent"
        ])
        .unwrap();
}

#[test]
fn upgrades_from_v1_keep_data() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let t = now() - 60_000;
    make_v1(&cfg.path, t);
    let history = History::open(cfg).unwrap();
    assert_eq!(
        history.open_outcome(),
        &OpenOutcome::Opened {
            from_version: 1,
            to_version: 4
        }
    );
    let page = history
        .query(&Query {
            include_hidden: true,
            ..Query::default()
        })
        .unwrap();
    let names: Vec<_> = page
        .records
        .iter()
        .map(|r| r.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["qq.com", "cdn.example", "log.tiktokv.com"]);
    assert_eq!(page.records[2].count, 5);
    // v2's daily table was back-filled from the v1 rows.
    let by_owner = history
        .aggregate(&AggregateQuery {
            group_by: vec![Dimension::Owner],
            ..AggregateQuery::default()
        })
        .unwrap();
    let bytedance = by_owner
        .iter()
        .find(|r| r.owner.as_deref() == Some("ByteDance"))
        .unwrap();
    assert_eq!((bytedance.blocked, bytedance.allowed), (5, 0));
    // v2 features work on the upgraded file.
    history.hide(&Hidden::App("wechat".into())).unwrap();
    assert_eq!(history.query(&Query::default()).unwrap().records.len(), 2);
    history
        .recorder()
        .record(event(now(), "tiktok", "log.tiktokv.com", Verdict::Block));
    history.flush().unwrap();
    assert_eq!(history.stats().unwrap().events, 9);
}

#[test]
fn repeats_coalesce_within_the_window_and_not_beyond() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let window = cfg.coalesce_window.as_millis() as i64;
    let history = History::open(cfg).unwrap();
    let rec = history.recorder();
    let t = now() - 10 * window;
    for dt in [0, 1_000, 2_000] {
        rec.record(event(t + dt, "tiktok", "log.tiktokv.com", Verdict::Block));
    }
    // Same app and name but allowed: a separate story, a separate row.
    rec.record(event(t + 500, "tiktok", "log.tiktokv.com", Verdict::Allow));
    // Another app: a new row.
    rec.record(event(t + 10, "douyin", "log.tiktokv.com", Verdict::Block));
    history.flush().unwrap();
    // A later batch still coalesces into the row of an earlier batch.
    rec.record(event(
        t + 3_000,
        "tiktok",
        "log.tiktokv.com",
        Verdict::Block,
    ));
    // Beyond the window of the first row: a new row.
    rec.record(event(
        t + window,
        "tiktok",
        "log.tiktokv.com",
        Verdict::Block,
    ));
    history.flush().unwrap();
    let rows = history
        .query(&Query {
            app: Some("tiktok".into()),
            verdict: Some(Verdict::Block),
            ..Query::default()
        })
        .unwrap()
        .records;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!((rows[0].count, rows[0].first_seen_ms), (1, t + window));
    assert_eq!(
        (rows[1].count, rows[1].first_seen_ms, rows[1].last_seen_ms),
        (4, t, t + 3_000)
    );
    let stats = history.stats().unwrap();
    assert_eq!((stats.rows, stats.events), (4, 7));
}

#[test]
fn zero_window_turns_coalescing_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.coalesce_window = Duration::ZERO;
    let history = History::open(cfg).unwrap();
    for dt in 0..3 {
        history
            .recorder()
            .record(event(now() + dt, "a", "n.example", Verdict::Block));
    }
    history.flush().unwrap();
    assert_eq!(history.stats().unwrap().rows, 3);
}

#[test]
fn allowed_connections_recorded_unless_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(config(dir.path())).unwrap();
    let r = history
        .recorder()
        .record(event(now(), "a", "ok.example", Verdict::Allow));
    assert_eq!(r, Recorded::Queued);
    history.flush().unwrap();
    assert_eq!(history.stats().unwrap().rows, 1);
    drop(history);

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.record_allowed = false;
    let history = History::open(cfg).unwrap();
    let rec = history.recorder();
    assert_eq!(
        rec.record(event(now(), "a", "ok.example", Verdict::Allow)),
        Recorded::Skipped
    );
    assert_eq!(
        rec.record(event(now(), "a", "bad.example", Verdict::Block)),
        Recorded::Queued
    );
    history.flush().unwrap();
    let rows = history.query(&Query::default()).unwrap().records;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].verdict, Verdict::Block);
}

#[test]
fn full_queue_counts_drops_and_stores_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.queue_capacity = 8;
    cfg.batch_max = 1;
    let path = cfg.path.clone();
    let history = History::open(cfg.clone()).unwrap();
    let rec = history.recorder();
    // Another connection holds the write lock: the writer waits on it (busy timeout), the
    // queue fills, and `record` must return at once with `Dropped`.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut outcomes = Vec::new();
    let started = std::time::Instant::now();
    for i in 0..200 {
        outcomes.push(rec.record(event(
            now() + i,
            "a",
            &format!("n{i}.example"),
            Verdict::Block,
        )));
        std::thread::sleep(Duration::from_millis(1));
    }
    let dropped = outcomes.iter().filter(|o| **o == Recorded::Dropped).count() as u64;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "record() must not wait for the writer"
    );
    assert!(dropped > 100, "only {dropped} dropped");
    blocker.execute_batch("COMMIT").unwrap();
    history.flush().unwrap();
    let stats = history.stats().unwrap();
    assert_eq!(stats.dropped, dropped);
    assert_eq!(stats.rows + dropped, 200);
    drop(history);
    // The count survives a restart: it is stored, not just held in memory.
    let history = History::open(cfg).unwrap();
    assert_eq!(history.stats().unwrap().dropped, dropped);
}

fn sample(history: &History, t: i64) {
    // Named through the crate root: shells store it in their own structs.
    let rec: embargo_history::Recorder = history.recorder();
    let mut e = event(t, "tiktok", "log-va.tiktokv.com", Verdict::Block);
    rec.record(e.clone());
    e.name = Some("mon.tiktokv.com".into());
    e.time_ms = t + 10;
    rec.record(e.clone());
    e.name = Some("www.google.com".into());
    e.owner = Some("Google".into());
    e.verdict = Verdict::Allow;
    e.time_ms = t + 20;
    rec.record(e.clone());
    let mut w = event(t + 30, "wechat", "wx.qq.com", Verdict::Block);
    w.owner = Some("Tencent".into());
    w.country = Some("CN".into());
    rec.record(w.clone());
    w.name = Some("log.tiktokv.com".into());
    w.owner = Some("ByteDance".into());
    w.time_ms = t + 40;
    rec.record(w);
    history.flush().unwrap();
}

fn names(history: &History, q: Query) -> Vec<String> {
    history
        .query(&q)
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.name.unwrap())
        .collect()
}

#[test]
fn filters_select_the_right_rows_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(config(dir.path())).unwrap();
    let t = now() - 100_000;
    sample(&history, t);
    let all = names(&history, Query::default());
    assert_eq!(
        all,
        [
            "log.tiktokv.com",
            "wx.qq.com",
            "www.google.com",
            "mon.tiktokv.com",
            "log-va.tiktokv.com"
        ]
    );
    let q = |f: fn(&mut Query)| {
        let mut q = Query::default();
        f(&mut q);
        names(&history, q)
    };
    assert_eq!(
        q(|q| q.app = Some("tiktok".into())),
        ["www.google.com", "mon.tiktokv.com", "log-va.tiktokv.com"]
    );
    assert_eq!(
        q(|q| {
            q.app = Some("tiktok".into());
            q.verdict = Some(Verdict::Block)
        }),
        ["mon.tiktokv.com", "log-va.tiktokv.com"]
    );
    assert_eq!(q(|q| q.verdict = Some(Verdict::Allow)), ["www.google.com"]);
    assert_eq!(
        q(|q| q.name_prefix = Some("LOG".into())),
        ["log.tiktokv.com", "log-va.tiktokv.com"]
    );
    assert_eq!(
        q(|q| q.name_contains = Some("tiktokv".into())),
        ["log.tiktokv.com", "mon.tiktokv.com", "log-va.tiktokv.com"]
    );
    assert_eq!(
        q(|q| q.owner = Some("ByteDance".into())),
        ["log.tiktokv.com", "mon.tiktokv.com", "log-va.tiktokv.com"]
    );
    assert_eq!(
        q(|q| q.country = Some("cn".into())),
        ["log.tiktokv.com", "wx.qq.com"]
    );
    let t2 = t;
    let mut range = Query {
        since_ms: Some(t2 + 10),
        until_ms: Some(t2 + 30),
        ..Query::default()
    };
    assert_eq!(
        names(&history, range.clone()),
        ["www.google.com", "mon.tiktokv.com"]
    );
    range.name_prefix = Some("mon".into());
    assert_eq!(names(&history, range), ["mon.tiktokv.com"]);
}

#[test]
fn cursor_pages_cover_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.coalesce_window = Duration::ZERO;
    let history = History::open(cfg).unwrap();
    let t = now() - 100_000;
    let rec = history.recorder();
    // Pairs share a timestamp so the id tie-breaker matters.
    for i in 0..250 {
        rec.record(event(
            t + i / 2,
            "app",
            &format!("n{i}.example"),
            Verdict::Block,
        ));
    }
    history.flush().unwrap();
    for q in [
        Query::default(),
        Query {
            app: Some("app".into()),
            ..Query::default()
        },
    ] {
        let mut q = Query { limit: 7, ..q };
        let mut seen = Vec::new();
        loop {
            let page = history.query(&q).unwrap();
            assert!(page.records.len() <= 7);
            seen.extend(page.records.iter().map(|r| (r.last_seen_ms, r.id)));
            match page.next {
                Some(c) => q.after = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 250);
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(seen, sorted, "newest first, strictly");
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 250);
    }
}

#[test]
fn hide_filters_persist_and_can_be_bypassed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let history = History::open(cfg.clone()).unwrap();
    sample(&history, now() - 100_000);
    history.hide(&Hidden::App("wechat".into())).unwrap();
    history
        .hide(&Hidden::Name("www.google.com".into()))
        .unwrap();
    drop(history);
    let history = History::open(cfg).unwrap();
    assert_eq!(
        history.hidden().unwrap(),
        [
            Hidden::App("wechat".into()),
            Hidden::Name("www.google.com".into())
        ]
    );
    assert_eq!(
        names(&history, Query::default()),
        ["mon.tiktokv.com", "log-va.tiktokv.com"]
    );
    assert_eq!(
        names(
            &history,
            Query {
                include_hidden: true,
                ..Query::default()
            }
        )
        .len(),
        5
    );
    let by_app = history
        .aggregate(&AggregateQuery {
            group_by: vec![Dimension::App],
            ..AggregateQuery::default()
        })
        .unwrap();
    assert_eq!(
        by_app.len(),
        1,
        "hidden app left out of aggregates: {by_app:?}"
    );
    // Per owner with a hidden app: the hidden app's owners are not counted.
    let by_owner = history
        .aggregate(&AggregateQuery {
            group_by: vec![Dimension::Owner],
            ..AggregateQuery::default()
        })
        .unwrap();
    assert!(
        by_owner
            .iter()
            .all(|r| r.owner.as_deref() != Some("Tencent")),
        "{by_owner:?}"
    );
    assert!(history.unhide(&Hidden::App("wechat".into())).unwrap());
    assert!(!history.unhide(&Hidden::App("wechat".into())).unwrap());
    assert_eq!(names(&history, Query::default()).len(), 4);
}

#[test]
fn newest_blocks_of_one_app_read_the_app_index_without_sorting() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(config(dir.path())).unwrap();
    sample(&history, now());
    let block = Query {
        app: Some("tiktok".into()),
        verdict: Some(Verdict::Block),
        ..Query::default()
    };
    let plan = history.explain(&block).unwrap().join("\n");
    assert!(plan.contains("USING INDEX records_by_app"), "{plan}");
    assert!(!plan.contains("SCAN records"), "full scan: {plan}");
    assert!(!plan.contains("TEMP B-TREE"), "sorts: {plan}");
    // Without a verdict: two ordered index reads merged, still no scan.
    let any = Query {
        verdict: None,
        ..block
    };
    let plan = history.explain(&any).unwrap().join("\n");
    assert!(plan.contains("USING INDEX records_by_app"), "{plan}");
    assert!(!plan.contains("SCAN records"), "full scan: {plan}");
    // The unfiltered list reads the time index in order.
    let plan = history.explain(&Query::default()).unwrap().join("\n");
    assert!(plan.contains("records_by_time"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "sorts: {plan}");
    let owner = Query {
        owner: Some("ByteDance".into()),
        ..Query::default()
    };
    let plan = history.explain(&owner).unwrap().join("\n");
    assert!(plan.contains("records_by_owner"), "{plan}");
}

#[test]
fn rows_without_an_owner_stay_out_of_the_owner_index() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let path = cfg.path.clone();
    let history = History::open(cfg).unwrap();
    let t = now();
    let with = event(t, "tiktok", "log.tiktokv.com", Verdict::Block);
    let mut without = event(t + 1, "tiktok", "example.org", Verdict::Allow);
    without.owner = None;
    without.owner_source = None;
    history.recorder().record(with);
    history.recorder().record(without);
    history.flush().unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM records"), 2);
    // An owner filter still reads the index, and finds the row that has one.
    assert_eq!(
        count("SELECT count(*) FROM records INDEXED BY records_by_owner WHERE owner IS NOT NULL"),
        1
    );
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'records_by_owner'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sql.ends_with("WHERE owner IS NOT NULL"), "{sql}");
}

#[test]
fn aggregates_per_app_owner_country_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(config(dir.path())).unwrap();
    let day = embargo_history::DAY_MS;
    let today = now() - now() % day + 1_000;
    sample(&history, today - 2 * day);
    sample(&history, today);
    let by_owner = history
        .aggregate(&AggregateQuery {
            group_by: vec![Dimension::Owner],
            ..AggregateQuery::default()
        })
        .unwrap();
    let get = |owner: &str| {
        by_owner
            .iter()
            .find(|r| r.owner.as_deref() == Some(owner))
            .map(|r| (r.blocked, r.allowed))
    };
    assert_eq!(get("ByteDance"), Some((6, 0)));
    assert_eq!(get("Google"), Some((0, 2)));
    assert_eq!(get("Tencent"), Some((2, 0)));
    assert_eq!(
        by_owner[0].owner.as_deref(),
        Some("ByteDance"),
        "largest first"
    );

    let daily = history
        .aggregate(&AggregateQuery {
            group_by: vec![Dimension::Day, Dimension::Owner],
            owner: Some("ByteDance".into()),
            ..AggregateQuery::default()
        })
        .unwrap();
    assert_eq!(daily.len(), 2);
    assert_eq!(
        daily[0].day,
        Some(embargo_history::day_of(today)),
        "newest day first"
    );
    assert_eq!(daily[0].blocked, 3);
    assert_eq!(
        daily[0].date.as_deref(),
        Some(embargo_history::date_string(embargo_history::day_of(today)).as_str())
    );

    let by_country = history
        .aggregate(&AggregateQuery {
            group_by: vec![Dimension::Country],
            since_ms: Some(today - day / 2),
            ..AggregateQuery::default()
        })
        .unwrap();
    let cn = by_country
        .iter()
        .find(|r| r.country.as_deref() == Some("CN"))
        .unwrap();
    assert_eq!((cn.blocked, cn.allowed), (2, 0));
    let by_app = history
        .aggregate(&AggregateQuery {
            group_by: vec![Dimension::App],
            ..AggregateQuery::default()
        })
        .unwrap();
    let tiktok = by_app
        .iter()
        .find(|r| r.app.as_deref() == Some("tiktok"))
        .unwrap();
    assert_eq!((tiktok.blocked, tiktok.allowed), (4, 2));
    let total = history.aggregate(&AggregateQuery::default()).unwrap();
    assert_eq!((total[0].blocked, total[0].allowed), (8, 2));

    // One dimension reads `daily_by`, two read `daily`: both must agree.
    let cube = history
        .aggregate(&AggregateQuery {
            group_by: vec![Dimension::Owner, Dimension::App],
            ..AggregateQuery::default()
        })
        .unwrap();
    for row in &by_owner {
        let (b, a) = cube
            .iter()
            .filter(|c| c.owner == row.owner)
            .fold((0, 0), |(b, a), c| (b + c.blocked, a + c.allowed));
        assert_eq!((b, a), (row.blocked, row.allowed), "{:?}", row.owner);
    }
}

#[test]
fn retention_deletes_old_rows_in_batches_and_keeps_recent() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.coalesce_window = Duration::ZERO;
    cfg.retention_batch = 100;
    cfg.retention_interval = Duration::from_secs(3600);
    let history = History::open(cfg).unwrap();
    let rec = history.recorder();
    let old = now() - 31 * embargo_history::DAY_MS;
    for i in 0..1_050 {
        rec.record(event(old + i, "a", "old.example", Verdict::Block));
    }
    for i in 0..10 {
        rec.record(event(now() - 1_000 + i, "a", "new.example", Verdict::Block));
    }
    history.flush().unwrap();
    // Retention also runs by itself (at open, then every interval) one 100-row step at a time
    // between batches, so part of the old rows may already be gone before this call.
    let report = history.run_retention().unwrap();
    assert!(report.deleted_by_age <= 1_050);
    assert_eq!(report.deleted_by_size, 0);
    let stats = history.stats().unwrap();
    assert_eq!(stats.rows, 10);
    // The daily totals of days past retention went too.
    let days = history
        .aggregate(&AggregateQuery {
            group_by: vec![Dimension::Day],
            ..AggregateQuery::default()
        })
        .unwrap();
    assert_eq!(days.len(), 1, "{days:?}");
}

#[test]
fn size_cap_removes_oldest_rows_until_under_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.coalesce_window = Duration::ZERO;
    cfg.retention_batch = 500;
    let cap = 256 * 1024;
    cfg.max_bytes = Some(cap);
    let path = cfg.path.clone();
    let history = History::open(cfg).unwrap();
    let rec = history.recorder();
    let t = now() - 1_000_000;
    for i in 0..10_000 {
        rec.record(event(
            t + i,
            "app",
            &format!("n{i}.example"),
            Verdict::Block,
        ));
    }
    history.flush().unwrap();
    assert!(history.stats().unwrap().live_bytes > cap);
    let report = history.run_retention().unwrap();
    assert!(report.deleted_by_size > 0);
    let stats = history.stats().unwrap();
    assert!(stats.live_bytes <= cap, "{} > {cap}", stats.live_bytes);
    // The newest rows stay.
    assert_eq!(stats.newest_ms, Some(t + 9_999));
    assert!(stats.oldest_ms > Some(t));
    drop(history);
    // Free pages went back to the file system (incremental vacuum).
    let conn = rusqlite::Connection::open(&path).unwrap();
    let free: i64 = conn
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    assert_eq!(free, 0);
}

fn export_string(history: &History, q: &Query, format: Format) -> String {
    let mut buf = Vec::new();
    history.export(q, format, &mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

#[test]
fn exports_match_the_query_rows_in_all_formats() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.coalesce_window = Duration::ZERO;
    let history = History::open(cfg).unwrap();
    let rec = history.recorder();
    let t = now() - 100_000;
    for i in 0..2_500 {
        let app = if i % 3 == 0 { "tiktok" } else { "other" };
        rec.record(event(t + i, app, &format!("n{i}.example"), Verdict::Block));
    }
    // Awkward text for CSV: comma, quote, newline, non-ASCII.
    let mut odd = event(t + 5_000, "tiktok", "weird.example", Verdict::Block);
    odd.rule = Some("a,b \"quoted\"\nnext line, ünïcode".into());
    odd.owner = None;
    odd.addr = None;
    rec.record(odd.clone());
    history.flush().unwrap();
    let q = Query {
        app: Some("tiktok".into()),
        ..Query::default()
    };
    let mut expected = Vec::new();
    let mut page_q = Query {
        limit: 333,
        ..q.clone()
    };
    loop {
        let page = history.query(&page_q).unwrap();
        expected.extend(page.records);
        match page.next {
            Some(c) => page_q.after = Some(c),
            None => break,
        }
    }
    assert_eq!(expected.len(), 835);

    let ndjson = export_string(&history, &q, Format::Ndjson);
    let from_ndjson: Vec<embargo_history::Record> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(from_ndjson, expected);

    let json = export_string(&history, &q, Format::Json);
    let from_json: Vec<embargo_history::Record> = serde_json::from_str(&json).unwrap();
    assert_eq!(from_json, expected);

    let csv_text = export_string(&history, &q, Format::Csv);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(reader.headers().unwrap(), CSV_HEADER.as_slice());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), expected.len());
    for (row, rec) in rows.iter().zip(&expected) {
        assert_eq!(row[0].parse::<i64>().unwrap(), rec.id);
        assert_eq!(&row[5], rec.name.as_deref().unwrap());
        assert_eq!(&row[10], rec.rule.as_deref().unwrap_or(""));
        assert_eq!(&row[13], rec.owner.as_deref().unwrap_or(""));
        assert_eq!(&row[9], "block");
    }
    assert_eq!(&rows[0][10], odd.rule.as_deref().unwrap());

    // An empty result is a valid empty document in every format.
    let none = Query {
        app: Some("nobody".into()),
        ..Query::default()
    };
    assert_eq!(
        serde_json::from_str::<Vec<embargo_history::Record>>(&export_string(
            &history,
            &none,
            Format::Json
        ))
        .unwrap(),
        []
    );
    assert_eq!(export_string(&history, &none, Format::Ndjson), "");
    assert_eq!(
        export_string(&history, &none, Format::Csv).lines().count(),
        1
    );
}

/// The category of the deciding rule (migration 4) is stored, survives closing and opening
/// the file, and is exported in every format.
#[test]
fn category_is_kept_across_a_reopen_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        let history = History::open(cfg.clone()).unwrap();
        let mut e = event(now(), "app", "ads.adnetwork.net", Verdict::Block);
        e.category = Some("Advertising".into());
        history.recorder().record(e);
        history
            .recorder()
            .record(event(now(), "app", "example.org", Verdict::Allow));
        history.flush().unwrap();
    }
    let history = History::open(cfg).unwrap();
    let page = history
        .query(&Query {
            include_hidden: true,
            ..Query::default()
        })
        .unwrap();
    let by_name = |name: &str| {
        page.records
            .iter()
            .find(|r| r.name.as_deref() == Some(name))
            .unwrap()
    };
    assert_eq!(
        by_name("ads.adnetwork.net").category.as_deref(),
        Some("Advertising")
    );
    assert_eq!(by_name("example.org").category, None);

    let q = Query::default();
    let csv_text = export_string(&history, &q, Format::Csv);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let at = headers.iter().position(|h| h == "category").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let row = rows.iter().find(|r| &r[5] == "ads.adnetwork.net").unwrap();
    assert_eq!(&row[at], "Advertising");
    let json = export_string(&history, &q, Format::Json);
    let records: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let ads = records
        .iter()
        .find(|r| r["name"] == "ads.adnetwork.net")
        .unwrap();
    assert_eq!(ads["category"], "Advertising");
}
