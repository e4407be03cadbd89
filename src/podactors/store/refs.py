"""Ref files: a session's head pointer plus its short tail of unpacked records.

A ref file is ``MAGIC`` followed by frames. Each frame is a little-endian u32 length,
the CRC-32 of those four length bytes, the 32-byte BLAKE2b of the payload and the
payload. (Files of format 1, ``MAGIC_V1``, have no length check; they are read as they
are and rewritten in format 2 before their next append.) The first frame holds the
:class:`RefHeader` (the packed spine of segment objects); every later frame is a
segment record appended by one ``append`` call. Packing folds the tail into objects
and replaces the whole file atomically.

Readers tolerate exactly one kind of damage: a torn *final* frame (shorter than its
length prefix, or than a frame's fixed part), which is what a process killed mid-append
leaves. A length whose check does not match is corruption, never taken for a torn end,
so a flipped bit cannot silently drop the records after it. Anything else is a
:class:`~podactors.errors.CorruptSegment` naming the file and the offset.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import msgspec

from podactors.errors import CorruptSegment
from podactors.store.entries import Origin
from podactors.store.segments import HASH_BYTES, digest

MAGIC = b"PDRF\x02"
MAGIC_V1 = b"PDRF\x01"
_LEN = struct.Struct("<I")
_LEN_CHECKED = struct.Struct("<II")
FRAME_OVERHEAD = _LEN_CHECKED.size + HASH_BYTES
FRAME_OVERHEAD_V1 = _LEN.size + HASH_BYTES


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
    """A parsed ref file. ``valid_length`` excludes a torn final frame, if any; ``version``
    is its format (1 or 2)."""

    header: RefHeader
    tail: list[TailRecord]
    valid_length: int
    torn: bool
    version: int = 2

    @property
    def head(self) -> str | None:
        """The session's head: the last tail record, else the spine's head."""
        return self.tail[-1].hash if self.tail else self.header.head


_header_encoder = msgspec.msgpack.Encoder()
_header_decoder = msgspec.msgpack.Decoder(RefHeader)


def frame(payload: bytes) -> tuple[bytes, str]:
    """Frame ``payload`` for a ref file; returns the frame and the payload's hex hash."""
    raw = digest(payload)
    return _length_field(len(payload)) + raw + payload, raw.hex()


def _length_field(length: int) -> bytes:
    """A frame's length and its CRC-32."""
    return _LEN_CHECKED.pack(length, zlib.crc32(_LEN.pack(length)))


POD_MAGIC = b"PDPR\x01"


def encode_pod_ref(payload: bytes) -> bytes:
    """A pod ref file: ``POD_MAGIC`` and one frame (length, its CRC, BLAKE2b, payload)."""
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
    return _length_field(len(payload)) + bytes.fromhex(hash_)


def header_prefix(header: RefHeader) -> bytes:
    """The first ``FRAME_OVERHEAD`` bytes of ``header``'s frame."""
    payload = _header_encoder.encode(header)
    return _length_field(len(payload)) + digest(payload)


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
    if data.startswith(MAGIC):
        version = 2
    elif data.startswith(MAGIC_V1):
        version = 1
    else:
        raise CorruptSegment(path, offset=0, reason="not a ref file (bad magic or version)")
    frames, valid_length, torn = _read_frames(data, path, checked=version == 2)
    if not frames:
        raise CorruptSegment(path, offset=len(MAGIC), reason="ref file has no header")
    header_offset, _, header_bytes = frames[0]
    try:
        header = _header_decoder.decode(header_bytes)
    except msgspec.DecodeError as exc:
        raise CorruptSegment(path, offset=header_offset, reason=f"bad header: {exc}") from None
    tail = [TailRecord(offset, hash_, payload) for offset, hash_, payload in frames[1:]]
    return RefFile(header, tail, valid_length, torn, version)


def _read_frames(
    data: bytes, path: Path, *, checked: bool = True
) -> tuple[list[tuple[int, str, bytes]], int, bool]:
    frames: list[tuple[int, str, bytes]] = []
    offset = len(MAGIC)
    end = len(data)
    view = memoryview(data)
    fixed = FRAME_OVERHEAD if checked else FRAME_OVERHEAD_V1
    length_size = _LEN_CHECKED.size if checked else _LEN.size
    while offset < end:
        if end - offset < fixed:
            return frames, offset, True
        if checked:
            length, check = _LEN_CHECKED.unpack_from(data, offset)
            if check != zlib.crc32(data[offset : offset + _LEN.size]):
                raise CorruptSegment(
                    path, offset=offset, reason="frame length damaged (its check does not match)"
                )
        else:
            (length,) = _LEN.unpack_from(data, offset)
        start = offset + fixed
        if start + length > end:
            return frames, offset, True
        payload = bytes(view[start : start + length])
        expected = data[offset + length_size : start].hex()
        actual = digest(payload).hex()
        if actual != expected:
            raise CorruptSegment(path, offset=offset, expected=expected, actual=actual)
        frames.append((offset, expected, payload))
        offset = start + length
    return frames, offset, False
