//! Counts per app, owner, country and day, read from the `daily` table.
//!
//! `daily` and `daily_by` are maintained on insert (one upsert per distinct key of a batch),
//! so an aggregate over 30 days reads at most days x combinations rows, however many million
//! events that is. Grouping or filtering by one of app, owner or country reads `daily_by`
//! (days x values rows, in (day, value) order); combinations read `daily`. Its granularity is one UTC day, and it counts events, not rows.
//! It has no name column (that would make it as large as `records`), so hidden *names* still
//! count in aggregates; hidden apps do not. Age retention trims it by whole days; the size cap
//! does not (it is small), so totals outlive rows deleted to save space.

use rusqlite::types::Value;
use rusqlite::Connection;

use crate::error::HistoryError;
use crate::model::Millis;
use crate::time::{date_string, DAY_MS};

/// A dimension to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// UTC day.
    Day,
    /// App.
    App,
    /// Network owner.
    Owner,
    /// Country.
    Country,
}

/// What to count. `group_by` empty gives one grand-total row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AggregateQuery {
    /// From the UTC day containing this time.
    pub since_ms: Option<Millis>,
    /// Up to and including the UTC day containing this time minus one millisecond.
    pub until_ms: Option<Millis>,
    /// Only this app.
    pub app: Option<String>,
    /// Only this owner.
    pub owner: Option<String>,
    /// Only this country.
    pub country: Option<String>,
    /// Group by these, in this order.
    pub group_by: Vec<Dimension>,
    /// Also count apps the user hid.
    pub include_hidden: bool,
}

/// One group. A dimension not grouped by is `None`; a grouped one is `None` when unknown
/// (e.g. no owner known).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AggregateRow {
    /// Days since 1970-01-01 UTC.
    pub day: Option<i64>,
    /// `YYYY-MM-DD` of `day`.
    pub date: Option<String>,
    /// App.
    pub app: Option<String>,
    /// Owner.
    pub owner: Option<String>,
    /// Country.
    pub country: Option<String>,
    /// Blocked events.
    pub blocked: u64,
    /// Allowed events.
    pub allowed: u64,
}

fn column(d: Dimension) -> &'static str {
    match d {
        Dimension::Day => "day",
        Dimension::App => "app",
        Dimension::Owner => "owner",
        Dimension::Country => "country",
    }
}

/// Code of a dimension in `daily_by.dim`.
fn dim_code(d: Dimension) -> i64 {
    match d {
        Dimension::App => 0,
        Dimension::Owner => 1,
        Dimension::Country => 2,
        // Never asked: `single_dimension` does not return Day.
        Dimension::Day => -1,
    }
}

/// The one non-day dimension a query is about, if it can be answered from `daily_by`: it
/// groups or filters by at most one of app/owner/country, and hidden apps need not be
/// excluded (there are none, the caller includes them, or the dimension is app itself).
fn single_dimension(
    conn: &Connection,
    q: &AggregateQuery,
    dims: &[Dimension],
) -> Result<Option<Dimension>, HistoryError> {
    let mut used: Vec<Dimension> = dims
        .iter()
        .copied()
        .filter(|d| *d != Dimension::Day)
        .collect();
    for (filter, d) in [
        (&q.app, Dimension::App),
        (&q.owner, Dimension::Owner),
        (&q.country, Dimension::Country),
    ] {
        if filter.is_some() && !used.contains(&d) {
            used.push(d);
        }
    }
    let dim = match used.as_slice() {
        [] => Dimension::App,
        [one] => *one,
        _ => return Ok(None),
    };
    if q.include_hidden || dim == Dimension::App {
        return Ok(Some(dim));
    }
    let hidden_apps: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM hidden WHERE kind = 0)",
            [],
            |r| r.get(0),
        )
        .map_err(HistoryError::sqlite("reading hide filters"))?;
    Ok((!hidden_apps).then_some(dim))
}

