"""Fixtures of the real-network suite: the namespaces and servers (`net`), and a running Embargo
protecting the `phone` namespace (`embargo`).

Skips are loud: every skip reason is collected and printed in a summary block at the end of the
run, besides pytest's own `-rs` lines.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import harness  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SKIPS: list[str] = []
TOOLS = ["ip", "curl", "dig", "dnsmasq", "nginx", "iperf3", "openssl"]


def why_not_runnable() -> str | None:
    """The reason this machine cannot run the suite, or None."""
    if os.geteuid() != 0:
        return "not root: the suite creates network namespaces, veths and TUN devices"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun on this machine"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing tools {missing}: run tests/install-deps.sh"
    return None


def loud_skip(reason: str):
    SKIPS.append(reason)
    print(f"\n*** SKIP (netns suite): {reason}", file=sys.stderr)
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter):
    if SKIPS:
        terminalreporter.section("netns suite: SKIPPED PARTS (not silently)", sep="!")
        for reason in sorted(set(SKIPS)):
            n = SKIPS.count(reason)
            terminalreporter.write_line(f"SKIPPED x{n}: {reason}")


_NETWORKS: list[harness.Network] = []


def _teardown_all(*_args):
    while _NETWORKS:
        _NETWORKS.pop().down()


def _on_signal(signum, _frame):
    # pytest stops the session on KeyboardInterrupt and still runs every fixture finalizer
    # (Embargo stopped, namespaces deleted); atexit is the backstop.
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def net():
    """The namespaces and servers, up for the whole session; torn down even on failure
    (fixture finalizer, atexit, and SIGTERM/SIGINT handlers)."""
    reason = why_not_runnable()
    if reason:
        loud_skip(reason)
    stale = harness.sweep_stale()
    if stale:
        print(f"\n[netns] removed leftovers of dead runs: {stale}", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="embargo-netns-"))
    network = harness.Network(work)
    _NETWORKS.append(network)
    atexit.register(_teardown_all)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        network.up()
    except Exception:
        _teardown_all()
        raise
    yield network
    _teardown_all()
    if os.environ.get("EMBARGO_NETNS_KEEP") is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"\n[netns] kept {work}", file=sys.stderr)


def embargo_binary() -> Path | None:
    """The `embargo` binary to test: $EMBARGO_BIN, else the newest of target/{release,debug}."""
    if os.environ.get("EMBARGO_BIN"):
        return Path(os.environ["EMBARGO_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    found = [target / p / "embargo" for p in ("release", "debug") if (target / p / "embargo").exists()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


@pytest.fixture(scope="session")
def embargo_bin():
    b = embargo_binary()
    if b is None:
        loud_skip("no embargo binary: build it (cargo build -p embargo-linux) or set EMBARGO_BIN")
    return b
