//! Opening the database file: owner-only permissions, pragmas, corruption recovery.

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::HistoryError;
use crate::migrations;
use crate::time::{file_stamp, now_ms};

/// Owner read/write only: the history says which apps talk to whom, which is private.
pub const FILE_MODE: u32 = 0o600;

/// SQLite suffixes of the files that belong to a database in WAL mode.
const COMPANION_SUFFIXES: [&str; 2] = ["-wal", "-shm"];

/// How long a connection waits for another's lock (the writer and a query connection share
/// the file; WAL lets readers proceed, so this only covers two writers, e.g. `hide` during a
/// batch commit of a few milliseconds).
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What `History::open` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenOutcome {
    /// No file existed; a new database was created.
    Created,
    /// An existing database was opened (and upgraded if `from_version` < `to_version`).
    Opened {
        /// Schema version found.
        from_version: i64,
        /// Schema version now.
        to_version: i64,
    },
    /// The file was not a readable database: it was renamed to `moved_to` (with its `-wal` and
    /// `-shm` files) and a fresh database created. Tell the user their history was reset.
    RecoveredFromCorruption {
        /// Where the damaged file now is.
        moved_to: PathBuf,
        /// SQLite's complaint.
        error: String,
    },
}

/// Creates the file with mode 0600 before SQLite sees it, or tightens an existing file.
///
/// SQLite creates `-wal` and `-shm` with the permissions of the main file (`robust_open` copies
/// them), so setting the main file right covers all three.
fn prepare_file(path: &Path) -> Result<bool, HistoryError> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Say "read-only file system" or "permission denied" in plain words rather than
            // SQLite's "unable to open database file".
            fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(HistoryError::io(format!(
                    "{} is not writable",
                    path.display()
                )))?;
            for file in std::iter::once(path.to_path_buf()).chain(companions(path)) {
                if let Ok(meta) = fs::metadata(&file) {
                    if meta.permissions().mode() & 0o077 != 0 {
                        fs::set_permissions(&file, fs::Permissions::from_mode(FILE_MODE)).map_err(
                            HistoryError::io(format!("making {} owner-only", file.display())),
                        )?;
                    }
                }
            }
            Ok(false)
        }
        Err(e) => Err(HistoryError::io(format!("creating {}", path.display()))(e)),
    }
}

