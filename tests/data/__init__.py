"""engine/data: ingest, file arrivals, headers, labels, quarantine, datasets."""
