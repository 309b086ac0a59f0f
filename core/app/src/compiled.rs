//! Rules compiled by one process and mapped by another (iOS: the app compiles, the packet
//! tunnel extension, killed past 50 MiB, maps). Every rule set of an assembled policy goes
//! into one file, `rules.compiled` in the state directory, with a stamp of what it was
//! compiled from; the process that maps it never parses list text (nor the built-in lists:
//! they are in the file too), and refuses a file whose stamp no longer matches the state.
//!
//! The file: `EMBRULES`, the version (u32 LE), the manifest's length (u32 LE), the manifest
//! (JSON: the stamp and each set's offset and length), zero padding to 8 bytes, then each
//! rule set in its own compiled form (`embargo_policy::format`) at an 8-byte aligned offset,
//! used in place from the map. It is written to a temporary name and renamed into place, so a
//! process that has the old file mapped keeps reading the old file, never a half-written one.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use embargo_policy::{IpDb, Policy, RuleSet};
use serde::{Deserialize, Serialize};

use crate::rules::ReloadReport;
use crate::store::{DefaultRules, ListSource, Store};

/// The file's first bytes.
pub const MAGIC: &[u8; 8] = b"EMBRULES";
/// The layout this build writes and reads.
pub const VERSION: u32 = 1;
/// Magic, version, manifest length.
const HEADER: usize = 16;
/// Largest manifest read (a stamp per list; thousands of lists fit).
const MAX_MANIFEST: usize = 16 << 20;

/// What a compiled file was compiled from. The mapping process compares it with the state
/// directory as it is now: equal, or the file is stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// This build of the core (the built-in lists are compiled in).
    pub core: String,
    /// The built-in default's level in force.
    pub default_rules: DefaultRules,
    /// The enabled lists, in order.
    pub lists: Vec<ListStamp>,
}

/// One enabled list as `lists.json` describes it (a stored or downloaded copy changes its
/// entry whenever it changes), and for a list read from a file of its own, that file's size
/// and modification time: the copies need not exist where the file is mapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListStamp {
    name: String,
    format: Option<String>,
    updated_ms: i64,
    bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<FileStamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileStamp {
    path: PathBuf,
    len: u64,
    mtime_ns: i128,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    stamp: Stamp,
    /// (offset from the end of the padded header, length) of each rule set, in policy order.
    sets: Vec<(u64, u64)>,
    /// (database, offset, length) of each IP database table parsed at compile time (the ones
    /// in the binary are read in place there already).
    #[serde(default)]
    ipdb: Vec<(String, u64, u64)>,
    report: ReloadReport,
}

/// The stamp of the state directory now, with the built-in default `default_flag` (or, when
/// `None`, what `settings.json` says). Reads `settings.json` and `lists.json` and stats the
/// files of file lists; never reads a list.
pub fn stamp(store: &Store, default_flag: Option<DefaultRules>) -> Result<Stamp> {
    let default_rules = match default_flag {
        Some(d) => d,
        None => store.load_settings()?.default_rules,
    };
    let lists = store
        .load_lists()?
        .lists
        .into_iter()
        .filter(|l| l.enabled)
        .map(|l| ListStamp {
            file: match &l.source {
                ListSource::File(path) => Some(match std::fs::metadata(path) {
                    Ok(m) => FileStamp {
                        path: path.clone(),
                        len: m.len(),
                        mtime_ns: i128::from(m.mtime()) * 1_000_000_000
                            + i128::from(m.mtime_nsec()),
                    },
                    Err(_) => FileStamp {
                        path: path.clone(),
                        len: 0,
                        mtime_ns: 0,
                    },
                }),
                ListSource::Url(_) | ListSource::Stored => None,
            },
            name: l.name,
            format: l.format,
            updated_ms: l.updated_ms,
            bytes: l.counts.bytes,
        })
        .collect();
    Ok(Stamp {
        core: core_version(),
        default_rules,
        lists,
    })
}

