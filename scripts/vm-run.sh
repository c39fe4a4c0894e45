#!/usr/bin/env bash
# Runs a command as root inside a QEMU VM that boots Debian 12's stock kernel, which has kernel ESP (this
# machine's kernel has XFRM but no ESP). The guest sees this machine's whole root filesystem (read-only over
# virtio-9p, with a tmpfs overlay so it can write anywhere; nothing it writes reaches the host), so the same
# binaries, strongSwan and this repository are there. The command's output is printed live, and its exit status
# is this script's.
#
#   scripts/vm-run.sh [--timeout SECS] [--mem MB] [--smp N] [--] COMMAND [ARGS...]
#
# The command runs in the current directory (same path in the guest) with PATH, HOME, and every IKELINK_*, RUST_*
# and CARGO_TERM_* variable of the caller. Build test binaries on the host first and run them prebuilt: the guest
# is slow. Exit status: the command's; 124 when the VM run timed out; 125 when the VM could not run it.
#
# The VM: qemu-system-x86_64 under TCG (software emulation: /dev/kvm exists here but a Linux guest hangs after the
# decompressor with it; TCG is roughly 50x slower than native), no network card, a virtio RNG. The kernel is the
# current bookworm `linux-image-6.1.0-*-amd64` package (the one linux-image-amd64 depends on), fetched with
# `apt-get download` and unpacked with `dpkg -x` into target/vm/kernel/ (never installed on the host); its
# modules.dep comes from busybox depmod. The initramfs (target/vm/initramfs-<kernel>.cpio.gz) holds busybox-static,
# scripts/vm/init and the virtio/9p/overlay modules; the init loads the rest of the modules from the unpacked tree
# (the IPsec ones, veth, tun, nftables/iptables NAT...) and runs the command.
#
# Packages it installs when missing (apt-get install --no-install-recommends): qemu-system-x86 (the emulator),
# busybox-static (the initramfs's userland, depmod and cpio on the host).
#
# Environment: IKELINK_VM_TIMEOUT (default 2400 s, the whole VM run), IKELINK_VM_MEM (MB, default 3072),
# IKELINK_VM_SMP (default 2), IKELINK_VM_KERNEL: `stock` (default, the Debian kernel above) or `espintcp`: the
# same Debian 6.1 rebuilt with CONFIG_INET_ESPINTCP (RFC 9329 ESP-in-TCP, which pluto needs for TCP
# encapsulation) by scripts/vm-kernel-espintcp.sh (tens of minutes the first time, then cached in
# target/vm/kernel/espintcp-<version>/). With it the command also gets IKELINK_ESPINTCP=1, so the tests that need
# espintcp fail instead of skipping when the kernel lacks it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
timeout_s=${IKELINK_VM_TIMEOUT:-2400}
mem=${IKELINK_VM_MEM:-3072}
smp=${IKELINK_VM_SMP:-2}
while [ $# -gt 0 ]; do
    case "$1" in
        --timeout) timeout_s=$2; shift 2 ;;
        --mem) mem=$2; shift 2 ;;
        --smp) smp=$2; shift 2 ;;
        --) shift; break ;;
        -*) echo "vm-run: unknown option $1" >&2; exit 125 ;;
        *) break ;;
    esac
