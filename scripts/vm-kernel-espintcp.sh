#!/usr/bin/env bash
# Builds the VM kernel with espintcp (RFC 9329 ESP-in-TCP in the kernel, CONFIG_INET_ESPINTCP and
# CONFIG_INET6_ESPINTCP), for the TCP-encapsulation interop tests against libreswan: pluto attaches the kernel's
# espintcp to every TCP stream (`setsockopt(TCP_ULP, "espintcp")`) and closes the stream when that fails, and no
# Debian kernel (bookworm's stock 6.1 included) has espintcp. Not part of the default `scripts/test.sh` run (CI
# builds no kernel): `IKELINK_VM=1 IKELINK_VM_KERNEL=espintcp scripts/test.sh` and
# `IKELINK_VM_KERNEL=espintcp scripts/vm-run.sh ...` call it, and it can be run alone (it prints the tree's path).
#
#   scripts/vm-kernel-espintcp.sh        # builds once (cached), then prints target/vm/kernel/espintcp-<version>
#
# What it does: `apt-get download linux-source-6.1` (Debian's patched source, the version of the stock
# linux-image-6.1.0-*-amd64 that scripts/vm-run.sh boots) and that stock image, both only unpacked (dpkg -x, never
# installed); takes the stock image's /boot/config-*, trims it with `make localmodconfig` to the modules the VM
# uses (the list below, with their dependencies: every module of the stock kernel under the directories named
# there), turns on espintcp, turns off debug info, BTF and module signing and compression, and builds bzImage and
# the modules under `nice -n 10` with `make -j$(nproc)`. The result has the layout scripts/vm-run.sh expects:
# target/vm/kernel/espintcp-<version>/boot/vmlinuz-<kver> and lib/modules/<kver>/ with modules.dep from
# `busybox depmod`, and a .done stamp. The build tree (target/vm/kernel-build, about 4 GB) is deleted afterwards
# unless IKELINK_VM_KERNEL_KEEP=1. Serialised with flock on target/vm/.lock-espintcp.
#
# Build time on this 2-core machine (nice 10, no other load): see scripts/README.md.
#
# Packages it installs when missing (apt-get install --no-install-recommends): build-essential bc bison flex
# libelf-dev libssl-dev xz-utils (the kernel build), busybox-static (depmod).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache="$repo/target/vm"
mkdir -p "$cache/kernel"
if [ "$(id -u)" != 0 ]; then
    echo "vm-kernel-espintcp: needs root (apt-get)" >&2
    exit 1
fi

# Directories (under the stock kernel's lib/modules/<kver>/kernel/) whose modules are kept as modules: the
# guest's root (virtio, 9p, overlayfs), its RNG, IPsec (XFRM, ESP, AF_KEY, tunnels), every crypto module, the
# whole netfilter (nftables and iptables: NAT, filter, reject, numgen, conntrack...), IPv4/IPv6, veth, tun and
# dummy links, and the library modules they use.
keep_dirs="net/netfilter net/ipv4 net/ipv6 net/xfrm net/key net/9p net/core net/sched crypto arch/x86/crypto lib \
fs/9p fs/overlayfs drivers/virtio drivers/char/hw_random drivers/net/veth.ko drivers/net/tun.ko \
drivers/net/dummy.ko drivers/net/ifb.ko"

lock="$cache/.lock-espintcp"
exec 9>"$lock"
flock 9

need=""
for p in build-essential bc bison flex libelf-dev libssl-dev xz-utils busybox-static; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
    echo "vm-kernel-espintcp: installing$need" >&2
    apt-get update -qq >&2
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >&2
fi

# The stock image package (as vm-run.sh picks it) and the source of the same version.
pkg=$("$repo/scripts/vm/stock-kernel-package.sh")
[ -n "$pkg" ] || { echo "vm-kernel-espintcp: no linux-image-6.1.0-*-amd64 package known to apt" >&2; exit 1; }
version=$(apt-cache show "$pkg" | sed -n 's/^Version: //p' | head -n1)
srcversion=$(apt-cache show linux-source-6.1 | sed -n 's/^Version: //p' | head -n1)
if [ "$version" != "$srcversion" ]; then
    echo "vm-kernel-espintcp: $pkg is $version but linux-source-6.1 is $srcversion (apt-get update?)" >&2
    exit 1
fi
out="$cache/kernel/espintcp-$version"
if [ -e "$out/.done" ]; then
    echo "$out"
    exit 0
fi

