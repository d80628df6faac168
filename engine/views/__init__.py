"""Layer 7: read-only answers: status, tables, report, doctor, lineage."""
