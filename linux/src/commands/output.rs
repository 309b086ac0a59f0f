//! Terminal output and arguments shared by the management commands: aligned tables, colour
//! only when stdout is a terminal (and `NO_COLOR` is unset), JSON for scripts; the common
//! flags, times and app ids as typed.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use embargo_app::store::{Store, DEFAULT_STATE_DIR};

/// Flags every management command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Where Embargo keeps its state (history, app settings, lists, control socket).
    #[arg(long, env = "EMBARGO_STATE_DIR", default_value = DEFAULT_STATE_DIR, global = true)]
    pub state_dir: std::path::PathBuf,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Common {
    /// The state directory these flags name.
    pub fn state(&self) -> Store {
        Store::new(&self.state_dir)
    }
}

/// Whether to colour stdout: a terminal, and the user did not ask for no colour
/// (<https://no-color.org>).
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A cell's emphasis; rendered as ANSI colour on a terminal, plain text elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    /// Something blocked.
    Bad,
    /// Something allowed.
    Good,
    /// Secondary information.
    Dim,
}

/// A table printed with columns padded to their widest cell.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<(String, Tone)>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: Vec<&'static str>) -> Self {
        Table {
            header,
            rows: Vec::new(),
        }
    }

    /// Appends a row (one cell per column).
    pub fn row(&mut self, cells: Vec<(String, Tone)>) {
        self.rows.push(cells);
    }

    /// Renders the table; the last column is not padded (no trailing blanks).
    pub fn render(&self, colour: bool) -> String {
        let cols = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, (cell, _)) in row.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: Vec<(String, Tone)>, bold: bool| {
            for (i, (cell, tone)) in cells.iter().enumerate().take(cols) {
                let pad = if i + 1 == cols {
                    0
                } else {
                    widths[i] - cell.chars().count() + 2
                };
                let (start, end) = match (colour, bold, tone) {
                    (false, _, _) => ("", ""),
                    (true, true, _) => ("\x1b[1m", "\x1b[0m"),
                    (true, false, Tone::Bad) => ("\x1b[31m", "\x1b[0m"),
                    (true, false, Tone::Good) => ("\x1b[32m", "\x1b[0m"),
                    (true, false, Tone::Dim) => ("\x1b[2m", "\x1b[0m"),
                    (true, false, Tone::Plain) => ("", ""),
                };
                out.push_str(start);
                out.push_str(cell);
                out.push_str(end);
                out.push_str(&" ".repeat(pad));
            }
            out.push('\n');
        };
        line(
            self.header
                .iter()
                .map(|h| (h.to_string(), Tone::Plain))
                .collect(),
            true,
        );
        for row in &self.rows {
            line(row.clone(), false);
        }
        out
    }

    /// Prints the table to stdout.
    pub fn print(&self) {
        print!("{}", self.render(colour()));
    }
}

/// Shorthand for a plain cell.
pub fn cell(text: impl Into<String>) -> (String, Tone) {
    (text.into(), Tone::Plain)
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// `2026-11-29 11:20:03` (UTC) for milliseconds since the epoch.
pub fn time(ms: i64) -> String {
    let date = embargo_history::date_string(embargo_history::day_of(ms));
    let secs = ms.rem_euclid(embargo_history::DAY_MS) / 1000;
    format!(
        "{date} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Parses a duration like `90s`, `15m`, `2h`, `1d` (a bare number is minutes).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?}: expected a number with s, m, h or d (e.g. 15m)"))?;
    let secs = match unit {
        "s" => n,
        "" | "m" | "min" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use s, m, h or d)"
            ))
        }
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// [`parse_time`] for an optional `--since`/`--until` argument, as a command-line error.
pub fn parse_time_arg(text: Option<&str>, now_ms: i64) -> anyhow::Result<Option<i64>> {
    text.map(|t| parse_time(t, now_ms).map_err(anyhow::Error::msg))
        .transpose()
}

/// Parses a time for `--since`/`--until`: milliseconds since the epoch, `YYYY-MM-DD`,
/// `YYYY-MM-DDTHH:MM[:SS]` (UTC), or an age such as `2h` (that long ago).
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(d) = parse_duration(text) {
        if text.ends_with(|c: char| c.is_ascii_alphabetic()) {
            return Ok(now_ms - d.as_millis() as i64);
        }
    }
    if text.len() > 10 && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|e| format!("{text:?}: {e}"));
    }
    let bad = || format!("{text:?}: expected YYYY-MM-DD[THH:MM[:SS]], an age like 2h, or epoch ms");
    let (date, clock) = match text.split_once(['T', ' ']) {
        Some((d, c)) => (d, Some(c)),
        None => (text, None),
    };
    let mut parts = date.split('-').map(|p| p.parse::<i64>());
    let (Some(Ok(y)), Some(Ok(m)), Some(Ok(d)), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(clock) = clock {
        let nums: Vec<i64> = clock
            .trim_end_matches('Z')
            .split(':')
            .map(|p| p.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        match nums.as_slice() {
            [h, mi] => secs += h * 3600 + mi * 60,
            [h, mi, s] => secs += h * 3600 + mi * 60 + s,
            _ => return Err(bad()),
        }
    }
    Ok(secs * 1000)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The app id for what the user typed: an existing path is made canonical (as
/// `/proc/PID/exe` shows it), a bare command name is looked up in PATH, anything else
/// (`uid:N`, a path that no longer exists) is taken as it is.
pub fn resolve_app(text: &str) -> String {
    if text.starts_with("uid:") {
        return text.to_owned();
    }
    let path = Path::new(text);
    let candidate: Option<PathBuf> = if text.contains('/') {
        Some(path.to_path_buf())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(text))
                .find(|p| p.is_file())
        })
    };
    candidate
        .and_then(|p| std::fs::canonicalize(p).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_without_trailing_blanks() {
        let mut t = Table::new(vec!["APP", "BLOCKED"]);
        t.row(vec![cell("/usr/bin/curl"), cell("3")]);
        t.row(vec![cell("x"), ("12".into(), Tone::Bad)]);
        assert_eq!(
            t.render(false),
            "APP            BLOCKED\n/usr/bin/curl  3\nx              12\n"
        );
        assert!(t.render(true).contains("\x1b[31m12\x1b[0m"));
    }

    #[test]
    fn times_round_trip() {
        let ms = parse_time("2026-11-29T11:20:03", 0).unwrap();
        assert_eq!(time(ms), "2026-11-29 11:20:03");
        assert_eq!(parse_time("1970-01-02", 0).unwrap(), 86_400_000);
        assert_eq!(
            parse_time("2h", 10_000_000).unwrap(),
            10_000_000 - 7_200_000
        );
        assert!(parse_time("yesterday", 0).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("30").unwrap().as_secs(), 1800);
        assert!(parse_duration("5w").is_err());
    }

    #[test]
    fn resolves_command_names_and_keeps_uids() {
        assert_eq!(resolve_app("uid:1000"), "uid:1000");
        let sh = resolve_app("sh");
        assert!(sh.starts_with('/'), "{sh}");
        assert_eq!(resolve_app("/no/such/program"), "/no/such/program");
    }
}
