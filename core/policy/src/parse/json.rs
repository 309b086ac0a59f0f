//! What the JSON formats share: a size-capped whole-file read, maps kept in file order, and
//! line numbers for facts found inside the document.
//!
//! JSON tracker data is parsed whole with serde_json into typed structs (unknown fields are
//! ignored, not stored), so memory is about the size of the strings kept, bounded by
//! [`MAX_JSON_BYTES`].

use std::fmt;
use std::io::{BufRead, Read};
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

use super::lines::Emitter;
use super::name::normalize_name;
use crate::rules::SkipReason;

/// Largest JSON rule source accepted, in bytes.
///
/// The largest real file of these formats, DuckDuckGo's web `tds.json`, is about 1.5 MB;
/// Disconnect's `services.json` is under 1 MB and the app form under 200 KB. 16 MiB is ten
/// times the largest while keeping a whole-file parse of a hostile input to a bounded size.
pub const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

/// Reads the whole input, at most [`MAX_JSON_BYTES`]. On failure the error is already in
/// `out`.
pub(crate) fn read_capped<R: BufRead>(input: R, out: &mut Emitter<'_>) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    let limit = MAX_JSON_BYTES as u64 + 1;
    if let Err(e) = input.take(limit).read_to_end(&mut bytes) {
        out.error(0, None, format!("read error: {e}"));
        return None;
    }
    if bytes.len() > MAX_JSON_BYTES {
        out.error(
            0,
            None,
            format!("file larger than {} MiB; not loaded", MAX_JSON_BYTES >> 20),
        );
        return None;
    }
    Some(bytes)
}

/// Parses `bytes` as `T`, reporting a serde_json error with its line and column.
pub(crate) fn from_slice<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
    out: &mut Emitter<'_>,
) -> Option<T> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Some(value),
        Err(e) => {
            let line = u32::try_from(e.line()).unwrap_or(u32::MAX);
            // serde_json's message ends with " at line L column C"; keep the column.
            let message = format!(
                "invalid JSON ({:?}), column {}: {e}",
                e.classify(),
                e.column()
            );
            out.error(line, None, message);
            None
        }
    }
}

/// A JSON object kept as key/value pairs in file order (serde_json's own map sorts keys
/// unless a crate-wide feature is turned on).
pub(crate) struct Ordered<V>(pub Vec<(String, V)>);

impl<V> Default for Ordered<V> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for OrderedVisitor<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, V>()? {
                    entries.push((key, value));
                }
                Ok(Ordered(entries))
            }
        }
        deserializer.deserialize_map(OrderedVisitor(PhantomData))
    }
}

/// Finds the line of successive object keys in the document, moving forward only, so that
/// locating every key of a file costs one pass over it.
pub(crate) struct KeyLocator<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: u32,
}

impl<'a> KeyLocator<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        KeyLocator {
            bytes,
            pos: 0,
            line: 1,
        }
    }

    /// Moves to the next occurrence of `"key"` at or after the current position and returns
    /// its 1-based line, or 0 when it is not found as written (a key spelled with escapes).
    pub(crate) fn line_of(&mut self, key: &str) -> u32 {
        let rest = &self.bytes[self.pos..];
        let mut needle = Vec::with_capacity(key.len() + 2);
        needle.push(b'"');
        needle.extend_from_slice(key.as_bytes());
        needle.push(b'"');
        match memchr::memmem::find(rest, &needle) {
            Some(at) => {
                let newlines = memchr::memchr_iter(b'\n', &rest[..at]).count();
                self.line = self
                    .line
                    .saturating_add(u32::try_from(newlines).unwrap_or(u32::MAX));
                self.pos += at + needle.len();
                self.line
            }
            None => 0,
        }
    }

    /// [`KeyLocator::line_of`], or `fallback` when the key is not found as written.
    pub(crate) fn line_or(&mut self, key: &str, fallback: u32) -> u32 {
        match self.line_of(key) {
            0 => fallback,
            found => found,
        }
    }
}

/// One domain of a JSON tracker list (Disconnect's `services.json` and `entities.json`), with
/// its line (`fallback` when not found as written): `None` for a URL with a path (skipped as
/// not applicable) or a string that is not a host name (an error naming its line).
pub(crate) fn listed_domain(
    out: &mut Emitter<'_>,
    locate: &mut KeyLocator<'_>,
    raw: &str,
    fallback: u32,
) -> Option<(String, u32)> {
    let line = locate.line_or(raw, fallback);
    if raw.contains('/') {
        out.skip(SkipReason::NotApplicable);
        return None;
    }
    match normalize_name(raw) {
        Ok(domain) => Some((domain, line)),
        Err(why) => {
            out.error(line, Some(raw), why);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Rule;

    #[test]
    fn ordered_map_keeps_file_order() {
        let map: Ordered<u32> = serde_json::from_str(r#"{"b":1,"a":2,"c":3}"#).unwrap();
        let keys: Vec<_> = map.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a", "c"]);
    }

    #[test]
    fn key_locator_walks_forward() {
        let doc = b"{\n \"a\": 1,\n\n \"b\": {\"a\": 2}\n}";
        let mut locate = KeyLocator::new(doc);
        assert_eq!(locate.line_of("a"), 2);
        assert_eq!(locate.line_of("b"), 4);
        assert_eq!(locate.line_of("a"), 4);
        assert_eq!(locate.line_of("zzz"), 0);
    }

    #[test]
    fn oversized_input_is_refused() {
        let big = vec![b' '; MAX_JSON_BYTES + 10];
        let mut sink = |_r: Rule| {};
        let mut out = Emitter::new("big.json", &mut sink);
        assert!(read_capped(&big[..], &mut out).is_none());
        let report = out.finish();
        assert_eq!(report.errors[0].line, 0);
        assert!(report.errors[0].message.contains("larger than 16 MiB"));
    }
}
