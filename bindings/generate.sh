#!/usr/bin/env bash
# Generates the foreign bindings of ikelink-ffi from the built library (UniFFI library mode):
#   bindings/generate.sh                 Kotlin and Swift into bindings/generated/{kotlin,swift} (committed)
#   bindings/generate.sh python DIR      Python into DIR (the interop test uses this)
# Builds the library and the crate's own uniffi-bindgen first (debug profile; the sources do not depend on it).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -p ikelink-ffi --lib --bin uniffi-bindgen ${CARGO_LOCKED:+--locked}
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
lib="$target_dir/debug/libikelink_ffi.so"
case "$(uname -s)" in Darwin) lib="$target_dir/debug/libikelink_ffi.dylib" ;; esac
bindgen="$target_dir/debug/uniffi-bindgen"

generate() { # language out_dir
  rm -rf "$2"
  mkdir -p "$2"
  "$bindgen" generate --library "$lib" --language "$1" --out-dir "$2" --no-format
}

if [ "${1:-}" = python ]; then
  generate python "${2:?usage: generate.sh python OUT_DIR}"
  exit 0
fi
generate kotlin bindings/generated/kotlin
generate swift bindings/generated/swift
echo "generated: bindings/generated/kotlin bindings/generated/swift"
