"""Through Embargo: `embargo run --netns <phone>` protects the phone namespace, whose only route
is Embargo's TUN device; Embargo's own sockets leave from the host namespace to `internet`.
Every test drives a real client in `phone` and checks what arrived on the server side.

The tests run in file order; the history test comes last and looks for the blocks the
earlier tests caused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import harness
from conftest import loud_skip
from harness import (
    PAGE,
    chromium_dump,
    ALLOWED_IP,
    ALLOWED_IP6,
    ASN_IP,
    ASN_ORG,
    DNS_IP,
    TRACKER_IP,
    TRACKER_IP6,
    in_ns,
    run,
)

# Embargo's native rule format (core/policy/src/parse/embargo.rs).
RULES = """\
# trackers of the test world, and their owner
tracker.test
owns: Tracker Corp = tracker.test
# everything the stand-in for Tencent announces (10.231.66.0/24 in the --asn-db fixture)
AS45090
"""

BLOCKED_NAMES = ["tracker.test", "pixel.tracker.test", "ads.tracker.test"]


class Embargo:
    def __init__(self, binary: Path, state: Path, proc: subprocess.Popen, flags: str, net):
        self.bin, self.state, self.proc, self.flags, self.net = binary, state, proc, flags, net

    def cli(self, *args, check=True, timeout=30) -> subprocess.CompletedProcess:
        return run(self.bin, *args, "--state-dir", self.state, check=check, timeout=timeout)

    def cli_json(self, *args):
        return json.loads(self.cli(*args, "--json").stdout)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        p = self.net.log / "embargo.out"
        return p.read_text(errors="replace") if p.exists() else ""


def phone_uses_tun(ns: str) -> bool:
    routes = in_ns(ns, "ip", "route", "show", "default", check=False).stdout
    return "dev" in routes and "via" not in routes and routes.strip() != ""


@pytest.fixture(scope="session")
def embargo(net, embargo_bin, tmp_path_factory):
    help_ = run(embargo_bin, "run", "--help", check=False)
    if help_.returncode != 0:
        loud_skip(f"`embargo run` is not available in {embargo_bin}: {help_.stderr.strip()[:200]}")
    flags = help_.stdout
    work = tmp_path_factory.mktemp("embargo")
    state = work / "state"
    rules = work / "test.rules"
    rules.write_text(RULES)
    args = [embargo_bin, "run", "--netns", net.phone, "--state-dir", state, "--rules", rules]
    if "--dns-upstream" in flags:
        args += ["--dns-upstream", DNS_IP]
    wait = os.environ.get("EMBARGO_APP_WAIT_MS", "500")
    if "--app-wait-ms" in flags and wait != "default":
        # Correctness, not latency, is tested here: give a debug build's /proc lookup time
        # (EMBARGO_APP_WAIT_MS=default runs with the command's own default).
        args += ["--app-wait-ms", wait]
    if "--asn-db" in flags:
        args += ["--asn-db", net.write_asn_db(work / "asn-test.csv")]
    if "--country-db" in flags:
        args += ["--country-db", net.write_country_db(work / "country-test.csv")]
    if "--check-lists-every" in flags:
        # lists added with `--every 1s` are checked (and swapped in) while the suite runs
        args += ["--check-lists-every", "1s"]
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
    out = open(net.log / "embargo.out", "ab")
    proc = subprocess.Popen([str(a) for a in args], stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, env=env)
    net.procs.append(proc)  # stopped by the network's teardown too (signals, atexit)
    e = Embargo(embargo_bin, state, proc, flags, net)
    deadline = time.time() + 30
    ready = False
    while time.time() < deadline and e.alive():
        if phone_uses_tun(net.phone):
            probe = in_ns(net.phone, "curl", "-s", "-o", "/dev/null", "--max-time", "2",
                          f"http://{ALLOWED_IP}/index.html", check=False)
            if probe.returncode == 0:
                ready = True
                break
        time.sleep(0.3)
    if not ready:
        alive = e.alive()
        _stop(proc)
        pytest.fail(f"embargo run did not come up (alive={alive}); its output:\n{e.log()[-3000:]}")
    yield e
    _stop(proc)
    print(f"\n[netns] embargo exited {proc.returncode}; last output:\n{e.log()[-1500:]}")


def _stop(proc: subprocess.Popen):
    harness.stop_process(proc, timeout=10)


def curl(ns, *args, timeout=15):
    """curl in `ns`; returns (exit code, seconds taken, stdout)."""
    start = time.monotonic()
    cp = in_ns(ns, "curl", "-sS", "--max-time", "10", *args, check=False, timeout=timeout)
    return cp.returncode, time.monotonic() - start, cp.stdout


def test_allowed_names_work_byte_for_byte_over_https_and_http_v4_and_v6(net, embargo):
    for site, extra, url in (("allowed", [], "https://allowed.test/file.bin"),
                             ("allowed", [], "http://www.allowed.test/file.bin"),
                             ("allowed", ["-6"], "https://api.allowed.test/file.bin"),
                             ("default", ["-4"], f"http://{ALLOWED_IP}/file.bin")):
        out = net.dir / "download.bin"
        rc, secs, _ = curl(net.phone, *extra, "--cacert", net.ca / "ca.pem", "-o", out, url)
        assert rc == 0, f"{url} failed (curl exit {rc}); embargo log:\n{embargo.log()[-2000:]}"
        assert harness.sha256(out) == harness.sha256(net.www / site / "file.bin"), url
    log = "\n".join(net.wait_log("allowed", 4))
    assert f"{ALLOWED_IP6}:443 GET /file.bin" in log, "the -6 download did not arrive over IPv6"


def test_blocked_names_fail_fast_and_never_reach_the_internet(net, embargo):
    before_log = len(net.access_log("tracker"))
    before_opens = net.passive_opens()
    for url in ("https://pixel.tracker.test/p.gif", "http://ads.tracker.test/t.js", "https://tracker.test/"):
        rc, secs, _ = curl(net.phone, "--cacert", net.ca / "ca.pem", "-o", "/dev/null", url)
        assert rc != 0, f"{url} was not blocked"
        assert secs < 5, f"{url} took {secs:.1f} s to fail (should fail fast)"
    assert len(net.settled_log("tracker")) == before_log, net.access_log("tracker")[before_log:]
    assert net.passive_opens() == before_opens, "a connection reached the internet namespace"
    for name in BLOCKED_NAMES:
        assert f"query[A] {name} from {harness.HOST_IP}" not in net.dns_log(), f"the DNS question for {name} left the phone"


def test_raw_address_inside_the_blocked_asn_is_refused(net, embargo):
    if "--asn-db" not in embargo.flags:
        loud_skip("`embargo run` has no --asn-db flag: cannot load the AS45090 test range")
    before = net.passive_opens()
    before_log = len(net.access_log("default"))
    rc, secs, _ = curl(net.phone, "-o", "/dev/null", f"http://{ASN_IP}/file.bin")
    assert rc != 0, "a raw address inside AS45090 was not blocked"
    assert secs < 5, f"took {secs:.1f} s to fail"
    assert not any(ASN_IP in line for line in net.settled_log("default")[before_log:])
    assert net.passive_opens() == before


def dig(ns, *args):
    cp = in_ns(ns, "dig", "+time=3", "+tries=1", f"@{DNS_IP}", *args, check=False, timeout=15)
    return cp


def answers(cp) -> list[str]:
    """The answer section's data fields."""
    out = []
    section = False
    for line in cp.stdout.splitlines():
        if line.startswith(";; ANSWER SECTION"):
            section = True
            continue
        if section:
            if not line.strip() or line.startswith(";;"):
                break
            out.append(line.split(None, 4)[-1])
    return out


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_dns_allowed_answers_pass_and_blocked_names_get_no_tracker_address(net, embargo, transport):
    assert answers(dig(net.phone, transport, "allowed.test", "A")) == [ALLOWED_IP]
    assert answers(dig(net.phone, transport, "www.allowed.test", "AAAA")) == [ALLOWED_IP6]
    https = answers(dig(net.phone, transport, "allowed.test", "HTTPS"))
    assert https and "h2" in https[0], https
    for name in BLOCKED_NAMES:
        for rtype in ("A", "AAAA", "HTTPS"):
            cp = dig(net.phone, transport, name, rtype)
            assert cp.returncode == 0, f"dig {transport} {name} {rtype}: no answer at all\n{cp.stdout}"
            got = answers(cp)
            assert TRACKER_IP not in got and TRACKER_IP6 not in got, f"{name} {rtype}: {got}"
            assert not any("h2" in a for a in got), f"{name} HTTPS record leaked: {got}"
    for name in BLOCKED_NAMES:
        assert f"{name} from {harness.HOST_IP}" not in net.dns_log(), f"{name} was asked upstream"


