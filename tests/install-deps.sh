#!/usr/bin/env bash
# Installs every Debian package and tool the test suites need. Idempotent: skips what is present.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
want() { have "$1" || need+=("$2"); }
want ip iproute2
want curl curl
want dig dnsutils
want dnsmasq dnsmasq-base
want nginx nginx-light
# The HTTP proxy of the netns proxy tests (the binary alone: no service is installed).
want tinyproxy tinyproxy-bin
want iperf3 iperf3
want openssl openssl
want sqlite3 sqlite3
want python3 python3
want chromium chromium
want iptables iptables
want ss iproute2
want nstat iproute2
# The bindings suites: Maven (with a JRE) compiles the generated Kotlin and runs JUnit.
want mvn maven
# The netns benchmark (tests/bench/run-bench.sh over ../shared/bench): load tools and the C passthrough.
want dnsperf dnsperf
want wrk wrk
want jq jq
want gcc gcc
if [ "${#need[@]}" -gt 0 ]; then
    echo "install-deps: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Keep package installs from starting system services on the host; the tests start their own.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# pytest for tests/netns, in the python3 that tests/run.sh uses (PyPI; Debian's python3-pytest
# would only serve /usr/bin/python3, which may not be the python3 on PATH).
python3 -c 'import pytest' 2>/dev/null || python3 -m pip install -q pytest \
    || { apt-get install -y -qq --no-install-recommends python3-pytest >/dev/null; }
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
