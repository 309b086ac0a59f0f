//! Settings of a history store.

use std::path::PathBuf;
use std::time::Duration;

/// How the store is opened and how its writer behaves. `Config::new(path)` gives the defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Database file. Its directory must exist; the file is created owner-only (0600).
    pub path: PathBuf,
    /// Rows whose `last_seen` is older than this are deleted. Default 30 days: the peers keep 3
    /// to 7 days, and users asked for longer to see trends per company.
    pub retention: Duration,
    /// Size cap on the live data (pages in use, not free pages). Oldest rows go first.
    pub max_bytes: Option<u64>,
    /// Hard ceiling on the file (SQLite `max_page_count`): beyond it writes fail exactly like
    /// a full disk (`SQLITE_FULL`), the writer reports [`crate::Health::Failing`] and keeps
    /// retrying, and retention frees space. `None` (default): only the disk limits the file.
    /// Useful to give the history a fixed budget on a small device, and it makes the disk-full
    /// path testable without root.
    pub hard_max_bytes: Option<u64>,
    /// Events with the same (app, name or address, decision) within this window of the row's
    /// first event coalesce into one row. Zero turns coalescing off. Default 60 s: a chatty app
    /// polling every second costs 1,440 rows a day instead of 86,400, and a row still places an
    /// event within a minute.
    pub coalesce_window: Duration,
    /// Record allowed connections too (default on): users want to see what got through.
    pub record_allowed: bool,
    /// Capacity of the queue between `record()` and the writer thread. Default 65,536 events:
    /// about a second of a heavy burst; `record()` never waits, so beyond it events are counted
    /// as dropped (and the count is stored).
    pub queue_capacity: usize,
    /// Most events committed in one transaction. Default 16,384: a commit writes every index
    /// page it touched once, however many events touched it, so bigger batches write fewer
    /// bytes per event; 16,384 events are ~5 MB in memory and commit in tens of milliseconds.
    pub batch_max: usize,
    /// Longest an event waits in a batch before it is committed. Default 200 ms, so a crash
    /// loses at most ~0.2 s of events (the issue allows one second) while batches under load
    /// stay large.
    pub flush_interval: Duration,
    /// Rows deleted per retention transaction. Default 5,000: a few milliseconds per batch, so
    /// inserts interleave and nobody sees a pause.
    pub retention_batch: usize,
    /// How often the writer checks retention. Default 10 minutes.
    pub retention_interval: Duration,
    /// Events kept in memory while writes fail (disk full, read-only), retried with back-off.
    /// Beyond it they are counted as dropped. Default 100,000.
    pub retry_capacity: usize,
    /// SQLite page cache of the writer's connection. Default [`DEFAULT_CACHE_BYTES`] (16 MB):
    /// a batch's dirty index pages stay in memory until its commit. A phone's tunnel process
    /// runs under a memory cap (iOS: 50 MB in all) and takes less.
    pub cache_bytes: usize,
}

/// See [`Config::cache_bytes`].
pub const DEFAULT_CACHE_BYTES: usize = 16_000 * 1024;

impl Config {
    /// Defaults for the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Config {
            path: path.into(),
            retention: Duration::from_secs(30 * 24 * 3600),
            max_bytes: None,
            hard_max_bytes: None,
            coalesce_window: Duration::from_secs(60),
            record_allowed: true,
            queue_capacity: 65_536,
            batch_max: 16_384,
            flush_interval: Duration::from_millis(200),
            retention_batch: 5_000,
            retention_interval: Duration::from_secs(600),
            retry_capacity: 100_000,
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}