def test_a_dns_answer_too_big_for_udp_reaches_a_client_that_asks_over_tcp(net, embargo):
    """A client asks over TCP to get an answer UDP truncates. Embargo forwards questions over
    UDP; when the answer comes back truncated, it asks the resolver again over TCP."""
    cp = dig(net.phone, "+tcp", "+noedns", "big.allowed.test", "TXT")
    assert cp.returncode == 0, cp.stdout
    assert " tc" not in cp.stdout.split("flags:")[1].split(";")[0], f"truncated answer:\n{cp.stdout}"
    got = "".join(answers(cp))
    for c in "abc":
        assert c * 200 in got, f"string of {c} missing:\n{cp.stdout}"


def test_dns_cname_to_a_tracker_is_blocked(net, embargo):
    got = answers(dig(net.phone, "cdn.partner.test", "A"))
    assert TRACKER_IP not in got, f"CNAME cloaking: cdn.partner.test -> cdn.tracker.test answered {got}"


def test_tls_by_address_with_a_blocked_sni_never_reaches_the_server(net, embargo):
    """DNS bypassed: the tracker name goes straight to the allowed server's address."""
    before_log = len(net.access_log("tracker"))
    before_opens = net.passive_opens()
    rc, secs, _ = curl(net.phone, "--cacert", net.ca / "ca.pem", "-o", "/dev/null",
                       "--resolve", f"pixel.tracker.test:443:{ALLOWED_IP}", "https://pixel.tracker.test/p.gif")
    assert rc != 0, "TLS with a blocked SNI went through"
    assert secs < 5
    assert len(net.settled_log("tracker")) == before_log
    assert net.passive_opens() == before_opens, "a SYN reached the server before the SNI was seen"


def test_http_by_address_with_a_blocked_host_never_reaches_the_server(net, embargo):
    before_log = len(net.access_log("tracker"))
    before_opens = net.passive_opens()
    rc, _, _ = curl(net.phone, "-o", "/dev/null", "--resolve", f"ads.tracker.test:80:{ALLOWED_IP}",
                    "http://ads.tracker.test/t.js")
    assert rc != 0
    assert len(net.settled_log("tracker")) == before_log
    assert net.passive_opens() == before_opens


