//! The compact form of one IP database: a byte blob that lookups read in place.
//!
//! Why: the bundled country database has 550k ranges. Parsed into heap vectors it costs
//! anonymous memory in every process, plus the gunzip at start (docs/decisions.md). In this
//! form it is `include_bytes!`'d (made by `build.rs` from the `.csv.gz`), so its pages are
//! file-backed and only the few a lookup touches become resident. User files (`--asn-db`) are
//! parsed into the same form in memory, so there is one lookup path.
//!
//! This file has no dependency beyond `std`: `build.rs` includes it with `#[path]` to encode the
//! bundled data with the very code that decodes it.
//!
//! Layout (every integer little-endian, no alignment assumed):
//!
//! ```text
//! database header (32 bytes)
//!   0  magic "EIPD"        4  version (1)      5  kind (1 = ASN, 2 = country)   6..8 zero
//!   8  fact count F (u32)  12 strings bytes S (u32)
//!   16 v4 table bytes (u32) 20 v6 table bytes (u32)   24..32 zero
//! facts     F x 12 (ASN: asn u32, string offset u32, string length u32) or F x 2 (country code)
//! strings   S bytes of UTF-8 (organisation names, each stored once)
//! v4 table, then v6 table:
//!   header (16 bytes): magic "EIPT", key bytes (4 or 16), value bytes (2 or 4),
//!                      has index (0 or 1), zero, entries N (u32), input ranges (u32)
//!   index   (BUCKETS + 1) x u32 when present: index[b] = first entry whose start's top 16 bits
//!           are >= b
//!   starts  N x key, strictly increasing
//!   values  N x value: 0 = no fact from this start on (a gap), else fact index + 1
//! ```
//!
//! Entry `i` covers `starts[i] ..= starts[i + 1] - 1` (the last one to the end of the space):
//! a range's end is the next entry's start, and a gap is an entry with value 0. That halves
//! the key bytes of the mostly contiguous country data (7,859 gaps in 334k v4 ranges) and
//! keeps each lookup at one binary search within one index bucket.
//!
//! Trust: [`parse`] checks the header and that every section fits (O(1), touches one page);
//! it does not read every start to check the order, because that would make the whole table
//! resident, which is what this form exists to avoid. Every read goes through `get()`, so
//! crafted bytes give wrong answers or `None`, never a panic or an out-of-bounds read.
//! [`verify`] checks everything (order, index, fact indices, string bounds) for files that
//! come from elsewhere, and the tests run it on the bundled blobs.

use std::ops::Range;

/// The blob's first four bytes.
pub const DB_MAGIC: [u8; 4] = *b"EIPD";
/// Format version written and accepted.
pub const VERSION: u8 = 1;
/// Kind byte: facts are (ASN, organisation).
pub const KIND_ASN: u8 = 1;
/// Kind byte: facts are ISO country codes.
pub const KIND_COUNTRY: u8 = 2;

const TABLE_MAGIC: [u8; 4] = *b"EIPT";
const DB_HEADER: usize = 32;
const TABLE_HEADER: usize = 16;
const ASN_FACT: usize = 12;
const COUNTRY_FACT: usize = 2;
/// One bucket per value of a key's top 16 bits.
const BUCKETS: usize = 1 << 16;
/// Tables with fewer entries have no index: a plain binary search over them is at most 12
/// probes, while an index costs 256 KiB.
const INDEX_MIN_ENTRIES: usize = 4096;

/// A range key: `u32` for IPv4, `u128` for IPv6.
pub trait Key: Copy + Ord {
    /// Bytes in the blob.
    const BYTES: usize;
    /// The key's bytes as stored (`[u8; BYTES]`).
    type Raw: Copy;
    /// `bytes` as whole stored keys (a trailing partial key is ignored).
    fn raw_keys(bytes: &[u8]) -> &[Self::Raw];
    /// The key a stored one stands for.
    fn from_raw(raw: Self::Raw) -> Self;
    /// Reads a key from exactly [`Key::BYTES`] bytes.
    fn read(bytes: &[u8]) -> Option<Self>;
    /// Appends the key's bytes.
    fn write(self, out: &mut Vec<u8>);
    /// The top 16 bits, for the index.
    fn bucket(self) -> usize;
    /// `self + 1`, `None` at the top of the space.
    fn next(self) -> Option<Self>;
}

