"""Storage: the DuckDB catalog and the content-addressed object store.

This package knows nothing of models, stages or the UI; it keeps bytes and rows
safe. `engine` decides what goes in them.
"""
