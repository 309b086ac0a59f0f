//! The hashed fingerprint index behind name rules and domain-owner facts.
//!
//! Names themselves are never stored: a rule keyed by `ads.example.com` is found again by
//! hashing the query name's suffixes, and the text shown to the user is rebuilt from the matched
//! suffix of the query (which *is* the key). What the index stores per key is only what is
//! needed to recognise the key's hash and to say what its rule does:
//!
//! ```text
//! section = header (24 bytes) | directory | fingerprints | values
//! header  = key count u64 | directory bits d u32 | value width w u32 | low bits u32
//!           | fewest labels of a key u16 | most labels of a key u16
//! directory    = (2^d + 1) x u32: index of the first key of each bucket, then the key count
//! fingerprints = n x u32, grouped by bucket, sorted within a bucket
//! values       = n x w bits, packed little-endian, then 8 bytes of padding
//! ```
//!
//! A key's 64-bit hash picks its bucket with its top `d` bits and is recognised by the next
//! 32 bits (its fingerprint), so a lookup compares `d + 32` bits: 47 at a million keys. `d` is
//! chosen so that a bucket holds 4-8 keys on average up to 2^15 buckets (a directory that
//! stays in the L2 cache), and more keys per bucket above (30 at a million keys, two cache
//! lines); the directory costs at most 1 byte per key, 0.13 at a million.
//!
//! **False matches.** A name that is in no list matches a key only if its suffix hash agrees on
//! all `d + 32` bits with a key in the same bucket: with b keys per bucket the chance per probe
//! is b / 2^32 (about 7e-9 at 30 keys per bucket, a million keys), a few probes per query:
//! about one false match per 50 million queries. The caller makes
//! such a match harmless: every key whose match could *allow* something (exceptions) or whose
//! hash collides with another key's is confirmed against its full name, kept in the side table
//! (see `ruleset/mod.rs`); a false match can therefore only block, and a name crafted to collide
//! only blocks its own author's name. Owner facts are unconfirmed: a false match there shows a
//! wrong owner with the same odds.
//!
//! **Hash.** A running state over the name's labels read from the end, so that one pass over
//! the query gives the hash of every suffix (a snapshot after each label), each then finished
//! with the murmur3 64-bit mixer so that the top bits (the bucket) depend on every byte. A label
//! is absorbed 7 bytes at a time, each word tagged in its top byte with the label bytes left
//! (so `ab` and `ab\0`, or `.com` and `com`, differ), by a folded 64x64->128-bit multiply
//! (foldhash's and wyhash's step): one multiply per label of up to 7 bytes instead of one per
//! byte. It is part of the file format: changing it needs a new format version.
//!
//! The label bounds let a lookup skip suffixes no key can equal: a list of host names (two
//! labels or more) never probes the top-level domain, and a lookup stops hashing the front
//! of a long name past the longest key.
//!
//! Parse, don't validate: [`IndexLayout::parse`] checks the header, every length and the
//! directory (monotonic, within bounds) once at load; lookups then read with `get` and cannot
//! panic on any file, and [`IndexLayout::verify`] checks what is O(n) (sorted fingerprints).

use crate::format::{read_u32, read_u64};

/// Header length of an index section.
pub(crate) const HEADER_LEN: usize = 24;

/// The state before the first label (any constant; this one is FNV-1a's offset basis).
const HASH_SEED: u64 = 0xcbf2_9ce4_8422_2325;
/// The multiplier of the folded multiply: odd, with well-spread bits (2^64 / golden ratio).
const HASH_MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// Widest packed value: a value is read with one unaligned 8-byte load and a shift of up to 7.
pub(crate) const MAX_VALUE_WIDTH: u32 = 56;

/// Average keys per bucket is between 4 and 8 (`d = ceil(log2(n)) - 3`) up to
/// [`MAX_DIRECTORY_BITS`]. Smaller buckets cost directory (4 bytes per bucket: 0.5-1 byte per
/// key here), larger ones comparisons.
const BUCKET_SHIFT: u32 = 3;

/// At most 2^15 buckets: a 128 KiB directory stays in a core's L2 cache however large the set,
/// so a lookup's only likely cache miss is the bucket itself (the directory entry would
/// otherwise be a second miss that the bucket's load must wait for). Above 262,144 keys the
/// buckets grow instead (30 keys at a million), which costs no extra dependent load, and
/// no extra comparisons either: only a window of [`WINDOW`] of them is compared.
const MAX_DIRECTORY_BITS: u32 = 15;

/// Fingerprints compared as one block by [`IndexView::matches`]: 64 bytes, one cache line
/// when aligned and never more than two. A bucket of up to 16 keys (4-8 on average below the
/// directory cap) is compared whole. A larger one (30 keys on average at a million) is
/// compared only around where its sorted, uniform fingerprints put the one sought: the key of
/// rank r sits within a few places of `fp * n / 2^32` (the spread is about sqrt(n) / 2, under
/// 3 places at 30 keys), so a window of 16 centred there holds it nearly always, and the
/// window's first and last fingerprints prove when it cannot be elsewhere.
const WINDOW: usize = 16;

/// The [`WINDOW`] fingerprints from key `start` on, when the fingerprints hold that many.
#[inline(always)]
fn window_at(fingerprints: &[u8], start: usize) -> Option<&[u8; WINDOW * 4]> {
    let at = start.checked_mul(4)?;
    fingerprints
        .get(at..at.checked_add(WINDOW * 4)?)?
        .try_into()
        .ok()
}

