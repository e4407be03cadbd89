"""FsStore on a real disk: round trips, forks, corruption, crashes and concurrency."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
import trio

from podactors.errors import (
    CorruptSegment,
    HeadMoved,
    SessionNotFound,
    StoreError,
    StoreFormatError,
)
from podactors.items import (
    ChildEvent,
    FileAttachment,
    Message,
    Notification,
    Reasoning,
    RequestConfig,
    ToolCall,
    ToolResult,
)
from podactors.store import FsStore
from podactors.store.entries import (
    ConfigChanged,
    Extension,
    Item,
    Origin,
    Outcome,
    SystemItem,
    TurnEnd,
    Usage,
    UserInput,
    session_start,
)
from podactors.store.fs import PodRef
from podactors.store.replay import fold

WRITER = Path(__file__).with_name("store_writer.py")


def every_entry_kind() -> list:
    return [
        UserInput("list the files"),
        Item(Reasoning("I should call ls", signature="sig-1", encrypted=None)),
        Item(Message("assistant", "Listing them now.")),
        Item(ToolCall("call-1", "bash", {"command": "ls", "timeout": 5})),
        Item(ToolResult("call-1", "2 files", "a.txt\nb.txt", is_error=False)),
        SystemItem(Notification("build finished", source="ci")),
        SystemItem(FileAttachment("a.txt", "hello", offset=0, limit=10)),
        SystemItem(ChildEvent("bob", "turn_ended", "ok")),
        Usage(history_len=6, input_total=1200, cache_read=800, cache_write=100, output=50),
        TurnEnd(),
        Outcome("finished", interrupted=False),
        ConfigChanged(RequestConfig(model="m2", max_tokens=100), system_prompt="new prompt"),
        Extension.of("metrics", {"name": "prune.skip", "value": 3}),
    ]


def object_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "objects").rglob("*") if p.is_file())


async def new_session(store: FsStore, steps: int = 0, *, size: int = 100):
    ref = await store.create_session(session_start("You are terse.", config=RequestConfig("m")))
    head = ref.head
    for i in range(steps):
        head = await store.append(
            ref.session_id, [Item(Message("assistant", f"{i} " + "x" * size)), Usage(i, i)], head
        )
    return ref.session_id, head


async def test_every_entry_kind_round_trips(tmp_path):
    store = FsStore(tmp_path)
    start = session_start("sys", config=RequestConfig("m", 10, 0.5, ("STOP",), "high"))
    ref = await store.create_session(start)
    entries = every_entry_kind()
    head = ref.head
    for entry in entries:
        head = await store.append(ref.session_id, [entry], head)
    assert await store.read_entries(ref.session_id) == [start, *entries]
    await store.pack(ref.session_id)
    assert await FsStore(tmp_path).read_entries(ref.session_id) == [start, *entries]


async def test_restore_equals_the_in_memory_fold(tmp_path):
    store = FsStore(tmp_path, pack_records=4)
    start = session_start("sys")
    ref = await store.create_session(start)
    batches = [every_entry_kind()[i : i + 3] for i in range(0, 13, 3)] * 5
    head = ref.head
    for batch in batches:
        head = await store.append(ref.session_id, batch, head)
    expected = fold([start, *(e for batch in batches for e in batch)])
    expected.session_id, expected.head = ref.session_id, head
    state = await store.restore(ref.session_id)
    assert state == expected
    assert state.turn_count == 5
    assert state.extensions["metrics"].decode() == {"name": "prune.skip", "value": 3}
    assert len(state.extension_log) == 5
    assert state.config == RequestConfig(model="m2", max_tokens=100)
    assert state.history[0] == Message("user", "list the files")


async def test_long_session_is_held_by_few_objects(tmp_path):
    store = FsStore(tmp_path, durability="none", pack_records=8)
    session_id, _ = await new_session(store, 2000)
    [info] = await store.list_sessions()
    assert info.entries == 1 + 2 * 2000
    # 250 packs as a binary counter: at most log2(250) + 1 objects on the spine.
    assert info.objects <= 8
    assert len((await store.restore(session_id)).history) == 2000


async def test_fork_at_head_shares_every_object(tmp_path):
    store = FsStore(tmp_path)
    session_id, head = await new_session(store, 50)
    await store.pack(session_id)
    before = object_files(tmp_path)
    fork = await store.fork(session_id)
    assert object_files(tmp_path) == before
    assert fork.head == head
    forked = await store.restore(fork.session_id)
    assert forked.history == (await store.restore(session_id)).history
    assert forked.origin == Origin("forked_from", session_id, head=head, at=101)
    assert (forked.session_id, forked.head) == (fork.session_id, head)
    [info] = [i for i in await store.list_sessions() if i.session_id == fork.session_id]
    assert info.origin == forked.origin


async def test_fork_mid_segment_writes_one_prefix_object(tmp_path):
    store = FsStore(tmp_path)
    session_id, _ = await new_session(store, 50)
    await store.pack(session_id)
    before = set(object_files(tmp_path))
    fork = await store.fork(session_id, at=41)
    assert len(set(object_files(tmp_path)) - before) == 1
    history = (await store.restore(fork.session_id)).history
    assert len(history) == 20 and history[-1].content.startswith("19 ")
    # The fork continues independently; the source is untouched.
    await store.append(fork.session_id, [UserInput("only in the fork")], fork.head)
    assert len((await store.restore(session_id)).history) == 50


async def test_identical_segments_are_stored_once(tmp_path):
    store = FsStore(tmp_path)
    session_id, _ = await new_session(store, 50)
    await store.pack(session_id)
    first = await store.fork(session_id, at=41)
    after_first = object_files(tmp_path)
    second = await store.fork(session_id, at=41)
    assert object_files(tmp_path) == after_first
    assert first.head == second.head


async def test_head_moved_rejects_a_stale_append(tmp_path):
    store = FsStore(tmp_path)
    session_id, head = await new_session(store, 1)
    await store.append(session_id, [UserInput("first")], head)
    with pytest.raises(HeadMoved) as err:
        await store.append(session_id, [UserInput("second")], head)
    assert err.value.expected == head
    entries = await store.read_entries(session_id)
    assert entries[-1] == UserInput("first")


async def test_another_store_object_sees_the_moved_head(tmp_path):
    a, b = FsStore(tmp_path), FsStore(tmp_path)
    session_id, head = await new_session(a, 3)
    new_head = await b.append(session_id, [UserInput("from b")], head)
    with pytest.raises(HeadMoved):
        await a.append(session_id, [UserInput("from a")], head)
    assert await a.append(session_id, [UserInput("from a")], new_head)


async def test_flipped_byte_in_any_object_is_reported_with_its_path(tmp_path):
    store = FsStore(tmp_path, pack_records=4)
    session_id, _ = await new_session(store, 30)
    await store.gc(grace=0)  # leave only the objects the session reads
    paths = object_files(tmp_path)
    assert len(paths) >= 2
    for path in paths:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        original = path.read_bytes()
        os.chmod(path, 0o644)
        path.write_bytes(bytes(data))
        with pytest.raises(CorruptSegment) as err:
            await store.restore(session_id)
        assert err.value.path == path
        assert err.value.expected == path.parent.name + path.name
        assert err.value.actual != err.value.expected
        assert str(path) in str(err.value)
        report = await store.verify()
        assert not report.ok
        assert str(path) in {p.path for p in report.problems}
        path.write_bytes(original)
    assert (await store.verify()).ok


async def test_flipped_byte_in_a_ref_record_names_the_file_and_offset(tmp_path):
    store = FsStore(tmp_path)
    session_id, _ = await new_session(store, 3)
    ref_path = tmp_path / "refs" / "sessions" / session_id
    data = bytearray(ref_path.read_bytes())
    data[-10] ^= 0xFF
    ref_path.write_bytes(bytes(data))
    with pytest.raises(CorruptSegment) as err:
        await store.restore(session_id)
    assert err.value.path == ref_path and err.value.offset is not None
    report = await store.verify()
    assert [p.path for p in report.problems] == [str(ref_path)]


async def test_torn_final_record_is_ignored_and_truncated_by_the_next_append(tmp_path):
    store = FsStore(tmp_path)
    session_id, head = await new_session(store, 3)
    ref_path = tmp_path / "refs" / "sessions" / session_id
    whole = ref_path.read_bytes()
    with open(ref_path, "ab") as f:
        f.write(b"\x00\x10\x00\x00" + b"partial record")
    fresh = FsStore(tmp_path)
    assert len((await fresh.restore(session_id)).history) == 3
    assert await fresh.head(session_id) == head
    await fresh.append(session_id, [UserInput("after the tear")], head)
    assert ref_path.read_bytes().startswith(whole)
    entries = await fresh.read_entries(session_id)
    assert entries[-1] == UserInput("after the tear")
    assert (await fresh.verify()).ok


async def test_torn_temp_file_is_ignored_and_removed_by_gc(tmp_path):
    store = FsStore(tmp_path)
    session_id, _ = await new_session(store, 40)
    shard = object_files(tmp_path)[0].parent
    torn = shard / "deadbeef.5a5a5a.tmp"
    torn.write_bytes(b"PDSG\x01half a segm")
    ref_tmp = tmp_path / "refs" / "sessions" / f"{session_id}.abcdef.tmp"
    ref_tmp.write_bytes(b"PDRF\x01torn")
    assert [s.session_id for s in await store.list_sessions()] == [session_id]
    assert (await store.verify()).ok
    report = await store.gc(grace=0)
    assert report.temp_removed == 2
    assert not torn.exists() and not ref_tmp.exists()
    assert len((await store.restore(session_id)).history) == 40


async def test_gc_keeps_reachable_objects_and_drops_superseded_ones(tmp_path):
    store = FsStore(tmp_path, pack_records=2)
    session_id, _ = await new_session(store, 64, size=2000)
    fork = await store.fork(session_id, at=31)
    report = await store.gc(grace=0)
    assert report.objects_removed > 0
    assert (await store.verify()).ok
    assert len((await store.restore(session_id)).history) == 64
    assert len((await store.restore(fork.session_id)).history) == 15
    raw = sum(len(msgspec.msgpack.encode(e)) for e in await store.read_entries(session_id))
    assert report.bytes_kept <= 2 * raw


async def test_gc_respects_the_grace_period(tmp_path):
    store = FsStore(tmp_path, pack_records=2)
    await new_session(store, 16)
    before = object_files(tmp_path)
    report = await store.gc(grace=3600)
    assert report.objects_removed == 0 and object_files(tmp_path) == before


async def test_gc_refuses_to_run_over_a_damaged_ref(tmp_path):
    store = FsStore(tmp_path, pack_records=2)
    session_id, _ = await new_session(store, 8)
    ref_path = tmp_path / "refs" / "sessions" / session_id
    ref_path.write_bytes(b"PDRF\x01" + b"\xff" * 40)
    before = object_files(tmp_path)
    with pytest.raises(StoreError, match="gc refused"):
        await store.gc(grace=0)
    assert object_files(tmp_path) == before


async def test_unknown_session_raises_session_not_found(tmp_path):
    store = FsStore(tmp_path)
    with pytest.raises(SessionNotFound):
        await store.restore("20990101-000000-00000000")
    with pytest.raises(ValueError):
        await store.restore("../escape")


async def test_foreign_format_is_refused(tmp_path):
    (tmp_path / "FORMAT").write_text("podactors-store 99\n")
    with pytest.raises(StoreFormatError, match="podactors-store 99"):
        await FsStore(tmp_path).list_sessions()


async def test_compacted_session_records_its_origin(tmp_path):
    store = FsStore(tmp_path)
    session_id, head = await new_session(store, 5)
    state = await store.restore(session_id)
    state.history = [Message("system", "summary"), *state.history[-2:]]
    origin = Origin("compacted_from", session_id, head=head)
    ref = await store.create_compacted(state, origin)
    compacted = await store.restore(ref.session_id)
    assert compacted.origin == origin
    assert compacted.history == state.history
    assert compacted.system_prompt == "You are terse."


async def test_pod_refs_round_trip(tmp_path):
    store = FsStore(tmp_path)
    assert await store.get_pod_ref("alice") is None
    await store.set_pod_ref("alice", PodRef("s1", children=["bob"], updated_at=1.0))
    await store.set_pod_ref("alice", PodRef("s2", children=["bob"], updated_at=2.0))
    assert await FsStore(tmp_path).get_pod_ref("alice") == PodRef("s2", ["bob"], 2.0)
    assert list(await store.list_pod_refs()) == ["alice"]


async def test_durability_none_keeps_the_same_format(tmp_path):
    fast = FsStore(tmp_path, durability="none", pack_records=4)
    session_id, _ = await new_session(fast, 20)
    assert len((await FsStore(tmp_path).restore(session_id)).history) == 20


# --- real processes -----------------------------------------------------------------


def start_writer(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("kill_after", [37, 150, 311])
async def test_sigkill_mid_append_loop_keeps_every_acknowledged_append(tmp_path, kill_after):
    store = FsStore(tmp_path)
    session_id, _ = await new_session(store)
    writer = start_writer("loop", str(tmp_path), session_id, "4")

    def read_acks() -> int:
        assert writer.stdout is not None
        acked = 0
        for line in writer.stdout:
            acked = int(line.split()[1]) + 1
            if acked >= kill_after:
                writer.send_signal(signal.SIGKILL)
                break
        writer.wait()
        return acked

    with trio.fail_after(60):
        acked = await trio.to_thread.run_sync(read_acks)
    assert writer.returncode == -signal.SIGKILL
    inputs = [
        m.content.split(".")[0] for m in (await FsStore(tmp_path).restore(session_id)).history
    ]
    assert inputs[:acked] == [f"step {n}" for n in range(acked)]
    assert len(inputs) in (acked, acked + 1)  # the append in flight may have landed, whole
    assert (await FsStore(tmp_path).verify()).ok
    head = await store.head(session_id)
    await store.append(session_id, [UserInput("resumed")], head)
    assert (await store.restore(session_id)).history[-1] == Message("user", "resumed")


async def test_two_processes_racing_one_gets_head_moved(tmp_path):
    store = FsStore(tmp_path)
    session_id, _ = await new_session(store, 2)
    writers = [start_writer("race", str(tmp_path), session_id) for _ in range(2)]

    def race() -> list[str]:
        for w in writers:
            assert w.stdout.readline().strip() == "ready"
        for w in writers:
            w.stdin.write("go\n")
            w.stdin.flush()
        results = [w.stdout.readline().strip() for w in writers]
        for w in writers:
            w.wait()
        return results

    with trio.fail_after(30):
        results = await trio.to_thread.run_sync(race)
    assert sorted(results) == ["moved", "ok"]
    history = (await store.restore(session_id)).history
    assert len(history) == 3 and history[-1].content.startswith("from")


async def test_two_processes_contending_lose_nothing_and_never_interleave(tmp_path):
    store = FsStore(tmp_path)
    session_id, _ = await new_session(store)
    writers = [start_writer("contend", str(tmp_path), session_id, tag, "150") for tag in "ab"]

    def wait() -> list[str]:
        return [w.communicate()[0].strip() for w in writers]

    with trio.fail_after(120):
        outputs = await trio.to_thread.run_sync(wait)
    assert all(o.startswith("done") for o in outputs)
    contents = [m.content for m in (await store.restore(session_id)).history]
    for tag in "ab":
        assert [c for c in contents if c.startswith(tag)] == [f"{tag} {i}" for i in range(150)]
    assert len(contents) == 300
    assert (await store.verify()).ok


async def test_reading_a_missing_store_creates_nothing(tmp_path):
    store = FsStore(tmp_path / "nowhere")
    assert await store.list_sessions() == []
    assert (await store.verify()).ok
    assert await store.list_pod_refs() == {}
    with pytest.raises(SessionNotFound):
        await store.restore("20990101-000000-00000000")
    assert not (tmp_path / "nowhere").exists()


async def test_list_sessions_is_ordered_by_creation(tmp_path):
    store = FsStore(tmp_path)
    made = [(await new_session(store))[0] for _ in range(5)]
    assert [info.session_id for info in await store.list_sessions()] == made


async def test_a_ref_replaced_in_place_by_one_of_the_same_size_is_never_trusted(tmp_path):
    """Inode numbers are reused after a rename: a foreign rewrite can leave the ref with
    this writer's inode and size but another head. The writer must see it."""
    store = FsStore(tmp_path / "a")
    ref = await store.create_session(session_start("p"))
    path = tmp_path / "a" / "refs" / "sessions" / ref.session_id
    before = path.read_bytes()
    ours = await store.append(ref.session_id, [UserInput("aaaa")], ref.head)
    # the same session, where another writer appended different bytes of the same size
    other_root = tmp_path / "b"
    other = FsStore(other_root)
    await other.create_session(session_start("p"))  # lays the store out
    other_path = other_root / "refs" / "sessions" / ref.session_id
    other_path.write_bytes(before)
    theirs = await other.append(ref.session_id, [UserInput("bbbb")], ref.head)
    forged = other_path.read_bytes()
    assert len(forged) == path.stat().st_size and forged != path.read_bytes()
    inode = path.stat().st_ino
    with open(path, "r+b") as file:  # same inode, same size, other content
        file.write(forged)
    assert path.stat().st_ino == inode
    with pytest.raises(HeadMoved):
        await store.append(ref.session_id, [UserInput("stale")], ours)
    head = await store.append(ref.session_id, [UserInput("true head")], theirs)
    entries = await store.read_entries(ref.session_id)
    assert [e.content for e in entries if isinstance(e, UserInput)] == ["bbbb", "true head"]
    assert head == (await store.restore(ref.session_id)).head