def test_chromium_page_works_and_its_trackers_are_blocked(net, embargo, tmp_path):
    if shutil.which("chromium") is None:
        loud_skip("chromium not installed (apt-get install chromium)")
    tracker_before = len(net.access_log("tracker"))
    allowed_before = len(net.access_log("allowed"))
    dom = chromium_dump(net.phone, tmp_path, PAGE)
    assert "The story" in dom, f"page did not load through Embargo; log:\n{embargo.log()[-2000:]}"
    assert "<title>tracked</title>" not in dom, "the tracker script ran"
    fetched = "\n".join(net.wait_log("allowed", allowed_before + 2)[allowed_before:])
    assert "GET /page.html" in fetched and "GET /logo.gif" in fetched
    assert net.settled_log("tracker")[tracker_before:] == []


def test_per_app_blocking_applies_to_one_executable_and_not_the_other(net, embargo, tmp_path):
    status = embargo.cli_json("status")
    if not status.get("running"):
        loud_skip("the running `embargo run` does not serve the control socket yet "
                  "(per-app changes cannot reach it)")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    bindir.chmod(0o755)
    curl_a, curl_b = bindir / "curl-a", bindir / "curl-b"
    for c in (curl_a, curl_b):
        shutil.copy2(shutil.which("curl"), c)
    embargo.cli("apps", "block", curl_a)
    embargo.cli("apps", "allow", curl_b)
    before = len(net.access_log("tracker"))
    # First by address with the Host header, so the connection alone is judged per app.
    url = ["--resolve", f"pixel.tracker.test:80:{TRACKER_IP}", "http://pixel.tracker.test/p.gif"]
    a = in_ns(net.phone, curl_a, "-sS", "--max-time", "10", "-o", "/dev/null", *url, check=False)
    assert a.returncode != 0, "blocking is on for curl-a, yet it reached the tracker"
    assert len(net.settled_log("tracker")) == before
    b = in_ns(net.phone, curl_b, "-sS", "--max-time", "10", "-o", "/dev/null", *url, check=False)
    assert b.returncode == 0, f"blocking is off for curl-b, yet it failed: {b.stderr}"
    assert len(net.wait_log("tracker", before + 1)) == before + 1
    # Then by name: the DNS question is judged per app too (curl resolves in its own process).
    by_name = ["http://pixel.tracker.test/p.gif"]
    a = in_ns(net.phone, curl_a, "-sS", "--max-time", "10", "-o", "/dev/null", *by_name, check=False)
    assert a.returncode != 0, "blocking is on for curl-a, yet its DNS question got through"
    b = in_ns(net.phone, curl_b, "-sS", "--max-time", "10", "-o", "/dev/null", *by_name, check=False)
    assert b.returncode == 0, f"blocking is off for curl-b, yet resolving the tracker failed: {b.stderr}"
    assert len(net.wait_log("tracker", before + 2)) == before + 2
    apps = {a["app"]: a for a in embargo.cli_json("apps")}
    assert apps[str(curl_a)]["blocking"] is True
    assert apps[str(curl_b)]["blocking"] is False
    # pause: curl-a allowed for a while
    embargo.cli("apps", "pause", curl_a, "--for", "5m")
    a = in_ns(net.phone, curl_a, "-sS", "--max-time", "10", "-o", "/dev/null", *url, check=False)
    assert a.returncode == 0, "curl-a is paused, yet it was blocked"
    embargo.cli("apps", "block", curl_a)


def test_lists_add_url_update_remove_reach_the_running_instance(net, embargo):
    url = f"http://{ALLOWED_IP}/late-hosts.txt"  # served by nginx in `internet`
    target = "https://late.allowed.test/file.bin"
    rc, _, _ = curl(net.phone, "--cacert", net.ca / "ca.pem", "-o", "/dev/null", target)
    assert rc == 0, "late.allowed.test should work before its list is added"
    added = embargo.cli("lists", "add", url, "--format", "hosts", "--name", "late")
    assert "downloaded" in added.stderr, added.stderr  # progress is shown
    assert "reloaded" in added.stdout, added.stdout
    rc, secs, _ = curl(net.phone, "--cacert", net.ca / "ca.pem", "-o", "/dev/null", target)
    assert rc != 0 and secs < 5, "the list added at run time did not apply"
    shown = {l["name"]: l for l in embargo.cli_json("lists", "show")}
    assert shown["late"]["counts"]["accepted"] == 1 and shown["late"]["counts"]["skipped"] == 1
    assert "late" in embargo.cli("lists", "show").stdout
    embargo.cli("lists", "update")
    embargo.cli("lists", "remove", "late")
    rc, _, _ = curl(net.phone, "--cacert", net.ca / "ca.pem", "-o", "/dev/null", target)
    assert rc == 0, "removing the list did not lift the block"


def _served(net, name: str, text: str | None) -> None:
    """Puts `text` at http://ALLOWED_IP/`name` (nginx, which answers If-None-Match with 304);
    `None` removes it (404)."""
    path = net.www / "default" / name
    if text is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    tmp.rename(path)


