//! Faults: SIGKILL mid-write, full disk, read-only file system, corrupt file.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{config, event, now};
use embargo_history::{
    Health, History, HistoryError, OpenOutcome, Query, Recorded, Verdict, WriteFaultKind,
};

fn integrity(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// A real child process writes 10,000 events/s through the Recorder and reports progress
/// every 20 ms; it is killed with SIGKILL mid-write. The database must open clean, hold every
/// event the child saw committed, and miss at most the events of the last second.
#[test]
fn sigkill_mid_write_loses_at_most_the_last_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_history-writer"))
        .arg(&path)
        .arg("10000")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() == 4 && f[0] == "progress" {
                let p: (i64, u64, u64) = (
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                );
                if tx.send(p).is_err() {
                    break;
                }
            }
        }
    });
    // Let it write for a while (at least 20,000 committed), then kill it mid-stream.
    let started = Instant::now();
    let mut progress = Vec::new();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(p) = rx.recv_timeout(Duration::from_millis(100)) {
            progress.push(p);
            if p.2 >= 20_000 {
                break;
            }
        }
    }
    // Kill at a time unrelated to the writer's batch boundaries.
    std::thread::sleep(Duration::from_millis(37));
    child.kill().unwrap(); // SIGKILL on Unix
    let killed_at = now();
    child.wait().unwrap();
    progress.extend(rx.try_iter());
    let last = *progress.last().expect("child reported progress");
    assert!(last.2 >= 20_000, "child too slow: {last:?}");

    // The database opens without recovery and passes integrity_check.
    assert_eq!(integrity(&path), "ok");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: u64 = conn
        .query_row("SELECT count(*) FROM records", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64;
    // Everything the child saw committed is there.
    assert!(
        rows >= last.2,
        "{rows} rows < {} reported committed",
        last.2
    );
    // Everything queued more than a second before the kill is there.
    let second_before = progress
        .iter()
        .rev()
        .find(|p| p.0 <= killed_at - 1_000)
        .expect("progress from more than a second before the kill");
    assert!(
        rows >= second_before.1,
        "{rows} rows < {} queued a second before the kill",
        second_before.1
    );
    eprintln!(
        "kill test: {rows} rows in db; last report {} queued / {} committed; \
         queued 1 s before kill: {}; lost (queued - rows): {}",
        last.1,
        last.2,
        second_before.1,
        last.1.saturating_sub(rows)
    );
    drop(conn);
    let history = History::open(embargo_history::Config::new(&path)).unwrap();
    assert!(matches!(history.open_outcome(), OpenOutcome::Opened { .. }));
}

#[test]
fn corrupt_file_is_moved_aside_and_a_fresh_database_created() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    std::fs::write(
        &cfg.path,
        b"this is not a database, it is a text file ".repeat(200),
    )
    .unwrap();
    let history = History::open(cfg.clone()).unwrap();
    let OpenOutcome::RecoveredFromCorruption { moved_to, error } = history.open_outcome().clone()
    else {
        panic!("expected recovery, got {:?}", history.open_outcome());
    };
    assert!(error.contains("not a database"), "{error}");
    let moved_name = moved_to.file_name().unwrap().to_str().unwrap();
    assert!(
        moved_name.starts_with("history.db.corrupt-20"),
        "{moved_name}"
    );
    // The damaged bytes are kept for inspection, unchanged.
    assert!(std::fs::read(&moved_to)
        .unwrap()
        .starts_with(b"this is not a database"));
    // The fresh database works.
    history
        .recorder()
        .record(event(now(), "a", "n.example", Verdict::Block));
    history.flush().unwrap();
    assert_eq!(history.stats().unwrap().rows, 1);
    drop(history);
    assert_eq!(integrity(&cfg.path), "ok");
}

