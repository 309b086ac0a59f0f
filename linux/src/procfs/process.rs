//! The process holding a socket: the search of `/proc` descriptor tables, and what it
//! remembers between lookups ([`PidMemory`]).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::fd_table;

/// How many recent holder pids are tried before anything else. A program that opens one
/// connection usually opens more (a browser, a package manager): its pid answers at once.
const RECENT_PIDS: usize = 32;

/// Most socket inodes remembered with the pid seen holding them (about 40 bytes each with the
/// map's overhead: 0.6 MiB at most). A busy client (wrk -c1000) opens its sockets in a burst;
/// reading its descriptor table once indexes all of them, so the other lookups of the burst
/// cost no system call. Past the cap the index starts over.
const INODE_INDEX_CAP: usize = 16 * 1024;

/// What a process looks like to the ranking: its network namespace inode and its uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcMeta {
    netns_ino: Option<u64>,
    uid: Option<u32>,
}

/// What the process finder remembers between lookups, so that a lookup rarely walks `/proc`.
///
/// A full walk (a `stat` of two files per process to rank them, then every candidate's
/// descriptor table) costs a flow's worth of CPU several times over (docs/decisions.md). These
/// memories cut it to the few processes that can hold a new socket:
/// - `inodes`: sockets seen in descriptor tables already read, with their pid;
/// - `recent`: pids that owned flows lately (most recent first);
/// - `last_pid`: the last pid allocated at the previous lookup, so that processes started
///   since then (`curl`, a new app) are probed first, by number, without listing `/proc`;
/// - `known`: every pid of the previous `/proc` listing with its ranking facts, so that when
///   a listing is needed the others are ranked without a system call.
///
/// It also knows which process not to search ([`PidMemory::exclude`]): Embargo's own.
#[derive(Debug, Default)]
pub struct PidMemory(Mutex<PidState>);

impl PidMemory {
    /// Searches never read `pid`'s descriptors from now on. Embargo passes its own pid: its
    /// sockets are protected (marked, or outside the namespace), so no flow in the tunnel is
    /// ever its own, yet it shares the apps' namespace under `--no-routes` and holds dozens of
    /// sockets that change with every flow, which made it the costliest table a failed search
    /// read.
    pub fn exclude(&self, pid: u32) {
        let mut state = match self.0.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        state.excluded = Some(pid);
    }
}

#[derive(Debug, Default)]
struct PidState {
    recent: Vec<u32>,
    inodes: HashMap<u64, u32>,
    known: HashMap<u32, Option<ProcMeta>>,
    listed_once: bool,
    /// The last pid allocated as of the previous lookup (see [`parse_last_pid`]).
    last_pid: Option<u32>,
    /// A pid never searched (see [`PidMemory::exclude`]).
    excluded: Option<u32>,
    /// `loadavg` of the /proc last read, kept open: one `pread` per lookup instead of an
    /// open, a stat, two reads and a close (the kernel renders it afresh at offset 0).
    loadavg: Option<(PathBuf, File)>,
}

impl PidState {
    fn remember(&mut self, pid: u32) {
        self.recent.retain(|&p| p != pid);
        self.recent.insert(0, pid);
        self.recent.truncate(RECENT_PIDS);
    }

    /// Reads `pid`'s descriptor table, indexing every socket in it; whether `inode` is among
    /// them. A process found gone is forgotten, so that later lookups do not probe it again
    /// (a shell loop of `curl`s left every recent pid dead, each probed on every lookup).
    fn scan(&mut self, pid_dir: &Path, pid: u32, inode: u64) -> bool {
        if self.excluded == Some(pid) {
            return false;
        }
        let mut found = false;
        let inodes = &mut self.inodes;
        let read = fd_table::socket_inodes(&pid_dir.join("fd"), |seen| {
            if inodes.len() >= INODE_INDEX_CAP {
                inodes.clear();
            }
            inodes.insert(seen, pid);
            found |= seen == inode;
        });
        if let Err(e) = read {
            if e.kind() == io::ErrorKind::NotFound {
                self.recent.retain(|&p| p != pid);
                self.known.remove(&pid);
            }
            // Otherwise not ours to read, or gone meanwhile: what was read stands.
        }
        found
    }

