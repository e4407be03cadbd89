"""Context management: token accounting, the prune projection, and compaction."""
