"""Compaction latency bench: what the framework costs around the summarising model call.

For sessions of each size (history items: user inputs, assistant text, ``read_file``
results of a few KB, ``bash`` outputs, and a usage record per LLM call, so occupancy is
measured rather than guessed) it builds the session in a real store, restores a pod from
it (``Pod.adopt``) and compacts it through ``PodHandle.compact()``, once per round. The
summarising worker runs against the scripted provider with instant replies: it marks two
files (``mark_read_required``) and calls ``write_summary``, then stops, so what is measured
is the framework, not a model. It prints

* total latency p50 / p95 (wall clock around ``compact()``) and its ratio to the floor
  measured in the same run, interleaved with the rounds: msgspec encode of the new
  session's ``SessionStart`` + BLAKE2b + write of a temp file + fsync + rename;
* the phases (p50 / p95, from ``CompactResult.timings``): occupancy (measuring the context
  before), split (choosing the retained tail), summary input (building the stripped
  input), compact worker (the summarising worker's turn, less auto-read), auto-read
  (reading the marked files), persist (writing the new session and the pod ref), swap
  (switching the pod to it) and other (the rest: mailbox, status events, task start);
* how the p50 grows from one size to the next, against linear growth.

It also compacts the 1 000-item session against the loopback stand-in of the Anthropic
API (``StandinServer`` with an ``AnthropicProvider`` pointed at it), so the summarising
worker's two LLM calls go over real HTTP.

    python bench/compaction_latency.py [--sizes 100,1000,10000] [--rounds 20] [--dir DIR]
                                        [--json]

``--rounds`` applies to sizes below 10 000; larger sizes run a quarter as many (at least
3). Each size also runs one warm-up round that is not measured. Run it on the disk you care
about: ``--dir`` defaults to a temp dir under the current directory, since /tmp may be a
RAM disk where fsync costs nothing.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import trio
from floor import floor_write, percentile

from podactors.compaction.tokens import item_bytes
from podactors.items import Message, ToolCall, ToolResult
from podactors.llm.anthropic import AnthropicProvider
from podactors.llm.provider import Provider
from podactors.llm.scripted import ScriptedProvider, ScriptedReply, ScriptedToolCall
from podactors.manifest import Manifest
from podactors.protocol import CompactResult
from podactors.runtime.pod import Pod
from podactors.store import FsStore
from podactors.store.entries import (
    Item,
    LogEntry,
    Origin,
    Outcome,
    SessionStart,
    TurnEnd,
    Usage,
    UserInput,
    session_start,
)
from podactors.store.replay import SessionState
from podactors.testing import StandinServer

PHASES = ("occupancy", "split", "summary_input", "worker", "auto_read", "persist", "swap")
STANDIN_SIZE = 1000
TARGET_MS = 25.0
"""The target p50 for 1 000 items against the scripted provider."""

SYSTEM_PROMPT = (
    "You are a careful software engineer working in a Python repository. Read before you "
    "edit, run the tests after every change, and explain what you did in a few lines.\n"
) * 8
FIXED_TOKENS = 2400
"""The prompt's fixed part (system prompt, tool schemas) in the synthetic usage records."""
TOKENS_PER_BYTE = 0.3
SUMMARY = "\n".join(
    [
        "## Completed Tasks",
        "### Fix the request router",
        *(f"- handler_{n} in src/pkg/module_{n}.py now validates its input" for n in range(12)),
        "## Active Task",
        "### Make the test suite pass",
        "- goal: every test in tests/test_router.py passes",
        "- current state: 2 failures left in test_timeouts; the retry path is not covered",
        "- next step: add a deadline to Router.dispatch and re-run pytest -q",
        "## Key Decisions",
        *(f"- keep module_{n} synchronous: it is called from a worker thread" for n in range(6)),
        "## User Directives",
        '- "do not touch the public API of podactors.router"',
        "## Current Work",
        "Re-running the failing timeout tests after moving the deadline into dispatch.",
    ]
)
AUTO_READ = ("src/pkg/module_0.py", "src/pkg/module_1.py")


