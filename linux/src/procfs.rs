//! App identity from `/proc`: which process (executable path) and uid own a flow.
//!
//! The kernel lists every socket of a network namespace in `/proc/net/{tcp,tcp6,udp,udp6}`
//! with its addresses, owning uid and inode; every process lists its open descriptors in
//! `/proc/PID/fd`, where a socket reads `socket:[INODE]`. Joining the two names the program.
//!
//! Two things shape this module:
//! - **Namespaces.** `/proc/net` shows the sockets of the *reader's* network namespace. The
//!   apps Embargo protects usually live in another one (`embargo run --netns NAME`), while
//!   Embargo itself stays in the host namespace. A dedicated worker thread therefore enters the
//!   protected namespace once (`setns` changes only the calling thread) and reads
//!   `/proc/thread-self/net/*`, which follows the thread's namespace, not the process's.
//! - **Cost.** A lookup is one `sock_diag` question (uid and inode) and then a search for the
//!   process holding the inode. It runs once per flow, off the packet path (OpenSnitch's users
//!   saw whole programs freeze when decisions waited for it), on the same cores as the traffic,
//!   so the search remembers what it read ([`PidMemory`]): a full walk of every process's
//!   descriptors is the last resort, not the rule. Answers are cached for [`CACHE_TTL`].

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use embargo_policy::Protocol;

/// How long an answer stays cached. A flow's owner cannot change while its socket lives;
/// the TTL only bounds how long a reused 4-tuple keeps a stale owner, and 30 s is shorter than
/// TCP's TIME-WAIT plus a typical reconnect, so reuse by another program is rare within it.
pub const CACHE_TTL: Duration = Duration::from_secs(30);

/// Upper bound on cached answers: about 100 bytes each, so at most a few hundred KiB.
pub const CACHE_CAPACITY: usize = 4096;

/// One row of `/proc/net/{tcp,udp}[6]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketEntry {
    /// Local address; v4-mapped IPv6 addresses are turned into IPv4.
    pub local: SocketAddr,
    /// Remote address (unspecified, port 0, for unconnected sockets).
    pub remote: SocketAddr,
    /// The socket's owner uid.
    pub uid: u32,
    /// The socket's inode (`socket:[INODE]` in `/proc/PID/fd`).
    pub inode: u64,
}

/// Who owns a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The socket's owner uid.
    pub uid: u32,
    /// Executable of the process holding the socket, when one was found.
    pub exe: Option<PathBuf>,
    /// The process holding the socket, when one was found.
    pub pid: Option<u32>,
}

impl Owner {
    /// The app id Embargo uses everywhere (policy, history): the executable path, or `uid:N`
    /// when no process could be found (the socket closed, or it belongs to another user whose
    /// `/proc` entries we may not read).
    pub fn app_id(&self) -> String {
        match &self.exe {
            Some(exe) => exe.to_string_lossy().into_owned(),
            None => format!("uid:{}", self.uid),
        }
    }
}

