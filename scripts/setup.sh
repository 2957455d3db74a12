#!/usr/bin/env bash
# Installs what tokenfeed needs to build and test, where it is missing:
# Debian packages libzstd-dev, libyaml-dev, zlib1g-dev, pkg-config, zstd; Python packages for the client tests.
# Swift 6.1 or later must already be on PATH.
set -euo pipefail

need=()
for pkg in libzstd-dev libyaml-dev zlib1g-dev pkg-config zstd python3-venv; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

command -v swift >/dev/null || { echo "setup: swift is not on PATH (Swift 6.1 or later is required)" >&2; exit 1; }

# Python packages used by the Python client and its tests.
python3 -c "import numpy, pytest" 2>/dev/null || python3 -m pip install -q numpy pytest