/// Bit `j` set when fingerprint `j` of the window is `fp`, with no branch.
#[inline(always)]
fn equal_lanes(window: &[u8; WINDOW * 4], fp: u32) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        equal_lanes_sse2(window, fp)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        equal_lanes_portable(window, fp)
    }
}

/// [`equal_lanes`] in plain Rust: a fixed-length loop that compilers turn into vector
/// compares, though on x86_64 into 45 instructions where SSE2 needs 16.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn equal_lanes_portable(window: &[u8; WINDOW * 4], fp: u32) -> u64 {
    let mut equal = 0u64;
    for (j, lane) in window.chunks_exact(4).enumerate() {
        let lane = u32::from_le_bytes([lane[0], lane[1], lane[2], lane[3]]);
        equal |= u64::from(lane == fp) << j;
    }
    equal
}

/// [`equal_lanes`] with SSE2 (part of the x86_64 baseline): four 4-lane compares, each
/// lane's result gathered into a bit by `movmskps`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn equal_lanes_sse2(window: &[u8; WINDOW * 4], fp: u32) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_castsi128_ps, _mm_cmpeq_epi32, _mm_loadu_si128, _mm_movemask_ps,
        _mm_set1_epi32,
    };
    let quarter = |k: usize, needle: __m128i| {
        // SAFETY: SSE2 is part of the x86_64 baseline; the load reads bytes 16k..16k + 16 of
        // the 64-byte window (k < 4), unaligned loads being allowed by `loadu`.
        unsafe {
            let lanes = _mm_loadu_si128(window.as_ptr().add(16 * k).cast::<__m128i>());
            let mask = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(lanes, needle)));
            (mask as u64) << (4 * k)
        }
    };
    // SAFETY: SSE2 is part of the x86_64 baseline.
    let needle = unsafe { _mm_set1_epi32(fp as i32) };
    quarter(0, needle) | quarter(1, needle) | quarter(2, needle) | quarter(3, needle)
}

/// The low `n` bits set (all 64 from 64 on).
#[inline(always)]
fn low_bits(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// Multiplies to 128 bits and folds the halves together: every input bit reaches every output
/// bit, in one multiply.
#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The fewest and most labels of the keys of an index (`a.b.c` has 3): suffixes with other
/// counts cannot be keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LabelBounds {
    pub fewest: u32,
    pub most: u32,
}

impl LabelBounds {
    /// Every suffix.
    pub const ALL: LabelBounds = LabelBounds {
        fewest: 0,
        most: u32::MAX,
    };

    /// The bounds of these keys (none: the empty range).
    pub fn of<'k>(keys: impl IntoIterator<Item = &'k [u8]>) -> LabelBounds {
        let mut bounds = LabelBounds {
            fewest: u32::MAX,
            most: 0,
        };
        for key in keys {
            let labels = labels_of(key);
            bounds.fewest = bounds.fewest.min(labels);
            bounds.most = bounds.most.max(labels);
        }
        if bounds.fewest > bounds.most {
            bounds = LabelBounds { fewest: 0, most: 0 };
        }
        bounds
    }

    /// The header field: fewest in the low 16 bits, most in the high 16 (65,535 = no limit).
    fn encode(self) -> u32 {
        let clamp = |v: u32| v.min(u32::from(u16::MAX));
        clamp(self.fewest) | (clamp(self.most) << 16)
    }

    fn decode(field: u32) -> LabelBounds {
        let most = field >> 16;
        LabelBounds {
            fewest: field & 0xffff,
            most: if most == u32::from(u16::MAX) {
                u32::MAX
            } else {
                most
            },
        }
    }
}

/// Labels of a key: its dots plus one.
fn labels_of(key: &[u8]) -> u32 {
    let dots = key.iter().filter(|&&b| b == b'.').count();
    u32::try_from(dots).unwrap_or(u32::MAX).saturating_add(1)
}

/// Calls `found(start, hash)` for every suffix of `name` that starts at a label boundary
/// (`start == 0` or `name[start - 1] == b'.'`) and has a label count within `bounds`,
/// shortest first, with the hash a key equal to that suffix has ([`key_hash`]).
#[inline(always)]
pub(crate) fn for_each_suffix(name: &[u8], bounds: LabelBounds, mut found: impl FnMut(usize, u64)) {
    let mut pad = [0u8; 8];
    let mut suffixes = Suffixes::new(name, &mut pad, bounds);
    while let Some((start, h)) = suffixes.next_suffix() {
        found(start, h);
    }
}

/// `name` itself when it is at least 8 bytes long, else `name` copied into `pad`: the suffix
/// walk reads whole words and needs 8 readable bytes.
#[inline(always)]
fn padded<'a>(name: &'a [u8], pad: &'a mut [u8; 8]) -> &'a [u8] {
    if name.len() >= 8 {
        return name;
    }
    if let Some(front) = pad.get_mut(..name.len()) {
        front.copy_from_slice(name);
    }
    pad
}

/// Names shorter than this are walked with a bit mask of their dots (one bit per byte, so 63
/// bytes fit a `u64` with room to shift): a label's start is then one `leading_zeros`, where
/// the general walk ([`label_start`]) loops over words and branches on what it finds. Almost
/// every name a lookup sees is this short (StevenBlack's average is 19 bytes).
const MASKED_LEN: usize = 64;