def _wait(what: str, probe, timeout: float = 20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def test_a_url_list_keeps_itself_current_and_a_broken_update_is_refused(net, embargo):
    """A list served by a real HTTP server changes: the running `embargo run` picks it up by
    itself (conditional checks, then a reload); then the server breaks it: the update is
    refused, the last good copy stays in force, and `lists show` and `status` say why."""
    if "--check-lists-every" not in embargo.flags:
        loud_skip("this embargo has no --check-lists-every")
    name = "moving-hosts.txt"
    _served(net, name, "0.0.0.0 moving1.allowed.test\n")
    url = f"http://{ALLOWED_IP}/{name}"

    def blocked(host: str) -> bool:
        return ALLOWED_IP not in answers(dig(net.phone, "+notcp", host, "A"))

    def checked_verdict(host: str) -> str:
        cp = embargo.cli("check", "--json", host)
        return json.loads(cp.stdout.splitlines()[0])["verdict"].lower()

    def shown() -> dict:
        return {l["name"]: l for l in embargo.cli_json("lists", "show")}["moving"]

    def refusal() -> str:
        return ((shown().get("freshness") or {}).get("failure") or {}).get("reason", "")

    embargo.cli("lists", "add", url, "--format", "hosts", "--name", "moving", "--every", "1s")
    try:
        assert blocked("moving1.allowed.test")
        # nginx's ETag is kept and sent back: unchanged checks are answered 304
        assert shown()["freshness"]["etag"], shown()
        _wait("a conditional check answered 304",
              lambda: any(name in l and " 304 " in l for l in net.access_log("default")))

        # the list changes on the server: the running instance picks it up by itself
        time.sleep(1.1)  # nginx's ETag has a one-second mtime
        _served(net, name, "0.0.0.0 moving1.allowed.test\n0.0.0.0 moving2.allowed.test\n")
        _wait("the running instance to block moving2", lambda: blocked("moving2.allowed.test"))
        assert checked_verdict("moving2.allowed.test") == "block"
        assert shown()["counts"]["accepted"] == 2

        # broken: an HTML page where the list was, then a 404: refused, the old copy kept
        for broken, why in (("<html><body>Service moved</body></html>\n", "no rule accepted"),
                            (None, "HTTP 404")):
            time.sleep(1.1)
            _served(net, name, broken)
            failure = _wait(f"the update to be refused ({why})",
                            lambda: why in refusal() and refusal())
            assert why in failure, failure
            assert blocked("moving1.allowed.test") and blocked("moving2.allowed.test"), \
                "the last good copy must stay in force"
            assert checked_verdict("moving2.allowed.test") == "block"
            assert shown()["counts"]["accepted"] == 2
            text = embargo.cli("lists", "show").stdout
            assert "REFUSED" in text and why in text, text
            status = embargo.cli("status").stdout
            assert "update refused" in status and why in status, status

        # fixed again: accepted, and the refusal is forgotten
        time.sleep(1.1)
        _served(net, name, "0.0.0.0 moving1.allowed.test\n")
        _wait("the repaired list to be taken", lambda: not blocked("moving2.allowed.test"))
        assert "failure" not in shown().get("freshness", {})
    finally:
        embargo.cli("lists", "remove", "moving", check=False)
        _served(net, name, None)


def test_tiktoks_own_telemetry_is_blocked_its_content_relayed_and_full_blocks_both(net, embargo, tmp_path):
    """Embargo mode: a process standing for TikTok, known as ByteDance's own app,
    asks for ByteDance telemetry and content names. The built-in default (telemetry) blocks
    the telemetry with no first-party exception and relays the content; `full` blocks both."""
    status = embargo.cli_json("status")
    if not status.get("running"):
        loud_skip("the running `embargo run` does not serve the control socket yet")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    bindir.chmod(0o755)
    tiktok = bindir / "tiktok"
    shutil.copy2(shutil.which("curl"), tiktok)
    facts = tmp_path / "tiktok-app.rules"
    facts.write_text(f"app-owner: {tiktok} = ByteDance\n")
    embargo.cli("lists", "add", facts, "--name", "tiktok-app")
    telemetry = "log16-normal-c-useast1a.tiktokv.com"
    content = "api16-normal-c-useast1a.tiktokv.com"

    def fetch(name):
        return in_ns(net.phone, tiktok, "-sS", "--max-time", "10", "-o", "/dev/null",
                     f"http://{name}/index.html", check=False)

    try:
        r = fetch(telemetry)
        assert r.returncode != 0, "TikTok reached ByteDance's telemetry (first-party exception?)"
        assert f"query[A] {telemetry}" not in net.dns_log(), "the telemetry question left the phone"
        r = fetch(content)
        assert r.returncode == 0, f"TikTok's content was not relayed in telemetry mode: {r.stderr}"
        assert f"query[A] {content}" in net.dns_log()
        time.sleep(0.5)  # the history commits every 100 ms
        rows = embargo.cli_json("history", "--app", str(tiktok), "--decision", "block")
        blocked = [row for row in rows if row.get("name") == telemetry]
        assert blocked, f"the telemetry block is not in the history: {rows}"
        assert blocked[0].get("list") == "builtin", blocked[0]

        embargo.cli("default", "full")
        r = fetch(content)
        assert r.returncode != 0, "full mode relayed ByteDance's content"
        embargo.cli("default", "telemetry")
        r = fetch(content)
        assert r.returncode == 0, f"back in telemetry mode the content failed: {r.stderr}"
    finally:
        embargo.cli("default", "telemetry", check=False)
        embargo.cli("lists", "remove", "tiktok-app", check=False)


def test_iperf3_through_embargo(net, embargo):
    cp = in_ns(net.phone, "iperf3", "-c", ALLOWED_IP, "-t", "2", "-J", check=False, timeout=30)
    assert cp.returncode == 0, cp.stdout[-1000:]
    bps = json.loads(cp.stdout)["end"]["sum_received"]["bits_per_second"]
    print(f"\n[netns] iperf3 through Embargo: {bps / 1e6:.0f} Mbit/s (1 stream, 2 s)")
    assert bps > 0


CONNS = 10_000
# A connect-first port. On an inspected one (8080) a release build lost about a quarter of a
# burst of 10,000 to resets and timeouts (2026-12-08, cause not found yet; a debug build, slower
# to open them, served all): see docs/decisions.md.
CONNS_PORT = 8081


def test_ten_thousand_concurrent_connections_are_all_served(net, embargo):
    """10,000 connections open at once through Embargo (its default flow cap): each sends a
    request and reads the whole answer, and once all are answered a second one on each, so
    every connection stayed open beside all the others (none evicted); all served, none
    refused, reset or timed out. Peak RSS of such a load: `tests/bench/ab.sh conns`."""
    script = Path(__file__).resolve().parents[1] / "bench" / "conns.py"
    limit = CONNS + 2000
    net.spawn(net.inet, ["bash", "-c", f"ulimit -n {limit}; exec python3 {script} serve {CONNS_PORT}"],
              "conns-server")
    wait_listening(net.inet, CONNS_PORT, "the connections' server")
    before = json.dumps(embargo.cli_json("status"))[:3000]
    print(f"\n[netns] status before the load: {before}")
    cp = in_ns(net.phone, "bash", "-c",
               f"ulimit -n {limit}; exec python3 {script} load {ALLOWED_IP} {CONNS_PORT} {CONNS}",
               check=False, timeout=120)
    assert cp.returncode == 0, cp.stderr[-2000:]
    result = json.loads(cp.stdout.strip().splitlines()[-1])
    status = Path(f"/proc/{embargo.proc.pid}/status").read_text()
    hwm = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")), "?")
    print(f"\n[netns] {CONNS} concurrent connections: {result}; Embargo's peak RSS so far {hwm} kB")
    print(f"[netns] status after the load: {json.dumps(embargo.cli_json('status'))[:3000]}")
    assert result["served"] == CONNS and not result["errors"], result


# -- HTTP proxies: decided on the names inside, not on the proxy's address ---------------------
PROXY_PORT = 8888  # tinyproxy's usual port, one of Embargo's default proxy ports
PROXY = f"http://{ALLOWED_IP}:{PROXY_PORT}"
SINK_PORT = 9443

# A CONNECT destination that records every byte each connection sends it (one file per
# connection) and closes: the proof of what the proxy forwarded.
SINK_SERVER = r"""
import socket, sys, pathlib
out = pathlib.Path(sys.argv[3])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
n = 0
while True:
    c, _ = s.accept()
    c.settimeout(2)
    got = b""
    try:
        while len(got) < 65536:
            chunk = c.recv(65536)
            if not chunk:
                break
            got += chunk
    except OSError:
        pass
    n += 1
    (out / f"conn-{n}.bin").write_bytes(got)
    c.close()
"""


def wait_listening(ns: str, port: int, what: str):
    deadline = time.time() + 10
    while not in_ns(ns, "ss", "-Hltn", f"sport = :{port}", check=False).stdout.strip():
        assert time.time() < deadline, f"{what} did not listen on {port}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def proxy(net):
    """tinyproxy on the allowed server's address in `internet`, resolving with the test DNS;
    returns its log (one `Connect (file descriptor N)` line per client connection, one
    `Request` line with each request line it got)."""
    if shutil.which("tinyproxy") is None:
        loud_skip("tinyproxy not installed (tests/install-deps.sh installs tinyproxy-bin)")
    etc = Path(f"/etc/netns/{net.inet}")
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text(f"nameserver {DNS_IP}\n")  # for processes started now on
    log = net.log / "tinyproxy.log"
    conf = net.dir / "tinyproxy.conf"
    conf.write_text(f'Port {PROXY_PORT}\nListen {ALLOWED_IP}\nTimeout 30\nMaxClients 50\n'
                    f'LogFile "{log}"\nLogLevel Info\n')
    net.spawn(net.inet, ["tinyproxy", "-d", "-c", conf], "tinyproxy")
    wait_listening(net.inet, PROXY_PORT, "tinyproxy")
    sink = net.dir / "sink"
    sink.mkdir()
    net.spawn(net.inet, ["python3", "-c", SINK_SERVER, ALLOWED_IP, str(SINK_PORT), sink], "sink")
    wait_listening(net.inet, SINK_PORT, "the sink")
    return log, sink


def proxy_log(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


def test_proxy_requests_are_decided_on_the_names_inside(net, embargo, proxy):
    log, _ = proxy
    ca = net.ca / "ca.pem"
    for url in ("https://allowed.test/index.html", "http://www.allowed.test/index.html"):
        rc, _, out = curl(net.phone, "-x", PROXY, "--cacert", ca, url)
        assert rc == 0 and "allowed" in out, f"{url} through the proxy failed (curl exit {rc}); " \
            f"proxy log:\n{proxy_log(log)[-1500:]}\nembargo log:\n{embargo.log()[-1500:]}"
    assert "CONNECT allowed.test:443" in proxy_log(log)
    before = proxy_log(log)
    before_tracker = len(net.access_log("tracker"))
    for url in ("https://tracker.test/index.html", "https://pixel.tracker.test/p.gif",
                "http://ads.tracker.test/t.js"):
        rc, secs, _ = curl(net.phone, "-x", PROXY, "--cacert", ca, "-o", "/dev/null", url)
        assert rc != 0, f"{url} through the proxy was not blocked"
        assert secs < 5, f"{url} took {secs:.1f} s to fail"
    time.sleep(0.5)
    new = proxy_log(log)[len(before):]
    assert "tracker.test" not in new, f"a blocked name reached the proxy:\n{new}"
    assert "Connect (file descriptor" not in new, f"the proxy was connected to at all:\n{new}"
    assert len(net.settled_log("tracker")) == before_tracker


def test_proxy_tunnel_with_a_blocked_inner_sni_sends_no_byte_of_it(net, embargo, proxy):
    """CONNECT to an allowed name, then a ClientHello naming a tracker: the CONNECT reaches the
    proxy (which opens the tunnel), no byte of the hello reaches the tunnel's far end."""
    log, sink = proxy

    def s_client(sni: str) -> subprocess.CompletedProcess:
        return in_ns(net.phone, "openssl", "s_client", "-proxy", f"{ALLOWED_IP}:{PROXY_PORT}",
                     "-connect", f"allowed.test:{SINK_PORT}", "-servername", sni,
                     check=False, timeout=20, stdin=subprocess.DEVNULL)

    def received() -> list[bytes]:
        time.sleep(2.5)  # the sink closes each connection after 2 s of silence
        return [p.read_bytes() for p in sorted(sink.iterdir())]

    # The control: an allowed inner name goes through, so the sink sees a hello.
    s_client("www.allowed.test")
    got = received()
    assert any(b"www.allowed.test" in g for g in got), f"the allowed hello did not arrive: {got}"
    for f in sink.iterdir():
        f.unlink()
    before = proxy_log(log)
    cp = s_client("pixel.tracker.test")
    new = proxy_log(log)[len(before):]
    assert f"CONNECT allowed.test:{SINK_PORT}" in new, \
        f"the allowed CONNECT did not reach the proxy:\n{new}\n{cp.stdout[-500:]}{cp.stderr[-500:]}"
    got = received()
    assert all(g == b"" for g in got), f"bytes of the blocked hello left: {got}"
    assert "tracker.test" not in new
    records = blocks(embargo)
    assert any(r.get("name") == "pixel.tracker.test" and r.get("port") == PROXY_PORT
               for r in records), f"no block of the inner name on the proxy flow: {records[-5:]}"


def blocks(embargo) -> list[dict]:
    time.sleep(0.5)  # the history commits every 100 ms
    cp = embargo.cli("history", "--decision", "block", "--json", "--limit", "1000", check=False)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)


def test_history_holds_the_blocks_with_app_name_owner_and_country(net, embargo):
    records = blocks(embargo)
    assert records, f"no block in the history; embargo log:\n{embargo.log()[-2000:]}"
    names = {r.get("name") for r in records}
    for name in ("pixel.tracker.test", "ads.tracker.test", "tracker.test"):
        assert name in names, f"{name} not in history: {sorted(n for n in names if n)}"
    for r in records:
        if r.get("name") and r["name"].endswith("tracker.test"):
            assert r["owner"] == "Tracker Corp", r
    # connection blocks (HTTP Host, TLS SNI) carry the app that tried
    conns = [r for r in records if r.get("protocol") == "tcp" and (r.get("name") or "").endswith("tracker.test")]
    assert conns, f"no connection block recorded: {records}"
    assert any((r.get("app") or "").endswith("curl") for r in conns), conns
    if "--country-db" in embargo.flags:
        assert any(r.get("country") == "NL" for r in conns), f"blocks by SNI/Host on {ALLOWED_IP} lack its country: {conns}"
    if "--asn-db" in embargo.flags:
        asn = [r for r in records if r.get("addr") == ASN_IP]
        assert asn, "the AS45090 block is not in the history"
        assert asn[0]["owner"] and "Tencent" in asn[0]["owner"], asn[0]
        assert (asn[0].get("app") or "").endswith("curl"), asn[0]
        if "--country-db" in embargo.flags:
            assert asn[0]["country"] == "CN", asn[0]
    # the table view and the stats work too
    table = embargo.cli("history", "--decision", "block", "--name", "tracker.test").stdout
    assert "pixel.tracker.test" in table and "block" in table
    stats = embargo.cli_json("stats", "--by", "owner")
    assert any(s.get("owner") == "Tracker Corp" and s["blocked"] > 0 for s in stats), stats
    assert ASN_ORG


def test_status_and_apps_report_the_running_instance(net, embargo):
    curl(net.phone, "-o", "/dev/null", "--resolve", f"pixel.tracker.test:80:{TRACKER_IP}",
         "http://pixel.tracker.test/p.gif")  # one block by the system's curl
    status = embargo.cli_json("status")
    assert status["running"] is True, status
    assert status["instance"]["blocked"] > 0, status
    apps = embargo.cli_json("apps")
    assert any(a["app"].endswith("/curl") and a["blocked"] > 0 for a in apps), apps
    assert "APP" in embargo.cli("apps").stdout


def test_every_blocked_dns_question_names_its_app(net, embargo):
    dns = [r for r in blocks(embargo) if r.get("protocol") == "dns"]
    assert dns
    missing = [r["name"] for r in dns if not r.get("app")]
    assert not missing, f"DNS blocks without an app: {missing}"


# A server that answers each connection with a payload and closes at once (data and FIN in one
# flight, as an HTTP/1.0 server does): the client must get every byte and then the end of the
# stream. The driver stops reading a socket after a short read (the queue is empty), so an EOF
# that arrived with the data must still be read; a lost one shows up here as a read timeout.
CLOSE_SERVER = r"""
import socket, sys
port, payload = int(sys.argv[1]), bytes(range(256)) * 40 + b"end"
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[2], port)); s.listen(64)
while True:
    c, _ = s.accept()
    if port == 8080:
        c.recv(4096)  # the inspected port: the client speaks first (the Host is read)
    c.sendall(payload); c.close()
"""

CLOSE_CLIENT = r"""
import socket, sys, time
port, expected = int(sys.argv[2]), bytes(range(256)) * 40 + b"end"
for i in range(int(sys.argv[3])):
    c = socket.create_connection((sys.argv[1], port), timeout=3)
    if port == 8080:
        c.sendall(b"GET / HTTP/1.0\r\nHost: allowed.test\r\n\r\n")
    got = b""
    while True:
        chunk = c.recv(65536)  # raises on a lost EOF (3 s timeout)
        if not chunk:
            break
        got += chunk
    assert got == expected, (i, len(got))
    c.close()
print("ok")
"""


@pytest.mark.parametrize("port", [7001, 8080])
def test_a_server_that_sends_and_closes_delivers_every_byte_and_the_end(net, embargo, port):
    net.spawn(net.inet, ["python3", "-c", CLOSE_SERVER, str(port), ALLOWED_IP], f"close-{port}")
    deadline = time.time() + 10
    while not in_ns(net.inet, "ss", "-Hltn", f"sport = :{port}", check=False).stdout.strip():
        assert time.time() < deadline, "the close server did not listen"
        time.sleep(0.1)
    cp = in_ns(net.phone, "python3", "-c", CLOSE_CLIENT, ALLOWED_IP, str(port), "30",
               check=False, timeout=120)
    assert cp.returncode == 0 and "ok" in cp.stdout, (cp.stdout + cp.stderr)[-2000:]


# -- hardening ---------------------------------------------------------------------------------

LATE_TLS_CLIENT = r"""
import socket, ssl, sys, time
host, mode = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context()
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = ctx.wrap_bio(inc, out, server_hostname="pixel.tracker.test")
try:
    obj.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = out.read()
s = socket.create_connection((host, 443), timeout=5)
try:
    if mode == "late":
        time.sleep(2)             # past the old 1.5 s inspection timeout
        s.sendall(hello)
    else:
        s.sendall(hello[:20])     # split, with a 2 s gap
        time.sleep(2)
        s.sendall(hello[20:])
    got = s.recv(100)
    print("answered" if got else "closed")
except OSError as e:
    print("reset", e)
"""

BIG_HEAD_CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], 80), timeout=5)
head = b"GET /t.js HTTP/1.1\r\n" + b"".join(
    b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(10)) + b"Host: ads.tracker.test\r\n\r\n"
