"""The harness itself, on the kernel path (kphone's default route is a plain veth): proves that
the servers answer what the Embargo tests expect and that the server-side observations (access
logs, dnsmasq log, PassiveOpens) see traffic when it does arrive. If these fail, an Embargo
test's "nothing arrived" would prove nothing."""

from __future__ import annotations

import tempfile
from pathlib import Path

import harness
from harness import PAGE, chromium_dump
from harness import ALLOWED_IP, ALLOWED_IP6, ASN_IP, DNS_IP, TRACKER_IP, in_ns


def dig(net, *args):
    return in_ns(net.kphone, "dig", "+short", "+time=2", "+tries=1", f"@{DNS_IP}", *args).stdout


def test_dns_answers_a_aaaa_cname_and_https_over_udp_and_tcp(net):
    for transport in ([], ["+tcp"]):
        assert dig(net, *transport, "allowed.test", "A").split() == [ALLOWED_IP]
        assert dig(net, *transport, "www.allowed.test", "AAAA").split() == [ALLOWED_IP6]
        assert dig(net, *transport, "pixel.tracker.test", "A").split() == [TRACKER_IP]
        cname = dig(net, *transport, "cdn.partner.test", "A").split()
        assert cname == ["cdn.tracker.test.", TRACKER_IP]
        assert "alpn=\"h2\"" in dig(net, *transport, "allowed.test", "HTTPS") or "alpn=h2" in dig(
            net, *transport, "allowed.test", "HTTPS"
        )
    assert "pixel.tracker.test" in net.dns_log()


def test_https_and_http_byte_for_byte_with_vhost_logs(net):
    want = harness.sha256(net.www / "allowed" / "file.bin")
    for url in ("https://allowed.test/file.bin", "http://www.allowed.test/file.bin"):
        with tempfile.NamedTemporaryFile() as out:
            in_ns(net.kphone, "curl", "-sSf", "--max-time", "10", "--cacert", net.ca / "ca.pem", "-o", out.name, url)
            assert harness.sha256(Path(out.name)) == want
    assert any("GET /file.bin" in line for line in net.wait_log("allowed", 2))
    before = len(net.access_log("tracker"))
    in_ns(net.kphone, "curl", "-sSf", "--max-time", "5", "--cacert", net.ca / "ca.pem", "-o", "/dev/null", "https://pixel.tracker.test/p.gif")
    assert len(net.wait_log("tracker", before + 1)) == before + 1


def test_raw_address_and_sni_routing(net):
    # the "AS45090" address answers on the default vhost
    in_ns(net.kphone, "curl", "-sSf", "--max-time", "5", "-o", "/dev/null", f"http://{ASN_IP}/file.bin")
    assert any(ASN_IP in line for line in net.wait_log("default", 1))
    # a tracker SNI sent to the allowed address reaches the tracker vhost (what Embargo must stop)
    before = len(net.access_log("tracker"))
    in_ns(net.kphone, "curl", "-sSf", "--max-time", "5", "--cacert", net.ca / "ca.pem", "-o", "/dev/null",
          "--resolve", f"tracker.test:443:{ALLOWED_IP}", "https://tracker.test/p.gif")
    assert len(net.wait_log("tracker", before + 1)) == before + 1


def test_passive_opens_counts_every_connection(net):
    before = net.passive_opens()
    in_ns(net.kphone, "curl", "-s", "-o", "/dev/null", "--max-time", "5", f"http://{TRACKER_IP}/")
    assert net.passive_opens() >= before + 1


def test_iperf3_runs(net):
    import json

    out = in_ns(net.kphone, "iperf3", "-c", ALLOWED_IP, "-t", "2", "-J", timeout=20).stdout
    bps = json.loads(out)["end"]["sum_received"]["bits_per_second"]
    print(f"\n[netns] iperf3 on the kernel path: {bps / 1e6:.0f} Mbit/s (1 stream, 2 s)")
    assert bps > 0


def test_chromium_fetches_trackers_on_the_kernel_path(net, tmp_path):
    import shutil

    import pytest

    if shutil.which("chromium") is None:
        from conftest import loud_skip

        loud_skip("chromium not installed (apt-get install chromium)")
    dom = chromium_dump(net.kphone, tmp_path, PAGE)
    assert "The story" in dom
    assert "<title>tracked</title>" in dom  # the tracker script ran
    trackers = "\n".join(net.wait_log("tracker", 3))
    assert "GET /p.gif" in trackers and "GET /t.js" in trackers
    assert pytest  # keep the import used
