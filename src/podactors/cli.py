"""The ``podactors`` command: inspect and maintain a session store, build a demo store.

Every command takes ``--store DIR`` (default ``./.podactors``, or ``$PODACTORS_STORE``).
Store errors become one ``error: ...`` line on stderr and exit status 2; ``sessions
verify`` exits 1 when it finds damage and prints the path of every damaged file.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, TypeVar

import click
import msgspec
import trio
from rich import box
from rich.console import Console, JustifyMethod
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from podactors.demo_store import build_demo_store
from podactors.errors import PodactorsError, StoreError
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
from podactors.store.replay import SessionState, fold

DEFAULT_STORE = "./.podactors"
PREVIEW_WIDTH = 100
PIPE_WIDTH = 200
"""Console width when stdout is not a terminal (and ``COLUMNS`` is unset): ids stay whole."""

USER_ERRORS = (PodactorsError, ValueError, OSError)
"""Errors shown as one ``error:`` line (exit 2) instead of a traceback."""

F = TypeVar("F", bound=Callable[..., Any])
ProgressFn = Callable[[int, int], None]


# --- consoles, errors, shared options ---------------------------------------------------


def _stdout() -> Console:
    """The console for results; wide when piped, so tables keep ids and paths whole."""
    console = Console(soft_wrap=True, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
    return console


def _stderr() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def _fail(exc: BaseException) -> NoReturn:
    message = str(exc).replace("\n", " ") or type(exc).__name__
    _stderr().print(Text(f"error: {message}", style="red"))
    raise click.exceptions.Exit(2)


class _Cli(click.Group):
    """The top-level group: turns podactors, value and OS errors into one red line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            _fail(exc)


def store_option(fn: F) -> F:
    """The ``--store DIR`` option every command takes."""
    option = click.option(
        "--store",
        "store_dir",
        type=click.Path(path_type=Path),
        metavar="DIR",
        default=DEFAULT_STORE,
        envvar="PODACTORS_STORE",
        show_default=True,
        show_envvar=True,
        help="Session store directory.",
    )
    return option(fn)


