"""The ``podactors`` command: pods on the terminal, and a session store's maintenance.

``demo`` plays an offline pod session against a local model stand-in; ``run`` and ``chat``
drive the pod of a manifest, streaming its events; ``serve`` puts pods on a websocket and
``attach`` talks to one there; ``sessions`` inspects and maintains the store. Every command
takes ``--store DIR`` (default ``./.podactors``, or ``$PODACTORS_STORE``). Errors become one
``error: ...`` line on stderr and exit status 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import msgspec
import trio
from rich import box
from rich.cells import cell_len
from rich.console import Console, JustifyMethod
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from podactors import protocol as proto
from podactors.client import PodClient, open_client
from podactors.demo import PROJECT_DIR, DemoReport, DemoSetup, DemoStep, run_demo
from podactors.errors import PodactorsError, PodError, StoreError
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
from podactors.manifest import PROJECT_MANIFEST, Manifest, load_manifest
from podactors.pod import PodHandle, RunResult, RunTicket
from podactors.server import WebsocketServer
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
from podactors.supervisor import TOKEN_FILE, Supervisor, open_supervisor

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
    """The top-level group: podactors, value and OS errors become one red line; Ctrl-C, 130.

    Errors raised inside the commands' nurseries arrive in exception groups; the first
    user error in a group is reported the same way.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            _fail(exc)
        except KeyboardInterrupt:
            _interrupted()
        except BaseExceptionGroup as group:
            if group.subgroup(KeyboardInterrupt) is not None:
                _interrupted()
            user_errors = group.subgroup(USER_ERRORS)
            if user_errors is None:
                raise
            _fail(_first_leaf(user_errors))


def _interrupted() -> NoReturn:
    _stderr().print(Text("interrupted", style="yellow"))
    raise click.exceptions.Exit(INTERRUPTED_EXIT)


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


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


# --- streaming pod events (shared by demo, run, chat and attach) -----------------------

EXIT_CODES: dict[str, int] = {
    "finished": 0,
    "error": 1,
    "limit_reached": 3,
    "paused": 4,
    "cancelled": 130,
}
"""The exit status of ``run`` for each run outcome."""
INTERRUPTED_EXIT = 130
"""The exit status when Ctrl-C stopped a command."""

OUTCOME_MARKS: dict[str, tuple[str, str]] = {
    "finished": ("✓", "green"),
    "limit_reached": ("■", "yellow"),
    "paused": ("‖", "cyan"),
    "cancelled": ("✗", "yellow"),
    "error": ("✗", "red"),
}
ALERT_STYLES = {"info": "dim", "warn": "yellow", "error": "red"}
INDENT = "  "
YOU = "you ›"  # noqa: RUF001 (a prompt mark, not a typo for '>')
PREVIEW_LINES = 5
"""About how many lines of a tool result's content are shown under its summary."""
PREVIEW_LINES_BY_TOOL = {"edit_file": 9}
"""Tools whose results deserve a longer preview (an edit's snippet shows the change)."""
SNAPSHOT_ITEMS = 6
"""How many recent history items ``attach`` shows of the pod it attached to."""
DRAIN_SECONDS = 1.0
"""How long to wait for a run's last events once its result is in."""


def tool_args(arguments: dict[str, Any], width: int = PREVIEW_WIDTH) -> str:
    """A tool call's arguments on one line: ``path="README.md", limit=20``, cut to ``width``."""
    return truncate(", ".join(f"{k}={_json_value(v)}" for k, v in arguments.items()), width)


def usage_text(usage: proto.UsageReport) -> str:
    """One LLM call's tokens: ``2,301 in (1,650 cached) · 61 out``."""
    cache = [f"{usage.cache_read:,} cached"] if usage.cache_read else []
    if usage.cache_write:
        cache.append(f"{usage.cache_write:,} written to cache")
    detail = f" ({', '.join(cache)})" if cache else ""
    return f"{usage.input_total:,} in{detail} · {usage.output:,} out"


def content_preview(content: str | None, limit: int) -> list[str]:
    """About ``limit`` lines of a tool result's content: its head, a marker, its last line."""
    lines = [line.rstrip() for line in (content or "").expandtabs(4).rstrip("\n").splitlines()]
    if len(lines) <= limit + 1:
        return lines
    return [*lines[: limit - 1], f"… {plural(len(lines) - limit, 'more line')}", lines[-1]]