impl Key for u32 {
    const BYTES: usize = 4;
    type Raw = [u8; 4];
    #[inline]
    fn raw_keys(bytes: &[u8]) -> &[[u8; 4]] {
        bytes.as_chunks().0
    }
    #[inline]
    fn from_raw(raw: [u8; 4]) -> u32 {
        u32::from_le_bytes(raw)
    }
    #[inline]
    fn read(bytes: &[u8]) -> Option<u32> {
        Some(u32::from_le_bytes(bytes.try_into().ok()?))
    }
    fn write(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    #[inline]
    fn bucket(self) -> usize {
        (self >> 16) as usize
    }
    fn next(self) -> Option<u32> {
        self.checked_add(1)
    }
}

impl Key for u128 {
    const BYTES: usize = 16;
    type Raw = [u8; 16];
    #[inline]
    fn raw_keys(bytes: &[u8]) -> &[[u8; 16]] {
        bytes.as_chunks().0
    }
    #[inline]
    fn from_raw(raw: [u8; 16]) -> u128 {
        u128::from_le_bytes(raw)
    }
    #[inline]
    fn read(bytes: &[u8]) -> Option<u128> {
        Some(u128::from_le_bytes(bytes.try_into().ok()?))
    }
    fn write(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    #[inline]
    fn bucket(self) -> usize {
        (self >> 112) as usize
    }
    fn next(self) -> Option<u128> {
        self.checked_add(1)
    }
}

/// One inclusive range and the index of its fact.
pub type RangeFact<K> = (K, K, u32);

/// Encodes an ASN database: `facts` are (ASN, organisation), ranges point into them.
pub fn encode_asn(
    facts: &[(u32, &str)],
    v4: &mut [RangeFact<u32>],
    v6: &mut [RangeFact<u128>],
) -> Vec<u8> {
    let mut fact_bytes = Vec::with_capacity(facts.len() * ASN_FACT);
    let mut strings = Vec::new();
    for &(asn, org) in facts {
        fact_bytes.extend_from_slice(&asn.to_le_bytes());
        fact_bytes.extend_from_slice(&len_u32(strings.len()).to_le_bytes());
        fact_bytes.extend_from_slice(&len_u32(org.len()).to_le_bytes());
        strings.extend_from_slice(org.as_bytes());
    }
    encode(KIND_ASN, facts.len(), &fact_bytes, &strings, v4, v6)
}

/// Encodes a country database: `facts` are uppercase ISO codes, ranges point into them.
pub fn encode_country(
    facts: &[[u8; 2]],
    v4: &mut [RangeFact<u32>],
    v6: &mut [RangeFact<u128>],
) -> Vec<u8> {
    let fact_bytes: Vec<u8> = facts.iter().flatten().copied().collect();
    encode(KIND_COUNTRY, facts.len(), &fact_bytes, &[], v4, v6)
}

/// Sizes here come from in-memory vectors far below 4 GiB; saturate rather than wrap if not.
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn encode(
    kind: u8,
    fact_count: usize,
    facts: &[u8],
    strings: &[u8],
    v4: &mut [RangeFact<u32>],
    v6: &mut [RangeFact<u128>],
) -> Vec<u8> {
    let t4 = encode_table(v4, fact_count);
    let t6 = encode_table(v6, fact_count);
    let mut out = Vec::with_capacity(DB_HEADER + facts.len() + strings.len() + t4.len() + t6.len());
    out.extend_from_slice(&DB_MAGIC);
    out.extend_from_slice(&[VERSION, kind, 0, 0]);
    for n in [fact_count, strings.len(), t4.len(), t6.len()] {
        out.extend_from_slice(&len_u32(n).to_le_bytes());
    }
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(facts);
    out.extend_from_slice(strings);
    out.extend_from_slice(&t4);
    out.extend_from_slice(&t6);
    out
}

/// Turns inclusive ranges into start-only entries with explicit gaps. Sorted by start first
/// (stable, so of two ranges with the same start the later one wins, as it did in the
/// end-checking table). A range that overlaps the previous one cuts it short.
fn encode_table<K: Key>(ranges: &mut [RangeFact<K>], fact_count: usize) -> Vec<u8> {
    ranges.sort_by_key(|r| r.0);
    let mut entries: Vec<(K, u32)> = Vec::with_capacity(ranges.len() + ranges.len() / 8);
    // Where the last range ends, and whether it may be extended by an adjacent equal one.
    let mut last_end: Option<K> = None;
    for &(start, end, fact) in ranges.iter() {
        let value = fact.saturating_add(1);
        if let Some(prev_end) = last_end {
            match prev_end.next() {
                // Adjacent and same fact: extend the previous entry.
                Some(n) if n == start && entries.last().map(|e| e.1) == Some(value) => {
                    last_end = Some(end.max(prev_end));
                    continue;
                }
                // A hole between the previous range and this one.
                Some(n) if n < start => entries.push((n, 0)),
                _ => {}
            }
        }
        if entries.last().map(|e| e.0) == Some(start) {
            entries.pop();
        }
        entries.push((start, value));
        last_end = Some(end);
    }
    if let Some(n) = last_end.and_then(Key::next) {
        entries.push((n, 0));
    }
    let value_bytes: u8 = if fact_count < u16::MAX as usize { 2 } else { 4 };
    let has_index = entries.len() >= INDEX_MIN_ENTRIES;
    let mut out = Vec::with_capacity(
        TABLE_HEADER
            + if has_index { (BUCKETS + 1) * 4 } else { 0 }
            + entries.len() * (K::BYTES + value_bytes as usize),
    );
    out.extend_from_slice(&TABLE_MAGIC);
    out.extend_from_slice(&[K::BYTES as u8, value_bytes, u8::from(has_index), 0]);
    out.extend_from_slice(&len_u32(entries.len()).to_le_bytes());
    out.extend_from_slice(&len_u32(ranges.len()).to_le_bytes());
    if has_index {
        let mut i = 0usize;
        for bucket in 0..=BUCKETS {
            while i < entries.len() && entries[i].0.bucket() < bucket {
                i += 1;
            }
            out.extend_from_slice(&len_u32(i).to_le_bytes());
        }
    }
    for &(start, _) in &entries {
        start.write(&mut out);
    }
    for &(_, value) in &entries {
        if value_bytes == 2 {
            out.extend_from_slice(&(value as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    out
}

/// Where one table's sections are in the blob.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableLayout {
    /// Entries (starts), gaps included.
    pub entries: usize,
    /// Ranges the table was made from (gaps and merges not counted).
    pub ranges: usize,
    key_bytes: usize,
    value_bytes: usize,
    index: Option<Range<usize>>,
    starts: Range<usize>,
    values: Range<usize>,
}

/// Where a blob's sections are, as checked by [`parse`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// [`KIND_ASN`] or [`KIND_COUNTRY`].
    pub kind: u8,
    fact_count: usize,
    facts: Range<usize>,
    strings: Range<usize>,
    /// The IPv4 table.
    pub v4: TableLayout,
    /// The IPv6 table.
    pub v6: TableLayout,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    u32::read(bytes.get(at..at.checked_add(4)?)?)
}

/// `n` bytes from `*at`, advancing it; an error names the section that does not fit.
fn take(at: &mut usize, n: usize, total: usize, what: &str) -> Result<Range<usize>, String> {
    let end = at
        .checked_add(n)
        .filter(|&e| e <= total)
        .ok_or_else(|| format!("{what}: section runs past the end ({total} bytes)"))?;
    let r = *at..end;
    *at = end;
    Ok(r)
}

/// Checks the header and that every section fits; returns where they are.
pub fn parse(bytes: &[u8]) -> Result<Layout, String> {
    let header = bytes
        .get(..DB_HEADER)
        .ok_or_else(|| format!("header: {} bytes, need {DB_HEADER}", bytes.len()))?;
    if header[..4] != DB_MAGIC {
        return Err("header: not a compact IP database (bad magic)".into());
    }
    if header[4] != VERSION {
        return Err(format!(
            "header: version {} (this build reads {VERSION})",
            header[4]
        ));
    }
    let kind = header[5];
    let fact_size = match kind {
        KIND_ASN => ASN_FACT,
        KIND_COUNTRY => COUNTRY_FACT,
        k => return Err(format!("header: unknown kind {k}")),
    };
    let field = |at| u32_at(header, at).map_or(0, |v| v as usize);
    let (fact_count, strings_len, v4_len, v6_len) = (field(8), field(12), field(16), field(20));
    let total = bytes.len();
    let mut at = DB_HEADER;
    let facts = take(
        &mut at,
        fact_count
            .checked_mul(fact_size)
            .ok_or("facts: count overflows")?,
        total,
        "facts",
    )?;
    let strings = take(&mut at, strings_len, total, "strings")?;
    if std::str::from_utf8(&bytes[strings.clone()]).is_err() {
        return Err("strings: not UTF-8".into());
    }
    let v4_range = take(&mut at, v4_len, total, "v4 table")?;
    let v6_range = take(&mut at, v6_len, total, "v6 table")?;
    if at != total {
        return Err(format!("{} bytes after the last table", total - at));
    }
    let v4 = parse_table::<u32>(bytes, v4_range, "v4 table")?;
    let v6 = parse_table::<u128>(bytes, v6_range, "v6 table")?;
    Ok(Layout {
        kind,
        fact_count,
        facts,
        strings,
        v4,
        v6,
    })
}

fn parse_table<K: Key>(
    bytes: &[u8],
    range: Range<usize>,
    what: &str,
) -> Result<TableLayout, String> {
    let end = range.end;
    let header = bytes
        .get(range.start..range.start + TABLE_HEADER)
        .filter(|_| range.len() >= TABLE_HEADER)
        .ok_or_else(|| format!("{what}: shorter than its header"))?;
    if header[..4] != TABLE_MAGIC {
        return Err(format!("{what}: bad magic"));
    }
    let (key_bytes, value_bytes, has_index) = (header[4] as usize, header[5] as usize, header[6]);
    if key_bytes != K::BYTES {
        return Err(format!(
            "{what}: {key_bytes}-byte keys, expected {}",
            K::BYTES
        ));
    }
    if value_bytes != 2 && value_bytes != 4 {
        return Err(format!("{what}: {value_bytes}-byte values"));
    }
    let entries = u32_at(header, 8).map_or(0, |v| v as usize);
    let ranges = u32_at(header, 12).map_or(0, |v| v as usize);
    let mut at = range.start + TABLE_HEADER;
    let index = match has_index {
        0 => None,
        1 => Some(take(&mut at, (BUCKETS + 1) * 4, end, what)?),
        x => return Err(format!("{what}: index flag {x}")),
    };
    let starts = take(&mut at, entries.saturating_mul(key_bytes), end, what)?;
    let values = take(&mut at, entries.saturating_mul(value_bytes), end, what)?;
    if at != end {
        return Err(format!("{what}: {} stray bytes", end - at));
    }
    Ok(TableLayout {
        entries,
        ranges,
        key_bytes,
        value_bytes,
        index,
        starts,
        values,
    })
}

/// The fact index for `key`, or `None` (outside every range, or crafted bytes).
#[inline(always)]
pub fn lookup<K: Key>(bytes: &[u8], table: &TableLayout, key: K) -> Option<u32> {
    // Few instructions matter here as much as few cache misses: a lookup is three dependent
    // loads (index, starts, value), and the CPU overlaps consecutive lookups only while their
    // instructions fit its reorder window. So: one bounds-checked slice per section.
    let (lo, hi) = match &table.index {
        Some(index) => {
            let at = index.start + key.bucket() * 4;
            let pair: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
            let lo = u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]) as usize;
            let hi = u32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]) as usize;
            (lo, hi.min(table.entries))
        }
        None => (0, table.entries),
    };
    // partition_point(start <= key) over lo..hi: every entry before `lo` starts in an earlier
    // bucket (so below `key`), every entry from `hi` on in a later one. An empty bucket: the
    // key lies in whatever the last earlier entry started. std's `partition_point` is
    // branch-free: a compare-and-branch search mispredicts every other probe on random
    // addresses, and a misprediction throws away the next lookups' loads already in flight.
    let bucket = bytes
        .get(table.starts.start + lo * K::BYTES..table.starts.start + hi.max(lo) * K::BYTES)?;
    let i = (lo + K::raw_keys(bucket).partition_point(|&raw| K::from_raw(raw) <= key))
        .checked_sub(1)?;
    let value = if table.value_bytes == 2 {
        let at = table.values.start + i * 2;
        let v: [u8; 2] = bytes.get(at..at + 2)?.try_into().ok()?;
        u32::from(u16::from_le_bytes(v))
    } else {
        u32_at(bytes, table.values.start + i * 4)?
    };
    value.checked_sub(1)
}

