#!/usr/bin/env bash
# Builds and tests the Swift package in ios/ (EmbargoKit and the Apple-only targets, which
# compile to nothing here) on Linux, against the real core.
#
#   ios/test.sh [--install]
#
# Swift for Linux comes from Debian trixie's `swiftlang` (Swift 6.0.3 with Foundation and
# XCTest), which the host (bookworm) cannot install: it runs in a trixie chroot made by
# debootstrap, cached in $EMBARGO_SWIFT_CHROOT (default /var/cache/embargo-swift-chroot) and
# reused while it works. The repository is bind-mounted into it, so the tests load the
# libembargo_ffi.so that bindings/generate.sh just built on the host.
#
# --install creates the chroot when it is missing (needs root, debootstrap and the Debian
# mirror); without it a missing chroot stops the script, naming the command that makes it.
# Needs root either way (chroot, mount).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
root=${EMBARGO_SWIFT_CHROOT:-/var/cache/embargo-swift-chroot}
mirror=${EMBARGO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
install=0
for arg in "$@"; do
    case $arg in
        --install) install=1 ;;
        *) echo "ios/test.sh: unknown argument: $arg (only --install)" >&2; exit 2 ;;
    esac
done

die() { echo "ios/test.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (chroot and bind mounts)"

# What the chroot needs: Swift (with Foundation and XCTest) and the C library's headers, which
# swiftlang does not pull in and Foundation's Glibc module needs.
packages=(swiftlang libc6-dev ca-certificates)
# The chroot is ready when its swift runs and the packages are in (a half-made one from an
# interrupted run is not; /usr/bin/swift is an absolute symlink, so ask inside).
ready() {
    [ -d "$root/usr" ] && chroot "$root" /usr/bin/swift --version >/dev/null 2>&1 \
        && [ "$(chroot "$root" dpkg-query -W -f '${Status}\n' "${packages[@]}" 2>/dev/null \
            | grep -c '^install ok installed$')" -eq "${#packages[@]}" ]
}

make_chroot() {
    command -v debootstrap >/dev/null || die "debootstrap is missing: tests/install-deps.sh ios installs it"
    echo "== creating the Swift chroot in $root (debootstrap trixie, then swiftlang)"
    rm -rf "$root.new"
    mkdir -p "$(dirname "$root")"
    debootstrap --variant=minbase trixie "$root.new" "$mirror" >"$root.new.log" 2>&1 \
        || die "debootstrap trixie into $root.new failed (log: $root.new.log)"
    mount -t proc proc "$root.new/proc"
    # Swift's packages pull in clang, libstdc++ and their headers; no recommends beyond those.
    if ! chroot "$root.new" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${packages[@]}" >>"$root.new.log" 2>&1; then
        umount "$root.new/proc"
        die "apt-get install ${packages[*]} in the chroot failed (log: $root.new.log)"
    fi
    chroot "$root.new" apt-get clean
    umount "$root.new/proc"
    rm -rf "$root"
    mv "$root.new" "$root"
    mv "$root.new.log" "$root.log"
}

# One run at a time per chroot (it has one /repo mount point and one build directory).
mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock 9

# Mounts live only for this run: undone on every exit.
mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}"
    done
}
trap cleanup EXIT
# swift finds its libraries through /proc: mount it before asking whether swift runs.
mount_proc() {
    if [ -d "$root/proc" ] && ! mountpoint -q "$root/proc"; then
        mount -t proc proc "$root/proc"
        mounted+=("$root/proc")
    fi
}
mount_proc
if ! ready; then
    [ "$install" -eq 1 ] || die "no working Swift chroot at $root: run ios/test.sh --install (or tests/run.sh --install ios)"
    # A chroot that only lacks packages (an older version of this script made it) gets them in
    # place; anything else is made again from scratch.
    if [ -x "$root/usr/bin/apt-get" ] && chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
        sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends ${packages[*]}" \
        >>"$root.log" 2>&1 && ready; then
        echo "== completed the Swift chroot in $root (${packages[*]})"
    else
        cleanup
        mounted=()
        make_chroot
        mount_proc
    fi
    ready || die "swift does not run in the new chroot at $root (log: $root.log)"
fi

# The host library and the generated Swift, built from this checkout.
lib=bindings/generated/lib/libembargo_ffi.so
swift_src=bindings/generated/swift/EmbargoFFI.swift
[ -f "$lib" ] && [ -f "$swift_src" ] || die "$lib or $swift_src missing: run bindings/generate.sh first"
[ -f "bindings/generated/swift/EmbargoFFIFFI.h" ] || die "bindings/generated/swift/EmbargoFFIFFI.h missing: run bindings/generate.sh"
# The generated Swift and its C header go into the package's targets (git-ignored there); the
# module map is the package's own (Sources/EmbargoFFIFFI/module.modulemap).
mkdir -p ios/Sources/EmbargoFFI ios/Sources/EmbargoFFIFFI
cp "$swift_src" ios/Sources/EmbargoFFI/EmbargoFFI.swift
cp bindings/generated/swift/EmbargoFFIFFI.h ios/Sources/EmbargoFFIFFI/EmbargoFFIFFI.h

mkdir -p "$root/repo"
mount --bind "$repo" "$root/repo"
mounted+=("$root/repo")

# Swift's build directory stays in the chroot: the checkout keeps only sources.
scratch=/var/tmp/embargokit-build
link=(-Xlinker -L/repo/bindings/generated/lib)
echo "== swift build && swift test (ios/, in $root)"
chroot "$root" /usr/bin/env HOME=/root LD_LIBRARY_PATH=/repo/bindings/generated/lib /bin/sh -ec "
    cd /repo/ios
    # The Xcode targets' own files are outside the package: parsed here (syntax only).
    swiftc -parse App/*.swift PacketTunnel/*.swift
    swift build --scratch-path $scratch ${link[*]}
    swift test --scratch-path $scratch ${link[*]}
"