/// The suffix hashes of one name, shortest first (see [`for_each_suffix`]). A plain iterator
/// rather than a callback, so that a lookup can collect a batch of hashes in a loop the
/// compiler keeps in registers.
pub(crate) struct Suffixes<'a> {
    /// The name's bytes, at least 8 of them (see [`padded`]).
    bytes: &'a [u8],
    len: usize,
    bounds: LabelBounds,
    /// Bit `i` is set when byte `i` is a dot; only for names shorter than [`MASKED_LEN`].
    dots: Option<u64>,
    /// The running hash of the labels absorbed so far.
    h: u64,
    /// Where the next label ends (exclusive); `None` once the front of the name is reached.
    end: Option<usize>,
    labels: u32,
}

impl<'a> Suffixes<'a> {
    /// The suffixes of `name`; `pad` holds a copy of a name shorter than 8 bytes.
    #[inline(always)]
    pub fn new(name: &'a [u8], pad: &'a mut [u8; 8], bounds: LabelBounds) -> Suffixes<'a> {
        let len = name.len();
        let bytes = padded(name, pad);
        Suffixes {
            bytes,
            len,
            bounds,
            dots: (len < MASKED_LEN).then(|| dot_mask(bytes, len)),
            h: HASH_SEED,
            end: Some(len),
            labels: 0,
        }
    }

    /// The next suffix within the label bounds: where it starts and its hash.
    #[inline(always)]
    pub fn next_suffix(&mut self) -> Option<(usize, u64)> {
        let bytes = self.bytes;
        loop {
            let end = self.end?;
            self.labels += 1;
            let start = match self.dots {
                // `end < 64`: the shift is defined. The highest dot below `end` is at bit
                // 63 - lz, so the label starts at 64 - lz (0 when there is none: lz = 64).
                Some(dots) => 64 - (dots & ((1u64 << end) - 1)).leading_zeros() as usize,
                None => label_start(bytes, end),
            };
            // Absorb the label from its end, 7 bytes at a time, each word tagged with the number
            // of label bytes left (an empty label is one word holding only its tag, 0). The
            // last word, the only one of most labels, holds the 0-7 bytes left: the loop runs
            // only for longer labels, and keeps no bookkeeping for the usual case.
            let absorb = |h: u64, e: usize, c: usize| {
                folded_multiply(
                    h ^ tail(bytes, e, c) ^ (((e - start) as u64) << 56),
                    HASH_MULTIPLIER,
                )
            };
            let mut e = end;
            while e - start > 7 {
                self.h = absorb(self.h, e, 7);
                e -= 7;
            }
            self.h = absorb(self.h, e, e - start);
            self.end = if start == 0 || self.labels >= self.bounds.most {
                None
            } else {
                Some(start - 1)
            };
            // The empty suffix (a name that ends with a dot) is not a key.
            if start < self.len && self.labels >= self.bounds.fewest {
                return Some((start, finish(self.h)));
            }
        }
    }
}

/// Bit `i` set when `bytes[i]` is a dot, for `i < len` (`len < 64`, `bytes.len() >= 8`, and
/// `bytes[len..]` holds no dot: it is either past the name or the zeros of [`padded`]).
///
/// Words are read at fixed steps clamped to the last whole word, so that the loop runs a fixed
/// number of times (no branch on the length to mispredict); a clamped word overlaps the one
/// before it, and marking a dot twice is harmless.
#[inline(always)]
fn dot_mask(bytes: &[u8], len: usize) -> u64 {
    let last = bytes.len().min(len.max(8)) - 8;
    let marks = |at: usize| {
        let at = at.min(last);
        byte_marks(dot_bytes(read_u64(bytes, at))) << at
    };
    let mut mask = marks(0) | marks(8) | marks(16) | marks(24);
    if len > 32 {
        mask |= marks(32) | marks(40) | marks(48) | marks(56);
    }
    mask
}