# --- the session ----------------------------------------------------------------------


def code_lines(k: int, count: int) -> list[str]:
    return [
        f"def handler_{k}_{n}(request, *, timeout=30):  return respond(request, {n})"
        for n in range(count)
    ]


def read_result(call_id: str, k: int) -> ToolResult:
    """A read_file result of 3-4.5 KB, numbered like the builtin's."""
    lines = code_lines(k, 45 + k % 20)
    numbered = "".join(f"{n:>6}\t{line}\n" for n, line in enumerate(lines, 1))
    return ToolResult(call_id, f"read {len(lines)} lines of src/pkg/module_{k % 50}.py", numbered)


def bash_result(call_id: str, k: int) -> ToolResult:
    """A pytest run's output, about 1.5 KB."""
    lines = [f"tests/test_module_{n}.py ........{'F' if n == k % 9 else '.'}" for n in range(12)]
    lines += [
        "=================================== FAILURES ===================================",
        f"___________________________ test_timeout_{k % 9} ___________________________",
        "    assert router.dispatch(request, timeout=0.1) == expected",
        "E   TimeoutError: dispatch did not return within 0.1s",
        "tests/test_router.py:88: TimeoutError",
        f"========================= 1 failed, {100 + k % 40} passed in 2.31s ==========",
    ]
    text = "\n".join(lines * 2)
    return ToolResult(call_id, f"exit 1 ({len(text)} bytes of output)", text, is_error=True)


def assistant_text(k: int, final: bool) -> str:
    if final:
        return (
            f"Done with step {k}: the router now validates its input and the timeout tests "
            "pass. I changed dispatch to take a deadline and added two tests. " * 3
        )
    return (
        f"Step {k}: the failure points at the retry path in module_{k % 50}; I will read it "
        "and check how the deadline is propagated before changing anything. " * 2
    )


def session_entries(items: int) -> list[LogEntry]:
    """Log entries whose replay is a history of exactly ``items`` items, as a pod writes
    them: turns of up to 6 tool rounds, a usage record after each LLM call."""
    entries: list[LogEntry] = []
    count = size = 0
    cache = 0
    k = 0

    def add(entry: LogEntry, item: Any) -> None:
        nonlocal count, size
        entries.append(entry)
        count += 1
        size += item_bytes(item)

    def usage(seen: int, seen_bytes: int) -> None:
        nonlocal cache
        total = FIXED_TOKENS + round(seen_bytes * TOKENS_PER_BYTE)
        entries.append(Usage(seen, total, cache_read=cache, output=120))
        cache = total

    text = "Fix the failing timeout tests in the router."
    add(UserInput(text), Message("user", text))
    rounds = 0
    while count < items:
        seen, seen_bytes = count, size
        k += 1
        if items - count >= 3 and rounds < 6:
            rounds += 1
            call_id = f"toolu_{k:06d}"
            if k % 3:
                call = ToolCall(call_id, "read_file", {"path": f"src/pkg/module_{k % 50}.py"})
                result = read_result(call_id, k)
            else:
                call = ToolCall(call_id, "bash", {"command": "pytest -q tests/test_router.py"})
                result = bash_result(call_id, k)
            message = Message("assistant", assistant_text(k, final=False))
            add(Item(message), message)
            add(Item(call), call)
            usage(seen, seen_bytes)
            add(Item(result), result)
            continue
        message = Message("assistant", assistant_text(k, final=True))
        add(Item(message), message)
        usage(seen, seen_bytes)
        entries += [TurnEnd(), Outcome("finished")]
        rounds = 0
        if count < items:
            text = f"Thanks. Next: look at module_{k % 50} and make it honour the deadline."
            add(UserInput(text), Message("user", text))
    return entries


async def build_session(root: Path, items: int) -> SessionState:
    """Write the session (quickly: no fsync, 64 entries an append) and restore it."""
    store = FsStore(root / "store", durability="none")
    ref = await store.create_session(session_start(SYSTEM_PROMPT))
    head = ref.head
    entries = session_entries(items)
    for start in range(0, len(entries), 64):
        head = await store.append(ref.session_id, entries[start : start + 64], head)
    state = await store.restore(ref.session_id)
    assert len(state.history) == items, (len(state.history), items)
    return state


