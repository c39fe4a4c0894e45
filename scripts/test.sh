#!/usr/bin/env bash
# Runs every test: unit tests, the simulated-responder tests, and the interop tests against a real strongSwan
# gateway in network namespaces. Needs root (namespaces, charon). Installs what it needs first.
#   IKELINK_SOAK=1 also runs the long soak tests (minutes).
#   IKELINK_FRESH=0 skips running the install script on a freshly debootstrapped Debian 12 (about a minute);
#   IKELINK_FRESH=full also runs this whole test command there (from a clean clone of the committed tree).
#   IKELINK_VM=1 also runs the kernel-ESP tests in a QEMU VM (scripts/vm-run.sh); with IKELINK_VM_KERNEL=espintcp
#   the VM boots Debian's 6.1 rebuilt with espintcp (scripts/vm-kernel-espintcp.sh: built once, tens of minutes,
#   never by default), so interop_tcp also proves ESP in TCP against libreswan.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh needs root (network namespaces and strongSwan); run it with sudo" >&2
  exit 1
fi
# Each stage prints its whole-stage wall time (`test.sh: <stage>: N s`), so a slower CI run shows where.
stage_start=$SECONDS
stage_done() { echo "test.sh: $1: $((SECONDS - stage_start)) s"; stage_start=$SECONDS; }
./scripts/install-deps.sh
# Every program, plugin and library the tests use must come from a package the install script names.
./scripts/check-deps.sh
# The sans-IO rule: the protocol crate (core/proto) has no runtime dependency and reads no clock, file or socket.
./scripts/check-sans-io.sh
stage_done "install and dependency checks"
# The same on a freshly debootstrapped Debian 12 (about a minute; IKELINK_FRESH=0 skips it).
case "${IKELINK_FRESH:-1}" in
  1) ./scripts/fresh-install-test.sh ;;
  full) ./scripts/fresh-install-test.sh --full ;;
esac
stage_done "fresh Debian 12 install check"
export IKELINK_INTEROP=1
export CARGO_TERM_COLOR=never
cargo build --workspace --all-targets --locked
stage_done "build"
# Windows (Wintun client, and the FFI's desktop client) must keep compiling; only Linux runs here.
if rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu; then
  cargo check --workspace --all-targets --locked --target x86_64-pc-windows-gnu
  # ... and the protocol and runtime crates' unit tests pass as Windows programs, under Wine.
  ./scripts/wine-test.sh
  stage_done "Windows build check and Wine tests"
else
  echo "test.sh: Rust target x86_64-pc-windows-gnu missing; Windows build check skipped" >&2
fi
# The Android shell and the generated Kotlin bindings must compile (JVM stand-ins for the Android SDK).
kotlinc=target/tools/node_modules/kotlin-compiler/bin/kotlinc
if [ -x "$kotlinc" ] && [ -d target/tools/android-stubs/android-stubs ]; then
  KOTLINC="$PWD/$kotlinc" android/jvmcheck/run.sh
  stage_done "Android JVM check"
else
  # install-deps.sh installs both (npm, pip); a machine without them would pass without checking the shell.
  echo "test.sh: kotlinc or the Android API stubs missing (scripts/install-deps.sh installs them)" >&2
  exit 1
fi
cargo test --workspace --locked --no-fail-fast -- --test-threads=2
stage_done "cargo test (unit, simulator, interop)"
# Fuzzing (fuzz/, cargo-fuzz on nightly; fuzz/README.md): the committed corpora were replayed above on stable
# (core/tests/fuzz_corpus.rs, desktop/tests/fuzz_corpus.rs). Here each target also runs for a bounded time
# (IKELINK_FUZZ_SECONDS, default 20; 0 skips) from a copy of its corpus in target/fuzz-corpus/, so nothing new is
# written into fuzz/corpus/. A crash fails the script (the input is left in fuzz/artifacts/<target>/).
fuzz_seconds="${IKELINK_FUZZ_SECONDS:-20}"
if [ "$fuzz_seconds" = 0 ]; then
  echo "test.sh: IKELINK_FUZZ_SECONDS=0; fuzz runs skipped" >&2
elif rustup toolchain list 2>/dev/null | grep -q nightly && cargo +nightly fuzz --version >/dev/null 2>&1; then
  # Without a sanitizer (the product code forbids `unsafe`): a third of the build time; long local runs use ASan.
  (cd fuzz && cargo +nightly fuzz build -s none)
  for t in $(cd fuzz && cargo +nightly fuzz list); do
    rm -rf "target/fuzz-corpus/$t"
    mkdir -p "target/fuzz-corpus/$t"
    cp fuzz/corpus/"$t"/* "target/fuzz-corpus/$t/"
    echo "test.sh: fuzzing $t for ${fuzz_seconds} s"
    (cd fuzz && cargo +nightly fuzz run -s none "$t" "../target/fuzz-corpus/$t" -- \
      -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -print_final_stats=1)
  done
  stage_done "fuzz build and runs"
else
  echo "test.sh: nightly toolchain or cargo-fuzz missing; fuzz runs skipped" >&2
fi
# Kernel ESP (IKELINK_VM=1; several minutes): this machine's kernel has XFRM but no ESP, so the tests that need a
# gateway doing ESP in the kernel (strongSwan with kernel-netlink and `encap = no`, interop_kernel_esp; libreswan,
# interop_libreswan) run inside a QEMU VM with Debian 12's stock kernel (scripts/vm-run.sh: software emulation,
# this machine's root shared read-only). The test binaries and the client they drive (IKELINK_BIN, which the
# harness then uses instead of building it) are built here and run prebuilt in the guest. IKELINK_VM_KERNEL=espintcp
# (read by vm-run.sh) boots the kernel with espintcp instead of the stock one: interop_tcp then expects the IKE and
# Child SA over TCP, full traffic over TCP and a cut stream recovered (it fails, rather than skips, without espintcp).
if [ "${IKELINK_VM:-0}" = 1 ]; then
  vm_tests="--test interop_kernel_esp"
  if [ -f testbed/tests/interop_libreswan.rs ]; then
    vm_tests="$vm_tests --test interop_libreswan"
  fi
  if [ -f testbed/tests/interop_tcp.rs ]; then
    vm_tests="$vm_tests --test interop_tcp"
  fi
  # The executables of one target kind (bin, test) in cargo's JSON messages.
  executables='
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and sys.argv[1] in m["target"]["kind"] and m.get("executable"):
        print(m["executable"])'
  IKELINK_BIN=$(cargo build -p ikelink-desktop --bin ikelink --locked --message-format=json |
    python3 -c "$executables" bin)
  export IKELINK_BIN
  # shellcheck disable=SC2086
  vm_bins=$(cargo test -p ikelink-testbed --locked $vm_tests --no-run --message-format=json |
    python3 -c "$executables" test)
  echo "test.sh: running in a VM:" $vm_bins
  # shellcheck disable=SC2016,SC2086
  scripts/vm-run.sh sh -c 'rc=0; for t; do echo "vm: $t"; "$t" --test-threads=1 --nocapture || rc=1; done; exit $rc' \
    sh $vm_bins
fi
