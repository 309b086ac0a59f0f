//! The compiled rule-set file: a fixed header, a section table and 8-byte-aligned sections.
//!
//! ```text
//! offset 0   magic  b"EMBARGO\x1a"          (8 bytes; \x1a stops `type` on DOS consoles)
//!        8   format version, u32 LE          (readers refuse versions they do not know)
//!        12  section count, u32 LE
//!        16  body length, u64 LE             (file length - 32: catches truncation first)
//!        24  CRC-32 (IEEE) of bytes 8..24 and of the body, u32 LE
//!        28  reserved, 0
//!        32  section table: count x { id u32, 0 u32, offset u64, length u64 } (absolute offsets)
//!            sections, each starting at a multiple of 8
//! ```
//!
//! Every integer is little-endian and read with `from_le_bytes` on demand, so a section is used
//! straight from the file's bytes (owned or memory-mapped) whatever their alignment. The checksum
//! is verified once at load: CRC-32 runs at several GB/s, so a 10 MB file costs a few ms, and it
//! turns a flipped bit or a truncated copy into an error instead of a wrong answer.

use std::fmt;

/// First 8 bytes of every compiled rule set.
pub const MAGIC: [u8; 8] = *b"EMBARGO\x1a";
/// The layout version this build writes and reads.
///
/// Version 2 replaced the name and owner FSTs (and the two-label filter) by hashed
/// fingerprint indexes (`ruleset/index.rs`); version 3 gave the index header's last field
/// (zero in version 2) the keys' label bounds, which lookups trust; version 4 keys label
/// patterns (`log*.tiktokv.com`) by their fixed suffix in the name index, their wildcard
/// labels in that key's side-table entry (the metadata), checked at open, and added the
/// `categories` section (line ranges of a list -> category, [`SectionId::Categories`]).
pub const VERSION: u32 = 4;
/// Header length in bytes.
pub const HEADER_LEN: usize = 32;
/// Length of one section-table entry.
const ENTRY_LEN: usize = 24;

/// Why a compiled rule set could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompiledError {
    /// Shorter than a header, or shorter than the header says (a truncated copy).
    Truncated {
        /// Bytes the header promises (or a header's length).
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// Not a compiled Embargo rule set.
    BadMagic,
    /// Written by a newer (or older, incompatible) Embargo.
    UnsupportedVersion(u32),
    /// The body's CRC-32 does not match the header: the file is corrupt.
    ChecksumMismatch {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the bytes present.
        computed: u32,
    },
    /// A section is missing, out of bounds or malformed.
    BadSection {
        /// Which section (`names`, `owners`, `v4`, `v6`, `meta`, `table`, `header`).
        section: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl fmt::Display for CompiledError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompiledError::Truncated { expected, found } => write!(
                f,
                "compiled rule set is truncated: {found} bytes, expected {expected}"
            ),
            CompiledError::BadMagic => write!(f, "not a compiled Embargo rule set (bad magic)"),
            CompiledError::UnsupportedVersion(v) => write!(
                f,
                "compiled rule set has format version {v}; this Embargo reads version {VERSION}: recompile it"
            ),
            CompiledError::ChecksumMismatch { stored, computed } => write!(
                f,
                "compiled rule set is corrupt: checksum {computed:08x} does not match stored {stored:08x}"
            ),
            CompiledError::BadSection { section, message } => {
                write!(f, "compiled rule set: section {section}: {message}")
            }
        }
    }
}

impl std::error::Error for CompiledError {}

/// Section ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum SectionId {
    /// Hashed fingerprint index: name key -> combination and line, or side-table entry.
    Names = 1,
    /// Hashed fingerprint index: owner domain -> index of an owner fact.
    Owners = 2,
    /// v4 address table: n x u32 starts, then n x u32 values.
    V4 = 3,
    /// v6 address table: n x u128 starts (big-endian), then n x u32 values.
    V6 = 4,
    /// JSON metadata: list names, rule combinations, the side table of rare name rules,
    /// small rule tables.
    Meta = 5,
    /// JSON: per list, line ranges and the category its list gives them (Disconnect's
    /// `Advertising`). Read only when a decision is explained; optional (absent: no
    /// categories). Its id leaves 6 and 7 free for other sections.
    Categories = 8,
}