#[test]
fn damaged_header_of_a_real_database_is_recovered_too() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        let history = History::open(cfg.clone()).unwrap();
        for i in 0..100 {
            history
                .recorder()
                .record(event(now() + i, "a", "n.example", Verdict::Block));
        }
        history.flush().unwrap();
    }
    // Overwrite the 100-byte header (magic string, page size...) with garbage.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&cfg.path)
        .unwrap();
    f.write_all(&[0xA5; 100]).unwrap();
    drop(f);
    let history = History::open(cfg).unwrap();
    assert!(
        matches!(
            history.open_outcome(),
            OpenOutcome::RecoveredFromCorruption { .. }
        ),
        "{:?}",
        history.open_outcome()
    );
    assert_eq!(history.stats().unwrap().rows, 0);
}

/// A database whose header and schema read fine but whose data pages are garbage
/// opened as `Opened`, and then every commit failed while the shell looked healthy. `PRAGMA
/// quick_check` at open finds it; the file is moved aside like an unreadable one.
#[test]
fn corrupt_data_pages_are_found_at_open_and_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        let history = History::open(cfg.clone()).unwrap();
        for i in 0..5_000 {
            history.recorder().record(event(
                now() + i,
                &format!("app-{}", i % 50),
                &format!("n{i}.example"),
                Verdict::Block,
            ));
        }
        history.flush().unwrap();
    }
    {
        // Everything in the main file, nothing left in the WAL.
        let conn = rusqlite::Connection::open(&cfg.path).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let len = std::fs::metadata(&cfg.path).unwrap().len();
    let page = 4096u64;
    assert!(len >= 16 * page, "database too small to damage: {len}");
    // Garbage over the second half of the pages (the header and schema on page 1 stay).
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&cfg.path)
        .unwrap();
    use std::io::Seek;
    let from = (len / page / 2) * page;
    f.seek(std::io::SeekFrom::Start(from)).unwrap();
    f.write_all(&vec![0x5A; (len - from) as usize]).unwrap();
    drop(f);
    let history = History::open(cfg.clone()).unwrap();
    let OpenOutcome::RecoveredFromCorruption { moved_to, .. } = history.open_outcome().clone()
    else {
        panic!(
            "corrupt data pages not found at open: {:?}",
            history.open_outcome()
        );
    };
    assert!(moved_to.exists());
    assert_eq!(std::fs::metadata(&moved_to).unwrap().len(), len);
    history
        .recorder()
        .record(event(now(), "a", "n.example", Verdict::Block));
    history.flush().unwrap();
    assert_eq!(history.stats().unwrap().rows, 1);
}

fn wait_for(events: &mpsc::Receiver<Health>, want: impl Fn(&Health) -> bool) -> Health {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(h) = events.recv_timeout(Duration::from_millis(100)) {
            if want(&h) {
                return h;
            }
        }
    }
    panic!("health event never came");
}

/// Deterministic disk-full: a hard ceiling (`max_page_count`) makes SQLite fail with
/// SQLITE_FULL exactly as a full disk does. The writer reports it, `record` keeps accepting,
/// and when retention frees space the held events are written.
#[test]
fn full_database_reports_keeps_accepting_and_resumes_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.coalesce_window = Duration::ZERO;
    cfg.hard_max_bytes = Some(400 * 1024);
    cfg.retention_interval = Duration::from_secs(3600);
    let history = History::open(cfg).unwrap();
    let rec = history.recorder();
    let health = rec.health_events();
    // Old rows (past retention) fill the budget.
    let old = now() - 40 * embargo_history::DAY_MS;
    let mut i = 0;
    loop {
        for _ in 0..200 {
            rec.record(event(
                old + i,
                "a",
                &format!("old{i}.example"),
                Verdict::Block,
            ));
            i += 1;
        }
        if let Err(e) = history.flush() {
            assert!(
                matches!(e, HistoryError::Write(ref f) if f.kind == WriteFaultKind::DiskFull),
                "{e}"
            );
            break;
        }
        assert!(i < 100_000, "never filled up");
    }
    let failing = wait_for(&health, |h| matches!(h, Health::Failing { .. }));
    let Health::Failing { fault, .. } = failing else {
        unreachable!()
    };
    assert_eq!(fault.kind, WriteFaultKind::DiskFull);
    assert!(fault.to_string().contains("storage is full"), "{fault}");
    // The caller keeps going: record never fails or waits.
    for j in 0..50 {
        assert_eq!(
            rec.record(event(now() + j, "b", "new.example", Verdict::Block)),
            Recorded::Queued
        );
    }
    // Space returns: retention deletes the old rows; the held events are then written.
    history.run_retention().unwrap();
    wait_for(&health, |h| *h == Health::Healthy);
    history.flush().unwrap();
    let new_rows = history
        .query(&Query {
            app: Some("b".into()),
            limit: 1_000,
            ..Query::default()
        })
        .unwrap()
        .records
        .len();
    assert_eq!(new_rows, 50);
    assert_eq!(history.recorder().health(), Health::Healthy);
}

