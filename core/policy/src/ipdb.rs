//! IP databases: address -> (ASN, organisation) and address -> country, each fact with the name
//! of the database that stated it.
//!
//! Formats read (v4 and v6, plain or gzip-compressed, detected by the gzip magic):
//! - ip-location-db ASN CSV: `start,end,asn,org` (inclusive ranges, CSV-quoted org);
//! - ip-location-db country CSV: `start,end,CC`;
//! - iptoasn TSV: `start<TAB>end<TAB>asn<TAB>CC<TAB>description` (gives both facts).
//!
//! Every database, bundled or loaded, is held in one compact form ([`compact`]): sorted range
//! starts, a fact index per range and the deduplicated facts, read in place. The bundled ones
//! are made at build time (`build.rs`) and stay in the binary's file-backed pages; text files
//! are parsed into the same form on the heap. Owner and country stay in separate tables
//! because they are separate facts: the country of a server is not the country of the company
//! that announces it.

use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::rules::{LoadError, LoadReport};

pub(crate) mod compact;

use compact::RangeFact;

/// Longest line accepted. Real rows are < 200 bytes; the cap keeps a garbage file with no line
/// breaks (or a 10 MB line) from being buffered whole.
const MAX_LINE: usize = 4096;

/// At most this many errors are kept in a report (the count goes on).
const MAX_KEPT_ERRORS: usize = 50;

/// After this many bad lines the file is not the format we were told: stop reading it.
const MAX_ERRORS_BEFORE_GIVING_UP: u64 = 1000;

/// Which layout an IP database file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpDbFormat {
    /// ip-location-db `start,end,asn,org`.
    AsnCsv,
    /// ip-location-db `start,end,CC`.
    CountryCsv,
    /// iptoasn.com `start\tend\tasn\tCC\tdescription` (fills an ASN and a country table).
    IptoasnTsv,
}

impl IpDbFormat {
    /// Guesses the layout from the first data line: tabs mean iptoasn; three comma fields mean a
    /// country CSV; four or more mean an ASN CSV.
    pub fn detect(first_line: &str) -> Option<IpDbFormat> {
        if first_line.contains('\t') {
            return Some(IpDbFormat::IptoasnTsv);
        }
        match first_line.split(',').count() {
            3 => Some(IpDbFormat::CountryCsv),
            n if n >= 4 => Some(IpDbFormat::AsnCsv),
            _ => None,
        }
    }
}

/// The network owner of an address, as an ASN database says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsnInfo<'a> {
    /// The autonomous system number.
    pub asn: u32,
    /// The AS organisation as registered (e.g. "Shenzhen Tencent Computer Systems Company Limited").
    pub org: &'a str,
    /// The database that said so (its file name).
    pub database: &'a str,
}

/// The country of an address, as a country database says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountryInfo<'a> {
    /// ISO 3166-1 alpha-2, uppercase.
    pub code: [u8; 2],
    /// The database that said so (its file name). Country databases disagree often: keep it.
    pub database: &'a str,
}

impl CountryInfo<'_> {
    /// The code as a string slice (always ASCII).
    pub fn code_str(&self) -> &str {
        std::str::from_utf8(&self.code).unwrap_or("??")
    }
}

/// Where a compact blob lives: in the binary (bundled data, file-backed pages), on the heap
/// (parsed from a user's file), or in another backing such as a memory map (compiled by
/// another process), shared between clones.
#[derive(Clone)]
enum Blob {
    Static(&'static [u8]),
    Shared(Arc<[u8]>),
    Backed(Arc<dyn crate::Backing>),
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Blob::Static(_) => "Static",
            Blob::Shared(_) => "Shared",
            Blob::Backed(_) => "Backed",
        };
        write!(f, "{kind}({} bytes)", self.bytes().len())
    }
}

impl Blob {
    #[inline]
    fn bytes(&self) -> &[u8] {
        match self {
            Blob::Static(b) => b,
            Blob::Shared(b) => b,
            Blob::Backed(b) => (**b).as_ref(),
        }
    }
}

/// One database (ASN or country facts, v4 and v6) in the compact form of [`compact`].
///
/// Storage is one sorted array of range starts per address family (`u32` for v4, `u128` for
/// v6, ends implied by the next start) and a parallel array of fact indices; a first-level
/// index on the key's top 16 bits narrows the binary search to the ranges starting in the
/// key's bucket (a handful for v4) instead of all 400k.
#[derive(Debug, Clone)]
struct Table {
    database: Arc<str>,
    blob: Blob,
    layout: compact::Layout,
    /// The blob's organisation names as text (see [`Strings`]).
    strings: Strings,
}