build="$cache/kernel-build"
echo "vm-kernel-espintcp: building the espintcp kernel $version in $build (tens of minutes)" >&2
started=$(date +%s)
rm -rf "$build" "$out"
mkdir -p "$build/dl" "$build/stock" "$build/src"
# As root (apt's sandbox user may not reach the repository's directory); the files are only unpacked.
(cd "$build/dl" && apt-get download -q -o APT::Sandbox::User=root "$pkg" "linux-source-6.1=$version" >&2)
dpkg -x "$build"/dl/"$pkg"_*.deb "$build/stock"
dpkg -x "$build"/dl/linux-source-6.1_*.deb "$build/src"
rm -rf "$build/dl"
tar -C "$build" -xJf "$build"/src/usr/src/linux-source-6.1.tar.xz
rm -rf "$build/src"
ksrc="$build/linux-source-6.1"
stockver=$(ls "$build/stock/lib/modules")
cp "$build/stock/boot/config-$stockver" "$ksrc/.config"

# The modules to keep, in lsmod's format (localmodconfig reads the first word of each line after the header).
{
    echo "Module Size Used"
    for d in $keep_dirs; do
        p="$build/stock/lib/modules/$stockver/kernel/$d"
        [ -e "$p" ] || continue
        find "$p" -name '*.ko' -printf '%f\n'
    done | sed 's/\.ko$//; s/-/_/g' | sort -u | sed 's/$/ 0 0/'
} >"$build/lsmod"
echo "vm-kernel-espintcp: keeping $(($(wc -l <"$build/lsmod") - 1)) modules" >&2
rm -rf "$build/stock"

cd "$ksrc"
(yes '' || true) | LSMOD="$build/lsmod" make localmodconfig >"$build/localmodconfig.log" 2>&1 ||
    { tail -n 30 "$build/localmodconfig.log" >&2; exit 1; }
scripts/config --file .config \
    -e INET_ESPINTCP -e INET6_ESPINTCP \
    -d DEBUG_INFO -d DEBUG_INFO_DWARF5 -d DEBUG_INFO_DWARF4 -d DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT \
    -e DEBUG_INFO_NONE -d DEBUG_INFO_BTF -d DEBUG_INFO_BTF_MODULES \
    -d MODULE_SIG -d MODULE_SIG_ALL -d MODULE_SIG_FORCE --set-str MODULE_SIG_KEY "" \
    --set-str SYSTEM_TRUSTED_KEYS "" --set-str SYSTEM_REVOCATION_KEYS "" \
    -d MODULE_COMPRESS_XZ -d MODULE_COMPRESS_GZIP -d MODULE_COMPRESS_ZSTD -e MODULE_COMPRESS_NONE \
    --set-str LOCALVERSION "-espintcp" -d LOCALVERSION_AUTO
make olddefconfig >>"$build/localmodconfig.log" 2>&1
for opt in CONFIG_INET_ESPINTCP=y CONFIG_INET6_ESPINTCP=y CONFIG_INET_ESP=m CONFIG_XFRM_USER=m CONFIG_NET_9P_VIRTIO=m \
    CONFIG_OVERLAY_FS=m CONFIG_TUN=m CONFIG_VETH=m CONFIG_NFT_REJECT_INET=m CONFIG_NFT_NUMGEN=m; do
    grep -qx "$opt" .config || { echo "vm-kernel-espintcp: the trimmed config lacks $opt" >&2; exit 1; }
done
jobs=$(nproc)
nice -n 10 make -j"$jobs" bzImage modules >"$build/make.log" 2>&1 || { tail -n 40 "$build/make.log" >&2; exit 1; }
kver=$(make -s kernelrelease)
tree="$out.tmp"
rm -rf "$tree"
mkdir -p "$tree/boot"
nice -n 10 make INSTALL_MOD_PATH="$tree" INSTALL_MOD_STRIP=1 DEPMOD=/bin/true modules_install \
    >>"$build/make.log" 2>&1 || { tail -n 40 "$build/make.log" >&2; exit 1; }
rm -f "$tree/lib/modules/$kver/build" "$tree/lib/modules/$kver/source"
cp arch/x86/boot/bzImage "$tree/boot/vmlinuz-$kver"
cp .config "$tree/boot/config-$kver"
busybox depmod -b "$tree" "$kver"
cd "$repo"
mv "$tree" "$out"
touch "$out/.done"
elapsed=$(($(date +%s) - started))
echo "vm-kernel-espintcp: built $kver in ${elapsed} s ($(grep -c '\.ko:' "$out/lib/modules/$kver/modules.dep") modules)" >&2
if [ "${IKELINK_VM_KERNEL_KEEP:-0}" != 1 ]; then
    rm -rf "$build"
fi
echo "$out"