/// Runs `f` on a fresh tmpfs of `size` mounted under a temp dir; skips loudly when not root
/// or mount is not permitted (CI runs as root).
fn with_tmpfs(size: &str, f: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir.path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs (needs root); the max_page_count test covers disk-full"
        );
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
    let _guard = Unmount(dir.path());
    f(dir.path());
}

/// The real thing: a tiny tmpfs filled to the last byte by another file.
#[test]
fn real_full_disk_reports_and_resumes_when_space_is_freed() {
    with_tmpfs("4m", |mnt| {
        let mut cfg = config(mnt);
        cfg.coalesce_window = Duration::ZERO;
        let history = History::open(cfg).unwrap();
        let rec = history.recorder();
        let health = rec.health_events();
        rec.record(event(now(), "a", "first.example", Verdict::Block));
        history.flush().unwrap();
        // Fill the file system.
        let filler = mnt.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        drop(f);
        let mut i = 0;
        let fault = loop {
            for _ in 0..500 {
                assert_eq!(
                    rec.record(event(
                        now() + i,
                        "a",
                        &format!("n{i}.example"),
                        Verdict::Block
                    )),
                    Recorded::Queued
                );
                i += 1;
            }
            if let Err(HistoryError::Write(fault)) = history.flush() {
                break fault;
            }
            assert!(i < 200_000, "disk never filled");
        };
        assert_eq!(fault.kind, WriteFaultKind::DiskFull, "{fault}");
        wait_for(&health, |h| matches!(h, Health::Failing { .. }));
        std::fs::remove_file(&filler).unwrap();
        wait_for(&health, |h| *h == Health::Healthy);
        history.flush().unwrap();
        assert_eq!(history.stats().unwrap().rows, i as u64 + 1);
    });
}

/// Read-only file system at open: a clear error, not a panic or a silent empty history.
/// (Linux refuses to remount read-only while the writer holds the file open for writing, so
/// a read-only switch under a running writer cannot be staged here; that path reports
/// `WriteFaultKind::ReadOnly` and reconnects on retry.)
#[test]
fn read_only_file_system_gives_a_clear_error() {
    with_tmpfs("4m", |mnt| {
        let cfg = config(mnt);
        {
            let history = History::open(cfg.clone()).unwrap();
            history
                .recorder()
                .record(event(now(), "a", "n.example", Verdict::Block));
            history.flush().unwrap();
        }
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(mnt)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount read-only failed");
        let err = History::open(cfg.clone()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("not writable") && text.contains("Read-only file system"),
            "unclear error: {text}"
        );
        eprintln!("read-only open error: {text}");
        // Writable again: opens and keeps the old rows.
        assert!(Command::new("mount")
            .args(["-o", "remount,rw"])
            .arg(mnt)
            .status()
            .unwrap()
            .success());
        let history = History::open(cfg).unwrap();
        assert_eq!(history.stats().unwrap().rows, 1);
    });
}
