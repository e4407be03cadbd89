"""The physical floor the store benches compare against, and sample statistics.

Run the bench scripts as ``python bench/<name>.py``; this module sits beside them.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import msgspec

_encoder = msgspec.msgpack.Encoder()


def floor_write(directory: Path, value: Any) -> float:
    """Seconds to persist ``value`` by hand: msgspec encode, BLAKE2b, write, fsync, rename."""
    start = time.perf_counter()
    data = _encoder.encode(value)
    name = hashlib.blake2b(data, digest_size=32).hexdigest()
    tmp = directory / f"{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    os.fsync(fd)
    os.close(fd)
    os.rename(tmp, directory / name)
    return time.perf_counter() - start


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile of ``samples`` (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
