#!/usr/bin/env bash
# Throughput benchmark: iperf3 TCP client -> LAN host through our tunnel, through strongSwan's own client
# (charon with kernel-libipsec) against the same gateway, through boringtun (userspace WireGuard on both ends,
# installed by scripts/install-deps.sh) and through no tunnel; client CPU seconds per GB and peak resident memory,
# with the ratios ours / strongSwan and ours / boringtun. Needs root. Options go to ikelink-bench (--seconds N, --runs N, --suite S; see --help).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "scripts/bench.sh needs root (network namespaces, TUN devices, strongSwan); run it with sudo" >&2
  exit 1
fi
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
./scripts/install-deps.sh
cargo build --release --locked -p ikelink-desktop -p ikelink-testbed --bins
exec target/release/ikelink-bench "$@"