async def test_packing_refuses_a_tail_whose_chain_is_broken(tmp_path):
    from podactors.store.refs import frame
    from podactors.store.segments import Segment, encode_segment

    store = FsStore(tmp_path / "s")
    ref = await store.create_session(session_start("p"))
    head = await store.append(ref.session_id, [UserInput("one")], ref.head)
    path = tmp_path / "s" / "refs" / "sessions" / ref.session_id
    offset = path.stat().st_size
    stray = encode_segment(Segment(ref.head, 1, [UserInput("names an old head")]))
    with open(path, "ab") as file:
        file.write(frame(stray)[0])
    with pytest.raises(CorruptSegment) as err:
        await store.pack(ref.session_id)
    assert err.value.offset == offset and "chain broken" in str(err.value)
    assert str(path) in str(err.value)
    assert path.read_bytes().endswith(frame(stray)[0])  # refused whole: nothing rewritten
    assert head in path.read_bytes().hex()  # the good record is still there too


async def test_a_fork_at_the_head_or_a_tail_boundary_writes_only_its_ref(tmp_path):
    store = FsStore(tmp_path / "s")
    ref = await store.create_session(session_start("p"))
    head = ref.head
    for n in range(10):  # unpacked: all in the ref's tail
        head = await store.append(ref.session_id, [UserInput(f"step {n}")], head)
    before = store.statistics()
    fork = await store.fork(ref.session_id)
    middle = await store.fork(ref.session_id, at=6)
    after = store.statistics()
    assert after.objects_written == before.objects_written and after.packs == before.packs
    assert fork.head == head
    source = await store.restore(ref.session_id)
    assert (await store.restore(fork.session_id)).history == source.history
    assert (await store.restore(middle.session_id)).history == source.history[:5]
    assert (await store.restore(middle.session_id)).origin.at == 6
    head = await store.append(fork.session_id, [UserInput("on the fork")], fork.head)
    assert (await store.restore(fork.session_id)).history[-1].content == "on the fork"
    assert (await store.restore(ref.session_id)).history == source.history
    assert (await store.verify()).ok


