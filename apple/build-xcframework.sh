#!/usr/bin/env bash
# Builds ikelink_ffiFFI.xcframework (static libikelink_ffi.a for iOS, the iOS simulator and macOS, with the
# generated C header and module map) next to this script, and copies the generated Swift bindings into
# Sources/IkelinkFFI. Needs macOS with Xcode (xcodebuild, lipo) and rustup.
#   apple/build-xcframework.sh            release build, all slices
#   IKELINK_PROFILE=debug apple/build-xcframework.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
profile=${IKELINK_PROFILE:-release}
generated="$root/bindings/generated/swift"
export IPHONEOS_DEPLOYMENT_TARGET=15.0 MACOSX_DEPLOYMENT_TARGET=12.0

targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
rustup target add "${targets[@]}"
flag=(); [ "$profile" = release ] && flag=(--release)
for t in "${targets[@]}"; do
  cargo build --manifest-path "$root/Cargo.toml" -p ikelink-ffi --lib --target "$t" "${flag[@]}"
done
target_dir=$(cargo metadata --manifest-path "$root/Cargo.toml" --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
lib() { echo "$target_dir/$1/$profile/libikelink_ffi.a"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/headers" "$work/ios-sim" "$work/macos"
cp "$generated/ikelink_ffiFFI.h" "$work/headers/"
cp "$generated/ikelink_ffiFFI.modulemap" "$work/headers/module.modulemap"
lipo -create "$(lib aarch64-apple-ios-sim)" "$(lib x86_64-apple-ios)" -output "$work/ios-sim/libikelink_ffi.a"
lipo -create "$(lib aarch64-apple-darwin)" "$(lib x86_64-apple-darwin)" -output "$work/macos/libikelink_ffi.a"

rm -rf "$here/ikelink_ffiFFI.xcframework"
xcodebuild -create-xcframework \
  -library "$(lib aarch64-apple-ios)" -headers "$work/headers" \
  -library "$work/ios-sim/libikelink_ffi.a" -headers "$work/headers" \
  -library "$work/macos/libikelink_ffi.a" -headers "$work/headers" \
  -output "$here/ikelink_ffiFFI.xcframework"

mkdir -p "$here/Sources/IkelinkFFI"
cp "$generated/ikelink_ffi.swift" "$here/Sources/IkelinkFFI/ikelink_ffi.swift"
echo "built $here/ikelink_ffiFFI.xcframework and Sources/IkelinkFFI/ikelink_ffi.swift"