impl SectionId {
    fn name(self) -> &'static str {
        match self {
            SectionId::Names => "names",
            SectionId::Owners => "owners",
            SectionId::V4 => "v4",
            SectionId::V6 => "v6",
            SectionId::Meta => "meta",
            SectionId::Categories => "categories",
        }
    }

    const ALL: [SectionId; 6] = [
        SectionId::Names,
        SectionId::Owners,
        SectionId::V4,
        SectionId::V6,
        SectionId::Meta,
        SectionId::Categories,
    ];

    /// Position in [`SectionId::ALL`] (ids need not be consecutive).
    fn slot(self) -> usize {
        SectionId::ALL
            .iter()
            .position(|s| *s == self)
            .unwrap_or_default()
    }
}

/// Writes a file from its sections (in [`SectionId::ALL`] order).
pub fn write(sections: &[(SectionId, Vec<u8>)]) -> Vec<u8> {
    let table_len = sections.len() * ENTRY_LEN;
    let mut offset = align8(HEADER_LEN + table_len);
    let mut entries = Vec::with_capacity(sections.len());
    for (id, data) in sections {
        entries.push((*id, offset, data.len()));
        offset = align8(offset + data.len());
    }
    let mut out = Vec::with_capacity(offset);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 16]); // body length and checksum, filled below
    for (id, off, len) in &entries {
        out.extend_from_slice(&(*id as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(*off as u64).to_le_bytes());
        out.extend_from_slice(&(*len as u64).to_le_bytes());
    }
    for ((_, data), (_, off, _)) in sections.iter().zip(&entries) {
        out.resize(*off, 0);
        out.extend_from_slice(data);
    }
    out.resize(offset, 0);
    let body_len = (out.len() - HEADER_LEN) as u64;
    out[16..24].copy_from_slice(&body_len.to_le_bytes());
    let crc = checksum(&out);
    out[16..24].copy_from_slice(&body_len.to_le_bytes());
    out[24..28].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Rewrites the body length and checksum of a buffer that starts with a header, so that a
/// fuzzer (or a test) can hand-craft section contents that pass the checksum. Does nothing to a
/// buffer shorter than a header.
#[doc(hidden)]
pub fn seal(file: &mut [u8]) {
    if file.len() < HEADER_LEN {
        return;
    }
    let body_len = (file.len() - HEADER_LEN) as u64;
    file[16..24].copy_from_slice(&body_len.to_le_bytes());
    let crc = checksum(file);
    file[24..28].copy_from_slice(&crc.to_le_bytes());
}

/// CRC-32 over the header fields after the magic (version, count, body length) and the body, so
/// that a flipped bit anywhere but in the magic and the checksum itself is caught by the checksum.
fn checksum(file: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&file[8..24]);
    hasher.update(&file[HEADER_LEN..]);
    hasher.finalize()
}

fn align8(n: usize) -> usize {
    (n + 7) & !7
}

/// Byte ranges of each section inside a validated file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    ranges: [(usize, usize); SectionId::ALL.len()],
}

impl Layout {
    /// The byte range of a section.
    pub fn range(&self, id: SectionId) -> (usize, usize) {
        self.ranges[id.slot()]
    }
}