async def test_one_damaged_ref_does_not_hide_the_other_sessions(tmp_path):
    store = FsStore(tmp_path / "s")
    good = await store.create_session(session_start("good"))
    bad = await store.create_session(session_start("bad"))
    path = tmp_path / "s" / "refs" / "sessions" / bad.session_id
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40
    path.write_bytes(bytes(data))
    infos = {info.session_id: info for info in await store.list_sessions()}
    assert infos[good.session_id].damage is None and infos[good.session_id].entries == 1
    damage = infos[bad.session_id].damage
    assert damage is not None and str(path) in damage


async def test_every_flipped_byte_of_a_pod_ref_is_caught_and_named(tmp_path):
    from podactors.store import PodRef

    store = FsStore(tmp_path / "s")
    ref = await store.create_session(session_start("p"))
    await store.set_pod_ref("alice", PodRef(ref.session_id, updated_at=1.0, manifest="/m.toml"))
    path = tmp_path / "s" / "refs" / "pods" / "alice"
    whole = path.read_bytes()
    assert (await store.verify()).ok
    for offset in range(len(whole)):
        for bit in (0x01, 0x80):
            damaged = bytearray(whole)
            damaged[offset] ^= bit
            path.write_bytes(bytes(damaged))
            with pytest.raises(CorruptSegment) as err:
                await store.get_pod_ref("alice")
            assert str(path) in str(err.value)
    path.write_bytes(whole[:-1])
    report = await store.verify()
    assert [p.path for p in report.problems] == [str(path)]
    path.write_bytes(whole)
    assert (await store.get_pod_ref("alice")).session_id == ref.session_id


