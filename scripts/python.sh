#!/usr/bin/env bash
# Prints the Python interpreter scripts/setup.sh installed the test packages into: .venv's when it
# exists (created by setup.sh when the system Python is externally managed, or for torch), else python3.
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then
  echo "$PWD/.venv/bin/python"
else
  command -v python3
fi
