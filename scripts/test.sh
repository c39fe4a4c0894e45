#!/usr/bin/env bash
# Runs every test: unit tests, the simulated-responder tests, and the interop tests against a real strongSwan
# gateway in network namespaces. Needs root (namespaces, charon). Installs what it needs first.
#   IKELINK_SOAK=1 also runs the long soak tests (minutes).
#   IKELINK_FRESH=1 also runs the install script on a freshly debootstrapped Debian 12 (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh needs root (network namespaces and strongSwan); run it with sudo" >&2
  exit 1
fi
./scripts/install-deps.sh
# Every program, plugin and library the tests use must come from a package the install script names.
./scripts/check-deps.sh
# The same on a freshly debootstrapped Debian 12 (minutes; IKELINK_FRESH=1).
if [ "${IKELINK_FRESH:-0}" = 1 ]; then
  ./scripts/fresh-install-test.sh
fi
export IKELINK_INTEROP=1
export CARGO_TERM_COLOR=never
cargo build --workspace --all-targets --locked
# Windows (Wintun client) must keep compiling; only Linux runs here. The UniFFI crate is for the mobile
# shells (Android, Apple) and is not built for Windows.
if rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu; then
  cargo check --workspace --exclude ikelink-ffi --all-targets --locked --target x86_64-pc-windows-gnu
else
  echo "test.sh: Rust target x86_64-pc-windows-gnu missing; Windows build check skipped" >&2
fi
# The Android shell and the generated Kotlin bindings must compile (JVM stand-ins for the Android SDK).
kotlinc=target/tools/node_modules/kotlin-compiler/bin/kotlinc
if [ -x "$kotlinc" ]; then
  KOTLINC="$PWD/$kotlinc" android/jvmcheck/run.sh
else
  echo "test.sh: kotlinc missing; Android JVM check skipped" >&2
fi
cargo test --workspace --locked -- --test-threads=2
