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
# With cargo-nextest (scripts/install-deps.sh installs it), as scripts/test.sh runs them: each test its own
# process, several at once; every run appends its own line.
nextest=target/tools/nextest/bin/cargo-nextest
if [ ! -x "$nextest" ]; then
    echo "interop-matrix: $nextest missing (scripts/install-deps.sh installs it)" >&2
    exit 1
fi
IKELINK_INTEROP=1 IKELINK_MATRIX="$PWD/$out" "$nextest" nextest run -p ikelink-testbed --tests --no-fail-fast \
    --locked --test-threads "${IKELINK_TEST_THREADS:-6}" || status=$?
python3 scripts/render-interop-matrix.py "$out" > docs/interop.md
echo "interop-matrix: docs/interop.md written from $(wc -l < "$out") client runs (tests exit status $status)"
exit "$status"
