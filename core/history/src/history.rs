//! [`History`]: the store as the shells see it.

use std::io::Write;
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;

use rusqlite::{params, Connection};

use crate::aggregate::{self, AggregateQuery, AggregateRow};
use crate::config::Config;
use crate::error::HistoryError;
use crate::export::{Exporter, Format};
use crate::model::Millis;
use crate::open::{self, OpenOutcome};
use crate::query::{self, Page, Query};
use crate::time::now_ms;
use crate::writer::{self, Health, Recorder, RetentionReport, DROPPED_COUNTER};

/// Something the user asked not to see in the list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Hidden {
    /// Every row of this app.
    App(String),
    /// Every row of exactly this name.
    Name(String),
}

impl Hidden {
    fn kind_and_value(&self) -> (i64, &str) {
        match self {
            Hidden::App(app) => (0, app),
            Hidden::Name(name) => (1, name),
        }
    }
}

/// Figures for a "storage" screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageStats {
    /// Rows stored.
    pub rows: u64,
    /// Events those rows stand for (sum of counts).
    pub events: u64,
    /// Events dropped because the queue was full, ever (stored) plus not yet stored.
    pub dropped: u64,
    /// Bytes in pages holding data.
    pub live_bytes: u64,
    /// Oldest `last_seen`, if any row.
    pub oldest_ms: Option<Millis>,
    /// Newest `last_seen`, if any row.
    pub newest_ms: Option<Millis>,
    /// Writer state.
    pub health: Health,
}

/// The history store: one writer thread (fed through [`Recorder`]s) and one query connection.
///
/// Dropping it commits what is queued and stops the writer.
pub struct History {
    conn: Mutex<Connection>,
    recorder: Recorder,
    writer: Option<JoinHandle<()>>,
    outcome: OpenOutcome,
    config: Config,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("path", &self.config.path)
            .field("outcome", &self.outcome)
            .finish()
    }
}

impl History {
    /// Opens the store, creating, upgrading or (if corrupt) replacing the file, and starts the
    /// writer. See [`History::open_outcome`] for what happened to the file.
    pub fn open(config: Config) -> Result<History, HistoryError> {
        let (conn, outcome) = open::open(&config.path, config.hard_max_bytes)?;
        let writer_conn = open::connect(&config.path, config.hard_max_bytes, config.cache_bytes)?;
        let (recorder, handle) = writer::spawn(writer_conn, &config)?;
        Ok(History {
            conn: Mutex::new(conn),
            recorder,
            writer: Some(handle),
            outcome,
            config,
        })
    }

    /// Whether the file was created, opened (and upgraded), or recovered from corruption.
    pub fn open_outcome(&self) -> &OpenOutcome {
        &self.outcome
    }

