#!/bin/bash
# Waits (at most $1 seconds, default 600) until this node's tokenfeedd answers on $TOKENFEED_SOCKET.
set -euo pipefail
: "${TOKENFEED_SOCKET:?}"
deadline=$(( $(date +%s) + ${1:-600} ))
until tokenfeed stats --socket "$TOKENFEED_SOCKET" > /dev/null 2>&1; do
  if (( $(date +%s) >= deadline )); then
    echo "$(hostname -s): tokenfeedd did not become ready on $TOKENFEED_SOCKET" >&2
    exit 1
  fi
  sleep 1
done
