"""How sessions look to people: times, sizes, tables, summaries and reports.

The consoles the commands print on; the formatting helpers; the sessions table (shared
by ``sessions list`` and ``demo``); a session's summary, history and log entries; and
the progress bar and reports of ``sessions verify`` and ``sessions gc``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import click
import msgspec
import trio
from rich import box
from rich.console import Console, JustifyMethod
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from podactors.items import (
    ChildEvent,
    FileAttachment,
    HistoryItem,
    Message,
    Notification,
    Reasoning,
    RequestConfig,
    ToolCall,
    ToolResult,
)
from podactors.store.entries import (
    ConfigChanged,
    Extension,
    Item,
    LogEntry,
    Origin,
    Outcome,
    SessionStart,
    SystemItem,
    Usage,
    UserInput,
)
from podactors.store.fs import FsStore, GcReport, SessionInfo, VerifyReport
from podactors.store.replay import SessionState

PREVIEW_WIDTH = 100
PIPE_WIDTH = 200
"""Console width when stdout is not a terminal (and ``COLUMNS`` is unset): ids stay whole."""

ProgressFn = Callable[[int, int], None]


# --- consoles ---------------------------------------------------------------------------


def stdout() -> Console:
    """The console for results; wide when piped, so tables keep ids and paths whole."""
    console = Console(soft_wrap=True, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
    return console


def stderr() -> Console:
    """The console for errors, notes and progress."""
    return Console(stderr=True, soft_wrap=True, highlight=False)


# --- formatting ---------------------------------------------------------------------


def human_bytes(size: float) -> str:
    """``512 B``, ``1.4 KiB``, ``3.0 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def iso_time(timestamp: float) -> str:
    """Local time, to the second: ``2026-11-21 11:44:30``."""
    return datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def relative_time(timestamp: float, now: float | None = None) -> str:
    """``just now``, ``42s ago``, ``5m ago``, ``3h ago``, ``2d ago``; ISO beyond a week."""
    delta = (time.time() if now is None else now) - timestamp
    if delta < 0 or delta >= 7 * 86400:
        return iso_time(timestamp)
    for limit, unit, size in ((60, "s", 1), (3600, "m", 60), (86400, "h", 3600)):
        if delta < limit:
            return "just now" if delta < 5 else f"{int(delta // size)}{unit} ago"
    return f"{int(delta // 86400)}d ago"


def origin_label(origin: Origin | None) -> str:
    """``forked_from <id>@<at>``, ``compacted_from <id>``, or ``""`` for a new session."""
    if origin is None:
        return ""
    if origin.kind == "forked_from" and origin.at is not None:
        return f"forked_from {origin.session_id}@{origin.at}"
    return f"{origin.kind} {origin.session_id}"


def truncate(text: str, width: int = PREVIEW_WIDTH) -> str:
    """``text`` cut to ``width`` characters, with an ellipsis when cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def one_line(text: str, width: int = PREVIEW_WIDTH) -> str:
    """``text`` with whitespace collapsed, cut to ``width`` characters with an ellipsis."""
    return truncate(" ".join(text.split()), width)


def _json_value(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _decode_raw(obj: Any) -> Any:
    if isinstance(obj, msgspec.Raw):
        return msgspec.msgpack.decode(obj)
    raise NotImplementedError(f"cannot convert {type(obj).__name__} to JSON")


def to_jsonable(value: Any) -> Any:
    """``value`` as builtins, with extension payloads (msgpack ``Raw``) decoded."""
    return msgspec.to_builtins(value, enc_hook=_decode_raw)


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    click.echo(msgspec.json.format(msgspec.json.encode(to_jsonable(value)), indent=2))


def tool_args(arguments: dict[str, Any], width: int = PREVIEW_WIDTH) -> str:
    """A tool call's arguments on one line: ``path="README.md", limit=20``, cut to ``width``."""
    return truncate(", ".join(f"{k}={_json_value(v)}" for k, v in arguments.items()), width)


# --- sessions table (shared by `sessions list` and `demo`) -----------------------------


SESSION_COLUMNS: tuple[tuple[str, JustifyMethod, bool], ...] = (
    ("id", "left", False),
    ("created", "left", True),
    ("updated", "left", False),
    ("entries", "right", False),
    ("size", "right", False),
    ("objects", "right", True),
    ("origin", "left", False),
)
"""The sessions table's columns: name, justification, shown only on wide consoles."""

WIDE_CONSOLE = 120