def make_workdir(root: Path) -> Path:
    workdir = root / "work"
    for k, path in enumerate(AUTO_READ):
        file = workdir / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text("\n".join(code_lines(k, 60)) + "\n")
    return workdir


def manifest_for(workdir: Path) -> Manifest:
    return Manifest.from_toml(
        """
[pod]
name = "bench"
[model]
provider = "anthropic"
model = "bench-model"
[compaction]
[[scope.allow]]
target = "."
permission = "read"
""",
        base_dir=workdir,
    )


def summariser() -> list[ScriptedReply]:
    """The summarising worker's replies: mark two files and write the summary; stop."""
    calls = [
        ScriptedToolCall("mark_read_required", {"path": AUTO_READ[0]}),
        ScriptedToolCall("mark_read_required", {"path": AUTO_READ[1], "offset": 0, "limit": 30}),
        ScriptedToolCall("write_summary", {"text": SUMMARY}),
    ]
    return [ScriptedReply(tool_calls=calls), ScriptedReply(text="Summary written.")]


# --- measuring ------------------------------------------------------------------------


async def compact_once(
    manifest: Manifest, store: FsStore, state: SessionState, provider: Provider
) -> tuple[float, CompactResult, Pod]:
    """Restore a pod from ``state``, compact it, stop it; the wall time of ``compact()``."""
    pod = Pod(manifest, store, provider=provider)
    pod.adopt(state)
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(pod.run)
        with trio.fail_after(120):
            began = time.perf_counter()
            result = await handle.compact()
            elapsed = time.perf_counter() - began
        await handle.shutdown()
    if result.outcome != "compacted" or result.timings is None:
        raise RuntimeError(f"compaction {result.outcome}: {result.error}")
    return elapsed, result, pod


async def bench_size(
    root: Path, items: int, rounds: int, provider_for_round: Callable[[], Provider], label: str
) -> dict[str, Any]:
    """Compact a fresh pod on the same ``items``-item session ``rounds`` times (plus a
    warm-up), each round followed by the floor."""
    state = await build_session(root, items)
    manifest = manifest_for(make_workdir(root))
    store = FsStore(root / "store")
    floor_dir = root / "floor"
    floor_dir.mkdir()
    totals: list[float] = []
    floors: list[float] = []
    phases: dict[str, list[float]] = {name: [] for name in (*PHASES, "other")}
    result: CompactResult | None = None
    for round_ in range(rounds + 1):
        elapsed, result, pod = await compact_once(manifest, store, state, provider_for_round())
        assert state.session_id is not None
        start = SessionStart(
            system_prompt=pod.session.transcript.system_prompt,
            config=pod.session.transcript.config,
            history=list(pod.session.history),
            origin=Origin("compacted_from", state.session_id, head=state.head),
            created_at=time.time(),
        )
        floor = floor_write(floor_dir, start)
        if round_ == 0:
            continue  # warm-up
        timings = result.timings
        assert timings is not None
        totals.append(elapsed)
        floors.append(floor)
        for name in PHASES:
            phases[name].append(getattr(timings, name))
        phases["other"].append(max(0.0, elapsed - timings.total))
    assert result is not None
    history_bytes = sum(item_bytes(item) for item in state.history)
    return {
        "provider": label,
        "items": items,
        "rounds": rounds,
        "history_mb": history_bytes / 1e6,
        "tokens_before": result.tokens_before,
        "tokens_after": result.tokens_after,
        "total_p50_ms": statistics.median(totals) * 1e3,
        "total_p95_ms": percentile(totals, 0.95) * 1e3,
        "floor_p50_ms": statistics.median(floors) * 1e3,
        "ratio": statistics.median(totals) / statistics.median(floors),
        "phases": {
            name: {
                "p50_ms": statistics.median(values) * 1e3,
                "p95_ms": percentile(values, 0.95) * 1e3,
            }
            for name, values in phases.items()
        },
    }


