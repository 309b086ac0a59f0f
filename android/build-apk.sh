#!/usr/bin/env bash
# Assembles the signed debug APK from the Maven build, without Gradle:
#   aapt2 link (hand-written manifest, framework resources only) -> D8 (app + bindings + Kotlin
#   stdlib + coroutines + JNA's Android classes) -> native libraries (JNA's libjnidispatch.so per
#   ABI, and libembargo_ffi.so from build-native.sh when built with the NDK) -> zipalign ->
#   apksigner (a debug key made with keytool) -> checks: aapt2 dump badging/xmltree, apksigner verify.
#
#   (cd android && mvn -B package) && android/build-apk.sh     # writes android/target/embargo-debug.apk
#   android/build-apk.sh --build     # the same, generating the bindings and running Maven first
#
# Needs zipalign, apksigner, keytool, zip (tests/install-deps.sh android installs them). The
# aapt2 and D8 jars come from the Maven build (android/pom.xml pins them).
set -euo pipefail
cd "$(dirname "$0")"
t=target
tools=$t/apk/tools
out=$t/apk/build
min_sdk=29
target_sdk=34
die() { echo "build-apk: $*" >&2; exit 1; }
case "${1:-}" in
    "") ;;
    --build)
        (cd .. && bindings/generate.sh)
        mvn -q -B package -DskipTests
        ;;
    *) die "unknown argument $1 (usage: build-apk.sh [--build])" ;;
esac

for f in "$t/classes/org/embargo/android/MainActivity.class" "$tools/android-all.jar" "$tools/r8.jar" \
    "$tools/aapt2-linux.jar" "$tools/jna.aar"; do
    [ -e "$f" ] || die "missing $f: run 'mvn -B package' in android/ first (it fetches the pinned aapt2, r8, jna.aar, android-all)"
done
for tool in zipalign apksigner keytool zip unzip java; do
    command -v "$tool" >/dev/null || die "$tool not found: run tests/install-deps.sh android (as root)"
done

rm -rf "$out"
mkdir -p "$out/aapt2" "$out/jna" "$out/dex" "$out/pkg"
unzip -q -o "$tools/aapt2-linux.jar" aapt2 -d "$out/aapt2"
chmod +x "$out/aapt2/aapt2"
aapt2=$out/aapt2/aapt2
version_name=$(sed -n 's/.*android:versionName="\([^"]*\)".*/\1/p' src/main/AndroidManifest.xml)

echo "== aapt2 link (manifest, framework resources)"
"$aapt2" link -o "$out/base.apk" -I "$tools/android-all.jar" \
    --manifest src/main/AndroidManifest.xml \
    --min-sdk-version "$min_sdk" --target-sdk-version "$target_sdk"

echo "== D8 (min API $min_sdk)"
unzip -q -o "$tools/jna.aar" -d "$out/jna"
(cd "$t/classes" && zip -q -r -X "../apk/build/app-classes.jar" .)
runtime=("$t"/apk/runtime/*.jar)
java -cp "$tools/r8.jar" com.android.tools.r8.D8 --release --min-api "$min_sdk" \
    --lib "$tools/android-all.jar" --output "$out/dex" \
    "$out/app-classes.jar" "$out/jna/classes.jar" "${runtime[@]}"
cp "$out"/dex/classes*.dex "$out/pkg/"

echo "== native libraries"
abis=(arm64-v8a armeabi-v7a x86_64)
have_core=0
for abi in "${abis[@]}"; do
    mkdir -p "$out/pkg/lib/$abi"
    cp "$out/jna/jni/$abi/libjnidispatch.so" "$out/pkg/lib/$abi/"
    if [ -f "build/jniLibs/$abi/libembargo_ffi.so" ]; then
        cp "build/jniLibs/$abi/libembargo_ffi.so" "$out/pkg/lib/$abi/"
        have_core=$((have_core + 1))
    fi
done
if [ "$have_core" -eq 0 ]; then
    echo "*** NOTE: no libembargo_ffi.so in android/build/jniLibs (build-native.sh needs ANDROID_NDK_HOME):" >&2
    echo "*** this APK installs and shows its screens, but cannot start the core on a phone.   ***" >&2
fi

cp "$out/base.apk" "$out/unaligned.apk"
# Dex compressed; native libraries stored (page-aligned by zipalign -p). extractNativeLibs=true:
# JNA finds libembargo_ffi.so as a file in the app's native library directory.
(cd "$out/pkg" && zip -q -X -9 ../unaligned.apk classes*.dex && zip -q -X -0 -r ../unaligned.apk lib)

echo "== zipalign, sign"
zipalign -f -p 4 "$out/unaligned.apk" "$out/aligned.apk"
keystore=$t/apk/debug.keystore
if [ ! -f "$keystore" ]; then
    keytool -genkeypair -keystore "$keystore" -storepass android -keypass android -alias androiddebugkey \
        -keyalg RSA -keysize 2048 -validity 10000 -dname "CN=Android Debug,O=Android,C=US" >/dev/null 2>&1
fi
apk=$t/embargo-debug.apk
apksigner sign --ks "$keystore" --ks-pass pass:android --key-pass pass:android \
    --min-sdk-version "$min_sdk" --out "$apk" "$out/aligned.apk"

echo "== check"
apksigner verify --min-sdk-version "$min_sdk" "$apk" || die "apksigner verify failed"
badging=$("$aapt2" dump badging "$apk")
manifest=$("$aapt2" dump xmltree --file AndroidManifest.xml "$apk")
expect() { # what, text, pattern
    grep -qE -- "$3" <<<"$2" || die "$1 not found in the APK ($3)"
    echo "ok: $1"
}
expect "package" "$badging" "^package: name='org.embargo.android'.*versionName='$version_name'"
expect "minSdk $min_sdk" "$badging" "^(minSdkVersion|sdkVersion):'$min_sdk'"
expect "targetSdk $target_sdk" "$badging" "^targetSdkVersion:'$target_sdk'"
for perm in INTERNET ACCESS_NETWORK_STATE FOREGROUND_SERVICE FOREGROUND_SERVICE_SPECIAL_USE RECEIVE_BOOT_COMPLETED POST_NOTIFICATIONS; do
    expect "permission $perm" "$badging" "uses-permission: name='android.permission.$perm'"
done
expect "VPN service guarded by BIND_VPN_SERVICE" "$manifest" 'android:permission.*="android.permission.BIND_VPN_SERVICE"'
expect "android.net.VpnService intent filter" "$manifest" '"android.net.VpnService"'
expect "always-on support" "$manifest" '"android.net.VpnService.SUPPORTS_ALWAYS_ON"'
expect "special-use foreground service type" "$manifest" 'foregroundServiceType\(0x01010599\)=0x40000000'
expect "Quick Settings tile" "$manifest" '"android.service.quicksettings.action.QS_TILE"'
expect "boot receiver" "$manifest" '"android.intent.action.BOOT_COMPLETED"'
expect "classes.dex" "$(unzip -l "$apk")" 'classes.dex'
expect "libjnidispatch.so (arm64-v8a)" "$(unzip -l "$apk")" 'lib/arm64-v8a/libjnidispatch.so'
size=$(stat -c %s "$apk")
echo "built $apk ($((size / 1024)) KiB; libembargo_ffi.so for $have_core of ${#abis[@]} ABIs)"
