#!/usr/bin/env bash
# Runs every test: unit tests, the simulated-responder tests, and the interop tests against a real strongSwan
# gateway in network namespaces. Needs root (namespaces, charon). Installs what it needs first.
#   IKELINK_SOAK=1 also runs the long soak tests (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh needs root (network namespaces and strongSwan); run it with sudo" >&2
  exit 1
fi
./scripts/install-deps.sh
export IKELINK_INTEROP=1
export CARGO_TERM_COLOR=never
cargo build --workspace --all-targets --locked
cargo test --workspace --locked -- --test-threads=2
