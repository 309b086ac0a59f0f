//! Embargo's history: a record of every blocked (and, unless turned off, allowed) connection,
//! kept on the device in SQLite.
//!
//! This crate is a leaf: it depends on neither the engine nor the policy. The application layer
//! (`embargo-app`) converts engine events into [`Event`] and hands them to a [`Recorder`]; the
//! UI reads through [`History`].
//!
//! # Usage
//!
//! ```no_run
//! use embargo_history::{Config, Verdict, Event, History, Protocol, Query};
//!
//! let history = History::open(Config::new("/data/embargo/history.db"))?;
//! // Created, Opened { from_version, to_version }, or RecoveredFromCorruption { moved_to, .. }:
//! // in the last case tell the user their old history was damaged and set aside.
//! println!("{:?}", history.open_outcome());
//!
//! // On the packet path: never blocks, never fails.
//! let recorder = history.recorder();
//! let mut event = Event::new(1_795_951_000_000, Protocol::Dns, Verdict::Block);
//! event.app = Some("com.zhiliaoapp.musically".into());
//! event.name = Some("log-va.tiktokv.com".into());
//! event.owner = Some("ByteDance".into());
//! recorder.record(event);
//!
//! // In the UI: newest blocks of one app, page by page.
//! let mut q = Query { app: Some("com.zhiliaoapp.musically".into()),
//!                     verdict: Some(Verdict::Block), ..Query::default() };
//! let page = history.query(&q)?;
//! q.after = page.next; // next page
//! # Ok::<(), embargo_history::HistoryError>(())
//! ```
//!
//! - **Coalescing**: events with the same (app, name — or address when there is no name —,
//!   protocol, decision) within `Config::coalesce_window` (60 s) of a row's first event add to that
//!   row's `count` and move its `last_seen`; a chatty app cannot flood the disk. Zero turns it
//!   off.
//! - **Never blocking**: `record` is a `try_send` into a bounded queue
//!   (`Config::queue_capacity`); a writer thread commits batches (≤ 16,384 events or 200 ms,
//!   one transaction each). When the queue is full the event is counted as dropped; the count
//!   is stored and shown in [`StorageStats::dropped`].
//! - **Faults**: a failed commit (disk full, read-only) keeps the events in memory, retries with
//!   back-off, and reports [`Health::Failing`] on [`Recorder::health_events`]; writing resumes
//!   by itself. A damaged file is renamed `<name>.corrupt-<UTC stamp>` and a fresh one created
//!   ([`OpenOutcome::RecoveredFromCorruption`]). WAL with `synchronous=NORMAL`: a killed
//!   process loses at most the batch not yet committed (≤ 200 ms); a power cut may lose the
//!   last commits but never corrupts the file.
//! - **Queries**: time range, app, name prefix or substring, owner, country, decision; newest
//!   first; keyset pages ([`Page::next`]). Indexes: time, (app, decision, time), (owner,
//!   time). Names have no index on purpose (an index on tens of thousands of names rewrites a
//!   random page per event and capped inserts near 8,000/s): a name search reads newest first
//!   and stops after a page of matches, so it costs in proportion to how rare the name is;
//!   add an app filter to make it fast. [`History::hide`] persists "hide this app/name"
//!   filters (`Query::include_hidden` shows them).
//! - **Aggregates**: [`History::aggregate`] counts events per UTC day, app, owner and country
//!   from daily tables kept on insert (30 days of 10 million rows aggregate in milliseconds).
//!   Hidden apps are left out; hidden names are not (the daily tables have no name).
//! - **Retention**: rows older than `Config::retention` (30 days) and, with
//!   `Config::max_bytes`, the oldest rows beyond the size cap are deleted 5,000 per
//!   transaction between batches, and free pages returned (`auto_vacuum=INCREMENTAL`).
//! - **Budget**: `Config::hard_max_bytes` is a hard ceiling (SQLite `max_page_count`);
//!   reaching it behaves like a full disk (reported, retried, resumes when retention frees
//!   space).
//! - **Export**: [`History::export`] streams a query's rows as CSV, JSON or NDJSON.
//! - **Privacy**: the file (and its `-wal`/`-shm`) is created 0600; the schema holds host
//!   names, addresses and ports, never payload bytes or URLs.

#![warn(missing_docs)]

mod aggregate;
mod config;
mod error;
mod export;
mod history;
pub mod migrations;
mod model;
mod open;
mod query;
mod reader;
mod time;
mod writer;

pub use aggregate::{AggregateQuery, AggregateRow, Dimension};
pub use config::Config;
pub use error::{HistoryError, WriteFault, WriteFaultKind};
pub use export::{Format, CSV_HEADER};
pub use history::{Hidden, History, StorageStats};
pub use model::{Certainty, Coded, Event, Millis, Protocol, Record, UnknownCode, Verdict};
pub use open::{OpenOutcome, FILE_MODE};
pub use query::{Cursor, Page, Query, MAX_PAGE};
pub use reader::Reader;
pub use time::{date_string, day_of, now_ms, DAY_MS};
pub use writer::{Health, Recorded, Recorder, RetentionReport, WriterCounters};