/// The organisation names of an ASN table as text, checked once: a lookup then slices
/// them instead of validating UTF-8 each time (that was a fifth of a lookup).
#[derive(Debug, Clone)]
enum Strings {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Table {
    fn parse(database: Arc<str>, blob: Blob) -> Result<Table, String> {
        let layout = compact::parse(blob.bytes())?;
        let strings = match &blob {
            Blob::Static(bytes) => Strings::Static(compact::strings(bytes, &layout)),
            // A copy of the names only (the full ASN database's are ~2 MB): the blob itself
            // stays one allocation.
            Blob::Shared(_) | Blob::Backed(_) => {
                Strings::Shared(Arc::from(compact::strings(blob.bytes(), &layout)))
            }
        };
        Ok(Table {
            database,
            blob,
            layout,
            strings,
        })
    }

    #[inline]
    fn strings(&self) -> &str {
        match &self.strings {
            Strings::Static(s) => s,
            Strings::Shared(s) => s,
        }
    }

    /// The fact index for `addr` (IPv4-mapped IPv6 addresses are looked up as IPv4).
    #[inline]
    fn fact(&self, addr: IpAddr) -> Option<u32> {
        let bytes = self.blob.bytes();
        match addr {
            IpAddr::V4(a) => compact::lookup(bytes, &self.layout.v4, u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => compact::lookup(bytes, &self.layout.v4, u32::from(v4)),
                None => compact::lookup(bytes, &self.layout.v6, u128::from(a)),
            },
        }
    }

    /// What this country table says about `addr`. `#[inline]` like the lookups that call it:
    /// a lookup is a few dependent loads, and a call the caller's crate cannot inline (the
    /// closure of an iterator chain) costs as much again (docs/decisions.md).
    #[inline]
    fn country(&self, addr: IpAddr) -> Option<CountryInfo<'_>> {
        let fact = self.fact(addr)?;
        let code = compact::country_fact(self.blob.bytes(), &self.layout, fact)?;
        Some(CountryInfo {
            code,
            database: &self.database,
        })
    }

    fn ranges(&self) -> usize {
        self.layout.v4.ranges + self.layout.v6.ranges
    }

    fn heap_bytes(&self) -> usize {
        let strings = match &self.strings {
            Strings::Static(_) => 0,
            Strings::Shared(s) => s.len(),
        };
        match &self.blob {
            Blob::Static(_) | Blob::Backed(_) => strings,
            Blob::Shared(b) => b.len() + strings,
        }
    }
}

/// Address -> owner (ASN, organisation) and address -> country, from any number of databases.
///
/// Lookups ask the tables in the order they were loaded and return the first answer, so load the
/// database you trust most first. Owner and country stay in separate tables because they are
/// separate facts: the country of a server is not the country of the company that announces
/// it. Cloning is cheap (the tables are shared).
#[derive(Debug, Clone, Default)]
pub struct IpDb {
    asn: Vec<Table>,
    country: Vec<Table>,
}

impl IpDb {
    /// An empty database: every lookup answers `None`.
    pub fn new() -> IpDb {
        IpDb::default()
    }

