//! [`Reader`]: the history opened by a process that only reads it while another writes (iOS:
//! the app reads what the packet tunnel extension writes into the shared container).
//!
//! The connection is opened `SQLITE_OPEN_READ_ONLY` with `PRAGMA query_only`, so it never
//! takes a write lock; in WAL mode a reader works on a snapshot and never blocks the writer
//! (a checkpoint only stops short of the pages a reader still needs, and finishes later).
//! The file is not created, migrated or recovered here: that is the writer's job, and until
//! the writer has created it the history reads as empty.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags};

use crate::aggregate::{self, AggregateQuery, AggregateRow};
use crate::error::HistoryError;
use crate::export::Format;
use crate::history::{self, Hidden, StorageStats};
use crate::query::{self, Page, Query};

/// The history, read-only. Queries ask the file as the writer last committed it.
pub struct Reader {
    path: PathBuf,
    /// `None` until the file exists (the writer has not run yet).
    conn: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("path", &self.path).finish()
    }
}

impl Reader {
    /// A reader of the history at `path`. Opens nothing yet when the file does not exist.
    pub fn open(path: impl Into<PathBuf>) -> Result<Reader, HistoryError> {
        let reader = Reader {
            path: path.into(),
            conn: Mutex::new(None),
        };
        drop(reader.conn()?);
        Ok(reader)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, opened on first use once the file exists.
    fn conn(&self) -> Result<MutexGuard<'_, Option<Connection>>, HistoryError> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() && self.path.exists() {
            *guard = Some(connect(&self.path)?);
        }
        Ok(guard)
    }

    /// One page of rows, newest first (an empty page before the writer created the file).
    pub fn query(&self, q: &Query) -> Result<Page, HistoryError> {
        match &*self.conn()? {
            Some(conn) => query::run(conn, q),
            None => Ok(Page {
                records: Vec::new(),
                next: None,
            }),
        }
    }

    /// Counts grouped by day, app, owner and/or country.
    pub fn aggregate(&self, q: &AggregateQuery) -> Result<Vec<AggregateRow>, HistoryError> {
        match &*self.conn()? {
            Some(conn) => aggregate::run(conn, q),
            None => Ok(Vec::new()),
        }
    }

    /// Writes every row matching `q` to `out` (see `History::export`).
    pub fn export(&self, q: &Query, format: Format, out: impl Write) -> Result<u64, HistoryError> {
        history::export(q, format, out, |page| self.query(page))
    }

    /// Every hide filter, oldest first.
    pub fn hidden(&self) -> Result<Vec<Hidden>, HistoryError> {
        match &*self.conn()? {
            Some(conn) => history::hidden(conn),
            None => Ok(Vec::new()),
        }
    }

    /// Row, event and stored drop counts and size (the writer's health is the writer's to
    /// tell: `Healthy` here).
    pub fn stats(&self) -> Result<StorageStats, HistoryError> {
        match &*self.conn()? {
            Some(conn) => history::stats(conn),
            None => Ok(StorageStats {
                rows: 0,
                events: 0,
                dropped: 0,
                live_bytes: 0,
                oldest_ms: None,
                newest_ms: None,
                health: crate::Health::Healthy,
            }),
        }
    }
}

fn connect(path: &Path) -> Result<Connection, HistoryError> {
    let context = format!("opening {} to read", path.display());
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(HistoryError::sqlite(context.clone()))?;
    conn.busy_timeout(crate::open::BUSY_TIMEOUT)
        .map_err(HistoryError::sqlite(context.clone()))?;
    conn.execute_batch("PRAGMA query_only = 1;")
        .map_err(HistoryError::sqlite(context))?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Event, History, Protocol, Verdict};
    use std::time::Duration;

    fn event(i: u64) -> Event {
        let mut e = Event::new(crate::now_ms(), Protocol::Tcp, Verdict::Block);
        e.addr = Some("192.0.2.1".parse().unwrap());
        e.port = 443;
        e.name = Some(format!("t{i}.example"));
        e
    }

    /// The writer keeps committing while a reader holds a read transaction open in the
    /// middle of a page, and the reader pages the rows as they come; the reader can write
    /// nothing.
    #[test]
    fn the_reader_never_blocks_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let early = Reader::open(&path).unwrap();
        assert!(early.query(&Query::default()).unwrap().records.is_empty());
        let mut config = Config::new(&path);
        config.coalesce_window = Duration::ZERO;
        let writer = History::open(config).unwrap();
        for i in 0..100 {
            writer.recorder().record(event(i));
        }
        writer.flush().unwrap();
        assert_eq!(
            early.stats().unwrap().rows,
            100,
            "opened once the file exists"
        );

        let reader = Reader::open(&path).unwrap();
        {
            // A read transaction held open: a statement stepped once, not finished.
            let guard = reader.conn().unwrap();
            let conn = guard.as_ref().unwrap();
            let mut stmt = conn.prepare("SELECT id FROM records").unwrap();
            let mut rows = stmt.query([]).unwrap();
            assert!(rows.next().unwrap().is_some());
            let started = std::time::Instant::now();
            for i in 100..5_100 {
                writer.recorder().record(event(i));
            }
            writer.flush().unwrap();
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "the writer waited for the reader ({:?})",
                started.elapsed()
            );
        }
        let mut seen = 0;
        let mut q = Query {
            limit: 500,
            ..Query::default()
        };
        loop {
            let page = reader.query(&q).unwrap();
            seen += page.records.len();
            match page.next {
                Some(next) => q.after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, 5_100);
        let conn = reader.conn().unwrap();
        let e = conn
            .as_ref()
            .unwrap()
            .execute("DELETE FROM records", [])
            .unwrap_err();
        assert!(e.to_string().contains("readonly"), "{e}");
    }
}
