"""Crash-safe whole-file writes: :func:`write_atomic` and the pieces it is made of.

A file is written under a temp name beside it (:func:`temp_path`), fsynced, renamed over
the target and the directory fsynced, so a reader or a crash sees the old content or the
new, never a mix. Temp files left by a killed process are recognised by :func:`is_temp`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["TEMP_SUFFIX", "fsync_dir", "is_temp", "temp_path", "write_all", "write_atomic"]

#: How the names of temp files end.
TEMP_SUFFIX = ".tmp"


def temp_path(path: Path) -> Path:
    """A unique hidden temp name beside ``path`` (same directory, so a rename is atomic)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}")


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


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, looping over short writes."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_atomic(path: Path, data: bytes, *, mode: int | None = None, durable: bool = True) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, directory fsync.

    ``mode`` gives the new file exactly these permission bits (the umask does not apply);
    they are set on the temp file as it is created, before any data is written, so a
    ``0o600`` file is never readable by others, not even briefly. ``None`` creates it like
    ``open()`` does (``0o666`` minus the umask). ``durable=False`` skips the fsyncs; the
    order of operations stays the same. The parent directory must exist. On any failure
    the temp file is removed and ``path`` is left as it was.
    """
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