/// The top bits of the 8 bytes of `marks` (each byte 0x80 or 0) gathered into 8 bits, byte
/// `i` to bit `i`: a multiply sums shifted copies so that every mark lands in the top byte.
#[inline(always)]
fn byte_marks(marks: u64) -> u64 {
    ((marks >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// The `c` bytes (0-7) of `bytes` that end at `end`, in the low bytes of a word. `bytes` must
/// be at least 8 long: one unaligned load of the word that ends at `end`, or of the first word
/// when `end < 8`, and shifts (no branch on where the label lies).
#[inline(always)]
fn tail(bytes: &[u8], end: usize, c: usize) -> u64 {
    let base = end.saturating_sub(8);
    let word = read_u64(bytes, base);
    // Byte `end - c` to the bottom, then keep `c` bytes (`c <= 7`: the mask's shift is below
    // 64). The first shift is 64 only for an empty label (`c = 0`, `end >= 8`), whose mask is
    // 0 anyway: the wrapping shift keeps that case free of a branch and of overflow.
    word.wrapping_shr(8 * (end - c - base) as u32) & ((1u64 << (8 * c)) - 1)
}

/// Where the label that ends at `end` starts: one past the last dot before `end`, or 0. Reads
/// a word at a time from the end (`bytes.len() >= 8`): a label is rarely longer than a word,
/// so this is usually one load and a few bit operations instead of a loop over its bytes.
#[inline(always)]
fn label_start(bytes: &[u8], end: usize) -> usize {
    let mut e = end;
    while e >= 8 {
        // Byte `e - 1` is the word's top byte (little-endian).
        let dots = dot_bytes(read_u64(bytes, e - 8));
        if dots != 0 {
            // The highest marked byte is the last dot; its index in the word is 7 - lz / 8.
            return e - (dots.leading_zeros() / 8) as usize;
        }
        e -= 8;
    }
    // The first `e` (< 8) bytes: the low `e` bytes of word 0.
    let low = (1u64 << (8 * e)) - 1;
    let dots = dot_bytes(read_u64(bytes, 0)) & low;
    if dots == 0 {
        0
    } else {
        8 - (dots.leading_zeros() / 8) as usize
    }
}

/// The top bit of each byte of `w` that is `.`, and nothing else: the exact zero-byte test on
/// `w ^ "........"` (the carry-free form, which never marks a byte above a real match).
#[inline(always)]
fn dot_bytes(w: u64) -> u64 {
    const DOTS: u64 = 0x2e2e_2e2e_2e2e_2e2e;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = w ^ DOTS;
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// Finishes a suffix hash (murmur3's fmix64): spreads every byte into the top bits.
#[inline(always)]
fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The hash of a whole key (the same as the hash of the suffix of a name equal to it).
pub(crate) fn key_hash(key: &[u8]) -> u64 {
    let mut hash = 0;
    for_each_suffix(key, LabelBounds::ALL, |start, h| {
        if start == 0 {
            hash = h;
        }
    });
    hash
}

/// Directory bits for `n` keys (see [`BUCKET_SHIFT`]).
fn directory_bits(n: usize) -> u32 {
    let log2 = usize::BITS - n.saturating_sub(1).leading_zeros();
    log2.saturating_sub(BUCKET_SHIFT).min(MAX_DIRECTORY_BITS)
}

/// The bucket of `h`: its top `d` bits. `d <= MAX_DIRECTORY_BITS` (parsing checks it), and
/// the shift is split in two so that `d = 0` (one bucket) shifts by 63 then 1 instead of by 64,
/// which is not defined.
#[inline(always)]
fn bucket_of(h: u64, d: u32) -> usize {
    ((h >> 1) >> (63 - d.min(MAX_DIRECTORY_BITS))) as usize
}

/// The 32 bits of `h` after its bucket bits.
#[inline(always)]
fn fingerprint_of(h: u64, d: u32) -> u32 {
    ((h << d.min(MAX_DIRECTORY_BITS)) >> 32) as u32
}

/// The top `d + 32` bits of a hash: two keys with equal tags are indistinguishable.
pub(crate) fn tag_of(h: u64, n: usize) -> u64 {
    let d = directory_bits(n);
    h >> (32 - d)
}

/// Bits needed to hold `v`.
pub(crate) fn bits_for(v: u64) -> u32 {
    u64::BITS - v.leading_zeros()
}

/// Writes an index over `entries` (hash, value), which must be sorted by hash; every value
/// must fit in `width` bits (at most [`MAX_VALUE_WIDTH`]). `low_bits` is stored for the
/// caller's value layout; `labels` bounds the keys' label counts ([`LabelBounds::of`]).
pub(crate) fn write(
    entries: &[(u64, u64)],
    width: u32,
    low_bits: u32,
    labels: LabelBounds,
) -> Vec<u8> {
    let n = entries.len();
    let d = directory_bits(n);
    let width = width.clamp(1, MAX_VALUE_WIDTH);
    let buckets = 1usize << d;
    let value_bytes = (n * width as usize).div_ceil(8) + 8;
    let mut out = Vec::with_capacity(HEADER_LEN + (buckets + 1) * 4 + n * 4 + value_bytes);
    out.extend_from_slice(&(n as u64).to_le_bytes());
    out.extend_from_slice(&d.to_le_bytes());
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&low_bits.to_le_bytes());
    out.extend_from_slice(&labels.encode().to_le_bytes());
    let mut next = 0usize;
    for b in 0..=buckets {
        while next < n && bucket_of(entries[next].0, d) < b {
            next += 1;
        }
        out.extend_from_slice(&(next as u32).to_le_bytes());
    }
    for &(h, _) in entries {
        out.extend_from_slice(&fingerprint_of(h, d).to_le_bytes());
    }
    let start = out.len();
    out.resize(start + value_bytes, 0);
    let mask = (1u64 << width) - 1;
    for (i, &(_, v)) in entries.iter().enumerate() {
        let bit = i * width as usize;
        let at = start + bit / 8;
        let word = (v & mask) << (bit % 8);
        for (k, byte) in word.to_le_bytes().iter().enumerate() {
            out[at + k] |= byte;
        }
    }
    out
}

/// Where an index's parts lie in the file, checked once at load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexLayout {
    /// Number of keys.
    pub n: usize,
    d: u32,
    width: u32,
    /// The caller's split of a value (names: line bits below the combination index).
    pub low_bits: u32,
    /// Label counts of the keys.
    pub labels: LabelBounds,
    dir: usize,
    fingerprints: usize,
    values: usize,
    end: usize,
}

impl IndexLayout {
    /// Parses the section at `file[start..end]`: header fields in range, exact length, a
    /// directory that starts at 0, never decreases and ends at the key count.
    pub fn parse(file: &[u8], start: usize, end: usize) -> Result<IndexLayout, String> {
        let section = file.get(start..end).ok_or("outside the file")?;
        if section.len() < HEADER_LEN {
            return Err(format!("{} bytes: shorter than its header", section.len()));
        }
        let n = read_u64(section, 0);
        let d = read_u32(section, 8);
        let width = read_u32(section, 12);
        let low_bits = read_u32(section, 16);
        // Any label bounds are safe: wrong ones only make lookups skip keys.
        let labels = LabelBounds::decode(read_u32(section, 20));
        if n > u64::from(u32::MAX) || d > 32 || width == 0 || width > MAX_VALUE_WIDTH {
            return Err(format!(
                "bad header: {n} keys, {d} bucket bits, {width}-bit values"
            ));
        }
        if low_bits > width {
            return Err(format!("{low_bits} low bits in a {width}-bit value"));
        }
        let n = n as usize;
        if d != directory_bits(n) {
            return Err(format!("{d} bucket bits for {n} keys"));
        }
        let dir_len = ((1usize << d) + 1) * 4;
        // Checked: on a 32-bit target a crafted key count could overflow `usize`.
        let sizes = n.checked_mul(width as usize).and_then(|bits| {
            let fingerprint_bytes = n.checked_mul(4)?;
            let value_bytes = bits.div_ceil(8).checked_add(8)?;
            HEADER_LEN
                .checked_add(dir_len)?
                .checked_add(fingerprint_bytes)?
                .checked_add(value_bytes)
        });
        let Some(expected) = sizes else {
            return Err(format!("{n} keys of {width} bits do not fit in memory"));
        };
        if section.len() != expected {
            return Err(format!(
                "{} bytes, expected {expected} for {n} keys",
                section.len()
            ));
        }
        let dir = &section[HEADER_LEN..HEADER_LEN + dir_len];
        let mut last = 0u32;
        for (b, entry) in dir.chunks_exact(4).enumerate() {
            let v = read_u32(entry, 0);
            if v < last || (b == 0 && v != 0) || v as usize > n {
                return Err(format!("bucket directory is not monotonic at bucket {b}"));
            }
            last = v;
        }
        if last as usize != n {
            return Err(format!("bucket directory ends at {last}, not {n}"));
        }
        let dir = start + HEADER_LEN;
        let fingerprints = dir + dir_len;
        Ok(IndexLayout {
            n,
            d,
            width,
            low_bits,
            labels,
            dir,
            fingerprints,
            values: fingerprints + n * 4,
            end,
        })
    }

    /// The slices of this index inside `file` (the bytes it was parsed from).
    #[inline]
    pub fn view<'f>(&self, file: &'f [u8]) -> IndexView<'f> {
        IndexView {
            dir: file.get(self.dir..self.fingerprints).unwrap_or(&[]),
            fingerprints: file.get(self.fingerprints..self.values).unwrap_or(&[]),
            values: file.get(self.values..self.end).unwrap_or(&[]),
            d: self.d,
            width: self.width,
        }
    }

    /// Checks what parsing does not (O(n)): fingerprints sorted within each bucket, and every
    /// value accepted by `value_ok`.
    pub fn verify(&self, file: &[u8], value_ok: impl Fn(u64) -> bool) -> Result<(), String> {
        let view = self.view(file);
        for b in 0..(1usize << self.d) {
            let (lo, hi) = view.range(b);
            let mut last = 0u32;
            for i in lo..hi {
                let fp = read_u32(view.fingerprints, i * 4);
                if fp < last {
                    return Err(format!("fingerprints of bucket {b} are not sorted"));
                }
                last = fp;
            }
        }
        for i in 0..self.n {
            let v = view.value(i);
            if !value_ok(v) {
                return Err(format!("value {v} of key {i} points nowhere"));
            }
        }
        Ok(())
    }
}

