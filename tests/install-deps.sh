#!/usr/bin/env bash
# Installs the Debian packages and tools the test stages need. Idempotent: skips what is present.
#
#   tests/install-deps.sh [--check] [lint|unit|netns|bindings|android|ios|bench|all]...
#
# With no stage: all (every stage, and the netns benchmark's load tools). --check installs
# nothing: it prints what is missing and exits 1 if anything is (tests/run.sh uses it when
# installation is off). Installing needs root (apt-get).
set -euo pipefail
check=0
stages=()
for arg in "$@"; do
    case $arg in
        --check) check=1 ;;
        lint | unit | netns | bindings | android | ios | bench | all) stages+=("$arg") ;;
        *) echo "install-deps: unknown argument $arg (stages: lint unit netns bindings android ios bench all)" >&2; exit 2 ;;
    esac
done
[ "${#stages[@]}" -gt 0 ] || stages=(all)
wants() { [[ " ${stages[*]} " == *" $1 "* || " ${stages[*]} " == *" all "* ]]; }

need=()
missing=()
have() { command -v "$1" >/dev/null 2>&1; }
want() { have "$1" || { need+=("$2"); missing+=("$1"); }; }
if wants lint; then
    # rustfmt and clippy come from rustup, below.
    cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
    cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
fi
if wants unit || wants netns; then
    # The cross-crate tests of `cargo test` drive `ip` too (linux/tests/run_netns.rs).
    want ip iproute2
    want curl curl
    want python3 python3
fi
if wants netns; then
    want dig dnsutils
    want dnsmasq dnsmasq-base
    want nginx nginx-light
    # The HTTP proxy of the netns proxy tests (the binary alone: no service is installed).
    want tinyproxy tinyproxy-bin
    want iperf3 iperf3
    want openssl openssl
    want sqlite3 sqlite3
    want chromium chromium
    want iptables iptables
    want ss iproute2
    want nstat iproute2
    # The encrypted DNS upstream tests: unbound serves DNS-over-TLS and DNS-over-HTTPS (Debian
    # builds it with nghttp2), tcpdump proves no plaintext question leaves.
    want unbound unbound
    want tcpdump tcpdump
fi
if wants bindings; then
    want python3 python3
    # The bindings suites: Maven (with a JRE) compiles the generated Kotlin and runs JUnit.
    want mvn maven
fi
if wants android; then
    # android/: Maven (Kotlin, Robolectric, aapt2 and D8 from the Maven registry), then
    # build-apk.sh's packaging and signing tools (Debian's zipalign and apksigner, keytool).
    want mvn maven
    want keytool default-jre-headless
    want zipalign zipalign
    want apksigner apksigner
    want zip zip
    want unzip unzip
    want python3 python3
    # build-native.sh without an NDK: the Rust targets, and zig as the C compiler stand-in.
    android_targets=(aarch64-linux-android x86_64-linux-android)
    for t in "${android_targets[@]}"; do
        rustup target list --installed 2>/dev/null | grep -qx "$t" || missing+=("rust-std-$t")
    done
    python3 -c 'import ziglang' 2>/dev/null || missing+=(ziglang)
fi
# iOS targets whose standard library rustup serves (x86_64-apple-ios has none on recent stable
# channels: the stage checks it where present, and says so where not).
ios_targets=(aarch64-apple-ios x86_64-apple-ios)
ios_target_missing() {
    ! rustup target list --installed 2>/dev/null | grep -qx "$1" \
        && ! [ -d "$(rustc --print sysroot 2>/dev/null)/lib/rustlib/$1/lib" ]
}
if wants ios; then
    # The trixie chroot of ios/test.sh (made there, on --install) needs debootstrap.
    want debootstrap debootstrap
    ios_target_missing aarch64-apple-ios && missing+=(rust-std-aarch64-apple-ios)
    # zig cc compiles bundled SQLite for the iOS targets.
    python3 -c 'import ziglang' 2>/dev/null || missing+=(ziglang)
fi
if wants bench; then
    # The netns benchmark (tests/bench/run-bench.sh over ../shared/bench): load tools and the C passthrough.
    want dnsperf dnsperf
    want wrk wrk
    want jq jq
    want gcc gcc
fi
# pytest for tests/netns and the Python bindings, in the python3 that tests/run.sh uses.
pytest=0
if wants netns || wants bindings; then
    pytest=1
    python3 -c 'import pytest' 2>/dev/null || missing+=(pytest)
fi

if [ "$check" -eq 1 ]; then
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "install-deps: missing ${missing[*]}" >&2
        exit 1
    fi
    exit 0
fi

if [ "${#need[@]}" -gt 0 ]; then
    # Duplicates (ip, ss and nstat all come from iproute2) are harmless to apt-get.
    echo "install-deps: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Keep package installs from starting system services on the host; the tests start their own.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# pytest in the python3 that tests/run.sh uses (PyPI; Debian's python3-pytest would only serve
# /usr/bin/python3, which may not be the python3 on PATH).
if [ "$pytest" -eq 1 ]; then
    python3 -c 'import pytest' 2>/dev/null || python3 -m pip install -q pytest \
        || { apt-get install -y -qq --no-install-recommends python3-pytest >/dev/null; }
fi
if wants android; then
    for t in "${android_targets[@]}"; do
        rustup target list --installed 2>/dev/null | grep -qx "$t" || rustup target add "$t"
    done
    # Pinned: the C compiler stand-in of android/build-native.sh (no NDK on CI).
    python3 -c 'import ziglang' 2>/dev/null || python3 -m pip install -q ziglang==0.17.1
fi
if wants ios; then
    python3 -c 'import ziglang' 2>/dev/null || python3 -m pip install -q ziglang
    for t in "${ios_targets[@]}"; do
        if ios_target_missing "$t"; then
            rustup target add "$t" \
                || echo "install-deps: rustup has no $t here; the ios stage checks the others"
        fi
    done
    ios_target_missing aarch64-apple-ios && { echo "install-deps: rustup target add aarch64-apple-ios failed" >&2; exit 1; }
fi
if wants lint; then
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi
