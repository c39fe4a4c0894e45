#!/bin/sh
# The fresh-machine test (issue 11): debootstrap a minimal Debian 12 into target/fresh-bookworm, run
# scripts/install-deps.sh there as a new user's machine would, then scripts/check-deps.sh: every program,
# strongSwan plugin and library the tests use must come from what the install script installed. Takes a few
# about a minute and ~1.6 GB (removed afterwards); scripts/test.sh runs it unless IKELINK_FRESH=0. Needs root and
# the Debian mirror. `scripts/fresh-install-test.sh --full` (IKELINK_FRESH=full) then runs the whole test command
# in that system from a clean clone of the committed tree (as long as a test run).
set -eu
cd "$(dirname "$0")/.."
root="$PWD/target/fresh-bookworm"
mirror=${IKELINK_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if ! command -v debootstrap >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
fi

# Unmount everything under (and at) the fresh root, deepest first: ours, and what `ip netns` mounted inside.
cleanup() {
    for m in $(awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM

# Remove the fresh system, but never through a mount that is still there (the bind-mounted toolchain!).
remove_root() {
    cleanup
    if grep -q " $root[/ ]" /proc/mounts; then
        echo "fresh-install-test: something is still mounted under $root; not removing it" >&2
        return 1
    fi
    rm -rf "$root"
}

# Always a new system: a reused one would already hold what an earlier run installed.
remove_root
echo "fresh-install-test: debootstrap --variant=minbase bookworm"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 \
    || { tail -20 "$root.debootstrap.log" >&2; exit 1; }
# The root a mount point of its own: `ip netns exec` makes "/" a slave mount, which fails in a plain chroot.
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
cp /etc/resolv.conf "$root/etc/resolv.conf"

# What the two scripts read: themselves and the harness's plugin list; with `--full` a clean clone of the
# committed tree (as CI has it), whose whole test command then runs in the fresh system.
work="$root/ikelink"
rm -rf "$work"
if [ "${1:-}" = --full ]; then
    git clone -q "$PWD" "$work"
else
    mkdir -p "$work/scripts" "$work/testbed/src/harness"
    cp scripts/install-deps.sh scripts/check-deps.sh "$work/scripts/"
    cp testbed/src/harness/charon.rs "$work/testbed/src/harness/"
fi

# The machine's own network trust, as the machine running CI has it (a proxy on the way to the registries may
# need its CA): not a package, so not the install script's business. The variables this machine sets to point
# pip, npm, curl... at its CA bundle are set in the fresh system too, to a copy of that bundle.
trust_env=""
for var in SSL_CERT_FILE PIP_CERT NODE_EXTRA_CA_CERTS REQUESTS_CA_BUNDLE CURL_CA_BUNDLE GIT_SSL_CAINFO; do
    file=$(printenv "$var" || true)
    if [ -n "$file" ] && [ -f "$file" ]; then
        cp "$file" "$root/etc/ikelink-host-ca.crt"
        trust_env="$trust_env $var=/etc/ikelink-host-ca.crt"
    fi
done

echo "fresh-install-test: scripts/install-deps.sh in the fresh system"
# shellcheck disable=SC2086
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root $trust_env \
    sh -c 'cd /ikelink && ./scripts/install-deps.sh'
echo "fresh-install-test: scripts/check-deps.sh in the fresh system"
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root sh -c 'cd /ikelink && ./scripts/check-deps.sh'
if [ "${1:-}" = --full ]; then
    # The same trust for what reads the system store (cargo, git).
    if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
        mkdir -p "$root/usr/local/share/ca-certificates"
        cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
        chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -c \
            'command -v update-ca-certificates >/dev/null && update-ca-certificates >/dev/null' || true
    fi
    # The machine's Rust toolchain (a fresh CI machine has one; rustup's servers are not reachable here).
    for d in .rustup .cargo; do
        if [ -d "$HOME/$d" ]; then
            mkdir -p "$root/root/$d"
            mount --bind "$HOME/$d" "$root/root/$d"
        fi
    done
    echo "fresh-install-test: scripts/test.sh in the fresh system"
    # shellcheck disable=SC2086
    chroot "$root" /usr/bin/env -i PATH=/root/.cargo/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root IKELINK_FRESH=0 \
        $trust_env sh -c 'cd /ikelink && ./scripts/test.sh'
fi
remove_root
echo "fresh-install-test: ok"