fn companions(path: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    COMPANION_SUFFIXES.iter().map(move |suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

/// Opens a connection with the pragmas every connection needs.
///
/// `synchronous=NORMAL` in WAL mode: commits do not fsync; the WAL is synced at checkpoints.
/// A crash of the process loses nothing committed (the OS has the pages); a power loss can lose
/// the last commits, never corrupt the file. For a history that is the right trade: fsync per
/// batch would cost battery for records the user can afford to lose.
///
/// `wal_autocheckpoint = 4096` pages (16 MiB): a checkpoint (which does fsync) every few
/// batches rather than after each; `journal_size_limit` then trims the WAL file back to 32 MiB.
/// `cache_size` ([`crate::Config::cache_bytes`]): a batch's dirty index pages stay in memory
/// until the commit.
pub(crate) fn connect(
    path: &Path,
    hard_max_bytes: Option<u64>,
    cache_bytes: usize,
) -> Result<Connection, HistoryError> {
    let context = format!("opening {}", path.display());
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(HistoryError::sqlite(context.clone()))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(HistoryError::sqlite(context.clone()))?;
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL;
         PRAGMA wal_autocheckpoint = 4096;
         PRAGMA journal_size_limit = 33554432;",
    )
    .map_err(HistoryError::sqlite(context.clone()))?;
    // A negative cache_size is in KiB.
    conn.execute_batch(&format!(
        "PRAGMA cache_size = -{};",
        (cache_bytes / 1024).max(64)
    ))
    .map_err(HistoryError::sqlite(context.clone()))?;
    if let Some(max) = hard_max_bytes {
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(HistoryError::sqlite(context.clone()))?;
        let pages = (max / page_size.max(512) as u64).max(1);
        conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .map_err(HistoryError::sqlite(context))?;
    }
    Ok(conn)
}

/// Reads the schema (which fails on a damaged header or schema page), sets up a new file, and
/// migrates. Returns the connection and the version found.
fn open_and_migrate(
    path: &Path,
    hard_max_bytes: Option<u64>,
) -> Result<(Connection, i64), HistoryError> {
    let mut conn = connect(path, hard_max_bytes, crate::config::DEFAULT_CACHE_BYTES)?;
    let context = format!("reading {}", path.display());
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(HistoryError::sqlite(context.clone()))?;
    if tables == 0 {
        // Must precede the first table: auto_vacuum cannot be turned on afterwards.
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")
            .map_err(HistoryError::sqlite(context.clone()))?;
    }
    if tables > 0 {
        quick_check(&conn, path)?;
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(HistoryError::sqlite(context.clone()))?;
    if !mode.eq_ignore_ascii_case("wal") {
        log::warn!("history: {} stays in journal mode {mode}", path.display());
    }
    let found = migrations::migrate(&mut conn, path)?;
    Ok((conn, found))
}

/// `PRAGMA quick_check(1)`: a header and schema that read fine say nothing of the data and
/// index pages, and a damaged one makes every later commit fail. A problem found is returned
/// as corruption (`SQLITE_CORRUPT`), so [`open`] moves the file aside as it does an unreadable
/// one. It reads every page once (O(file size): about a second per GB, at start only).
fn quick_check(conn: &Connection, path: &Path) -> Result<(), HistoryError> {
    let context = format!("checking {}", path.display());
    let verdict: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(HistoryError::sqlite(context.clone()))?;
    if verdict == "ok" {
        return Ok(());
    }
    Err(HistoryError::sqlite(context)(
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some(format!("quick_check: {verdict}")),
        ),
    ))
}

/// Opens (creating, upgrading or recovering) the database at `path`.
pub(crate) fn open(
    path: &Path,
    hard_max_bytes: Option<u64>,
) -> Result<(Connection, OpenOutcome), HistoryError> {
    let created = prepare_file(path)?;
    match open_and_migrate(path, hard_max_bytes) {
        Ok((conn, found)) => {
            let outcome = if created {
                OpenOutcome::Created
            } else {
                OpenOutcome::Opened {
                    from_version: found,
                    to_version: migrations::CURRENT_VERSION,
                }
            };
            Ok((conn, outcome))
        }
        Err(err) if err.is_corruption() => {
            let moved_to = move_aside(path)?;
            log::warn!(
                "history: {} is damaged ({err}); moved to {} and starting fresh",
                path.display(),
                moved_to.display()
            );
            prepare_file(path)?;
            let (conn, _) = open_and_migrate(path, hard_max_bytes)?;
            Ok((
                conn,
                OpenOutcome::RecoveredFromCorruption {
                    moved_to,
                    error: err.to_string(),
                },
            ))
        }
        Err(err) => Err(err),
    }
}

/// Renames the database and its companions to `<name>.corrupt-<UTC stamp>[-n]`.
fn move_aside(path: &Path) -> Result<PathBuf, HistoryError> {
    let stamp = file_stamp(now_ms());
    let mut target = PathBuf::from(format!("{}.corrupt-{stamp}", path.display()));
    let mut n = 1;
    while target.exists() {
        target = PathBuf::from(format!("{}.corrupt-{stamp}-{n}", path.display()));
        n += 1;
    }
    fs::rename(path, &target).map_err(HistoryError::io(format!(
        "moving damaged {} aside",
        path.display()
    )))?;
    for (from, suffix) in companions(path).zip(COMPANION_SUFFIXES) {
        if from.exists() {
            let to = PathBuf::from(format!("{}{suffix}", target.display()));
            fs::rename(&from, &to).map_err(HistoryError::io(format!(
                "moving damaged {} aside",
                from.display()
            )))?;
        }
    }
    Ok(target)
}
