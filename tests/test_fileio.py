"""The one atomic file writer: content, permission bits, cleanup."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from podactors.fileio import is_temp, write_atomic


def test_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"old")
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_mode_is_exact_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        write_atomic(tmp_path / "shared", b"x", mode=0o644)
        write_atomic(tmp_path / "default", b"x", durable=False)
    finally:
        os.umask(previous)
    write_atomic(tmp_path / "token", b"secret", mode=0o600)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"shared": 0o644, "default": 0o600, "token": 0o600}


def test_a_failed_write_removes_the_temp_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_atomic(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert not any(is_temp(p) for p in tmp_path.iterdir())
