"""The session's file tracker: what the pod has read or written, for ``edit_file``.

:class:`FileTracker` keeps one :class:`FileStamp` per canonical path. It lives in the
:class:`~podactors.tools.context.ToolContext`; the file tools record into it.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import msgspec

__all__ = ["FileStamp", "FileTracker"]


class FileStamp(msgspec.Struct, frozen=True):
    """What the pod last saw of a file: size, modification time and a content digest."""

    size: int
    mtime_ns: int
    digest: str

    @classmethod
    def of(cls, data: bytes, mtime_ns: int) -> FileStamp:
        """The stamp of a file whose content is ``data``."""
        return cls(len(data), mtime_ns, hashlib.blake2b(data, digest_size=16).hexdigest())


class FileTracker:
    """The session's record of the files the pod has read or written (thread-safe).

    Keys are canonical real paths. ``edit_file`` compares the stored digest with the file's
    current content; :meth:`recent_files` feeds compaction's list of recently touched files.
    """

    def __init__(self) -> None:
        self._stamps: dict[Path, FileStamp] = {}
        self._lock = threading.Lock()

    def record(self, real_path: Path, stamp: FileStamp) -> None:
        """Remember ``stamp`` as what the pod now knows of ``real_path``."""
        with self._lock:
            self._stamps.pop(real_path, None)
            self._stamps[real_path] = stamp

    def stamp(self, real_path: Path) -> FileStamp | None:
        """What the pod last saw of ``real_path``, or ``None`` if it never read it."""
        with self._lock:
            return self._stamps.get(real_path)

    def recent_files(self, count: int) -> list[Path]:
        """Up to ``count`` paths, the most recently touched first."""
        with self._lock:
            return list(reversed(self._stamps))[:count]