try:
    s.sendall(head)
    got = s.recv(100)
    print("answered" if got else "closed")
except OSError as e:
    print("reset", e)
"""


@pytest.mark.parametrize("mode", ["late", "split"])
def test_a_late_or_split_client_hello_is_still_read_and_blocked(net, embargo, mode):
    """A blocked SNI sent 2 s after the handshake (or split with a 2 s gap) used to
    be connected by address after 1.5 s, its ClientHello reaching the server."""
    before_log = len(net.access_log("tracker"))
    before_opens = net.passive_opens()
    cp = in_ns(net.phone, "python3", "-c", LATE_TLS_CLIENT, ALLOWED_IP, mode,
               check=False, timeout=30)
    assert "answered" not in cp.stdout, cp.stdout + cp.stderr
    assert net.passive_opens() == before_opens, "the late ClientHello's flow reached the server"
    assert len(net.settled_log("tracker")) == before_log


def test_a_host_after_eight_kib_of_headers_is_still_read_and_blocked(net, embargo):
    """A Host header after 10 KiB of other headers used to go unread (decided by
    address at 8 KiB), the blocked request reaching the server."""
    before_log = len(net.access_log("tracker")) + len(net.access_log("allowed"))
    before_opens = net.passive_opens()
    cp = in_ns(net.phone, "python3", "-c", BIG_HEAD_CLIENT, ALLOWED_IP, check=False, timeout=30)
    assert "answered" not in cp.stdout, cp.stdout + cp.stderr
    assert net.passive_opens() == before_opens
    time.sleep(0.5)
    assert len(net.access_log("tracker")) + len(net.access_log("allowed")) == before_log


UDP_COUNTER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
n = 0
while True:
    data, peer = s.recvfrom(65535)
    n += 1
    with open(sys.argv[3], "w") as f:
        f.write(str(n))
    if len(sys.argv) > 4:
        s.sendto(data, peer)  # echo
"""


