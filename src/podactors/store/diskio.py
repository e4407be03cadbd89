"""The store's disk primitives besides whole-file writes: durable append, truncate, lock.

Whole files are written with :func:`podactors.fileio.write_atomic`. ``durable=False`` skips
every fsync (the store's ``durability="none"``); the order of operations, and so what a
killed process leaves behind, stays the same.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from podactors.fileio import write_all


def read_at(path: Path, offset: int, size: int) -> bytes:
    """Up to ``size`` bytes of ``path`` from ``offset`` (fewer at its end)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def append_durable(path: Path, data: bytes, *, durable: bool) -> None:
    """Append ``data`` to ``path`` in one write, then fdatasync.

    A process killed mid-call leaves at most a torn final record, which readers
    recognise by its length prefix and the next append truncates.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        write_all(fd, data)
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
