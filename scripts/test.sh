#!/usr/bin/env bash
# Sets up prerequisites, then runs the whole test suite: Swift tests (unit, property, integration
# against the real daemon, socket and shard files) and the Python client's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests
swift test --skip-build 2>&1 | tee .build/swift-test.log
if [ -d clients/python/tests ] && ls clients/python/tests/test_*.py >/dev/null 2>&1; then
  PATH="$(swift build --show-bin-path):$PATH" python3 -m pytest -q clients/python/tests
fi