    /// The last pid allocated (see [`parse_last_pid`]), through the kept `loadavg`.
    fn last_pid(&mut self, proc_root: &Path) -> Option<u32> {
        if self
            .loadavg
            .as_ref()
            .is_none_or(|(root, _)| root != proc_root)
        {
            let file = File::open(proc_root.join("loadavg")).ok()?;
            self.loadavg = Some((proc_root.to_path_buf(), file));
        }
        let (_, file) = self.loadavg.as_ref()?;
        let mut text = [0u8; 128];
        let n = std::os::unix::fs::FileExt::read_at(file, &mut text, 0).ok()?;
        parse_last_pid(text.get(..n)?)
    }

    /// The ranking facts of `pid`, read once per process.
    fn meta(&mut self, proc_root: &Path, pid: u32) -> ProcMeta {
        if let Some(Some(meta)) = self.known.get(&pid) {
            return *meta;
        }
        let meta = read_meta(proc_root, pid);
        self.known.insert(pid, Some(meta));
        meta
    }
}

/// Most pids probed one by one for processes started since the previous lookup; past it (a
/// build spawning hundreds of compilers meanwhile) one listing of /proc is cheaper.
const MAX_FRESH_PROBES: u32 = 128;

fn read_meta(proc_root: &Path, pid: u32) -> ProcMeta {
    ProcMeta {
        netns_ino: netns_of(proc_root, pid),
        uid: std::fs::metadata(proc_root.join(pid.to_string()))
            .ok()
            .map(|m| m.uid()),
    }
}

/// The last pid the kernel allocated (in the pid namespace of this /proc), from the text of
/// `/proc/loadavg`: its fifth field, `0.20 0.18 0.12 1/80 11206`.
fn parse_last_pid(loadavg: &[u8]) -> Option<u32> {
    std::str::from_utf8(loadavg)
        .ok()?
        .split_whitespace()
        .nth(4)?
        .parse()
        .ok()
}

/// The network namespace of `pid` (the inode of `/proc/PID/ns/net`), or `None` once it exited.
fn netns_of(proc_root: &Path, pid: u32) -> Option<u64> {
    std::fs::metadata(proc_root.join(pid.to_string()).join("ns/net"))
        .ok()
        .map(|m| m.ino())
}

