"""The live terminal for pods: their events streamed as they come, Ctrl-C, typed lines.

:class:`EventRenderer` shows a pod's events on a console (one renderer serves ``demo``,
``run``, ``chat`` and ``attach``); :func:`catch_interrupts` routes Ctrl-C to whoever
handles it; :func:`read_line` reads a typed line; :func:`stream_turn` runs a turn and
shows it until it ends.
"""

from __future__ import annotations

import contextlib
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import trio
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from podactors import protocol as proto
from podactors.cli.views import (
    history_table,
    item_kind,
    item_text,
    plural,
    tool_args,
    truncate,
)
from podactors.errors import PodError
from podactors.handle import PodApi, RunTicket
from podactors.items import Notification
from podactors.protocol import RunResult

# --- streaming pod events (shared by demo, run, chat and attach) -----------------------

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
        self._line(
            f"{event.level}: [{event.source}] {event.message}", ALERT_STYLES.get(event.level, "")
        )

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


async def _cancel_quietly(pod: PodApi) -> None:
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


@contextlib.contextmanager
def cancelling_on_interrupt(
    interrupts: Interrupts | None, nursery: trio.Nursery, pod: PodApi, renderer: EventRenderer
) -> Iterator[None]:
    """For the block, Ctrl-C cancels the pod's turn (from a task in ``nursery``)."""
    if interrupts is None:
        yield
        return

    def cancel_turn() -> None:
        renderer.note("Ctrl-C: cancelling the turn…", "yellow")
        nursery.start_soon(_cancel_quietly, pod)

    with interrupts.route(cancel_turn):
        yield


async def drained(shown: trio.Event) -> None:
    """Wait (at most ``DRAIN_SECONDS``) until a turn's last events are on the screen."""
    with trio.move_on_after(DRAIN_SECONDS):
        await shown.wait()


async def stream_turn(
    pod: PodApi,
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
        with cancelling_on_interrupt(interrupts, nursery, pod, renderer):
            result = await (await start()).wait()
        await drained(shown)
        nursery.cancel_scope.cancel()
    renderer.finish()
    return result


# --- one loop for a pod at the terminal ---------------------------------------------------


HISTORY_ITEMS = 20
"""How many history items ``/history`` shows."""


class PodRepl:
    """Typed lines to a pod, its events on the screen: ``chat`` and ``attach`` alike.

    ``pod`` is any :class:`~podactors.handle.PodApi`: the in-process handle for ``chat``,
    a :class:`~podactors.client.RemotePod` for ``attach``. Every event of the pod is shown
    as it comes. Each plain line runs a turn; slash commands are one table
    (:attr:`commands`). With ``wait_for_turns`` (``chat``) a line waits for its turn, and
    Ctrl-C cancels the turn; without (``attach``) lines go out at once and, at the end of
    piped input, the loop waits for the last turn it started.
    """

    def __init__(
        self,
        pod: PodApi,
        console: Console,
        interrupts: Interrupts,
        renderer: EventRenderer,
        *,
        wait_for_turns: bool,
    ):
        self.pod = pod
        self.console = console
        self.interrupts = interrupts
        self.renderer = renderer
        self.wait_for_turns = wait_for_turns
        self._last: RunTicket | None = None
        self._run_ended = trio.Event()
        self.commands: dict[str, tuple[str, str, Callable[[str], Awaitable[None]]]] = {
            "/notify": ("TEXT", "give the pod a notification (a turn, when idle)", self._notify),
            "/history": ("", "show recent history", self._history),
            "/cancel": ("", "cancel the running turn", lambda _: pod.cancel()),
            "/pause": ("", "pause the running turn at its next step", lambda _: pod.pause()),
            "/resume": ("", "continue a paused turn", self._resume),
            "/compact": ("", "compact the session now", self._compact),
            "/help": ("", "show this help", self._help),
        }
        """Every slash command: its argument, what it does, and the coroutine doing it."""

    def help_text(self) -> str:
        """One line per command."""
        lines = ["Type a line to run a turn."]
        for command, (argument, what, _) in self.commands.items():
            lines.append(f"  {f'{command} {argument}'.strip():<13} {what}")
        lines.append(f"  {'/quit':<13} leave (Ctrl-D too)")
        return "\n".join(lines)

    async def run(self) -> None:
        """Show events and handle lines until /quit, Ctrl-D, Ctrl-C at the prompt, or the
        pod's events end."""
        async with self.pod.subscribe() as events, trio.open_nursery() as nursery:
            nursery.start_soon(self._show, events, nursery.cancel_scope)
            await self._read_lines()
            if self._last is not None and not self.wait_for_turns:
                await self._last.wait()
                await self._drained()
            nursery.cancel_scope.cancel()
        self.renderer.finish()

    async def _show(self, events: AsyncIterator[proto.AnyEvent], done: trio.CancelScope) -> None:
        async for event in events:
            self.renderer.show(event)
            if isinstance(event, proto.RunEnd):
                self._run_ended.set()
        self.renderer.finish()
        self.renderer.note("the pod's events ended", "yellow")
        done.cancel()

    async def _read_lines(self) -> None:
        prompt = f"[bold cyan]{YOU}[/] " if self.wait_for_turns else ""
        while (line := await read_line(self.console, self.interrupts, prompt)) is not None:
            try:
                if not await self.handle(line.strip()):
                    return
            except PodError as exc:
                self.renderer.note(f"{exc.code}: {exc.message}", "red")

    async def handle(self, line: str) -> bool:
        """Handle one line; false when the loop should end."""
        command, _, argument = line.partition(" ")
        if not line:
            return True
        if command in ("/quit", "/exit"):
            return False
        if not command.startswith("/"):
            await self._follow(lambda: self.pod.start_run(line))
            return True
        usage, _, action = self.commands.get(command, ("", "", self._help))
        if usage and not argument.strip():
            await self._help("")
        else:
            await action(argument.strip())
        return True

    async def _notify(self, text: str) -> None:
        await self._follow(lambda: self.pod.notify(text))

    async def _history(self, _: str) -> None:
        self.console.print(history_table(await self.pod.history(), HISTORY_ITEMS))

    async def _resume(self, _: str) -> None:
        await self._follow(self.pod.start_resume)

    async def _compact(self, _: str) -> None:
        result = await (await self.pod.start_compact()).wait()
        self.renderer.note(f"compaction {result.outcome}{_because(result.error)}")

    async def _help(self, _: str) -> None:
        await trio.lowlevel.checkpoint()
        self.renderer.note(self.help_text())

    async def _follow(self, start: Callable[[], Awaitable[RunTicket | None]]) -> None:
        """Start a turn with ``start()`` and remember it; wait for it when turns are
        waited for. (The end-of-turn signal is armed before the turn can end.)"""
        self._run_ended = trio.Event()
        ticket = await start()
        if ticket is None:  # a notification to a busy pod: no turn of its own
            return
        self._last = ticket
        if not self.wait_for_turns:
            return
        async with trio.open_nursery() as nursery:
            with cancelling_on_interrupt(self.interrupts, nursery, self.pod, self.renderer):
                await ticket.wait()
        await self._drained()

    async def _drained(self) -> None:
        await drained(self._run_ended)


def _because(error: str | None) -> str:
    return f": {error}" if error else ""
