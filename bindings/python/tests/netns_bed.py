"""A tiny real-network bed for the tunnel tests (root only).

    host namespace (this process: Embargo's upstream sockets, the servers)
      veth emf<pid> 10.232.0.1/32  HTTP server :8080, dnsmasq :53 (allowed.test -> 10.232.0.1)
    phone namespace emfp-<pid> (the "apps")
      TUN emt0 10.232.9.2/24, default route through it; opened by Embargo's linux_open_tun

Packets the phone sends go into the TUN, Embargo decides and relays allowed traffic with its
own sockets in the host namespace, as a VPN app's protected sockets do on a phone. Nothing
leaves the machine: 10.232.0.1 is a local address of this namespace.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
import time

SERVER_IP = "10.232.0.1"
TUN_IP = "10.232.9.2"
TUN_NAME = "emt0"
PORT = 8080


def sh(*cmd, check=True, timeout=20):
    cp = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)
    if check and cp.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} -> {cp.returncode}\n{cp.stdout}{cp.stderr}")
    return cp


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = b"hello from the server\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Bed:
    def __init__(self):
        pid = format(os.getpid(), "x")
        self.ns = f"emfp-{pid}"
        self.dummy = f"emf{pid}"[:14]
        self.dnsmasq = None
        self.http = None

    def up(self):
        self.down()
        # A veth pair (both ends here) only to carry the servers' local address: `dummy` is
        # not built into every kernel, veth is (the netns harness needs it too).
        sh("ip", "link", "add", self.dummy, "type", "veth", "peer", "name", self.dummy + "p")
        sh("ip", "addr", "add", f"{SERVER_IP}/32", "dev", self.dummy)
        sh("ip", "link", "set", self.dummy, "up")
        sh("ip", "link", "set", self.dummy + "p", "up")
        sh("ip", "netns", "add", self.ns)
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        self.http = http.server.ThreadingHTTPServer((SERVER_IP, PORT), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.dnsmasq = subprocess.Popen(
            ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
             "--bind-interfaces", f"--listen-address={SERVER_IP}", "--port=53", "--pid-file",
             "--user=root", f"--address=/allowed.test/{SERVER_IP}", "--log-facility=-"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        if self.dnsmasq.poll() is not None:
            raise RuntimeError("dnsmasq did not start")

    def configure_tun(self):
        """After Embargo opened the TUN inside the namespace: address, up, default route."""
        sh("ip", "-n", self.ns, "addr", "add", f"{TUN_IP}/24", "dev", TUN_NAME)
        sh("ip", "-n", self.ns, "link", "set", TUN_NAME, "up")
        sh("ip", "-n", self.ns, "route", "add", "default", "dev", TUN_NAME)

    def run_in_phone(self, *cmd, timeout=20):
        return sh("ip", "netns", "exec", self.ns, *cmd, check=False, timeout=timeout)

    def down(self):
        if self.http:
            self.http.shutdown()
            self.http.server_close()
            self.http = None
        if self.dnsmasq:
            self.dnsmasq.terminate()
            try:
                self.dnsmasq.wait(3)
            except subprocess.TimeoutExpired:
                self.dnsmasq.kill()
            self.dnsmasq = None
        sh("ip", "netns", "del", self.ns, check=False)
        sh("ip", "link", "del", self.dummy, check=False)


def can_run() -> str | None:
    """Why the bed cannot run here, or None."""
    if os.geteuid() != 0:
        return "not root: the tunnel test needs network namespaces and a TUN device"
    for tool in ("ip", "dnsmasq", "dig", "curl"):
        if not shutil.which(tool):
            return f"{tool} is not installed (tests/install-deps.sh installs it)"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing"
    return None
