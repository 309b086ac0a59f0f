"""The real-network test bed: private network namespaces with real servers in them.

Topology (every address is private and exists only inside namespaces this module creates, plus
one host-side veth whose routes cover only those addresses; nothing leaves the machine):

    host namespace (Embargo's own upstream sockets)
      emh<id> 10.231.254.1/24  fd00:231:254::1/64  <-- veth -->  internet: veth-h 10.231.254.2
      routes: 10.231.2.0/24, 10.231.66.0/24, fd00:231:2::/64 via the internet side

    internet (servers)                     lo: 10.231.2.1   allowed.test  (nginx, dnsmasq, iperf3)
                                               10.231.2.2   tracker.test  (nginx)
                                               10.231.66.1  a raw address inside "AS45090"
                                               fd00:231:2::1, fd00:231:2::2
    kphone (kernel path, proves the harness)   veth-k 10.231.1.2/24 <--> internet veth-kp 10.231.1.1
                                               default via 10.231.1.1 (v4 and v6)
    phone  (Embargo's namespace)               created by the harness with only `lo`;
                                               `embargo run --netns` adds its TUN as the default route

Names are unique per run (the creating pid in hex), so a crashed run's leftovers never clash
with a new one, and `sweep_stale()` removes the leftovers of runs whose process is gone.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

PREFIX = "emb"
ID = format(os.getpid(), "x")

ALLOWED_IP = "10.231.2.1"
TRACKER_IP = "10.231.2.2"
ASN_IP = "10.231.66.1"
ALLOWED_IP6 = "fd00:231:2::1"
TRACKER_IP6 = "fd00:231:2::2"
DNS_IP = ALLOWED_IP
HOST_IP, HOST_PEER_IP = "10.231.254.1", "10.231.254.2"
HOST_IP6, HOST_PEER_IP6 = "fd00:231:254::1", "fd00:231:254::2"
KPHONE_IP, KPHONE_GW = "10.231.1.2", "10.231.1.1"
KPHONE_IP6, KPHONE_GW6 = "fd00:231:1::2", "fd00:231:1::1"
SERVER_ROUTES = ["10.231.2.0/24", "10.231.66.0/24"]
SERVER_ROUTES6 = ["fd00:231:2::/64"]

# The address range standing in for Tencent's AS45090 in the --asn-db fixture.
ASN_RANGE = ("10.231.66.0", "10.231.66.255")
ASN = 45090
ASN_ORG = "Shenzhen Tencent Computer Systems Company Limited"

# HTTPS (type 65) record data: priority 1, target ".", alpn=h2 (RFC 9460 wire form, hex).
HTTPS_RDATA = "00010000010003026832"


def run(*cmd, check=True, timeout=30, **kw) -> subprocess.CompletedProcess:
    """Runs a command, text output captured; raises with its stderr on failure."""
    cp = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw
    )
    if check and cp.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))} -> {cp.returncode}\n{cp.stdout}\n{cp.stderr}"
        )
    return cp


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Ends a process started with start_new_session=True: SIGTERM to its group (so embargo
    restores routes and DNS), SIGKILL if it is still there after `timeout` seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def in_ns(ns: str, *cmd, **kw) -> subprocess.CompletedProcess:
    return run("ip", "netns", "exec", ns, *cmd, **kw)


def netns_list() -> list[str]:
    out = run("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def kill_ns_processes(ns: str) -> None:
    """Stops every process inside `ns` (TERM, then KILL after 3 s), by pid."""
    pids = run("ip", "netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
    deadline = time.time() + 3
    while time.time() < deadline:
        if not run("ip", "netns", "pids", ns, check=False).stdout.split():
            return
        time.sleep(0.1)
    for pid in run("ip", "netns", "pids", ns, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def delete_ns(ns: str) -> None:
    if ns in netns_list():
        kill_ns_processes(ns)
        run("ip", "netns", "del", ns, check=False)
    shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)


def sweep_stale() -> list[str]:
    """Deletes namespaces and host veths left by earlier runs whose process is gone, and stops
    an `embargo run --netns` such a run left behind (it runs in the host namespace)."""
    removed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for i, arg in enumerate(argv[:-1]):
            m = re.fullmatch(rf"{PREFIX}p-([0-9a-f]+)", argv[i + 1].decode(errors="replace"))
            if arg == b"--netns" and m and not Path(f"/proc/{int(m.group(1), 16)}").exists():
                try:
                    os.kill(int(proc.name), signal.SIGTERM)
                    removed.append(f"pid {proc.name}")
                except ProcessLookupError:
                    pass
    if removed:
        time.sleep(2)  # let them restore what they changed before their namespace goes
    for ns in netns_list():
        m = re.fullmatch(rf"{PREFIX}[a-z]-([0-9a-f]+)", ns)
        if m and not Path(f"/proc/{int(m.group(1), 16)}").exists():
            delete_ns(ns)
            removed.append(ns)
    links = run("ip", "-o", "link", "show", check=False).stdout
    for m in re.finditer(rf"\d+: ({PREFIX}h([0-9a-f]+))[@:]", links):
        if not Path(f"/proc/{int(m.group(2), 16)}").exists():
            run("ip", "link", "del", m.group(1), check=False)
            removed.append(m.group(1))
    return removed


def sha256(path_or_bytes) -> str:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return hashlib.sha256(data).hexdigest()


def passive_opens(ns: str) -> int:
    """TCP PassiveOpens of a namespace: incoming SYNs that got as far as a listener
    (/proc/net/snmp, per namespace; a dependency-free server-side counter)."""
    text = in_ns(ns, "cat", "/proc/net/snmp").stdout
    rows = [line.split() for line in text.splitlines() if line.startswith("Tcp:")]
    header, values = rows[0], rows[1]
    return int(values[header.index("PassiveOpens")])


class Network:
    """Builds and tears down the namespaces, the CA and the servers."""

    def __init__(self, workdir: Path):
        self.dir = workdir
        self.inet = f"{PREFIX}i-{ID}"
        self.kphone = f"{PREFIX}k-{ID}"
        self.phone = f"{PREFIX}p-{ID}"
        self.host_veth = f"{PREFIX}h{ID}"
        self.procs: list[subprocess.Popen] = []
        self.log = workdir / "log"
        self.www = workdir / "www"
        self.ca = workdir / "ca"

    # -- topology ---------------------------------------------------------------------------
    def up(self) -> None:
        for d in (self.log, self.www, self.ca, self.dir / "nginx-tmp", self.dir / "run"):
            d.mkdir(parents=True, exist_ok=True)
        self._links()
        self._files()
        self._ca()
        self._servers()

    def _links(self) -> None:
        inet, kph = self.inet, self.kphone
        for ns in (inet, kph, self.phone):
            run("ip", "netns", "add", ns)
            in_ns(ns, "ip", "link", "set", "lo", "up")
        # host <-> internet (Embargo's upstream path)
        run("ip", "link", "add", self.host_veth, "type", "veth", "peer", "name", "veth-h", "netns", inet)
        run("ip", "addr", "add", f"{HOST_IP}/24", "dev", self.host_veth)
        run("ip", "-6", "addr", "add", f"{HOST_IP6}/64", "dev", self.host_veth, "nodad")
        run("ip", "link", "set", self.host_veth, "up")
        in_ns(inet, "ip", "addr", "add", f"{HOST_PEER_IP}/24", "dev", "veth-h")
        in_ns(inet, "ip", "-6", "addr", "add", f"{HOST_PEER_IP6}/64", "dev", "veth-h", "nodad")
        in_ns(inet, "ip", "link", "set", "veth-h", "up")
        for r in SERVER_ROUTES:
            run("ip", "route", "replace", r, "via", HOST_PEER_IP, "dev", self.host_veth)
        for r in SERVER_ROUTES6:
            run("ip", "-6", "route", "replace", r, "via", HOST_PEER_IP6, "dev", self.host_veth, check=False)
        # kphone <-> internet (the kernel path)
        run("ip", "link", "add", "veth-k", "netns", kph, "type", "veth", "peer", "name", "veth-kp", "netns", inet)
        in_ns(kph, "ip", "addr", "add", f"{KPHONE_IP}/24", "dev", "veth-k")
        in_ns(kph, "ip", "-6", "addr", "add", f"{KPHONE_IP6}/64", "dev", "veth-k", "nodad")
        in_ns(kph, "ip", "link", "set", "veth-k", "up")
        in_ns(inet, "ip", "addr", "add", f"{KPHONE_GW}/24", "dev", "veth-kp")
        in_ns(inet, "ip", "-6", "addr", "add", f"{KPHONE_GW6}/64", "dev", "veth-kp", "nodad")
        in_ns(inet, "ip", "link", "set", "veth-kp", "up")
        in_ns(kph, "ip", "route", "add", "default", "via", KPHONE_GW)
        in_ns(kph, "ip", "-6", "route", "add", "default", "via", KPHONE_GW6)
        # servers' addresses on internet's lo (no dummy driver needed)
        for a in (ALLOWED_IP, TRACKER_IP, ASN_IP):
            in_ns(inet, "ip", "addr", "add", f"{a}/32", "dev", "lo")
        for a in (ALLOWED_IP6, TRACKER_IP6):
            in_ns(inet, "ip", "-6", "addr", "add", f"{a}/128", "dev", "lo", "nodad")
        # the kernel-path phone's DNS is the test resolver
        for ns in (kph,):
            Path(f"/etc/netns/{ns}").mkdir(parents=True, exist_ok=True)
            Path(f"/etc/netns/{ns}/resolv.conf").write_text(f"nameserver {DNS_IP}\n")

    def _files(self) -> None:
        for site in ("allowed", "tracker", "default"):
            (self.www / site).mkdir(exist_ok=True)
            (self.www / site / "file.bin").write_bytes(os.urandom(1 << 20))
            (self.www / site / "index.html").write_text(f"<html><body>{site}</body></html>\n")
        (self.www / "allowed" / "page.html").write_text(
            "<!doctype html><html><head><title>news</title>\n"
            '<script src="http://ads.tracker.test/t.js"></script></head>\n'
            '<body><h1 id="story">The story</h1>\n'
            '<img src="/logo.gif"><img src="http://pixel.tracker.test/p.gif">\n'
            '<script src="http://cdn.partner.test/c.js"></script>\n'
            "</body></html>\n"
        )
        gif = bytes.fromhex(
            "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
        )
        (self.www / "allowed" / "logo.gif").write_bytes(gif)
        (self.www / "tracker" / "p.gif").write_bytes(gif)
        (self.www / "tracker" / "t.js").write_text("document.title = 'tracked';\n")
        (self.www / "tracker" / "c.js").write_text("document.title = 'tracked';\n")
        # a list served over HTTP for `embargo lists add URL` (hosts format)
        (self.www / "default" / "late-hosts.txt").write_text("0.0.0.0 late.allowed.test\n0.0.0.0 localhost\n")
        for p in self.dir.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        self.dir.chmod(0o755)

    def _ca(self) -> None:
        ca = self.ca
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=Embargo test CA", "-keyout", ca / "ca.key", "-out", ca / "ca.pem",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign,cRLSign")
        (ca / "san.ext").write_text(
            "subjectAltName=DNS:allowed.test,DNS:*.allowed.test,DNS:tracker.test,"
            "DNS:*.tracker.test,DNS:partner.test,DNS:*.partner.test,"
            f"IP:{ALLOWED_IP},IP:{TRACKER_IP},IP:{ASN_IP}\n"
            "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        )
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=allowed.test",
            "-keyout", ca / "server.key", "-out", ca / "server.csr")
        run("openssl", "x509", "-req", "-in", ca / "server.csr", "-CA", ca / "ca.pem",
            "-CAkey", ca / "ca.key", "-CAcreateserial", "-days", "2", "-out", ca / "server.pem",
            "-extfile", ca / "san.ext")
        for p in ca.iterdir():
            p.chmod(0o644)

    def _nginx_conf(self) -> str:
        d, log = self.dir, self.log
        fmt = "log_format t '$host $server_addr:$server_port $request $status $body_bytes_sent';"
        servers = []
        for site, names, default in (
            ("allowed", "allowed.test *.allowed.test", False),
            ("tracker", "tracker.test *.tracker.test partner.test *.partner.test", False),
            ("default", "_", True),
        ):
            ds = " default_server" if default else ""
            servers.append(f"""
  server {{
    listen 80{ds}; listen [::]:80{ds};
    listen 443 ssl{ds}; listen [::]:443 ssl{ds};
    server_name {names};
    ssl_certificate {self.ca}/server.pem; ssl_certificate_key {self.ca}/server.key;
    access_log {log}/{site}.access.log t;
    root {self.www}/{site};
    location / {{ }}
  }}""")
        return f"""user root;
