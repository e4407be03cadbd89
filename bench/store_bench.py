"""Session store bench: append latency and restore time against the physical floor.

For sessions of each size (steps of ~2 KB of entries) it prints

* append p50 / p99 / mean / max, measured through the public async API, and the p50
  of the floor measured in the same run, interleaved with the appends: msgspec encode
  + BLAKE2b + write + fsync + rename of the same bytes;
* restore time against a raw msgspec decode of the same entries, and the number of
  files restore opened;
* bytes on disk after ``gc`` against the raw encoded entry bytes.

    python bench/store_bench.py [--sizes 10,1000,10000] [--dir DIR] [--json]

Run it on the disk you care about: ``--dir`` defaults to a temp dir under the current
directory, since /tmp may be a RAM disk where fsync costs nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import msgspec
import trio
from floor import floor_write, percentile

from podactors.items import Message, ToolCall, ToolResult
from podactors.store import FsStore
from podactors.store.entries import Item, LogEntry, Usage, session_start

WINDOW = 500
"""Appends measured per size: the last WINDOW steps of the session (repeated for small sizes)."""


def make_step(i: int) -> list[LogEntry]:
    """About 2 KB of entries: assistant text, a tool call, its result and a usage record."""
    text = f"Step {i}: reading the module and deciding what to change next. " * 14
    output = "\n".join(
        f"{n:4d}  def handler_{n}(request): return respond(request)" for n in range(16)
    )
    return [
        Item(Message("assistant", text[:900])),
        Item(ToolCall(f"call-{i}", "read_file", {"path": f"src/module_{i % 40}.py", "limit": 200})),
        Item(ToolResult(f"call-{i}", f"read 16 lines of src/module_{i % 40}.py", output)),
        Usage(history_len=3 * i, input_total=1000 + 600 * i, cache_read=500 * i, output=120),
    ]


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


async def bench_size(root: Path, steps: int) -> dict[str, float | int]:
    """Build sessions of ``steps`` steps, measuring the last WINDOW appends and the floor."""
    floor_dir = root / "floor"
    floor_dir.mkdir()
    store = FsStore(root / "store")
    appends: list[float] = []
    floors: list[float] = []
    session_id = ""
    while len(appends) < WINDOW:
        ref = await store.create_session(session_start("You are a careful engineer."))
        session_id, head = ref.session_id, ref.head
        for i in range(steps):
            entries = make_step(i)
            measured = i >= steps - WINDOW
            start = time.perf_counter()
            head = await store.append(session_id, entries, head)
            if measured:
                appends.append(time.perf_counter() - start)
                floors.append(floor_write(floor_dir, entries))
    return {
        "steps": steps,
        "append_p50_ms": statistics.median(appends) * 1e3,
        "append_p99_ms": percentile(appends, 0.99) * 1e3,
        "append_mean_ms": statistics.fmean(appends) * 1e3,
        "append_max_ms": max(appends) * 1e3,
        "floor_p50_ms": statistics.median(floors) * 1e3,
        "append_ratio": statistics.median(appends) / statistics.median(floors),
        **await bench_restore(store, session_id),
    }


async def bench_restore(store: FsStore, session_id: str) -> dict[str, float | int]:
    """Restore the last session against a raw decode of the same entries; gc, then size it."""
    entries = await store.read_entries(session_id)
    raw = msgspec.msgpack.encode(entries)
    restores, decodes = [], []
    for _ in range(5):
        start = time.perf_counter()
        await store.restore(session_id)
        restores.append(time.perf_counter() - start)
        start = time.perf_counter()
        msgspec.msgpack.decode(raw, type=list[LogEntry])
        decodes.append(time.perf_counter() - start)
    [info] = [s for s in await store.list_sessions() if s.session_id == session_id]
    await store.gc(grace=0)
    other = sum(s.bytes for s in await store.list_sessions() if s.session_id != session_id)
    on_disk = tree_bytes(store.root / "objects") + tree_bytes(store.root / "refs") - other
    return {
        "restore_ms": statistics.median(restores) * 1e3,
        "raw_decode_ms": statistics.median(decodes) * 1e3,
        "restore_ratio": statistics.median(restores) / statistics.median(decodes),
        "files_read": info.objects + 1,
        "raw_bytes": len(raw),
        "disk_bytes": on_disk,
        "disk_ratio": on_disk / len(raw),
    }


def print_table(rows: list[dict[str, float | int]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="podactors store bench (ratios against the floor measured in this run)")
    columns = [
        ("steps", "steps", "{}"),
        ("append p50", "append_p50_ms", "{:.3f} ms"),
        ("p99", "append_p99_ms", "{:.3f} ms"),
        ("mean", "append_mean_ms", "{:.3f} ms"),
        ("floor p50", "floor_p50_ms", "{:.3f} ms"),
        ("p50/floor", "append_ratio", "{:.2f}x"),
        ("restore", "restore_ms", "{:.2f} ms"),
        ("raw decode", "raw_decode_ms", "{:.2f} ms"),
        ("restore/raw", "restore_ratio", "{:.2f}x"),
        ("files read", "files_read", "{}"),
        ("disk/raw", "disk_ratio", "{:.2f}x"),
    ]
    for title, _, _ in columns:
        table.add_column(title, justify="right")
    for row in rows:
        table.add_row(*(fmt.format(row[key]) for _, key, fmt in columns))
    Console(width=160).print(table)


async def main(sizes: list[int], directory: Path | None, as_json: bool) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="podactors-bench-", dir=directory or Path.cwd()) as d:
        for steps in sizes:
            root = Path(d) / f"n{steps}"
            root.mkdir()
            rows.append(await bench_size(root, steps))
    if as_json:
        print(msgspec.json.encode(rows).decode())
    else:
        print_table(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,1000,10000")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    trio.run(main, [int(s) for s in args.sizes.split(",")], args.dir, args.json)