/// `socket:[INODE]` -> INODE.
pub(super) fn socket_inode(link: &[u8]) -> Option<u64> {
    let digits = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Finds the process holding socket `inode`, and its executable.
///
/// Cheapest first: the pid already seen holding `inode`; recent holders; processes started
/// since the previous lookup (newest first) in the socket's network namespace (`netns_ino`);
/// then the other processes of that namespace, those of `uid` first. Each descriptor table
/// read indexes all its sockets, so later lookups of its flows are free.
///
/// `still_held` is asked once the cheap steps failed, before the walk: whether a process
/// still holds the socket. A short-lived program (`curl`) has often exited by the time its
/// flow is looked up, and walking every descriptor table of the namespace for a socket no one
/// holds (the kernel shows it with inode 0 once orphaned) cost several hundred microseconds of
/// CPU per such flow, on the cores the traffic needed.
pub fn find_process(
    proc_root: &Path,
    inode: u64,
    uid: u32,
    netns_ino: Option<u64>,
    memory: &PidMemory,
    still_held: impl FnOnce() -> bool,
) -> Option<(u32, PathBuf)> {
    let mut state = match memory.0.lock() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    };
    let state = &mut *state;
    let holder_exe = |state: &mut PidState, pid: u32| -> Option<(u32, PathBuf)> {
        let exe = std::fs::read_link(proc_root.join(pid.to_string()).join("exe")).ok()?;
        state.remember(pid);
        Some((pid, strip_deleted(exe)))
    };
    let check = |state: &mut PidState, pid: u32| -> Option<(u32, PathBuf)> {
        if !state.scan(&proc_root.join(pid.to_string()), pid, inode) {
            return None;
        }
        holder_exe(state, pid)
    };
    if let Some(&pid) = state.inodes.get(&inode) {
        // Indexed when its table was read: still there unless the process exited or passed
        // the socket on (then the walk below finds the holder).
        if std::fs::metadata(proc_root.join(pid.to_string())).is_ok() {
            if let Some(found) = holder_exe(state, pid) {
                return Some(found);
            }
        }
        state.inodes.remove(&inode);
    }
    let tried = state.recent.clone();
    if let Some(found) = tried.iter().find_map(|&pid| check(state, pid)) {
        return Some(found);
    }
    let in_ns = |meta: ProcMeta| netns_ino.is_none_or(|ino| meta.netns_ino == Some(ino));
    // Processes started since the previous lookup: the pids handed out since then, newest
    // first, probed by number. /proc/loadavg names the last pid the kernel allocated; reading
    // it costs a few microseconds where listing /proc costs ~170 (the kernel walks its pid
    // table and builds a dentry per process).
    let last_pid = state.last_pid(proc_root);
    let probe_from = std::mem::replace(&mut state.last_pid, last_pid);
    let mut fresh_tried = Vec::new();
    if let (Some(prev), Some(last)) = (probe_from, last_pid) {
        if last >= prev && last - prev <= MAX_FRESH_PROBES {
            for pid in (prev + 1..=last).rev() {
                if tried.contains(&pid) {
                    continue;
                }
                // Only the namespace: the uid matters only to rank a listing, which reads
                // it then (a dead pid, most of a busy range, costs one failed stat).
                let Some(ino) = netns_of(proc_root, pid) else {
                    continue; // exited already (or a thread id that is gone)
                };
                state.known.entry(pid).or_insert(None);
                if netns_ino.is_none_or(|want| want == ino) {
                    fresh_tried.push(pid);
                    if let Some(found) = check(state, pid) {
                        return Some(found);
                    }
                }
            }
        }
    }
    if !still_held() {
        return None;
    }
    // One listing of /proc: which pids are new since the previous one.
    let listed: Vec<u32> = std::fs::read_dir(proc_root)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let mut known = HashMap::with_capacity(listed.len());
    let mut fresh = Vec::new();
    for &pid in &listed {
        match state.known.remove(&pid) {
            Some(meta) => {
                known.insert(pid, meta);
            }
            None => {
                known.insert(pid, None);
                if state.listed_once {
                    fresh.push(pid);
                }
            }
        }
    }
    state.known = known;
    state.listed_once = true;
    fresh.retain(|pid| !tried.contains(pid) && !fresh_tried.contains(pid));
    fresh.sort_unstable_by(|a, b| b.cmp(a));
    for &pid in &fresh {
        if in_ns(state.meta(proc_root, pid)) {
            fresh_tried.push(pid);
            if let Some(found) = check(state, pid) {
                return Some(found);
            }
        }
    }
    let mut ranked: Vec<(u8, u32)> = listed
        .into_iter()
        .filter(|pid| !tried.contains(pid) && !fresh_tried.contains(pid))
        .filter_map(|pid| {
            let meta = state.meta(proc_root, pid);
            // Processes of other namespaces are not walked: a flow of this namespace is theirs
            // only if a socket was passed across namespaces, and reading every descriptor
            // of every container on the machine per missed flow is what made lookups slow.
            // rank 0: same uid; 1: another uid
            in_ns(meta).then_some((u8::from(meta.uid != Some(uid)), pid))
        })
        .collect();
    // newest pid first within a rank
    ranked.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    ranked.into_iter().find_map(|(_, pid)| check(state, pid))
}

