"""Hardening on the real network: the open-file limit and the run lock.

Each test runs its own `embargo run --netns` on a namespace of its own (`emb l-<id>`), routed
to the suite's `internet` namespace like `phone`, so it never disturbs the session's Embargo.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import harness
from harness import ALLOWED_IP, DNS_IP, in_ns, run

PORT = 9100
CONNECTIONS = 1200

# Holds every connection open; answers each "ping" with "pong".
SERVER = r"""
import resource, selectors, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
sel = selectors.DefaultSelector()
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], int(sys.argv[2])))
ls.listen(4096)
ls.setblocking(False)
sel.register(ls, selectors.EVENT_READ)
print("listening", flush=True)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if s is ls:
            c, _ = ls.accept()
            c.setblocking(False)
            sel.register(c, selectors.EVENT_READ)
            continue
        try:
            data = s.recv(64)
        except OSError:
            data = b""
        if not data:
            sel.unregister(s)
            s.close()
        elif b"ping" in data:
            try:
                s.send(b"pong")
            except OSError:
                pass
"""

# Opens N connections one after another and keeps them all open; then pings each again.
CLIENT = r"""
import json, resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
held, errors = [], {}
for i in range(n):
    s = socket.socket()
    s.settimeout(10)
    try:
        s.connect((ip, port))
        s.sendall(b"ping")
        if s.recv(4) != b"pong":
            raise OSError("no pong")
        held.append(s)
    except OSError as e:
        key = type(e).__name__
        errors[key] = errors.get(key, 0) + 1
        s.close()
alive = 0
for s in held:
    try:
        s.sendall(b"ping")
        alive += s.recv(4) == b"pong"
    except OSError:
        pass
print(json.dumps({"ok": len(held), "alive": alive, "errors": errors}))
"""


@pytest.fixture
def own_ns(net):
    """A namespace with only `lo`, for one test's own Embargo."""
    ns = f"{harness.PREFIX}l-{harness.ID}"
    harness.delete_ns(ns)
    run("ip", "netns", "add", ns)
    in_ns(ns, "ip", "link", "set", "lo", "up")
    yield ns
    harness.delete_ns(ns)


def start(embargo_bin, ns: str, state: Path, log: Path, nofile: int | None = None):
    args = [embargo_bin, "run", "--netns", ns, "--state-dir", state, "--dns-upstream", DNS_IP,
            "--app-wait-ms", "0", "--no-default"]

    def limit():
        if nofile is not None:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

    out = open(log, "ab")
    return subprocess.Popen([str(a) for a in args], stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=limit)


def wait_up(proc, log: Path, timeout=60) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "protecting network namespace" in text:
            return text
        if proc.poll() is not None:
            return text
        time.sleep(0.1)
    raise AssertionError(f"embargo did not come up: {log.read_text(errors='replace')}")


stop = harness.stop_process


def test_open_file_limit_is_raised_and_1200_connections_get_through(net, embargo_bin, own_ns, tmp_path):
    """Before: under a soft RLIMIT_NOFILE of 1024 (the usual default), past ~1,000 flows every
    new upstream socket failed and the connection was reset. After: Embargo raises the soft
    limit to the hard one at start, sizes its flow cap from it, and reports both."""
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 4096:
        pytest.skip("the hard open-file limit is below 4096: nothing to raise")
    server = net.spawn(net.inet, [sys.executable, "-c", SERVER, ALLOWED_IP, str(PORT)], "fd-server")
    deadline = time.time() + 10
    while time.time() < deadline:
        if f":{PORT}" in in_ns(net.inet, "ss", "-Hltn", f"sport = :{PORT}", check=False).stdout:
            break
        time.sleep(0.1)
    state, log = tmp_path / "state", tmp_path / "embargo.out"
    proc = start(embargo_bin, own_ns, state, log, nofile=1024)
    try:
        text = wait_up(proc, log)
        assert proc.poll() is None, text
        status = json.loads(run(embargo_bin, "status", "--json", "--state-dir", state).stdout)
        limits = status["instance"]["limits"]
        assert limits["open_files_at_start"] == 1024, limits
        assert limits["open_files"] > 1024 and limits["open_files"] == min(
            limits["open_files_hard"], limits["open_files"]), limits
        assert limits["max_flows"] >= CONNECTIONS + 100, limits
        history = status["instance"]["history"]
        assert history["state"] == "ok" and history["dropped"] == 0, history
        got = in_ns(own_ns, sys.executable, "-c", CLIENT, ALLOWED_IP, str(PORT), str(CONNECTIONS),
                    timeout=600)
        result = json.loads(got.stdout)
        print(f"\n[limits] {limits}; {CONNECTIONS} connections: {result}")
        assert result["ok"] == CONNECTIONS, (result, log.read_text(errors="replace")[-2000:])
        assert result["alive"] == CONNECTIONS, result
        assert proc.poll() is None
    finally:
        stop(proc)
        server.terminate()


