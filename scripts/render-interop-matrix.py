#!/usr/bin/env python3
"""Renders the interop matrix (docs/interop.md) from the JSON lines the harness records (scripts/interop-matrix.sh)."""
import collections
import datetime
import json
import sys

rows = []
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        line = line.strip()
        if line:
            rows.append(json.loads(line))

def key(r):
    return (r["gateway"], r.get("transport") or "", r["client_auth"], r["gateway_auth"], r.get("ike") or "",
            r.get("pq") or "", r.get("esp") or "", r["result"])

groups = collections.OrderedDict()
for r in sorted(rows, key=key):
    groups.setdefault(key(r), set()).add(r["test"])

def cell(s):
    return (s or "").replace("|", "\\|")

print("# Interop matrix")
print()
print("What the interop tests saw, gateway by gateway: every run of the `ikelink` client against a real gateway in the")
print("project's network namespaces (`testbed/tests/interop_*.rs`), recorded by the harness and rendered by")
print("`scripts/interop-matrix.sh` (run it as root to regenerate this page). \"Refused\" rows are the failures the")
print("tests provoke on purpose (wrong password, untrusted or revoked certificate, wrong identity...) and check.")
print(f"Generated {datetime.date.today().isoformat()} from {len(rows)} client runs.")
print()
print("Notes: this machine's kernel has no ESP, so here libreswan authenticates and establishes the IKE SA, then")
print("refuses the Child SA it cannot install (TS_UNACCEPTABLE, which the tests check); with kernel ESP")
print("(`IKELINK_VM=1 ./scripts/test.sh`, a VM with Debian's stock kernel) the same tests connect and carry ping and")
print("iperf3 (PSK, RSA, ECDSA, EAP-TLS). OpenIKED needs PF_KEY, which this kernel lacks: a stand-in acknowledges its")
print("SAs without installing them, so its rows prove the IKE and Child SA negotiation, not traffic. Over TCP (RFC 9329)")
print("libreswan here reaches the IKE SA; ESP in TCP needs the espintcp VM kernel (`IKELINK_VM_KERNEL=espintcp`).")
print("Transport: what the client reported once connected, UDP 500/4500 or one TCP stream (RFC 9329); for a run that")
print("did not connect, what its profile asked for. PQ: what the client reported beyond the suite (`ppk=used`,")
print("`ppk=not-used`, `pq-fallback=classical`); the suite's `keN_` parts are the RFC 9370 additional key exchanges.")
for title, pick in (("Connections", lambda k: k[5] == "connected"), ("Refusals checked", lambda k: k[5] != "connected")):
    print()
    print(f"## {title}")
    print()
    print("| Gateway | Transport | Client auth | Gateway auth | IKE | PQ | ESP | Result | Tests |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k, tests in groups.items():
        if not pick(k):
            continue
        gw, transport, ca, ga, ike, pq, esp, result = k
        names = ", ".join(sorted(t.split("::")[-1] for t in tests))
        print(f"| {cell(gw)} | {transport} | {ca} | {ga} | {cell(ike)} | {cell(pq)} | {cell(esp)} | {cell(result)} "
              f"| {cell(names)} |")
