#!/usr/bin/env bash
# Runs the protocol and runtime crates' unit tests as Windows programs (MinGW build, x86_64-pc-windows-gnu)
# under Wine (Debian 12's wine64 8.0). Called by scripts/test.sh; needs what scripts/install-deps.sh installs.
# What Wine cannot show: the IP Helper route and Wintun calls (stubs in Wine), so the Windows platform tests stay
# at the plan level (core/src/platform/windows_plan.rs), and a real Windows machine is still the final word.
set -euo pipefail
cd "$(dirname "$0")/.."
wine=/usr/lib/wine/wine64
if [ ! -x "$wine" ]; then
  echo "wine-test.sh: $wine missing (Debian package wine64; scripts/install-deps.sh installs it)" >&2
  exit 1
fi
target=x86_64-pc-windows-gnu
bins=$(cargo test -p ikelink-proto -p ikelink --lib --locked --target "$target" --no-run --message-format=json |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])')
# Rust's standard library imports ProcessPrng from bcryptprimitives.dll, which Wine 8 lacks: a stand-in built
# here (windows/wine/bcryptprimitives.c) goes next to the test binaries, where the loader looks first.
deps="${CARGO_TARGET_DIR:-target}/$target/debug/deps"
x86_64-w64-mingw32-gcc -shared -O2 -o "$deps/bcryptprimitives.dll" windows/wine/bcryptprimitives.c -ladvapi32
export WINEPREFIX="$PWD/target/wineprefix" WINEDEBUG=-all
# Skipped under Wine, with the reason:
#  - system_store_by_default_profile_ca_replaces_it: Wine's certificate store is empty (Windows has roots).
skip=(--skip profile::trust_tests::system_store_by_default_profile_ca_replaces_it)
rc=0
for b in $bins; do
  echo "wine-test.sh: $b"
  timeout 900 "$wine" "$b" --test-threads=2 "${skip[@]}" || rc=1
done
# Wine leaves its server running for a few seconds; stop the one of our prefix.
/usr/lib/wine/wineserver -k 2>/dev/null || true
exit $rc
