//! [`AppResolver`]: the app of a flow (uid, pid, executable), found by `sock_diag` and the
//! process search, cached, and served by a worker thread inside another network namespace.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use embargo_policy::Protocol;

use super::process::{find_process, PidMemory};
use super::sock_diag;
use super::tables::{canonical_sa, find_socket, read_tables};

/// How long an answer stays cached. A flow's app cannot change while its socket lives;
/// the TTL only bounds how long a reused 4-tuple keeps a stale app, and 30 s is shorter than
/// TCP's TIME-WAIT plus a typical reconnect, so reuse by another program is rare within it.
pub const CACHE_TTL: Duration = Duration::from_secs(30);

/// Upper bound on cached answers: about 100 bytes each, so at most a few hundred KiB.
pub const CACHE_CAPACITY: usize = 4096;

/// The app a flow belongs to: the socket's uid and, when found, the process holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowApp {
    /// The socket's uid.
    pub uid: u32,
    /// Executable of the process holding the socket, when one was found.
    pub exe: Option<PathBuf>,
    /// The process holding the socket, when one was found.
    pub pid: Option<u32>,
}

impl FlowApp {
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

/// One lookup, in the calling thread's namespace.
fn lookup_here(
    protocol: Protocol,
    src: SocketAddr,
    dst: SocketAddr,
    netns_ino: Option<u64>,
    recent: &PidMemory,
) -> Option<FlowApp> {
    // One sock_diag question; the tables are the fallback (a kernel without sock_diag).
    let entry = match protocol {
        Protocol::Tcp => sock_diag::lookup(libc::IPPROTO_TCP, src, dst),
        Protocol::Udp => sock_diag::lookup(libc::IPPROTO_UDP, src, dst),
        Protocol::Icmp | Protocol::Dns => None,
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
        return Some(FlowApp {
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
                Protocol::Icmp | Protocol::Dns => None,
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
    Some(FlowApp {
        uid: entry.uid,
        pid: found.as_ref().map(|(pid, _)| *pid),
        exe: found.map(|(_, exe)| exe),
    })
}

/// A flow as the app sent it: protocol, source, destination.
type FlowKey = (Protocol, SocketAddr, SocketAddr);

type Request = (
    Protocol,
    SocketAddr,
    SocketAddr,
    mpsc::Sender<Option<FlowApp>>,
);

/// Finds the apps of flows in one network namespace, with a cache.
///
/// Cheap to share (`&self` methods, internally locked). When built for another namespace, a
/// worker thread lives inside it and serves the lookups; it ends when this value is dropped.
pub struct AppResolver {
    worker: Option<Mutex<mpsc::Sender<Request>>>,
    netns_ino: Option<u64>,
    cache: Mutex<HashMap<FlowKey, (Instant, Option<FlowApp>)>>,
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
                    let app = lookup_here(protocol, src, dst, Some(netns_ino), &worker_recent);
                    let _ = reply.send(app);
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

    /// The app of the flow `src -> dst` (addresses as the app sent them), or `None` when no
    /// socket matches (it closed already, or the protocol has no table, like ICMP).
    pub fn app_of_flow(
        &self,
        protocol: Protocol,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> Option<FlowApp> {
        let key = (protocol, canonical_sa(src), canonical_sa(dst));
        let now = Instant::now();
        if let Ok(cache) = self.cache.lock() {
            if let Some((at, app)) = cache.get(&key) {
                if now.duration_since(*at) < CACHE_TTL {
                    return app.clone();
                }
            }
        }
        let app = match &self.worker {
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
            let at = if app.is_some() {
                now
            } else {
                now.checked_sub(CACHE_TTL - Duration::from_secs(2))
                    .unwrap_or(now)
            };
            cache.insert(key, (at, app.clone()));
        }
        app
    }

    /// [`Self::app_of_flow`] as the app id string (executable path, or `uid:N`).
    pub fn app_id(&self, protocol: Protocol, src: SocketAddr, dst: SocketAddr) -> Option<String> {
        self.app_of_flow(protocol, src, dst).map(|o| o.app_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream, UdpSocket};

    fn me() -> PathBuf {
        std::fs::canonicalize(std::env::current_exe().unwrap()).unwrap()
    }

    #[test]
    fn finds_own_process_for_a_real_tcp_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let resolver = AppResolver::current();
        let app = resolver
            .app_of_flow(
                Protocol::Tcp,
                client.local_addr().unwrap(),
                client.peer_addr().unwrap(),
            )
            .expect("socket found");
        assert_eq!(app.uid, unsafe { libc::geteuid() });
        assert_eq!(app.pid, Some(std::process::id()));
        assert_eq!(app.exe.as_deref(), Some(me().as_path()));
        assert_eq!(app.app_id(), me().to_string_lossy());
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
        let app = resolver.app_of_flow(
            Protocol::Tcp,
            client.local_addr().unwrap(),
            client.peer_addr().unwrap(),
        );
        assert_eq!(app.and_then(|o| o.exe), Some(me()));
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
        let app = AppResolver::current().app_of_flow(Protocol::Udp, src, dst);
        assert_eq!(app.and_then(|o| o.exe), Some(me()));
    }

    #[test]
    fn unknown_flow_has_no_app() {
        let src: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let dst: SocketAddr = "127.0.0.1:2".parse().unwrap();
        assert_eq!(
            AppResolver::current().app_of_flow(Protocol::Tcp, src, dst),
            None
        );
        assert_eq!(
            AppResolver::current().app_of_flow(Protocol::Icmp, src, dst),
            None
        );
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
}