def _session_cells(info: SessionInfo, now: float | None) -> dict[str, Text]:
    if info.damage is not None:
        unknown = Text("?", style="red")
        return {
            "id": Text(info.session_id, style="red"),
            "created": unknown,
            "updated": Text(relative_time(info.updated_at, now)),
            "entries": unknown,
            "size": Text(human_bytes(info.bytes)),
            "objects": unknown,
            "origin": Text(f"damaged: {info.damage}", style="red"),
        }
    return {
        "id": Text(info.session_id, style="cyan"),
        "created": Text(iso_time(info.created_at)),
        "updated": Text(relative_time(info.updated_at, now)),
        "entries": Text(str(info.entries)),
        "size": Text(human_bytes(info.bytes)),
        "objects": Text(str(info.objects)),
        "origin": Text(origin_label(info.origin)),
    }


def sessions_table(
    infos: Sequence[SessionInfo], *, now: float | None = None, wide: bool = True
) -> Table:
    """A table of sessions, oldest first: id, times, entries, size, objects and origin.

    ``wide=False`` (for consoles under 120 columns) drops ``created`` and ``objects`` so
    ids stay whole; only the origin column wraps.
    """
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    names = [name for name, _, wide_only in SESSION_COLUMNS if wide or not wide_only]
    for name, justify, wide_only in SESSION_COLUMNS:
        if wide or not wide_only:
            table.add_column(name, justify=justify, no_wrap=name != "origin", overflow="fold")
    for info in sorted(infos, key=lambda i: (i.created_at, i.session_id)):
        cells = _session_cells(info, now)
        table.add_row(*(cells[name] for name in names))
    return table


def print_sessions(console: Console, infos: Sequence[SessionInfo]) -> None:
    """Print the sessions table, in the layout that fits ``console``."""
    console.print(sessions_table(infos, wide=console.width >= WIDE_CONSOLE))


# --- session summary and history ------------------------------------------------------


def config_label(config: RequestConfig) -> str:
    """The settings that are set, as ``key=value`` pairs."""
    pairs = [
        f"{name}={getattr(config, name)}"
        for name in config.__struct_fields__
        if getattr(config, name) not in (None, "", ())
    ]
    return " ".join(pairs) or "(provider defaults)"


def tool_names(history: Sequence[HistoryItem]) -> dict[str, str]:
    """Tool call id to tool name, to label results."""
    return {item.id: item.name for item in history if isinstance(item, ToolCall)}


def item_kind(item: HistoryItem, names: dict[str, str]) -> str:
    """A short label: the role, ``call <tool>``, ``result <tool>``, ``notification``, …."""
    if isinstance(item, Message):
        return item.role
    if isinstance(item, ToolCall):
        return f"call {item.name}"
    if isinstance(item, ToolResult):
        error = " (error)" if item.is_error else ""
        return f"result {names.get(item.call_id, item.call_id)}{error}"
    if isinstance(item, FileAttachment):
        return "file"
    if isinstance(item, ChildEvent):
        return f"child {item.child}"
    return "reasoning" if isinstance(item, Reasoning) else "notification"


def item_text(item: HistoryItem) -> str:
    """The item's content on one line, truncated."""
    if isinstance(item, Message):
        return one_line(item.content + (" [interrupted]" if item.interrupted else ""))
    if isinstance(item, ToolCall):
        return tool_args(item.arguments)
    if isinstance(item, ToolResult):
        return one_line(item.summary)
    if isinstance(item, Reasoning):
        return one_line(item.text)
    if isinstance(item, Notification):
        source = f"[{item.source}] " if item.source else ""
        return one_line(source + item.text)
    if isinstance(item, FileAttachment):
        return one_line(f"{item.path} ({len(item.content)} chars)")
    return one_line(f"{item.event}: {item.detail}" if item.detail else item.event)


def _usage_label(usage: list[Usage]) -> str:
    if not usage:
        return "none"
    last = usage[-1]
    return (
        f"{len(usage)} records; last: {last.input_total:,} input "
        f"({last.cache_read:,} cache read, {last.cache_write:,} cache write), "
        f"{last.output:,} output, at history length {last.history_len}"
    )


def _outcome_label(outcome: Outcome | None, interrupted: bool) -> str:
    if outcome is None:
        return "none yet"
    error = f" ({outcome.error})" if outcome.error else ""
    return f"{outcome.outcome}{error}; interrupted: {'yes' if interrupted else 'no'}"


def _history_label(history: Sequence[HistoryItem]) -> str:
    counts = Counter(item.__struct_config__.tag for item in history)
    parts = ", ".join(f"{n} {kind}" for kind, n in counts.most_common())
    return f"{len(history)} items" + (f": {parts}" if parts else "")


def _extensions_label(state: SessionState) -> str:
    if not state.extensions:
        return "none"
    counts = Counter(ext.domain for ext in state.extension_log)
    return ", ".join(f"{domain} ({counts[domain]})" for domain in sorted(state.extensions))