def test_quic_after_junk_datagrams_never_leaves(net, embargo):
    """UDP 443 whose first datagrams are not a readable QUIC Initial used to be
    relayed by address (and the Initial after them); now the flow is refused."""
    count = net.dir / "udp443.count"
    net.spawn(net.inet, ["python3", "-c", UDP_COUNTER, ALLOWED_IP, "443", count], "udp443")
    time.sleep(0.5)
    script = ("import socket, time, sys\n"
              "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
              "s.connect((sys.argv[1], 443))\n"
              "for i in range(5):\n"
              "    try: s.send(bytes([0x40, i]) + b'junk' * 50)\n"
              "    except OSError: pass\n"
              "time.sleep(0.3)\n"
              "try: s.send(bytes([0xc3, 0, 0, 0, 1]) + b'\\x00' * 1200)\n"
              "except OSError: pass\n")
    in_ns(net.phone, "python3", "-c", script, ALLOWED_IP, check=False, timeout=20)
    time.sleep(1)
    got = count.read_text() if count.exists() else "0"
    assert got == "0", f"{got} datagrams reached the server"


SPOOFED_SYNS = r"""
import socket, struct, sys, random
dst, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
raw.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
d = socket.inet_aton(dst)
for i in range(n):
    src = socket.inet_aton("10.99.%d.%d" % (i // 250 % 250, i % 250 + 1))
    sport = 20000 + i % 40000
    tcp = struct.pack("!HHIIBBHHH", sport, port, random.getrandbits(32), 0, 5 << 4, 0x02, 65535, 0, 0)
    pseudo = src + d + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xffff, 0, 64, 6, 0, src, d)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    raw.sendto(ip + tcp, (dst, 0))
print("sent", n)
"""