async def bench_standin(root: Path, rounds: int) -> dict[str, Any]:
    """The 1 000-item size with the summarising worker over loopback HTTP."""
    server = StandinServer(summariser() * (rounds + 1))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        async with httpx.AsyncClient() as client:
            provider = AnthropicProvider(model="bench-model", base_url=server.url, client=client)
            row = await bench_size(root, STANDIN_SIZE, rounds, lambda: provider, "standin http")
        nursery.cancel_scope.cancel()
    return row


def rounds_for(items: int, rounds: int) -> int:
    return rounds if items < 10_000 else max(3, rounds // 4)


# --- output ---------------------------------------------------------------------------


def print_tables(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=170)
    totals = Table(
        title="podactors compaction latency (manual compact through a pod on a real store; "
        "ratios against the floor measured in this run)"
    )
    for title in (
        "provider",
        "items",
        "history",
        "rounds",
        "tokens before→after",
        "p50",
        "p95",
        "floor p50",
        "p50/floor",
        "vs linear",
    ):
        totals.add_column(title, justify="left" if title == "provider" else "right")
    for row in rows:
        totals.add_row(
            row["provider"],
            f"{row['items']:,}",
            f"{row['history_mb']:.1f} MB",
            str(row["rounds"]),
            f"{row['tokens_before']:,}→{row['tokens_after']:,}",
            f"{row['total_p50_ms']:.2f} ms",
            f"{row['total_p95_ms']:.2f} ms",
            f"{row['floor_p50_ms']:.2f} ms",
            f"{row['ratio']:.1f}x",
            "" if row.get("growth") is None else f"{row['growth']:.2f}",
        )
    console.print(totals)
    phases = Table(title="phases, p50 / p95 in ms (compact worker excludes auto-read)")
    phases.add_column("provider")
    phases.add_column("items", justify="right")
    names = (*PHASES, "other")
    for name in names:
        phases.add_column(name.replace("_", " "), justify="right")
    for row in rows:
        cells = [
            f"{row['phases'][name]['p50_ms']:.2f} / {row['phases'][name]['p95_ms']:.2f}"
            for name in names
        ]
        phases.add_row(row["provider"], f"{row['items']:,}", *cells)
    console.print(phases)
    console.print(
        "vs linear: (p50 / the next smaller size's p50) / (items / its items); "
        "≤ 1 grows no faster than linearly."
    )
    target = [r for r in rows if r["provider"] == "scripted" and r["items"] == 1000]
    if target:
        p50 = target[0]["total_p50_ms"]
        verdict = "met" if p50 <= TARGET_MS else "MISSED"
        console.print(f"target p50 ≤ {TARGET_MS:g} ms at 1,000 items: {p50:.2f} ms, {verdict}")


def add_growth(rows: list[dict[str, Any]]) -> None:
    """``growth``: how much the p50 grew from the next smaller size, over how much the
    history grew (≤ 1: no faster than linear)."""
    scripted = sorted((r for r in rows if r["provider"] == "scripted"), key=lambda r: r["items"])
    for smaller, row in itertools.pairwise(scripted):
        row["growth"] = (row["total_p50_ms"] / smaller["total_p50_ms"]) / (
            row["items"] / smaller["items"]
        )


async def main(sizes: list[int], rounds: int, directory: Path | None, as_json: bool) -> None:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="podactors-bench-", dir=directory or Path.cwd()) as d:
        for items in sizes:
            root = Path(d) / f"n{items}"
            root.mkdir()
            n = rounds_for(items, rounds)
            rows.append(
                await bench_size(root, items, n, lambda: ScriptedProvider(summariser()), "scripted")
            )
        root = Path(d) / "standin"
        root.mkdir()
        rows.append(await bench_standin(root, rounds_for(STANDIN_SIZE, rounds)))
    add_growth(rows)
    if as_json:
        print(msgspec.json.encode(rows).decode())
    else:
        print_tables(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    trio.run(main, [int(s) for s in args.sizes.split(",")], args.rounds, args.dir, args.json)