/// Parses one `/proc/net/{tcp,udp}[6]` table. Lines that do not parse are skipped: the format
/// is the kernel's, and a future column must not make every lookup fail.
pub fn parse_table(text: &str) -> Vec<SocketEntry> {
    text.lines().skip(1).filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<SocketEntry> {
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
    let mut fields = line.split_whitespace();
    let _sl = fields.next()?;
    let local = parse_hex_socket_addr(fields.next()?)?;
    let remote = parse_hex_socket_addr(fields.next()?)?;
    let mut rest = fields.skip(4); // st, tx:rx, tr:when, retrnsmt
    let uid = rest.next()?.parse().ok()?;
    let _timeout = rest.next()?;
    let inode = rest.next()?.parse().ok()?;
    Some(SocketEntry {
        local,
        remote,
        uid,
        inode,
    })
}

/// `0100007F:0050` or a 32-digit IPv6 form. The kernel prints each 32-bit word of the address
/// as the hex of that word in host byte order, so the bytes come back with `to_ne_bytes`.
fn parse_hex_socket_addr(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(addr, 16).ok()?.to_ne_bytes(),
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                let word = addr.get(i * 8..i * 8 + 8)?;
                chunk.copy_from_slice(&u32::from_str_radix(word, 16).ok()?.to_ne_bytes());
            }
            canonical(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// A dual-stack socket talking IPv4 shows `::ffff:a.b.c.d`; the tunnel sees plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn canonical_sa(sa: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical(sa.ip()), sa.port())
}

/// Picks the socket of a flow `src -> dst` (as the app sent it) from table rows.
///
/// TCP: the exact 4-tuple. UDP: a connected socket with the exact 4-tuple wins; otherwise an
/// unconnected socket bound to `src`'s port on `src`'s address or the wildcard (how `dig` and
/// most resolvers send).
pub fn find_socket(
    entries: &[SocketEntry],
    protocol: Protocol,
    src: SocketAddr,
    dst: SocketAddr,
) -> Option<SocketEntry> {
    let (src, dst) = (canonical_sa(src), canonical_sa(dst));
    if let Some(e) = entries.iter().find(|e| e.local == src && e.remote == dst) {
        return Some(*e);
    }
    if protocol != Protocol::Udp {
        return None;
    }
    entries
        .iter()
        .filter(|e| e.local.port() == src.port() && e.remote.port() == 0)
        .filter(|e| e.local.ip() == src.ip() || e.local.ip().is_unspecified())
        // a socket bound to the exact address is more specific than a wildcard one
        .max_by_key(|e| e.local.ip() == src.ip())
        .copied()
}

/// Which `/proc/net/*` tables can hold a flow of this protocol. Both families are read: an
/// IPv4 flow can belong to a dual-stack IPv6 socket.
fn tables(protocol: Protocol) -> &'static [&'static str] {
    match protocol {
        Protocol::Tcp => &["tcp", "tcp6"],
        Protocol::Udp => &["udp", "udp6"],
        Protocol::Icmp => &[],
    }
}

