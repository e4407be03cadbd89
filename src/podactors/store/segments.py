"""Segment objects: a batch of log entries behind a magic/version header.

A segment's name is the BLAKE2b-256 of its bytes. The same encoding serves both for
objects in ``objects/`` and for the records of a ref's tail.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TypeVar

import msgspec

from podactors.errors import CorruptSegment
from podactors.store.entries import LogEntry

MAGIC = b"PDSG\x01"
"""Segment header: four magic bytes and the format version."""

HASH_BYTES = 32


class Segment(msgspec.Struct, frozen=True, array_like=True):
    """A batch of entries: ``parent`` is the hash of what precedes it, ``base`` the
    index of its first entry in the session."""

    parent: str | None
    base: int
    entries: list[LogEntry]


class RawSegment(msgspec.Struct, frozen=True, array_like=True):
    """A segment whose entries stay encoded: used to merge and slice without decoding."""

    parent: str | None
    base: int
    entries: list[msgspec.Raw]


S = TypeVar("S", Segment, RawSegment)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Segment)
_raw_decoder = msgspec.msgpack.Decoder(RawSegment)


def digest(data: bytes) -> bytes:
    """The raw BLAKE2b-256 digest of ``data``."""
    return hashlib.blake2b(data, digest_size=HASH_BYTES).digest()


def object_hash(data: bytes) -> str:
    """The hex BLAKE2b-256 of ``data``: an object's name."""
    return hashlib.blake2b(data, digest_size=HASH_BYTES).hexdigest()


def encode_segment(segment: Segment | RawSegment) -> bytes:
    """Segment bytes: the header followed by the msgpack body."""
    return MAGIC + _encoder.encode(segment)


def decode_segment(data: bytes, path: Path | str, *, offset: int | None = None) -> Segment:
    """Decode verified segment bytes into typed entries; damage names ``path``."""
    return _decode(_decoder, data, path, offset)


def decode_raw_segment(data: bytes, path: Path | str, *, offset: int | None = None) -> RawSegment:
    """Decode verified segment bytes, leaving each entry encoded."""
    return _decode(_raw_decoder, data, path, offset)


def _decode(
    decoder: msgspec.msgpack.Decoder[S], data: bytes, path: Path | str, offset: int | None
) -> S:
    if not data.startswith(MAGIC):
        raise CorruptSegment(path, offset=offset, reason="not a segment (bad magic or version)")
    try:
        return decoder.decode(memoryview(data)[len(MAGIC) :])
    except msgspec.DecodeError as exc:
        raise CorruptSegment(path, offset=offset, reason=f"undecodable segment: {exc}") from None


def verify_object(data: bytes, path: Path, expected: str) -> None:
    """Raise :class:`CorruptSegment` unless ``data`` hashes to ``expected``."""
    actual = object_hash(data)
    if actual != expected:
        raise CorruptSegment(path, expected=expected, actual=actual)
