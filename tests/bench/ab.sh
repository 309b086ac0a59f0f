#!/usr/bin/env bash
# tests/bench/ab.sh: interleaved A/B of Embargo builds (and the C passthrough) on one load, with
# the figures the shared bench does not give. Usage and environment: `usage` below.
set -euo pipefail

usage() {
  cat <<'USAGE'
tests/bench/ab.sh: interleaved A/B of Embargo builds (and the C passthrough) on one load, with
the figures the shared bench does not give: CPU per request of each of Embargo's threads, how
many requests the history names with their app, and peak RSS. Built for before/after
comparisons on a machine whose absolute speed drifts: every round runs every program once, in
the order given, each restarted with a fresh state directory.

  sudo tests/bench/ab.sh LOAD PROG...

LOAD: `http` (N sequential `curl`s of the bench's small page, a new connection and a new
      process each: p50 of time_total, time_connect and time_starttransfer), or
      `wrk` (wrk -t2 -c1000 for SECS seconds over keep-alive connections: requests/s, errors), or
      `conns` (CONNS concurrent connections, default 10000, all held open at once: each sends a
      request to tests/bench/conns.py's server on port PORT (8081, connect-first; 8080 is
      inspected) and reads its answer, then a second once all are answered; served and errors,
      and the peak RSS with all of them open), or
      `iperf` (iperf3, one TCP stream up then one down, SECS seconds each: Mbit/s).