/// A bucket's key range `lo..hi`, and `start`, the first key of the window compared first
/// (see [`IndexView::matches`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Candidates {
    lo: usize,
    hi: usize,
    start: usize,
}

/// An index over borrowed bytes, for one lookup.
#[derive(Clone, Copy)]
pub(crate) struct IndexView<'f> {
    dir: &'f [u8],
    fingerprints: &'f [u8],
    values: &'f [u8],
    d: u32,
    width: u32,
}

impl<'f> IndexView<'f> {
    #[inline(always)]
    fn range(&self, bucket: usize) -> (usize, usize) {
        let lo = read_u32(self.dir, bucket * 4) as usize;
        let hi = read_u32(self.dir, bucket * 4 + 4) as usize;
        (lo, hi.max(lo))
    }

    /// Asks the CPU to start loading the directory entry of `h`'s bucket.
    #[inline(always)]
    pub fn prefetch_bucket(&self, h: u64) {
        prefetch(self.dir, bucket_of(h, self.d) * 4);
    }

    /// Where `h`'s key would be: its bucket's key range and the [`WINDOW`] of it to compare
    /// first. Also starts loading that window's fingerprints and the value where a match
    /// would be, so that a match does not wait for a third load after the directory and the
    /// fingerprints.
    #[inline(always)]
    pub fn candidates(&self, h: u64) -> Candidates {
        let (lo, hi) = self.range(bucket_of(h, self.d));
        let fp = u64::from(fingerprint_of(h, self.d));
        let guess = lo + ((fp * (hi - lo) as u64) >> 32) as usize;
        // Centred on the guess, kept inside the bucket when the bucket is larger than the
        // window, at the bucket's start when it is not.
        let start = guess
            .saturating_sub(WINDOW / 2)
            .min(hi.saturating_sub(WINDOW))
            .max(lo);
        prefetch(self.fingerprints, start * 4);
        prefetch(self.fingerprints, start * 4 + (WINDOW * 4 - 1));
        let at = guess * self.width as usize / 8;
        prefetch(self.values, at.saturating_sub(16));
        prefetch(self.values, at + 16);
        Candidates { lo, hi, start }
    }

