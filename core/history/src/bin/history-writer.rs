//! Load generator for the kill test (`tests/faults.rs`) and manual experiments.
//!
//! `history-writer <db> [events_per_second]` records blocked events at a steady rate with
//! coalescing off and prints, every 20 ms, `progress <now_ms> <queued> <committed>`: how many
//! events `record` accepted and how many the writer has committed. The test kills it with
//! SIGKILL and compares the database with the last lines it printed.

use std::io::Write;
use std::time::{Duration, Instant};

use embargo_history::{Config, Event, History, Protocol, Recorded, Verdict};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: history-writer <db> [events_per_second]");
        std::process::exit(2);
    };
    let rate: u64 = match args.next().map(|a| a.parse()) {
        None => 10_000,
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            eprintln!("history-writer: bad rate: {e}");
            std::process::exit(2);
        }
    };
    let mut config = Config::new(path);
    config.coalesce_window = Duration::ZERO;
    let history = match History::open(config) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("history-writer: {e}");
            std::process::exit(1);
        }
    };
    let recorder = history.recorder();
    let start = Instant::now();
    let mut queued: u64 = 0;
    let mut sent: u64 = 0;
    let mut last_print = Instant::now();
    let stdout = std::io::stdout();
    loop {
        // Catch up to the target rate, then sleep a millisecond.
        let due = start.elapsed().as_micros() as u64 * rate / 1_000_000;
        while sent < due {
            let mut e = Event::new(embargo_history::now_ms(), Protocol::Tcp, Verdict::Block);
            e.app = Some(format!("app{}", sent % 7));
            e.name = Some(format!("host{}.tracker.example", sent % 101));
            e.port = 443;
            if recorder.record(e) == Recorded::Queued {
                queued += 1;
            }
            sent += 1;
        }
        if last_print.elapsed() >= Duration::from_millis(20) {
            last_print = Instant::now();
            let c = recorder.counters();
            let mut out = stdout.lock();
            let _ = writeln!(
                out,
                "progress {} {queued} {}",
                embargo_history::now_ms(),
                c.committed
            );
            let _ = out.flush();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
