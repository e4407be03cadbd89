"""The object directory: immutable segment files named by their hash."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from podactors.errors import CorruptSegment
from podactors.fileio import is_temp, write_atomic
from podactors.store.segments import object_hash, verify_object


class ObjectDir:
    """``objects/ab/cdef…``: write-once files, each re-hashed whenever it is read."""

    def __init__(self, root: Path, *, durable: bool):
        self.root = root
        self.durable = durable

    def path(self, hash_: str) -> Path:
        """Where the object named ``hash_`` lives."""
        return self.root / hash_[:2] / hash_[2:]

    def write(self, data: bytes) -> tuple[str, bool]:
        """Store ``data`` once; returns its hash and whether new bytes were written.

        An object already present is re-verified (a torn leftover is rewritten) and its
        mtime refreshed, so a concurrent gc's grace period protects it again.
        """
        hash_ = object_hash(data)
        path = self.path(hash_)
        if path.exists():
            try:
                verify_object(path.read_bytes(), path, hash_)
                os.utime(path)
                return hash_, False
            except (CorruptSegment, FileNotFoundError):
                pass
        path.parent.mkdir(exist_ok=True)
        write_atomic(path, data, durable=self.durable)
        return hash_, True

    def read(self, hash_: str) -> bytes:
        """The object's bytes, verified; raises :class:`CorruptSegment` on a mismatch."""
        path = self.path(hash_)
        data = path.read_bytes()
        verify_object(data, path, hash_)
        return data

    def scan(self) -> Iterator[tuple[str | None, Path]]:
        """Every file under ``objects/``: ``(hash, path)``, hash ``None`` for temp files."""
        if not self.root.is_dir():
            return
        for shard in sorted(self.root.iterdir()):
            if not shard.is_dir():
                continue
            for path in sorted(shard.iterdir()):
                yield (None if is_temp(path) else shard.name + path.name), path
