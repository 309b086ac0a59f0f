# tests/bench/lib.sh: what the scripts of this directory share (sourced, never run). The caller
# sets NS_PHONE, NS_INET and BENCH (the shared bench directory) first.

pin() { ip netns exec "$NS_PHONE" "$@"; }

# The program under test: its process group leader, and how to stop it and its TUN devices.
PROG_PID=
stop_prog() {
  [[ -n $PROG_PID ]] || return 0
  kill -TERM -- "-$PROG_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do [[ -d /proc/$PROG_PID ]] || break; sleep 0.1; done
  kill -KILL -- "-$PROG_PID" 2>/dev/null || true
  wait "$PROG_PID" 2>/dev/null || true
  PROG_PID=
  pin ip link del tun0 2>/dev/null || true
  ip netns exec "$NS_INET" ip link del tun1 2>/dev/null || true
}
cleanup() { stop_prog; "$BENCH/netns.sh" down >/dev/null 2>&1 || true; }

# launch LOG CMD: a fresh tun0 in the phone namespace (both Embargo and the passthrough attach
# to an existing one), then the shell command line CMD there in a process group of its own;
# returns once tun0 has a carrier and the phone's default route goes through it. Exits when
# CMD dies first, showing its log.
launch() {
  local log=$1 cmd=$2
  pin ip link del tun0 2>/dev/null || true
  pin ip tuntap add dev tun0 mode tun
  pin ip addr add 10.200.9.1/24 dev tun0
  pin ip link set tun0 mtu 1500 up
  setsid ip netns exec "$NS_PHONE" bash -c "ulimit -n 20000; exec $cmd" >"$log" 2>&1 </dev/null &
  PROG_PID=$!
  for _ in $(seq 1 100); do
    pin ip link show tun0 | grep -q NO-CARRIER || break
    [[ -d /proc/$PROG_PID ]] || { cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  pin ip route replace default dev tun0
}

# "comm nanoseconds" per thread name of process $1: CPU time on record in each thread's
# schedstat (threads of one name summed), sorted by name so that two snapshots pair line by
# line. Nanoseconds, not the 10 ms ticks of /proc/PID/stat: a few hundred requests of a
# thread that spends 200 us on each are only 6 ticks, too coarse to compare two builds.
thread_cpu_ns() {
  local t
  for t in /proc/"$1"/task/*; do
    printf '%s %s\n' "$(tr ' ' _ < "$t/comm" 2>/dev/null)" "$(cut -d' ' -f1 "$t/schedstat" 2>/dev/null)"
  done | awk 'NF == 2 { s[$1] += $2 } END { for (c in s) print c, s[c] }' | sort
}

# require_bench: stops, saying so, when the shared benchmark is not at $BENCH. It is the one
# input of these scripts from outside the repository: ../shared/bench beside the clone, or
# BENCH_DIR.
require_bench() {
  [[ -x $BENCH/netns.sh ]] || {
    echo "$(basename "$0"): the shared benchmark is missing: no $BENCH/netns.sh." >&2
    echo "It is not part of this repository: put it at ../shared/bench beside the clone, or set BENCH_DIR." >&2
    exit 2
  }
}

# bench_lock: one benchmark at a time on this machine (they share CPU, namespaces' addresses
# and the bench's ports). Holds the lock file BENCH_LOCK (default $TMPDIR/embargo-bench.lock,
# /tmp when TMPDIR is unset) until the script exits, waiting for it if another run holds it.
bench_lock() {
  local lock=${BENCH_LOCK:-${TMPDIR:-/tmp}/embargo-bench.lock}
  exec 9>"$lock"
  flock -n 9 || { echo "$(basename "$0"): waiting for $lock (another benchmark holds it)" >&2; flock 9; }
}
