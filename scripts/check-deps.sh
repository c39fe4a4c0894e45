#!/bin/sh
# Every program, strongSwan plugin and library file the tests and the demo rely on must come from a Debian
# package that scripts/install-deps.sh names: a package installed by hand on a developer's machine would
# otherwise hide a missing install step until a fresh machine fails (issue 11). Maps each file to its package
# with `dpkg -S` and fails, listing them, when a package is not in the install list.
#   scripts/check-deps.sh [INSTALL_SCRIPT]    (default: scripts/install-deps.sh)
set -eu
cd "$(dirname "$0")/.."
install=${1:-scripts/install-deps.sh}

# The install list, as the install script reports it (`--list`). A package counts as installed by the script if
# it is listed or a dependency of one that is.
listed=$(sh "$install" --list | tr -s ' ' '\n')

# What installing them brings along: the listed packages and their dependencies (recursively, as installed).
# shellcheck disable=SC2086
closure=$(printf '%s\n' "$listed" | grep -v '^$' | xargs apt-cache depends --recurse --installed --no-recommends \
    --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances 2>/dev/null | grep -v '^ ' | sort -u)

# Programs run by the harness, the tests, the demo and the build checks (inside the namespaces or not).
programs="charon-systemd swanctl pki ip iperf3 nft iptables tcpdump ping sysctl conntrack ethtool ss tc pidof \
python3 openssl freeradius x86_64-w64-mingw32-gcc java javac certutil pk12util unshare cc c++ iked ikectl wg"
# strongSwan plugins charon loads (testbed/src/harness/charon.rs, PLUGINS), where installed.
plugins=$(sed -n '/^pub const PLUGINS/,/^];/p' testbed/src/harness/charon.rs | grep -o '"[a-z0-9-]*"' | tr -d '"')
# Library files used by path.
files="/usr/share/java/jna.jar /usr/share/java/junit4.jar /usr/lib/wine/wine64 /usr/lib/wine/wineserver"

missing=""
unowned=""
check_file() {
    # $1: the file, $2: what it is (for the message)
    pkg=$(dpkg -S "$1" 2>/dev/null | head -n1 | cut -d: -f1 | cut -d, -f1) || true
    if [ -z "$pkg" ]; then
        # Resolved through a symlink (e.g. /usr/bin/java -> /etc/alternatives/...)?
        real=$(readlink -f "$1" 2>/dev/null || true)
        if [ -n "$real" ] && [ "$real" != "$1" ]; then
            pkg=$(dpkg -S "$real" 2>/dev/null | head -n1 | cut -d: -f1 | cut -d, -f1) || true
        fi
    fi
    if [ -z "$pkg" ]; then
        unowned="$unowned\n  $2 ($1): no Debian package owns it"
        return
    fi
    if ! printf '%s\n' "$closure" | grep -qx "$pkg"; then
        missing="$missing\n  $2 ($1) comes from package $pkg, which $install does not install"
    fi
}

for p in $programs; do
    # Debian's own python3, not a pyenv or venv one earlier on PATH.
    path=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$p" 2>/dev/null || true)
    if [ -z "$path" ]; then
        unowned="$unowned\n  program $p: not found (install-deps did not provide it)"
        continue
    fi
    # dpkg knows /usr/bin/x or /bin/x (merged /usr): try both spellings.
    if ! dpkg -S "$path" >/dev/null 2>&1; then
        alt=$(printf '%s' "$path" | sed 's|^/usr/bin/|/bin/|; s|^/usr/sbin/|/sbin/|')
        [ "$alt" != "$path" ] && dpkg -S "$alt" >/dev/null 2>&1 && path=$alt
    fi
    check_file "$path" "program $p"
done
for p in $plugins; do
    f="/usr/lib/ipsec/plugins/libstrongswan-$p.so"
    # Plugins Debian does not build (charon skips them) have no file; those it builds must be installed.
    [ -e "$f" ] && check_file "$f" "strongSwan plugin $p"
done
for f in $files; do
    if [ -e "$f" ]; then
        check_file "$f" "library"
    else
        unowned="$unowned\n  library $f: missing"
    fi
done

if [ -n "$missing$unowned" ]; then
    printf 'check-deps: the install script does not cover what the tests use:%b%b\n' "$missing" "$unowned" >&2
    exit 1
fi
echo "check-deps: every program, plugin and library the tests use comes from a package install-deps.sh names"