    /// Calls `found` with the index of every key of the bucket whose fingerprint is `h`'s
    /// (`h` need not be the hash `candidates` was given: the window is only where to look
    /// first).
    ///
    /// The window is compared as one fixed block, masked to the bucket: no branch per key or
    /// on the bucket's size, whose outcomes the branch predictor would lose; equal keys come
    /// out as bits. Fingerprints are sorted within a bucket, so the window holds every equal
    /// key unless its first fingerprint (when keys precede it) is not below `fp` or its last
    /// (when keys follow) not above. Then, and for a window that would run past the end of the
    /// fingerprints, the whole bucket is compared key by key.
    #[inline(always)]
    pub fn matches(&self, h: u64, c: Candidates, mut found: impl FnMut(usize)) {
        let fp = fingerprint_of(h, self.d);
        let Candidates { lo, hi, start } = c;
        if let Some(b) = window_at(self.fingerprints, start) {
            // A bucket the window holds whole (every bucket of a set below the directory cap)
            // needs no proof; which case an index takes is the same for nearly every lookup.
            let whole = hi - lo <= WINDOW;
            let (first, last) = (read_u32(b, 0), read_u32(b, 4 * (WINDOW - 1)));
            // `|` and `&`, not `||` and `&&`: evaluated whole, no branch per condition to
            // mispredict (which way they go depends on the query).
            if whole || ((start <= lo) | (first < fp)) & ((start + WINDOW >= hi) | (last > fp)) {
                // Lanes past the bucket belong to other buckets (`hi - start` is below the
                // window only when the window starts the bucket).
                let mut equal = equal_lanes(b, fp) & low_bits(hi.saturating_sub(start));
                while equal != 0 {
                    found(start + equal.trailing_zeros() as usize);
                    equal &= equal - 1;
                }
                return;
            }
        }
        let Some(bucket) = self.fingerprints.get(lo * 4..hi * 4) else {
            return;
        };
        for (j, c) in bucket.chunks_exact(4).enumerate() {
            if u32::from_le_bytes([c[0], c[1], c[2], c[3]]) == fp {
                found(lo + j);
            }
        }
    }

    /// The packed value of key `i` (0 when out of range: parsing makes that impossible).
    #[inline(always)]
    pub fn value(&self, i: usize) -> u64 {
        let bit = i * self.width as usize;
        let word = read_u64(self.values, bit / 8);
        (word >> (bit % 8)) & ((1u64 << self.width) - 1)
    }
}