/// The kernel appends ` (deleted)` to the link of an executable replaced on disk (an upgrade
/// while it runs); the app is still the same program.
fn strip_deleted(exe: PathBuf) -> PathBuf {
    match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(s) => PathBuf::from(s),
        None => exe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake `/proc`: `pid/fd/N -> socket:[INODE]`, `pid/exe`, `pid/ns/net` (a plain file
    /// whose inode stands for the namespace).
    struct FakeProc(tempfile::TempDir);

    impl FakeProc {
        fn new() -> Self {
            FakeProc(tempfile::tempdir().unwrap())
        }
        fn root(&self) -> &Path {
            self.0.path()
        }
        fn netns(&self) -> u64 {
            std::fs::metadata(self.root().join("netns")).unwrap().ino()
        }
        /// A process in the namespace (`ns` true) or elsewhere, holding `sockets`.
        fn spawn(&self, pid: u32, exe: &str, ns: bool, sockets: &[u64]) {
            let dir = self.root().join(pid.to_string());
            std::fs::create_dir_all(dir.join("fd")).unwrap();
            std::fs::create_dir_all(dir.join("ns")).unwrap();
            let shared = self.root().join("netns");
            if !shared.exists() {
                std::fs::write(&shared, b"").unwrap();
            }
            if ns {
                std::fs::hard_link(&shared, dir.join("ns/net")).unwrap();
            } else {
                std::fs::write(dir.join("ns/net"), b"").unwrap();
            }
            std::os::unix::fs::symlink(exe, dir.join("exe")).unwrap();
            for (fd, inode) in sockets.iter().enumerate() {
                let link = format!("socket:[{inode}]");
                std::os::unix::fs::symlink(link, dir.join("fd").join((fd + 3).to_string()))
                    .unwrap();
            }
        }
        /// The pid [`find_process`] finds holding `inode` among this fake's namespace, the
        /// socket still held.
        fn pid_holding(&self, inode: u64, memory: &PidMemory) -> Option<u32> {
            find_process(self.root(), inode, 0, Some(self.netns()), memory, || true)
                .map(|(pid, _)| pid)
        }

        fn exit(&self, pid: u32) {
            std::fs::remove_dir_all(self.root().join(pid.to_string())).unwrap();
        }
    }

    #[test]
    fn socket_inode_parses_only_socket_links() {
        assert_eq!(socket_inode(b"socket:[4242]"), Some(4242));
        assert_eq!(socket_inode(b"pipe:[4242]"), None);
        assert_eq!(socket_inode(b"socket:[x]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
    }

    #[test]
    fn finds_the_holder_first_by_walk_then_from_memory() {
        let proc = FakeProc::new();
        proc.spawn(10, "/usr/sbin/init", true, &[1]);
        proc.spawn(20, "/usr/bin/browser", true, &[2, 3]);
        proc.spawn(30, "/usr/bin/other-ns", false, &[4]);
        let memory = PidMemory::default();
        let ns = Some(proc.netns());
        let find = |inode| find_process(proc.root(), inode, 0, ns, &memory, || true);
        assert_eq!(find(2), Some((20, PathBuf::from("/usr/bin/browser"))));
        // processes of other namespaces are not walked
        assert_eq!(find(4), None);
        // ... unless no namespace is known
        assert_eq!(
            find_process(proc.root(), 4, 0, None, &memory, || true),
            Some((30, PathBuf::from("/usr/bin/other-ns")))
        );
        assert_eq!(find(99), None);
        // the browser's table was read once: its other socket comes from the index, even
        // with the table gone
        std::fs::remove_dir_all(proc.root().join("20/fd")).unwrap();
        assert_eq!(find(3), Some((20, PathBuf::from("/usr/bin/browser"))));
    }

    #[test]
    fn a_process_started_since_the_last_lookup_is_found() {
        let proc = FakeProc::new();
        proc.spawn(10, "/usr/sbin/init", true, &[1]);
        let memory = PidMemory::default();
        let ns = Some(proc.netns());
        assert_eq!(proc.pid_holding(1, &memory).unwrap(), 10);
        proc.spawn(11, "/usr/bin/curl", true, &[5]);
        assert_eq!(
            find_process(proc.root(), 5, 0, ns, &memory, || true),
            Some((11, PathBuf::from("/usr/bin/curl")))
        );
        // it exits; a new one reuses nothing it held
        proc.exit(11);
        proc.spawn(12, "/usr/bin/wget", true, &[6]);
        assert_eq!(find_process(proc.root(), 5, 0, ns, &memory, || true), None);
        assert_eq!(proc.pid_holding(6, &memory).unwrap(), 12);
    }

    #[test]
    fn last_pid_is_the_fifth_field_of_loadavg() {
        let proc = FakeProc::new();
        let mut state = PidState::default();
        assert_eq!(state.last_pid(proc.root()), None);
        std::fs::write(proc.root().join("loadavg"), "0.20 0.18 0.12 1/80 11206\n").unwrap();
        assert_eq!(state.last_pid(proc.root()), Some(11206));
        // the kept file is read afresh, and the real one names new pids
        std::fs::write(proc.root().join("loadavg"), "0 0 0 1/81 11207\n").unwrap();
        assert_eq!(state.last_pid(proc.root()), Some(11207));
        let proc_root = Path::new("/proc");
        let before = state.last_pid(proc_root).unwrap();
        let child = std::process::Command::new("true").status().unwrap();
        assert!(child.success());
        assert!(state.last_pid(proc_root).unwrap() != before);
    }

    #[test]
    fn pids_allocated_since_the_last_lookup_are_probed_first() {
        let proc = FakeProc::new();
        proc.spawn(10, "/usr/sbin/init", true, &[1]);
        std::fs::write(proc.root().join("loadavg"), "0 0 0 1/2 60\n").unwrap();
        let memory = PidMemory::default();
        let ns = Some(proc.netns());
        assert_eq!(proc.pid_holding(1, &memory).unwrap(), 10);
        // a process outside the probed range that also (wrongly) claims socket 5: the probe
        // must find the new process before any listing reaches this one
        proc.spawn(50, "/usr/bin/old", true, &[5]);
        proc.spawn(61, "/usr/bin/curl", true, &[5]);
        proc.spawn(62, "/usr/bin/elsewhere", false, &[]);
        std::fs::write(proc.root().join("loadavg"), "0 0 0 1/4 63\n").unwrap();
        assert_eq!(
            find_process(proc.root(), 5, 0, ns, &memory, || true),
            Some((61, PathBuf::from("/usr/bin/curl")))
        );
    }

    #[test]
    fn an_indexed_socket_passed_to_another_process_is_found_again() {
        let proc = FakeProc::new();
        proc.spawn(10, "/usr/bin/parent", true, &[7]);
        let memory = PidMemory::default();
        assert_eq!(proc.pid_holding(7, &memory).unwrap(), 10);
        proc.exit(10);
        proc.spawn(13, "/usr/bin/child", true, &[7]);
        assert_eq!(proc.pid_holding(7, &memory).unwrap(), 13);
    }

    #[test]
    fn a_recent_holder_that_exited_is_forgotten() {
        let proc = FakeProc::new();
        proc.spawn(11, "/usr/bin/curl", true, &[5]);
        let memory = PidMemory::default();
        assert_eq!(proc.pid_holding(5, &memory).unwrap(), 11);
        assert_eq!(memory.0.lock().unwrap().recent, vec![11]);
        proc.exit(11);
        proc.spawn(12, "/usr/bin/wget", true, &[6]);
        assert_eq!(proc.pid_holding(6, &memory).unwrap(), 12);
        assert_eq!(memory.0.lock().unwrap().recent, vec![12]);
    }

    #[test]
    fn the_excluded_process_is_never_searched() {
        let proc = FakeProc::new();
        proc.spawn(10, "/usr/bin/embargo", true, &[5, 6]);
        proc.spawn(20, "/usr/bin/app", true, &[7]);
        let memory = PidMemory::default();
        memory.exclude(10);
        let ns = Some(proc.netns());
        assert_eq!(find_process(proc.root(), 5, 0, ns, &memory, || true), None);
        assert_eq!(proc.pid_holding(7, &memory).unwrap(), 20);
        assert!(!memory.0.lock().unwrap().inodes.contains_key(&6));
    }

    #[test]
    fn a_socket_no_one_holds_any_more_is_not_walked_for() {
        let proc = FakeProc::new();
        proc.spawn(10, "/usr/sbin/init", true, &[1]);
        let memory = PidMemory::default();
        let ns = Some(proc.netns());
        assert_eq!(proc.pid_holding(1, &memory).unwrap(), 10);
        // a process the cheap steps do not reach (no probe range: no loadavg) holds socket 5
        proc.spawn(50, "/usr/bin/old", true, &[5]);
        let mut asked = false;
        let gone = || {
            asked = true;
            false
        };
        assert_eq!(find_process(proc.root(), 5, 0, ns, &memory, gone), None);
        assert!(asked);
        // the same search walks when the socket is still held
        assert_eq!(proc.pid_holding(5, &memory).unwrap(), 50);
        // and a hit of the cheap steps never asks
        let never = || -> bool { panic!("asked although the index answered") };
        assert_eq!(
            find_process(proc.root(), 5, 0, ns, &memory, never)
                .unwrap()
                .0,
            50
        );
    }

    #[test]
    fn deleted_suffix_is_stripped() {
        assert_eq!(
            strip_deleted(PathBuf::from("/usr/bin/x (deleted)")),
            PathBuf::from("/usr/bin/x")
        );
    }
}