PROG: `passthrough` (the shared bench's C TUN pass-through), or LABEL=BINARY, or
      LABEL=BINARY:ARGS (extra `embargo run` flags, e.g. `nolookup=target/release/embargo:--app-wait-ms 0`).

Topology: the shared bench's netns.sh in namespaces of our own (NS_PHONE=abph, NS_INET=abin),
so it never collides with a run of the shared bench. Env: ROUNDS (3), N (300), SECS (8),
BENCH_DIR (the shared bench, an input from outside this repository: default ../shared/bench
beside the clone), BENCH_LOCK (one benchmark at a time: default $TMPDIR/embargo-bench.lock).
USAGE
}

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=${BENCH_DIR:-$REPO/../shared/bench}
[[ $# -ge 2 ]] || { usage >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "needs root (network namespaces, TUN devices)" >&2; exit 2; }
LOAD=$1; shift
[[ $LOAD == http || $LOAD == wrk || $LOAD == conns || $LOAD == iperf ]] || { echo "LOAD is http, wrk, conns or iperf" >&2; exit 2; }
export NS_PHONE=${NS_PHONE:-abph} NS_INET=${NS_INET:-abin} BENCH_STATE=${BENCH_STATE:-/tmp/ab-bench}
ROUNDS=${ROUNDS:-3}; N=${N:-300}; SECS=${SECS:-8}; CONNS=${CONNS:-10000}; PORT=${PORT:-8081}
SRV=10.200.2.1
STATE=$BENCH_STATE/embargo-state
# shellcheck source=tests/bench/lib.sh
source "$REPO/tests/bench/lib.sh"
require_bench
bench_lock

trap cleanup EXIT INT TERM
mkdir -p "$BENCH_STATE"
"$BENCH/netns.sh" up >/dev/null
if [[ $LOAD == conns ]]; then
  setsid ip netns exec "$NS_INET" bash -c "ulimit -n $((CONNS + 1000)); exec python3 $REPO/tests/bench/conns.py serve $PORT" \
    >"$BENCH_STATE/conns-server.log" 2>&1 </dev/null &
  CONNS_SERVER=$!
  trap 'kill -- -$CONNS_SERVER 2>/dev/null; cleanup' EXIT INT TERM
fi

# Starts PROG (see above) with a fresh state directory; returns once it serves the small page.
start_prog() {
  local prog=$1 cmd
  rm -rf "$STATE"; mkdir -p "$STATE"
  if [[ $prog == passthrough ]]; then
    cmd=$BENCH/passthrough/launch.sh
  else
    local spec=${prog#*=} args=
    [[ $spec == *:* ]] && args=${spec#*:}
    cmd="${spec%%:*} run --tun tun0 --fwmark 42 --no-routes --dns-upstream $SRV --state-dir $STATE $args"
  fi
  launch "$BENCH_STATE/prog.log" "$cmd"
  for _ in $(seq 1 50); do
    pin curl -s -o /dev/null --max-time 1 "http://$SRV/small" && return 0
    sleep 0.1
  done
  echo "no HTTP answer through $prog" >&2; cat "$BENCH_STATE/prog.log" >&2; exit 1
}

# The process that owns tun0's traffic: Embargo itself or the passthrough's tunpass.
target_pid() { pgrep -f "state-dir $STATE|tunpass tun0" | head -1; }

# Per-thread CPU microseconds per request between two thread_cpu_ns snapshots.
cpu_per_request() {
  paste <(echo "$1") <(echo "$2") | awk -v n="$3" \
    '{d = $4 - $2; if (d > 0) printf " %s %.0fus", $1, d / 1e3 / n}'
}

http_load() {
  local i
  for i in $(seq 1 "$N"); do
    pin curl -s -o /dev/null --max-time 5 -w '%{time_connect} %{time_starttransfer} %{time_total}\n' "http://$SRV/small"
  done | sort -n -k3 | awk '{c[NR]=$1; s[NR]=$2; t[NR]=$3}
    END {m = int(NR / 2) + 1; printf "p50 %.3f ms (connect %.3f, first byte %.3f)", t[m]*1000, c[m]*1000, s[m]*1000}'
}

for round in $(seq 1 "$ROUNDS"); do
  for prog in "$@"; do
    start_prog "$prog"
    pid=$(target_pid)
    before=$(thread_cpu_ns "$pid")
    if [[ $LOAD == http ]]; then
      result=$(http_load); requests=$N
    elif [[ $LOAD == iperf ]]; then
      up=$(pin iperf3 -c $SRV -p 5201 -t "$SECS" -J | jq '.end.sum_received.bits_per_second / 1e6 | floor')
      down=$(pin iperf3 -c $SRV -p 5201 -t "$SECS" -R -J | jq '.end.sum_received.bits_per_second / 1e6 | floor')
      result="up $up Mbit/s, down $down Mbit/s"; requests=1
    elif [[ $LOAD == conns ]]; then
      result=$(pin bash -c "ulimit -n $((CONNS + 1000)); exec python3 $REPO/tests/bench/conns.py load $SRV $PORT $CONNS")
      requests=$CONNS
    else
      pin wrk -t 2 -c 1000 -d "${SECS}s" --timeout 5s "http://$SRV/small" > "$BENCH_STATE/wrk.txt" 2>&1 || true
      requests=$(grep -o "[0-9]* requests in" "$BENCH_STATE/wrk.txt" | cut -d" " -f1 || true)
      errors=$(grep -o "Socket errors.*\|Non-2xx.*" "$BENCH_STATE/wrk.txt" | tr '\n' ' ' || true)
      result="$(awk '/Requests\/sec/ {printf "%.0f req/s", $2}' "$BENCH_STATE/wrk.txt") errors: ${errors:-none}"
    fi
    after=$(thread_cpu_ns "$pid")
    hwm=$(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$pid/status")
    cpu=$(cpu_per_request "$before" "$after" "${requests:-1}")
    stop_prog
    named=
    if [[ $LOAD == http && -f $STATE/history.db ]]; then
      named=$(python3 - "$STATE/history.db" <<'EOF'
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT coalesce(app, '') LIKE '%curl', sum(count) FROM records WHERE port = 80 GROUP BY 1").fetchall()
counts = dict(rows)
print(f" | named {counts.get(1, 0)}/{sum(counts.values())}")
EOF
)
    fi
    printf '%s %-12s %s | peak RSS %s | CPU/request:%s%s\n' "$round" "${prog%%=*}" "$result" "$hwm" "$cpu" "$named"
  done
done