/// How many recent owner pids are tried before anything else. A program that opens one
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
/// descriptor table) cost about 1.2 ms of CPU per flow on the bench's 100 processes, on the
/// same 2 cores as the traffic it delayed. Three memories cut it to the few processes that can
/// hold a new socket:
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
fn socket_inode(link: &[u8]) -> Option<u64> {
    let digits = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Finds the process holding socket `inode`, and its executable.
///
/// Cheapest first: the pid already seen holding `inode`; recent owners; processes started
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
    let owner_exe = |state: &mut PidState, pid: u32| -> Option<(u32, PathBuf)> {
        let exe = std::fs::read_link(proc_root.join(pid.to_string()).join("exe")).ok()?;
        state.remember(pid);
        Some((pid, strip_deleted(exe)))
    };
    let check = |state: &mut PidState, pid: u32| -> Option<(u32, PathBuf)> {
        if !state.scan(&proc_root.join(pid.to_string()), pid, inode) {
            return None;
        }
        owner_exe(state, pid)
    };
    if let Some(&pid) = state.inodes.get(&inode) {
        // Indexed when its table was read: still there unless the process exited or passed
        // the socket on (then the walk below finds the holder).
        if std::fs::metadata(proc_root.join(pid.to_string())).is_ok() {
            if let Some(found) = owner_exe(state, pid) {
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

/// Reads the socket tables of the calling thread's network namespace.
fn read_tables(net_dir: &Path, protocol: Protocol) -> Vec<SocketEntry> {
    let mut all = Vec::new();
    for table in tables(protocol) {
        if let Ok(text) = std::fs::read_to_string(net_dir.join(table)) {
            all.extend(parse_table(&text));
        }
    }
    all
}

/// One lookup, in the calling thread's namespace.
fn lookup_here(
    protocol: Protocol,
    src: SocketAddr,
    dst: SocketAddr,
    netns_ino: Option<u64>,
    recent: &PidMemory,
) -> Option<Owner> {
    // One sock_diag question; the tables are the fallback (a kernel without sock_diag).
    let entry = match protocol {
        Protocol::Tcp => sock_diag::lookup(libc::IPPROTO_TCP, src, dst),
        Protocol::Udp => sock_diag::lookup(libc::IPPROTO_UDP, src, dst),
        Protocol::Icmp => None,
    };
    let (entry, from_diag) = match entry {
        Some(e) => (e, true),
        None => {
            let entries = read_tables(Path::new("/proc/thread-self/net"), protocol);
            (find_socket(&entries, protocol, src, dst)?, false)
        }
    };
    if entry.inode == 0 {
        // The kernel shows inode 0 for a socket no descriptor holds any more (the app closed
        // it: FIN-WAIT, TIME-WAIT): no process to find, and walking /proc for it would only
        // burn the cores the traffic needs.
        return Some(Owner {
            uid: entry.uid,
            pid: None,
            exe: None,
        });
    }
    // Asked again before a walk: one more netlink question (microseconds) against a walk of
    // the namespace. Without sock_diag the tables are too slow to re-read: walk anyway.
    let still_held = || {
        !from_diag
            || match protocol {
                Protocol::Tcp => sock_diag::lookup(libc::IPPROTO_TCP, src, dst),
                Protocol::Udp => sock_diag::lookup(libc::IPPROTO_UDP, src, dst),
                Protocol::Icmp => None,
            }
            .is_some_and(|now| now.inode == entry.inode)
    };
    let found = find_process(
        Path::new("/proc"),
        entry.inode,
        entry.uid,
        netns_ino,
        recent,
        still_held,
    );
    Some(Owner {
        uid: entry.uid,
        pid: found.as_ref().map(|(pid, _)| *pid),
        exe: found.map(|(_, exe)| exe),
    })
}

/// The socket inodes of one process's descriptor table (`/proc/PID/fd`).
///
/// A table is read with one descriptor for the directory: `getdents64` lists it and
/// `readlinkat` reads each link relative to it. `std::fs::read_dir` plus `read_link` of each
/// entry's full path made the kernel walk `/proc`, the pid, `fd` and the descriptor again for
/// every link (the path walks were a fifth of a lookup's CPU) and spent an `fstat` in
/// `opendir`.
mod fd_table {
    use std::ffi::CStr;
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;

    /// The fixed part of a `linux_dirent64`: inode u64, offset i64, record length u16,
    /// type u8, then the NUL-terminated name.
    const DIRENT_HEADER: usize = 19;

    /// Room for ~150 entries per `getdents64`: one call lists a typical app's table.
    const LIST_BUFFER: usize = 4096;

    /// A link's text: `socket:[INODE]` is at most 29 bytes; longer links are not sockets.
    const LINK_BUFFER: usize = 64;

    /// Calls `seen` with the inode of every socket in the descriptor table at `dir`. Fails
    /// with `NotFound` when the process is gone, `PermissionDenied` when its table is not
    /// ours to read (found before or at the first link); a descriptor closed meanwhile is
    /// skipped.
    pub fn socket_inodes(dir: &Path, mut seen: impl FnMut(u64)) -> io::Result<()> {
        let dir = File::options()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(dir)?;
        // Records are read field by field from bytes: no alignment needed.
        let mut list = [0u8; LIST_BUFFER];
        loop {
            // SAFETY: the kernel writes at most `LIST_BUFFER` bytes into `list`, which is
            // that long, and reads nothing from it.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    dir.as_raw_fd(),
                    list.as_mut_ptr(),
                    LIST_BUFFER,
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if n == 0 {
                return Ok(());
            }
            for name in entries(list.get(..n as usize).unwrap_or_default()) {
                match link_inode(&dir, name) {
                    Ok(Some(inode)) => seen(inode),
                    Ok(None) => {}
                    // Another user's process: no other link of the table reads either.
                    Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Err(e),
                    Err(_) => {} // closed meanwhile
                }
            }
        }
    }

    /// The names of the records in one `getdents64` result, `.` and `..` left out; a record
    /// whose lengths do not fit ends the walk instead of being read past.
    fn entries(mut filled: &[u8]) -> impl Iterator<Item = &CStr> {
        std::iter::from_fn(move || loop {
            let len_bytes = filled.get(16..18)?;
            let len = usize::from(u16::from_ne_bytes([len_bytes[0], len_bytes[1]]));
            if len < DIRENT_HEADER || len > filled.len() {
                return None;
            }
            let (record, rest) = filled.split_at(len);
            filled = rest;
            let name = CStr::from_bytes_until_nul(record.get(DIRENT_HEADER..)?).ok()?;
            if name.to_bytes() != b"." && name.to_bytes() != b".." {
                return Some(name);
            }
        })
    }

    /// The socket inode `dir/name` links to, or `None` for any other link.
    fn link_inode(dir: &File, name: &CStr) -> io::Result<Option<u64>> {
        let mut link = [0u8; LINK_BUFFER];
        // SAFETY: `name` is NUL-terminated; the kernel writes at most `LINK_BUFFER` bytes.
        let n = unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                name.as_ptr(),
                link.as_mut_ptr().cast(),
                LINK_BUFFER,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(link.get(..n as usize).and_then(super::socket_inode))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// A record as the kernel lays it out (8-byte aligned length).
        fn record(name: &str) -> Vec<u8> {
            let len = (DIRENT_HEADER + name.len() + 1).next_multiple_of(8);
            let mut r = vec![0u8; len];
            r[16..18].copy_from_slice(&(len as u16).to_ne_bytes());
            r[18] = 10; // DT_LNK
            r[DIRENT_HEADER..DIRENT_HEADER + name.len()].copy_from_slice(name.as_bytes());
            r
        }

        #[test]
        fn records_are_split_and_dots_skipped() {
            let buf = [record("."), record(".."), record("0"), record("251")].concat();
            let names: Vec<_> = entries(&buf).map(|n| n.to_str().unwrap()).collect();
            assert_eq!(names, ["0", "251"]);
        }

        #[test]
        fn a_record_longer_than_what_is_left_ends_the_walk() {
            let mut buf = [record("3"), record("4")].concat();
            let second = buf.len() / 2;
            buf[second + 16..second + 18].copy_from_slice(&200u16.to_ne_bytes());
            let names: Vec<_> = entries(&buf).collect();
            assert_eq!(names.len(), 1);
            // and lengths too short to hold a header, or a name without its NUL
            assert_eq!(entries(&[0u8; 18]).count(), 0);
            let mut short = record("5");
            short[16..18].copy_from_slice(&3u16.to_ne_bytes());
            assert_eq!(entries(&short).count(), 0);
            let mut unterminated = record("6");
            for b in &mut unterminated[DIRENT_HEADER..] {
                *b = b'7';
            }
            assert_eq!(entries(&unterminated).count(), 0);
        }

        #[test]
        fn reads_the_socket_of_this_process() {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let path = format!("/proc/self/fd/{}", socket.as_raw_fd());
            let link = std::fs::read_link(path).unwrap();
            let want = super::super::socket_inode(link.as_os_str().as_encoded_bytes()).unwrap();
            let mut found = Vec::new();
            socket_inodes(Path::new("/proc/self/fd"), |i| found.push(i)).unwrap();
            assert!(found.contains(&want), "{found:?} lacks {want}");
        }

        #[test]
        fn a_table_that_is_gone_is_not_found() {
            let err = socket_inodes(Path::new("/proc/4194304999/fd"), |_| {}).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
        }
    }
}

/// A flow as the app sent it: protocol, source, destination.
type FlowKey = (Protocol, SocketAddr, SocketAddr);

/// Exact socket lookup over netlink `sock_diag` (what `ss` uses).
///
/// Reading `/proc/net/tcp` walks the kernel's whole TCP hash table, which all namespaces
/// share and which is sized by the machine's memory: 35-60 ms per read on a 24 GiB test
/// machine, longer than the engine waits for an app answer. A `sock_diag` request naming the
/// 4-tuple is one hash lookup in the kernel, well under a millisecond.
mod sock_diag {
    use super::{canonical_sa, SocketEntry};
    use std::net::{IpAddr, SocketAddr};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    const NETLINK_SOCK_DIAG: libc::c_int = 4;
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLMSG_ERROR: u16 = 2;
    const INET_DIAG_NOCOOKIE: u32 = !0;

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct SockId {
        sport: [u8; 2],
        dport: [u8; 2],
        src: [u8; 16],
        dst: [u8; 16],
        interface: u32,
        cookie: [u32; 2],
    }

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Request {
        // struct nlmsghdr
        len: u32,
        kind: u16,
        flags: u16,
        seq: u32,
        pid: u32,
        // struct inet_diag_req_v2
        family: u8,
        protocol: u8,
        ext: u8,
        pad: u8,
        states: u32,
        id: SockId,
    }

    /// Offsets in the answer: nlmsghdr (16) + inet_diag_msg's family..retrans (4) + id (48)
    /// + expires, rqueue, wqueue (12), then uid and inode.
    const UID_AT: usize = 16 + 4 + 48 + 12;
    const INODE_AT: usize = UID_AT + 4;

    fn sock_id(local: SocketAddr, remote: SocketAddr, v6: bool) -> SockId {
        let bytes = |ip: IpAddr| -> [u8; 16] {
            let mut out = [0u8; 16];
            match (ip, v6) {
                (IpAddr::V4(a), false) => out[..4].copy_from_slice(&a.octets()),
                (IpAddr::V4(a), true) => out = a.to_ipv6_mapped().octets(),
                (IpAddr::V6(a), _) => out = a.octets(),
            }
            out
        };
        SockId {
            sport: local.port().to_be_bytes(),
            dport: remote.port().to_be_bytes(),
            src: bytes(local.ip()),
            dst: bytes(remote.ip()),
            interface: 0,
            cookie: [INET_DIAG_NOCOOKIE; 2],
        }
    }

    /// The TCP or UDP socket of the flow `src -> dst` in the calling thread's namespace, if
    /// the kernel knows it.
    ///
    /// TCP answers the exact 4-tuple. UDP's lookup is the one for a *received* datagram
    /// (`__udp4_lib_lookup(saddr, sport, daddr, dport)`), so it is asked with the reply's
    /// direction, which also finds unconnected and wildcard-bound sockets, as a reply would.
    pub fn lookup(protocol: libc::c_int, src: SocketAddr, dst: SocketAddr) -> Option<SocketEntry> {
        let (src, dst) = (canonical_sa(src), canonical_sa(dst));
        // An IPv4 flow may belong to a dual-stack IPv6 socket (v4-mapped addresses).
        let families: &[(u8, bool)] = if src.is_ipv4() {
            &[(libc::AF_INET as u8, false), (libc::AF_INET6 as u8, true)]
        } else {
            &[(libc::AF_INET6 as u8, true)]
        };
        let udp = protocol == libc::IPPROTO_UDP;
        families
            .iter()
            .find_map(|&(family, v6)| {
                let id = if udp {
                    sock_id(dst, src, v6)
                } else {
                    sock_id(src, dst, v6)
                };
                ask(family, protocol, id, src.port(), dst.port())
            })
            .map(|(uid, inode)| SocketEntry {
                local: src,
                remote: dst,
                uid,
                inode,
            })
    }

    /// One request; the answer must be a socket bound to `local_port` and connected to
    /// `remote_port` (or, for UDP, unconnected).
    fn ask(
        family: u8,
        protocol: libc::c_int,
        id: SockId,
        local_port: u16,
        remote_port: u16,
    ) -> Option<(u32, u64)> {
        let request = Request {
            len: std::mem::size_of::<Request>() as u32,
            kind: SOCK_DIAG_BY_FAMILY,
            flags: libc::NLM_F_REQUEST as u16,
            family,
            protocol: protocol as u8,
            states: !0,
            id,
            ..Request::default()
        };
        let mut answer = [0u8; 1024];
        let n = SOCKET.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = open_socket();
            }
            let fd = slot.as_ref()?;
            let n = exchange(fd, request, &mut answer);
            if n.is_none() {
                *slot = None; // start over with a fresh socket next time
            }
            n
        })?;
        let kind = u16::from_ne_bytes([*answer.get(4)?, *answer.get(5)?]);
        if kind == NLMSG_ERROR || kind != SOCK_DIAG_BY_FAMILY || n < INODE_AT + 4 {
            return None;
        }
        // TCP's lookup falls back to a listening socket on the local port: only an answer
        // for exactly the asked remote end is this flow's socket.
        const ID_AT: usize = 16 + 4;
        let port = |at: usize| u16::from_be_bytes([answer[at], answer[at + 1]]);
        let (got_local, got_remote) = (port(ID_AT), port(ID_AT + 2));
        let connected_ok = got_remote == remote_port;
        let unconnected_ok = protocol == libc::IPPROTO_UDP && got_remote == 0;
        if got_local != local_port || !(connected_ok || unconnected_ok) {
            return None;
        }
        let word = |at: usize| {
            u32::from_ne_bytes([answer[at], answer[at + 1], answer[at + 2], answer[at + 3]])
        };
        Some((word(UID_AT), u64::from(word(INODE_AT))))
    }

    thread_local! {
        /// One netlink socket per thread, kept: opening one per lookup (socket, setsockopt,
        /// close) cost as much as the question itself. Per thread because a socket answers
        /// for the network namespace it was opened in, and the namespace worker has its own.
        static SOCKET: std::cell::RefCell<Option<OwnedFd>> = const { std::cell::RefCell::new(None) };
        /// Sequence numbers pair a request with its answer on the kept socket (an answer
        /// that arrived after its timeout must not be read as the next one's).
        static SEQ: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }

    fn open_socket() -> Option<OwnedFd> {
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let timeout = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: the pointer and length describe a live timeval.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        (rc == 0).then_some(fd)
    }

    /// Sends `request` (with the next sequence number) and receives its answer into
    /// `answer`, skipping answers to earlier requests. `None` on any socket error.
    fn exchange(fd: &OwnedFd, mut request: Request, answer: &mut [u8]) -> Option<usize> {
        let seq = SEQ.with(|s| {
            let next = s.get().wrapping_add(1);
            s.set(next);
            next
        });
        request.seq = seq;
        // SAFETY: the pointer and length describe `request`.
        let sent = unsafe {
            libc::send(
                fd.as_raw_fd(),
                (&request as *const Request).cast(),
                std::mem::size_of::<Request>(),
                0,
            )
        };
        if sent < 0 {
            return None;
        }
        loop {
            // SAFETY: the pointer and length describe `answer`.
            let n =
                unsafe { libc::recv(fd.as_raw_fd(), answer.as_mut_ptr().cast(), answer.len(), 0) };
            let n = usize::try_from(n).ok()?;
            let got = u32::from_ne_bytes([
                *answer.get(8)?,
                *answer.get(9)?,
                *answer.get(10)?,
                *answer.get(11)?,
            ]);
            if got == seq {
                return Some(n);
            }
        }
    }
}

type Request = (
    Protocol,
    SocketAddr,
    SocketAddr,
    mpsc::Sender<Option<Owner>>,
);

/// Finds the owners of flows in one network namespace, with a cache.
///
/// Cheap to share (`&self` methods, internally locked). When built for another namespace, a
/// worker thread lives inside it and serves the lookups; it ends when this value is dropped.
pub struct AppResolver {
    worker: Option<Mutex<mpsc::Sender<Request>>>,
    netns_ino: Option<u64>,
    cache: Mutex<HashMap<FlowKey, (Instant, Option<Owner>)>>,
    recent: Arc<PidMemory>,
}

impl AppResolver {
    /// Looks up flows in the caller's own network namespace.
    pub fn current() -> Self {
        AppResolver {
            worker: None,
            netns_ino: std::fs::metadata("/proc/self/ns/net").ok().map(|m| m.ino()),
            cache: Mutex::new(HashMap::new()),
            recent: Arc::default(),
        }
    }

    /// Looks up flows in the namespace at `netns` (e.g. `/run/netns/NAME`, or
    /// `/proc/PID/ns/net`). Fails when the namespace cannot be entered (needs CAP_SYS_ADMIN).
    pub fn in_netns(netns: &Path) -> io::Result<Self> {
        let file = File::open(netns)?;
        let netns_ino = file.metadata()?.ino();
        let (tx, rx) = mpsc::channel::<Request>();
        let recent = Arc::new(PidMemory::default());
        let worker_recent = Arc::clone(&recent);
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        thread::Builder::new()
            .name("embargo-procfs".into())
            .spawn(move || {
                // SAFETY-free FFI: setns on a valid descriptor; affects only this thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                let entered = if rc == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                };
                let ok = entered.is_ok();
                let _ = ready_tx.send(entered);
                if !ok {
                    return;
                }
                for (protocol, src, dst, reply) in rx {
                    let owner = lookup_here(protocol, src, dst, Some(netns_ino), &worker_recent);
                    let _ = reply.send(owner);
                }
            })?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("procfs worker ended before entering the namespace"))??;
        Ok(AppResolver {
            worker: Some(Mutex::new(tx)),
            netns_ino: Some(netns_ino),
            cache: Mutex::new(HashMap::new()),
            recent,
        })
    }

    /// Never searches the calling process (see [`PidMemory::exclude`]): for the shells,
    /// whose own sockets never carry an app's flow.
    pub fn ignoring_own_process(self) -> Self {
        self.recent.exclude(std::process::id());
        self
    }

    /// The owner of the flow `src -> dst` (addresses as the app sent them), or `None` when no
    /// socket matches (it closed already, or the protocol has no table, like ICMP).
    pub fn owner(&self, protocol: Protocol, src: SocketAddr, dst: SocketAddr) -> Option<Owner> {
        let key = (protocol, canonical_sa(src), canonical_sa(dst));
        let now = Instant::now();
        if let Ok(cache) = self.cache.lock() {
            if let Some((at, owner)) = cache.get(&key) {
                if now.duration_since(*at) < CACHE_TTL {
                    return owner.clone();
                }
            }
        }
        let owner = match &self.worker {
            None => lookup_here(protocol, src, dst, self.netns_ino, &self.recent),
            Some(worker) => {
                let (reply_tx, reply_rx) = mpsc::channel();
                let sent = worker
                    .lock()
                    .ok()
                    .and_then(|w| w.send((protocol, src, dst, reply_tx)).ok());
                sent.and_then(|()| reply_rx.recv().ok()).flatten()
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_CAPACITY {
                cache.retain(|_, (at, _)| now.duration_since(*at) < CACHE_TTL);
                if cache.len() >= CACHE_CAPACITY {
                    cache.clear();
                }
            }
            // A miss is cached too, but only when the socket was not found at all would a
            // retry help; keep misses briefly by storing them with an aged timestamp.
            let at = if owner.is_some() {
                now
            } else {
                now.checked_sub(CACHE_TTL - Duration::from_secs(2))
                    .unwrap_or(now)
            };
            cache.insert(key, (at, owner.clone()));
        }
        owner
    }

    /// [`Self::owner`] as the app id string (executable path, or `uid:N`).
    pub fn app_id(&self, protocol: Protocol, src: SocketAddr, dst: SocketAddr) -> Option<String> {
        self.owner(protocol, src, dst).map(|o| o.app_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream, UdpSocket};

    const TCP_SAMPLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 39 1 000000008e457253 100 0 0 10 0
   1: 020200C0:85D6 507100CB:01BB 01 00000000:00000000 03:00001130 00000000  1000        0 4242 3 000000002694fed6
";

    #[test]
    fn parses_ipv4_rows_in_host_byte_order() {
        let rows = parse_table(TCP_SAMPLE);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].local, "127.0.0.1:80".parse().unwrap());
        assert_eq!(rows[1].local, "192.0.2.2:34262".parse().unwrap());
        assert_eq!(rows[1].remote, "203.0.113.80:443".parse().unwrap());
        assert_eq!(rows[1].uid, 1000);
        assert_eq!(rows[1].inode, 4242);
    }

    #[test]
    fn parses_ipv6_and_maps_v4_mapped_to_ipv4() {
        let text = "header\n   0: 0000000000000000FFFF00000100007F:0050 00000000000000000000000001000000:1F90 01 0:0 0:0 0 7 0 99 1\n";
        let rows = parse_table(text);
        assert_eq!(rows[0].local, "127.0.0.1:80".parse().unwrap());
        assert_eq!(rows[0].remote, "[::1]:8080".parse().unwrap());
        assert_eq!(rows[0].uid, 7);
        assert_eq!(rows[0].inode, 99);
    }

    #[test]
    fn skips_garbage_lines() {
        assert!(parse_table("header\nnot a row\n 0: zz:zz\n").is_empty());
    }

    #[test]
    fn udp_prefers_connected_then_exact_bound_then_wildcard() {
        let row = |local: &str, remote: &str, inode| SocketEntry {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            uid: 0,
            inode,
        };
        let src: SocketAddr = "10.0.0.2:5353".parse().unwrap();
        let dst: SocketAddr = "10.0.0.1:53".parse().unwrap();
        let wild = row("0.0.0.0:5353", "0.0.0.0:0", 1);
        let bound = row("10.0.0.2:5353", "0.0.0.0:0", 2);
        let connected = row("10.0.0.2:5353", "10.0.0.1:53", 3);
        let pick =
            |rows: &[SocketEntry]| find_socket(rows, Protocol::Udp, src, dst).map(|e| e.inode);
        assert_eq!(pick(&[wild]), Some(1));
        assert_eq!(pick(&[wild, bound]), Some(2));
        assert_eq!(pick(&[wild, bound, connected]), Some(3));
        // TCP never falls back to a listening/unconnected socket
        assert_eq!(find_socket(&[wild], Protocol::Tcp, src, dst), None);
    }

    fn me() -> PathBuf {
        std::fs::canonicalize(std::env::current_exe().unwrap()).unwrap()
    }

    #[test]
    fn finds_own_process_for_a_real_tcp_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let resolver = AppResolver::current();
        let owner = resolver
            .owner(
                Protocol::Tcp,
                client.local_addr().unwrap(),
                client.peer_addr().unwrap(),
            )
            .expect("socket found");
        assert_eq!(owner.uid, unsafe { libc::geteuid() });
        assert_eq!(owner.pid, Some(std::process::id()));
        assert_eq!(owner.exe.as_deref(), Some(me().as_path()));
        assert_eq!(owner.app_id(), me().to_string_lossy());
    }

    #[test]
    fn finds_own_process_for_an_ipv6_dual_stack_socket_talking_ipv4() {
        // A v6 socket connecting to a v4-mapped address shows in tcp6 as ::ffff:127.0.0.1.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let Ok(client) = TcpStream::connect(format!("[::ffff:127.0.0.1]:{port}")) else {
            eprintln!("SKIP: no IPv6 loopback here");
            return;
        };
        let resolver = AppResolver::current();
        let owner = resolver.owner(
            Protocol::Tcp,
            client.local_addr().unwrap(),
            client.peer_addr().unwrap(),
        );
        assert_eq!(owner.and_then(|o| o.exe), Some(me()));
    }

    #[test]
    fn finds_own_process_for_an_unconnected_udp_socket() {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        let dst: SocketAddr = "127.0.0.1:9".parse().unwrap();
        socket.send_to(b"x", dst).unwrap();
        let src = SocketAddr::new(
            "127.0.0.1".parse().unwrap(),
            socket.local_addr().unwrap().port(),
        );
        let owner = AppResolver::current().owner(Protocol::Udp, src, dst);
        assert_eq!(owner.and_then(|o| o.exe), Some(me()));
    }

    #[test]
    fn unknown_flow_has_no_owner() {
        let src: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let dst: SocketAddr = "127.0.0.1:2".parse().unwrap();
        assert_eq!(AppResolver::current().owner(Protocol::Tcp, src, dst), None);
        assert_eq!(AppResolver::current().owner(Protocol::Icmp, src, dst), None);
    }

    #[test]
    fn worker_thread_in_a_namespace_finds_the_socket() {
        // Entering our own namespace exercises the worker path without needing `ip netns`.
        let resolver = match AppResolver::in_netns(Path::new("/proc/self/ns/net")) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("SKIP: cannot setns here ({e})");
                return;
            }
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let id = resolver.app_id(
            Protocol::Tcp,
            client.local_addr().unwrap(),
            client.peer_addr().unwrap(),
        );
        assert_eq!(id, Some(me().to_string_lossy().into_owned()));
    }

    #[test]
    fn sock_diag_finds_the_same_socket_as_the_tables() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (src, dst) = (client.local_addr().unwrap(), client.peer_addr().unwrap());
        let diag = sock_diag::lookup(libc::IPPROTO_TCP, src, dst).expect("sock_diag answers");
        let tables = read_tables(Path::new("/proc/thread-self/net"), Protocol::Tcp);
        let table = find_socket(&tables, Protocol::Tcp, src, dst).unwrap();
        assert_eq!(diag, table);
        // and nothing for a flow that does not exist
        let nowhere = "127.0.0.1:1".parse().unwrap();
        assert_eq!(sock_diag::lookup(libc::IPPROTO_TCP, dst, nowhere), None);
    }

    #[test]
    fn sock_diag_finds_unconnected_and_connected_udp_sockets() {
        let unconnected = UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = unconnected.local_addr().unwrap().port();
        let src = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
        let dst: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let found = sock_diag::lookup(libc::IPPROTO_UDP, src, dst).expect("unconnected found");
        assert_eq!(found.local, src);
        let connected = UdpSocket::bind("127.0.0.1:0").unwrap();
        connected.connect(dst).unwrap();
        let src = connected.local_addr().unwrap();
        let found = sock_diag::lookup(libc::IPPROTO_UDP, src, dst).expect("connected found");
        assert_ne!(found.inode, 0);
        let elsewhere = "127.0.0.1:10".parse().unwrap();
        assert_eq!(sock_diag::lookup(libc::IPPROTO_UDP, src, elsewhere), None);
    }

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
    fn a_recent_owner_that_exited_is_forgotten() {
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
