"""storage/: the catalog, migrations, the object store, the audit chain."""
