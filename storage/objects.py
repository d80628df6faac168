"""Content-addressed, immutable files under `.mldeck/objects/`.

An object is named by the sha256 of its bytes and stored at `ab/abcdef...`.
Writers produce the bytes under `tmp/` first; the file is fsynced and renamed
into place, so a crash never leaves a partial object under a real name. Reads
re-hash the bytes and refuse anything that no longer matches.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storage.errors import ObjectCorruptError, ObjectMissingError, ObjectStoreError

CHUNK_SIZE = 1 << 20


def sha256_file(path: Path) -> str:
    """Stream a file through sha256 and return the hex digest."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ObjectStore:
    """Immutable files addressed by the sha256 of their content."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"

    def ensure(self) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ObjectStoreError(f"not a sha256 digest: {digest!r}")
        return self.root / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    @contextmanager
    def staging_path(self, suffix: str = "") -> Iterator[Path]:
        """A temporary path inside the store for a writer (e.g. DuckDB COPY TO).

        The caller writes the file and passes it to `adopt`; whatever is left
        behind is removed on exit.
        """
        self.ensure()
        fd, name = tempfile.mkstemp(dir=self.tmp_dir, suffix=suffix)
        os.close(fd)
        path = Path(name)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def adopt(self, staged: Path, digest: str | None = None) -> str:
        """Move a fully written staging file into place under its hash.

        Args:
            staged: a file inside `tmp/` that nobody writes to any more.
            digest: its sha256 when the caller already computed it.

        Returns:
            The object's sha256.
        """
        digest = digest or sha256_file(staged)
        target = self.path(digest)
        if target.exists():
            staged.unlink(missing_ok=True)
            return digest
        with open(staged, "rb+") as handle:
            os.fsync(handle.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(staged, 0o444)
        os.replace(staged, target)
        _fsync_dir(target.parent)
        return digest

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            return digest
        with self.staging_path() as staged:
            staged.write_bytes(data)
            return self.adopt(staged, digest)

    def put_file(self, source: Path) -> str:
        """Copy a file into the store (the source is left untouched)."""
        with self.staging_path() as staged:
            shutil.copyfile(source, staged)
            return self.adopt(staged)

    def verified_path(self, digest: str) -> Path:
        """The object's path, after checking its bytes still hash to `digest`."""
        target = self.path(digest)
        if not target.is_file():
            raise ObjectMissingError(f"object {digest[:12]} is missing from {self.root}")
        actual = sha256_file(target)
        if actual != digest:
            raise ObjectCorruptError(
                f"object {digest[:12]} at {target} is corrupt: its bytes hash to {actual[:12]}"
            )
        return target

    def read_bytes(self, digest: str) -> bytes:
        target = self.path(digest)
        if not target.is_file():
            raise ObjectMissingError(f"object {digest[:12]} is missing from {self.root}")
        data = target.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise ObjectCorruptError(
                f"object {digest[:12]} at {target} is corrupt: its bytes hash to {actual[:12]}"
            )
        return data

    def staging_leftovers(self) -> list[Path]:
        """Files in `tmp/`: a write that never finished, when no writer is running."""
        if not self.tmp_dir.is_dir():
            return []
        return sorted(p for p in self.tmp_dir.iterdir() if p.is_file() or p.is_symlink())

    def clear_staging(self) -> int:
        """Remove what unfinished writes left in `tmp/` (only while nobody writes);
        returns how many files. Staged bytes are never an object yet: nothing is lost."""
        leftovers = self.staging_leftovers()
        for path in leftovers:
            path.unlink(missing_ok=True)
        return len(leftovers)

    def iter_digests(self) -> Iterator[str]:
        for sub in sorted(self.root.glob("??")):
            for item in sorted(sub.iterdir()):
                yield item.name