/// This build's word for the built-in lists it compiles: the crate version and a hash of
/// the lists' text (an app update that changes them makes the old file stale).
fn core_version() -> String {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in embargo_policy::BUILTIN_RULES
        .bytes()
        .chain(embargo_policy::BUILTIN_FULL_RULES.bytes())
    {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{} builtin:{h:016x}", env!("CARGO_PKG_VERSION"))
}

fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// Writes `policy`'s rule sets, compiled from the state `stamp` describes (take the stamp
/// before assembling: a change in between then shows as stale), to the store's
/// `rules.compiled`. Returns the file's size.
pub fn write(store: &Store, stamp: Stamp, policy: &Policy, report: &ReloadReport) -> Result<u64> {
    let path = store.compiled_rules_file();
    let mut sets = Vec::new();
    let mut offset = 0u64;
    let blobs: Vec<&[u8]> = policy
        .rules()
        .iter()
        .map(|s| s.as_bytes())
        .chain(policy.ipdb().runtime_tables().map(|(_, bytes)| bytes))
        .collect();
    for bytes in policy.rules().iter().map(|s| s.as_bytes()) {
        let len = bytes.len() as u64;
        sets.push((offset, len));
        offset += pad8(len as usize) as u64;
    }
    let mut ipdb = Vec::new();
    for (database, bytes) in policy.ipdb().runtime_tables() {
        let len = bytes.len() as u64;
        ipdb.push((database.to_owned(), offset, len));
        offset += pad8(len as usize) as u64;
    }
    let manifest = serde_json::to_vec(&Manifest {
        stamp,
        sets,
        ipdb,
        report: report.clone(),
    })?;
    let mut head = Vec::with_capacity(pad8(HEADER + manifest.len()));
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&VERSION.to_le_bytes());
    head.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
    head.extend_from_slice(&manifest);
    head.resize(pad8(head.len()), 0);
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| -> std::io::Result<u64> {
        let mut f = std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?,
        );
        f.write_all(&head)?;
        let mut total = head.len() as u64;
        for bytes in &blobs {
            f.write_all(bytes)?;
            let padding = pad8(bytes.len()) - bytes.len();
            f.write_all(&[0; 8][..padding])?;
            total += (bytes.len() + padding) as u64;
        }
        let f = f.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(total)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("write {}", path.display()))
}

/// A compiled file mapped: its rule sets, read in place, and the report of its compilation.
pub struct Mapped {
    /// Which file this is (device, inode, size, mtime), to map it again only when replaced.
    id: (u64, u64, u64, i64, i64),
    stamp: Stamp,
    sets: Vec<Arc<RuleSet>>,
    ipdb: IpDb,
    report: ReloadReport,
}

impl Mapped {
    /// The rule sets, in policy order.
    pub fn sets(&self) -> &[Arc<RuleSet>] {
        &self.sets
    }

    /// The IP database tables the compiling process parsed, mapped.
    pub fn ipdb(&self) -> &IpDb {
        &self.ipdb
    }

    /// The report of the compilation.
    pub fn report(&self) -> &ReloadReport {
        &self.report
    }
}

/// One rule set's bytes inside the shared map.
struct Slice {
    map: Arc<memmap2::Mmap>,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for Slice {
    fn as_ref(&self) -> &[u8] {
        &self.map[self.start..self.end]
    }
}

/// The rule sets of the store's `rules.compiled`, mapped, when its stamp matches `now`:
/// `previous` again when the file was not replaced since. Errors name the file and say what
/// to do (the process that owns the lists compiles them).
pub fn open(store: &Store, now: &Stamp, previous: Option<Arc<Mapped>>) -> Result<Arc<Mapped>> {
    let path = store.compiled_rules_file();
    let again = "the app compiles the rules again (compile_rules) and then reloads";
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{}: no compiled rules: the process that changes the lists writes them \
             (compile_rules) before this one starts",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("open {}", path.display())),
    };
    let meta = file
        .metadata()
        .with_context(|| format!("stat {}", path.display()))?;
    let id = (
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
    );
    let mapped = match previous {
        Some(p) if p.id == id => p,
        _ => Arc::new(map(&path, &file, id)?),
    };
    if mapped.stamp != *now {
        bail!(
            "{}: stale: {}; {again}",
            path.display(),
            difference(&mapped.stamp, now)
        );
    }
    Ok(mapped)
}

