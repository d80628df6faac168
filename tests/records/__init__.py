"""engine/records: the registry and its aliases."""
