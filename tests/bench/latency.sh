#!/usr/bin/env bash
# tests/bench/latency.sh: time to first byte over a real round trip (the target "with 40 ms
# round trip, TTFB <= passthrough + 1 ms p50"), Embargo against the C passthrough and the
# kernel path, interleaved round by round. Usage and environment: `usage` below.
set -euo pipefail

usage() {
  cat <<'USAGE'
tests/bench/latency.sh: time to first byte over a real round trip, interleaved A/B.

  sudo tests/bench/latency.sh PROG...

PROG: `kernel` (no TUN program: the phone's veth route), `passthrough` (the shared bench's C
      TUN pass-through), or LABEL=BINARY, or LABEL=BINARY:ARGS (extra `embargo run` flags).

Each round runs every PROG once, in the order given, each restarted with a fresh state
directory, and takes N samples of each load, one new connection (and for curl a new process)
per sample, time measured from the start of the connect:
  https   curl -k https://page.far.test/small (--resolve to the server: Embargo reads the SNI
          before it connects upstream), first byte of the response (TLS 1.3 handshake included)
  http    curl http://page.far.test/small (Host read before the upstream connect)
  banner  an SMTP server on port 25 writes "220 ..." on accept (server first: a port Embargo
          does not inspect); a Python client times connect() to the banner's first byte
Prints per round and PROG the p50 and p90 (ms) of each, then over all rounds, with each PROG's
p50 minus the passthrough's.

Topology: the shared bench's netns.sh in namespaces of our own (NS_PHONE=latph,
NS_INET=latin), plus a third, NS_FAR=latfar, holding the servers (nginx on 80 and 443 with a
self-signed certificate, the banner server on 25) at 10.200.4.1. `latin` routes to it through
a userspace delay line (tests/bench/delayline.c, built with gcc: this kernel has no netem)
that holds every packet DELAY_MS in each direction, so every path to the servers (the kernel's,
the passthrough's tun1, Embargo's marked sockets on the veth) has a round trip of 2 x DELAY_MS
(default 20: 40 ms) beyond what the path costs by itself.

