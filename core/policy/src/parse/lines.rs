//! A line reader with a hard byte cap, and the bookkeeping every parser shares.
//!
//! `BufRead::read_line` grows its buffer until it meets a newline, so a 1 GB file without one
//! takes 1 GB of memory. The line reader here never holds more than [`MAX_LINE_BYTES`] of a
//! line: the rest of an over-long line is consumed and dropped, and the line is reported as an
//! error.

use std::io::BufRead;
use std::sync::Arc;

use crate::decision::RuleRef;
use crate::rules::{LoadError, LoadReport, Rule, SkipReason};

/// The longest line kept, in bytes.
///
/// The longest legitimate DNS name is 253 bytes; a hosts line with several aliases, or an
/// AdBlock rule with `$denyallow=` and `$dnstype=` lists, is longer but stays well below
/// 4 KiB in every real list we know. Anything longer is garbage or an attack, and keeping it
/// would let one line cost unbounded memory.
pub const MAX_LINE_BYTES: usize = 4096;

/// How many errors a [`LoadReport`] keeps in full; the rest are only counted.
///
/// A garbage file can produce one error per line; a hundred is enough to see the pattern and
/// keeps the report small.
pub const MAX_STORED_ERRORS: usize = 100;

/// One physical line of input, without its line terminator.
pub(crate) enum Line<'a> {
    /// A line that fit the cap and is valid UTF-8 (a leading byte-order mark removed).
    Text(&'a str),
    /// A line longer than [`MAX_LINE_BYTES`]; its content was dropped.
    TooLong,
    /// A line that is not UTF-8.
    NotUtf8,
    /// A line holding a NUL byte: the input is binary.
    Binary,
}

/// Reads lines of at most [`MAX_LINE_BYTES`] from any `BufRead`, using `fill_buf`/`consume`
/// so that memory stays bounded whatever the input holds.
pub(crate) struct LineReader<R> {
    input: R,
    buf: Vec<u8>,
    /// 1-based number of the line last returned.
    number: u32,
    /// I/O error met while reading, reported once by the caller.
    io_error: Option<std::io::Error>,
}

impl<R: BufRead> LineReader<R> {
    pub(crate) fn new(input: R) -> Self {
        LineReader {
            input,
            buf: Vec::with_capacity(256),
            number: 0,
            io_error: None,
        }
    }

    /// The 1-based number of the line last returned by [`LineReader::next_line`].
    pub(crate) fn number(&self) -> u32 {
        self.number
    }

    /// Takes the I/O error that ended reading, if one did.
    pub(crate) fn take_io_error(&mut self) -> Option<std::io::Error> {
        self.io_error.take()
    }

    /// The next line with its 1-based number, or `None` at end of input (or after an I/O
    /// error, see [`LineReader::take_io_error`]).
    pub(crate) fn next_line(&mut self) -> Option<(u32, Line<'_>)> {
        self.buf.clear();
        let mut too_long = false;
        let mut saw_any = false;
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.io_error = Some(e);
                    return None;
                }
            };
            if chunk.is_empty() {
                if !saw_any {
                    return None;
                }
                break;
            }
            saw_any = true;
            let (take, found_newline) = match memchr::memchr(b'\n', chunk) {
                Some(at) => (at, true),
                None => (chunk.len(), false),
            };
            if !too_long {
                if self.buf.len() + take > MAX_LINE_BYTES {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(&chunk[..take]);
                }
            }
            let consumed = if found_newline { take + 1 } else { take };
            self.input.consume(consumed);
            if found_newline {
                break;
            }
        }
        self.number = self.number.saturating_add(1);
        let number = self.number;
        if too_long {
            return Some((number, Line::TooLong));
        }
        let mut bytes: &[u8] = &self.buf;
        if let Some(stripped) = bytes.strip_suffix(b"\r") {
            bytes = stripped;
        }
        if self.number == 1 {
            if let Some(stripped) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
                bytes = stripped;
            }
        }
        if memchr::memchr(0, bytes).is_some() {
            return Some((number, Line::Binary));
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Some((number, Line::Text(text))),
            Err(_) => Some((number, Line::NotUtf8)),
        }
    }
}

/// Collects a [`LoadReport`] while handing accepted rules to the caller's sink.
pub(crate) struct Emitter<'s> {
    /// The list name every rule's [`RuleRef`] shares.
    list: Arc<str>,
    report: LoadReport,
    sink: &'s mut dyn FnMut(Rule),
}

impl<'s> Emitter<'s> {
    pub(crate) fn new(list_name: &str, sink: &'s mut dyn FnMut(Rule)) -> Self {
        Emitter {
            list: Arc::from(list_name),
            report: LoadReport {
                list: list_name.to_owned(),
                ..LoadReport::default()
            },
            sink,
        }
    }

    /// The list name rules are attributed to.
    pub(crate) fn list(&self) -> &str {
        &self.report.list
    }

    /// Where a rule came from.
    pub(crate) fn rule_ref(&self, line: u32, text: &str) -> RuleRef {
        RuleRef {
            list: Arc::clone(&self.list),
            line,
            rule: text.into(),
        }
    }

    pub(crate) fn accept(&mut self, rule: Rule) {
        self.report.accepted += 1;
        (self.sink)(rule);
    }

