#!/usr/bin/env bash
# tests/bench/run-bench.sh: one batch of the shared netns benchmark (../shared/bench) with
# the kernel path, the C TUN passthrough (the ceiling for any TUN program) and Embargo, then
# the comparison table, Embargo's targets against the passthrough of the same batch,
# and Embargo's idle wake-ups. Needs root, the bench's Debian packages and gcc.
#
#   sudo tests/bench/run-bench.sh            # results in $BENCH_OUT (default /tmp/embargo-bench)
#
# Env: BENCH_OUT, BENCH_RUNS (raw runs, default /tmp/embargo-bench-runs), BATCH,
#      ONLY="kernel passthrough shadowsocks-rust tun2proxy embargo embargo-tuned embargo-blocking
#      embargo-plain passthrough-mtu embargo-mtu embargo-mtu-tuned embargo-offload-tuned"
#      (subset; default "kernel passthrough embargo embargo-tuned"; the two peers need
#      `../shared/bench/peers.sh build` first, PEERS=/tmp/peers), IDLE_SECS (10),
#      CARGO_TARGET_DIR (where the release build goes; default <repo>/target), NO_BUILD=1
#      (use the binary already there), BENCH_DIR (the shared bench, an input from outside this
#      repository: default ../shared/bench beside the clone), BENCH_LOCK (one benchmark at a
#      time: default $TMPDIR/embargo-bench.lock), MTU (the tunnel MTU of the *-mtu variants,
#      default 65535: the shared bench's TUN_MTU, which sizes tun0 and the passthrough's tun1),
#      LARGE_BUFFER (--tcp-buffer of the *-tuned large-packet variants, default 1048576).
# Large packets: `ONLY="kernel passthrough embargo embargo-plain passthrough-mtu embargo-mtu"`
# measures Embargo at MTU 1500 with Linux TUN offloads (the default: 64 KiB super-packets
# between the kernel and the engine), at 1500 without them (embargo-plain, one packet per
# MTU), and at MTU $MTU without them, against the passthrough at 1500 and at $MTU.
# The shared bench directory is read-only: everything it writes goes to BENCH_OUT/BENCH_RUNS.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=${BENCH_DIR:-$REPO/../shared/bench}
# shellcheck source=tests/bench/lib.sh
source "$REPO/tests/bench/lib.sh"
require_bench
[[ -x $BENCH/run.sh ]] || { echo "the shared benchmark at $BENCH has no run.sh" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "run-bench.sh needs root (network namespaces, TUN devices)" >&2; exit 2; }
bench_lock
export BENCH_OUT=${BENCH_OUT:-/tmp/embargo-bench}
export BENCH_RUNS=${BENCH_RUNS:-/tmp/embargo-bench-runs}
export BATCH=${BATCH:-embargo-$(date +%Y%m%d-%H%M)}
ONLY=${ONLY:-"kernel passthrough embargo embargo-tuned"}
IDLE_SECS=${IDLE_SECS:-10}
mkdir -p "$BENCH_OUT" "$BENCH_RUNS"
want() { [[ " $ONLY " == *" $1 "* ]]; }
log() { echo "[run-bench $(date +%T)] $*" >&2; }

for tool in iperf3 nginx dnsmasq dnsperf wrk curl dig jq gcc python3 ip; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install iproute2 iperf3 nginx-light dnsmasq-base dnsperf wrk curl dnsutils jq procps gcc python3" >&2; exit 2; }
done

# ---- release build of embargo
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
log "building embargo (release) into $TARGET"
[[ ${NO_BUILD:-} == 1 ]] || (cd "$REPO" && CARGO_TARGET_DIR=$TARGET cargo build --release -p embargo-linux --quiet)
BIN=$TARGET/release/embargo
STATE=$BENCH_OUT/embargo-state
mkdir -p "$STATE"

# Rules for the blocking variant: block the bench's tracker names only (dnsperf then gets half
# its answers from Embargo itself). The default run uses the built-in rules, which block none
# of the bench's names, so every DNS query is forwarded (the target "DNS qps, forwarded").
BLOCK_RULES=$BENCH_OUT/bench-block.txt
printf '||tracker.test^\n' > "$BLOCK_RULES"

LAUNCH_COMMON="$BIN run --tun tun0 --fwmark 42 --no-routes --dns-upstream 10.200.2.1 --state-dir $STATE"

# ---- the batch
want kernel && "$BENCH/run.sh" kernel none
want passthrough && "$BENCH/run.sh" passthrough "$BENCH/passthrough/launch.sh"
# The peers the targets compare against, as the shared bench configures them (build them once with
# `../shared/bench/peers.sh build`, into PEERS, default /tmp/peers).
for peer in shadowsocks-rust tun2proxy; do
  if want $peer; then
    [[ -x ${PEERS:-/tmp/peers}/bin/sslocal && -x ${PEERS:-/tmp/peers}/bin/tun2proxy-bin ]] ||
      { echo "peers not built: run $BENCH/peers.sh build (and apt-get install dante-server)" >&2; exit 2; }
    ONLY=$peer bash "$BENCH/peers.sh" run > /dev/null
  fi