Env: ROUNDS (3), N (50), DELAY_MS (20), LOADS ("https http banner"), BENCH_DIR (the shared
bench, an input from outside this repository: default ../shared/bench beside the clone),
BENCH_LOCK (one benchmark at a time: default $TMPDIR/embargo-bench.lock).
USAGE
}

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=${BENCH_DIR:-$REPO/../shared/bench}
[[ $# -ge 1 && $1 != -h && $1 != --help ]] || { usage >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "needs root (network namespaces, TUN devices)" >&2; exit 2; }
for tool in gcc nginx openssl curl python3 ip; do
  command -v "$tool" >/dev/null || { echo "missing $tool (tests/install-deps.sh netns, and gcc)" >&2; exit 2; }
done
export NS_PHONE=${NS_PHONE:-latph} NS_INET=${NS_INET:-latin} BENCH_STATE=${BENCH_STATE:-/tmp/latbench}
NS_FAR=${NS_FAR:-latfar}
ROUNDS=${ROUNDS:-3}; N=${N:-50}; DELAY_MS=${DELAY_MS:-20}; LOADS=${LOADS:-"https http banner"}
FAR=10.200.4.1
STATE=$BENCH_STATE/embargo-state
WORK=$(mktemp -d /tmp/latency-out.XXXXXX)  # kept: netns.sh down removes BENCH_STATE
# shellcheck source=tests/bench/lib.sh
source "$REPO/tests/bench/lib.sh"
require_bench
bench_lock

ifar() { ip netns exec "$NS_FAR" "$@"; }
iin() { ip netns exec "$NS_INET" "$@"; }
FAR_PIDS=()
teardown() {
  cleanup
  local p
  for p in "${FAR_PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  sleep 0.2
  ip netns del "$NS_FAR" 2>/dev/null || true
}
trap teardown EXIT INT TERM
"$BENCH/netns.sh" up >/dev/null
mkdir -p "$WORK/www" "$WORK/tmp"

# ---- the far namespace, behind the delay line
ip netns del "$NS_FAR" 2>/dev/null || true
ip netns add "$NS_FAR"
ifar ip link set lo up
ifar ip addr add $FAR/32 dev lo
ifar ip tuntap add dev dl1 mode tun
iin ip link del dl0 2>/dev/null || true
iin ip tuntap add dev dl0 mode tun
gcc -O2 -pthread -Wall -o "$WORK/delayline" "$REPO/tests/bench/delayline.c"
setsid "$WORK/delayline" $((DELAY_MS * 1000)) "/var/run/netns/$NS_INET" dl0 \
  "/var/run/netns/$NS_FAR" dl1 > "$WORK/delayline.log" 2>&1 < /dev/null &
FAR_PIDS+=($!)
for _ in $(seq 1 50); do ifar ip link show dl1 | grep -q NO-CARRIER || break; sleep 0.1; done
ifar ip link set dl1 mtu 1500 up
ifar ip route add 10.200.0.0/16 dev dl1
ifar sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.dl1.rp_filter=0
iin ip link set dl0 mtu 1500 up
iin ip route replace 10.200.4.0/24 dev dl0
# latin forwards between the phone's paths (veth-in, the passthrough's tun1) and dl0; it has no
# default route, so nothing leaves the namespaces.
iin sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0

# ---- servers in far: nginx (80, 443 with a self-signed certificate), the SMTP banner (25)
head -c 1024 /dev/urandom > "$WORK/www/small"
chmod 755 "$WORK" "$WORK/www"; chmod 644 "$WORK/www/small"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=page.far.test \
  -addext subjectAltName=DNS:page.far.test -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1
cat > "$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx.pid;
daemon off;
error_log $WORK/nginx.err warn;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/octet-stream;
  client_body_temp_path $WORK/tmp/body;
  proxy_temp_path $WORK/tmp/proxy;
  fastcgi_temp_path $WORK/tmp/fastcgi;
  uwsgi_temp_path $WORK/tmp/uwsgi;
  scgi_temp_path $WORK/tmp/scgi;
  server {
    listen $FAR:80;
    listen $FAR:443 ssl;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.3;
    root $WORK/www;
    location / { }
  }
}
EOF
setsid ip netns exec "$NS_FAR" nginx -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/nginx.err" \
  > "$WORK/nginx.out" 2>&1 < /dev/null &
FAR_PIDS+=($!)
cat > "$WORK/banner.py" <<'EOF'
import asyncio, sys

async def serve(reader, writer):
    writer.write(b"220 far.test ESMTP latency bench\r\n")
    await writer.drain()
    await reader.read(4096)  # the client closes after the first byte
    writer.close()

async def main():
    server = await asyncio.start_server(serve, sys.argv[1], 25, backlog=512)
    async with server:
        await server.serve_forever()

asyncio.run(main())
EOF
setsid ip netns exec "$NS_FAR" python3 "$WORK/banner.py" $FAR > "$WORK/banner.log" 2>&1 < /dev/null &
FAR_PIDS+=($!)
for _ in $(seq 1 50); do
  ifar ss -Hltn | grep -q "$FAR:443" && ifar ss -Hltn | grep -q "$FAR:25" && break
  sleep 0.2
done

# Samples: "connect_ms first_byte_ms" per line, both from the start of the connect.
cat > "$WORK/banner_client.py" <<'EOF'
import socket, sys, time
host, n = sys.argv[1], int(sys.argv[2])
for _ in range(n):
    s = socket.socket()
    s.settimeout(5)
    t0 = time.perf_counter()
    try:
        s.connect((host, 25))
        t1 = time.perf_counter()
        s.recv(1)
        t2 = time.perf_counter()
        print(f"{(t1 - t0) * 1e3:.3f} {(t2 - t0) * 1e3:.3f}")
    except OSError:
        print("nan nan")
    s.close()
EOF
sample() { # sample LOAD
  case $1 in
    https|http)
      local scheme=$1 port=443; [[ $1 == http ]] && port=80
      for _ in $(seq 1 "$N"); do
        if t=$(pin curl -sk -o /dev/null --max-time 5 --resolve "page.far.test:$port:$FAR" \
          -w '%{time_connect} %{time_starttransfer}' "$scheme://page.far.test/small"); then
          awk '{printf "%.3f %.3f\n", $1 * 1e3, $2 * 1e3}' <<< "$t"
        else
          echo "nan nan"
        fi
      done ;;
    banner) pin python3 "$WORK/banner_client.py" $FAR "$N" ;;
  esac
}

