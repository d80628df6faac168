"""Layer 3: data in: ingest, the contract, labels, quarantine, datasets, features."""
