//! Record queries: filters, newest first, keyset pagination.
//!
//! Pages are cut by a cursor `(last_seen, id)` rather than OFFSET: OFFSET re-reads and skips
//! every earlier row, so page 1,000 would cost 1,000 pages; a cursor seeks straight to the
//! next row through the index. A row that coalesces a new event while the user pages moves to
//! the front (its `last_seen` changes); it is then shown again on a refresh, not skipped.

use rusqlite::types::Value;
use rusqlite::{Connection, Row};

use crate::error::HistoryError;
use crate::model::{Certainty, Coded, Millis, Protocol, Record, Verdict};

/// Most rows a page may hold; bounds memory of one call.
pub const MAX_PAGE: usize = 10_000;

/// Where the next page starts: the last row of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// `last_seen_ms` of the last row shown.
    pub last_seen_ms: Millis,
    /// `id` of the last row shown.
    pub id: i64,
}

/// Filters for [`crate::History::query`] and exports. `Query::default()` is the newest 100
/// rows of everything not hidden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Rows last seen at or after this time.
    pub since_ms: Option<Millis>,
    /// Rows last seen before this time.
    pub until_ms: Option<Millis>,
    /// Exactly this app.
    pub app: Option<String>,
    /// Names starting with this (case-insensitive: names are stored lower case).
    pub name_prefix: Option<String>,
    /// Names containing this (case-insensitive).
    pub name_contains: Option<String>,
    /// Exactly this owner.
    pub owner: Option<String>,
    /// Exactly this country code (case-insensitive).
    pub country: Option<String>,
    /// Only allowed or only blocked.
    pub verdict: Option<Verdict>,
    /// Also show rows whose app or name the user hid.
    pub include_hidden: bool,
    /// Page size (1 to [`MAX_PAGE`]).
    pub limit: usize,
    /// Continue after this row (from the previous [`Page::next`]).
    pub after: Option<Cursor>,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            since_ms: None,
            until_ms: None,
            app: None,
            name_prefix: None,
            name_contains: None,
            owner: None,
            country: None,
            verdict: None,
            include_hidden: false,
            limit: 100,
            after: None,
        }
    }
}

/// One page of rows, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The rows.
    pub records: Vec<Record>,
    /// Cursor for the next page; `None` when no row follows this page.
    pub next: Option<Cursor>,
}

pub(crate) const COLUMNS: &str = "id, first_seen, last_seen, count, app, name, addr, port, \
    protocol, decision, rule, list, line, owner, owner_source, country, country_source, certainty, \
    category";

/// Built SQL and its parameters.
pub(crate) struct Sql {
    pub text: String,
    pub params: Vec<Value>,
}

/// Builds the SQL of a query. With an app and no decision the query is the merge of two
/// index-ordered halves (allowed and blocked), each read through `records_by_app` in order:
/// a single `decision IN (0, 1)` would make SQLite sort all of the app's rows instead.
pub(crate) fn build(q: &Query, fetch: usize) -> Sql {
    let limit = fetch as i64;
    let mut params = Vec::new();
    let mut conds = Vec::new();
    if let Some(since) = q.since_ms {
        params.push(Value::Integer(since));
        conds.push(format!("last_seen >= ?{}", params.len()));
    }
    if let Some(until) = q.until_ms {
        params.push(Value::Integer(until));
        conds.push(format!("last_seen < ?{}", params.len()));
    }
    if let Some(app) = &q.app {
        params.push(Value::Text(app.clone()));
        conds.push(format!("app = ?{}", params.len()));
    }
    if let Some(prefix) = q.name_prefix.as_deref().filter(|p| !p.is_empty()) {
        // A range, not LIKE: LIKE is case-insensitive and cannot use a BINARY index.
        // U+10FFFF sorts after every character a name can continue with.
        let prefix = prefix.to_lowercase();
        params.push(Value::Text(prefix.clone()));
        conds.push(format!("name >= ?{}", params.len()));
        params.push(Value::Text(format!("{prefix}\u{10FFFF}")));
        conds.push(format!("name < ?{}", params.len()));
    }
    if let Some(part) = q.name_contains.as_deref().filter(|p| !p.is_empty()) {
        params.push(Value::Text(part.to_lowercase()));
        conds.push(format!("instr(name, ?{}) > 0", params.len()));
    }
    if let Some(owner) = &q.owner {
        params.push(Value::Text(owner.clone()));
        conds.push(format!("owner = ?{}", params.len()));
    }
    if let Some(country) = &q.country {
        params.push(Value::Text(country.to_uppercase()));
        conds.push(format!("country = ?{}", params.len()));
    }
    if !q.include_hidden {
        conds.push(
            "(app IS NULL OR app NOT IN (SELECT value FROM hidden WHERE kind = 0)) \
             AND (name IS NULL OR name NOT IN (SELECT value FROM hidden WHERE kind = 1))"
                .to_string(),
        );
    }
    if let Some(after) = q.after {
        params.push(Value::Integer(after.last_seen_ms));
        let a = params.len();
        params.push(Value::Integer(after.id));
        conds.push(format!("(last_seen, id) < (?{a}, ?{})", params.len()));
    }
    params.push(Value::Integer(limit));
    let limit_param = params.len();
    let order = format!("ORDER BY last_seen DESC, id DESC LIMIT ?{limit_param}");
    let select = |extra: Option<&str>| {
        let mut all: Vec<&str> = conds.iter().map(String::as_str).collect();
        all.extend(extra);
        let filter = if all.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", all.join(" AND "))
        };
        format!("SELECT {COLUMNS} FROM records{filter} {order}")
    };
    let text = match (q.verdict, &q.app) {
        (Some(d), _) => select(Some(if d == Verdict::Block {
            "decision = 1"
        } else {
            "decision = 0"
        })),
        (None, Some(_)) => format!(
            "SELECT * FROM ({}) UNION ALL SELECT * FROM ({}) {order}",
            select(Some("decision = 0")),
            select(Some("decision = 1"))
        ),
        (None, None) => select(None),
    };
    Sql { text, params }
}

