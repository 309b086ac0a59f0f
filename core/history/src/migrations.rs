//! Numbered schema migrations, applied in order inside one transaction each.
//!
//! `PRAGMA user_version` holds the number of migrations applied. A migration is never edited
//! once released: a change to the schema is a new entry at the end of [`MIGRATIONS`], and
//! `tests::upgrades_from_v1_keep_data` builds each older version by hand and opens it.
//!
//! Version history:
//! 1. `records` and its indexes.
//! 2. `hidden` ("hide this name/app" filters), `counters` (events dropped when the queue was
//!    full), `daily` (counts per day, app, owner and country) and `daily_by` (counts per day
//!    and one of app, owner or country), both maintained on insert so that aggregates over
//!    30 days of 10 million rows read thousands of rows, not millions; both are back-filled
//!    from the existing `records`.
//! 3. `records_by_owner` holds only rows with an owner: most allowed DNS questions have none,
//!    and their entries (all under NULL, never asked for) were a quarter of the b-tree writes
//!    of every such row.
//! 4. `records.category`: the category the deciding rule's list gives it (Disconnect's
//!    `Advertising`); NULL in older rows.

use rusqlite::Connection;

use crate::error::HistoryError;

/// One schema step. `sql` runs as a batch inside a transaction.
pub struct Migration {
    /// Version the database has after this step.
    pub version: i64,
    /// What this step adds, for logs.
    pub summary: &'static str,
    /// The DDL and data changes.
    pub sql: &'static str,
}

/// Every migration, oldest first. `MIGRATIONS[i].version == i + 1`.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        summary: "records and their indexes",
        sql: V1,
    },
    Migration {
        version: 2,
        summary: "hidden filters, counters, daily aggregates",
        sql: V2,
    },
    Migration {
        version: 3,
        summary: "owner index without owner-less rows",
        sql: V3,
    },
    Migration {
        version: 4,
        summary: "category of the deciding rule",
        sql: V4,
    },
];

/// Newest schema version this build writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Times are milliseconds since the Unix epoch; enums are the integer codes of `model.rs`.
/// Indexes (rowid `id` is implicitly the last column of each, so `ORDER BY last_seen DESC,
/// id DESC` reads an index in order without sorting):
/// - `records_by_time (last_seen)`: newest first with no filter, time ranges, retention by age.
/// - `records_by_app (app, decision, last_seen)`: the main screen, "newest blocks of TikTok".
/// - `records_by_owner (owner, last_seen)`: "everything that went to ByteDance" (rows with an
///   owner only, since version 3).
///
/// Every index costs write amplification: a commit rewrites each index page it touched, and an
/// index on a high-cardinality key (name: tens of thousands of values) is touched at a random
/// page by nearly every event, a 4 KiB page write per event (docs/decisions.md). So name has no
/// index: name searches read the time index newest first and stop after a page of matches. App
/// (hundreds of values) and owner (hundreds) touch few pages per batch. Country has no index
/// either: a handful of countries cover most rows, so a country filter is not selective.
const V1: &str = "
CREATE TABLE records (
    id INTEGER PRIMARY KEY,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    count INTEGER NOT NULL DEFAULT 1,
    app TEXT,
    name TEXT,
    addr TEXT,
    port INTEGER NOT NULL,
    protocol INTEGER NOT NULL,
    decision INTEGER NOT NULL,
    rule TEXT,
    list TEXT,
    line INTEGER,
    owner TEXT,
    owner_source TEXT,
    country TEXT,
    country_source TEXT,
    certainty INTEGER NOT NULL
);
CREATE INDEX records_by_time ON records (last_seen);
CREATE INDEX records_by_app ON records (app, decision, last_seen);
CREATE INDEX records_by_owner ON records (owner, last_seen);
";