def duration(seconds: float) -> str:
    """``85 ms`` or ``2.4 s``."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


class _TextStream:
    """Streamed text, indented and wrapped at word boundaries; at most one line is open."""

    def __init__(self, console: Console):
        self._console = console
        self._column = 0  # 0: no line open
        self._style = ""
        self._space = ""  # whitespace held back until the next word decides the line
        self._blank_ok = False  # a blank line may follow (not at the start of a block)
        self._in_block = False

    def write(self, text: str, style: str, label: str = "") -> None:
        """Add ``text`` in ``style``; a change of style starts a new block, led by ``label``."""
        if style != self._style or not self._in_block:
            self.end()
            self._style, self._in_block = style, True
            text = label + text
        for token in re.findall(r"\n|[^\S\n]+|\S+", text):
            if token == "\n":
                self._newline()
            elif token.isspace():
                self._space += token
            else:
                self._word(token)

    def end(self) -> None:
        """Close the open line, if any; what follows starts a new block."""
        self._close_line()
        self._blank_ok = self._in_block = False

    def _word(self, word: str) -> None:
        width = cell_len(self._space) + cell_len(word)
        if self._column and self._column + width > self._console.width:
            self._close_line()
        piece = self._space + word if self._column else INDENT + word
        self._console.print(Text(piece, style=self._style), end="")
        self._column += cell_len(piece)
        self._space = ""
        self._blank_ok = True

    def _newline(self) -> None:
        if self._column:
            self._close_line()
        elif self._blank_ok:
            self._console.print()
            self._blank_ok = False

    def _close_line(self) -> None:
        if self._column:
            self._console.print()
        self._column, self._space = 0, ""


class _Spinner:
    """A transient spinner with a status line; only on a terminal."""

    def __init__(self, console: Console):
        self._status = console.status("") if console.is_terminal else None
        self._running = False

    def show(self, text: str) -> None:
        """Show (or update) the spinner with ``text``."""
        if self._status is None:
            return
        self._status.update(Text(text, style="dim"))
        if not self._running:
            self._status.start()
            self._running = True

    def hide(self) -> None:
        """Take the spinner off the screen."""
        if self._status is not None and self._running:
            self._status.stop()
            self._running = False


class EventRenderer:
    """Shows a pod's events on a console as they come.

    Assistant text and thinking stream word by word; tool calls show with their
    arguments, results with their summary (green, or red for an error) and the first
    lines of their content; every LLM call's usage gets a dim line, and every run ends
    with a line saying how it ended. On a terminal a spinner says what the pod is waiting
    for. One renderer serves ``demo``, ``run``, ``chat`` and ``attach``.
    """

    def __init__(
        self, console: Console, *, show_snapshot: bool = False, preview_lines: int = PREVIEW_LINES
    ):
        self.console = console
        self.show_snapshot = show_snapshot
        self.preview_lines = preview_lines
        self._text = _TextStream(console)
        self._spinner = _Spinner(console)
        self._pending: dict[str, str] = {}  # tool call id -> name, until its result
        self._call = 0
        self._turn_started: float | None = None
        self._handlers: dict[type[proto.Event], Callable[[Any], None]] = {
            proto.Snapshot: self._snapshot,
            proto.TurnStart: self._turn_start,
            proto.LlmCallStart: self._llm_call_start,
            proto.TextDelta: lambda e: self._stream(e.text, ""),
            proto.ThinkingDelta: lambda e: self._stream(e.text, "dim italic", "thinking: "),
            proto.TextDone: lambda e: self._text.end(),
            proto.ThinkingDone: lambda e: self._text.end(),
            proto.ToolCallStart: lambda e: self._wait(f"the model is calling {e.name}"),
            proto.ToolCallDone: self._tool_call,
            proto.UsageReport: self._usage,
            proto.LlmCallEnd: self._llm_call_end,
            proto.ToolResult: self._tool_result,
            proto.SystemItemAdded: self._system_item,
            proto.RunEnd: self._run_end,
            proto.Error: lambda e: self._line(f"error ({e.code}): {e.message}", "red"),
            proto.Alert: self._alert,
            proto.Status: self._status,
            proto.SessionRotated: self._rotated,
            proto.CompactStart: lambda e: self._wait("compacting the session"),
            proto.CompactDone: self._compacted,
            proto.CompactFailed: lambda e: self._line(f"compaction failed: {e.error}", "red"),
            proto.Lagged: lambda e: self._line(f"(fell behind: {e.missed} missed)", "yellow"),
        }

    # --- the renderer's own lines ---------------------------------------------------

    def show(self, event: proto.AnyEvent) -> None:
        """Render one event (events with nothing to show are skipped)."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def user(self, text: str) -> None:
        """Show the user input a turn starts with."""
        self._print(Text.assemble((f"{YOU} ", "bold cyan"), text))

    def note(self, text: str, style: str = "dim") -> None:
        """Print a line of the command's own between events."""
        self._line(text, style, indent="")

    def finish(self) -> None:
        """Close any open line and stop the spinner, before printing something else."""
        self._text.end()
        self._spinner.hide()

    def _print(self, renderable: Text | Table) -> None:
        self._text.end()
        self.console.print(renderable)

    def _line(self, text: str, style: str, indent: str = INDENT) -> None:
        self._print(Text(indent + text, style=style))

    def _stream(self, text: str, style: str, label: str = "") -> None:
        self._spinner.hide()
        self._text.write(text, style, label)

    def _wait(self, status: str) -> None:
        self._text.end()
        self._spinner.show(status)

    # --- events -----------------------------------------------------------------------

    def _snapshot(self, event: proto.Snapshot) -> None:
        if not self.show_snapshot:
            return
        session = event.session_id or "none yet"
        turns = plural(event.turn_count, "turn")
        self.note(f"pod {event.pod}: {event.status} · {turns} · session {session}", "bold")
        if event.history:
            self.console.print(history_table(event.history, SNAPSHOT_ITEMS))

    def _turn_start(self, event: proto.TurnStart) -> None:
        self._turn_started = time.monotonic()
        self._wait(f"turn {event.turn}")

    def _llm_call_start(self, event: proto.LlmCallStart) -> None:
        self._call = event.index + 1
        history = plural(event.history_len, "item")
        self._wait(f"waiting for the model (call {self._call}, {history} of history)")

    def _tool_call(self, event: proto.ToolCallDone) -> None:
        self._pending[event.id] = event.name
        width = max(self.console.width - len(INDENT) - len(event.name) - 3, 20)
        arguments = tool_args(event.arguments, width)
        self._print(
            Text.assemble(INDENT, ("→ ", "cyan"), (event.name, "bold cyan"), " ", arguments)
        )

    def _usage(self, event: proto.UsageReport) -> None:
        self._line(f"  llm call {self._call}: {usage_text(event)}", "dim")

    def _llm_call_end(self, event: proto.LlmCallEnd) -> None:
        if self._pending:
            self._wait(f"running {', '.join(self._pending.values())}")

    def _tool_result(self, event: proto.ToolResult) -> None:
        mark, style = ("✗", "red") if event.is_error else ("✓", "green")
        self._line(f"{mark} {event.summary}", style)
        width = max(self.console.width - 6, 20)
        tool = self._pending.pop(event.call_id, "")
        limit = PREVIEW_LINES_BY_TOOL.get(tool, self.preview_lines)
        for line in content_preview(event.content, limit):
            self._line(f"  │ {truncate(line, width)}", "dim")
        if self._pending:
            self._wait(f"running {', '.join(self._pending.values())}")

    def _system_item(self, event: proto.SystemItemAdded) -> None:
        item = event.item
        if isinstance(item, Notification):
            source = f" from {item.source}" if item.source else ""
            self._line(f"⚑ notification{source}: {item.text}", "yellow")
        else:
            self._line(f"⚑ {item_kind(item, {})}: {item_text(item)}", "yellow")

    def _run_end(self, event: proto.RunEnd) -> None:
        mark, style = OUTCOME_MARKS.get(event.outcome, ("•", "bold"))
        parts = [event.outcome.replace("_", " ")]
        if event.llm_calls:
            parts.append(plural(event.llm_calls, "LLM call"))
        if self._turn_started is not None:
            parts.append(duration(time.monotonic() - self._turn_started))
        self._turn_started, self._pending = None, {}
        self._spinner.hide()
        self._line(f"{mark} {' · '.join(parts)}", f"bold {style}", indent="")

    def _alert(self, event: proto.Alert) -> None:
        self._line(f"{event.level}: [{event.source}] {event.message}", ALERT_STYLES[event.level])

    def _status(self, event: proto.Status) -> None:
        if event.status == "stopped":
            self.finish()
            self._line(f"pod {event.pod} stopped", "yellow", indent="")

    def _rotated(self, event: proto.SessionRotated) -> None:
        moved = f"{event.old_session_id} -> {event.new_session_id}"
        self._line(f"session rotated ({event.reason}): {moved}", "yellow")

    def _compacted(self, event: proto.CompactDone) -> None:
        tokens = f"{event.tokens_before:,} -> {event.tokens_after:,} tokens"
        self._line(f"compacted in {event.duration:.1f}s: {tokens}; now {event.new_session_id}", "")


