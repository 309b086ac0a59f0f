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
