//! The iOS packet tunnel extension's footprint, measured on Linux: the same composition the
//! extension runs (one `Embargo` with the built-in policy mapped, the history in SQLite, the
//! driver in packet-batch mode, the engine's default configuration, which is the iOS budget),
//! under load, and the process's peak resident set compared with iOS's 50 MiB cap.
//!
//! The load: 20,000 DNS questions (half blocked by the built-in list, answered in the engine
//! and written to the history; half forwarded to a loopback resolver and cached), 2,000
//! established TCP flows to a loopback server that sends 16 KiB into each (the app never
//! acknowledges, so the engine's send rings stay full), and a 10,000-SYN flood. Resident set
//! size is an upper bound for iOS's footprint (which does not count clean file-backed pages),
//! and this process also holds the test harness and its packets.
//!
//! The rules are the app's: a child process (this binary again, as the app) adds a list of
//! `LIST_NAMES` names and compiles the rules into the storage directory
//! (`Embargo::compile_rules`); this process opens `Embargo` as the extension, which maps
//! them and parses no list, as on iOS.
//!
//! Its own test binary, so that the peak belongs to this test alone.

use embargo_test_support as harness;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use embargo_ffi::{
    records::Protocol, rules::ListFormat, Embargo, EmbargoConfig, HookError, PacketBatchSink,
    PlatformHooks, ProcessRole,
};
use harness::{AppConn, Out};

/// iOS ends a packet tunnel extension past this (since iOS 15).
const IOS_EXTENSION_CAP: usize = 50 * 1024 * 1024;
const QUESTIONS: usize = 20_000;
const FLOWS: usize = 2_000;
const SYN_FLOOD: usize = 10_000;
const SERVER_BYTES: usize = 16 * 1024;
/// Names in the app's list (a large hosts-style blocklist has 100-300k).
const LIST_NAMES: usize = 200_000;
/// Set for the child process that plays the app: the storage directory.
const APP_DIR: &str = "EMBARGO_FOOTPRINT_APP_DIR";

struct NoHooks;
impl PlatformHooks for NoHooks {
    fn protect(&self, _fd: i32) -> Result<(), HookError> {
        Ok(())
    }
    fn app_of_flow(
        &self,
        _p: Protocol,
        _s: String,
        _d: String,
    ) -> Result<Option<String>, HookError> {
        Ok(None)
    }
}