# --- Ctrl-C, the terminal, turns ----------------------------------------------------------


class Interrupts:
    """Where Ctrl-C goes: to the handler routed last, else it cancels the whole command."""

    def __init__(self, scope: trio.CancelScope):
        self._scope = scope
        self._handlers: list[Callable[[], None]] = []

    @contextlib.contextmanager
    def route(self, handler: Callable[[], None]) -> Iterator[None]:
        """Send interrupts to ``handler`` for the block."""
        self._handlers.append(handler)
        try:
            yield
        finally:
            self._handlers.remove(handler)

    def deliver(self) -> None:
        """Handle one interrupt."""
        if self._handlers:
            self._handlers[-1]()
        else:
            self._scope.cancel()

    async def serve(self, signals: AsyncIterator[int]) -> None:
        """Deliver every signal received."""
        async for _ in signals:
            self.deliver()


@contextlib.asynccontextmanager
async def catch_interrupts(*signums: int) -> AsyncIterator[Interrupts]:
    """Ctrl-C (SIGINT, and ``signums``) as :meth:`Interrupts.deliver` calls for the block.

    An interrupt nobody handles cancels the block, which then ends quietly.
    """
    with trio.open_signal_receiver(signal.SIGINT, *signums) as signals:
        async with trio.open_nursery() as nursery:
            interrupts = Interrupts(nursery.cancel_scope)
            nursery.start_soon(interrupts.serve, signals)
            yield interrupts
            nursery.cancel_scope.cancel()


