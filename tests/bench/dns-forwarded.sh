#!/usr/bin/env bash
# tests/bench/dns-forwarded.sh: forwarded DNS throughput (the target "DNS qps, forwarded >= 0.9x
# passthrough"). The shared bench's DNS phase repeats 16 names, so through Embargo it measures
# the answer cache; here every query is a name never asked before (`uN.allowed.test A`, 400k of
# them), so Embargo must decide it, forward it upstream, learn the answer and record the event.
#
#   sudo tests/bench/dns-forwarded.sh [PROG...]
#
# PROG is `passthrough` (the shared bench's C TUN pass-through, the ceiling) or
# `embargo[+KIND][=BINARY]` (default BINARY: $CARGO_TARGET_DIR/release/embargo, not built here);
# default "passthrough embargo". Plain `embargo` forwards to dnsmasq directly; with +KIND it
# forwards to an unbound in the inet namespace (10.200.2.53, forwarding to the same dnsmasq,
# cache off, a test CA made here with openssl) over KIND: `plain` (UDP 53), `tls`
# (DNS-over-TLS, 853) or `https` (DNS-over-HTTPS, HTTP/2, 8443), so the three kinds compare
# over the same resolver chain. Runs are interleaved (A B A B ...), RUNS (3) rounds, the
# program restarted for each run (fresh cache: every name is unique within a run). Prints each
# run with the CPU microseconds per query (utime+stime of the program during dnsperf) and how
# they split over its busiest threads, then per program the median qps and CPU per query, and
# each program's median as a ratio to the first's.
#
# Topology: the shared bench's netns.sh (read-only, sourced as a command) in namespaces of our
# own (NS_PHONE=dnsph, NS_INET=dnsin, BENCH_STATE=/tmp/dnsfwd: they do not collide with a
# concurrent run of the shared bench). Its dnsmasq (cache off) answers *.allowed.test itself.
# Phone's default route goes through tun0 while a program runs. Everything is torn down at exit.
#
# Env: RUNS (3), SECS (dnsperf -l, 5), CLIENTS (-c, 4), INFLIGHT (-q, 20), NAMES (400000),
#      BENCH_DIR (the shared bench, an input from outside this repository: default
#      ../shared/bench beside the clone), BENCH_LOCK (one benchmark at a time: default
#      $TMPDIR/embargo-bench.lock), EMBARGO_ARGS (extra flags for embargo run),
#      PERF=PREFIX (perf record -g of the program during each dnsperf run, to PREFIX-pI-RUN.data;
#      the perf CPU counts in cpu/query; PERF_CALLGRAPH="--call-graph dwarf" for Rust stacks,
#      PERF_FREQ, default 1999 Hz), SYSCALLS=1 (system calls and context switches per query,
#      counted with perf stat over the dnsperf run).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=${BENCH_DIR:-$REPO/../shared/bench}
[[ $(id -u) == 0 ]] || { echo "needs root (network namespaces, TUN devices)" >&2; exit 2; }
export NS_PHONE=${NS_PHONE:-dnsph} NS_INET=${NS_INET:-dnsin} BENCH_STATE=${BENCH_STATE:-/tmp/dnsfwd}
RUNS=${RUNS:-3}; SECS=${SECS:-5}; CLIENTS=${CLIENTS:-4}; INFLIGHT=${INFLIGHT:-20}; NAMES=${NAMES:-400000}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
PROGS=("$@"); [[ ${#PROGS[@]} -gt 0 ]] || PROGS=(passthrough embargo)
SRV=10.200.2.1
OUT=$(mktemp -d /tmp/dnsfwd-out.XXXXXX)
log() { echo "[dns-fwd $(date +%T)] $*" >&2; }
# shellcheck source=tests/bench/lib.sh
source "$REPO/tests/bench/lib.sh"
require_bench
bench_lock
trap cleanup EXIT INT TERM

"$BENCH/netns.sh" up
log "writing $NAMES unique names"
awk -v n="$NAMES" 'BEGIN { for (i = 0; i < n; i++) printf "u%d.allowed.test A\n", i }' > "$OUT/names.txt"

# The resolver of the +KIND programs: unbound serving plain, DoT and DoH with a CA made here.
UNB=10.200.2.53
UNBOUND_PID=
if [[ " ${PROGS[*]} " == *" embargo+"* ]]; then
  command -v unbound >/dev/null || { echo "no unbound: run tests/install-deps.sh netns" >&2; exit 2; }
  ssl() { openssl "$@" >/dev/null 2>&1; }
  ssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" -keyout "$OUT/ca.key" \
    -out "$OUT/ca.pem" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign
  ssl req -newkey rsa:2048 -nodes -subj /CN=dns.bench.test -keyout "$OUT/server.key" -out "$OUT/server.csr"
  printf 'subjectAltName=DNS:dns.bench.test\nextendedKeyUsage=serverAuth\n' > "$OUT/san.ext"
  ssl x509 -req -in "$OUT/server.csr" -CA "$OUT/ca.pem" -CAkey "$OUT/ca.key" -CAcreateserial \
    -days 2 -out "$OUT/server.pem" -extfile "$OUT/san.ext"
  ip netns exec "$NS_INET" ip addr add $UNB/32 dev lo 2>/dev/null || true
  {
    echo "server:"
    for line in "verbosity: 0" "use-syslog: no" 'username: ""' 'chroot: ""' "directory: \"$OUT\"" \
      'pidfile: ""' "interface: $UNB@53" "interface: $UNB@853" "interface: $UNB@8443" \
      "tls-port: 853" "https-port: 8443" "tls-service-key: \"$OUT/server.key\"" \
      "tls-service-pem: \"$OUT/server.pem\"" "access-control: 0.0.0.0/0 allow" \
      "do-not-query-localhost: no" "do-ip6: no" 'module-config: "iterator"' \
      'local-zone: "test." nodefault' "cache-max-ttl: 0" "num-queries-per-thread: 4096"; do
      echo "  $line"
    done
    printf 'forward-zone:\n  name: "."\n  forward-addr: %s\n' "$SRV"
  } > "$OUT/unbound.conf"
  setsid ip netns exec "$NS_INET" unbound -d -c "$OUT/unbound.conf" > "$OUT/unbound.log" 2>&1 &
  UNBOUND_PID=$!
  trap 'kill -TERM -- -$UNBOUND_PID 2>/dev/null || true; cleanup' EXIT INT TERM
  for _ in $(seq 1 50); do
    ip netns exec "$NS_INET" ss -Hltn | grep -q "$UNB:8443" && break
    sleep 0.2
  done
fi

# CPU ticks (utime+stime) of every thread of a process tree rooted at $1.
cpu_ticks() {
  local pids; pids=$(pgrep -g "$1" 2>/dev/null || echo "$1")
  local p s=0 t
  for p in $pids; do
    t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0); s=$((s + t))
  done
  echo "$s"
}

start_prog() { # start_prog PROG RUN
  local prog=$1 run=$2 cmd
  case $prog in
    passthrough) cmd="$BENCH/passthrough/launch.sh" ;;
    embargo|embargo=*|embargo+*)
      local bin=$TARGET/release/embargo kind=${prog%%=*} upstream
      [[ $prog == *=* ]] && bin=${prog#*=}
      case $kind in
        embargo) upstream="--dns-upstream $SRV" ;;
        embargo+plain) upstream="--dns-upstream $UNB" ;;
        embargo+tls) upstream="--dns-upstream tls://dns.bench.test@$UNB --dns-roots $OUT/ca.pem" ;;
        embargo+https) upstream="--dns-upstream https://dns.bench.test@$UNB:8443/dns-query --dns-roots $OUT/ca.pem" ;;
        *) echo "unknown upstream kind in $prog (plain, tls, https)" >&2; exit 2 ;;
      esac
      local state=$BENCH_STATE/embargo-$run-$RANDOM; mkdir -p "$state"
      cmd="$bin run --tun tun0 --fwmark 42 --no-routes $upstream --state-dir $state ${EMBARGO_ARGS:-}" ;;
    *) echo "unknown program $prog" >&2; exit 2 ;;
  esac
  launch "$OUT/prog-$run.log" "$cmd"
  for _ in $(seq 1 50); do
    pin dig +short +time=1 +tries=1 @$SRV warmup.allowed.test A | grep -q "$SRV" && return 0
    sleep 0.2
  done
  log "no DNS answer through $prog"; cat "$OUT/prog-$run.log" >&2; exit 1
}

