"""Encrypted DNS upstream (issue 20): Embargo forwards allowed questions to a real
DNS-over-TLS and DNS-over-HTTPS server (Debian's unbound, serving both with the test CA's
certificate for dns.allowed.test, and forwarding to the test dnsmasq inside `internet`), and a
capture on the host side (where Embargo's own sockets leave) shows that no plaintext DNS
question leaves. Fallback: a first upstream that is down costs one attempt, and the next one
answers.

Each test runs its own Embargo in its own namespace, like test_3_hardening.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import harness
from conftest import loud_skip
from harness import ALLOWED_IP, DNS_IP, TRACKER_IP, in_ns, run

# Unbound's address in `internet` (inside the routed 10.231.2.0/24). DoH listens on 8443: nginx
# holds *:443 there.
RESOLVER_IP = "10.231.2.53"
DOT_PORT, DOH_PORT = 853, 8443
# Covered by the test certificate's *.allowed.test.
RESOLVER_NAME = "dns.allowed.test"
DOT = f"tls://{RESOLVER_NAME}@{RESOLVER_IP}"
DOH = f"https://{RESOLVER_NAME}@{RESOLVER_IP}:{DOH_PORT}/dns-query"
# Nothing listens there: a refused connect, the first upstream "down".
DOWN = f"tls://{RESOLVER_NAME}@{RESOLVER_IP}:8853"

RULES = "tracker.test\n"


@pytest.fixture(scope="module")
def unbound(net):
    for tool in ("unbound", "tcpdump"):
        if shutil.which(tool) is None:
            loud_skip(f"no {tool}: run tests/install-deps.sh netns (the encrypted DNS tests)")
    in_ns(net.inet, "ip", "addr", "add", f"{RESOLVER_IP}/32", "dev", "lo")
    d = net.dir / "unbound"
    d.mkdir(exist_ok=True)
    conf = d / "unbound.conf"
    conf.write_text(f"""server:
  verbosity: 1
  use-syslog: no
  logfile: "{net.log}/unbound.log"
  log-queries: yes
  username: ""
  chroot: ""
  directory: "{d}"
  pidfile: ""
  interface: {RESOLVER_IP}@{DOT_PORT}
  interface: {RESOLVER_IP}@{DOH_PORT}
  tls-port: {DOT_PORT}
  https-port: {DOH_PORT}
  tls-service-key: "{net.ca}/server.key"
  tls-service-pem: "{net.ca}/server.pem"
  access-control: 0.0.0.0/0 allow
  do-not-query-localhost: no
  do-ip6: no
  module-config: "iterator"
  local-zone: "test." nodefault
  domain-insecure: "test."
  cache-max-ttl: 0
forward-zone:
  name: "."
  forward-addr: {DNS_IP}