    /// Loads a file's bytes (gzip or plain) in the given format, or the detected one when
    /// `format` is `None`. `database` names the facts (use the file name).
    pub fn load_bytes(
        &mut self,
        database: &str,
        format: Option<IpDbFormat>,
        bytes: &[u8],
    ) -> LoadReport {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let gz = flate2::read::MultiGzDecoder::new(bytes);
            self.load(database, format, std::io::BufReader::new(gz))
        } else {
            self.load(database, format, bytes)
        }
    }

    /// Loads one database from a reader (plain text; use [`IpDb::load_bytes`] for gzip).
    pub fn load(
        &mut self,
        database: &str,
        format: Option<IpDbFormat>,
        reader: impl BufRead,
    ) -> LoadReport {
        let mut loader = Loader::new(database, format);
        loader.run(reader);
        loader.finish(self)
    }

    /// Adds a database already in the compact form (see the `compact` module; `build.rs`
    /// makes the bundled ones), read in place: its pages stay in the binary and only those
    /// that lookups touch become resident. The header and section bounds are checked here;
    /// the rest is read through bounds-checked accessors, so crafted bytes cannot panic.
    pub fn load_compact(&mut self, database: &str, bytes: &'static [u8]) -> LoadReport {
        self.add_compact(database, Blob::Static(bytes))
    }

    /// Adds a database in the compact form read at run time (a file shipped beside the app or
    /// fetched later: no CSV to parse, and a tenth of its size), with the same checks as
    /// [`IpDb::load_compact`]. Bytes from outside this build should pass [`IpDb::verify`]
    /// before they are trusted: until then a damaged table answers wrongly, never panics.
    pub fn load_compact_owned(&mut self, database: &str, bytes: Vec<u8>) -> LoadReport {
        self.add_compact(database, Blob::Shared(Arc::from(bytes)))
    }

    /// Adds a database in the compact form from any backing (a memory map of a file another
    /// process wrote: see `embargo_app::compiled`), read in place, with the checks of
    /// [`IpDb::load_compact_owned`].
    pub fn load_compact_backed(
        &mut self,
        database: &str,
        bytes: Arc<dyn crate::Backing>,
    ) -> LoadReport {
        self.add_compact(database, Blob::Backed(bytes))
    }

    /// The tables not read in place from this binary (parsed from text at run time, or mapped),
    /// ASN tables first, each as (database, compact bytes), for
    /// [`IpDb::load_compact_backed`] in another process.
    pub fn runtime_tables(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.asn
            .iter()
            .chain(&self.country)
            .filter(|t| !matches!(t.blob, Blob::Static(_)))
            .map(|t| (&*t.database, t.blob.bytes()))
    }

    /// Only the tables read in place from this binary (see [`IpDb::runtime_tables`]).
    pub fn static_tables(&self) -> IpDb {
        let keep = |tables: &[Table]| {
            tables
                .iter()
                .filter(|t| matches!(t.blob, Blob::Static(_)))
                .cloned()
                .collect()
        };
        IpDb {
            asn: keep(&self.asn),
            country: keep(&self.country),
        }
    }

    fn add_compact(&mut self, database: &str, blob: Blob) -> LoadReport {
        let mut report = LoadReport {
            list: database.to_owned(),
            ..LoadReport::default()
        };
        match Table::parse(Arc::from(database), blob) {
            Ok(table) => {
                report.accepted = table.ranges() as u64;
                self.push(table);
            }
            Err(message) => {
                report.error_count = 1;
                report.errors.push(LoadError {
                    list: database.to_owned(),
                    line: 0,
                    field: Some("compact".into()),
                    message,
                });
            }
        }
        report
    }

    /// Checks every table completely (range order, index, fact indices, string bounds): what
    /// [`IpDb::load_compact`] leaves out because it reads every page. For compact bytes that
    /// come from elsewhere than this build; the error names the database.
    pub fn verify(&self) -> Result<(), String> {
        for table in self.asn.iter().chain(&self.country) {
            compact::verify(table.blob.bytes(), &table.layout)
                .map_err(|e| format!("{}: {e}", table.database))?;
        }
        Ok(())
    }

    fn push(&mut self, table: Table) {
        if table.layout.kind == compact::KIND_ASN {
            self.asn.push(table);
        } else {
            self.country.push(table);
        }
    }

    /// Appends another database's tables after this one's (they answer only what this one does
    /// not know). The tables are shared, not copied.
    pub fn extend_from(&mut self, other: &IpDb) {
        self.asn.extend(other.asn.iter().cloned());
        self.country.extend(other.country.iter().cloned());
    }

    /// Who announces this address, by the first ASN database that knows.
    #[inline]
    pub fn lookup_asn(&self, addr: IpAddr) -> Option<AsnInfo<'_>> {
        self.asn.iter().find_map(|table| {
            let fact = table.fact(addr)?;
            let (asn, org) =
                compact::asn_fact(table.blob.bytes(), &table.layout, table.strings(), fact)?;
            Some(AsnInfo {
                asn,
                org,
                database: &table.database,
            })
        })
    }

    /// Where this address is, by the first country database that knows.
    #[inline]
    pub fn lookup_country(&self, addr: IpAddr) -> Option<CountryInfo<'_>> {
        self.country.iter().find_map(|table| table.country(addr))
    }

    /// What every loaded country database says about this address (they disagree often).
    pub fn lookup_countries(&self, addr: IpAddr) -> impl Iterator<Item = CountryInfo<'_>> + '_ {
        self.country
            .iter()
            .filter_map(move |table| table.country(addr))
    }

    /// Whether any ASN or country data is loaded.
    pub fn is_empty(&self) -> bool {
        self.asn.is_empty() && self.country.is_empty()
    }

    /// Ranges loaded: (ASN ranges, country ranges).
    pub fn range_counts(&self) -> (usize, usize) {
        let asn = self.asn.iter().map(Table::ranges).sum();
        let country = self.country.iter().map(Table::ranges).sum();
        (asn, country)
    }

    /// Approximate heap bytes held (for memory budgets and benchmarks). Bundled databases
    /// read in place from the binary count zero.
    pub fn heap_bytes(&self) -> usize {
        self.asn
            .iter()
            .chain(&self.country)
            .map(Table::heap_bytes)
            .sum()
    }

    /// Names of the loaded databases: (ASN databases, country databases).
    pub fn database_names(&self) -> (Vec<&str>, Vec<&str>) {
        (
            self.asn.iter().map(|t| &*t.database).collect(),
            self.country.iter().map(|t| &*t.database).collect(),
        )
    }
}

