#!/usr/bin/env python3
"""A stand-in for a mobile VPN app, driving ikelink-ffi through its generated Python bindings.

Run by testbed/tests/interop_ffi.rs as root inside the client namespace:

    vpn_app.py BINDINGS_DIR GOOD_PROFILE WRONG_PSK_PROFILE DEADLINE_SECS

Like Android's VpnService, its TUN provider opens /dev/net/tun (IFF_TUN | IFF_NO_PI), gives the interface the
virtual IP, MTU and routes it is handed (with `ip`, as VpnService.Builder would) and returns the descriptor; its
socket protector records the descriptors it is given. Every event and callback is printed as one JSON line on
stdout. Commands come on stdin: `stats`, `network_changed`, then `disconnect`; after `Closed` it connects again with the
wrong pre-shared key, then with a TUN provider that refuses, expects typed errors, and exits 0. SIGALRM bounds the whole run.
"""

import fcntl
import json
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading

bindings, good_profile, wrong_profile, deadline = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
signal.alarm(deadline)  # default action: terminate
sys.path.insert(0, bindings)
import ikelink_ffi as ik  # noqa: E402

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
TIMEOUT = 20

out_lock = threading.Lock()
events = queue.Queue()


def out(kind, **fields):
    with out_lock:
        print(json.dumps({"kind": kind, **fields}), flush=True)


def prefix(p):
    return None if p is None else f"{p.address}/{p.prefix_length}"


def error_json(e):
    return None if e is None else {"type": type(e).__name__, "message": str(e)}


class Listener(ik.VpnListener):
    def on_event(self, event):
        if event.is_state_changed():
            out("state", state=event.state.name)
        elif event.is_connected():
            d = event.details
            out("connected", virtual_ipv4=d.virtual_ipv4, dns=d.dns_servers, routes=[prefix(r) for r in d.routes],
                ike=d.ike_suite, esp=d.esp_suite, remote_id=d.remote_id)
        elif event.is_tunnel_up():
            out("tunnel_up", interface=event.interface, mtu=event.mtu)
        elif event.is_stats():
            s = event.stats
            out("stats", packets_in=s.packets_in, packets_out=s.packets_out, bytes_in=s.bytes_in,
                bytes_out=s.bytes_out, dropped=s.packets_dropped)
        elif event.is_reconnecting():
            out("reconnecting", attempt=event.attempt, reason=error_json(event.reason))
        elif event.is_closed():
            out("closed", error=error_json(event.error))
        elif event.is_rekeyed():
            out("rekeyed", esp=event.esp_suite)
        events.put(event)


class Tun(ik.TunProvider):
    """What VpnService.Builder.establish() does, with /dev/net/tun and ip(8)."""

    def __init__(self):
        self.fds = []
        self.refuse = False

    def open_tun(self, settings):
        if self.refuse:
            out("open_tun_refused")
            raise ik.CallbackError.Failed("the user revoked the VPN permission")
        fd = os.open("/dev/net/tun", os.O_RDWR)
        ifr = fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", b"iklffi%d", IFF_TUN | IFF_NO_PI))
        name = ifr[:16].rstrip(b"\0").decode()
        ip = ["ip"]
        subprocess.run(ip + ["link", "set", name, "mtu", str(settings.mtu), "up"], check=True, timeout=10)
        if settings.ipv4 is not None:
            subprocess.run(ip + ["addr", "add", prefix(settings.ipv4), "dev", name], check=True, timeout=10)
        for r in settings.routes:
            subprocess.run(ip + ["route", "replace", prefix(r), "dev", name], check=True, timeout=10)
        # Like an Android app after establish() with new settings: close the previous interface's descriptor.
        self.close_all()
        self.fds.append(fd)
        out("open_tun", interface=name, fd=fd, ipv4=prefix(settings.ipv4), mtu=settings.mtu,
            routes=[prefix(r) for r in settings.routes], dns=settings.dns_servers, domains=settings.search_domains,
            gateway=settings.gateway)
        return fd

    def close_all(self):
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