/// The (ASN, organisation) fact `index` of an ASN blob; `strings` is the blob's string section
/// as text ([`strings`]), checked once rather than on every lookup.
#[inline]
pub fn asn_fact<'a>(
    bytes: &[u8],
    layout: &Layout,
    strings: &'a str,
    index: u32,
) -> Option<(u32, &'a str)> {
    if layout.kind != KIND_ASN || index as usize >= layout.fact_count {
        return None;
    }
    let at = layout.facts.start + index as usize * ASN_FACT;
    let asn = u32_at(bytes, at)?;
    let (off, len) = (
        u32_at(bytes, at + 4)? as usize,
        u32_at(bytes, at + 8)? as usize,
    );
    // A crafted offset outside the text or inside a character gives "".
    Some((asn, strings.get(off..off.checked_add(len)?).unwrap_or("")))
}

/// The string section of a blob as text (`parse` checked it is UTF-8; "" if not).
pub fn strings<'a>(bytes: &'a [u8], layout: &Layout) -> &'a str {
    bytes
        .get(layout.strings.clone())
        .and_then(|s| std::str::from_utf8(s).ok())
        .unwrap_or("")
}

/// The country code fact `index` of a country blob.
#[inline]
pub fn country_fact(bytes: &[u8], layout: &Layout, index: u32) -> Option<[u8; 2]> {
    if layout.kind != KIND_COUNTRY || index as usize >= layout.fact_count {
        return None;
    }
    let at = layout.facts.start + index as usize * COUNTRY_FACT;
    bytes.get(at..at + 2)?.try_into().ok()
}

/// Checks everything [`parse`] leaves to `get()`: starts strictly increasing, the index
/// consistent with them, every value naming a fact, every string slice in bounds. Reads the
/// whole blob: for files from elsewhere and for tests, not for the bundled data at start.
pub fn verify(bytes: &[u8], layout: &Layout) -> Result<(), String> {
    verify_table::<u32>(bytes, &layout.v4, layout.fact_count, "v4 table")?;
    verify_table::<u128>(bytes, &layout.v6, layout.fact_count, "v6 table")?;
    if layout.kind == KIND_ASN {
        let strings = bytes
            .get(layout.strings.clone())
            .ok_or("strings: out of bounds")?;
        let text = std::str::from_utf8(strings).map_err(|_| "strings: not UTF-8")?;
        for i in 0..layout.fact_count {
            let at = layout.facts.start + i * ASN_FACT;
            let off = u32_at(bytes, at + 4).ok_or("facts: truncated")? as usize;
            let len = u32_at(bytes, at + 8).ok_or("facts: truncated")? as usize;
            if off
                .checked_add(len)
                .and_then(|e| text.get(off..e))
                .is_none()
            {
                return Err(format!("fact {i}: organisation outside the strings"));
            }
        }
    } else {
        let facts = bytes
            .get(layout.facts.clone())
            .ok_or("facts: out of bounds")?;
        if let Some(i) = facts
            .chunks_exact(2)
            .position(|c| !c.iter().all(u8::is_ascii_uppercase))
        {
            return Err(format!("fact {i}: not an uppercase country code"));
        }
    }
    Ok(())
}