worker_processes 1;
pid {d}/run/nginx.pid;
daemon off;
error_log {log}/nginx.err warn;
events {{ worker_connections 1024; }}
http {{
  {fmt}
  default_type application/octet-stream;
  types {{ text/html html; image/gif gif; application/javascript js; }}
  client_body_temp_path {d}/nginx-tmp/body; proxy_temp_path {d}/nginx-tmp/proxy;
  fastcgi_temp_path {d}/nginx-tmp/fcgi; uwsgi_temp_path {d}/nginx-tmp/uwsgi;
  scgi_temp_path {d}/nginx-tmp/scgi;
  {''.join(servers)}
}}
"""

    def _dnsmasq_args(self) -> list[str]:
        return [
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=",
            "--no-resolv", "--no-hosts", "--no-poll", "--bind-interfaces",
            f"--listen-address={DNS_IP}", f"--listen-address={ALLOWED_IP6}", "--port=53",
            "--user=root", "--local-ttl=60", "--cache-size=0", "--local=/test/",
            "--log-queries", f"--log-facility={self.log}/dnsmasq.log",
            f"--address=/allowed.test/{ALLOWED_IP}", f"--address=/allowed.test/{ALLOWED_IP6}",
            f"--address=/tracker.test/{TRACKER_IP}", f"--address=/tracker.test/{TRACKER_IP6}",
            # ByteDance's TikTok API domain, telemetry and content alike, on the allowed server
            f"--address=/tiktokv.com/{ALLOWED_IP}", "--local=/tiktokv.com/",
            # a DNS-over-HTTPS provider of core/engine/src/dns/doh.rs, on the allowed server
            f"--address=/dns.google/{ALLOWED_IP}", "--local=/dns.google/",
            # a CNAME target must be a name dnsmasq knows from a host record
            f"--host-record=cdn.tracker.test,{TRACKER_IP},{TRACKER_IP6}",
            "--cname=cdn.partner.test,cdn.tracker.test",
            f"--dns-rr=allowed.test,65,{HTTPS_RDATA}",
            f"--dns-rr=tracker.test,65,{HTTPS_RDATA}",
            # three 200-byte strings: an answer too big for UDP without EDNS (512 bytes)
            "--txt-record=big.allowed.test," + ",".join(c * 200 for c in "abc"),
        ]

    def spawn(self, ns: str | None, cmd: list[str], name: str) -> subprocess.Popen:
        out = open(self.log / f"{name}.out", "ab")
        full = (["ip", "netns", "exec", ns] if ns else []) + [str(c) for c in cmd]
        p = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def _servers(self) -> None:
        (self.dir / "nginx.conf").write_text(self._nginx_conf())
        self.spawn(self.inet, ["nginx", "-p", self.dir, "-c", self.dir / "nginx.conf", "-e", self.log / "nginx.err"], "nginx")
        self.spawn(self.inet, self._dnsmasq_args(), "dnsmasq")
        self.spawn(self.inet, ["iperf3", "-s", "-B", ALLOWED_IP, "-p", "5201"], "iperf3")
        deadline = time.time() + 15
        while time.time() < deadline:
            web = in_ns(self.kphone, "curl", "-s", "-o", "/dev/null", "--max-time", "1", f"http://{ALLOWED_IP}/", check=False)
            dns = in_ns(self.kphone, "dig", "+short", "+time=1", "+tries=1", f"@{DNS_IP}", "allowed.test", "A", check=False)
            perf = in_ns(self.inet, "ss", "-Hltn", "sport = :5201", check=False)
            if web.returncode == 0 and ALLOWED_IP in dns.stdout and "5201" in perf.stdout:
                return
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"server {p.args} exited {p.returncode}; see {self.log}")
            time.sleep(0.2)
        raise RuntimeError(f"servers did not come up; see {self.log}")

    def down(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for ns in (self.phone, self.kphone, self.inet):
            delete_ns(ns)
        run("ip", "link", "del", self.host_veth, check=False)

    # -- observations on the server side ----------------------------------------------------
    def access_log(self, site: str) -> list[str]:
        p = self.log / f"{site}.access.log"
        return p.read_text().splitlines() if p.exists() else []

    def wait_log(self, site: str, at_least: int, timeout: float = 3.0) -> list[str]:
        """The access log once it has `at_least` lines (nginx logs after the response is
        sent, so the client may finish first), or as it is after `timeout`."""
        deadline = time.time() + timeout
        while True:
            lines = self.access_log(site)
            if len(lines) >= at_least or time.time() > deadline:
                return lines
            time.sleep(0.05)

    def settled_log(self, site: str) -> list[str]:
        """The access log after a pause long enough for a late line to appear: use it before
        asserting that nothing arrived."""
        time.sleep(0.5)
        return self.access_log(site)

    def dns_log(self) -> str:
        p = self.log / "dnsmasq.log"
        return p.read_text() if p.exists() else ""

    def passive_opens(self) -> int:
        return passive_opens(self.inet)

    def write_asn_db(self, path: Path) -> Path:
        path.write_text(f'{ASN_RANGE[0]},{ASN_RANGE[1]},{ASN},"{ASN_ORG}"\n')
        return path

    def write_country_db(self, path: Path) -> Path:
        path.write_text(
            f"{TRACKER_IP},{TRACKER_IP},CN\n{ASN_RANGE[0]},{ASN_RANGE[1]},CN\n"
            f"{ALLOWED_IP},{ALLOWED_IP},NL\n"
        )
        return path


# Not `allowed.test` itself: its DNS HTTPS record makes Chromium upgrade the page to https.
PAGE = "http://www.allowed.test/page.html"


def chromium_dump(ns: str, tmp: Path, url: str) -> str:
    profile = tmp / "chromium-profile"
    profile.mkdir()
    cp = in_ns(ns, "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-dev-shm-usage", "--disable-features=HttpsUpgrades", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
               "--dump-dom", url, timeout=60, check=False)
    return cp.stdout
