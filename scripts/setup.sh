#!/usr/bin/env bash
# Installs what tokenfeed needs to build and test, where it is missing:
# Debian packages libzstd-dev, libyaml-dev, zlib1g-dev, pkg-config, zstd, python3-venv; Python packages
# for the client tests (numpy, pytest, prometheus_client — its text parser checks the daemon's
# /metrics; with torch: torch, torchdata, transformers, accelerate).
# Swift 6.2 or later must already be on PATH (swift-metrics 2.13 and swift-prometheus 2.4 need 6.2).
#
# Python: the packages go into a virtual environment, .venv at the repository root, when the system
# Python is externally managed (PEP 668: stock Debian 12 / Ubuntu 23.04 and later), when torch is
# installed, or when .venv already exists; otherwise into python3's own site-packages. scripts/test.sh
# uses the same interpreter (scripts/python.sh prints it).
#
# Torch (for the tokenfeed.torch tests and examples/): TOKENFEED_TORCH=1 installs it, TOKENFEED_TORCH=0
# does not; by default it is installed when a local CPU wheel is at hand (a torch-*.whl in /opt/wheels
# or $TOKENFEED_WHEELS), so CI does not download a multi-GB CUDA build. The other packages come from
# the package index.
set -euo pipefail
cd "$(dirname "$0")/.."

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

command -v swift >/dev/null || { echo "setup: swift is not on PATH (Swift 6.2 or later is required)" >&2; exit 1; }

# Torch wanted?
wheels="${TOKENFEED_WHEELS:-/opt/wheels}"
torch_wheel="$(ls "$wheels"/torch-*.whl 2>/dev/null | head -1 || true)"
case "${TOKENFEED_TORCH:-auto}" in
  1|yes|true) want_torch=1 ;;
  0|no|false) want_torch=0 ;;
  *) [ -n "$torch_wheel" ] && want_torch=1 || want_torch=0 ;;
esac

# Which Python: a venv when the system one is externally managed, for torch, or when one exists.
managed="$(python3 -c 'import os, sysconfig; print(int(os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))))')"
if [ -d .venv ] || [ "$managed" = 1 ] || [ "$want_torch" = 1 ]; then
  if [ ! -x .venv/bin/python ]; then
    echo "setup: creating the virtual environment .venv (system Python externally managed: $managed, torch: $want_torch)" >&2
    python3 -m venv .venv
  fi
fi
py="$(scripts/python.sh)"

# Python packages used by the Python client and its tests.
"$py" -c "import numpy, pytest, prometheus_client" 2>/dev/null || "$py" -m pip install -q numpy pytest prometheus_client
if [ "$want_torch" = 1 ] && ! "$py" -c "import torch, torchdata, transformers, accelerate" 2>/dev/null; then
  echo "setup: installing torch (CPU), torchdata, transformers and accelerate into $py" >&2
  if [ -n "$torch_wheel" ]; then
    # Pin the local wheel's version so pip does not prefer a newer (CUDA) build from the index.
    version="$(basename "$torch_wheel" | cut -d- -f2)"
    "$py" -m pip install -q --find-links "$wheels" "torch==$version"
  else
    "$py" -m pip install -q --index-url https://download.pytorch.org/whl/cpu torch
  fi
  "$py" -m pip install -q torchdata transformers accelerate
fi