done
if [ $# -eq 0 ]; then
    echo "usage: scripts/vm-run.sh [--timeout SECS] [--mem MB] [--smp N] [--] COMMAND [ARGS...]" >&2
    exit 125
fi
if [ "$(id -u)" != 0 ]; then
    echo "vm-run: needs root (the guest runs the command as root over the host's files)" >&2
    exit 125
fi

# Modules the guest loads besides the ones for its root (module autoloading works too, through busybox
# modprobe, but these are loaded up front): kernel ESP (IPv4/IPv6, transport and tunnel mode, XFRM netlink API,
# the AEAD/CBC constructions it uses), the testbed's links and TUN, and the NAT/filter rules the harness writes
# with nft or iptables.
modules="xfrm_user xfrm_algo esp4 esp6 xfrm4_tunnel xfrm6_tunnel tunnel4 tunnel6 ip_tunnel authenc authencesn gcm \
ghash_generic seqiv echainiv chacha20poly1305 chacha_generic poly1305_generic aesni_intel cbc sha256_generic \
sha512_generic hmac veth tun virtio_rng nf_tables nfnetlink nf_conntrack nf_nat nf_defrag_ipv4 nft_ct nft_nat \
nft_masq nft_chain_nat nft_numgen nft_fib_ipv4 nft_reject_ipv4 nft_compat ip_tables iptable_filter iptable_nat \
iptable_raw iptable_mangle x_tables xt_MASQUERADE xt_conntrack xt_tcpudp xt_policy nf_reject_ipv4 af_key"

# --- tools ---
need=""
command -v qemu-system-x86_64 >/dev/null || need="$need qemu-system-x86"
[ -x /bin/busybox ] && dpkg -s busybox-static >/dev/null 2>&1 || need="$need busybox-static"
if [ -n "$need" ]; then
    echo "vm-run: installing$need" >&2
    apt-get update -qq >&2
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >&2
fi

mkdir -p "$repo/target/vm"
cache="$repo/target/vm"

# --- kernel (cached; the build is serialised with a lock so concurrent runs share it) ---
kernel=${IKELINK_VM_KERNEL:-stock}
case "$kernel" in
    stock) ;;
    espintcp)
        # Built (once) under its own lock: runs with the stock kernel need not wait for its tens of minutes.
        kroot=$("$repo/scripts/vm-kernel-espintcp.sh" | tail -n1) || { echo "vm-run: no espintcp kernel" >&2; exit 125; }
        ;;
    *) echo "vm-run: IKELINK_VM_KERNEL must be stock or espintcp, not $kernel" >&2; exit 125 ;;
esac
exec 9>"$cache/.lock"
flock 9
if [ "$kernel" = stock ]; then
    pkg=$("$repo/scripts/vm/stock-kernel-package.sh")
    if [ -z "$pkg" ]; then
        # Offline: any kernel unpacked earlier.
        pkg=$(ls "$cache/kernel" 2>/dev/null | grep '^linux-image-' | sort -V | tail -n1 || true)
        [ -n "$pkg" ] || { echo "vm-run: no linux-image-6.1.0-*-amd64 package known to apt" >&2; exit 125; }
    fi
    kroot="$cache/kernel/$pkg"
    if [ ! -e "$kroot/.done" ]; then
        echo "vm-run: fetching $pkg (apt-get download, unpacked into $kroot)" >&2
        rm -rf "$kroot" "$cache/dl"
        mkdir -p "$cache/dl" "$kroot"
        # As root (apt's sandbox user may not reach the repository's directory); the file is only unpacked.
        (cd "$cache/dl" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2)
        dpkg -x "$cache"/dl/"$pkg"_*.deb "$kroot"
        rm -rf "$cache/dl"
        kv=$(ls "$kroot/lib/modules")
        busybox depmod -b "$kroot" "$kv"
        touch "$kroot/.done"
    fi
fi
kver=$(ls "$kroot/lib/modules")
kdir="$kroot/lib/modules/$kver"
vmlinuz="$kroot/boot/vmlinuz-$kver"