def session_summary(session_id: str, state: SessionState) -> Table:
    """A two-column summary of a session's folded state."""
    prompt = state.system_prompt.splitlines() or [""]
    more = f"  (+{len(prompt) - 1} lines)" if len(prompt) > 1 else ""
    rows = [
        ("session", session_id),
        ("origin", origin_label(state.origin) or "new session"),
        ("system prompt", one_line(prompt[0]) + more),
        ("config", config_label(state.config)),
        ("turns", str(state.turn_count)),
        ("entries", str(state.entry_count)),
        ("history", _history_label(state.history)),
        ("usage", _usage_label(state.usage)),
        ("last outcome", _outcome_label(state.last_outcome, state.last_run_interrupted)),
        ("extensions", _extensions_label(state)),
    ]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for key, value in rows:
        grid.add_row(key, Text(value))
    return grid


def history_table(history: Sequence[HistoryItem], limit: int) -> Table:
    """The last ``limit`` history items, one line each, numbered from 1.

    Only the content column gives way on a narrow console (cut with an ellipsis).
    """
    names = tool_names(history)
    start = max(0, len(history) - limit)
    table = Table(box=box.SIMPLE_HEAD, title=f"history (last {len(history) - start})")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("kind", style="magenta", no_wrap=True)
    table.add_column("content")
    for index, item in enumerate(history[start:], start + 1):
        content = Text(item_text(item), no_wrap=True, overflow="ellipsis")
        table.add_row(str(index), Text(item_kind(item, names)), content)
    return table


def entry_line(index: int, entry: LogEntry, names: dict[str, str]) -> str:
    """One log entry on one line: its index, type tag and content."""
    tag = str(entry.__struct_config__.tag)
    return f"{index:>5}  {tag:<14} {_entry_text(entry, names)}".rstrip()


def _entry_text(entry: LogEntry, names: dict[str, str]) -> str:
    if isinstance(entry, Item | SystemItem):
        return f"{item_kind(entry.item, names)}: {item_text(entry.item)}"
    if isinstance(entry, SessionStart):
        origin = f"; {origin_label(entry.origin)}" if entry.origin else ""
        return one_line(entry.system_prompt) + f" (history: {len(entry.history)} items{origin})"
    if isinstance(entry, UserInput):
        return one_line(entry.content)
    if isinstance(entry, Usage | Outcome):
        fields = msgspec.structs.asdict(entry).items()
        return " ".join(f"{k}={v}" for k, v in fields if v is not None)
    if isinstance(entry, ConfigChanged):
        return config_label(entry.config)
    if isinstance(entry, Extension):
        return f"{entry.domain}: {one_line(_json_value(to_jsonable(entry.payload)))}"
    return ""


def state_json(state: SessionState) -> Any:
    """The state as builtins, with ``extensions`` as ``{domain: decoded payload}``."""
    data = to_jsonable(state)
    data["extensions"] = {domain: ext.decode() for domain, ext in state.extensions.items()}
    return data


# --- progress and reports -------------------------------------------------------------


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[ProgressFn]:
    """A transient progress bar on stderr (only on a terminal); yields ``progress(done, total)``.

    The callback may be called from a worker thread.
    """
    console = stderr()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(
        *columns,
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def run_verify(store: FsStore) -> VerifyReport:
    """Verify ``store`` behind a progress bar."""
    with progress_bar("verifying") as update:
        return trio.run(functools.partial(store.verify, progress=update))


def print_verify(console: Console, report: VerifyReport) -> None:
    """``ok: N objects, M refs checked``, or one red line per problem naming the file."""
    checked = f"{report.objects_checked} objects, {report.refs_checked} refs checked"
    if report.ok:
        console.print(Text(f"ok: {checked}", style="green"))
        return
    for problem in report.problems:
        hashes = f" (expected {problem.expected}, actual {problem.actual})"
        detail = hashes if problem.expected and problem.actual else ""
        console.print(Text(f"corrupt: {problem.path}: {problem.problem}{detail}", style="red"))
    console.print(Text(f"{len(report.problems)} problem(s); {checked}", style="red"))


def plural(count: int, noun: str) -> str:
    """``1 object``, ``2 objects``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def gc_summary(report: GcReport) -> str:
    """One line: what gc removed and what it kept."""
    return (
        f"gc: removed {plural(report.objects_removed, 'object')} "
        f"({human_bytes(report.bytes_removed)}) and {plural(report.temp_removed, 'temp file')}; "
        f"kept {plural(report.objects_kept, 'object')} ({human_bytes(report.bytes_kept)})"
    )
