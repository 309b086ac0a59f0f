//! History records, queries, aggregates, hide filters and exports: thin wrappers of
//! [`embargo_history`] with FFI-friendly types (times are `i64` milliseconds since the Unix
//! epoch, UTC; addresses are text).

use crate::records::{Certainty, Protocol, Verdict};
use crate::EmbargoError;

/// Most rows one page may hold (the store's own limit).
pub const MAX_PAGE: u32 = embargo_history::MAX_PAGE as u32;

/// Where the next page starts (from [`HistoryPage::next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct HistoryCursor {
    /// `last_seen_ms` of the last row shown.
    pub last_seen_ms: i64,
    /// `id` of the last row shown.
    pub id: i64,
}

/// Filters for [`crate::Embargo::history`] and exports. Every filter is optional.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryQuery {
    /// Rows last seen at or after this time.
    #[uniffi(default = None)]
    pub since_ms: Option<i64>,
    /// Rows last seen before this time.
    #[uniffi(default = None)]
    pub until_ms: Option<i64>,
    /// Exactly this app.
    #[uniffi(default = None)]
    pub app: Option<String>,
    /// Names starting with this (case-insensitive).
    #[uniffi(default = None)]
    pub name_prefix: Option<String>,
    /// Names containing this (case-insensitive).
    #[uniffi(default = None)]
    pub name_contains: Option<String>,
    /// Exactly this owner.
    #[uniffi(default = None)]
    pub owner: Option<String>,
    /// Exactly this country code.
    #[uniffi(default = None)]
    pub country: Option<String>,
    /// Only allowed or only blocked.
    #[uniffi(default = None)]
    pub verdict: Option<Verdict>,
    /// Also show rows the user hid.
    #[uniffi(default = false)]
    pub include_hidden: bool,
    /// Page size, 1 to [`MAX_PAGE`].
    #[uniffi(default = 100)]
    pub limit: u32,
    /// Continue after this row (the previous page's `next`).
    #[uniffi(default = None)]
    pub after: Option<HistoryCursor>,
}

impl Default for HistoryQuery {
    /// The newest 100 rows of everything not hidden (the same defaults the bindings get).
    fn default() -> Self {
        HistoryQuery {
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

impl HistoryQuery {
    pub(crate) fn to_core(&self) -> Result<embargo_history::Query, EmbargoError> {
        if self.limit == 0 || self.limit > MAX_PAGE {
            return Err(EmbargoError::InvalidInput(format!(
                "page size {} is not between 1 and {MAX_PAGE}",
                self.limit
            )));
        }
        Ok(embargo_history::Query {
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            app: self.app.clone(),
            name_prefix: self.name_prefix.clone(),
            name_contains: self.name_contains.clone(),
            owner: self.owner.clone(),
            country: self.country.clone(),
            verdict: self.verdict,
            include_hidden: self.include_hidden,
            limit: self.limit as usize,
            after: self.after.map(|c| embargo_history::Cursor {
                last_seen_ms: c.last_seen_ms,
                id: c.id,
            }),
        })
    }
}

/// One history row: an event, or several alike (same app, name, verdict within a minute).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryRecord {
    /// Row id.
    pub id: i64,
    /// First event of the row.
    pub first_seen_ms: i64,
    /// Latest event of the row.
    pub last_seen_ms: i64,
    /// Events in the row (at least 1).
    pub count: u64,
    /// The app, if known.
    pub app: Option<String>,
    /// Host name, if known.
    pub name: Option<String>,
    /// Destination address, if any.
    pub addr: Option<String>,
    /// Destination port (0 when not applicable).
    pub port: u16,
    /// Transport, or DNS.
    pub protocol: Protocol,
    /// Allowed or blocked.
    pub verdict: Verdict,
    /// The rule that decided, as written.
    pub rule: Option<String>,
    /// Its list.
    pub list: Option<String>,
    /// Its line.
    pub line: Option<u32>,
    /// Who owns the endpoint.
    pub owner: Option<String>,
    /// Who said so.
    pub owner_source: Option<String>,
    /// Where the endpoint is.
    pub country: Option<String>,
    /// Who said so.
    pub country_source: Option<String>,
    /// How sure the attribution is.
    pub certainty: Certainty,
    /// The category the deciding rule's list gives it (e.g. Disconnect's "Advertising").
    pub category: Option<String>,
}

impl From<embargo_history::Record> for HistoryRecord {
    fn from(r: embargo_history::Record) -> Self {
        HistoryRecord {
            id: r.id,
            first_seen_ms: r.first_seen_ms,
            last_seen_ms: r.last_seen_ms,
            count: r.count,
            app: r.app,
            name: r.name,
            addr: r.addr.map(|a| a.to_string()),
            port: r.port,
            protocol: r.protocol,
            verdict: r.verdict,
            rule: r.rule,
            list: r.list,
            line: r.line,
            owner: r.owner,
            owner_source: r.owner_source,
            country: r.country,
            country_source: r.country_source,
            certainty: r.certainty,
            category: r.category,
        }
    }
}

/// One page of rows, newest first.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryPage {
    /// The rows.
    pub records: Vec<HistoryRecord>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next: Option<HistoryCursor>,
}

/// A dimension to count by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
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

/// What to count (per day, app, owner, country). `group_by` empty gives one total row.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AggregateQuery {
    /// From the UTC day containing this time.
    #[uniffi(default = None)]
    pub since_ms: Option<i64>,
    /// Up to the UTC day containing this time.
    #[uniffi(default = None)]
    pub until_ms: Option<i64>,
    /// Only this app.
    #[uniffi(default = None)]
    pub app: Option<String>,
    /// Only this owner.
    #[uniffi(default = None)]
    pub owner: Option<String>,
    /// Only this country.
    #[uniffi(default = None)]
    pub country: Option<String>,
    /// Group by these, in this order.
    #[uniffi(default = [])]
    pub group_by: Vec<Dimension>,
    /// Also count apps the user hid.
    #[uniffi(default = false)]
    pub include_hidden: bool,
}