done
want embargo && "$BENCH/run.sh" embargo "$LAUNCH_COMMON"
want embargo-blocking && "$BENCH/run.sh" embargo-blocking "$LAUNCH_COMMON --rules $BLOCK_RULES"
# No app-identity wait (the /proc lookup delays each new connection up to --app-wait-ms) and
# 256 KiB TCP buffers for busy flows: what Embargo can do when per-app rules are not needed.
want embargo-tuned && "$BENCH/run.sh" embargo-tuned "$LAUNCH_COMMON --app-wait-ms 0 --tcp-buffer 262144"
# Past the 1500-byte ceiling: tun0 (and the passthrough's tun1) at MTU, or offloads at 1500.
MTU=${MTU:-65535}
LARGE_BUFFER=${LARGE_BUFFER:-1048576}
want passthrough-mtu && TUN_MTU=$MTU "$BENCH/run.sh" "passthrough-mtu$MTU" "$BENCH/passthrough/launch.sh"
want embargo-plain && "$BENCH/run.sh" embargo-plain "$LAUNCH_COMMON --offload false"
want embargo-mtu && TUN_MTU=$MTU "$BENCH/run.sh" "embargo-mtu$MTU" "$LAUNCH_COMMON --mtu $MTU --offload false"
want embargo-mtu-tuned && TUN_MTU=$MTU "$BENCH/run.sh" "embargo-mtu$MTU-tuned" \
  "$LAUNCH_COMMON --mtu $MTU --offload false --app-wait-ms 0 --tcp-buffer $LARGE_BUFFER"
want embargo-offload-tuned && "$BENCH/run.sh" embargo-offload-tuned \
  "$LAUNCH_COMMON --app-wait-ms 0 --tcp-buffer $LARGE_BUFFER"

# ---- idle wake-ups: Embargo protecting an idle namespace, context switches of all its threads
idle_wakeups() {
  local ns=embench-idle-$$ pid t0 t1 s=0
  RUST_LOG=warn "$BIN" run --netns "$ns" --dns-upstream 127.0.0.1 --state-dir "$STATE" \
    > "$BENCH_OUT/idle.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 50); do ip netns list | grep -qw "$ns" && break; sleep 0.1; done
  sleep 10  # let setup settle (IPv6 link-up chatter: MLD reports, router solicitations)
  ctx() { cat /proc/"$pid"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s+=$2} END {print s+0}'; }
  t0=$(ctx); sleep "$IDLE_SECS"; t1=$(ctx)
  kill -TERM "$pid"; wait "$pid" || true
  ip netns list | grep -qw "$ns" && { echo "WARNING: namespace $ns left behind" >&2; ip netns del "$ns"; }
  awk -v a="$t0" -v b="$t1" -v s="$IDLE_SECS" 'BEGIN {printf "%.2f", (b-a)/s}'
}
IDLE="n/a"
want embargo && { log "idle wake-ups over ${IDLE_SECS}s"; IDLE=$(idle_wakeups); }

"$BENCH/netns.sh" down || true

# ---- tables
OUTFILE=$BENCH_OUT/embargo-$BATCH.md
{
  echo "# Embargo bench, batch $BATCH ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, kernel $(uname -r))"
  echo
  echo "Command: \`sudo tests/bench/run-bench.sh\` (ONLY=\"$ONLY\"); Embargo launched as:"
  echo "\`$LAUNCH_COMMON\`"
  echo
  python3 "$BENCH/lib/bench.py" compare "$BENCH_OUT/results.jsonl" "$BATCH"
  echo
  python3 - "$BENCH_OUT/results.jsonl" "$BATCH" "$IDLE" "$MTU" <<'PY'
import json, sys
path, batch, idle, mtu = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
by = {}
for line in open(path):
    if line.strip():
        r = json.loads(line)
        if r["batch"] == batch:
            by[r["name"]] = r["metrics"]
p = by.get("passthrough")
variants = [v for v in ("embargo", "embargo-tuned") if v in by]
print("## Targets: Embargo vs the C passthrough of the same batch\n")
print("| metric | passthrough | " + " | ".join(variants) + " | target |")
print("|---|---:|" + "---:|" * len(variants) + "---|")
def f(v):
    if v is None: return "-"
    if isinstance(v, (int, float)): return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}"
    return str(v)