async def test_a_flipped_bit_in_any_frame_length_is_corruption_never_a_torn_end(tmp_path):
    from podactors.store.refs import MAGIC

    store = FsStore(tmp_path / "s")
    ref = await store.create_session(session_start("p"))
    head = ref.head
    for n in range(3):
        head = await store.append(ref.session_id, [UserInput(f"step {n}")], head)
    path = tmp_path / "s" / "refs" / "sessions" / ref.session_id
    whole = path.read_bytes()
    parsed = await store.read_entries(ref.session_id)
    # the frame starts: the header's, the session start's, then one per append
    starts, offset = [], len(MAGIC)
    while offset < len(whole):
        starts.append(offset)
        offset += 40 + int.from_bytes(whole[offset : offset + 4], "little")
    assert len(starts) == 2 + 3
    for start in starts:
        for bit in range(32):
            damaged = bytearray(whole)
            damaged[start + bit // 8] ^= 1 << (bit % 8)
            path.write_bytes(bytes(damaged))
            fresh = FsStore(tmp_path / "s")
            with pytest.raises(CorruptSegment) as err:
                await fresh.read_entries(ref.session_id)
            assert err.value.offset == start and str(path) in str(err.value)
    path.write_bytes(whole)
    assert len(await store.read_entries(ref.session_id)) == len(parsed)


async def test_a_ref_of_the_first_format_is_read_and_upgraded_by_its_next_append(tmp_path):
    from podactors.store.refs import MAGIC, MAGIC_V1, RefHeader, _header_encoder
    from podactors.store.segments import Segment, digest, encode_segment

    def frame_v1(payload: bytes) -> tuple[bytes, str]:
        raw = digest(payload)
        return len(payload).to_bytes(4, "little") + raw + payload, raw.hex()

    store = FsStore(tmp_path / "s")
    template = await store.create_session(session_start("p"))  # lays the store out
    path = tmp_path / "s" / "refs" / "sessions" / template.session_id
    start = encode_segment(Segment(None, 0, [session_start("old")]))
    header = _header_encoder.encode(RefHeader(template.session_id, 1.0))
    framed_start, head = frame_v1(start)
    path.write_bytes(MAGIC_V1 + frame_v1(header)[0] + framed_start)
    fresh = FsStore(tmp_path / "s")
    assert (await fresh.restore(template.session_id)).system_prompt == "old"
    new_head = await fresh.append(template.session_id, [UserInput("after")], head)
    assert path.read_bytes().startswith(MAGIC)
    state = await FsStore(tmp_path / "s").restore(template.session_id)
    assert state.history[-1].content == "after" and state.head == new_head
    assert (await fresh.verify()).ok


async def test_verify_names_a_stray_file_among_the_pod_refs(tmp_path):
    store = FsStore(tmp_path / "s")
    await store.create_session(session_start("p"))
    stray = tmp_path / "s" / "refs" / "pods"
    stray.mkdir(parents=True, exist_ok=True)
    (stray / "not a pod").write_bytes(b"x")
    report = await store.verify()
    assert [p.path for p in report.problems] == [str(stray / "not a pod")]