/// Decodes a row selected with [`COLUMNS`].
pub(crate) fn record_from_row(row: &Row<'_>) -> Result<Record, HistoryError> {
    let get = |e: rusqlite::Error| HistoryError::sqlite("reading a history row")(e);
    let id: i64 = row.get(0).map_err(get)?;
    let addr: Option<String> = row.get(6).map_err(get)?;
    let addr = match addr {
        None => None,
        Some(text) => Some(text.parse().map_err(|_| HistoryError::BadRow {
            id,
            problem: format!("address {text:?} is not an IP address"),
        })?),
    };
    let count: i64 = row.get(3).map_err(get)?;
    Ok(Record {
        id,
        first_seen_ms: row.get(1).map_err(get)?,
        last_seen_ms: row.get(2).map_err(get)?,
        count: count.max(0) as u64,
        app: row.get(4).map_err(get)?,
        name: row.get(5).map_err(get)?,
        addr,
        port: row.get(7).map_err(get)?,
        protocol: Protocol::from_code(row.get(8).map_err(get)?)
            .map_err(|c| HistoryError::bad_code(id, c))?,
        verdict: Verdict::from_code(row.get(9).map_err(get)?)
            .map_err(|c| HistoryError::bad_code(id, c))?,
        rule: row.get(10).map_err(get)?,
        list: row.get(11).map_err(get)?,
        line: row.get(12).map_err(get)?,
        owner: row.get(13).map_err(get)?,
        owner_source: row.get(14).map_err(get)?,
        country: row.get(15).map_err(get)?,
        country_source: row.get(16).map_err(get)?,
        certainty: Certainty::from_code(row.get(17).map_err(get)?)
            .map_err(|c| HistoryError::bad_code(id, c))?,
        category: row.get(18).map_err(get)?,
    })
}

/// Runs a query.
pub(crate) fn run(conn: &Connection, q: &Query) -> Result<Page, HistoryError> {
    let page_size = q.limit.clamp(1, MAX_PAGE);
    // One row more than the page tells whether another page exists.
    let sql = build(q, page_size + 1);
    let mut stmt = conn
        .prepare_cached(&sql.text)
        .map_err(HistoryError::sqlite("preparing a history query"))?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(sql.params.iter()))
        .map_err(HistoryError::sqlite("running a history query"))?;
    let mut records = Vec::new();
    while let Some(row) = rows
        .next()
        .map_err(HistoryError::sqlite("reading history rows"))?
    {
        records.push(record_from_row(row)?);
    }
    let more = records.len() > page_size;
    records.truncate(page_size);
    let next = match records.last() {
        Some(last) if more => Some(Cursor {
            last_seen_ms: last.last_seen_ms,
            id: last.id,
        }),
        _ => None,
    };
    Ok(Page { records, next })
}

/// `EXPLAIN QUERY PLAN` lines of a query, for tests and diagnostics.
pub(crate) fn plan(conn: &Connection, q: &Query) -> Result<Vec<String>, HistoryError> {
    let sql = build(q, q.limit.clamp(1, MAX_PAGE));
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", sql.text))
        .map_err(HistoryError::sqlite("explaining a history query"))?;
    let lines = stmt
        .query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
            r.get::<_, String>(3)
        })
        .map_err(HistoryError::sqlite("explaining a history query"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(HistoryError::sqlite("explaining a history query"))?;
    Ok(lines)
}
