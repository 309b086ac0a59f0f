#!/usr/bin/env bash
# Builds the core for iOS as ios/build/EmbargoFFI.xcframework (device: aarch64-apple-ios;
# simulator: aarch64-apple-ios-sim and x86_64-apple-ios joined with lipo) and copies the
# generated Swift into the package. Runs on a Mac with Xcode (xcodebuild, lipo, Apple clang).
#
#   ios/build-xcframework.sh [--debug]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(uname -s)" = Darwin ] || { echo "build-xcframework.sh: needs macOS with Xcode (on Linux: tests/run.sh ios)" >&2; exit 1; }
profile=release
flags=(--release)
if [ "${1:-}" = --debug ]; then profile=debug; flags=(); fi
targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios)
rustup target add "${targets[@]}"
for t in "${targets[@]}"; do
    cargo build -p embargo-ffi --lib --target "$t" "${flags[@]}"
done
# The Swift and the header from the host build's metadata (same crate, same version).
bindings/generate.sh
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
out=ios/build
rm -rf "$out"
mkdir -p "$out/headers" "$out/sim"
cp bindings/generated/swift/EmbargoFFIFFI.h "$out/headers/"
# The generated map names the module Xcode imports (it says `use "Darwin"`, right here).
cp bindings/generated/swift/EmbargoFFIFFI.modulemap "$out/headers/module.modulemap"
lipo -create \
    "$target_dir/aarch64-apple-ios-sim/$profile/libembargo_ffi.a" \
    "$target_dir/x86_64-apple-ios/$profile/libembargo_ffi.a" \
    -output "$out/sim/libembargo_ffi.a"
xcodebuild -create-xcframework \
    -library "$target_dir/aarch64-apple-ios/$profile/libembargo_ffi.a" -headers "$out/headers" \
    -library "$out/sim/libembargo_ffi.a" -headers "$out/headers" \
    -output "$out/EmbargoFFI.xcframework"
mkdir -p ios/Sources/EmbargoFFI
cp bindings/generated/swift/EmbargoFFI.swift ios/Sources/EmbargoFFI/EmbargoFFI.swift
echo "ios/build/EmbargoFFI.xcframework ready; next: cd ios && xcodegen generate && open Embargo.xcodeproj"
