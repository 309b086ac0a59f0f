"""A real tunnel in a network namespace, driven through the Python bindings: the phone
namespace resolves and connects through Embargo; history and live events are read back."""

import sys
import time

import pytest

from embargo_ffi import (
    Embargo,
    EmbargoConfig,
    HistoryQuery,
    ListFormat,
    PlatformHooks,
    Protocol,
    TunnelState,
    Verdict,
    linux_open_tun,
)
from netns_bed import PORT, SERVER_IP, TUN_NAME, Bed, can_run

APP = "org.embargo.test.phone"


class Hooks(PlatformHooks):
    def __init__(self):
        self.protected = 0
        self.asked = 0

    def protect(self, fd):
        # Embargo's sockets live in the host namespace: outside the tunnel already.
        self.protected += 1

    def app_owner(self, protocol, src, dst):
        self.asked += 1
        return APP


def drain(embargo):
    events = []
    while (ev := embargo.try_next_event()) is not None:
        events.append(ev)
    return events


@pytest.fixture
def bed():
    why = can_run()
    if why:
        print(f"\n*** SKIPPING the real-tunnel test: {why} ***", file=sys.stderr)
        pytest.skip(why)
    b = Bed()
    b.up()
    yield b
    b.down()


def test_real_tunnel_in_a_network_namespace(bed, tmp_path):
    # A Python hook called from a native thread can take longer than the default 20 ms to
    # answer on a busy test machine; the wait is raised so the attribution check is exact.
    e = Embargo(EmbargoConfig(dns_upstream=f"{SERVER_IP}:53", app_wait_ms=1000), str(tmp_path / "state"))
    e.set_list("test-list", b"tracker.test\n", ListFormat.DOMAINS)
    hooks = Hooks()
    fd = linux_open_tun(TUN_NAME, bed.ns)
    e.start(fd, hooks)
    try:
        bed.configure_tun()
        # Allowed name: forwarded to dnsmasq through Embargo.
        dig = bed.run_in_phone("dig", "+time=3", "+tries=2", "+short", f"@{SERVER_IP}", "allowed.test")
        assert dig.stdout.strip() == SERVER_IP, dig.stdout + dig.stderr
        # Blocked names: answered by Embargo with the unspecified address.
        dig = bed.run_in_phone("dig", "+time=3", "+tries=1", "+short", f"@{SERVER_IP}", "log-va.tiktokv.com")
        assert dig.stdout.strip() == "0.0.0.0", dig.stdout + dig.stderr
        dig = bed.run_in_phone("dig", "+time=3", "+tries=1", "+short", f"@{SERVER_IP}", "tracker.test")
        assert dig.stdout.strip() == "0.0.0.0", dig.stdout + dig.stderr
        # An allowed connection, relayed by Embargo's own socket.
        curl = bed.run_in_phone("curl", "-sS", "-m", "10", f"http://{SERVER_IP}:{PORT}/")
        assert curl.stdout == "hello from the server\n", curl.stdout + curl.stderr
        # A connection whose HTTP Host names a blocked tracker: refused.
        curl = bed.run_in_phone(
            "curl", "-sS", "-m", "10", "--resolve", f"tracker.test:{PORT}:{SERVER_IP}",
            f"http://tracker.test:{PORT}/")
        assert curl.returncode != 0 and "hello" not in curl.stdout
        # A list added while the tunnel runs applies to the next decision (no restart).
        dig = bed.run_in_phone("dig", "+time=3", "+tries=1", "+short", f"@{SERVER_IP}", "late.test")
        assert dig.stdout.strip() == "", dig.stdout  # dnsmasq does not know it
        e.set_list("late", b"late.test\n", ListFormat.DOMAINS)
        dig = bed.run_in_phone("dig", "+time=3", "+tries=1", "+short", f"@{SERVER_IP}", "late.test")
        assert dig.stdout.strip() == "0.0.0.0", dig.stdout + dig.stderr

        status = e.status()
        assert status.state == TunnelState.RUNNING
        assert status.packets_in > 0 and status.dns_blocked >= 2
        assert hooks.protected >= 1
    finally:
        e.stop()

    e.flush_history()
    rows = e.history(HistoryQuery(limit=1000)).records
    by_name = {(r.name, r.verdict) for r in rows}
    assert ("log-va.tiktokv.com", Verdict.BLOCK) in by_name, rows
    assert ("tracker.test", Verdict.BLOCK) in by_name, rows
    assert ("allowed.test", Verdict.ALLOW) in by_name, rows
    blocked = next(r for r in rows if r.name == "tracker.test" and r.protocol == Protocol.DNS)
    assert (blocked.list, blocked.line) == ("test-list", 1)
    tcp = [r for r in rows if r.protocol == Protocol.TCP and r.verdict == Verdict.ALLOW and r.port == PORT]
    assert tcp, rows
    # The app_owner hook named the app: the history row carries it.
    assert hooks.asked >= 1 and any(r.app == APP for r in tcp), rows

    events = drain(e)
    decisions = [ev.event for ev in events if ev.is_DECISION()]
    assert any(d.name == "log-va.tiktokv.com" and d.decision.verdict == Verdict.BLOCK for d in decisions)
    assert any(d.decision.verdict == Verdict.ALLOW for d in decisions)
    states = [ev.state for ev in events if ev.is_STATE_CHANGED()]
    assert states[0] == TunnelState.RUNNING and states[-1] == TunnelState.STOPPED
    e.shutdown()


class RefusingHooks(PlatformHooks):
    def protect(self, fd):
        raise RuntimeError("VpnService.protect is gone")

    def app_owner(self, protocol, src, dst):
        return None


def test_an_exception_in_protect_fails_that_connection_only_and_is_reported(bed, tmp_path):
    e = Embargo(EmbargoConfig(dns_upstream=f"{SERVER_IP}:53"), str(tmp_path / "state"))
    e.start(linux_open_tun(TUN_NAME, bed.ns), RefusingHooks())
    try:
        bed.configure_tun()
        curl = bed.run_in_phone("curl", "-sS", "-m", "5", f"http://{SERVER_IP}:{PORT}/")
        assert curl.returncode != 0
        deadline = time.time() + 5
        errors = []
        while time.time() < deadline and not errors:
            errors = [ev.message for ev in drain(e) if ev.is_ERROR()]
            time.sleep(0.05)
        assert errors and "VpnService.protect is gone" in errors[0], errors
        dig = bed.run_in_phone("dig", "+time=3", "+tries=1", "+short", f"@{SERVER_IP}", "log-va.tiktokv.com")
        assert dig.stdout.strip() == "0.0.0.0"
        assert e.status().state == TunnelState.RUNNING
    finally:
        e.stop()
    e.shutdown()
