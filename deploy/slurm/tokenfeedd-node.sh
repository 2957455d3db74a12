#!/bin/bash
# Runs one node's tokenfeedd for the job (started by train.sbatch as a one-task-per-node step).
# The run folder (socket) is private to the job and removed when the daemon ends; the state folder
# (cursors, stats, bestfit row counts) stays on shared storage per node, for the next job to reuse.
set -euo pipefail
: "${CURRICULUM:?}" "${DATA_ROOT:?}" "${TOKENFEED_RUN_DIR:?}" "${TOKENFEED_SOCKET:?}"
state=${TOKENFEED_STATE_DIR:-$HOME/.local/state/tokenfeed/$(hostname -s)}
mkdir -p "$state"
chmod 0700 "$state"
install -d -m 0700 "$TOKENFEED_RUN_DIR"
trap 'rm -rf "$TOKENFEED_RUN_DIR"' EXIT
# Not exec: the trap removes the run folder when the daemon exits. SIGTERM is passed on.
tokenfeedd --curriculum "$CURRICULUM" --data-root "$DATA_ROOT" --socket "$TOKENFEED_SOCKET" \
           --state-dir "$state" &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null' TERM INT
wait "$daemon" || wait "$daemon"