def json_option(fn: F) -> F:
    """The ``--json`` flag: machine-readable output on stdout."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(fn)


def is_store(path: Path) -> bool:
    """True when ``path`` holds a ``FORMAT`` file that names a podactors store."""
    try:
        return (path / "FORMAT").read_bytes().startswith(b"podactors-store")
    except (FileNotFoundError, NotADirectoryError):
        return False


def open_store(path: Path) -> FsStore:
    """The existing store at ``path``; raises :class:`StoreError` rather than create one."""
    if not is_store(path):
        raise StoreError(f"no podactors store at {path} (try 'podactors demo --store {path}')")
    return FsStore(path)


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
        return truncate(", ".join(f"{k}={_json_value(v)}" for k, v in item.arguments.items()))
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
    """The last ``limit`` history items, one line each, numbered from 1."""
    names = tool_names(history)
    start = max(0, len(history) - limit)
    table = Table(box=box.SIMPLE_HEAD, title=f"history (last {len(history) - start})")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("kind", style="magenta", no_wrap=True)
    table.add_column("content", no_wrap=True, overflow="ellipsis")
    for index, item in enumerate(history[start:], start + 1):
        table.add_row(str(index), Text(item_kind(item, names)), Text(item_text(item)))
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
    console = _stderr()
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


# --- commands -------------------------------------------------------------------------


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="podactors", prog_name="podactors")
def main() -> None:
    """podactors: trio-native actor framework for long-running LLM agent pods."""


@main.group()
def sessions() -> None:
    """Inspect and maintain the sessions of a store."""


@sessions.command("list")
@store_option
@json_option
def list_cmd(store_dir: Path, as_json: bool) -> None:
    """List every session: id, times, entries, size, objects and origin."""
    infos = trio.run(open_store(store_dir).list_sessions) if is_store(store_dir) else []
    if as_json:
        echo_json(sorted(infos, key=lambda i: (i.created_at, i.session_id)))
    elif not infos:
        _stdout().print(Text(f"no sessions in {store_dir} yet"))
    else:
        print_sessions(_stdout(), infos)


@sessions.command("show")
@click.argument("session_id")
@store_option
@json_option
@click.option("--entries", is_flag=True, help="Print every log entry, one per line.")
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many of the last history items to print.",
)
def show_cmd(store_dir: Path, session_id: str, as_json: bool, entries: bool, limit: int) -> None:
    """Summarise a session and print its last history items (or every log entry)."""
    log = trio.run(open_store(store_dir).read_entries, session_id)
    state = fold(log)
    if as_json:
        echo_json(state_json(state))
        return
    console = _stdout()
    console.print(session_summary(session_id, state))
    if entries:
        names = tool_names(state.history)
        for index, entry in enumerate(log):
            console.print(Text(entry_line(index, entry, names)))
    elif limit:
        console.print(history_table(state.history, limit))


@sessions.command("fork")
@click.argument("session_id")
@store_option
@json_option
@click.option("--at", type=int, default=None, help="Entry count to fork at (default: all).")
def fork_cmd(store_dir: Path, session_id: str, as_json: bool, at: int | None) -> None:
    """Fork a session at its head (free) or after its first AT entries."""
    ref = trio.run(open_store(store_dir).fork, session_id, at)
    if as_json:
        echo_json(ref)
    else:
        where = "head" if at is None else f"entry {at}"
        click.echo(f"{ref.session_id}  (forked from {session_id} at {where}; head {ref.head})")


@sessions.command("verify")
@store_option
@json_option
def verify_cmd(store_dir: Path, as_json: bool) -> None:
    """Re-hash every object and check every ref; exit 1 and name each damaged file."""
    report = run_verify(open_store(store_dir))
    if as_json:
        echo_json({"ok": report.ok, **to_jsonable(report)})
    else:
        print_verify(_stdout(), report)
    if not report.ok:
        raise click.exceptions.Exit(1)


@sessions.command("gc")
@store_option
@json_option
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help="Keep unreachable objects younger than this.",
)
def gc_cmd(store_dir: Path, as_json: bool, grace: float) -> None:
    """Remove objects no session reaches, and stale temp files, older than the grace period."""
    store = open_store(store_dir)
    with progress_bar("collecting") as update:
        report = trio.run(functools.partial(store.gc, grace=grace, progress=update))
    if as_json:
        echo_json(report)
    else:
        _stdout().print(Text(gc_summary(report)))


# --- demo -----------------------------------------------------------------------------


def remove_store(path: Path) -> None:
    """Delete the store at ``path``; refuses (``StoreError``) anything that is not a store."""
    if not path.exists():
        return
    if not is_store(path):
        raise StoreError(f"refusing to delete {path}: not a podactors store (no FORMAT file)")
    shutil.rmtree(path)


def _check_demo_target(path: Path) -> None:
    if path.exists() and not is_store(path) and (not path.is_dir() or any(path.iterdir())):
        raise StoreError(f"{path} exists and is not a podactors store; pick another --store")


class DemoRun(NamedTuple):
    """What ``demo`` built: the new session ids (as ``build_demo_store`` returns them),
    every session of the store, and the folded agent and compacted sessions."""

    ids: list[str]
    infos: list[SessionInfo]
    agent: SessionState
    compacted: SessionState


async def _build_demo(store: FsStore) -> DemoRun:
    ids = await build_demo_store(store)
    infos = await store.list_sessions()
    return DemoRun(ids, infos, await store.restore(ids[0]), await store.restore(ids[-1]))


def demo_narrative(run: DemoRun, appends: int) -> list[str]:
    """What ``build_demo_store`` did, one sentence per session it created."""
    by_id = {info.session_id: info for info in run.infos}
    agent_id, at_head, mid, compacted = run.ids
    origin = by_id[mid].origin
    return [
        f"agent session {agent_id}: {run.agent.turn_count} turns, {run.agent.entry_count} "
        f"entries written step by step ({appends} appends), "
        f"packed into {plural(by_id[agent_id].objects, 'object')}",
        f"forked at the head -> {at_head}: a new ref to the same objects, 0 bytes copied",
        f"forked at entry {origin.at if origin else '?'} (before the tests re-run) -> {mid}: "
        "one prefix object written",
        f"compacted -> {compacted}: a history of {len(run.compacted.history)} items "
        f"(a summary + the last turn's tail) instead of {len(run.agent.history)}",
    ]


@main.command()
@store_option
@click.option("--fresh", is_flag=True, help="Delete the store at DIR first (only a store).")
def demo(store_dir: Path, fresh: bool) -> None:
    """Build a demo session store offline; the full pod demo comes with the pod runtime.

    Writes a two-turn agent session step by step (tool calls, usage, a notification),
    forks it at the head and mid-way, compacts it, then lists the sessions and verifies
    the store.
    """
    if fresh:
        remove_store(store_dir)
    _check_demo_target(store_dir)
    store = FsStore(store_dir)
    run = trio.run(_build_demo, store)
    console = _stdout()
    console.print(Text(f"Built a demo session store in {store_dir} (offline):", style="bold"))
    for number, line in enumerate(demo_narrative(run, store.statistics().appends), 1):
        console.print(Text(f"  {number}. {line}"))
    print_sessions(console, run.infos)
    report = run_verify(store)
    print_verify(console, report)
    if not report.ok:
        raise click.exceptions.Exit(1)
