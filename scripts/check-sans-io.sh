#!/bin/sh
# The sans-IO rule, checked (issue 12): the protocol crate ikelink-proto (core/proto) depends on no runtime,
# socket, TUN or OS crate on any target, and its sources read no clock, file system or socket. The one clock
# read allowed is the test-support time base `fuzzing::epoch()` (fuzz targets and the simulator need some
# `Instant` to start from). Exits non-zero, naming what it found, otherwise.
set -eu
cd "$(dirname "$0")/.."
fail=0
forbidden='tokio|tun|tun-rs|nix|socket2|windows-sys|rustls-native-certs|mio|httparse'
found=$(cargo tree -q -p ikelink-proto --target all -e normal,build --prefix none --no-dedupe 2>/dev/null \
    | awk '{print $1}' | grep -E -x "($forbidden)" | sort -u || true)
if [ -n "$found" ]; then
    echo "check-sans-io: ikelink-proto depends on: $found" >&2
    cargo tree -q -p ikelink-proto --target all -e normal,build -i "$(echo "$found" | head -1)" >&2 || true
    fail=1
fi
hits=$(grep -rnE 'Instant::now|SystemTime|std::fs|fs::(read|write|File|create|remove|open)|UdpSocket|TcpStream|std::net::(UdpSocket|TcpListener)|std::thread::spawn|std::env::(var|temp_dir)' \
    core/proto/src | grep -v -E '^core/proto/src/fuzzing/mod.rs:[0-9]+:.*EPOCH.get_or_init\(std::time::Instant::now\)' \
    | grep -v -E '^[^:]+:[0-9]+:\s*//' || true)
if [ -n "$hits" ]; then
    echo "check-sans-io: clock, file or socket use in core/proto/src:" >&2
    echo "$hits" >&2
    fail=1
fi
[ "$fail" = 0 ] && echo "check-sans-io: ok (ikelink-proto has no runtime dependency and reads no clock, file or socket)"
exit "$fail"
