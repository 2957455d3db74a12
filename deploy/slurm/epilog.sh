#!/bin/bash
# Slurm epilog fragment (slurm.conf: Epilog=/etc/slurm/epilog.d/*): removes what a job's tokenfeedd
# left on this node if the job was killed before the daemon could clean up.
pkill -TERM -u "$SLURM_JOB_USER" -f "tokenfeedd .*--socket /tmp/tokenfeed-$SLURM_JOB_ID/" 2>/dev/null || true
rm -rf "/tmp/tokenfeed-$SLURM_JOB_ID"
exit 0
