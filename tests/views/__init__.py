"""engine/views: the read-only answers, lineage, every version."""