def row(label, key, target, ok):
    pv = p.get(key) if p else None
    cells = []
    for name in variants:
        ev = by[name].get(key)
        met = "?" if pv is None or ev is None else ("met" if ok(ev, pv) else "MISSED")
        ratio = f" ({ev / pv:.2f}x)" if isinstance(ev, (int, float)) and isinstance(pv, (int, float)) and pv else ""
        cells.append(f"{f(ev)}{ratio} {met}")
    print(f"| {label} | {f(pv)} | " + " | ".join(cells) + f" | {target} |")
row("TCP 1 stream down, Mbit/s", "tcp1_down", ">= 0.75x", lambda e, p: e >= 0.75 * p)
row("TCP 1 stream up, Mbit/s", "tcp1_up", ">= 0.75x", lambda e, p: e >= 0.75 * p)
row("wrk -c1000 req/s", "wrk1000_rps", ">= 0.75x", lambda e, p: e >= 0.75 * p)
row("wrk -c1000 errors", "wrk1000_errors", "0", lambda e, p: e == 0)
row("DNS qps (forwarded)", "dns_qps", ">= 0.9x", lambda e, p: e >= 0.9 * p)
row("HTTP small time_total p50, ms", "http_total_p50", "<= passthrough + 0.1 ms", lambda e, p: e <= p + 0.1)
row("CPU s/GB, TCP 1 stream down", "tun_cpu_s_per_gb_tcp1_down", "<= 1.5x", lambda e, p: e <= 1.5 * p)
row("peak RSS, MiB", "tun_rss_mb", "<= 20 MiB", lambda e, p: e <= 20)
peers = [n for n in ("shadowsocks-rust", "tun2proxy") if n in by]
def best_peer_row(label, key):
    values = [(by[n][key], n) for n in peers if isinstance(by[n].get(key), (int, float))]
    if not values:
        return
    best, name = max(values)
    cells = []
    for v in variants:
        ev = by[v].get(key)
        if not isinstance(ev, (int, float)) or not best:
            cells.append("-")
            continue
        cells.append(f"{f(ev)} ({ev / best:.2f}x the best peer) " + ("met" if ev >= 2 * best else "MISSED"))
    print(f"| {label}: best peer ({name}) | {f(best)} | " + " | ".join(cells) + " | >= 2x the best peer |")
best_peer_row("TCP 1 stream down, Mbit/s", "tcp1_down")
best_peer_row("TCP 1 stream up, Mbit/s", "tcp1_up")
ok = "?" if idle == "n/a" else ("met" if float(idle) == 0 else "MISSED")
print(f"| idle wake-ups per second (embargo --netns, idle) | - | {idle} {ok} | " + "- | " * (len(variants) - 1) + "0 |")
# Large packets (issue 19): Embargo at MTU {mtu} >= 3x its own MTU-1500 figure and >= 0.75x the
# passthrough at that MTU; with offloads >= 5x the MTU-1500 passthrough.
# "embargo" is the default (offloads on); "embargo-plain" is one packet per MTU-1500 packet.
large = [n for n in (f"embargo-mtu{mtu}", f"embargo-mtu{mtu}-tuned", "embargo",
                     "embargo-offload-tuned") if n in by and "embargo-plain" in by]
if large:
    pm = by.get(f"passthrough-mtu{mtu}", {})
    e1 = by.get("embargo-plain", {})
    print(f"\n## Large packets: MTU {mtu} and offloads, same batch\n")
    print("| variant | metric | Mbit/s | CPU s/GB | vs embargo-plain at 1500 (>= 3x) | "
          f"vs passthrough at {mtu} (>= 0.75x) | vs passthrough at 1500 (offload: >= 5x) |")
    print("|---|---|---:|---:|---|---|---|")
    def ratio(v, base, need):
        if not isinstance(v, (int, float)) or not isinstance(base, (int, float)) or not base:
            return "-"
        return f"{v / base:.2f}x " + ("met" if v >= need * base else "MISSED")
    for name in large:
        for key, label in (("tcp1_down", "TCP 1 stream down"), ("tcp1_up", "TCP 1 stream up")):
            v = by[name].get(key)
            cpu = by[name].get(f"tun_cpu_s_per_gb_{key}")
            offload = not name.startswith("embargo-mtu")
            print(f"| {name} | {label} | {f(v)} | {f(cpu)} | {ratio(v, e1.get(key), 3)} | "
                  + ("- | " if offload else f"{ratio(v, pm.get(key), 0.75)} | ")
                  + (f"{ratio(v, p.get(key) if p else None, 5)} |" if offload else "- |"))
    for name in ("passthrough", f"passthrough-mtu{mtu}"):
        if name in by:
            print(f"| {name} | TCP 1 stream down / up | {f(by[name].get('tcp1_down'))} / "
                  f"{f(by[name].get('tcp1_up'))} | - | - | - | - |")
PY
} > "$OUTFILE"
cat "$OUTFILE"
log "written to $OUTFILE (raw runs in $BENCH_RUNS, per-run tables in $BENCH_OUT/results.md)"
