#!/usr/bin/env bash
# strongSwan 6.0.1 for the post-quantum interop tests (issue 14): Debian 13's packages in a minimal root made by
# debootstrap (~40 s, ~300 MB) under target/, reused by later runs. Needs root and debootstrap (install-deps.sh).
# Usage: scripts/strongswan6-root.sh [DIR]   (default: target/strongswan6-trixie)
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-target/strongswan6-trixie}
[ -x "$root/usr/sbin/charon-systemd" ] && exit 0
# A symlink (scripts/test.sh links it into its build cache): the root is made where it points.
if [ -L "$root" ]; then
    root=$(readlink -f "$root")
fi
mkdir -p "$(dirname "$root")"
# Tests run in parallel and each may ask for the root: one builds it, the others wait for it.
exec 9>"$root.lock"
flock 9
[ -x "$root/usr/sbin/charon-systemd" ] && exit 0
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -v security | head -1)
[ -n "$mirror" ] || mirror=$(awk '/^deb / && !/security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
rm -rf "$root.tmp"
debootstrap --variant=minbase \
    --include=charon-systemd,strongswan-swanctl,strongswan-pki,libstrongswan-extra-plugins,libstrongswan-standard-plugins,libcharon-extra-plugins,libcharon-extauth-plugins,openssl,iproute2 \
    trixie "$root.tmp" "$mirror" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
mv "$root.tmp" "$root"
echo "strongswan6-root: $root"
