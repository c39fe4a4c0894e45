#!/bin/sh
# Regenerates docs/interop.md, the interop matrix (issue 11): runs every interop test with the harness's
# recorder on (IKELINK_MATRIX: one JSON line per client run: gateway and version, authentication, result,
# negotiated suites) and renders what the tests saw. Needs root, like scripts/test.sh; takes as long as the
# interop tests. A failing test is reported, and its runs are still in the matrix as what they were.
set -eu
cd "$(dirname "$0")/.."
out=target/interop-matrix.jsonl
mkdir -p target docs
rm -f "$out"
status=0
IKELINK_INTEROP=1 IKELINK_MATRIX="$PWD/$out" cargo test -p ikelink-testbed --tests --no-fail-fast --locked \
    -- --test-threads=2 || status=$?
python3 scripts/render-interop-matrix.py "$out" > docs/interop.md
echo "interop-matrix: docs/interop.md written from $(wc -l < "$out") client runs (tests exit status $status)"
exit "$status"
