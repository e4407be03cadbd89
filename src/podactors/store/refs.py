"""Ref files: a session's head pointer plus its short tail of unpacked records.

A ref file is ``MAGIC`` followed by frames. Each frame is a little-endian u32 length,
the 32-byte BLAKE2b of the payload and the payload. The first frame holds the
:class:`RefHeader` (the packed spine of segment objects); every later frame is a
segment record appended by one ``append`` call. Packing folds the tail into objects
and replaces the whole file atomically.

Readers tolerate exactly one kind of damage: a torn *final* frame (shorter than its
length prefix), which is what a process killed mid-append leaves. Anything else is a
:class:`~podactors.errors.CorruptSegment` naming the file and the offset.
"""

from __future__ import annotations

import struct
from pathlib import Path

import msgspec

from podactors.errors import CorruptSegment
from podactors.store.entries import Origin
from podactors.store.segments import HASH_BYTES, digest

MAGIC = b"PDRF\x01"
_LEN = struct.Struct("<I")
FRAME_OVERHEAD = _LEN.size + HASH_BYTES


class SpineSegment(msgspec.Struct, frozen=True, array_like=True):
    """One packed object of a session's chain: its hash, first entry, entry count, size."""

    hash: str
    base: int
    count: int
    size: int


class RefHeader(msgspec.Struct, frozen=True):
    """The packed part of a session: its spine of objects and the head after them."""

    session_id: str
    created_at: float
    origin: Origin | None = None
    spine: list[SpineSegment] = []
    head: str | None = None

    @property
    def entries(self) -> int:
        """Entries held by the spine."""
        last = self.spine[-1] if self.spine else None
        return 0 if last is None else last.base + last.count


class TailRecord(msgspec.Struct, frozen=True):
    """One frame of the tail: where it starts, its hash (the head after it) and bytes."""

    offset: int
    hash: str
    payload: bytes


class RefFile(msgspec.Struct, frozen=True):
    """A parsed ref file. ``valid_length`` excludes a torn final frame, if any."""

    header: RefHeader
    tail: list[TailRecord]
    valid_length: int
    torn: bool

    @property
    def head(self) -> str | None:
        """The session's head: the last tail record, else the spine's head."""
        return self.tail[-1].hash if self.tail else self.header.head


_header_encoder = msgspec.msgpack.Encoder()
_header_decoder = msgspec.msgpack.Decoder(RefHeader)


def frame(payload: bytes) -> tuple[bytes, str]:
    """Frame ``payload`` for a ref file; returns the frame and the payload's hex hash."""
    raw = digest(payload)
    return _LEN.pack(len(payload)) + raw + payload, raw.hex()


POD_MAGIC = b"PDPR\x01"


def encode_pod_ref(payload: bytes) -> bytes:
    """A pod ref file: ``POD_MAGIC`` and one frame (length, BLAKE2b, payload)."""
    return POD_MAGIC + frame(payload)[0]


def parse_pod_ref(data: bytes, path: Path) -> bytes:
    """The payload of a pod ref file, its checksum verified.

    A file without the magic is taken as the unframed form earlier versions wrote.
    """
    if not data.startswith(POD_MAGIC):
        return data
    frames, valid_length, torn = _read_frames(data, path)  # the magics are of one length
    if torn or len(frames) != 1:
        raise CorruptSegment(path, offset=valid_length, reason="pod ref is not one whole frame")
    return frames[0][2]


def frame_prefix(payload: bytes, hash_: str) -> bytes:
    """The first ``FRAME_OVERHEAD`` bytes of the frame of ``payload`` (hex hash ``hash_``)."""
    return _LEN.pack(len(payload)) + bytes.fromhex(hash_)


def header_prefix(header: RefHeader) -> bytes:
    """The first ``FRAME_OVERHEAD`` bytes of ``header``'s frame."""
    payload = _header_encoder.encode(header)
    return _LEN.pack(len(payload)) + digest(payload)


def encode_ref(header: RefHeader, tail_payloads: list[bytes] = ()) -> tuple[bytes, str | None]:  # type: ignore[assignment]
    """A whole ref file; returns its bytes and the head after its last record."""
    parts = [MAGIC, frame(_header_encoder.encode(header))[0]]
    head = header.head
    for payload in tail_payloads:
        framed, head = frame(payload)
        parts.append(framed)
    return b"".join(parts), head


def parse_ref(data: bytes, path: Path) -> RefFile:
    """Parse and verify a ref file's bytes."""
    if not data.startswith(MAGIC):
        raise CorruptSegment(path, offset=0, reason="not a ref file (bad magic or version)")
    frames, valid_length, torn = _read_frames(data, path)
    if not frames:
        raise CorruptSegment(path, offset=len(MAGIC), reason="ref file has no header")
    header_offset, _, header_bytes = frames[0]
    try:
        header = _header_decoder.decode(header_bytes)
    except msgspec.DecodeError as exc:
        raise CorruptSegment(path, offset=header_offset, reason=f"bad header: {exc}") from None
    tail = [TailRecord(offset, hash_, payload) for offset, hash_, payload in frames[1:]]
    return RefFile(header, tail, valid_length, torn)


def _read_frames(data: bytes, path: Path) -> tuple[list[tuple[int, str, bytes]], int, bool]:
    frames: list[tuple[int, str, bytes]] = []
    offset = len(MAGIC)
    end = len(data)
    view = memoryview(data)
    while offset < end:
        if end - offset < FRAME_OVERHEAD:
            return frames, offset, True
        (length,) = _LEN.unpack_from(data, offset)
        start = offset + FRAME_OVERHEAD
        if start + length > end:
            return frames, offset, True
        payload = bytes(view[start : start + length])
        expected = data[offset + _LEN.size : start].hex()
        actual = digest(payload).hex()
        if actual != expected:
            raise CorruptSegment(path, offset=offset, expected=expected, actual=actual)
        frames.append((offset, expected, payload))
        offset = start + length
    return frames, offset, False