    pub(crate) fn skip(&mut self, reason: SkipReason) {
        *self.report.skipped.entry(reason).or_insert(0) += 1;
    }

    pub(crate) fn error(&mut self, line: u32, field: Option<&str>, message: impl Into<String>) {
        self.report.error_count += 1;
        if self.report.errors.len() < MAX_STORED_ERRORS {
            let error = LoadError {
                list: self.report.list.clone(),
                line,
                // A field is quoted from the input: keep at most a short prefix of it so that
                // a garbage token cannot make the report large.
                field: field.map(|f| truncate_for_report(f).to_owned()),
                message: message.into(),
            };
            self.report.errors.push(error);
        }
    }

    pub(crate) fn finish(self) -> LoadReport {
        self.report
    }
}

/// At most this many bytes of an offending token are quoted in an error.
const MAX_QUOTED_FIELD: usize = 80;

fn truncate_for_report(field: &str) -> &str {
    if field.len() <= MAX_QUOTED_FIELD {
        return field;
    }
    let mut end = MAX_QUOTED_FIELD;
    while !field.is_char_boundary(end) {
        end -= 1;
    }
    &field[..end]
}

/// Drives a line parser: reads bounded lines, turns unreadable ones into errors, and hands the
/// text of each readable line to `parse_line` with its number.
///
/// A NUL byte stops reading: the input is binary, not a rule list, and going on would only
/// produce one meaningless error per "line" of a possibly huge file.
pub(crate) fn for_each_line<R: BufRead>(
    input: R,
    out: &mut Emitter<'_>,
    mut parse_line: impl FnMut(&str, u32, &mut Emitter<'_>),
) {
    let mut reader = LineReader::new(input);
    while let Some((number, line)) = reader.next_line() {
        match line {
            Line::Text(text) => parse_line(text, number, out),
            Line::TooLong => out.error(
                number,
                None,
                format!("line longer than {MAX_LINE_BYTES} bytes; skipped"),
            ),
            Line::NotUtf8 => out.error(number, None, "line is not valid UTF-8; skipped"),
            Line::Binary => {
                out.error(
                    number,
                    None,
                    "NUL byte: this is binary data, not a rule list; stopped reading",
                );
                return;
            }
        }
    }
    if let Some(e) = reader.take_io_error() {
        let number = reader.number().saturating_add(1);
        out.error(number, None, format!("read error: {e}; stopped reading"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8]) -> Vec<String> {
        let mut reader = LineReader::new(input);
        let mut out = Vec::new();
        while let Some((n, line)) = reader.next_line() {
            out.push(match line {
                Line::Text(t) => format!("{n}:{t}"),
                Line::TooLong => format!("{n}:<long>"),
                Line::NotUtf8 => format!("{n}:<utf8>"),
                Line::Binary => format!("{n}:<nul>"),
            });
        }
        out
    }

    #[test]
    fn splits_lines_and_strips_crlf_and_bom() {
        assert_eq!(
            collect(b"\xEF\xBB\xBFa\r\nb\n\nc"),
            ["1:a", "2:b", "3:", "4:c"]
        );
        assert!(collect(b"").is_empty());
        assert_eq!(collect(b"\n"), ["1:"]);
    }

    #[test]
    fn over_long_line_is_dropped_and_the_next_line_is_read() {
        let mut input = vec![b'x'; MAX_LINE_BYTES + 1];
        input.extend_from_slice(b"\nok\n");
        assert_eq!(collect(&input), ["1:<long>", "2:ok"]);
        // Exactly at the cap is fine.
        let mut input = vec![b'y'; MAX_LINE_BYTES];
        input.push(b'\n');
        assert_eq!(collect(&input).len(), 1);
        assert!(!collect(&input)[0].contains("<long>"));
    }

    #[test]
    fn over_long_line_across_small_buffer_chunks() {
        // A tiny BufReader forces the line to arrive in many fill_buf chunks.
        let mut input = vec![b'z'; 10 * MAX_LINE_BYTES];
        input.extend_from_slice(b"\nend");
        let reader = std::io::BufReader::with_capacity(7, &input[..]);
        let mut lines = LineReader::new(reader);
        assert!(matches!(lines.next_line(), Some((1, Line::TooLong))));
        assert!(matches!(lines.next_line(), Some((2, Line::Text("end")))));
        assert!(lines.next_line().is_none());
    }

    #[test]
    fn binary_and_invalid_utf8_are_flagged() {
        assert_eq!(collect(b"a\x00b\n\xff\xfe\n"), ["1:<nul>", "2:<utf8>"]);
    }

    #[test]
    fn errors_are_capped_but_counted() {
        let mut sink = |_r: Rule| {};
        let mut out = Emitter::new("l", &mut sink);
        for i in 0..1000 {
            out.error(i, Some(&"f".repeat(500)), "bad");
        }
        let report = out.finish();
        assert_eq!(report.error_count, 1000);
        assert_eq!(report.errors.len(), MAX_STORED_ERRORS);
        assert_eq!(
            report.errors[0].field.as_deref().map(str::len),
            Some(MAX_QUOTED_FIELD)
        );
    }
}