async def read_line(console: Console, interrupts: Interrupts, prompt: str = "") -> str | None:
    """A line typed at the terminal (read in a thread); ``None`` on Ctrl-D or Ctrl-C.

    When stdin is not a terminal the line is echoed after the prompt, so that a
    transcript reads as if typed.
    """
    line: str | None = None
    with trio.CancelScope() as scope, interrupts.route(scope.cancel), contextlib.suppress(EOFError):
        line = await trio.to_thread.run_sync(console.input, prompt, abandon_on_cancel=True)
    if line is None if sys.stdin.isatty() else bool(prompt):
        console.print(Text(line or ""))  # end the prompt line, or echo the line
    return line


async def _cancel_quietly(pod: PodHandle) -> None:
    with contextlib.suppress(PodError):  # the turn ended meanwhile
        await pod.cancel()


async def _show_until_run_end(
    events: AsyncIterator[proto.AnyEvent], renderer: EventRenderer, done: trio.Event
) -> None:
    async for event in events:
        renderer.show(event)
        if isinstance(event, proto.RunEnd):
            break
    done.set()


async def stream_turn(
    pod: PodHandle,
    start: Callable[[], Awaitable[RunTicket]],
    renderer: EventRenderer,
    interrupts: Interrupts | None = None,
) -> RunResult:
    """Start a turn with ``start()`` and show its events until it ends; returns its result.

    With ``interrupts``, Ctrl-C cancels the turn (the pod persists it as interrupted).
    """
    async with pod.subscribe() as events, trio.open_nursery() as nursery:
        shown = trio.Event()
        nursery.start_soon(_show_until_run_end, events, renderer, shown)

        def cancel_turn() -> None:
            renderer.note("Ctrl-C: cancelling the turn…", "yellow")
            nursery.start_soon(_cancel_quietly, pod)

        routed = interrupts.route(cancel_turn) if interrupts else contextlib.nullcontext()
        with routed:
            result = await (await start()).wait()
        with trio.move_on_after(DRAIN_SECONDS):
            await shown.wait()
        nursery.cancel_scope.cancel()
    renderer.finish()
    return result


# --- pods from manifests ----------------------------------------------------------------


NO_MANIFEST = """\
Pass --manifest FILE, or create .podactors/manifest.toml in this project, for example:

    [pod]
    name = "alice"

    [model]
    provider = "anthropic"   # the key comes from $ANTHROPIC_API_KEY

    [[scope.allow]]
    target = "."
    permission = "write"

Every key is described in docs/manifest.md. 'podactors demo' runs offline, no manifest needed."""


def find_project_manifest(cwd: Path) -> Path | None:
    """The nearest ``.podactors/manifest.toml`` in ``cwd`` or one of its parents."""
    for directory in (cwd, *cwd.parents):
        if (directory / PROJECT_MANIFEST).is_file():
            return directory / PROJECT_MANIFEST
    return None


def load_pod_manifest(path: Path | None) -> Manifest:
    """The manifest through the cascade from the working directory, ``path`` on top.

    Without ``path`` and without a project manifest, prints how to write one and exits 2.
    """
    cwd = Path.cwd()
    if path is None and find_project_manifest(cwd) is None:
        stderr = _stderr()
        stderr.print(Text("error: no manifest for a pod", style="red"))
        stderr.print(Text(NO_MANIFEST))
        raise click.exceptions.Exit(2)
    return load_manifest(path, cwd=cwd)