/// Keeps only the SYN-ACKs (for the apps' ACKs); every other packet is counted and dropped,
/// as the system's stack would consume it.
struct SynAckSink(Mutex<mpsc::Sender<harness::Seg>>);
impl PacketBatchSink for SynAckSink {
    fn write_packets(&self, packets: Vec<Vec<u8>>) -> Result<(), HookError> {
        let tx = self.0.lock().unwrap();
        for p in packets {
            if p[9] == 6 {
                if let Out::Tcp(seg) = harness::parse_out(&p) {
                    if seg.syn && seg.ack.is_some() {
                        let _ = tx.send(seg);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A `VmHWM`/`VmRSS` line of /proc/self/status, in bytes.
fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: usize = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// Raises the descriptor limit to what the flows need (each holds an upstream socket and the
/// server's end of it), up to the hard limit.
fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit struct we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur
}

fn push_all(e: &Embargo, packets: &[Vec<u8>]) {
    let mut rest = packets;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !rest.is_empty() {
        let n = rest.len().min(256);
        let queued = e.push_packets(rest[..n].to_vec()).unwrap() as usize;
        rest = &rest[queued..];
        if queued < n {
            assert!(
                Instant::now() < deadline,
                "the tunnel stopped taking packets"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The app's part, run in a child process by the test below (and nothing when run alone):
/// a large list added and the rules compiled for the extension.
#[test]
fn the_app_compiles_the_rules() {
    let Some(dir) = std::env::var_os(APP_DIR) else {
        return;
    };
    let app = Embargo::with_role(
        EmbargoConfig::default(),
        dir.to_string_lossy().into_owned(),
        ProcessRole::App,
    )
    .unwrap();
    let mut list = String::with_capacity(LIST_NAMES * 32);
    for i in 0..LIST_NAMES {
        list.push_str(&format!("ads{i}.tracker{}.example\n", i % 997));
    }
    app.set_list("big".into(), list.into_bytes(), Some(ListFormat::Domains))
        .unwrap();
    let compiled = app.compile_rules().unwrap();
    println!(
        "compiled {} rules into {} ({} bytes)",
        compiled.rules, compiled.path, compiled.bytes
    );
}

#[test]
fn the_extension_stays_inside_the_ios_cap_under_load() {
    let fds = raise_nofile(3 * FLOWS as u64 + 512);
    let flows = if fds >= 3 * FLOWS as u64 + 256 {
        FLOWS
    } else {
        println!("descriptor limit {fds}: fewer TCP flows");
        (fds as usize).saturating_sub(256) / 3
    };

    // A loopback resolver answering every question with 192.0.2.1.
    let resolver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let resolver_addr = resolver.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = resolver.recv_from(&mut buf) {
            let answer = harness::dns_answer(&buf[..n], &["192.0.2.1".parse().unwrap()]);
            let _ = resolver.send_to(&answer, from);
        }
    });
    // A loopback server that sends SERVER_BYTES into every connection and keeps it open.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server: SocketAddr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        let chunk = vec![0x5au8; SERVER_BYTES];
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_nonblocking(true);
            let mut sent = 0;
            while sent < SERVER_BYTES {
                match stream.write(&chunk[sent..]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                }
            }
            let mut sink = [0u8; 64];
            let _ = stream.read(&mut sink);
            held.push(stream);
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let config = EmbargoConfig {
        dns_upstream: resolver_addr.to_string(),
        ..EmbargoConfig::default()
    };
    let app = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "the_app_compiles_the_rules", "--nocapture"])
        .env(APP_DIR, dir.path())
        .status()
        .unwrap();
    assert!(app.success(), "the app's process: {app}");
    let e = Embargo::with_role(
        config,
        dir.path().display().to_string(),
        ProcessRole::Tunnel,
    )
    .unwrap();
    assert_eq!(
        e.check("ads7.tracker7.example".into(), None)
            .unwrap()
            .verdict,
        embargo_ffi::records::Verdict::Block,
        "the app's list, mapped"
    );
    let (tx, synacks) = mpsc::channel();
    e.start_with_packet_batches(Arc::new(SynAckSink(Mutex::new(tx))), Arc::new(NoHooks))
        .unwrap();
    let rss_started = status_bytes("VmRSS:");

    // DNS: half blocked by the built-in list, half forwarded and cached.
    let questions: Vec<Vec<u8>> = (0..QUESTIONS)
        .map(|i| {
            let name = if i % 2 == 0 {
                format!("t{i}.log.tiktokv.com")
            } else {
                format!("h{i}.example.net")
            };
            harness::udp(
                format!("10.111.0.2:{}", 10_000 + i % 50_000)
                    .parse()
                    .unwrap(),
                "10.111.0.1:53".parse().unwrap(),
                &harness::dns_query(i as u16, &name, 1),
            )
        })
        .collect();
    push_all(&e, &questions);
    drop(questions);
    wait("the DNS answers", || {
        let s = e.status().unwrap();
        s.dns_blocked as usize >= QUESTIONS / 2
    });

    // TCP: established flows to the loopback server, each with its rings filled.
    let mut apps: Vec<AppConn> = (0..flows)
        .map(|i| {
            AppConn::new(
                &format!("10.112.{}.{}:{}", i / 250, 2 + i % 250, 20_000 + i),
                &server.to_string(),
            )
        })
        .collect();
    let index: std::collections::HashMap<SocketAddr, usize> =
        apps.iter().enumerate().map(|(i, a)| (a.src, i)).collect();
    let syns: Vec<Vec<u8>> = apps.iter().map(AppConn::syn).collect();
    push_all(&e, &syns);
    let mut acks = Vec::with_capacity(flows);
    while acks.len() < flows {
        let seg = synacks
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{} of {flows} SYN-ACKs", acks.len()));
        if let Some(&i) = index.get(&seg.dst) {
            acks.push(apps[i].on_synack(&seg));
        }
    }
    push_all(&e, &acks);
    let requests: Vec<Vec<u8>> = apps.iter_mut().map(|a| a.data(b"GET")).collect();
    push_all(&e, &requests);
    wait("the flows' downloads", || {
        let s = e.status().unwrap();
        s.bytes_down as usize >= flows * 1024
    });

    // A SYN flood on top (half-open handshakes are capped; the oldest make room).
    let flood: Vec<Vec<u8>> = (0..SYN_FLOOD)
        .map(|i| {
            AppConn::new(
                &format!("10.113.{}.{}:{}", i / 250, 2 + i % 250, 30_000 + i % 30_000),
                &server.to_string(),
            )
            .syn()
        })
        .collect();
    push_all(&e, &flood);
    drop(flood);
    std::thread::sleep(Duration::from_millis(500));
    e.flush_history().unwrap();

    let status = e.status().unwrap();
    let hwm = status_bytes("VmHWM:");
    let mib = |b: usize| b as f64 / 1048576.0;
    println!(
        "iOS footprint on Linux: peak RSS {:.1} MiB (cap {:.0} MiB), RSS after start {:.1} MiB, \
         engine accounting {:.1} MiB, {} TCP flows, {} DNS blocked, {} forwarded, {} bytes down",
        mib(hwm),
        mib(IOS_EXTENSION_CAP),
        mib(rss_started),
        mib(status.memory_bytes as usize),
        status.tcp_flows,
        status.dns_blocked,
        status.dns_forwarded,
        status.bytes_down,
    );
    assert!(status.tcp_flows as usize >= flows, "{status:?}");
    assert!(
        hwm < IOS_EXTENSION_CAP,
        "peak RSS {hwm} B passes the iOS cap {IOS_EXTENSION_CAP} B"
    );
    e.stop().unwrap();
}