/// `daily` uses '' rather than NULL for a missing app/owner/country because NULLs are never
/// equal in a primary key, which would defeat the upsert. `daily` alone would do for every
/// aggregate, but its size is days x apps x owners x countries (1.8 million rows for 30 days
/// of 200 apps each reaching 300 owners) and grouping it by owner means sorting all of it;
/// `daily_by` (`dim` 0 = app, 1 = owner, 2 = country) holds days x values rows, already in
/// (day, value) order, for the common one-dimension charts.
const V2: &str = "
CREATE TABLE hidden (
    kind INTEGER NOT NULL,
    value TEXT NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
) WITHOUT ROWID;
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE daily (
    day INTEGER NOT NULL,
    app TEXT NOT NULL,
    owner TEXT NOT NULL,
    country TEXT NOT NULL,
    blocked INTEGER NOT NULL DEFAULT 0,
    allowed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, app, owner, country)
) WITHOUT ROWID;
CREATE TABLE daily_by (
    dim INTEGER NOT NULL,
    day INTEGER NOT NULL,
    value TEXT NOT NULL,
    blocked INTEGER NOT NULL DEFAULT 0,
    allowed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (dim, day, value)
) WITHOUT ROWID;
INSERT INTO daily (day, app, owner, country, blocked, allowed)
    SELECT last_seen / 86400000, ifnull(app, ''), ifnull(owner, ''), ifnull(country, ''),
           sum(CASE WHEN decision = 1 THEN count ELSE 0 END),
           sum(CASE WHEN decision = 0 THEN count ELSE 0 END)
    FROM records GROUP BY 1, 2, 3, 4;
INSERT INTO daily_by (dim, day, value, blocked, allowed)
    SELECT 0, day, app, sum(blocked), sum(allowed) FROM daily GROUP BY day, app;
INSERT INTO daily_by (dim, day, value, blocked, allowed)
    SELECT 1, day, owner, sum(blocked), sum(allowed) FROM daily GROUP BY day, owner;
INSERT INTO daily_by (dim, day, value, blocked, allowed)
    SELECT 2, day, country, sum(blocked), sum(allowed) FROM daily GROUP BY day, country;
";

/// A partial index: an owner filter (`owner = ?`) implies `owner IS NOT NULL`, so SQLite still
/// uses it for "everything that went to ByteDance", while a row without an owner (most allowed
/// DNS questions: no list names the owner of an ordinary name) costs three b-tree inserts
/// instead of four. Measured with `tests/bench/dns-forwarded.sh`, where every query is such a
/// row (see the commit that added it).
/// A nullable column added in place (no table rewrite); no index: a category filter is rare
/// and its values few.
const V4: &str = "
ALTER TABLE records ADD COLUMN category TEXT;
";

const V3: &str = "
DROP INDEX records_by_owner;
CREATE INDEX records_by_owner ON records (owner, last_seen) WHERE owner IS NOT NULL;
";

/// Brings `conn` to [`CURRENT_VERSION`]. Returns the version found before.
pub fn migrate(
    conn: &mut Connection,
    path_for_errors: &std::path::Path,
) -> Result<i64, HistoryError> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(HistoryError::sqlite("reading the schema version"))?;
    if found > CURRENT_VERSION {
        return Err(HistoryError::TooNew {
            path: path_for_errors.to_path_buf(),
            found,
            supported: CURRENT_VERSION,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        let context = format!(
            "migrating to version {} ({})",
            migration.version, migration.summary
        );
        let tx = conn
            .transaction()
            .map_err(HistoryError::sqlite(context.clone()))?;
        tx.execute_batch(migration.sql)
            .map_err(HistoryError::sqlite(context.clone()))?;
        tx.pragma_update(None, "user_version", migration.version)
            .map_err(HistoryError::sqlite(context.clone()))?;
        tx.commit().map_err(HistoryError::sqlite(context))?;
        log::info!("history: schema now at version {}", migration.version);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_numbered_in_order() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1);
        }
    }

    #[test]
    fn newer_database_is_refused_with_a_clear_error() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", CURRENT_VERSION + 1)
            .unwrap();
        let err = migrate(&mut conn, std::path::Path::new("x.db")).unwrap_err();
        assert!(err.to_string().contains("supports up to"), "{err}");
    }
}