async def start_pod(supervisor: Supervisor, manifest: Manifest, *, new: bool = False) -> PodHandle:
    """The manifest's pod, restored by name when the store knows it (unless ``new``)."""
    name = manifest.pod.name
    if new or await supervisor.store.get_pod_ref(name) is None:
        return await supervisor.spawn(manifest)
    return await supervisor.restore(name, manifest)


async def describe_pod(pod: PodHandle) -> str:
    """``new session``, or which session the pod continues and its turns so far."""
    snapshot = await pod.snapshot()
    if snapshot.session_id is None:
        return "new session"
    return f"continuing session {snapshot.session_id} ({plural(snapshot.turn_count, 'turn')})"


async def introduce_pod(pod: PodHandle, console: Console) -> None:
    """Print ``pod alice: new session`` (or the session it continues)."""
    console.print(Text(f"pod {pod.name}: {await describe_pod(pod)}", style="dim"))


def store_flag(store_dir: Path) -> str:
    """`` --store DIR`` for hints, or nothing for the default store."""
    return "" if Path(store_dir) == Path(DEFAULT_STORE) else f" --store {store_dir}"


def manifest_option(fn: F) -> F:
    """The ``--manifest FILE`` option of ``run`` and ``chat``."""
    return click.option(
        "--manifest",
        "-m",
        "manifest_path",
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="FILE",
        default=None,
        help="Pod manifest, over ~/.config/podactors and .podactors/manifest.toml layers.",
    )(fn)


def new_option(fn: F) -> F:
    """The ``--new`` flag: a fresh session even when the store knows the pod."""
    return click.option(
        "--new", is_flag=True, help="Start a new session instead of continuing the pod's."
    )(fn)


# --- run --------------------------------------------------------------------------------


async def run_task(
    store_dir: Path, manifest: Manifest, task: str, *, new: bool, console: Console
) -> RunResult | None:
    """Run ``task`` on the manifest's pod, streamed; ``None`` when Ctrl-C came before it."""
    renderer = EventRenderer(console)
    async with catch_interrupts() as interrupts, open_supervisor(store_dir) as supervisor:
        pod = await start_pod(supervisor, manifest, new=new)
        await introduce_pod(pod, console)
        renderer.user(task)
        return await stream_turn(pod, functools.partial(pod.start_run, task), renderer, interrupts)
    return None


@main.command("run")
@click.argument("task")
@manifest_option
@store_option
@new_option
def run_cmd(task: str, manifest_path: Path | None, store_dir: Path, new: bool) -> None:
    """Run TASK on the manifest's pod and stream it.

    The exit status tells how the run ended: 0 finished, 1 error, 3 limit reached,
    4 paused, 130 cancelled. Ctrl-C cancels the run; the pod persists it as
    interrupted. The pod continues its session when the store knows it.
    """
    manifest = load_pod_manifest(manifest_path)
    console = _stdout()
    result = trio.run(
        functools.partial(run_task, store_dir, manifest, task, new=new, console=console)
    )
    if result is None:
        raise click.exceptions.Exit(INTERRUPTED_EXIT)
    hint = f"podactors sessions show {result.session_id}{store_flag(store_dir)}"
    console.print(Text(f"session {result.session_id} · {hint}", style="dim"))
    raise click.exceptions.Exit(EXIT_CODES[result.outcome])


# --- chat -------------------------------------------------------------------------------


CHAT_HELP = (
    "Type a message to run a turn. /notify TEXT gives the pod a notification, /history "
    "shows recent history, /quit (or Ctrl-D) leaves. Ctrl-C cancels a running turn."
)
HISTORY_ITEMS = 20
"""How many history items ``/history`` shows."""


async def _notification_turn(pod: PodHandle, text: str) -> RunTicket:
    ticket = await pod.notify(text)
    if ticket is None:
        raise PodactorsError(f"pod {pod.name} is busy: the notification started no turn")
    return ticket


class Chat:
    """The ``chat`` loop: each line a turn, slash commands, Ctrl-C cancelling turns."""

    def __init__(self, pod: PodHandle, console: Console, interrupts: Interrupts):
        self.pod = pod
        self.console = console
        self.interrupts = interrupts
        self.renderer = EventRenderer(console)

    async def loop(self) -> None:
        """Read and handle lines until /quit, Ctrl-D or Ctrl-C at the prompt."""
        prompt = f"[bold cyan]{YOU}[/] "
        while (line := await read_line(self.console, self.interrupts, prompt)) is not None:
            if not await self.handle(line.strip()):
                return

    async def handle(self, line: str) -> bool:
        """Handle one line; false when the chat should end."""
        command, _, argument = line.partition(" ")
        if not line:
            return True
        if command in ("/quit", "/exit"):
            return False
        if command == "/history":
            self.console.print(history_table(await self.pod.history(), HISTORY_ITEMS))
        elif command == "/notify" and argument.strip():
            await self._turn(functools.partial(_notification_turn, self.pod, argument.strip()))
        elif command.startswith("/"):
            self.console.print(Text(CHAT_HELP, style="dim"))
        else:
            await self._turn(functools.partial(self.pod.start_run, line))
        return True

    async def _turn(self, start: Callable[[], Awaitable[RunTicket]]) -> None:
        await stream_turn(self.pod, start, self.renderer, self.interrupts)