/// A cache hint for `bytes[at]`; does nothing where no hint is available or out of bounds.
#[inline(always)]
fn prefetch(bytes: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = bytes.get(at) {
        // SAFETY: `_mm_prefetch` is an SSE instruction, and SSE is part of the x86_64 baseline;
        // it is a hint that reads nothing architecturally and never faults, and `b` is a
        // valid reference anyway.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (b as *const u8).cast(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, at);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn build(keys: &[&str]) -> (Vec<u8>, IndexLayout) {
        let mut entries: Vec<(u64, u64)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (key_hash(k.as_bytes()), i as u64))
            .collect();
        entries.sort();
        let bytes = write(
            &entries,
            bits_for(keys.len() as u64),
            0,
            LabelBounds::of(keys.iter().map(|k| k.as_bytes())),
        );
        let layout = IndexLayout::parse(&bytes, 0, bytes.len()).unwrap();
        (bytes, layout)
    }

    fn find(bytes: &[u8], layout: &IndexLayout, key: &str) -> Vec<u64> {
        let view = layout.view(bytes);
        let h = key_hash(key.as_bytes());
        let mut out = Vec::new();
        view.matches(h, view.candidates(h), |i| out.push(view.value(i)));
        out
    }

    fn suffixes_of(name: &[u8]) -> Vec<(usize, u64)> {
        let mut seen = Vec::new();
        for_each_suffix(name, LabelBounds::ALL, |start, h| seen.push((start, h)));
        seen
    }

    /// Every label-boundary suffix of `name` is reported once, longest last, with the hash a
    /// key equal to it has.
    fn assert_every_label_suffix(name: &[u8]) {
        let expected: Vec<usize> = (0..name.len())
            .rev()
            .filter(|&i| i == 0 || name[i - 1] == b'.')
            .collect();
        let seen = suffixes_of(name);
        assert_eq!(
            seen.iter().map(|s| s.0).collect::<Vec<_>>(),
            expected,
            "{name:?}"
        );
        for (i, h) in seen {
            assert_eq!(h, key_hash(&name[i..]), "{name:?} at {i}");
        }
    }

    #[test]
    fn suffix_hashes_are_key_hashes() {
        // Hashing from the end: the state after the labels of a suffix is the key's.
        for name in [
            &b"a.b.example.org"[..],
            b"x.cn",
            b"com",
            b"a..b",
            b".com",
            b"com.",
            b"very-long-label-for-fuzzing.example.co.uk",
            b"1234567.12345678.123456789012345",
            b"\xff\xfe.\x00",
        ] {
            assert_every_label_suffix(name);
        }
        assert!(suffixes_of(b"").is_empty());
    }

    #[test]
    fn label_starts_are_found_at_every_position() {
        // Dots before, at and after every word boundary, doubled dots, dots at both ends:
        // every label-boundary suffix is reported once, in order, with its key's hash.
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..72usize {
            for _ in 0..40 {
                let name: Vec<u8> = (0..len)
                    .map(|_| {
                        rng = rng
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        if (rng >> 60) < 4 {
                            b'.'
                        } else {
                            b'a' + (rng >> 59) as u8 % 26
                        }
                    })
                    .collect();
                assert_every_label_suffix(&name);
            }
        }
    }

    #[test]
    fn dot_masks_mark_exactly_the_dots() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for len in 0..MASKED_LEN {
            for _ in 0..50 {
                let name: Vec<u8> = (0..len)
                    .map(|_| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        // Dots, letters, and bytes one away from a dot or with the top bit set.
                        [b'.', b'a', b'-', b'/', 0xae, 0x2e ^ 0x80][(rng % 6) as usize]
                    })
                    .collect();
                let mut pad = [0u8; 8];
                let bytes = padded(&name, &mut pad);
                let expected = name
                    .iter()
                    .enumerate()
                    .filter(|(_, &b)| b == b'.')
                    .fold(0u64, |m, (i, _)| m | 1 << i);
                assert_eq!(dot_mask(bytes, len), expected, "{name:?}");
            }
        }
        assert_eq!(byte_marks(0x8000_0000_0000_0080), 0b1000_0001);
    }

    #[test]
    fn buckets_of_every_size_find_exactly_their_keys() {
        // Keys crafted into chosen buckets: sizes 0 to 40 (past the compared window of 16),
        // and the last buckets, whose window would run past the fingerprints.
        let d = directory_bits(2000);
        let last = (1u64 << d) - 1;
        let mut entries = Vec::new();
        let add = |entries: &mut Vec<(u64, u64)>, bucket: u64, fp: u64| {
            // Top `d` bits: the bucket; the next 32: the fingerprint.
            let value = entries.len() as u64;
            entries.push(((bucket << (64 - d)) | (fp << (32 - d)), value));
        };
        let sizes = (0..=40u64)
            .map(|b| (b, b))
            .chain([(last, 3), (last - 1, 1)]);
        for (bucket, size) in sizes {
            for k in 0..size {
                add(&mut entries, bucket, (k + 1) << 26);
            }
        }
        // The rest in one large bucket, so that the key count (and `d`) is right.
        while entries.len() < 2000 {
            let fp = 4 * entries.len() as u64;
            add(&mut entries, 100, fp);
        }
        entries.sort_unstable();
        let bytes = write(&entries, 16, 0, LabelBounds::ALL);
        let layout = IndexLayout::parse(&bytes, 0, bytes.len()).unwrap();
        assert_eq!(layout.d, d);
        let view = layout.view(&bytes);
        for (i, &(h, _)) in entries.iter().enumerate() {
            let mut found = Vec::new();
            view.matches(h, view.candidates(h), |j| found.push(j));
            assert_eq!(found, vec![i], "key {i}");
            // The same bucket, a fingerprint no key has.
            let mut found = Vec::new();
            view.matches(h ^ (1 << (32 - d)), view.candidates(h), |j| found.push(j));
            assert!(found.is_empty(), "near key {i}: {found:?}");
        }
    }

    #[test]
    fn every_lane_compare_agrees_with_the_plain_loop() {
        // Windows with the sought fingerprint planted in any set of lanes, and neighbours one
        // bit away from it (a sign or lane mix-up would show there).
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for round in 0..20_000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let fp = if round % 3 == 0 {
                u32::MAX - (rng as u32 & 3)
            } else {
                (rng >> 32) as u32
            };
            let planted = rng & 0xffff;
            let mut window = [0u8; WINDOW * 4];
            for j in 0..WINDOW {
                let lane = if planted & (1 << j) != 0 {
                    fp
                } else {
                    fp ^ (1 << (j * 2 % 32))
                };
                window[4 * j..4 * j + 4].copy_from_slice(&lane.to_le_bytes());
            }
            assert_eq!(equal_lanes_portable(&window, fp), planted);
            assert_eq!(equal_lanes(&window, fp), planted);
        }
    }

    #[test]
    fn windows_find_every_equal_fingerprint_however_a_bucket_spreads_them() {
        // Buckets of 1 to 120 keys whose fingerprints are uniform, bunched into a narrow range,
        // all at one end, or repeated in runs (keys whose hashes agree on all d + 32 bits),
        // so that the key sought is often far from where a uniform bucket would put it: the
        // windowed compare must report exactly what a scan of the whole bucket does.
        // Between 2^14 and 2^15 keys: d = 12, 4096 buckets, of which every 13th is filled.
        let d = directory_bits(20_000);
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut entries: Vec<(u64, u64)> = Vec::new();
        let mut bucket = 0u64;
        while entries.len() < 17_000 {
            let size = 1 + next() % 120;
            let shape = bucket % 4;
            let base = next() >> 32;
            for _ in 0..size {
                let fp = match shape {
                    0 => next() >> 32,
                    1 => (base + next() % 64).min(u64::from(u32::MAX)),
                    2 => next() % 40,
                    _ => (base + next() % 6 * 1000).min(u64::from(u32::MAX)),
                };
                entries.push(((bucket << (64 - d)) | (fp << (32 - d)), 0));
            }
            bucket += 13;
        }
        entries.sort_unstable();
        for (i, e) in entries.iter_mut().enumerate() {
            e.1 = i as u64;
        }
        let bytes = write(
            &entries,
            bits_for(entries.len() as u64),
            0,
            LabelBounds::ALL,
        );
        let layout = IndexLayout::parse(&bytes, 0, bytes.len()).unwrap();
        assert_eq!(layout.d, d);
        let view = layout.view(&bytes);
        let scan = |h: u64| -> Vec<usize> {
            let b = bucket_of(h, d);
            let lo = entries.partition_point(|e| bucket_of(e.0, d) < b);
            let hi = entries.partition_point(|e| bucket_of(e.0, d) <= b);
            (lo..hi)
                .filter(|&j| fingerprint_of(entries[j].0, d) == fingerprint_of(h, d))
                .collect()
        };
        let step = 1u64 << (32 - d);
        for &(h, _) in &entries {
            for probe in [h, h.wrapping_add(step), h.wrapping_sub(step)] {
                if bucket_of(probe, d) != bucket_of(h, d) {
                    continue;
                }
                let mut found = Vec::new();
                view.matches(probe, view.candidates(probe), |j| found.push(j));
                assert_eq!(found, scan(probe), "{probe:#x}");
            }
        }
    }

    #[test]
    fn hash_is_the_file_format() {
        // Compiled files (format version 3) hold these hashes: a change here breaks every file
        // already written, and needs a new format version.
        let pinned: [(&[u8], u64); 5] = [
            (b"com", 0x6fb3_10c3_8462_84d6),
            (b"example.com", 0x10c1_5013_9146_35fb),
            (b"ads.example.co.uk", 0x46f4_bda6_a24c_358b),
            (b"a", 0x3256_585a_2588_1942),
            (
                b"very-long-label-for-fuzzing.example.co.uk",
                0x5821_7961_ebe9_78e6,
            ),
        ];
        for (key, h) in pinned {
            assert_eq!(key_hash(key), h, "{:?}", std::str::from_utf8(key));
        }
    }

    #[test]
    fn label_bounds_skip_suffixes_no_key_has() {
        let bounds = LabelBounds::of([&b"example.com"[..], b"a.b.example.org"]);
        assert_eq!(bounds, LabelBounds { fewest: 2, most: 4 });
        let mut seen = Vec::new();
        for_each_suffix(b"x.y.a.b.example.org", bounds, |start, h| {
            seen.push((start, h))
        });
        let starts: Vec<usize> = seen.iter().map(|s| s.0).collect();
        // org (1 label) and the 5- and 6-label suffixes are skipped.
        assert_eq!(starts, vec![8, 6, 4]);
        assert_eq!(seen[0].1, key_hash(b"example.org"));
        assert_eq!(seen[2].1, key_hash(b"a.b.example.org"));
        assert_eq!(LabelBounds::decode(bounds.encode()), bounds);
        assert_eq!(
            LabelBounds::decode(LabelBounds::ALL.encode()).most,
            u32::MAX
        );
        assert_eq!(LabelBounds::of([]), LabelBounds { fewest: 0, most: 0 });
    }

    #[test]
    fn near_names_hash_apart() {
        let names: Vec<&[u8]> = vec![
            b"ab",
            b"ab\0",
            b"ba",
            b".ab",
            b"a.b",
            b"ab.",
            b"abcdefg",
            b"abcdefgh",
            b"abcdefg.h",
            b"habcdefg",
            b"a",
            b"",
            b"\0",
            b"com",
            b"co.m",
        ];
        let hashes: HashSet<u64> = names.iter().map(|n| key_hash(n)).collect();
        assert_eq!(hashes.len(), names.len());
        // Lengths 1..40 of one letter (chunk and tag boundaries).
        let hashes: HashSet<u64> = (1..40).map(|n| key_hash(&vec![b'a'; n])).collect();
        assert_eq!(hashes.len(), 39);
    }

    #[test]
    fn every_key_is_found_with_its_value_and_others_are_not() {
        // 300,000 keys: past the directory cap (2^15 buckets of ~9 keys).
        for n in [0usize, 1, 2, 15, 16, 17, 1000, 20_000, 300_000] {
            let keys: Vec<String> = (0..n).map(|i| format!("k{i}.example")).collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let (bytes, layout) = build(&refs);
            assert_eq!(layout.n, n);
            assert!(layout.d <= MAX_DIRECTORY_BITS);
            layout.verify(&bytes, |v| v < n as u64).unwrap();
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(find(&bytes, &layout, k), vec![i as u64], "{k}");
            }
            let misses = (0..2000)
                .filter(|i| !find(&bytes, &layout, &format!("other{i}.example")).is_empty())
                .count();
            assert_eq!(misses, 0);
        }
    }

    #[test]
    fn wide_values_roundtrip() {
        let entries: Vec<(u64, u64)> = (0..100u64)
            .map(|i| (i << 57, (1u64 << 55) | (i * 0x0123_4567_89ab)))
            .collect();
        let bytes = write(&entries, 56, 0, LabelBounds::ALL);
        let layout = IndexLayout::parse(&bytes, 0, bytes.len()).unwrap();
        let view = layout.view(&bytes);
        for (i, (_, v)) in entries.iter().enumerate() {
            assert_eq!(view.value(i), v & ((1 << 56) - 1));
        }
    }

    #[test]
    fn malformed_sections_are_errors() {
        let (bytes, _) = build(&["a.com", "b.com", "c.com"]);
        for len in 0..bytes.len() {
            assert!(IndexLayout::parse(&bytes[..len], 0, len).is_err(), "{len}");
        }
        // A directory that goes backwards.
        let mut bad = bytes.clone();
        bad[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&2u32.to_le_bytes());
        assert!(IndexLayout::parse(&bad, 0, bad.len()).is_err());
        // Too many bucket bits, too wide values.
        for (at, v) in [(8, 40u32), (12, 0), (12, 57), (16, 60)] {
            let mut bad = bytes.clone();
            bad[at..at + 4].copy_from_slice(&v.to_le_bytes());
            assert!(IndexLayout::parse(&bad, 0, bad.len()).is_err(), "{at}={v}");
        }
        // Unsorted fingerprints pass parsing (O(1) per bucket) but not verify.
        let (mut bytes, layout) = build(&["a.com", "b.com"]);
        let fps = HEADER_LEN + 2 * 4;
        let (a, b) = (fps, fps + 4);
        let tmp: [u8; 4] = bytes[a..a + 4].try_into().unwrap();
        bytes.copy_within(b..b + 4, a);
        bytes[b..b + 4].copy_from_slice(&tmp);
        assert!(layout.verify(&bytes, |_| true).is_err());
    }
}