/// One file being read: ranges and facts collected, encoded into the compact form at the end.
struct Loader {
    database: Arc<str>,
    format: Option<IpDbFormat>,
    asn_v4: Vec<RangeFact<u32>>,
    asn_v6: Vec<RangeFact<u128>>,
    /// (ASN, organisation index into `orgs`), deduplicated.
    asn_facts: Vec<(u32, u32)>,
    asn_index: HashMap<(u32, u32), u32>,
    orgs: Vec<Box<str>>,
    org_index: HashMap<Box<str>, u32>,
    country_v4: Vec<RangeFact<u32>>,
    country_v6: Vec<RangeFact<u128>>,
    country_facts: Vec<[u8; 2]>,
    report: LoadReport,
}

impl Loader {
    fn new(database: &str, format: Option<IpDbFormat>) -> Loader {
        Loader {
            database: Arc::from(database),
            format,
            asn_v4: Vec::new(),
            asn_v6: Vec::new(),
            asn_facts: Vec::new(),
            asn_index: HashMap::new(),
            orgs: Vec::new(),
            org_index: HashMap::new(),
            country_v4: Vec::new(),
            country_v6: Vec::new(),
            country_facts: Vec::new(),
            report: LoadReport {
                list: String::new(),
                ..LoadReport::default()
            },
        }
    }

    fn error(&mut self, line: u32, field: Option<&str>, message: impl Into<String>) {
        self.report.error_count += 1;
        if self.report.errors.len() < MAX_KEPT_ERRORS {
            self.report.errors.push(LoadError {
                list: self.database.to_string(),
                line,
                field: field.map(str::to_owned),
                message: message.into(),
            });
        }
    }

    fn run(&mut self, mut reader: impl BufRead) {
        self.report.list = self.database.to_string();
        let mut buf = Vec::with_capacity(256);
        let mut line_no: u32 = 0;
        loop {
            buf.clear();
            line_no = line_no.saturating_add(1);
            match read_bounded_line(&mut reader, &mut buf) {
                Ok(LineRead::Eof) => break,
                Ok(LineRead::TooLong) => {
                    self.error(
                        line_no,
                        None,
                        format!("line longer than {MAX_LINE} bytes (not an IP database?)"),
                    );
                }
                Ok(LineRead::Line) => match std::str::from_utf8(&buf) {
                    Ok(text) => {
                        let text = text.trim_end_matches(['\n', '\r']);
                        self.line(line_no, text);
                    }
                    Err(_) => self.error(line_no, None, "not UTF-8 text"),
                },
                Err(err) => {
                    self.error(line_no, None, format!("read failed: {err}"));
                    break;
                }
            }
            if self.report.error_count >= MAX_ERRORS_BEFORE_GIVING_UP {
                self.error(
                    line_no,
                    None,
                    "too many bad lines: stopped reading (wrong format or not an IP database)",
                );
                break;
            }
        }
    }

