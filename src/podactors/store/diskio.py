"""Crash-safe file writes: atomic replace and durable append.

``durable=False`` skips every fsync (the store's ``durability="none"``); the order of
operations, and so what a killed process leaves behind, stays the same.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def temp_path(path: Path) -> Path:
    """A unique temp name beside ``path``; gc recognises and removes stale ones."""
    return path.with_name(f"{path.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}")


def is_temp(path: Path) -> bool:
    """True for a temp file left by an interrupted write."""
    return path.name.endswith(TEMP_SUFFIX)


def fsync_dir(directory: Path) -> None:
    """Make the directory's entries (a rename, a new file) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, durable: bool) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, directory fsync.

    A crash leaves either the old file or the new one, never a mix.
    """
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        _write_all(fd, data)
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.rename(tmp, path)
    if durable:
        fsync_dir(path.parent)


def append_durable(path: Path, data: bytes, *, durable: bool) -> None:
    """Append ``data`` to ``path`` in one write, then fdatasync.

    A process killed mid-call leaves at most a torn final record, which readers
    recognise by its length prefix and the next append truncates.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        _write_all(fd, data)
        if durable:
            os.fdatasync(fd)
    finally:
        os.close(fd)


def truncate(path: Path, length: int, *, durable: bool) -> None:
    """Cut ``path`` back to ``length`` bytes (drops a torn final record)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, length)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