/// Runs an aggregate. Rows come newest day first, then by most events.
pub(crate) fn run(
    conn: &Connection,
    q: &AggregateQuery,
) -> Result<Vec<AggregateRow>, HistoryError> {
    let mut dims: Vec<Dimension> = Vec::new();
    for d in &q.group_by {
        if !dims.contains(d) {
            dims.push(*d);
        }
    }
    let single = single_dimension(conn, q, &dims)?;
    let mut params = Vec::new();
    let mut conds = Vec::new();
    if let Some(since) = q.since_ms {
        params.push(Value::Integer(since.div_euclid(DAY_MS)));
        conds.push(format!("day >= ?{}", params.len()));
    }
    if let Some(until) = q.until_ms {
        params.push(Value::Integer((until - 1).div_euclid(DAY_MS)));
        conds.push(format!("day <= ?{}", params.len()));
    }
    let (table, cols): (&str, Vec<&str>) = match single {
        Some(dim) => {
            params.push(Value::Integer(dim_code(dim)));
            conds.insert(0, format!("dim = ?{}", params.len()));
            for (value, d) in [
                (&q.app, Dimension::App),
                (&q.owner, Dimension::Owner),
                (&q.country, Dimension::Country),
            ] {
                if let Some(v) = value.as_ref().filter(|_| d == dim) {
                    params.push(Value::Text(v.clone()));
                    conds.push(format!("value = ?{}", params.len()));
                }
            }
            if dim == Dimension::App && !q.include_hidden {
                conds.push("value NOT IN (SELECT value FROM hidden WHERE kind = 0)".into());
            }
            let cols = dims
                .iter()
                .map(|d| if *d == Dimension::Day { "day" } else { "value" })
                .collect();
            ("daily_by", cols)
        }
        None => {
            for (value, col) in [
                (&q.app, "app"),
                (&q.owner, "owner"),
                (&q.country, "country"),
            ] {
                if let Some(v) = value {
                    params.push(Value::Text(v.clone()));
                    conds.push(format!("{col} = ?{}", params.len()));
                }
            }
            if !q.include_hidden {
                conds.push("app NOT IN (SELECT value FROM hidden WHERE kind = 0)".into());
            }
            ("daily", dims.iter().map(|d| column(*d)).collect())
        }
    };
    let select_cols = if cols.is_empty() {
        String::new()
    } else {
        format!("{}, ", cols.join(", "))
    };
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    let group = if cols.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", cols.join(", "))
    };
    let day_first = if dims.contains(&Dimension::Day) {
        "day DESC, "
    } else {
        ""
    };
    let sql = format!(
        "SELECT {select_cols}sum(blocked), sum(allowed) FROM {table}{filter}{group} \
         ORDER BY {day_first}sum(blocked) + sum(allowed) DESC"
    );
    let mut stmt = conn
        .prepare_cached(&sql)
        .map_err(HistoryError::sqlite("preparing an aggregate"))?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.iter()))
        .map_err(HistoryError::sqlite("running an aggregate"))?;
    let mut out = Vec::new();
    let err = HistoryError::sqlite;
    while let Some(row) = rows.next().map_err(err("reading an aggregate"))? {
        let mut r = AggregateRow {
            day: None,
            date: None,
            app: None,
            owner: None,
            country: None,
            blocked: 0,
            allowed: 0,
        };
        for (i, d) in dims.iter().enumerate() {
            match d {
                Dimension::Day => {
                    let day: i64 = row.get(i).map_err(err("reading an aggregate"))?;
                    r.day = Some(day);
                    r.date = Some(date_string(day));
                }
                other => {
                    let text: String = row.get(i).map_err(err("reading an aggregate"))?;
                    let value = (!text.is_empty()).then_some(text);
                    match other {
                        Dimension::App => r.app = value,
                        Dimension::Owner => r.owner = value,
                        _ => r.country = value,
                    }
                }
            }
        }
        let blocked: Option<i64> = row.get(dims.len()).map_err(err("reading an aggregate"))?;
        let allowed: Option<i64> = row
            .get(dims.len() + 1)
            .map_err(err("reading an aggregate"))?;
        r.blocked = blocked.unwrap_or(0).max(0) as u64;
        r.allowed = allowed.unwrap_or(0).max(0) as u64;
        if cols.is_empty() && r.blocked + r.allowed == 0 {
            continue;
        }
        out.push(r);
    }
    Ok(out)
}