    /// The settings this store was opened with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A handle to record events; clone it freely.
    pub fn recorder(&self) -> Recorder {
        self.recorder.clone()
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave the connection half-used in a way that
        // matters: every call prepares its own statement.
        match self.conn.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// One page of rows, newest first.
    pub fn query(&self, q: &Query) -> Result<Page, HistoryError> {
        query::run(&self.conn(), q)
    }

    /// SQLite's plan for a query (`EXPLAIN QUERY PLAN` detail lines).
    pub fn explain(&self, q: &Query) -> Result<Vec<String>, HistoryError> {
        query::plan(&self.conn(), q)
    }

    /// Counts grouped by day, app, owner and/or country.
    pub fn aggregate(&self, q: &AggregateQuery) -> Result<Vec<AggregateRow>, HistoryError> {
        aggregate::run(&self.conn(), q)
    }

    /// Writes every row matching `q` to `out` (all pages: `q.limit` is ignored; export starts
    /// after `q.after` if set); returns the number of rows written.
    pub fn export(&self, q: &Query, format: Format, out: impl Write) -> Result<u64, HistoryError> {
        export(q, format, out, |page| self.query(page))
    }

    /// Hides an app or a name from queries (persisted).
    pub fn hide(&self, what: &Hidden) -> Result<(), HistoryError> {
        let (kind, value) = what.kind_and_value();
        self.conn()
            .execute(
                "INSERT OR IGNORE INTO hidden (kind, value, created) VALUES (?1, ?2, ?3)",
                params![kind, value, now_ms()],
            )
            .map_err(HistoryError::sqlite("saving a hide filter"))?;
        Ok(())
    }

    /// Shows a hidden app or name again. Returns false if it was not hidden.
    pub fn unhide(&self, what: &Hidden) -> Result<bool, HistoryError> {
        let (kind, value) = what.kind_and_value();
        let n = self
            .conn()
            .execute(
                "DELETE FROM hidden WHERE kind = ?1 AND value = ?2",
                params![kind, value],
            )
            .map_err(HistoryError::sqlite("removing a hide filter"))?;
        Ok(n > 0)
    }

    /// Every hide filter, oldest first.
    pub fn hidden(&self) -> Result<Vec<Hidden>, HistoryError> {
        hidden(&self.conn())
    }

    /// Row, event and drop counts, size, and writer health.
    pub fn stats(&self) -> Result<StorageStats, HistoryError> {
        let mut stats = stats(&self.conn())?;
        stats.dropped += self.recorder.shared().dropped_unsaved();
        stats.health = self.recorder.health();
        Ok(stats)
    }

    /// Runs retention (age, then size cap) to completion now, in bounded steps on the writer
    /// thread. It also runs by itself at open and every `Config::retention_interval`.
    pub fn run_retention(&self) -> Result<RetentionReport, HistoryError> {
        self.recorder.run_retention()
    }

    /// Waits until every event recorded so far is committed.
    pub fn flush(&self) -> Result<(), HistoryError> {
        self.recorder.flush()
    }

    /// Commits what is queued, stops the writer and closes the file.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(handle) = self.writer.take() {
            self.recorder.shutdown();
            if handle.join().is_err() {
                log::error!("history: the writer thread panicked");
            }
        }
    }
}

/// Writes every row matching `q`, page by page through `page`, to `out`.
pub(crate) fn export(
    q: &Query,
    format: Format,
    out: impl Write,
    mut page: impl FnMut(&Query) -> Result<Page, HistoryError>,
) -> Result<u64, HistoryError> {
    let mut exporter = Exporter::begin(format, out)?;
    let mut page_query = q.clone();
    page_query.limit = 1_000;
    loop {
        let page = page(&page_query)?;
        for record in &page.records {
            exporter.row(record)?;
        }
        match page.next {
            Some(cursor) => page_query.after = Some(cursor),
            None => break,
        }
    }
    exporter.end()
}

/// Every hide filter, oldest first.
pub(crate) fn hidden(conn: &Connection) -> Result<Vec<Hidden>, HistoryError> {
    let mut stmt = conn
        .prepare("SELECT kind, value FROM hidden ORDER BY created, kind, value")
        .map_err(HistoryError::sqlite("listing hide filters"))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .map_err(HistoryError::sqlite("listing hide filters"))?;
    let mut out = Vec::new();
    for row in rows {
        let (kind, value) = row.map_err(HistoryError::sqlite("listing hide filters"))?;
        out.push(if kind == 0 {
            Hidden::App(value)
        } else {
            Hidden::Name(value)
        });
    }
    Ok(out)
}

/// Row, event and stored drop counts and size (health `Healthy`: a connection knows no writer).
pub(crate) fn stats(conn: &Connection) -> Result<StorageStats, HistoryError> {
    let e = HistoryError::sqlite;
    let (rows, events, oldest, newest): (i64, Option<i64>, Option<i64>, Option<i64>) = conn
        .query_row(
            "SELECT count(*), sum(count), min(last_seen), max(last_seen) FROM records",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .map_err(e("counting rows"))?;
    let stored_drops: Option<i64> = conn
        .query_row(
            "SELECT value FROM counters WHERE name = ?1",
            [DROPPED_COUNTER],
            |r| r.get(0),
        )
        .or_else(|err| match err {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            other => Err(other),
        })
        .map_err(e("reading counters"))?;
    let live = writer::live_bytes(conn).map_err(e("measuring the database"))?;
    Ok(StorageStats {
        rows: rows as u64,
        events: events.unwrap_or(0).max(0) as u64,
        dropped: stored_drops.unwrap_or(0).max(0) as u64,
        live_bytes: live,
        oldest_ms: oldest,
        newest_ms: newest,
        health: Health::Healthy,
    })
}

impl Drop for History {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// UniFFI objects and the shells' packet threads need both handles shareable.
    #[test]
    fn handles_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<History>();
        assert_send_sync::<Recorder>();
    }
}
