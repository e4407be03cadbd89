"""FsStore: sessions as content-addressed segments on a local filesystem.

Layout (see ``docs/store-format.md``)::

    <root>/FORMAT                      "podactors-store 1"
    <root>/objects/ab/cdef…            segment objects, named by BLAKE2b-256 of their bytes
    <root>/refs/sessions/<session-id>  head pointer + short tail of unpacked records
    <root>/refs/pods/<pod-name>        the session a pod name points to now
    <root>/locks/<session-id>.lock     per-session writer lock (flock)

An append adds one framed record to the session's ref file and fdatasyncs it: one
durable write of the size of the step. Every ``pack_records`` records (or
``pack_bytes``), the tail is folded into an object and the ref is replaced
atomically; objects are merged size-tiered (like an LSM tree) so a session of n
steps is held by O(log n) objects and restore opens O(log n) files.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal, TypeVar

import attrs
import msgspec
import trio

from podactors.errors import (
    CorruptSegment,
    HeadMoved,
    SessionNotFound,
    StoreError,
    StoreFormatError,
    StoreLocked,
)
from podactors.fileio import is_temp, write_atomic
from podactors.store.diskio import append_durable, exclusive_lock, read_at, truncate
from podactors.store.entries import LogEntry, Origin, SessionStart
from podactors.store.objects import ObjectDir
from podactors.store.refs import (
    FRAME_OVERHEAD,
    MAGIC,
    RefFile,
    RefHeader,
    SpineSegment,
    encode_pod_ref,
    encode_ref,
    frame,
    frame_prefix,
    header_prefix,
    parse_pod_ref,
    parse_ref,
)
from podactors.store.replay import SessionState, fold
from podactors.store.segments import (
    RawSegment,
    Segment,
    decode_raw_segment,
    decode_segment,
    encode_segment,
    object_hash,
)

FORMAT_LINE = "podactors-store 1\n"
Durability = Literal["fsync", "none"]
Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` from a worker thread during verify and gc."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
T = TypeVar("T")


class SessionRef(msgspec.Struct, frozen=True):
    """A session and the head a writer should name in its next append."""

    session_id: str
    head: str


class SessionInfo(msgspec.Struct, frozen=True):
    """What ``list_sessions`` knows of a session without decoding its entries.

    ``bytes`` is what restoring it reads: objects shared with forks count in each.
    ``damage`` says what is wrong with a ref that could not be read (file and offset);
    the other fields of such a session are then unknown (zero).
    """

    session_id: str
    origin: Origin | None
    created_at: float
    updated_at: float
    entries: int
    bytes: int
    objects: int
    tail_records: int
    head: str | None
    damage: str | None = None


class PodRef(msgspec.Struct, frozen=True):
    """What a pod name points to: its active session, its children's names, and the
    manifest file it was spawned from (so it can be restored by name)."""

    session_id: str
    children: list[str] = []
    updated_at: float = 0.0
    manifest: str | None = None


class StoreProblem(msgspec.Struct, frozen=True):
    """One finding of ``verify``: a damaged or missing file."""

    path: str
    problem: str
    expected: str | None = None
    actual: str | None = None


class VerifyReport(msgspec.Struct, frozen=True):
    """The result of ``verify``; ``ok`` when no problem was found."""

    objects_checked: int
    refs_checked: int
    problems: list[StoreProblem]

    @property
    def ok(self) -> bool:
        """True when every object hashes to its name and every ref is whole."""
        return not self.problems


class GcReport(msgspec.Struct, frozen=True):
    """The result of ``gc``."""

    objects_removed: int
    bytes_removed: int
    temp_removed: int
    objects_kept: int
    bytes_kept: int


class StoreStatistics(msgspec.Struct, frozen=True):
    """Counters since this store object was opened."""

    appends: int
    packs: int
    objects_written: int
    bytes_written: int
    head_cache_hits: int


@attrs.define
class _Tail:
    """What this process knows of a ref file.

    It is trusted only while the inode, the size *and* the last frame's prefix (its
    length and the BLAKE2b of its payload, at ``last_offset``) all match: inode numbers
    are reused at once after a rename, so metadata alone can match a different file;
    the last frame's hash cannot (it covers the record, which names its parent head and
    its entry count, or the header, which names the spine and the head).
    """

    inode: int
    size: int
    head: str | None
    entries: int
    records: int
    record_bytes: int
    last_offset: int
    last_prefix: bytes
    version: int = 2


def new_session_id() -> str:
    """A fresh, time-sortable session id such as ``20261121-114430-3f9a2c1b``."""
    return time.strftime("%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(4)


def _check_name(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"invalid {what} {name!r}: use letters, digits, '.', '_' and '-'")
    return name


class _Disk:
    """The blocking implementation behind :class:`FsStore`; one call per worker thread."""

    def __init__(
        self,
        root: Path,
        *,
        durability: Durability,
        pack_records: int,
        pack_bytes: int,
        lock_timeout: float,
    ):
        if durability not in ("fsync", "none"):
            raise ValueError(f"durability must be 'fsync' or 'none', not {durability!r}")
        self.root = root
        self.durable = durability == "fsync"
        self.pack_records = pack_records
        self.pack_bytes = pack_bytes
        self.lock_timeout = lock_timeout
        self.objects = ObjectDir(root / "objects", durable=self.durable)
        self.sessions = root / "refs" / "sessions"
        self.pods = root / "refs" / "pods"
        self.locks = root / "locks"
        self._tails: dict[str, _Tail] = {}
        self._ready = False
        self._stats_lock = threading.Lock()
        self._stats = dict.fromkeys(StoreStatistics.__struct_fields__, 0)

    # --- layout -------------------------------------------------------------------

    def has_store(self) -> bool:
        """Whether a store exists at the root; refuses a foreign ``FORMAT``.

        Reads never create a store: pointed at the wrong directory they find nothing.
        """
        format_file = self.root / "FORMAT"
        try:
            found = format_file.read_text(errors="replace")
        except FileNotFoundError:
            return False
        if found != FORMAT_LINE:
            raise StoreFormatError(
                f"{format_file}: unsupported store format {found.strip()!r}, "
                f"this version reads {FORMAT_LINE.strip()!r}"
            )
        return True

    def ensure_layout(self) -> None:
        """Create the store's directories on the first write."""
        if self._ready:
            return
        if not self.has_store():
            self.root.mkdir(parents=True, exist_ok=True)
            write_atomic(self.root / "FORMAT", FORMAT_LINE.encode(), durable=self.durable)
        for directory in (self.objects.root, self.sessions, self.pods, self.locks):
            directory.mkdir(parents=True, exist_ok=True)
        self._ready = True

    def _count(self, **deltas: int) -> None:
        with self._stats_lock:
            for key, delta in deltas.items():
                self._stats[key] += delta

    def statistics(self) -> StoreStatistics:
        with self._stats_lock:
            return StoreStatistics(**self._stats)

    # --- refs ---------------------------------------------------------------------

    def _ref_path(self, session_id: str) -> Path:
        return self.sessions / _check_name(session_id, "session id")

    def _locked(self, session_id: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` holding the session's writer lock (exclusive across processes)."""
        self.ensure_layout()
        lock = self.locks / f"{_check_name(session_id, 'session id')}.lock"
        try:
            with exclusive_lock(lock, timeout=self.lock_timeout):
                return fn()
        except TimeoutError as exc:
            raise StoreLocked(f"session {session_id}: {exc}") from None

    def _read_ref(self, session_id: str) -> tuple[RefFile, os.stat_result]:
        path = self._ref_path(session_id)
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except FileNotFoundError:
            raise SessionNotFound(session_id) from None
        return parse_ref(data, path), st

    def _write_ref(self, session_id: str, header: RefHeader, tail: Sequence[bytes] = ()) -> None:
        path = self._ref_path(session_id)
        data, head = encode_ref(header, list(tail))
        write_atomic(path, data, durable=self.durable)
        self._count(bytes_written=len(data))
        st = path.stat()
        entries = header.entries + sum(
            len(decode_raw_segment(payload, path).entries) for payload in tail
        )
        last = len(data) - len(tail[-1]) - FRAME_OVERHEAD if tail else len(MAGIC)
        self._tails[session_id] = _Tail(
            st.st_ino,
            st.st_size,
            head,
            entries,
            len(tail),
            sum(map(len, tail)),
            last,
            data[last : last + FRAME_OVERHEAD],
        )

    def _tail_state(self, session_id: str) -> _Tail:
        """The cached view of the ref, re-read when another writer touched it."""
        path = self._ref_path(session_id)
        cached = self._tails.get(session_id)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise SessionNotFound(session_id) from None
        if (
            cached is not None
            and (cached.inode, cached.size) == (st.st_ino, st.st_size)
            and read_at(path, cached.last_offset, FRAME_OVERHEAD) == cached.last_prefix
        ):
            self._count(head_cache_hits=1)
            return cached
        ref, st = self._read_ref(session_id)
        if ref.torn:
            truncate(path, ref.valid_length, durable=self.durable)
        entries = ref.header.entries + sum(
            len(decode_raw_segment(r.payload, path, offset=r.offset).entries) for r in ref.tail
        )
        if ref.tail:
            last = ref.tail[-1]
            last_offset, last_prefix = last.offset, frame_prefix(last.payload, last.hash)
        else:
            last_offset, last_prefix = len(MAGIC), header_prefix(ref.header)
        tail = _Tail(
            st.st_ino,
            ref.valid_length,
            ref.head,
            entries,
            len(ref.tail),
            sum(len(r.payload) for r in ref.tail),
            last_offset,
            last_prefix,
            ref.version,
        )
        self._tails[session_id] = tail
        return tail

    # --- sessions -----------------------------------------------------------------

    def create_session(self, start: SessionStart, session_id: str | None) -> SessionRef:
        self.ensure_layout()
        session_id = _check_name(session_id or new_session_id(), "session id")
        path = self._ref_path(session_id)

        def create() -> SessionRef:
            if path.exists():
                raise StoreError(f"session {session_id} already exists")
            header = RefHeader(session_id, start.created_at or time.time(), start.origin)
            record = encode_segment(Segment(None, 0, [start]))
            self._write_ref(session_id, header, [record])
            head = self._tails[session_id].head
            assert head is not None
            return SessionRef(session_id, head)

        return self._locked(session_id, create)

    def append(self, session_id: str, entries: Sequence[LogEntry], expected_head: str) -> str:
        if not entries:
            raise ValueError("append needs at least one entry")

        def append_locked() -> str:
            tail = self._tail_state(session_id)
            if tail.version < 2:  # rewrite an older format's ref before appending to it
                self._pack(session_id)
                tail = self._tail_state(session_id)
            if tail.head != expected_head:
                raise HeadMoved(session_id, expected=expected_head, actual=tail.head)
            record = encode_segment(Segment(tail.head, tail.entries, list(entries)))
            framed, head = frame(record)
            append_durable(self._ref_path(session_id), framed, durable=self.durable)
            tail.last_offset, tail.last_prefix = tail.size, framed[:FRAME_OVERHEAD]
            tail.size += len(framed)
            tail.head = head
            tail.entries += len(entries)
            tail.records += 1
            tail.record_bytes += len(record)
            self._count(appends=1, bytes_written=len(framed))
            if tail.records >= self.pack_records or tail.record_bytes >= self.pack_bytes:
                self._pack(session_id)
            return head

        return self._locked(session_id, append_locked)

    def pack(self, session_id: str) -> None:
        self._locked(session_id, lambda: self._pack(session_id))

    def _pack(self, session_id: str) -> RefFile:
        """Fold the tail into one object, merging older objects size-tiered."""
        ref, _ = self._read_ref(session_id)
        if not ref.tail:
            if ref.version < 2:
                self._write_ref(session_id, ref.header)
            return ref
        path = self._ref_path(session_id)
        header = ref.header
        spine = list(header.spine)
        fresh = []
        parent, base = header.head, header.entries
        for record in ref.tail:
            segment = decode_raw_segment(record.payload, path, offset=record.offset)
            if (segment.parent, segment.base) != (parent, base):
                raise CorruptSegment(
                    path,
                    offset=record.offset,
                    reason=f"chain broken: the record follows {segment.parent}@{segment.base}, "
                    f"the session is at {parent}@{base}",
                )
            fresh.extend(segment.entries)
            parent, base = record.hash, base + len(segment.entries)
        absorbed = _merge_count([s.size for s in spine], sum(len(r.payload) for r in ref.tail))
        keep, merged = spine[: len(spine) - absorbed], spine[len(spine) - absorbed :]
        entries = [entry for seg in merged for entry in self._raw_object(seg.hash).entries]
        entries.extend(fresh)
        base = merged[0].base if merged else header.entries
        data = encode_segment(RawSegment(keep[-1].hash if keep else None, base, entries))
        hash_, written = self.objects.write(data)
        self._count(packs=1, objects_written=int(written), bytes_written=len(data) * written)
        keep.append(SpineSegment(hash_, base, len(entries), len(data)))
        new_header = msgspec.structs.replace(header, spine=keep, head=ref.head)
        self._write_ref(session_id, new_header)
        return RefFile(new_header, [], 0, False)

    def _raw_object(self, hash_: str) -> RawSegment:
        return decode_raw_segment(self.objects.read(hash_), self.objects.path(hash_))

    def read_entries(self, session_id: str) -> tuple[list[LogEntry], RefFile]:
        """All entries of a session, and its ref. Retries once if gc raced the read."""
        self.has_store()
        try:
            return self._read_entries(session_id)
        except FileNotFoundError:
            return self._read_entries(session_id)

    def _read_entries(self, session_id: str) -> tuple[list[LogEntry], RefFile]:
        ref, _ = self._read_ref(session_id)
        path = self._ref_path(session_id)
        entries: list[LogEntry] = []
        parent: str | None = None
        for seg in ref.header.spine:
            obj_path = self.objects.path(seg.hash)
            segment = decode_segment(self.objects.read(seg.hash), obj_path)
            _check_link(segment, parent, len(entries), obj_path, None)
            entries.extend(segment.entries)
            parent = seg.hash
        parent = ref.header.head
        for record in ref.tail:
            segment = decode_segment(record.payload, path, offset=record.offset)
            _check_link(segment, parent, len(entries), path, record.offset)
            entries.extend(segment.entries)
            parent = record.hash
        return entries, ref

    def restore(self, session_id: str) -> SessionState:
        entries, ref = self.read_entries(session_id)
        state = fold(entries)
        state.origin = ref.header.origin or state.origin
        state.session_id, state.head = session_id, ref.head
        return state

    def head(self, session_id: str) -> str | None:
        self.has_store()
        return self._read_ref(session_id)[0].head

    def fork(self, session_id: str, at: int | None) -> SessionRef:
        """A new session holding the first ``at`` entries (all by default).

        A fork at the head, or at any record boundary of the unpacked tail, writes only
        its new ref (the tail records up to there travel in it); only a fork inside a
        packed object writes one prefix object, and one inside a tail record packs first.
        """
        ref = self._locked(session_id, lambda: self._read_ref(session_id)[0])
        path = self._ref_path(session_id)
        header = ref.header
        counts = [
            len(decode_raw_segment(r.payload, path, offset=r.offset).entries) for r in ref.tail
        ]
        total = header.entries + sum(counts)
        at = total if at is None else at
        if not 1 <= at <= total:
            raise ValueError(f"fork point {at} outside 1..{total} of session {session_id}")
        new_id = new_session_id()
        origin = Origin("forked_from", session_id, head=ref.head, at=at)
        boundaries = [header.entries + sum(counts[:k]) for k in range(1, len(counts) + 1)]
        tail: list[bytes] = []
        if at <= header.entries:
            spine, head = self._spine_prefix(header, at)
            spine_head = head
        elif at in boundaries:
            kept = ref.tail[: boundaries.index(at) + 1]
            spine, spine_head, head = list(header.spine), header.head, kept[-1].hash
            tail = [record.payload for record in kept]
        else:
            header = self._locked(session_id, lambda: self._pack(session_id).header)
            spine, head = self._spine_prefix(header, at)
            spine_head = head
        new_header = RefHeader(new_id, time.time(), origin, spine, spine_head)
        self._locked(new_id, lambda: self._write_ref(new_id, new_header, tail))
        assert head is not None
        return SessionRef(new_id, head)

    def _spine_prefix(self, header: RefHeader, at: int) -> tuple[list[SpineSegment], str | None]:
        """The spine holding the first ``at`` entries; writes one prefix object if needed."""
        if at == header.entries:
            return list(header.spine), header.head
        for index, seg in enumerate(header.spine):
            if seg.base + seg.count < at:
                continue
            keep = list(header.spine[:index])
            if seg.base + seg.count == at:
                keep.append(seg)
                return keep, seg.hash
            raw = self._raw_object(seg.hash)
            prefix = RawSegment(raw.parent, seg.base, raw.entries[: at - seg.base])
            data = encode_segment(prefix)
            hash_, written = self.objects.write(data)
            self._count(objects_written=int(written), bytes_written=len(data) * written)
            keep.append(SpineSegment(hash_, seg.base, at - seg.base, len(data)))
            return keep, hash_
        raise AssertionError("fork point beyond the spine")  # guarded by the caller

    # --- listing, verify, gc --------------------------------------------------------

    def _session_ids(self) -> list[str]:
        if not self.has_store():
            return []
        return sorted(p.name for p in self.sessions.iterdir() if not is_temp(p))

    def list_sessions(self) -> list[SessionInfo]:
        infos = []
        for session_id in self._session_ids():
            path = self._ref_path(session_id)
            try:
                ref, st = self._read_ref(session_id)
                tail_entries = sum(
                    len(decode_raw_segment(r.payload, path, offset=r.offset).entries)
                    for r in ref.tail
                )
            except SessionNotFound:
                continue
            except CorruptSegment as exc:  # one bad ref must not hide the others
                infos.append(_damaged_info(session_id, path, exc))
                continue
            infos.append(
                SessionInfo(
                    session_id=session_id,
                    origin=ref.header.origin,
                    created_at=ref.header.created_at,
                    updated_at=st.st_mtime,
                    entries=ref.header.entries + tail_entries,
                    bytes=sum(s.size for s in ref.header.spine) + ref.valid_length,
                    objects=len(ref.header.spine),
                    tail_records=len(ref.tail),
                    head=ref.head,
                )
            )
        infos.sort(key=lambda info: (info.created_at, info.session_id))
        return infos

    def verify(self, progress: Progress | None) -> VerifyReport:
        session_ids = self._session_ids()
        objects = [(h, p) for h, p in self.objects.scan() if h is not None]
        total = len(objects) + len(session_ids)
        problems: list[StoreProblem] = []
        segments: dict[str, Segment] = {}
        done = 0
        for hash_, path in objects:
            segment = self._verify_object(hash_, path, problems)
            if segment is not None:
                segments[hash_] = segment
            done += 1
            if progress:
                progress(done, total)
        for session_id in session_ids:
            self._verify_ref(session_id, segments, problems)
            done += 1
            if progress:
                progress(done, total)
        pod_refs = self._verify_pod_refs(set(session_ids), problems)
        return VerifyReport(len(objects), len(session_ids) + pod_refs, problems)

    def _verify_pod_refs(self, sessions: set[str], problems: list[StoreProblem]) -> int:
        """Check every pod ref's checksum and that its session exists; how many there are."""
        names = self._pod_ref_names()
        for name in names:
            path = str(self.pods / name)
            try:
                ref = self.get_pod_ref(name)
            except CorruptSegment as exc:
                problems.append(StoreProblem(str(exc.path), str(exc), exc.expected, exc.actual))
                continue
            except ValueError as exc:  # a stray file under refs/pods
                problems.append(StoreProblem(path, f"not a pod ref: {exc}"))
                continue
            if ref is not None and ref.session_id not in sessions:
                problems.append(
                    StoreProblem(path, f"pod {name} names a missing session {ref.session_id}")
                )
        return len(names)

    def _pod_ref_names(self) -> list[str]:
        """The names under ``refs/pods``, temp files left out."""
        if not self.pods.is_dir():
            return []
        return sorted(path.name for path in self.pods.iterdir() if not is_temp(path))

    def _verify_object(
        self, hash_: str, path: Path, problems: list[StoreProblem]
    ) -> Segment | None:
        data = path.read_bytes()
        actual = object_hash(data)
        if actual != hash_:
            problems.append(StoreProblem(str(path), "hash mismatch", hash_, actual))
            return None
        try:
            return decode_segment(data, path)
        except CorruptSegment as exc:
            problems.append(StoreProblem(str(path), exc.reason or str(exc), hash_, actual))
            return None

    def _verify_ref(
        self, session_id: str, segments: dict[str, Segment], problems: list[StoreProblem]
    ) -> None:
        path = self._ref_path(session_id)
        try:
            ref, _ = self._read_ref(session_id)
            count, parent = 0, None
            for seg in ref.header.spine:
                segment = segments.get(seg.hash)
                if segment is None:
                    missing = not self.objects.path(seg.hash).exists()
                    problems.append(
                        StoreProblem(
                            str(self.objects.path(seg.hash)),
                            f"{'missing' if missing else 'damaged'} object of session {session_id}",
                            seg.hash,
                        )
                    )
                    return
                _check_link(segment, parent, count, self.objects.path(seg.hash), None)
                count, parent = count + len(segment.entries), seg.hash
            parent = ref.header.head
            for record in ref.tail:
                segment = decode_segment(record.payload, path, offset=record.offset)
                _check_link(segment, parent, count, path, record.offset)
                count, parent = count + len(segment.entries), record.hash
        except CorruptSegment as exc:
            problems.append(StoreProblem(str(exc.path), str(exc), exc.expected, exc.actual))

    def gc(self, grace: float, progress: Progress | None) -> GcReport:
        if not self.has_store():
            return GcReport(0, 0, 0, 0, 0)
        live: set[str] = set()
        for session_id in self._session_ids():
            try:
                ref, _ = self._read_ref(session_id)
            except CorruptSegment as exc:
                raise StoreError(
                    f"gc refused: {exc}; run 'podactors sessions verify' and repair it first"
                ) from None
            except SessionNotFound:
                continue
            live.update(seg.hash for seg in ref.header.spine)
        cutoff = time.time() - grace
        files = list(self.objects.scan())
        files += [(None, p) for d in (self.sessions, self.pods) for p in d.iterdir() if is_temp(p)]
        removed = removed_bytes = temp_removed = kept = kept_bytes = 0
        for done, (hash_, path) in enumerate(files, 1):
            st = path.stat()
            if st.st_mtime <= cutoff and (hash_ is None or hash_ not in live):
                path.unlink(missing_ok=True)
                if hash_ is None:
                    temp_removed += 1
                else:
                    removed, removed_bytes = removed + 1, removed_bytes + st.st_size
            elif hash_ is not None:
                kept, kept_bytes = kept + 1, kept_bytes + st.st_size
            if progress:
                progress(done, len(files))
        return GcReport(removed, removed_bytes, temp_removed, kept, kept_bytes)

    # --- pod refs -----------------------------------------------------------------

    def set_pod_ref(self, name: str, ref: PodRef) -> None:
        self.ensure_layout()
        path = self.pods / _check_name(name, "pod name")
        write_atomic(path, encode_pod_ref(msgspec.msgpack.encode(ref)), durable=self.durable)

    def get_pod_ref(self, name: str) -> PodRef | None:
        self.has_store()
        path = self.pods / _check_name(name, "pod name")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return msgspec.msgpack.decode(parse_pod_ref(data, path), type=PodRef)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            raise CorruptSegment(path, offset=0, reason=f"bad pod ref: {exc}") from None

    def list_pod_refs(self) -> dict[str, PodRef]:
        refs: dict[str, PodRef] = {}
        if not self.has_store():
            return refs
        for name in self._pod_ref_names():
            ref = self.get_pod_ref(name)
            if ref is not None:
                refs[name] = ref
        return refs


def _damaged_info(session_id: str, path: Path, exc: CorruptSegment) -> SessionInfo:
    """What ``list_sessions`` says of a session whose ref cannot be read."""
    try:
        st = path.stat()
        updated, size = st.st_mtime, st.st_size
    except OSError:
        updated, size = 0.0, 0
    return SessionInfo(session_id, None, 0.0, updated, 0, size, 0, 0, None, damage=str(exc))


def _merge_count(older_sizes: list[int], new_size: int) -> int:
    """How many trailing spine objects to merge with a new run of ``new_size`` bytes.

    An older object is absorbed while it is no larger than the run merged so far: a
    binary counter over equal packs, so the spine holds O(log n) objects and each
    entry is rewritten O(log n) times.
    """
    absorbed, size = 0, new_size
    for older in reversed(older_sizes):
        if older > size:
            break
        absorbed, size = absorbed + 1, size + older
    return absorbed


def _check_link(
    segment: Segment, parent: str | None, base: int, path: Path, offset: int | None
) -> None:
    if segment.parent != parent or segment.base != base:
        raise CorruptSegment(
            path,
            offset=offset,
            reason=(
                f"chain broken: segment says parent {segment.parent} base {segment.base}, "
                f"expected parent {parent} base {base}"
            ),
        )


class FsStore:
    """The session store: content-addressed segment files under ``root``.

    Every method runs its blocking I/O in a worker thread, so the trio event loop never
    waits on the disk. Writes are atomic and, with ``durability="fsync"`` (the default),
    durable when the call returns. ``append`` raises :class:`~podactors.errors.HeadMoved`
    when another writer moved the head; reads raise
    :class:`~podactors.errors.CorruptSegment` naming the damaged file.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        durability: Durability = "fsync",
        pack_records: int = 32,
        pack_bytes: int = 256 * 1024,
        lock_timeout: float = 30.0,
    ):
        self.root = Path(root)
        self._disk = _Disk(
            self.root,
            durability=durability,
            pack_records=pack_records,
            pack_bytes=pack_bytes,
            lock_timeout=lock_timeout,
        )

    def __repr__(self) -> str:
        return f"FsStore({str(self.root)!r})"

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await trio.to_thread.run_sync(functools.partial(fn, *args))

    async def create_session(
        self, start: SessionStart, *, session_id: str | None = None
    ) -> SessionRef:
        """Create a session whose first entry is ``start``; returns its ref."""
        return await self._run(self._disk.create_session, start, session_id)

    async def append(self, session_id: str, entries: Iterable[LogEntry], expected_head: str) -> str:
        """Durably append ``entries`` if the head is still ``expected_head``.

        Returns the new head. Raises :class:`~podactors.errors.HeadMoved` (nothing
        written) when another writer got there first. Cost is O(size of the entries),
        plus an amortised pack every ``pack_records`` appends.
        """
        return await self._run(self._disk.append, session_id, list(entries), expected_head)

    async def head(self, session_id: str) -> str | None:
        """The session's current head."""
        return await self._run(self._disk.head, session_id)

    async def read_entries(self, session_id: str) -> list[LogEntry]:
        """Every entry of the session, in order, each object verified."""
        entries, _ = await self._run(self._disk.read_entries, session_id)
        return entries

    async def restore(self, session_id: str) -> SessionState:
        """Fold the session's entries into a :class:`SessionState`."""
        return await self._run(self._disk.restore, session_id)

    async def pack(self, session_id: str) -> None:
        """Fold the session's tail records into objects now (appends do it on their own)."""
        await self._run(self._disk.pack, session_id)

    async def fork(self, session_id: str, at: int | None = None) -> SessionRef:
        """A new session holding the first ``at`` entries (all by default).

        At the head the new ref shares every object; mid-object one prefix object is
        written. The new session's origin is ``forked_from`` this one.
        """
        return await self._run(self._disk.fork, session_id, at)

    async def create_compacted(self, state: SessionState, origin: Origin) -> SessionRef:
        """A new session that starts from ``state`` (prompt, config, history)."""
        start = SessionStart(
            system_prompt=state.system_prompt,
            config=state.config,
            history=list(state.history),
            origin=origin,
            created_at=time.time(),
        )
        return await self.create_session(start)

    async def list_sessions(self) -> list[SessionInfo]:
        """Every session with its origin, entry count and bytes, oldest first.

        ``bytes`` counts every object the session reads, shared ones included.
        """
        return await self._run(self._disk.list_sessions)

    async def verify(self, *, progress: Progress | None = None) -> VerifyReport:
        """Re-hash every object and check every ref; report each damaged file."""
        return await self._run(self._disk.verify, progress)

    async def gc(self, *, grace: float = 3600.0, progress: Progress | None = None) -> GcReport:
        """Remove objects no ref reaches, and stale temp files, older than ``grace`` s."""
        return await self._run(self._disk.gc, grace, progress)

    async def set_pod_ref(self, name: str, ref: PodRef) -> None:
        """Atomically point the pod ``name`` at ``ref``."""
        await self._run(self._disk.set_pod_ref, name, ref)

    async def get_pod_ref(self, name: str) -> PodRef | None:
        """What the pod ``name`` points to, or ``None``."""
        return await self._run(self._disk.get_pod_ref, name)

    async def list_pod_refs(self) -> dict[str, PodRef]:
        """Every pod ref by name."""
        return await self._run(self._disk.list_pod_refs)

    def statistics(self) -> StoreStatistics:
        """Counters of appends, packs and bytes written by this store object."""
        return self._disk.statistics()
