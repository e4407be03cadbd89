"""Crash-safe file writes: atomic replace and durable append.

``durable=False`` skips every fsync (the store's ``durability="none"``); the order of
operations, and so what a killed process leaves behind, stays the same.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import time
from collections.abc import Iterator
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


@contextlib.contextmanager
def exclusive_lock(path: Path, *, timeout: float) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block.

    Excludes other processes and, since each call opens its own descriptor, other
    threads of this one. Raises ``TimeoutError`` when not taken within ``timeout``.
    The lock dies with the process, so a killed writer never leaves it stuck.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, timeout)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _acquire(fd: int, path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pause = 0.0005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{path}: lock not taken within {timeout}s") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
