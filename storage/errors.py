"""Errors raised by the storage layer.

StorageError
 ├── CatalogError           the catalog cannot be opened or migrated
 │    └── CatalogLockedError another process holds the catalog for writing
 └── ObjectStoreError
      ├── ObjectMissingError  no object with that hash
      └── ObjectCorruptError  the bytes on disk no longer match their hash
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every storage error; `msg` is meant for the user."""

    title = "Storage error"

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


class CatalogError(StorageError):
    title = "Catalog error"


class CatalogLockedError(CatalogError):
    title = "Catalog in use"


class ObjectStoreError(StorageError):
    title = "Object store error"


class ObjectMissingError(ObjectStoreError):
    title = "Object missing"


class ObjectCorruptError(ObjectStoreError):
    title = "Object corrupt"