class Protector(ik.SocketProtector):
    """Records what VpnService.protect(fd) would be called with (and that it is a UDP socket then)."""

    def protect(self, fd):
        s = socket.socket(fileno=os.dup(fd))
        try:
            out("protect", fd=fd, udp=s.type == socket.SOCK_DGRAM, port=s.getsockname()[1])
        finally:
            s.close()


class Log(ik.LogSink):
    def log(self, level, target, message):
        print(f"{level.name} {target}: {message}", file=sys.stderr, flush=True)


def wait_for(pred, what):
    try:
        while True:
            e = events.get(timeout=TIMEOUT)
            if pred(e):
                return e
    except queue.Empty:
        out("fail", reason=f"timed out waiting for {what}")
        os._exit(1)  # without interpreter shutdown: Ikelink's threads may be calling into Python


def main():
    ik.set_logger(ik.LogLevel.INFO, Log())
    tun = Tun()
    client = ik.VpnClient(Listener(), tun, Protector())
    options = ik.ConnectOptions(reconnect=True, reconnect_max_delay_secs=2)

    client.connect(open(good_profile).read(), options)
    try:
        client.connect(open(good_profile).read(), options)
        out("fail", reason="a second connect was accepted")
    except ik.VpnError.AlreadyConnected as e:
        out("already_connected", error=error_json(e))
    e = wait_for(lambda e: e.is_connected() or e.is_closed(), "Connected")
    if e.is_closed():
        out("fail", reason="closed instead of connected")
        os._exit(1)
    out("status", state=client.status().state.name, virtual_ipv4=client.status().details.virtual_ipv4)

    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "stats":
            client.request_stats()
            wait_for(lambda e: e.is_stats(), "Stats")
        elif cmd == "network_changed":
            client.network_changed()
            out("network_changed")
        elif cmd == "disconnect":
            client.disconnect()
            wait_for(lambda e: e.is_closed(), "Closed")
            break
    tun.close_all()
    out("status", state=client.status().state.name)

    try:
        client.disconnect()
        out("fail", reason="disconnect without a session was accepted")
    except ik.VpnError.NotConnected as e:
        out("not_connected", error=error_json(e))

    # The same client again, with the wrong pre-shared key: a typed error, no TUN.
    client.connect(open(wrong_profile).read(), options)
    wait_for(lambda e: e.is_closed(), "Closed after the wrong PSK")
    out("status", state=client.status().state.name, last_error=error_json(client.status().last_error))
    # The OS refuses the TUN: the session ends with a typed platform error (and deletes its SAs).
    tun.refuse = True
    client.connect(open(good_profile).read(), options)
    wait_for(lambda e: e.is_closed(), "Closed after the refused TUN")
    try:
        client.connect(open(good_profile).read(), ik.ConnectOptions(mtu=100))
        out("fail", reason="mtu 100 was accepted")
    except ik.VpnError.InvalidOptions as e:
        out("invalid_options", error=error_json(e))
    try:
        broken = open(good_profile).read().replace('method = "psk"', 'method = "nope"')
        client.connect(broken, options)
        out("fail", reason="a broken profile was accepted")
    except ik.VpnError.InvalidProfile as e:
        out("invalid_profile", error=error_json(e))
    # On the test's word: connected once more, then the client is dropped without disconnect(); it still
    # deletes its SAs.
    out("ready_for_drop")
    if sys.stdin.readline().strip() != "drop":
        out("fail", reason="expected the drop command")
        os._exit(1)
    tun.refuse = False
    client.connect(open(good_profile).read(), options)
    e = wait_for(lambda e: e.is_connected() or e.is_closed(), "Connected before the drop")
    if e.is_closed():
        out("fail", reason="closed instead of connected before the drop")
        os._exit(1)
    out("connected_before_drop")
    del client  # stops Ikelink's runtime before the interpreter shuts down
    tun.close_all()
    out("done")


if __name__ == "__main__":
    main()
