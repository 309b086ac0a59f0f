//! Errors returned by [`crate::History`] and the write faults reported by [`crate::Recorder`].

use std::fmt;
use std::path::PathBuf;

use crate::model::UnknownCode;

/// Why a history operation failed.
#[derive(Debug)]
pub enum HistoryError {
    /// SQLite refused (the message names the statement's purpose).
    Sqlite {
        /// What we were doing, e.g. `"opening /data/history.db"`.
        context: String,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// A file operation around the database failed (create, chmod, rename).
    Io {
        /// What we were doing and on which path.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The database was written by a newer Embargo (its schema version is above ours).
    TooNew {
        /// Path of the database.
        path: PathBuf,
        /// Version found in `PRAGMA user_version`.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// A row holds a value this version cannot decode.
    BadRow {
        /// Row id.
        id: i64,
        /// What was wrong.
        problem: String,
    },
    /// Writing an export failed.
    Export {
        /// What failed.
        context: String,
    },
    /// The writer could not commit (disk full, read-only...); events are kept and retried.
    Write(WriteFault),
    /// The writer thread is gone (the history was closed).
    Closed,
}

impl HistoryError {
    pub(crate) fn sqlite(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Self {
        let context = context.into();
        move |source| HistoryError::Sqlite { context, source }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| HistoryError::Io { context, source }
    }

    pub(crate) fn bad_code(id: i64, code: UnknownCode) -> Self {
        HistoryError::BadRow {
            id,
            problem: code.to_string(),
        }
    }

    /// True when SQLite says the file is not a database or is malformed.
    pub fn is_corruption(&self) -> bool {
        match self {
            HistoryError::Sqlite { source, .. } => is_corruption(source),
            _ => false,
        }
    }
}

pub(crate) fn is_corruption(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryError::Sqlite { context, source } => write!(f, "history: {context}: {source}"),
            HistoryError::Io { context, source } => write!(f, "history: {context}: {source}"),
            HistoryError::TooNew {
                path,
                found,
                supported,
            } => write!(
                f,
                "history: {} has schema version {found}, this build supports up to {supported}; \
                 update Embargo or move the file aside",
                path.display()
            ),
            HistoryError::BadRow { id, problem } => write!(f, "history: row {id}: {problem}"),
            HistoryError::Export { context } => write!(f, "history export: {context}"),
            HistoryError::Write(fault) => write!(f, "{fault}"),
            HistoryError::Closed => write!(f, "history: the writer has shut down"),
        }
    }
}

impl std::error::Error for HistoryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HistoryError::Sqlite { source, .. } => Some(source),
            HistoryError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Class of a failed write, so a shell can show the right message ("storage full", ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFaultKind {
    /// No space left on the device (or the database hit its page limit).
    DiskFull,
    /// The file or its directory is read-only.
    ReadOnly,
    /// SQLite reports the file as malformed; reopening moves it aside.
    Corrupt,
    /// Any other I/O or SQLite error.
    Other,
}

/// A write the writer thread could not commit. It keeps the events and retries with back-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFault {
    /// Class of the failure.
    pub kind: WriteFaultKind,
    /// SQLite's message, for logs and the "details" line of a notification.
    pub message: String,
}

impl WriteFault {
    pub(crate) fn from_sqlite(err: &rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        let kind = match err.sqlite_error_code() {
            Some(C::DiskFull) => WriteFaultKind::DiskFull,
            Some(C::ReadOnly | C::CannotOpen | C::PermissionDenied) => WriteFaultKind::ReadOnly,
            Some(C::DatabaseCorrupt | C::NotADatabase) => WriteFaultKind::Corrupt,
            // SQLite reports ENOSPC during a WAL write or checkpoint as SQLITE_IOERR_WRITE or
            // SQLITE_FULL depending on where it hits; look at the OS error text too.
            Some(C::SystemIoFailure) if err.to_string().contains("disk") => {
                WriteFaultKind::DiskFull
            }
            _ => WriteFaultKind::Other,
        };
        WriteFault {
            kind,
            message: err.to_string(),
        }
    }
}

impl fmt::Display for WriteFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            WriteFaultKind::DiskFull => "storage is full",
            WriteFaultKind::ReadOnly => "storage is read-only",
            WriteFaultKind::Corrupt => "database is corrupt",
            WriteFaultKind::Other => "write failed",
        };
        write!(f, "history not saved: {what} ({})", self.message)
    }
}
