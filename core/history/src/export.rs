//! Export of a query's rows to CSV, JSON or newline-delimited JSON, streamed to any writer.
//!
//! The export walks the query page by page through the same code as `History::query`, so it
//! holds one page in memory at a time and its rows are exactly the query's rows.

use std::io::Write;

use crate::error::HistoryError;
use crate::model::Record;

/// Export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 4180 CSV with a header line; times in milliseconds since the epoch.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line (streams well into `jq` and log tools).
    Ndjson,
}

/// CSV header, in [`Record`]'s field order.
pub const CSV_HEADER: [&str; 19] = [
    "id",
    "first_seen_ms",
    "last_seen_ms",
    "count",
    "app",
    "name",
    "addr",
    "port",
    "protocol",
    "decision",
    "rule",
    "list",
    "line",
    "owner",
    "owner_source",
    "country",
    "country_source",
    "certainty",
    "category",
];

/// Writes records in one format; `begin`, `row`..., `end`.
pub(crate) struct Exporter<W: Write> {
    format: Format,
    out: Option<csv::Writer<W>>,
    raw: Option<W>,
    rows: u64,
}

fn io_err(e: impl std::fmt::Display) -> HistoryError {
    HistoryError::Export {
        context: e.to_string(),
    }
}

impl<W: Write> Exporter<W> {
    pub(crate) fn begin(format: Format, mut w: W) -> Result<Self, HistoryError> {
        match format {
            Format::Csv => {
                let mut out = csv::WriterBuilder::new().has_headers(false).from_writer(w);
                out.write_record(CSV_HEADER).map_err(io_err)?;
                Ok(Exporter {
                    format,
                    out: Some(out),
                    raw: None,
                    rows: 0,
                })
            }
            Format::Json | Format::Ndjson => {
                if format == Format::Json {
                    w.write_all(b"[").map_err(io_err)?;
                }
                Ok(Exporter {
                    format,
                    out: None,
                    raw: Some(w),
                    rows: 0,
                })
            }
        }
    }

    pub(crate) fn row(&mut self, r: &Record) -> Result<(), HistoryError> {
        match (&mut self.out, &mut self.raw) {
            (Some(out), _) => {
                let opt = |v: &Option<String>| v.clone().unwrap_or_default();
                out.write_record([
                    r.id.to_string(),
                    r.first_seen_ms.to_string(),
                    r.last_seen_ms.to_string(),
                    r.count.to_string(),
                    opt(&r.app),
                    opt(&r.name),
                    r.addr.map(|a| a.to_string()).unwrap_or_default(),
                    r.port.to_string(),
                    r.protocol.to_string(),
                    r.verdict.to_string(),
                    opt(&r.rule),
                    opt(&r.list),
                    r.line.map(|l| l.to_string()).unwrap_or_default(),
                    opt(&r.owner),
                    opt(&r.owner_source),
                    opt(&r.country),
                    opt(&r.country_source),
                    r.certainty.to_string(),
                    opt(&r.category),
                ])
                .map_err(io_err)?;
            }
            (None, Some(w)) => {
                if self.format == Format::Json {
                    w.write_all(if self.rows == 0 { b"\n" } else { b",\n" })
                        .map_err(io_err)?;
                }
                serde_json::to_writer(&mut *w, r).map_err(io_err)?;
                if self.format == Format::Ndjson {
                    w.write_all(b"\n").map_err(io_err)?;
                }
            }
            (None, None) => {}
        }
        self.rows += 1;
        Ok(())
    }

    pub(crate) fn end(self) -> Result<u64, HistoryError> {
        if let Some(mut out) = self.out {
            out.flush().map_err(io_err)?;
        }
        if let Some(mut w) = self.raw {
            if self.format == Format::Json {
                w.write_all(b"\n]\n").map_err(io_err)?;
            }
            w.flush().map_err(io_err)?;
        }
        Ok(self.rows)
    }
}
