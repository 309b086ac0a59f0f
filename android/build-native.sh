#!/usr/bin/env bash
# The core for phones: libembargo_ffi.so per ABI into android/build/jniLibs/<abi>/, where
# build-apk.sh picks it up.
#
#   ANDROID_NDK_HOME=/path/to/ndk android/build-native.sh    # cargo ndk: arm64-v8a, armeabi-v7a, x86_64
#   android/build-native.sh                                  # no NDK: cargo check for the Android targets
#
# Without an NDK there is no Android linker, so the library cannot be built; the script then
# type-checks embargo-ffi for aarch64-linux-android and x86_64-linux-android, with `zig cc`
# (PyPI package ziglang) standing in as the C compiler for the bundled SQLite, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
api=29
abis=(arm64-v8a armeabi-v7a x86_64)
targets=(aarch64-linux-android armv7-linux-androideabi x86_64-linux-android)
die() { echo "build-native: $*" >&2; exit 1; }

need_targets() {
    local missing=()
    for t in "$@"; do
        rustup target list --installed | grep -qx "$t" || missing+=("$t")
    done
    [ "${#missing[@]}" -eq 0 ] || die "rust targets missing: rustup target add ${missing[*]}"
}

if [ -n "${ANDROID_NDK_HOME:-}" ]; then
    need_targets "${targets[@]}"
    [ -d "$ANDROID_NDK_HOME" ] || die "ANDROID_NDK_HOME=$ANDROID_NDK_HOME is not a directory"
    command -v cargo-ndk >/dev/null || die "cargo-ndk not found: cargo install cargo-ndk --locked --version 4.1.2"
    ndk_args=()
    for abi in "${abis[@]}"; do ndk_args+=(-t "$abi"); done
    cargo ndk "${ndk_args[@]}" -P "$api" -o android/build/jniLibs build -p embargo-ffi --release
    for abi in "${abis[@]}"; do
        [ -f "android/build/jniLibs/$abi/libembargo_ffi.so" ] || die "cargo ndk wrote no libembargo_ffi.so for $abi"
    done
    ls -l android/build/jniLibs/*/libembargo_ffi.so
    exit 0
fi

echo "*** build-native: ANDROID_NDK_HOME is not set, so libembargo_ffi.so cannot be linked for Android here. ***"
echo "*** Running 'cargo check -p embargo-ffi' for aarch64-linux-android and x86_64-linux-android instead, ***"
echo "*** with 'zig cc' (ziglang) as the C compiler for the bundled SQLite.                             ***"
need_targets aarch64-linux-android x86_64-linux-android
zig_dir=$(python3 -c 'import os, ziglang; print(os.path.dirname(ziglang.__file__))' 2>/dev/null) \
    || die "ziglang not installed: python3 -m pip install ziglang==0.17.1 (tests/install-deps.sh android)"
wrappers="${CARGO_TARGET_DIR:-$PWD/target}/android-zig"
mkdir -p "$wrappers"
for t in aarch64-linux-android x86_64-linux-android; do
    # zig has no bionic headers; musl's are enough to compile sqlite3.c for a type check.
    zig_target=${t%-linux-android}-linux-musl
    # cc-rs adds --target=<rust triple>, which zig would take over -target: drop it.
    cat >"$wrappers/cc-$t" <<WRAP
#!/bin/sh
for a; do shift; case \$a in --target=*) ;; *) set -- "\$@" "\$a" ;; esac; done
exec "$zig_dir/zig" cc -target $zig_target "\$@"
WRAP
    printf '#!/bin/sh\nexec "%s/zig" ar "$@"\n' "$zig_dir" >"$wrappers/ar-$t"
    chmod +x "$wrappers/cc-$t" "$wrappers/ar-$t"
    env_t=${t//-/_}
    echo "== cargo check -p embargo-ffi --target $t"
    env "CC_$env_t=$wrappers/cc-$t" "AR_$env_t=$wrappers/ar-$t" \
        cargo check -p embargo-ffi --target "$t"
done
echo "build-native: embargo-ffi type-checks for the Android targets (not linked: no NDK)"