""")
    check = run("unbound-checkconf", conf, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    server = Unbound(net, conf)
    server.start()
    yield server


class Unbound:
    def __init__(self, net, conf: Path):
        self.net, self.conf, self.log, self.proc = net, conf, net.log / "unbound.log", None

    def start(self):
        self.proc = self.net.spawn(self.net.inet, ["unbound", "-d", "-c", self.conf], "unbound")
        deadline = time.time() + 15
        while time.time() < deadline:
            listening = in_ns(self.net.inet, "ss", "-Hltn", check=False).stdout
            if f"{RESOLVER_IP}:{DOT_PORT}" in listening and f"{RESOLVER_IP}:{DOH_PORT}" in listening:
                return
            assert self.proc.poll() is None, (self.net.log / "unbound.out").read_text(errors="replace")
            time.sleep(0.2)
        raise AssertionError(f"unbound did not listen: {(self.net.log / 'unbound.out').read_text()}")

    def restart(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=10)
        self.start()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def own_ns(net):
    ns = f"{harness.PREFIX}d-{harness.ID}"
    harness.delete_ns(ns)
    run("ip", "netns", "add", ns)
    in_ns(ns, "ip", "link", "set", "lo", "up")
    yield ns
    harness.delete_ns(ns)


class Capture:
    """tcpdump on the host-side veth: every packet Embargo's own sockets send to `internet`."""

    def __init__(self, net, path: Path):
        self.path = path
        self.proc = subprocess.Popen(
            # Immediate mode: packets still in the kernel's capture ring when tcpdump is stopped
            # are otherwise never written (seen as "42 received by filter, 0 captured").
            ["tcpdump", "-Z", "root", "--immediate-mode", "-i", net.host_veth, "-n", "-U",
             "-w", str(path), "tcp or udp"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        # tcpdump says "listening on" once the capture runs.
        deadline = time.time() + 10
        line = b""
        while time.time() < deadline and b"listening on" not in line:
            line = self.proc.stderr.readline()
        assert b"listening on" in line, "tcpdump did not start"

    def packets(self, bpf: str) -> list[str]:
        out = run("tcpdump", "-n", "-r", self.path, bpf, check=False).stdout
        return [line for line in out.splitlines() if line.strip()]

    def stop(self):
        time.sleep(0.3)
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(timeout=10)


def start(embargo_bin, ns: str, work: Path, upstreams: list[str], ca: Path):
    rules = work / "test.rules"
    rules.write_text(RULES)
    args = [embargo_bin, "run", "--netns", ns, "--state-dir", work / "state", "--no-default",
            "--rules", rules, "--app-wait-ms", "0", "--dns-roots", ca]
    for u in upstreams:
        args += ["--dns-upstream", u]
    log = work / "embargo.out"
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
    proc = subprocess.Popen([str(a) for a in args], stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "protecting network namespace" in text:
            return proc, log
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    stop(proc)
    raise AssertionError(f"embargo did not come up: {log.read_text(errors='replace')}")


stop = harness.stop_process


def dig(ns: str, name: str, *extra) -> list[str]:
    """The answer's records (dig's ';;' complaints left out)."""
    out = in_ns(ns, "dig", "+short", "+time=5", "+tries=1", *extra, f"@{DNS_IP}", name, "A",
                check=False, timeout=20).stdout
    return [line for line in out.splitlines() if line and not line.startswith(";")]


def resolve_and_block(ns: str, unbound: Unbound, names: list[str]):
    """Allowed names resolve through the resolver (it logs them), blocked ones never reach it."""
    for name in names:
        assert ALLOWED_IP in dig(ns, name), name
    assert ALLOWED_IP in dig(ns, f"tcp.{names[0]}", "+tcp")
    blocked = dig(ns, "ads.tracker.test")
    assert TRACKER_IP not in blocked, blocked
    code = in_ns(ns, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                 f"http://{names[0]}/index.html", check=False, timeout=20).stdout
    assert code == "200", code
    log = unbound.text()
    for name in names:
        assert f"{name}. A IN" in log, f"{name} not asked of unbound:\n{log[-2000:]}"
    assert "ads.tracker.test" not in log


@pytest.mark.parametrize("kind", ["tls", "https"])
def test_no_plaintext_question_leaves_with_an_encrypted_upstream(net, unbound, embargo_bin,
                                                                 own_ns, tmp_path, kind):
    upstream, port = (DOT, DOT_PORT) if kind == "tls" else (DOH, DOH_PORT)
    capture = Capture(net, tmp_path / "upstream.pcap")
    proc, log = start(embargo_bin, own_ns, tmp_path, [upstream], net.ca / "ca.pem")
    try:
        names = [f"{kind}-{i}.allowed.test" for i in range(5)]
        resolve_and_block(own_ns, unbound, names)
        assert proc.poll() is None, log.read_text()
    finally:
        stop(proc)
        capture.stop()
    plain = capture.packets("port 53")
    assert plain == [], f"plaintext DNS left Embargo:\n" + "\n".join(plain[:10])
    # The capture saw the encrypted exchange (so it was looking at the right place) and one
    # connection carried every question: one SYN for all of them.
    assert capture.packets(f"tcp dst port {port}"), "no encrypted DNS traffic captured"
    syns = capture.packets(f"tcp dst port {port} and tcp[tcpflags] & tcp-syn != 0")
    assert len(syns) == 1, syns


def test_a_down_first_upstream_falls_back_to_the_next(net, unbound, embargo_bin, own_ns, tmp_path):
    proc, log = start(embargo_bin, own_ns, tmp_path, [DOWN, DOH], net.ca / "ca.pem")
    try:
        first = time.monotonic()
        assert ALLOWED_IP in dig(own_ns, "fallback-0.allowed.test")
        took = time.monotonic() - first
        # The refused upstream now rests: the next questions go straight to the second.
        resolve_and_block(own_ns, unbound, [f"fallback-{i}.allowed.test" for i in range(1, 4)])
        assert took < 5, f"first answer after {took:.1f}s"
        text = log.read_text(errors="replace")
        assert "DNS upstream tls://dns.allowed.test@10.231.2.53:8853" in text, text[-2000:]
    finally:
        stop(proc)


def test_a_certificate_for_another_name_is_refused(net, unbound, embargo_bin, own_ns, tmp_path):
    """The server name is checked: the same server under a name its certificate lacks gives
    no answer (and no fallback to plaintext)."""
    wrong = f"tls://dns.example.org@{RESOLVER_IP}"
    capture = Capture(net, tmp_path / "upstream.pcap")
    proc, log = start(embargo_bin, own_ns, tmp_path, [wrong], net.ca / "ca.pem")
    try:
        assert dig(own_ns, "wrong-name.allowed.test") == []
        assert "wrong-name.allowed.test" not in unbound.text()
        text = log.read_text(errors="replace")
        assert "certificate" in text.lower() or "NotValidForName" in text, text[-2000:]
    finally:
        stop(proc)
        capture.stop()
    assert capture.packets("port 53") == []


@pytest.mark.parametrize("kind", ["tls", "https"])
def test_a_connection_the_server_closed_is_made_again_without_falling_back(
        net, unbound, embargo_bin, own_ns, tmp_path, kind):
    """The kept connection dies with the server (as when a resolver closes an idle one): the
    next question opens a new one, and the upstream is not counted as failed."""
    upstream = DOT if kind == "tls" else DOH
    proc, log = start(embargo_bin, own_ns, tmp_path, [upstream], net.ca / "ca.pem")
    try:
        assert ALLOWED_IP in dig(own_ns, f"before-{kind}.allowed.test")
        unbound.restart()
        assert ALLOWED_IP in dig(own_ns, f"after-{kind}.allowed.test")
        assert f"after-{kind}.allowed.test. A IN" in unbound.text()
        assert f"DNS upstream {upstream}" not in log.read_text(errors="replace")
    finally:
        stop(proc)