declare -A QPS CPU
for r in $(seq 1 "$RUNS"); do
  for i in "${!PROGS[@]}"; do
    prog=${PROGS[$i]}; tag=p$i-$r
    start_prog "$prog" "$tag"
    sleep 1  # let startup work (rule loading, history open) finish before measuring
    hz=$(getconf CLK_TCK); c0=$(cpu_ticks "$PROG_PID")
    TPID=$(pgrep -g "$PROG_PID" | tail -1); thread_cpu_ns "$TPID" > "$OUT/threads0-$tag"
    [[ -z ${SYSCALLS:-} ]] || { perf stat -x, -e 'raw_syscalls:sys_enter' -e 'syscalls:sys_enter_epoll_wait' -e 'syscalls:sys_enter_read' -e 'syscalls:sys_enter_write' -e 'syscalls:sys_enter_sendto' -e 'syscalls:sys_enter_recvfrom' -e 'syscalls:sys_enter_sendmmsg' -e 'syscalls:sys_enter_recvmmsg' -e 'syscalls:sys_enter_futex' -e 'context-switches' -p "$PROG_PID" -o "$OUT/syscalls-$tag.csv" -- sleep "$SECS" & PERF_PID=$!; }
    [[ -z ${PERF:-} ]] || { perf record -q -F ${PERF_FREQ:-1999} ${PERF_CALLGRAPH:--g} -p "$PROG_PID" -o "$PERF-$tag.data" -- sleep "$SECS" >/dev/null 2>&1 & PERF_PID=$!; }
    pin timeout $((SECS + 20)) dnsperf -s $SRV -d "$OUT/names.txt" -l "$SECS" -c "$CLIENTS" -q "$INFLIGHT" \
      > "$OUT/dnsperf-$tag.txt" 2>&1 || true
    c1=$(cpu_ticks "$PROG_PID")
    thread_cpu_ns "$TPID" > "$OUT/threads1-$tag"
    [[ -z ${PERF:-}${SYSCALLS:-} ]] || wait "$PERF_PID"
    [[ -z ${SYSCALLS:-} ]] || awk -F, -v n="$(awk '/Queries completed:/ {print $3}' "$OUT/dnsperf-$tag.txt")" \
      'NF > 2 && $1 ~ /^[0-9]/ { printf "    %-34s %7.2f per query\n", $3, $1 / n * 5 / 5 }' "$OUT/syscalls-$tag.csv"
    stop_prog
    pin ip route replace default via 10.200.1.1 dev veth-ph
    q=$(awk '/Queries per second:/ {print $4}' "$OUT/dnsperf-$tag.txt")
    n=$(awk '/Queries completed:/ {print $3}' "$OUT/dnsperf-$tag.txt")
    lost=$(awk '/Queries lost:/ {print $3}' "$OUT/dnsperf-$tag.txt")
    us=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" -v n="${n:-0}" 'BEGIN { if (n > 0) printf "%.1f", (b - a) / hz * 1e6 / n; else print "nan" }')
    [[ -n $q ]] || { log "dnsperf failed for $prog:"; cat "$OUT/dnsperf-$tag.txt" >&2; exit 1; }
    printf 'run %d  %-40s qps %10.0f  lost %s  cpu/query %s us\n' "$r" "$prog" "$q" "$lost" "$us"
    # CPU per query of each thread (name as in /proc/PID/task/*/comm), busiest first.
    awk -v n="${n:-0}" 'NR == FNR { a[$1] = $2; next }
      n > 0 && $2 - a[$1] > 0 { printf "%s %.1f\n", $1, ($2 - a[$1]) / 1e3 / n }' \
      "$OUT/threads0-$tag" "$OUT/threads1-$tag" | sort -k2 -gr | head -4 |
      awk '{ printf "%s%s %s us", (NR > 1 ? ", " : "        threads: "), $1, $2 } END { if (NR) print "" }'
    QPS[$prog]+="$q "; CPU[$prog]+="$us "
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
first=
echo
for prog in "${PROGS[@]}"; do
  m=$(echo "${QPS[$prog]}" | median); c=$(echo "${CPU[$prog]}" | median)
  [[ -n $first ]] || first=$m
  printf 'median %-40s qps %10.0f  cpu/query %6s us  ratio %.3f\n' "$prog" "$m" "$c" "$(awk -v a="$m" -v b="$first" 'BEGIN {print a / b}')"
done
log "raw outputs in $OUT"