    fn line(&mut self, line_no: u32, text: &str) {
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return;
        }
        let format = match self.format {
            Some(f) => f,
            None => match IpDbFormat::detect(trimmed) {
                Some(f) => {
                    self.format = Some(f);
                    f
                }
                None => {
                    self.error(line_no, None, "unrecognised IP database line");
                    return;
                }
            },
        };
        let result = match format {
            IpDbFormat::AsnCsv => self.asn_csv(trimmed),
            IpDbFormat::CountryCsv => self.country_csv(trimmed),
            IpDbFormat::IptoasnTsv => self.iptoasn(trimmed),
        };
        match result {
            Ok(()) => self.report.accepted += 1,
            Err((field, message)) => self.error(line_no, Some(field), message),
        }
    }

    fn asn_csv(&mut self, line: &str) -> Result<(), (&'static str, String)> {
        let fields = split_csv(line, 4).map_err(|m| ("org", m))?;
        if fields.len() < 4 {
            return Err(("asn", format!("expected 4 fields, found {}", fields.len())));
        }
        let range = parse_range(&fields[0], &fields[1])?;
        let asn = parse_asn(&fields[2])?;
        let org = self.intern(&fields[3]);
        self.push_asn(range, asn, org);
        Ok(())
    }

    fn country_csv(&mut self, line: &str) -> Result<(), (&'static str, String)> {
        let fields = split_csv(line, 3).map_err(|m| ("country", m))?;
        if fields.len() != 3 {
            return Err((
                "country",
                format!("expected 3 fields, found {}", fields.len()),
            ));
        }
        let range = parse_range(&fields[0], &fields[1])?;
        let code = parse_country(&fields[2])?;
        self.push_country(range, code);
        Ok(())
    }

    fn iptoasn(&mut self, line: &str) -> Result<(), (&'static str, String)> {
        let fields: Vec<&str> = line.splitn(5, '\t').collect();
        if fields.len() < 4 {
            return Err(("asn", format!("expected 5 fields, found {}", fields.len())));
        }
        let range = parse_range(fields[0], fields[1])?;
        let asn = parse_asn(fields[2])?;
        // iptoasn marks unrouted space with AS0 and country "None": a gap, not a fact.
        if asn == 0 {
            return Ok(());
        }
        let org = self.intern(fields.get(4).copied().unwrap_or("").trim());
        self.push_asn(range, asn, org);
        if let Ok(code) = parse_country(fields[3]) {
            self.push_country(range, code);
        }
        Ok(())
    }

    fn push_asn(&mut self, range: Range, asn: u32, org: u32) {
        let next = self.asn_facts.len() as u32;
        let fact = *self.asn_index.entry((asn, org)).or_insert(next);
        if fact == next {
            self.asn_facts.push((asn, org));
        }
        match range {
            Range::V4(s, e) => self.asn_v4.push((s, e, fact)),
            Range::V6(s, e) => self.asn_v6.push((s, e, fact)),
        }
    }

    fn push_country(&mut self, range: Range, code: [u8; 2]) {
        let fact = match self.country_facts.iter().position(|&c| c == code) {
            Some(i) => i as u32,
            None => {
                self.country_facts.push(code);
                self.country_facts.len() as u32 - 1
            }
        };
        match range {
            Range::V4(s, e) => self.country_v4.push((s, e, fact)),
            Range::V6(s, e) => self.country_v6.push((s, e, fact)),
        }
    }

    fn intern(&mut self, org: &str) -> u32 {
        if let Some(&i) = self.org_index.get(org) {
            return i;
        }
        let i = self.orgs.len() as u32;
        self.orgs.push(org.into());
        self.org_index.insert(org.into(), i);
        i
    }

    fn finish(mut self, db: &mut IpDb) -> LoadReport {
        if self.report.accepted == 0 && self.report.error_count == 0 {
            self.error(0, None, "no IP ranges in file");
        }
        if !self.asn_v4.is_empty() || !self.asn_v6.is_empty() {
            let facts: Vec<(u32, &str)> = self
                .asn_facts
                .iter()
                .map(|&(asn, org)| (asn, self.orgs.get(org as usize).map_or("", |o| &**o)))
                .collect();
            let bytes = compact::encode_asn(&facts, &mut self.asn_v4, &mut self.asn_v6);
            self.push_table(db, bytes);
        }
        if !self.country_v4.is_empty() || !self.country_v6.is_empty() {
            let bytes = compact::encode_country(
                &self.country_facts,
                &mut self.country_v4,
                &mut self.country_v6,
            );
            self.push_table(db, bytes);
        }
        self.report
    }

    fn push_table(&mut self, db: &mut IpDb, bytes: Vec<u8>) {
        match Table::parse(self.database.clone(), Blob::Shared(Arc::from(bytes))) {
            Ok(table) => db.push(table),
            // Only a database past 4 GiB of ranges could fail to encode.
            Err(message) => self.error(0, None, format!("could not store the table: {message}")),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Range {
    V4(u32, u32),
    V6(u128, u128),
}

fn parse_range(start: &str, end: &str) -> Result<Range, (&'static str, String)> {
    let s: IpAddr = start
        .trim()
        .parse()
        .map_err(|_| ("start", format!("not an IP address: {:?}", clip(start))))?;
    let e: IpAddr = end
        .trim()
        .parse()
        .map_err(|_| ("end", format!("not an IP address: {:?}", clip(end))))?;
    match (s, e) {
        (IpAddr::V4(s), IpAddr::V4(e)) => {
            let (s, e) = (u32::from(s), u32::from(e));
            if s > e {
                return Err(("end", "range end before start".into()));
            }
            Ok(Range::V4(s, e))
        }
        (IpAddr::V6(s), IpAddr::V6(e)) => {
            let (s, e) = (u128::from(s), u128::from(e));
            if s > e {
                return Err(("end", "range end before start".into()));
            }
            Ok(Range::V6(s, e))
        }
        _ => Err(("end", "start and end are different IP versions".into())),
    }
}

fn parse_asn(text: &str) -> Result<u32, (&'static str, String)> {
    let t = text.trim();
    let t = t
        .strip_prefix("AS")
        .or_else(|| t.strip_prefix("as"))
        .unwrap_or(t);
    t.parse()
        .map_err(|_| ("asn", format!("not an AS number: {:?}", clip(text))))
}

fn parse_country(text: &str) -> Result<[u8; 2], (&'static str, String)> {
    let t = text.trim().as_bytes();
    if t.len() == 2 && t.iter().all(u8::is_ascii_alphabetic) {
        Ok([t[0].to_ascii_uppercase(), t[1].to_ascii_uppercase()])
    } else {
        Err((
            "country",
            format!("not an ISO country code: {:?}", clip(text)),
        ))
    }
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Splits one CSV line into at most `max` fields; the last field takes the rest. Handles
/// RFC 4180 quoting (`"Cloudflare, Inc."`, doubled quotes inside).
fn split_csv(line: &str, max: usize) -> Result<Vec<String>, String> {
    let mut fields = Vec::with_capacity(max);
    let mut rest = line;
    while fields.len() + 1 < max {
        let (field, next) = take_csv_field(rest)?;
        fields.push(field);
        match next {
            Some(n) => rest = n,
            None => return Ok(fields),
        }
    }
    let (field, next) = take_csv_field(rest)?;
    if let Some(extra) = next {
        // More commas than fields: keep the tail as part of the last (unquoted) field.
        let mut f = field;
        f.push(',');
        f.push_str(extra);
        fields.push(f);
    } else {
        fields.push(field);
    }
    Ok(fields)
}

/// One field and the text after its comma (None at end of line).
fn take_csv_field(s: &str) -> Result<(String, Option<&str>), String> {
    if let Some(quoted) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if quoted[i + 1..].starts_with('"') {
                    out.push('"');
                    chars.next();
                    continue;
                }
                let after = &quoted[i + 1..];
                return match after.strip_prefix(',') {
                    Some(rest) => Ok((out, Some(rest))),
                    None if after.trim().is_empty() => Ok((out, None)),
                    None => Err("text after a closing quote".into()),
                };
            }
            out.push(c);
        }
        Err("unterminated quote".into())
    } else {
        match s.find(',') {
            Some(i) => Ok((s[..i].to_owned(), Some(&s[i + 1..]))),
            None => Ok((s.to_owned(), None)),
        }
    }
}