start_prog() {
  local prog=$1 cmd
  rm -rf "$STATE"; mkdir -p "$STATE"
  case $prog in
    kernel) pin ip route replace default via 10.200.1.1 dev veth-ph; return 0 ;;
    passthrough) cmd=$BENCH/passthrough/launch.sh ;;
    *)
      local spec=${prog#*=} args=
      [[ $spec == *:* ]] && args=${spec#*:}
      cmd="${spec%%:*} run --tun tun0 --fwmark 42 --no-routes --dns-upstream 10.200.2.1 --state-dir $STATE $args" ;;
  esac
  launch "$BENCH_STATE/prog.log" "$cmd"
  for _ in $(seq 1 50); do
    pin curl -s -o /dev/null --max-time 1 "http://$FAR/small" && return 0
    sleep 0.1
  done
  echo "no HTTP answer through $prog" >&2; cat "$BENCH_STATE/prog.log" >&2; exit 1
}

RESULTS=$WORK/samples.txt
: > "$RESULTS"
echo "delay ${DELAY_MS} ms each way (round trip $((2 * DELAY_MS)) ms), $N samples per load, $ROUNDS rounds"
for round in $(seq 1 "$ROUNDS"); do
  for prog in "$@"; do
    start_prog "$prog"
    line="$round ${prog%%=*}"
    for load in $LOADS; do
      sample "$load" | awk -v r="$round" -v p="${prog%%=*}" -v l="$load" '{print r, p, l, $1, $2}' > "$WORK/cur"
      cat "$WORK/cur" >> "$RESULTS"
      line+=$(sort -g -k5 "$WORK/cur" | awk -v l="$load" '$5 != "nan" {t[++n] = $5}
        END {printf " | %s p50 %.2f p90 %.2f", l, t[int(n * 0.5) + 1], t[int(n * 0.9) + 1]}')
    done
    [[ $prog == kernel ]] || stop_prog
    pin ip route replace default via 10.200.1.1 dev veth-ph
    echo "$line"
  done
done

echo
python3 - "$RESULTS" "$@" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
progs = [p.split("=")[0] for p in sys.argv[2:]]
loads = []
for r in rows:
    if r[2] not in loads:
        loads.append(r[2])
def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * q))] if v else float("nan")
def vals(prog, load, rnd=None):
    return [float(r[4]) for r in rows if r[1] == prog and r[2] == load
            and (rnd is None or r[0] == rnd) and r[4] != "nan"]
rounds = sorted({r[0] for r in rows}, key=int)
print("all rounds: time to first byte, ms (p10 / p50 / p90; p50 - passthrough's p50, and that"
      " difference per round; p10 - passthrough's p10, the figure load on the machine moves least)")
for load in loads:
    base = vals("passthrough", load)
    for prog in progs:
        v = vals(prog, load)
        fails = sum(1 for r in rows if r[1] == prog and r[2] == load and r[4] == "nan")
        extra = ""
        if base and prog != "passthrough":
            extra = f"  p10 {pct(v, 0.1) - pct(base, 0.1):+.2f}"
            per = [pct(vals(prog, load, n), 0.5) - pct(vals("passthrough", load, n), 0.5)
                   for n in rounds]
            extra += f"  p50 {pct(v, 0.5) - pct(base, 0.5):+.2f} (rounds " + \
                    ", ".join(f"{d:+.2f}" for d in per) + ")"
        print(f"{load:7s} {prog:14s} p10 {pct(v, 0.1):7.2f}  p50 {pct(v, 0.5):7.2f}  p90 {pct(v, 0.9):7.2f}"
              f"  n {len(v)}{f'  failed {fails}' if fails else ''}{extra}")
EOF
echo "raw samples: $RESULTS (round prog load connect_ms first_byte_ms)" >&2
