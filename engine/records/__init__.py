"""Layer 2: what the catalog records: registry, stage runs, provenance, audit log."""