enum LineRead {
    Line,
    TooLong,
    Eof,
}

/// Reads one line into `buf`, never buffering more than [`MAX_LINE`] bytes of it; the rest of an
/// over-long line is skipped.
fn read_bounded_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<LineRead> {
    let n = reader
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(LineRead::Eof);
    }
    if buf.len() > MAX_LINE && buf.last() != Some(&b'\n') {
        // Skip to the end of this line.
        loop {
            let available = reader.fill_buf()?;
            if available.is_empty() {
                break;
            }
            if let Some(i) = available.iter().position(|&b| b == b'\n') {
                reader.consume(i + 1);
                break;
            }
            let len = available.len();
            reader.consume(len);
        }
        return Ok(LineRead::TooLong);
    }
    Ok(LineRead::Line)
}

/// Converts an IPv4 address to the key space used for v4 tables (exposed for tests/benches).
#[doc(hidden)]
pub fn v4_key(a: Ipv4Addr) -> u32 {
    u32::from(a)
}

/// Converts an IPv6 address to the key space used for v6 tables (exposed for tests/benches).
#[doc(hidden)]
pub fn v6_key(a: Ipv6Addr) -> u128 {
    u128::from(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(format: Option<IpDbFormat>, text: &str) -> (IpDb, LoadReport) {
        let mut db = IpDb::new();
        let report = db.load("test.csv", format, text.as_bytes());
        (db, report)
    }

    #[test]
    fn asn_csv_with_quoted_org() {
        let (db, report) = db(
            None,
            "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n1.12.0.0,1.12.33.255,45090,Shenzhen Tencent\n",
        );
        assert_eq!(report.accepted, 2);
        assert_eq!(report.error_count, 0);
        let hit = db.lookup_asn("1.0.0.7".parse().unwrap()).unwrap();
        assert_eq!(
            (hit.asn, hit.org, hit.database),
            (13335, "Cloudflare, Inc.", "test.csv")
        );
        assert_eq!(
            db.lookup_asn("1.12.5.5".parse().unwrap()).unwrap().asn,
            45090
        );
        assert!(db.lookup_asn("1.0.1.0".parse().unwrap()).is_none());
        assert!(db.lookup_asn("0.0.0.1".parse().unwrap()).is_none());
    }

    #[test]
    fn ranges_across_index_buckets() {
        let (db, report) = db(
            None,
            "1.0.0.0,1.2.255.255,1,a\n1.3.0.0,1.3.0.9,2,b\n1.3.1.0,1.3.1.0,3,c\n9.0.0.0,9.255.255.255,4,d\n",
        );
        assert_eq!(report.error_count, 0);
        let asn = |a: &str| db.lookup_asn(a.parse().unwrap()).map(|i| i.asn);
        assert_eq!(asn("1.1.200.1"), Some(1)); // starts two buckets earlier
        assert_eq!(asn("1.2.255.255"), Some(1));
        assert_eq!(asn("1.3.0.9"), Some(2));
        assert_eq!(asn("1.3.0.10"), None);
        assert_eq!(asn("1.3.1.0"), Some(3));
        assert_eq!(asn("9.128.0.0"), Some(4));
        assert_eq!(asn("255.255.255.255"), None);
        assert_eq!(asn("0.0.0.0"), None);
    }

    #[test]
    fn country_csv_v6_and_mapped_v4() {
        let (db, report) = db(
            None,
            "1.0.1.0,1.0.3.255,CN\n2001:200::,2001:218:2000:51:ffff:ffff:ffff:ffff,au\n",
        );
        assert_eq!(report.accepted, 2);
        let c = db.lookup_country("2001:200::1".parse().unwrap()).unwrap();
        assert_eq!(c.code_str(), "AU");
        let c = db
            .lookup_country("::ffff:1.0.2.3".parse().unwrap())
            .unwrap();
        assert_eq!(c.code_str(), "CN");
    }

    #[test]
    fn iptoasn_gives_owner_and_country() {
        let (db, report) = db(
            None,
            "1.1.1.0\t1.1.1.0\t13335\tUS\tCLOUDFLARENET - Cloudflare, Inc.\n2.0.0.0\t2.0.0.255\t0\tNone\tNot routed\n",
        );
        assert_eq!(report.accepted, 2);
        let a: IpAddr = "1.1.1.0".parse().unwrap();
        assert_eq!(
            db.lookup_asn(a).unwrap().org,
            "CLOUDFLARENET - Cloudflare, Inc."
        );
        assert_eq!(db.lookup_country(a).unwrap().code_str(), "US");
        assert!(db.lookup_asn("2.0.0.1".parse().unwrap()).is_none());
    }

    #[test]
    fn errors_name_line_and_field() {
        let (_, report) = db(
            Some(IpDbFormat::AsnCsv),
            "1.0.0.0,1.0.0.255,13335,ok\nnot-an-ip,1.0.0.1,1,x\n1.0.0.9,1.0.0.1,1,x\n1.0.0.0,1.0.0.1,ASX,x\n",
        );
        assert_eq!(report.accepted, 1);
        assert_eq!(report.error_count, 3);
        assert_eq!(report.errors[0].line, 2);
        assert_eq!(report.errors[0].field.as_deref(), Some("start"));
        assert_eq!(report.errors[1].field.as_deref(), Some("end"));
        assert_eq!(report.errors[2].field.as_deref(), Some("asn"));
    }

    #[test]
    fn garbage_never_panics() {
        let mut db = IpDb::new();
        let binary: Vec<u8> = (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let report = db.load_bytes("bin", None, &binary);
        assert!(report.error_count > 0);
        let long = vec![b'a'; 10 * 1024 * 1024];
        let report = db.load_bytes("long", None, &long);
        assert_eq!(report.error_count, 1);
        let report = db.load_bytes("gz-truncated", None, &[0x1f, 0x8b, 8, 0, 0]);
        assert!(report.error_count > 0);
        let report = db.load_bytes("quote", None, b"1.0.0.0,1.0.0.1,5,\"unterminated\n");
        assert_eq!(report.error_count, 1);
    }

    #[test]
    fn load_compact_reports_crafted_bytes_and_keeps_nothing() {
        let mut db = IpDb::new();
        for bytes in [
            &b""[..],
            b"EIPD",
            b"EIPD\x01\x02\0\0garbage that is no table at all......",
        ] {
            let report = db.load_compact("crafted", bytes);
            assert_eq!(report.error_count, 1, "{bytes:?}");
            assert_eq!(report.errors[0].field.as_deref(), Some("compact"));
        }
        assert!(db.is_empty());
        assert!(db.lookup_country("1.1.1.1".parse().unwrap()).is_none());
    }

    #[test]
    fn compact_tables_load_from_owned_bytes() {
        let mut v4 = [
            (0x0100_0000u32, 0x0100_00ff, 0),
            (0x0200_0000, 0x02ff_ffff, 1),
        ];
        let mut v6 = [(0x2001_0db8u128 << 96, (0x2001_0db8u128 << 96) | 0xffff, 1)];
        let bytes = compact::encode_country(&[*b"AU", *b"CN"], &mut v4, &mut v6);
        let mut db = IpDb::new();
        let report = db.load_compact_owned("owned", bytes.clone());
        assert_eq!((report.accepted, report.error_count), (3, 0));
        db.verify().unwrap();
        let code = |a: &str| {
            db.lookup_country(a.parse().unwrap())
                .map(|c| c.code_str().to_owned())
        };
        assert_eq!(code("1.0.0.7").as_deref(), Some("AU"));
        assert_eq!(code("2.3.4.5").as_deref(), Some("CN"));
        assert_eq!(code("2001:db8::17").as_deref(), Some("CN"));
        assert_eq!(code("3.0.0.0"), None);
        // A truncated copy is refused with the compact field named, and nothing is kept.
        let mut db = IpDb::new();
        let report = db.load_compact_owned("cut", bytes[..bytes.len() / 2].to_vec());
        assert_eq!(report.error_count, 1);
        assert_eq!(report.errors[0].field.as_deref(), Some("compact"));
        assert!(db.is_empty());
    }

    #[test]
    fn verify_passes_for_parsed_tables() {
        let (db, _) = db(
            None,
            "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n2001:db8::,2001:db8::ff,64500,Example\n",
        );
        db.verify().unwrap();
        assert_eq!(db.range_counts(), (2, 0));
        assert!(db.heap_bytes() > 0);
    }

    #[test]
    fn gzip_input() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"1.0.1.0,1.0.3.255,CN\n").unwrap();
        let gz = enc.finish().unwrap();
        let mut db = IpDb::new();
        let report = db.load_bytes("c.csv.gz", None, &gz);
        assert_eq!(report.accepted, 1);
        assert_eq!(
            db.lookup_country("1.0.2.0".parse().unwrap())
                .unwrap()
                .code_str(),
            "CN"
        );
    }
}
