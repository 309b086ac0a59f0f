//! End to end: `embargo run --netns NAME` on a real TUN device, with a real HTTP server in a
//! second namespace reached from the host namespace over a veth pair (Embargo's own sockets
//! live in the host namespace; the protected namespace's only route is the tunnel).
//!
//! Checks: an allowed address answers byte for byte through the tunnel; a blocked address
//! fails and never reaches the server; a blocked name resolves to 0.0.0.0 inside the
//! namespace; SIGTERM removes the namespace, its DNS file and the state file; after SIGKILL the
//! next start reverts what the killed instance left, and works.
//!
//! Needs root and /dev/net/tun: otherwise it prints why and passes without testing (loudly).
//! The big real-network suite is tests/netns/; this one stays small.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        return Some("not root".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    for tool in ["ip", "curl", "python3", "getent"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            return Some(format!("{tool} not installed"));
        }
    }
    None
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn sh(cmd: &str) -> (bool, String) {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn must(cmd: &str) -> String {
    let (ok, out) = sh(cmd);
    assert!(ok, "`{cmd}` failed: {out}");
    out
}

struct World {
    tag: String,
    ns: String,
    srv_ns: String,
    net: u32,
    dir: PathBuf,
    server: Option<Child>,
    embargo: Option<Child>,
}

impl World {
    fn new() -> World {
        let pid = std::process::id();
        let tag = format!("{}", pid % 100_000);
        let net = 100 + pid % 100;
        let dir = std::env::temp_dir().join(format!("embargo-run-netns-{pid}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("www")).unwrap();
        // No state dir: `embargo run` creates it, owner-only (asserted below).
        World {
            ns: format!("embt-ph-{tag}"),
            srv_ns: format!("embt-srv-{tag}"),
            tag,
            net,
            dir,
            server: None,
            embargo: None,
        }
    }

    fn allowed_ip(&self) -> String {
        format!("10.251.{}.2", self.net)
    }

    fn blocked_ip(&self) -> String {
        format!("10.251.{}.3", self.net)
    }

    /// The "internet": a namespace with an HTTP server, reachable from the host over a veth.
    fn start_server(&mut self) {
        let (h, s) = (format!("ebh{}", self.tag), format!("ebs{}", self.tag));
        must(&format!("ip netns add {}", self.srv_ns));
        must(&format!(
            "ip link add {h} type veth peer name {s} && ip link set {s} netns {srv}",
            srv = self.srv_ns
        ));
        must(&format!(
            "ip addr add 10.251.{}.1/24 dev {h} && ip link set {h} up",
            self.net
        ));
        must(&format!(
            "ip -n {srv} addr add {a}/24 dev {s} && ip -n {srv} addr add {b}/24 dev {s} && \
             ip -n {srv} link set {s} up && ip -n {srv} link set lo up",
            srv = self.srv_ns,
            a = self.allowed_ip(),
            b = self.blocked_ip()
        ));
        fs::write(self.dir.join("www/hello.txt"), "hello through the tunnel\n").unwrap();
        let log = fs::File::create(self.dir.join("server.log")).unwrap();
        self.server = Some(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.srv_ns,
                    "python3",
                    "-m",
                    "http.server",
                    "8080",
                ])
                .arg("--directory")
                .arg(self.dir.join("www"))
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sh(&format!(
            "curl -s --max-time 1 http://{}:8080/hello.txt",
            self.allowed_ip()
        ))
        .0
        {
            assert!(Instant::now() < deadline, "test server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn server_requests(&self) -> usize {
        fs::read_to_string(self.dir.join("server.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("GET /hello.txt"))
            .count()
    }

    /// Starts `embargo run --netns` and waits until it says it protects the namespace.
    fn start_embargo(&mut self) -> String {
        let rules = self.dir.join("e2e.rules");
        fs::write(&rules, format!("blocked.test\n{}\n", self.blocked_ip())).unwrap();
        let log_path = self.dir.join(format!(
            "embargo-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let log = fs::File::create(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_embargo"))
            .args([
                "run",
                "--netns",
                &self.ns,
                "--dns-upstream",
                &format!("10.251.{}.2", self.net),
            ])
            .arg("--rules")
            .arg(&rules)
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.embargo = Some(child);
        // Building the policy takes seconds in a debug build.
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let text = fs::read_to_string(&log_path).unwrap_or_default();
            if text.contains("protecting network namespace") {
                return text;
            }
            if let Some(status) = self.embargo.as_mut().unwrap().try_wait().unwrap() {
                panic!("embargo exited early ({status}): {text}");
            }
            assert!(Instant::now() < deadline, "embargo did not come up: {text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal_embargo(&mut self, signal: &str) -> String {
        let mut child = self.embargo.take().expect("embargo running");
        must(&format!("kill -{signal} {}", child.id()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "embargo did not stop on {signal}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut out = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut out);
        }
        out
    }

    fn netns_exists(&self) -> bool {
        must("ip netns list")
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&self.ns))
    }

    fn in_ns(&self, cmd: &str) -> (bool, String) {
        sh(&format!("ip netns exec {} {cmd}", self.ns))
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for child in [self.embargo.take(), self.server.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = sh(&format!("ip netns del {} 2>/dev/null", self.ns));
        let _ = sh(&format!("ip netns del {} 2>/dev/null", self.srv_ns));
        let _ = sh(&format!("ip link del ebh{} 2>/dev/null", self.tag));
        let _ = fs::remove_dir_all(format!("/etc/netns/{}", self.ns));
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn run_netns_protects_blocks_and_cleans_up() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPED run_netns_protects_blocks_and_cleans_up: {reason} (needs root, /dev/net/tun, ip, curl, python3, getent)");
        return;
    }
    let mut w = World::new();
    w.start_server();
    let banner = w.start_embargo();
    assert!(
        banner.contains(&format!("ip netns exec {}", w.ns)),
        "no how-to-try line: {banner}"
    );
    assert!(w.netns_exists());
    let routes = must(&format!("ip -n {} route; ip -n {} -6 route", w.ns, w.ns));
    assert!(
        routes
            .lines()
            .filter(|l| l.starts_with("default dev emb"))
            .count()
            == 2,
        "v4+v6 default via the tunnel: {routes}"
    );

    // allowed: byte for byte through the tunnel
    let before = w.server_requests(); // the readiness probe from the host counts too
    let (ok, body) = w.in_ns(&format!(
        "curl -s --max-time 10 http://{}:8080/hello.txt",
        w.allowed_ip()
    ));
    assert!(ok, "allowed request failed: {body}");
    assert_eq!(body, "hello through the tunnel\n");
    assert_eq!(w.server_requests(), before + 1);

    // blocked address: fails fast, never reaches the server
    let started = Instant::now();
    let (ok, out) = w.in_ns(&format!(
        "curl -s --max-time 5 http://{}:8080/hello.txt",
        w.blocked_ip()
    ));
    assert!(!ok, "blocked address answered: {out}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "blocked connection did not fail fast"
    );
    assert_eq!(
        w.server_requests(),
        before + 1,
        "blocked request reached the server"
    );

    // blocked name: answered inside the engine with the unspecified address
    let (_, answer) = w.in_ns("getent ahostsv4 blocked.test");
    assert!(
        answer.contains("0.0.0.0"),
        "blocked.test resolved to: {answer:?}"
    );

    // SIGTERM: everything restored
    let state = w.dir.join(format!("state/run-netns-{}.json", w.ns));
    assert!(state.exists());
    let control_socket = w.dir.join("state/control.sock");
    assert!(control_socket.exists(), "no control socket while running");
    let state_mode = fs::metadata(w.dir.join("state"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(state_mode, 0o700, "state dir must be owner-only");
    w.signal_embargo("TERM");
    assert!(
        !control_socket.exists(),
        "control socket left behind after SIGTERM"
    );
    assert!(!w.netns_exists(), "namespace left behind after SIGTERM");
    assert!(!state.exists(), "state file left behind after SIGTERM");
    assert!(!Path::new(&format!("/etc/netns/{}/resolv.conf", w.ns)).exists());

    // SIGKILL: left behind, then reverted by the next start, which works
    w.start_embargo();
    w.signal_embargo("KILL");
    assert!(
        w.netns_exists(),
        "SIGKILL cannot clean up (expected leftovers)"
    );
    assert!(state.exists());
    let banner = w.start_embargo();
    assert!(
        banner.contains("reverting"),
        "restart did not revert leftovers: {banner}"
    );
    let (ok, body) = w.in_ns(&format!(
        "curl -s --max-time 10 http://{}:8080/hello.txt",
        w.allowed_ip()
    ));
    assert!(
        ok && body == "hello through the tunnel\n",
        "after restart: {body}"
    );
    w.signal_embargo("TERM");
    assert!(!w.netns_exists());
    assert!(!state.exists());
    assert!(!control_socket.exists());
}

/// Whole-machine mode (no --netns), run inside a throwaway namespace that plays the machine:
/// its default route leads to a server namespace; Embargo takes over with policy routing, its
/// own marked sockets still use the original default route, and SIGTERM removes every rule.
#[test]
fn run_whole_machine_routes_through_the_tunnel_and_restores_rules() {
    if let Some(reason) = skip_reason() {
        eprintln!(
            "SKIPPED run_whole_machine_routes_through_the_tunnel_and_restores_rules: {reason}"
        );
        return;
    }
    let pid = std::process::id();
    let (host, net) = (format!("embt-wm-{pid}"), format!("embt-wn-{pid}"));
    let dir = std::env::temp_dir().join(format!("embargo-run-wm-{pid}"));
    fs::create_dir_all(dir.join("www")).unwrap();
    fs::write(dir.join("www/x.txt"), "whole machine\n").unwrap();
    struct Cleanup(Vec<String>, PathBuf, Vec<Child>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for c in &mut self.2 {
                let _ = c.kill();
                let _ = c.wait();
            }
            for ns in &self.0 {
                let _ = sh(&format!("ip netns del {ns} 2>/dev/null"));
            }
            let _ = fs::remove_dir_all(&self.1);
        }
    }
    let mut cleanup = Cleanup(vec![host.clone(), net.clone()], dir.clone(), Vec::new());
    must(&format!("ip netns add {host} && ip netns add {net}"));
    must(&format!(
        "ip link add wmv{pid} netns {host} type veth peer name wmp{pid} netns {net} && \
         ip -n {host} addr add 10.252.0.1/24 dev wmv{pid} && ip -n {host} link set wmv{pid} up && \
         ip -n {host} link set lo up && ip -n {net} addr add 10.252.0.2/24 dev wmp{pid} && \
         ip -n {net} link set wmp{pid} up && ip -n {net} link set lo up && \
         ip -n {net} addr add 10.252.1.1/32 dev lo && ip -n {host} route add default via 10.252.0.2"
    ));
    let log = fs::File::create(dir.join("server.log")).unwrap();
    cleanup.2.push(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &net,
                "python3",
                "-m",
                "http.server",
                "8080",
                "--directory",
            ])
            .arg(dir.join("www"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    // The server must listen before the first request: python starts in ~100 ms, Embargo
    // (with its IP tables read in place) in a few, and a refused upstream connect is an RST.
    let listening = Instant::now() + Duration::from_secs(30);
    while !must(&format!("ip netns exec {net} ss -Hltn 'sport = :8080'")).contains("8080") {
        assert!(
            Instant::now() < listening,
            "the test HTTP server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let rules_before = must(&format!("ip -n {host} rule; ip -n {host} -6 rule"));
    let log_path = dir.join("embargo.log");
    let log = fs::File::create(&log_path).unwrap();
    let mut embargo = Command::new("ip")
        .args(["netns", "exec", &host, env!("CARGO_BIN_EXE_embargo"), "run"])
        .args(["--dns-upstream", "10.252.0.2", "--state-dir"])
        .arg(dir.join("state"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !fs::read_to_string(&log_path)
        .unwrap_or_default()
        .contains("protecting this machine")
    {
        assert!(
            embargo.try_wait().unwrap().is_none(),
            "embargo exited: {}",
            fs::read_to_string(&log_path).unwrap_or_default()
        );
        assert!(Instant::now() < deadline, "embargo did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let rules = must(&format!("ip -n {host} rule; ip -n {host} -6 rule"));
    assert_eq!(
        rules.matches("lookup 51871").count(),
        6,
        "v4+v6 tunnel rules: {rules}"
    );
    let route = must(&format!("ip -n {host} route get 10.252.1.1"));
    assert!(
        route.contains("dev embargo0"),
        "unmarked traffic must enter the tunnel: {route}"
    );
    let route = must(&format!("ip -n {host} route get 10.252.1.1 mark 51871"));
    assert!(
        route.contains("via 10.252.0.2"),
        "our marked sockets must bypass it: {route}"
    );
    // Off-link server: reached only through the tunnel (and Embargo's marked socket).
    let (ok, body) = sh(&format!(
        "ip netns exec {host} curl -s --max-time 10 http://10.252.1.1:8080/x.txt"
    ));
    assert!(
        ok && body == "whole machine\n",
        "through the tunnel: {body}"
    );
    let tun_rx: u64 = must(&format!(
        "ip netns exec {host} cat /sys/class/net/embargo0/statistics/rx_packets"
    ))
    .trim()
    .parse()
    .unwrap();
    assert!(tun_rx > 0, "the request did not cross the tunnel");
    must(&format!("kill -TERM {}", embargo.id()));
    let _ = embargo.wait();
    let rules_after = must(&format!("ip -n {host} rule; ip -n {host} -6 rule"));
    assert_eq!(rules_after, rules_before, "rules not restored");
    assert!(!dir.join("state/run-machine.json").exists());
}