impl AggregateQuery {
    pub(crate) fn to_core(&self) -> embargo_history::AggregateQuery {
        embargo_history::AggregateQuery {
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            app: self.app.clone(),
            owner: self.owner.clone(),
            country: self.country.clone(),
            group_by: self
                .group_by
                .iter()
                .map(|d| match d {
                    Dimension::Day => embargo_history::Dimension::Day,
                    Dimension::App => embargo_history::Dimension::App,
                    Dimension::Owner => embargo_history::Dimension::Owner,
                    Dimension::Country => embargo_history::Dimension::Country,
                })
                .collect(),
            include_hidden: self.include_hidden,
        }
    }
}

/// One group of counts. A dimension not grouped by is `None`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
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

impl From<embargo_history::AggregateRow> for AggregateRow {
    fn from(r: embargo_history::AggregateRow) -> Self {
        AggregateRow {
            day: r.day,
            date: r.date,
            app: r.app,
            owner: r.owner,
            country: r.country,
            blocked: r.blocked,
            allowed: r.allowed,
        }
    }
}

/// Something hidden from the history list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum HiddenEntry {
    /// Every row of this app.
    App {
        /// The app id.
        app: String,
    },
    /// Every row of exactly this name.
    Name {
        /// The host name.
        name: String,
    },
}

impl HiddenEntry {
    pub(crate) fn to_core(&self) -> embargo_history::Hidden {
        match self {
            HiddenEntry::App { app } => embargo_history::Hidden::App(app.clone()),
            HiddenEntry::Name { name } => embargo_history::Hidden::Name(name.clone()),
        }
    }

    pub(crate) fn from_core(h: embargo_history::Hidden) -> Self {
        match h {
            embargo_history::Hidden::App(app) => HiddenEntry::App { app },
            embargo_history::Hidden::Name(name) => HiddenEntry::Name { name },
        }
    }
}

/// Export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ExportFormat {
    /// CSV with a header line.
    Csv,
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Ndjson,
}

impl ExportFormat {
    pub(crate) fn to_core(self) -> embargo_history::Format {
        match self {
            ExportFormat::Csv => embargo_history::Format::Csv,
            ExportFormat::Json => embargo_history::Format::Json,
            ExportFormat::Ndjson => embargo_history::Format::Ndjson,
        }
    }
}

/// Figures for a storage screen.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryStats {
    /// Rows stored.
    pub rows: u64,
    /// Events those rows stand for.
    pub events: u64,
    /// Events dropped because the writer could not keep up.
    pub dropped: u64,
    /// Bytes of data on disk.
    pub live_bytes: u64,
    /// Oldest row's time.
    pub oldest_ms: Option<i64>,
    /// Newest row's time.
    pub newest_ms: Option<i64>,
    /// `None` when writing works, else why it does not (e.g. storage full).
    pub write_problem: Option<String>,
}

impl From<embargo_history::StorageStats> for HistoryStats {
    fn from(s: embargo_history::StorageStats) -> Self {
        HistoryStats {
            rows: s.rows,
            events: s.events,
            dropped: s.dropped,
            live_bytes: s.live_bytes,
            oldest_ms: s.oldest_ms,
            newest_ms: s.newest_ms,
            write_problem: match s.health {
                embargo_history::Health::Healthy => None,
                embargo_history::Health::Failing { fault, .. } => Some(fault.message),
            },
        }
    }
}
