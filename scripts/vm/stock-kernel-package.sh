#!/bin/sh
# Prints the name of Debian 12's stock kernel image package, the one linux-image-amd64 depends on
# (linux-image-6.1.0-N-amd64), asking apt, with one `apt-get update` when apt does not know it yet; prints nothing
# when apt cannot tell (offline). Used by scripts/vm-run.sh and scripts/vm-kernel-espintcp.sh.
stock() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-amd64\)$/\1/p' | head -n1
}
pkg=$(stock || true)
if [ -z "$pkg" ]; then
    apt-get update -qq >&2 || true
    pkg=$(stock || true)
fi
[ -z "$pkg" ] || echo "$pkg"
