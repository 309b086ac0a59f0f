#!/usr/bin/env bash
# Builds the host library (libembargo_ffi.so / .dylib) and generates the Kotlin, Swift and Python
# bindings from it with uniffi-bindgen in library mode, into bindings/generated/{kotlin,swift,python}.
#
#   bindings/generate.sh            # debug build (what the tests use)
#   bindings/generate.sh --release  # release build
#
# The library is built into $CARGO_TARGET_DIR (default: target/ at the workspace root) and copied
# to bindings/generated/lib/ (where the Maven suite's JNA looks) and beside the Python module
# (where the generated Python loads it from).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug
cargo_flags=()
if [ "${1:-}" = "--release" ]; then
    profile=release
    cargo_flags+=(--release)
fi
target_dir="${CARGO_TARGET_DIR:-$(pwd)/target}"
echo "== build embargo-ffi ($profile) and uniffi-bindgen"
cargo build -p embargo-ffi --features cli "${cargo_flags[@]}"
case "$(uname -s)" in
    Darwin) lib="$target_dir/$profile/libembargo_ffi.dylib" ;;
    *) lib="$target_dir/$profile/libembargo_ffi.so" ;;
esac
bindgen="$target_dir/$profile/uniffi-bindgen"
out=bindings/generated
rm -rf "$out"
mkdir -p "$out"
# Library mode reads bindings/uniffi.toml (the crate root's) by itself.
for lang in kotlin swift python; do
    echo "== generate $lang"
    "$bindgen" generate --library "$lib" --language "$lang" --out-dir "$out/$lang" --no-format
done
mkdir -p "$out/lib"
cp "$lib" "$out/lib/"
cp "$lib" "$out/python/"
echo "generated into $out (library: $lib)"