# --- initramfs: busybox, /init, and the modules for the 9p root with their dependencies ---
initrd="$cache/initramfs-$kver.cpio.gz"
stamp=$(cat "$repo/scripts/vm/init" /bin/busybox | md5sum | cut -c1-16)
if [ ! -e "$initrd" ] || [ "$(cat "$initrd.stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "vm-run: building $initrd" >&2
    st="$cache/initramfs-staging"
    rm -rf "$st"
    mkdir -p "$st/bin" "$st/lib/modules/$kver"
    cp /bin/busybox "$st/bin/busybox"
    install -m 0755 "$repo/scripts/vm/init" "$st/init"
    cp "$kdir"/modules.dep "$kdir"/modules.alias "$kdir"/modules.symbols "$kdir"/modules.builtin \
        "$st/lib/modules/$kver/"
    files=""
    for m in virtio_pci 9pnet_virtio 9p overlay; do
        line=$(grep -E "(^|/)$m\.ko:" "$kdir/modules.dep") || { echo "vm-run: module $m not in $kver" >&2; exit 125; }
        files="$files $(printf '%s' "$line" | tr -d ':')"
    done
    for f in $files; do
        mkdir -p "$st/lib/modules/$kver/$(dirname "$f")"
        cp "$kdir/$f" "$st/lib/modules/$kver/$f"
    done
    (cd "$st" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$initrd.tmp")
    mv "$initrd.tmp" "$initrd"
    echo "$stamp" >"$initrd.stamp"
    rm -rf "$st"
fi
flock -u 9
exec 9>&-

# --- the run: a private directory shared read-write with the guest (vm.conf, cmd.sh, console.log, status) ---
run=$(mktemp -d "$cache/run.XXXXXX")
chmod 0755 "$run"
qpid=""
tpid=""
cleanup() {
    # Only what this script started, by PID.
    [ -n "$tpid" ] && kill "$tpid" 2>/dev/null
    [ -n "$qpid" ] && kill "$qpid" 2>/dev/null
    rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
    echo "KVER_DIR='$kdir'"
    echo "MODULES='$modules'"
    echo "CMD='$run/cmd.sh'"
} >"$run/vm.conf"
{
    echo "#!/bin/bash"
    echo "# generated by scripts/vm-run.sh (run with bash: the arguments are quoted with printf %q)"
    printf 'export PATH=%q HOME=%q LANG=C.UTF-8 TERM=dumb\n' "$PATH" "${HOME:-/root}"
    for name in $(compgen -e); do
        case "$name" in
            IKELINK_VM_*) ;;
            IKELINK_* | RUST_* | CARGO_TERM_*) printf 'export %s=%q\n' "$name" "${!name}" ;;
        esac
    done
    [ "$kernel" = espintcp ] && echo "export IKELINK_ESPINTCP=1"
    printf 'cd %q || exit 125\n' "$PWD"
    printf 'exec'
    printf ' %q' "$@"
    printf '\n'
} >"$run/cmd.sh"

: >"$run/console.log"
echo "vm-run: booting $kver under TCG (${smp} vCPUs, ${mem} MB, at most ${timeout_s} s)" >&2
start=$(date +%s)
# The guest console goes to a file that is followed live; stdin is not the guest's.
nice -n 10 timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 \
    -accel tcg -cpu max -smp "$smp" -m "$mem" \
    -display none -monitor none -serial "file:$run/console.log" -no-reboot \
    -nic none -device virtio-rng-pci \
    -kernel "$vmlinuz" -initrd "$initrd" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init" \
    -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$run,mount_tag=vmrun,security_model=none" \
    </dev/null &
qpid=$!
tail -n +1 --pid="$qpid" -f "$run/console.log" &
tpid=$!
set +e
wait "$qpid"
qrc=$?
set -e
qpid=""
wait "$tpid" 2>/dev/null || true
tpid=""
elapsed=$(($(date +%s) - start))
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    echo "vm-run: the VM run timed out after ${timeout_s} s" >&2
    exit 124
fi
if [ ! -s "$run/status" ]; then
    echo "vm-run: the VM stopped (qemu status $qrc) without the command's exit status, after ${elapsed} s" >&2
    exit 125
fi
rc=$(cat "$run/status")
echo "vm-run: command exited with $rc after ${elapsed} s in the VM" >&2
exit "$rc"