def test_spoofed_syns_open_no_upstream_connection(net, embargo):
    """Every spoofed SYN to an allowed connect-first port used to open a real
    upstream connection (3,583 in the issue's run); the upstream now waits for the app's ACK."""
    port = 7002
    net.spawn(net.inet, ["python3", "-c",
                         "import socket,sys\ns=socket.create_server((sys.argv[1],int(sys.argv[2])),backlog=4096)\n"
                         "c=[]\nwhile True: c.append(s.accept())", ALLOWED_IP, str(port)], "listen-7002")
    wait_listening(net.inet, port, "the listener")
    before = net.passive_opens()
    cp = in_ns(net.phone, "python3", "-c", SPOOFED_SYNS, ALLOWED_IP, str(port), "2000",
               check=False, timeout=60)
    assert "sent 2000" in cp.stdout, cp.stdout + cp.stderr
    time.sleep(2)
    opened = net.passive_opens() - before
    assert opened == 0, f"{opened} upstream connections opened by spoofed SYNs"
    # The control: a real client gets through (its ACK opens the upstream).
    cp = in_ns(net.phone, "python3", "-c",
               "import socket,sys\nsocket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)"
               "\nprint('ok')", ALLOWED_IP, str(port), check=False, timeout=20)
    assert "ok" in cp.stdout, cp.stderr
    assert embargo.alive()