def test_a_second_run_is_refused_and_a_run_right_after_sigkill_starts(net, embargo_bin, own_ns, tmp_path):
    """Before: a start 0.3 s after a SIGKILL was refused ("another embargo is running"): the
    killed process, not yet reaped, still had the comm `embargo`. After: a lock (flock) held for
    the process's life says who runs; a dead process holds none."""
    state = tmp_path / "state"
    first_log, second_log, third_log = (tmp_path / f"{n}.out" for n in ("first", "second", "third"))
    first = start(embargo_bin, own_ns, state, first_log)
    try:
        wait_up(first, first_log)
        assert first.poll() is None
        second = start(embargo_bin, own_ns, state, second_log)
        second.wait(timeout=60)
        text = second_log.read_text(errors="replace")
        assert second.returncode != 0 and "another embargo" in text and ".lock" in text, text
        assert first.poll() is None, "the refused second run disturbed the first"
        os.kill(first.pid, signal.SIGKILL)
        time.sleep(0.3)  # not reaped: the killed process is a zombie now
        assert Path(f"/proc/{first.pid}").exists()
        third = start(embargo_bin, own_ns, state, third_log)
        try:
            text = wait_up(third, third_log)
            assert third.poll() is None, text
            assert "reverting" in text, text
            probe = in_ns(own_ns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                          "--max-time", "10", f"http://{ALLOWED_IP}/index.html", check=False)
            assert probe.stdout == "200", probe
        finally:
            stop(third)
    finally:
        first.poll()
        stop(first)


def test_a_closed_output_pipe_does_not_stop_the_cleanup(net, embargo_bin, own_ns, tmp_path):
    """`embargo run ... 2>&1 | tee log`, then Ctrl-C: the shell ends `tee` too, so Embargo's
    last lines go to a closed pipe. Before: the write panicked (exit 101) before the routes
    and DNS of the namespace were restored. After: the lines are dropped, the cleanup runs."""
    import select

    state = tmp_path / "state"
    args = [embargo_bin, "run", "--netns", own_ns, "--state-dir", state, "--dns-upstream",
            DNS_IP, "--app-wait-ms", "0", "--no-default"]
    read_end, write_end = os.pipe()
    proc = subprocess.Popen([str(a) for a in args], stdout=write_end, stderr=write_end,
                            start_new_session=True)
    os.close(write_end)
    seen, deadline = b"", time.time() + 60
    try:
        while b"protecting network namespace" not in seen and time.time() < deadline:
            ready, _, _ = select.select([read_end], [], [], 1)
            if ready:
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                seen += chunk
        assert b"protecting network namespace" in seen, seen.decode(errors="replace")
        assert "dev" in in_ns(own_ns, "ip", "route", "show", "default").stdout
    finally:
        os.close(read_end)  # the reader is gone, as `tee` is after Ctrl-C
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    assert proc.returncode == 0, f"embargo exited {proc.returncode} (101 = panic)"
    routes = in_ns(own_ns, "ip", "route", "show", "default", check=False).stdout
    assert routes.strip() == "", f"the namespace still routes into the tunnel: {routes}"
    assert not Path(f"/etc/netns/{own_ns}/resolv.conf").exists(), "DNS of the namespace not restored"
