#!/usr/bin/env bash
# The test suite, by stage: formatting, lints, unit and cross-crate tests, the real-network suite
# and the bindings suites. Run as root (the network suite creates namespaces and TUN devices).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    cat <<'USAGE'
Usage: tests/run.sh [--install] [STAGE]

Stages (default: all):
  lint      cargo fmt --check, then clippy with -D warnings
  unit      cargo test --workspace
  netns     builds the debug `embargo` binary, then the real-network suite (pytest tests/netns)
  bindings  generates the UniFFI bindings, then the JUnit (Maven) and Python (pytest) suites
  android   the Android app: Maven build with the Robolectric suite (real core through JNA),
            the signed debug APK (android/build-apk.sh) and, with no NDK here, the cargo check
            of embargo-ffi for the Android targets (android/build-native.sh)
  ios       cargo check of the core for iOS (aarch64-apple-ios, x86_64-apple-ios where rustup
            has it), then the Swift package in ios/ (EmbargoKit) built and tested with XCTest in a
            Debian trixie chroot against the real core (ios/test.sh)
  all       lint, unit, netns, bindings, android and ios, in that order

--install installs the Debian packages and tools the stages need first (tests/install-deps.sh,
as root); so do EMBARGO_INSTALL_DEPS=1 and CI=true. Without it nothing is installed, and a stage
whose tools are missing stops before it starts, naming them.
USAGE
}

install=0
[ "${EMBARGO_INSTALL_DEPS:-0}" = 1 ] && install=1
[ "${CI:-}" = true ] && install=1
stage=
for arg in "$@"; do
    case $arg in
        --install) install=1 ;;
        -h | --help) usage; exit 0 ;;
        lint | unit | netns | bindings | android | ios | all)
            [ -z "$stage" ] || { usage >&2; exit 2; }
            stage=$arg
            ;;
        *) echo "tests/run.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done
stage=${stage:-all}

# Installs (--install) or checks the tools of the given install-deps.sh stages. Installing for
# `all` also installs the benchmark's load tools (tests/bench); checking asks only for what the
# test stages run.
deps() {
    local checked=("$@")
    [ "$1" = all ] && checked=(lint unit netns bindings android ios)
    if [ "$install" -eq 1 ]; then
        ./tests/install-deps.sh "$@"
    elif ! ./tests/install-deps.sh --check "${checked[@]}"; then
        local again="tests/run.sh --install"
        [ "$stage" = all ] || again+=" $stage"
        echo "tests/run.sh: tools missing for stage '$stage': run $again (as root)" >&2
        exit 1
    fi
}

# pytest DIR: runs the suite; pytest exits 5 when it collected no test, which is a broken suite
# here, not a pass.
pytest_suite() {
    local rc
    set +e
    python3 -m pytest -q -rs "$1"
    rc=$?
    set -e
    if [ "$rc" -ne 0 ]; then
        echo "$1 failed (pytest exit $rc)"
        exit "$rc"
    fi
}

lint() {
    echo "== cargo fmt --check"
    cargo fmt --all -- --check
    echo "== cargo clippy"
    cargo clippy --workspace --all-targets -- -D warnings
}

unit() {
    echo "== cargo test"
    cargo test --workspace
}

netns() {
    echo "== real-network suite (tests/netns)"
    # Builds the `embargo` binary the suite drives (debug: shares the build of `cargo test`).
    cargo build -p embargo-linux
    export EMBARGO_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/embargo"
    pytest_suite tests/netns
}

bindings() {
    echo "== bindings suites (UniFFI: generated Kotlin on the JVM with JUnit, generated Python with pytest)"
    # Builds the host library and generates Kotlin/Swift/Python into bindings/generated.
    bindings/generate.sh
    (cd bindings/kotlin && mvn -q -B test)
    pytest_suite bindings/python/tests
}

android() {
    echo "== Android app (android/: Maven + Robolectric with the real core, signed debug APK)"
    # The app compiles the generated Kotlin and its tests load the host library (both from here).
    bindings/generate.sh
    (cd android && mvn -q -B verify)
    android/build-apk.sh
    # With ANDROID_NDK_HOME set this builds the phone libraries instead of checking.
    android/build-native.sh
}

ios() {
    echo "== the core for iOS (cargo check)"
    # Bundled SQLite needs a C compiler for the target: zig cc with its Darwin headers. SDKROOT
    # points cc-rs at an empty directory so it does not look for xcrun.
    local sdk target zig_target checked=0
    sdk=$(mktemp -d)
    for target in aarch64-apple-ios x86_64-apple-ios; do
        if ! rustup target list --installed | grep -qx "$target" \
            && ! [ -d "$(rustc --print sysroot)/lib/rustlib/$target/lib" ]; then
            echo "SKIPPED: cargo check --target $target: rustup has no standard library for it here"
            continue
        fi
        case $target in
            aarch64-apple-ios) zig_target=aarch64-ios ;;
            x86_64-apple-ios) zig_target=x86_64-ios-simulator ;;
        esac
        env "CC_${target//-/_}=$PWD/ios/scripts/zig-cc" ZIG_TARGET="$zig_target" SDKROOT="$sdk" \
            cargo check -p embargo-ffi --target "$target"
        checked=$((checked + 1))
    done
    rmdir "$sdk"
    [ "$checked" -gt 0 ] || { echo "tests/run.sh: no iOS target could be checked" >&2; exit 1; }
    echo "== Swift: the ios/ package (EmbargoKit) against the real core"
    bindings/generate.sh
    local args=()
    [ "$install" -eq 1 ] && args+=(--install)
    ios/test.sh "${args[@]}"
}

if [ "$stage" = all ]; then
    deps all
    lint
    unit
    netns
    bindings
    android
    ios
else
    deps "$stage"
    "$stage"
fi
