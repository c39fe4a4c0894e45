#!/usr/bin/env bash
# The Ikelink demo: builds the client and runs it against a real strongSwan gateway in network namespaces
# (client — router — gateway — LAN): connect, ping and iperf3 through the tunnel, disconnect, tear down.
# Run as root from a clone of the repository: ./examples/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "examples/demo.sh needs root (network namespaces, TUN devices, strongSwan); run it with sudo" >&2
  exit 1
fi
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "examples/demo.sh: cargo not found; install Rust first (https://rustup.rs):" >&2
  echo "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && . \"\$HOME/.cargo/env\"" >&2
  exit 1
fi

echo "==> Installing dependencies (strongSwan, iproute2, iperf3, ...)"
./scripts/install-deps.sh
echo "==> Building the client and the demo (release)"
cargo build --release --locked -p ikelink-desktop -p ikelink-testbed --bins
exec target/release/ikelink-demo "$@"
