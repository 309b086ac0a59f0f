//! Two processes, one history: a child process writes (`history-writer`, as iOS's extension
//! does) while this one reads through a [`Reader`] (as iOS's app does), holding a read
//! transaction open; the writer's commits must keep coming meanwhile.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use embargo_history::{Query, Reader};

#[test]
fn a_reader_in_another_process_never_blocks_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let mut child = Writer(
        Command::new(env!("CARGO_BIN_EXE_history-writer"))
            .arg(&path)
            .arg("5000")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, committed) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() == 4 && f[0] == "progress" && tx.send(f[3].parse::<u64>().unwrap()).is_err()
            {
                break;
            }
        }
    });
    // The writer's latest committed count: every report queued so far, and at least one new.
    let mut last = 0;
    let mut latest = |at_least: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            last = committed
                .recv_timeout(Duration::from_secs(20))
                .expect("the writer reports progress");
            while let Ok(n) = committed.try_recv() {
                last = n;
            }
            if last >= at_least || Instant::now() > deadline {
                return last;
            }
        }
    };
    latest(1_000);
    let reader = Reader::open(&path).unwrap();
    // A read transaction held open for a second, by a second connection of this process
    // (the Reader's own is busy-free anyway): the writer keeps committing.
    let holder =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = holder.prepare("SELECT id FROM records").unwrap();
    let mut rows = stmt.query([]).unwrap();
    assert!(rows.next().unwrap().is_some());
    let before = latest(0);
    std::thread::sleep(Duration::from_secs(1));
    let during = latest(0);
    assert!(
        during >= before + 2_000,
        "the writer committed {} events in a second with a reader open",
        during - before
    );
    // Meanwhile the Reader pages what is committed, and sees it grow.
    let count = |reader: &Reader| {
        let mut q = Query {
            limit: 1_000,
            ..Query::default()
        };
        let mut n = 0;
        loop {
            let page = reader.query(&q).unwrap();
            n += page.records.len() as u64;
            match page.next {
                Some(next) => q.after = Some(next),
                None => return n,
            }
        }
    };
    let first = count(&reader);
    drop(rows);
    latest(during + 1_000);
    let second = count(&reader);
    assert!(second > first && first >= before, "{first} then {second}");
    drop(child);
}

/// The writer process, killed when the test ends (also when it fails).
struct Writer(std::process::Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
