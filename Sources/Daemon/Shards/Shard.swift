// Token shards: see docs/SHARDS.md.
