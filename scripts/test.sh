#!/usr/bin/env bash
# Sets up prerequisites, then runs the whole test suite: Swift tests (unit, property, integration
# against the real daemon, socket and shard files), the Python client's tests, and a release smoke
# test of the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
py="$(scripts/python.sh)"   # the interpreter setup.sh installed into (a venv where the system Python is managed)
swift build --build-tests
# ServerTests' AllocationTests counts the optimised daemon's allocations per batch (a debug build's
# unspecialised generics allocate): its probe is a release build, named here so that a missing one fails.
swift build -c release --product AllocationProbe
export TOKENFEED_ALLOCATION_PROBE="$(swift build -c release --show-bin-path)/AllocationProbe"
swift test --skip-build 2>&1 | tee .build/swift-test.log
if [ -d clients/python/tests ] && ls clients/python/tests/test_*.py >/dev/null 2>&1; then
  PATH="$(swift build --show-bin-path):$PATH" "$py" -m pytest -q -rs clients/python/tests
fi
# Release smoke test: the main job end to end with optimised binaries (some bugs only show there —
# e.g. a daemon that ignored SIGTERM in release builds). Bounded: a hang fails the run.
swift build -c release --product tokenfeed
swift build -c release --product tokenfeedd
smoke="$(mktemp -d)"
timeout 600 "$(swift build -c release --show-bin-path)/tokenfeed" demo --out "$smoke" > "$smoke.log" 2>&1 \
  || { tail -40 "$smoke.log"; echo "release smoke test (tokenfeed demo) failed" >&2; exit 1; }
grep -q "tokenfeedd stopped (SIGTERM), exit status 0" "$smoke.log" \
  || { tail -40 "$smoke.log"; echo "release smoke test: tokenfeedd did not stop cleanly" >&2; exit 1; }
echo "release smoke test: tokenfeed demo passed"
rm -rf "$smoke" "$smoke.log"
