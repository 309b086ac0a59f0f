#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and cross-crate tests, the real-network suite
# and the bindings suites. Run as root (the network suite creates namespaces and TUN devices).
set -euo pipefail
cd "$(dirname "$0")/.."
./tests/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace

echo "== real-network suite (tests/netns)"
# Builds the `embargo` binary the suite drives (debug: shares the build of `cargo test`).
cargo build -p embargo-linux
export EMBARGO_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/embargo"
set +e
python3 -m pytest -q -rs tests/netns
rc=$?
set -e
# pytest exits 5 when it collected no test: that is a broken suite here, not a pass.
if [ "$rc" -ne 0 ]; then
    echo "tests/netns failed (pytest exit $rc)"
    exit "$rc"
fi

echo "== bindings suites (UniFFI: generated Kotlin on the JVM with JUnit, generated Python with pytest)"
# Builds the host library and generates Kotlin/Swift/Python into bindings/generated.
bindings/generate.sh
(cd bindings/kotlin && mvn -q -B test)
set +e
python3 -m pytest -q -rs bindings/python/tests
rc=$?
set -e
# Exit 5 (no test collected) means the suite is broken, as for tests/netns.
if [ "$rc" -ne 0 ]; then
    echo "bindings/python/tests failed (pytest exit $rc)"
    exit "$rc"
fi