fn verify_table<K: Key>(
    bytes: &[u8],
    table: &TableLayout,
    fact_count: usize,
    what: &str,
) -> Result<(), String> {
    let starts = bytes
        .get(table.starts.clone())
        .ok_or("starts out of bounds")?;
    let keys: Vec<K> = starts.chunks_exact(K::BYTES).filter_map(K::read).collect();
    if keys.len() != table.entries {
        return Err(format!(
            "{what}: {} starts, header says {}",
            keys.len(),
            table.entries
        ));
    }
    if let Some(i) = keys.windows(2).position(|w| w[0] >= w[1]) {
        return Err(format!("{what}: start {} not above the one before", i + 1));
    }
    let values = bytes
        .get(table.values.clone())
        .ok_or("values out of bounds")?;
    let max = fact_count;
    let bad = if table.value_bytes == 2 {
        values
            .chunks_exact(2)
            .position(|c| u16::from_le_bytes([c[0], c[1]]) as usize > max)
    } else {
        values
            .chunks_exact(4)
            .position(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize > max)
    };
    if let Some(i) = bad {
        return Err(format!(
            "{what}: entry {i} names a fact beyond the {max} there are"
        ));
    }
    if let Some(index) = &table.index {
        let index = bytes.get(index.clone()).ok_or("index out of bounds")?;
        for b in 0..=BUCKETS {
            let want = keys.partition_point(|k| k.bucket() < b);
            if u32_at(index, b * 4).map(|v| v as usize) != Some(want) {
                return Err(format!("{what}: index bucket {b} is wrong"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut v4 = vec![
            (0x0100_0000, 0x0100_00ff, 0),
            (0x0100_0100, 0x0100_01ff, 0), // adjacent, same fact: merged
            (0x0100_0400, 0x0100_07ff, 1), // a gap before it
            (0xffff_ff00, u32::MAX, 1),    // to the top of the space: no closing gap
        ];
        let mut v6 = vec![(1u128 << 125, (1u128 << 125) + 0xffff, 1)];
        encode_asn(
            &[(13335, "Cloudflare, Inc."), (45090, "Tencent")],
            &mut v4,
            &mut v6,
        )
    }

    #[test]
    fn round_trip_with_gaps_merges_and_the_top_of_the_space() {
        let bytes = sample();
        let layout = parse(&bytes).unwrap();
        verify(&bytes, &layout).unwrap();
        // 1.0.0.0 (two ranges merged), gap at 1.0.2.0, 1.0.4.0, gap at 1.0.8.0, top: 5 entries.
        assert_eq!((layout.v4.ranges, layout.v4.entries), (4, 5));
        let text = strings(&bytes, &layout);
        let fact =
            |k: u32| lookup(&bytes, &layout.v4, k).and_then(|i| asn_fact(&bytes, &layout, text, i));
        assert_eq!(fact(0x0100_0000), Some((13335, "Cloudflare, Inc.")));
        assert_eq!(fact(0x0100_01ff), Some((13335, "Cloudflare, Inc.")));
        assert_eq!(fact(0x0100_0200), None);
        assert_eq!(fact(0x0100_0400), Some((45090, "Tencent")));
        assert_eq!(fact(0x0100_0800), None);
        assert_eq!(fact(0x00ff_ffff), None);
        assert_eq!(fact(u32::MAX), Some((45090, "Tencent")));
        let hit = lookup(&bytes, &layout.v6, (1u128 << 125) + 7);
        assert_eq!(
            hit.and_then(|i| asn_fact(&bytes, &layout, text, i))
                .map(|f| f.0),
            Some(45090)
        );
        assert_eq!(lookup(&bytes, &layout.v6, (1u128 << 125) + 0x10000), None);
    }

    #[test]
    fn indexed_table_matches_a_plain_search() {
        // Enough ranges for an index, spread over many buckets, with holes.
        let mut v4: Vec<RangeFact<u32>> = (0..20_000u32)
            .map(|i| (i * 200_000, i * 200_000 + 150_000, i % 3))
            .collect();
        let bytes = encode_country(&[*b"AU", *b"CN", *b"US"], &mut v4.clone(), &mut []);
        let layout = parse(&bytes).unwrap();
        assert!(layout.v4.index.is_some());
        verify(&bytes, &layout).unwrap();
        v4.sort();
        for k in (0..u32::MAX - 99_999).step_by(99_991).chain([u32::MAX]) {
            let want = v4
                .iter()
                .rev()
                .find(|r| r.0 <= k)
                .filter(|r| r.1 >= k)
                .map(|r| r.2);
            assert_eq!(lookup(&bytes, &layout.v4, k), want, "{k:#x}");
        }
    }

    #[test]
    fn truncated_or_crafted_bytes_give_errors_or_none_never_a_panic() {
        let good = sample();
        for n in 0..good.len() {
            assert!(parse(&good[..n]).is_err(), "truncated to {n} accepted");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(parse(&long).is_err());
        // Flip every byte in turn: parse may accept (a value or key changed), but then lookups
        // and facts must stay in bounds.
        for i in 0..good.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut bytes = good.clone();
                bytes[i] ^= x;
                let Ok(layout) = parse(&bytes) else { continue };
                let _ = verify(&bytes, &layout);
                for k in [0u32, 0x0100_0000, 0x0100_0500, u32::MAX] {
                    if let Some(f) = lookup(&bytes, &layout.v4, k) {
                        let _ = asn_fact(&bytes, &layout, strings(&bytes, &layout), f);
                        let _ = country_fact(&bytes, &layout, f);
                    }
                }
                let _ = lookup(&bytes, &layout.v6, 1u128 << 125);
            }
        }
        // A header claiming huge sections.
        let mut huge = good.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&huge).is_err());
    }

    #[test]
    fn verify_catches_unordered_starts() {
        let mut bytes = sample();
        let layout = parse(&bytes).unwrap();
        let at = layout.v4.starts.start;
        bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let layout = parse(&bytes).unwrap();
        assert!(verify(&bytes, &layout).unwrap_err().contains("start"));
    }
}