def test_encrypted_dns_is_refused_by_default(net, embargo):
    """DoH by a name of core/engine/src/dns/doh.rs (dns.google, which the test DNS
    resolves to the allowed server) is refused: its DNS question gets the block answer and a
    ClientHello naming it never reaches the server, so curl --doh-url fails."""
    before_opens = net.passive_opens()
    got = answers(dig(net.phone, "dns.google", "A"))
    assert got == ["0.0.0.0"], got
    assert f"query[A] dns.google from {harness.HOST_IP}" not in net.dns_log()
    rc, secs, _ = curl(net.phone, "--cacert", net.ca / "ca.pem", "--doh-url", "https://dns.google/dns-query",
                       "--resolve", f"dns.google:443:{ALLOWED_IP}", "-o", "/dev/null", "https://allowed.test/")
    assert rc != 0, "DoH through dns.google went through"
    assert net.passive_opens() == before_opens, "the DoH connection reached the server"


UDP_SPRAY = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.time() + float(sys.argv[2])
n = 0
while time.time() < end:
    try:
        s.sendto(b"x", (sys.argv[1], 10000 + n % 20000))
    except OSError:
        pass
    n += 1
    if n % 20 == 0:
        time.sleep(0.01)  # ~2,000 new flows a second: the table churns, the CPU keeps up
print("sprayed", n)
"""

HELD_TCP = r"""
import socket, sys, time
host, n, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
req = b"GET /index.html HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
conns, ok = [], 0
for i in range(n):
    try:
        c = socket.create_connection((host, 80), timeout=15)
        c.sendall(req)
        c.recv(65536)
        conns.append(c)
    except OSError as e:
        print("open", i, e)
    time.sleep(0.05)
time.sleep(hold)
for c in conns:   # the connections held through the spray still work
    try:
        c.sendall(req)
        if c.recv(65536):
            ok += 1
        else:
            print("closed", c)
    except OSError as e:
        print("again", e)
print("ok", ok, "of", n)
"""


def test_a_udp_spray_does_not_evict_other_apps_tcp(net, embargo):
    """A process spraying UDP to 20,000 ports keeps the 3,584-flow table full. Before,
    another process's new connections were refused (10 of 60 worked; the issue's release-build
    run: 1 of 24); now UDP goes first and an app over half the table gives up its own flows."""
    spray = subprocess.Popen(["ip", "netns", "exec", net.phone, "python3", "-c", UDP_SPRAY,
                              ALLOWED_IP, "22"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(2)  # the table is full by now
        # 60 connections opened during the spray and held idle past the engine's 10 s
        # "recently active" grace (a push channel, a keep-alive), then used again.
        cp = in_ns(net.phone, "python3", "-c", HELD_TCP, ALLOWED_IP, "60", "12",
                   check=False, timeout=90)
    finally:
        out, _ = spray.communicate(timeout=30)
    assert "sprayed" in out
    assert "ok 60 of 60" in cp.stdout, f"{cp.stdout}{cp.stderr[-500:]} (spray: {out.strip()})"


UDP_ECHO_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((sys.argv[1], int(sys.argv[2])))
ok = 0
for i in range(5):
    data = bytes([i]) * 3000
    s.send(data)
    try:
        if s.recv(65535) == data:
            ok += 1
    except OSError:
        pass
print("echoed", ok)
"""


def test_a_udp_datagram_larger_than_the_mtu_is_relayed(net, embargo):
    """A 3000-byte datagram leaves the phone as IP fragments, which were dropped;
    now they are joined and the datagram relayed (and its echo returned)."""
    count = net.dir / "echo.count"
    net.spawn(net.inet, ["python3", "-c", UDP_COUNTER, ALLOWED_IP, "7003", count, "echo"], "echo")
    time.sleep(0.5)
    cp = in_ns(net.phone, "python3", "-c", UDP_ECHO_CLIENT, ALLOWED_IP, "7003", check=False, timeout=30)
    assert "echoed 5" in cp.stdout, cp.stdout + cp.stderr