fn map(path: &Path, file: &File, id: (u64, u64, u64, i64, i64)) -> Result<Mapped> {
    let bad = |what: String| anyhow::anyhow!("{}: {what}", path.display());
    if (id.2 as usize) < HEADER {
        return Err(bad(format!("{} bytes: too short for compiled rules", id.2)));
    }
    // SAFETY: read-only; the writer renames a new file into place and never changes a file
    // that may be mapped (a third party truncating it would raise SIGBUS: the documented cost
    // of a map, the same as the Linux `--rules` file's).
    let map = Arc::new(
        unsafe { memmap2::Mmap::map(file) }.with_context(|| format!("map {}", path.display()))?,
    );
    if &map[..8] != MAGIC {
        return Err(bad("not a compiled rules file (wrong magic)".into()));
    }
    let version = u32::from_le_bytes(map[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(bad(format!(
            "compiled rules version {version}; this build reads version {VERSION}: the app \
             compiles them again with this build"
        )));
    }
    let manifest_len = u32::from_le_bytes(map[12..16].try_into().expect("4 bytes")) as usize;
    if manifest_len > MAX_MANIFEST || HEADER + manifest_len > map.len() {
        return Err(bad(format!(
            "manifest of {manifest_len} bytes runs past the file ({} bytes)",
            map.len()
        )));
    }
    let manifest: Manifest = serde_json::from_slice(&map[HEADER..HEADER + manifest_len])
        .map_err(|e| bad(format!("manifest: {e}")))?;
    let data = pad8(HEADER + manifest_len);
    let mut sets = Vec::with_capacity(manifest.sets.len());
    let slice = |data: usize, offset: u64, len: u64| {
        let start = (data as u64).checked_add(offset)?;
        let end = start.checked_add(len).filter(|&e| e <= map.len() as u64)?;
        (start % 8 == 0).then(|| Slice {
            map: Arc::clone(&map),
            start: start as usize,
            end: end as usize,
        })
    };
    for (i, &(offset, len)) in manifest.sets.iter().enumerate() {
        let slice = slice(data, offset, len).ok_or_else(|| {
            bad(format!(
                "rule set {i}: bytes {offset}+{len} are not inside the file or not aligned"
            ))
        })?;
        // Embargo wrote this file itself (the app, in the same container): opening checks
        // the header, checksum and every bound, so no lookup can panic whatever the bytes;
        // `RuleSet::verify` would read every page of it, which is what mapping avoids.
        let set = RuleSet::from_backing(Arc::new(slice))
            .map_err(|e| bad(format!("rule set {i}: {e}")))?;
        sets.push(Arc::new(set));
    }
    let mut ipdb = IpDb::new();
    for (database, offset, len) in &manifest.ipdb {
        let slice = slice(data, *offset, *len)
            .ok_or_else(|| bad(format!("IP database {database}: bytes {offset}+{len} are not inside the file or not aligned")))?;
        let report = ipdb.load_compact_backed(database, Arc::new(slice));
        if let Some(e) = report.errors.first() {
            return Err(bad(format!("IP database {database}: {}", e.message)));
        }
    }
    Ok(Mapped {
        id,
        stamp: manifest.stamp,
        sets,
        ipdb,
        report: manifest.report,
    })
}

/// What differs between the stamp of a file and the state now, for a person.
fn difference(file: &Stamp, now: &Stamp) -> String {
    if file.core != now.core {
        return format!("compiled by core {}, this is core {}", file.core, now.core);
    }
    if file.default_rules != now.default_rules {
        return format!(
            "compiled with the built-in default {}, now {}",
            file.default_rules.name(),
            now.default_rules.name()
        );
    }
    for l in &now.lists {
        match file.lists.iter().find(|f| f.name == l.name) {
            None => return format!("list {} is new or turned on since", l.name),
            Some(f) if f != l => return format!("list {} changed since", l.name),
            Some(_) => {}
        }
    }
    for f in &file.lists {
        if !now.lists.iter().any(|l| l.name == f.name) {
            return format!("list {} was removed or turned off since", f.name);
        }
    }
    "the lists' order changed since".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Rules;
    use embargo_policy::{IpDb, PolicyHandle, Query, Verdict};

    fn verdict(handle: &PolicyHandle, name: &str) -> Verdict {
        handle.load().decide(&Query::name(name)).verdict
    }

    fn base() -> Arc<Policy> {
        Arc::new(Policy::new(vec![], IpDb::new(), Default::default()))
    }

    /// The app's rules (lists compiled from text) and the extension's (mapped) over one store.
    fn app_and_extension() -> (tempfile::TempDir, Rules, Rules) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state"));
        store.create().unwrap();
        let app = Rules::new(store.clone(), base(), None);
        let bytes = b"tracker.example.org\n";
        let loaded = crate::load_list("mine", bytes, None).unwrap();
        app.put_list("mine", bytes, loaded).unwrap();
        let extension = Rules::mapped(store, base(), None);
        (dir, app, extension)
    }

    #[test]
    fn the_mapping_process_decides_without_any_list_text() {
        let (_dir, app, extension) = app_and_extension();
        let err = extension.reload().unwrap_err().to_string();
        assert!(
            err.contains("rules.compiled") && err.contains("no compiled rules"),
            "{err}"
        );
        let (report, bytes) = app.compile().unwrap();
        assert!(bytes > 0 && report.rules > 1, "{report:?}");
        // The list's text is gone: only the compiled file can answer.
        std::fs::remove_dir_all(app.store().lists_dir()).unwrap();
        let mapped = extension.reload().unwrap();
        assert_eq!(mapped.rules, report.rules);
        let handle = extension.handle();
        assert_eq!(verdict(&handle, "tracker.example.org"), Verdict::Block);
        assert_eq!(
            verdict(&handle, "log.tiktokv.com"),
            Verdict::Block,
            "built-in"
        );
        assert_eq!(verdict(&handle, "example.com"), Verdict::Allow);
        // App settings are read as they are, without compiling.
        let mut apps = app.store().load_app_rules().unwrap();
        apps.allowlist
            .push(embargo_policy::Target::Name("tracker.example.org".into()));
        app.store().save_app_rules(&apps).unwrap();
        extension.reload().unwrap();
        assert_eq!(verdict(&handle, "tracker.example.org"), Verdict::Allow);
        // Lists are changed where they are compiled.
        let e = extension.set_list_enabled("mine", false).unwrap_err();
        assert!(e.to_string().contains("rules.compiled"), "{e}");
    }

    #[test]
    fn a_stale_file_is_refused_by_name_and_the_old_rules_stay() {
        let (_dir, app, extension) = app_and_extension();
        app.compile().unwrap();
        extension.reload().unwrap();
        let handle = extension.handle();
        app.set_list_enabled("mine", false).unwrap();
        let e = extension.reload().unwrap_err().to_string();
        assert!(
            e.contains("rules.compiled") && e.contains("stale") && e.contains("list mine"),
            "{e}"
        );
        assert_eq!(verdict(&handle, "tracker.example.org"), Verdict::Block);
        app.compile().unwrap();
        extension.reload().unwrap();
        assert_eq!(verdict(&handle, "tracker.example.org"), Verdict::Allow);
        app.set_default_rules(DefaultRules::Full).unwrap();
        let e = extension.reload().unwrap_err().to_string();
        assert!(e.contains("built-in default telemetry, now full"), "{e}");
        app.compile().unwrap();
        extension.reload().unwrap();
        assert_eq!(verdict(&handle, "douyin.com"), Verdict::Block, "full level");
    }

    #[test]
    fn damaged_files_are_errors_naming_the_file() {
        let (_dir, app, extension) = app_and_extension();
        app.compile().unwrap();
        let path = app.store().compiled_rules_file();
        let good = std::fs::read(&path).unwrap();
        let mut wrong_version = good.clone();
        wrong_version[8] = 9;
        let mut wrong_magic = good.clone();
        wrong_magic[0] = b'X';
        let mut flipped = good.clone();
        let last = flipped.len() - 20;
        flipped[last] ^= 0xff;
        for (bytes, says) in [
            (wrong_version, "version 9; this build reads version 1"),
            (wrong_magic, "wrong magic"),
            (flipped, "rule set"),
            (good[..10].to_vec(), "too short"),
        ] {
            std::fs::write(&path, &bytes).unwrap();
            let e = extension.reload().unwrap_err().to_string();
            assert!(
                e.contains("rules.compiled") && e.contains(says),
                "{says}: {e}"
            );
        }
        // Every truncation: an error, never a panic.
        for len in (0..good.len()).step_by(good.len() / 64 + 1) {
            std::fs::write(&path, &good[..len]).unwrap();
            assert!(extension.reload().is_err(), "{len} bytes");
        }
    }
}