/// Checks header, length, checksum and section bounds. Never panics on any input.
pub fn validate(bytes: &[u8]) -> Result<Layout, CompiledError> {
    if bytes.len() < HEADER_LEN {
        if bytes.len() >= 8 && bytes[..8] != MAGIC {
            return Err(CompiledError::BadMagic);
        }
        return Err(CompiledError::Truncated {
            expected: HEADER_LEN as u64,
            found: bytes.len() as u64,
        });
    }
    if bytes[..8] != MAGIC {
        return Err(CompiledError::BadMagic);
    }
    if read_u32(bytes, 28) != 0 {
        return Err(CompiledError::BadSection {
            section: "header",
            message: "reserved field is not zero".into(),
        });
    }
    let version = read_u32(bytes, 8);
    if version != VERSION {
        return Err(CompiledError::UnsupportedVersion(version));
    }
    let count = read_u32(bytes, 12) as usize;
    let body_len = read_u64(bytes, 16);
    let found = (bytes.len() - HEADER_LEN) as u64;
    if body_len != found {
        return Err(CompiledError::Truncated {
            expected: body_len.saturating_add(HEADER_LEN as u64),
            found: bytes.len() as u64,
        });
    }
    let stored = read_u32(bytes, 24);
    let computed = checksum(bytes);
    if stored != computed {
        return Err(CompiledError::ChecksumMismatch { stored, computed });
    }
    let table_end = count
        .checked_mul(ENTRY_LEN)
        .and_then(|n| n.checked_add(HEADER_LEN))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| CompiledError::BadSection {
            section: "table",
            message: format!("{count} sections do not fit in the file"),
        })?;
    let mut layout = Layout::default();
    let mut seen = [false; SectionId::ALL.len()];
    for entry in bytes[HEADER_LEN..table_end].chunks_exact(ENTRY_LEN) {
        let id = read_u32(entry, 0);
        let offset = read_u64(entry, 8);
        let len = read_u64(entry, 16);
        let Some(section) = SectionId::ALL.iter().copied().find(|s| *s as u32 == id) else {
            // Unknown sections are allowed: a later minor addition that old readers skip.
            continue;
        };
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= bytes.len() as u64 && offset >= table_end as u64)
            .ok_or_else(|| CompiledError::BadSection {
                section: section.name(),
                message: format!("bytes {offset}+{len} outside the file"),
            })?;
        layout.ranges[section.slot()] = (offset as usize, end as usize);
        seen[section.slot()] = true;
    }
    for (i, present) in seen.iter().enumerate() {
        // `categories` may be left out: a set without it has no categories.
        if !present && SectionId::ALL[i] != SectionId::Categories {
            return Err(CompiledError::BadSection {
                section: SectionId::ALL[i].name(),
                message: "missing".into(),
            });
        }
    }
    Ok(layout)
}

/// Reads a little-endian u32 at `at`; 0 when out of bounds (callers check bounds first).
#[inline]
pub fn read_u32(bytes: &[u8], at: usize) -> u32 {
    match bytes.get(at..at + 4) {
        Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

/// Reads a little-endian u64 at `at`; 0 when out of bounds.
#[inline]
pub fn read_u64(bytes: &[u8], at: usize) -> u64 {
    match bytes.get(at..at + 8) {
        Some(b) => {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        }
        None => 0,
    }
}

/// Reads a big-endian u128 at `at`; 0 when out of bounds.
#[inline]
pub fn read_u128_be(bytes: &[u8], at: usize) -> u128 {
    match bytes.get(at..at + 16) {
        Some(b) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            u128::from_be_bytes(a)
        }
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        write(&[
            (SectionId::Names, vec![1, 2, 3]),
            (SectionId::Owners, vec![]),
            (SectionId::V4, vec![9; 16]),
            (SectionId::V6, vec![]),
            (SectionId::Meta, b"{}".to_vec()),
            (SectionId::Categories, b"[]".to_vec()),
        ])
    }

    #[test]
    fn roundtrip_layout() {
        let file = sample();
        let layout = validate(&file).unwrap();
        let (s, e) = layout.range(SectionId::Names);
        assert_eq!(&file[s..e], &[1, 2, 3]);
        assert_eq!(s % 8, 0);
        let (s, e) = layout.range(SectionId::V4);
        assert_eq!(e - s, 16);
        assert_eq!(s % 8, 0);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error() {
        let file = sample();
        for len in 0..file.len() {
            assert!(validate(&file[..len]).is_err(), "truncated to {len}");
        }
        for byte in 0..file.len() {
            for bit in 0..8 {
                let mut bad = file.clone();
                bad[byte] ^= 1 << bit;
                assert!(validate(&bad).is_err(), "flip byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let mut file = sample();
        assert_eq!(
            validate(b"hello world, this is not a rule set"),
            Err(CompiledError::BadMagic)
        );
        file[8] = VERSION as u8 + 1;
        assert_eq!(
            validate(&file),
            Err(CompiledError::UnsupportedVersion(VERSION + 1))
        );
        let file = sample();
        let msg = validate(&file[..40]).unwrap_err().to_string();
        assert!(msg.contains("truncated"), "{msg}");
    }
}
