"""Past the 1500-byte ceiling: Embargo at tunnel MTU 65535 (offloads off), and with Linux TUN
offloads (`--offload`, the default: 64 KiB TCP super-packets in, GSO segments out) at MTU 1500.

Each test runs its own `embargo run --netns` in a namespace of its own (the suite's main
instance keeps protecting `phone`), moves a large file and iperf3 both ways through it, and
checks that the large packets were really there: average packet sizes on the TUN device, and
the driver's super-packet counters in `embargo status`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

import harness
from harness import ALLOWED_IP, DNS_IP, ID, PREFIX, in_ns, run

BIG = 48 << 20


@pytest.fixture(scope="module")
def big_file(net) -> Path:
    path = net.www / "default" / "big.bin"
    path.write_bytes(os.urandom(BIG))
    path.chmod(0o644)
    return path


class Instance:
    def __init__(self, binary: Path, state: Path, ns: str, proc: subprocess.Popen, log: Path):
        self.bin, self.state, self.ns, self.proc, self.log = binary, state, ns, proc, log

    def counters(self) -> dict:
        out = run(self.bin, "status", "--json", "--state-dir", self.state).stdout
        return json.loads(out)["instance"]["counters"]

    def tun(self) -> str:
        links = in_ns(self.ns, "ip", "-o", "link", "show").stdout
        return next(line.split(":")[1].strip() for line in links.splitlines() if ": emb" in line)

    def tun_stat(self, name: str) -> int:
        """A number of the TUN device's sysfs directory (`mtu`, `statistics/rx_bytes`)."""
        return int(in_ns(self.ns, "cat", f"/sys/class/net/{self.tun()}/{name}").stdout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]


def start(net, binary: Path, tag: str, *flags: str) -> Instance:
    ns = f"{PREFIX}{tag}-{ID}"
    state = net.dir / f"state-{tag}"
    log = net.log / f"embargo-{tag}.out"
    args = [binary, "run", "--netns", ns, "--state-dir", state, "--dns-upstream", DNS_IP,
            "--app-wait-ms", "0", "--check-lists-every", "0", *flags]
    proc = subprocess.Popen([str(a) for a in args], stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    net.procs.append(proc)
    inst = Instance(binary, state, ns, proc, log)
    deadline = time.time() + 30
    while time.time() < deadline and proc.poll() is None:
        if ns in harness.netns_list():
            probe = in_ns(ns, "curl", "-s", "-o", "/dev/null", "--max-time", "2",
                          f"http://{ALLOWED_IP}/index.html", check=False)
            if probe.returncode == 0:
                return inst
        time.sleep(0.3)
    harness.stop_process(proc, timeout=10)
    pytest.fail(f"embargo run {' '.join(flags)} did not come up; its output:\n{inst.output()}")


def stop(inst: Instance) -> None:
    harness.stop_process(inst.proc, timeout=10)
    harness.delete_ns(inst.ns)


def download(net, inst: Instance, big_file: Path) -> float:
    """Downloads the big file through `inst`; returns the average size of the packets Embargo
    wrote to the TUN meanwhile (the file's data segments)."""
    out = net.dir / f"big-{inst.ns}.bin"
    b0, p0 = inst.tun_stat("statistics/rx_bytes"), inst.tun_stat("statistics/rx_packets")
    cp = in_ns(inst.ns, "curl", "-sS", "--max-time", "30", "-o", out,
               f"http://{ALLOWED_IP}/big.bin", check=False, timeout=40)
    assert cp.returncode == 0, f"curl exit {cp.returncode} {cp.stderr}; embargo:\n{inst.output()}"
    assert harness.sha256(out) == harness.sha256(big_file)
    out.unlink()
    return (inst.tun_stat("statistics/rx_bytes") - b0) / max(1, inst.tun_stat("statistics/rx_packets") - p0)


def iperf(inst: Instance, *extra: str) -> float:
    cp = in_ns(inst.ns, "iperf3", "-c", ALLOWED_IP, "-t", "2", "-J", *extra, check=False,
               timeout=30)
    assert cp.returncode == 0, f"{cp.stdout[-800:]}\nembargo:\n{inst.output()}"
    return json.loads(cp.stdout)["end"]["sum_received"]["bits_per_second"]


def test_a_65535_mtu_tunnel_carries_packets_past_9000_bytes(net, embargo_bin, big_file):
    inst = start(net, embargo_bin, "j", "--mtu", "65535", "--offload", "false")
    try:
        assert inst.tun_stat("mtu") == 65535
        down_avg = download(net, inst, big_file)
        t0, p0 = inst.tun_stat("statistics/tx_bytes"), inst.tun_stat("statistics/tx_packets")
        up = iperf(inst)
        up_avg = (inst.tun_stat("statistics/tx_bytes") - t0) / max(1, inst.tun_stat("statistics/tx_packets") - p0)
        down = iperf(inst, "-R")
        assert inst.counters()["tun super-packets in"] == 0
        print(f"\n[netns] MTU 65535: iperf3 up {up / 1e6:.0f} Mbit/s, down {down / 1e6:.0f}; "
              f"average packet in {up_avg:.0f} B, out {down_avg:.0f} B")
        assert down_avg > 9000 and up_avg > 9000, (down_avg, up_avg)
    finally:
        stop(inst)


def test_offload_moves_tcp_in_super_packets_at_mtu_1500(net, embargo_bin, big_file):
    inst = start(net, embargo_bin, "o")
    try:
        assert "refused TUN offloads" not in inst.output(), inst.output()
        assert inst.tun_stat("mtu") == 1500
        down_avg = download(net, inst, big_file)
        up = iperf(inst)
        down = iperf(inst, "-R")
        counters = inst.counters()
        print(f"\n[netns] offload at MTU 1500: iperf3 up {up / 1e6:.0f} Mbit/s, "
              f"down {down / 1e6:.0f}; average packet out {down_avg:.0f} B; {counters}")
        # Super-packets both ways: the kernel's TSO into the engine, the engine's GSO out.
        assert counters["tun super-packets in"] > 0, counters
        assert counters["tun super-packets out"] > 0, counters
        assert down_avg > 9000, down_avg
    finally:
        stop(inst)