async def chat_session(store_dir: Path, manifest: Manifest, *, new: bool, console: Console) -> None:
    """Chat with the manifest's pod until the user leaves."""
    async with catch_interrupts() as interrupts, open_supervisor(store_dir) as supervisor:
        pod = await start_pod(supervisor, manifest, new=new)
        await introduce_pod(pod, console)
        console.print(Text(CHAT_HELP, style="dim"))
        await Chat(pod, console, interrupts).loop()


@main.command()
@manifest_option
@store_option
@new_option
def chat(manifest_path: Path | None, store_dir: Path, new: bool) -> None:
    """Talk to the manifest's pod, one streamed turn per line.

    Ctrl-C cancels a running turn; Ctrl-C or Ctrl-D at the prompt (or /quit) leaves.
    /notify TEXT and /history are available too.
    """
    manifest = load_pod_manifest(manifest_path)
    console = _stdout()
    trio.run(functools.partial(chat_session, store_dir, manifest, new=new, console=console))
    console.print(Text("bye", style="dim"))


# --- serve --------------------------------------------------------------------------------


URL_FILE = "websocket.url"
"""Where ``serve`` writes its URL, under the store root, for ``attach`` to find."""


def write_url_file(root: Path, url: str) -> Path:
    """Write ``url`` to ``<root>/websocket.url`` atomically; returns the path."""
    path = root / URL_FILE
    temporary = path.with_name(f".{URL_FILE}.{os.getpid()}.tmp")
    temporary.write_text(url + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def remove_url_file(path: Path, url: str) -> None:
    """Remove the URL file if it still names ``url`` (another server may have replaced it)."""
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8").strip() == url:
            path.unlink()


def serving_summary(
    pods: Sequence[tuple[PodHandle, str]], server: WebsocketServer, url_file: Path, show: bool
) -> Table:
    """What ``serve`` serves, where the token and the URL are, and how to attach."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for pod, description in pods:
        grid.add_row(f"pod {pod.name}", description)
    token_file = str(server.token_file)
    grid.add_row("token", server.token if show else f"in {token_file} (--show-token prints it)")
    grid.add_row("url file", str(url_file))
    grid.add_row("attach", f"podactors attach {pods[0][0].name}{store_flag(url_file.parent)}")
    return grid


async def serve_pods(
    store_dir: Path,
    manifests: Sequence[Manifest],
    *,
    host: str,
    port: int,
    show_token: bool,
    console: Console,
) -> None:
    """Serve the manifests' pods over websocket until Ctrl-C or SIGTERM."""
    async with catch_interrupts(signal.SIGTERM), open_supervisor(store_dir) as supervisor:
        pods = [await start_pod(supervisor, manifest) for manifest in manifests]
        described = [(pod, await describe_pod(pod)) for pod in pods]
        server = await supervisor.serve_websocket(host, port)
        url_file = write_url_file(supervisor.store.root, server.url)
        try:
            console.print(Text(f"serving at {server.url} (Ctrl-C stops)", style="bold"))
            console.print(serving_summary(described, server, url_file, show_token))
            await trio.sleep_forever()
        finally:
            remove_url_file(url_file, server.url)


@main.command()
@click.option(
    "--manifest",
    "-m",
    "manifest_paths",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    multiple=True,
    help="A pod manifest (repeat for more pods); default: the project manifest.",
)
@store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Port (default: any).")
@click.option("--show-token", is_flag=True, help="Print the bearer token too.")
def serve(
    manifest_paths: tuple[Path, ...], store_dir: Path, host: str, port: int, show_token: bool
) -> None:
    """Serve pods over websocket until Ctrl-C.

    Clients connect with 'podactors attach' or podactors.client. Each pod continues
    its session when the store knows it. The bearer token is written to
    <store>/websocket.token (owner-only) and the URL to <store>/websocket.url.
    """
    paths: Sequence[Path | None] = manifest_paths or [None]
    manifests = [load_pod_manifest(path) for path in paths]
    console = _stdout()
    trio.run(
        functools.partial(
            serve_pods,
            store_dir,
            manifests,
            host=host,
            port=port,
            show_token=show_token,
            console=console,
        )
    )
    console.print(Text("stopped; every pod's state is persisted", style="dim"))


# --- attach -------------------------------------------------------------------------------


ATTACH_HELP = (
    "Type a line to run it; /cancel, /pause, /resume, /notify TEXT; /quit, Ctrl-D or "
    "Ctrl-C detaches (the pod keeps running)."
)


REFUSALS = frozenset({"already_running", "not_running", "not_paused", "invalid_request"})
"""Error codes of a method the pod refused (no turn follows them)."""


def read_server_file(path: Path, what: str, store_dir: Path) -> str:
    """The stripped content of a file ``serve`` wrote, or a clear error naming it."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise PodactorsError(
            f"no {what} at {path}: is 'podactors serve{store_flag(store_dir)}' running?"
        ) from None


class Attachment:
    """One ``attach``: events of the pod printed as they come, typed lines sent as methods."""

    def __init__(self, client: PodClient, pod: str, renderer: EventRenderer):
        self.client = client
        self.pod = pod
        self.renderer = renderer
        self.status: proto.PodStatus | None = None
        self.settled = trio.Event()  # the last turn started from here ended (or was refused)
        self.settled.set()

    async def show_events(self, done: trio.CancelScope) -> None:
        """Print events until the server closes the connection, then end the attachment."""
        async for event in self.client.events():
            self.renderer.show(event)
            if isinstance(event, proto.Snapshot | proto.Status):
                self.status = event.status
            if isinstance(event, proto.RunEnd) or (
                isinstance(event, proto.Error) and event.code in REFUSALS
            ):
                self.settled.set()
        self.renderer.finish()
        reason = self.client.close_reason
        self.renderer.note(f"disconnected{f': {reason}' if reason else ''}", "yellow")
        done.cancel()

    async def send_lines(self, console: Console, interrupts: Interrupts) -> None:
        """Send typed lines until /quit, Ctrl-C or Ctrl-D; at the end of piped input,
        wait for the last run sent to end."""
        while (line := await read_line(console, interrupts)) is not None:
            if not await self.send(line.strip()):
                return
        await self.settled.wait()

    async def send(self, line: str) -> bool:
        """Send one line as a method; false on /quit."""
        command, _, argument = line.partition(" ")
        simple = {"/cancel": self.client.cancel, "/pause": self.client.pause}
        if not line:
            return True
        if command == "/quit":
            return False
        if command in simple:
            await simple[command](self.pod)
        elif command == "/resume":
            self._expect_turn()
            await self.client.resume(self.pod)
        elif command == "/notify" and argument.strip():
            if self.status in (None, "idle"):  # a notification starts a turn when idle
                self._expect_turn()
            await self.client.notify(self.pod, argument.strip())
        elif command.startswith("/"):
            self.renderer.note(ATTACH_HELP)
        else:
            self._expect_turn()
            await self.client.run(self.pod, line)
        return True

    def _expect_turn(self) -> None:
        self.settled = trio.Event()


async def attach_pod(url: str, token: str, pod: str, console: Console) -> None:
    """Attach to ``pod`` at ``url``: print its events, send typed lines, until detached."""
    renderer = EventRenderer(console, show_snapshot=True)
    async with catch_interrupts() as interrupts, open_client(url, token) as client:
        attachment = Attachment(client, pod, renderer)
        await client.attach(pod)
        console.print(Text(f"attached to {pod} at {url}. {ATTACH_HELP}", style="dim"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(attachment.show_events, nursery.cancel_scope)
            await attachment.send_lines(console, interrupts)
            nursery.cancel_scope.cancel()
        renderer.finish()


@main.command()
@click.argument("name")
@store_option
@click.option("--url", default=None, help="Server URL (default: from <store>/websocket.url).")
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="File holding the bearer token (default: <store>/websocket.token).",
)
@click.option("--token", default=None, envvar="PODACTORS_TOKEN", help="The bearer token itself.")
def attach(
    name: str, store_dir: Path, url: str | None, token_file: Path | None, token: str | None
) -> None:
    """Watch and talk to the pod NAME of a running 'podactors serve'.

    Events print as they come; each line typed is a run (or /cancel, /pause, /resume,
    /notify TEXT). The URL and token come from the files 'serve' wrote in the store,
    unless given. At the end of piped input, attach waits for the turn it started.
    """
    url = url or read_server_file(store_dir / URL_FILE, "server URL", store_dir)
    if token is None:
        path = token_file or store_dir / TOKEN_FILE
        token = read_server_file(path, "token file", store_dir)
    trio.run(attach_pod, url, token, name, _stdout())


# --- demo ---------------------------------------------------------------------------------


def remove_store(path: Path) -> None:
    """Delete the store at ``path``; refuses (``StoreError``) anything that is not a store,
    and a store that also holds a project manifest."""
    if not path.exists():
        return
    if not is_store(path):
        raise StoreError(f"refusing to delete {path}: not a podactors store (no FORMAT file)")
    if (path / PROJECT_MANIFEST.name).exists():
        raise StoreError(
            f"refusing to delete {path}: it holds {PROJECT_MANIFEST.name}, a project manifest"
        )
    shutil.rmtree(path)


def _check_demo_target(path: Path) -> None:
    """Refuse a ``--store`` that exists and is neither a store nor an unfinished demo's."""
    if not path.exists() or is_store(path):
        return
    leftovers = {child.name for child in path.iterdir()} if path.is_dir() else {""}
    if leftovers - {PROJECT_DIR}:
        raise StoreError(f"{path} exists and is not a podactors store; pick another --store")


class TerminalDemoView:
    """Shows the demo on a console: the setup, then every turn as it streams."""

    def __init__(self, console: Console):
        self.console = console
        self.renderer = EventRenderer(console)
        self.turns = 0

    def started(self, setup: DemoSetup) -> None:
        """Say what runs where."""
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        grid.add_row("model", f"{setup.model}, via the Anthropic stand-in at {setup.standin_url}")
        grid.add_row("", Text("(the real Messages wire format over HTTP; scripted replies)"))
        grid.add_row("project", f"{setup.project}: README.md, src/calc.py, tests/test_calc.py")
        grid.add_row("pod", f"{setup.pod}, with write scope on the project")
        grid.add_row("store", f"{setup.store} (every step is persisted as it happens)")
        self.console.print(Text("podactors demo: a pod fixes a bug, offline", style="bold"))
        self.console.print(grid)

    async def play(self, pod: PodHandle, step: DemoStep) -> RunResult:
        """Stream one turn of the demo."""
        self.turns += 1
        what = "a notification arrives" if step.is_notification else "you ask"
        self.console.print()
        self.console.rule(Text(f"turn {self.turns}: {what}", style="bold"), align="left")
        if not step.is_notification:
            self.renderer.user(step.text)
        return await stream_turn(pod, functools.partial(step.start, pod), self.renderer)


def demo_summary(report: DemoReport, store_dir: Path) -> Table:
    """What the demo left in the store and on disk."""
    info = report.session
    outcomes = Counter(result.outcome for result in report.results)
    finished = ", ".join(f"{n} {outcome}" for outcome, n in outcomes.items())
    calc = report.project / "src" / "calc.py"
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("session", Text(info.session_id, style="cyan"))
    grid.add_row("turns", f"{report.turn_count} ({finished}); {report.llm_requests} LLM requests")
    stored = f"{plural(info.objects, 'packed object')} + {plural(info.tail_records, 'record')}"
    grid.add_row(
        "entries", f"{info.entries}, in {stored} of the ref's tail; {human_bytes(info.bytes)}"
    )
    fixed = "fixed on disk (sub returns a - b)" if report.fixed else "NOT fixed"
    grid.add_row("project", Text(f"{calc}: {fixed}", style="" if report.fixed else "red"))
    return grid


def demo_hints(report: DemoReport, store_dir: Path) -> list[str]:
    """Commands to explore what the demo left."""
    session, flag = report.session.session_id, store_flag(store_dir)
    return [
        f"podactors sessions show {session}{flag}",
        f"podactors sessions show {session} --entries{flag}",
        f"podactors sessions fork {session} --at 10{flag}",
        f"python3 {report.project / 'tests' / 'test_calc.py'}",
    ]


@main.command()
@store_option
@click.option("--fresh", is_flag=True, help="Delete the store at DIR first (only a store).")
def demo(store_dir: Path, fresh: bool) -> None:
    """Watch a pod fix a bug, offline, in a few seconds.

    A local Anthropic stand-in plays a scripted model over real HTTP; the pod's tool calls
    (read_file, bash, edit_file) run for real on a demo project under the store, across
    three turns, one started by a notification. Every step is persisted; the store is
    verified at the end.
    """
    if fresh:
        remove_store(store_dir)
    _check_demo_target(store_dir)
    console = _stdout()
    store = FsStore(store_dir)
    report = trio.run(run_demo, store, TerminalDemoView(console))
    console.print()
    console.rule(Text("persisted", style="bold"), align="left")
    console.print(demo_summary(report, store_dir))
    verified = run_verify(store)
    print_verify(console, verified)
    console.print(Text("explore it:", style="bold"))
    for hint in demo_hints(report, store_dir):
        console.print(Text(f"  {hint}"))
    if not (report.ok and verified.ok):
        raise click.exceptions.Exit(1)


if __name__ == "__main__":
    main()
