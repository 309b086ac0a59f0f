//! The `embargo` command's logger: every `log` record (the shell's and the libraries':
//! history, policy, driver, engine) goes to stderr, one line each.
//!
//! Level: `info` by default (load reports, history recovery, the state directory's notes),
//! `-v` debug, `-vv` trace. `RUST_LOG`, when set, replaces that: a level (`warn`) or
//! comma-separated `target=level` directives (`embargo_history=debug,warn`); the longest
//! matching target prefix wins.

use log::{LevelFilter, Log, Metadata, Record};

struct StderrLogger {
    /// (target prefix, level), longest prefix first; "" is the default.
    directives: Vec<(String, LevelFilter)>,
}

impl StderrLogger {
    fn level_for(&self, target: &str) -> LevelFilter {
        self.directives
            .iter()
            .find(|(prefix, _)| target.starts_with(prefix.as_str()))
            .map_or(LevelFilter::Off, |(_, l)| *l)
    }
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level_for(metadata.target())
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = record.level().as_str().to_ascii_lowercase();
        let line = match record.level() {
            log::Level::Error | log::Level::Warn | log::Level::Info => {
                format!("embargo: {level}: {}\n", record.args())
            }
            _ => format!("embargo: {level} {}: {}\n", record.target(), record.args()),
        };
        // One write per line, so lines of concurrent threads do not interleave.
        use std::io::Write;
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Parses `RUST_LOG`-style directives; `None` when nothing in it is understood.
fn parse_directives(text: &str) -> Option<Vec<(String, LevelFilter)>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((target, level)) => {
                out.push((target.trim().to_owned(), level.trim().parse().ok()?));
            }
            None => match part.parse::<LevelFilter>() {
                Ok(level) => out.push((String::new(), level)),
                // A bare target means "everything from it".
                Err(_) => out.push((part.to_owned(), LevelFilter::Trace)),
            },
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The directives for `-v` x `verbose` and `RUST_LOG` (`rust_log`), see the module docs.
fn directives(verbose: u8, rust_log: Option<&str>) -> Vec<(String, LevelFilter)> {
    let mut d = rust_log.and_then(parse_directives).unwrap_or_else(|| {
        let level = match verbose {
            0 => LevelFilter::Info,
            1 => LevelFilter::Debug,
            _ => LevelFilter::Trace,
        };
        vec![(String::new(), level)]
    });
    if !d.iter().any(|(t, _)| t.is_empty()) {
        d.push((String::new(), LevelFilter::Error));
    }
    d.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
    d
}

/// Installs the logger (once, first thing in `main`).
pub fn init(verbose: u8) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let directives = directives(verbose, rust_log.as_deref());
    let max = directives
        .iter()
        .map(|(_, l)| *l)
        .max()
        .unwrap_or(LevelFilter::Info);
    let logger: &'static StderrLogger = Box::leak(Box::new(StderrLogger { directives }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_and_rust_log_pick_levels() {
        let logger = |v, env| StderrLogger {
            directives: directives(v, env),
        };
        assert_eq!(logger(0, None).level_for("embargo"), LevelFilter::Info);
        assert_eq!(logger(1, None).level_for("x"), LevelFilter::Debug);
        assert_eq!(logger(2, None).level_for("x"), LevelFilter::Trace);
        let l = logger(0, Some("embargo_history=debug,warn"));
        assert_eq!(l.level_for("embargo_history::writer"), LevelFilter::Debug);
        assert_eq!(l.level_for("embargo"), LevelFilter::Warn);
        let l = logger(0, Some("embargo_driver=trace"));
        assert_eq!(l.level_for("embargo_driver::x"), LevelFilter::Trace);
        assert_eq!(l.level_for("embargo"), LevelFilter::Error);
        // nonsense falls back to the flags
        assert_eq!(logger(1, Some("a=loud")).level_for("a"), LevelFilter::Debug);
    }
}
