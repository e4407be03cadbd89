"""The compaction algorithm: a summary plus a verbatim tail replaces a long history.

:class:`Summariser` keeps a verbatim tail of about ``retained_tokens`` (widened so that no
tool result is kept without its call) and has a disposable worker summarise the rest.
That worker's tools are ``read_file``, ``mark_read_required`` (a file, or a slice of one,
attached to the new context, charged to ``auto_read_budget``), ``add_reference`` and
``write_summary`` (the last call wins); it is capped by ``worker_max_turns`` and,
cumulatively, by ``worker_max_input_tokens``, and nudged once when it ends without a
summary. Its input is the summarised part as text without tool arguments, tool-result
contents and reasoning, plus the files the pod touched most recently. The new history is
``[summary, auto-read files…, reference list, task list, retained tail…]``, and it must
fit below the limit it is given (checked for the tail alone before the worker runs, and
for the whole after). The summariser never writes to the store and keeps no state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Literal

import attrs
import msgspec
import trio

from podactors.agent.conversation import Conversation
from podactors.agent.hooks import CONTINUE, Decision, Hooks, Nudge
from podactors.agent.worker import Step, part_of_response
from podactors.compaction.tokens import DEFAULT_TOKENS_PER_BYTE, TokenTimeline, item_bytes
from podactors.errors import CompactError, PodactorsError, ToolError
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
from podactors.llm.events import LlmResponse
from podactors.llm.provider import Provider
from podactors.manifest import CompactionConfig, ModelConfig
from podactors.protocol import CompactionTimings
from podactors.store.entries import Usage
from podactors.tools import ScopedFs, Task, Tool, ToolContext, ToolOutput, ToolRegistry, tool
from podactors.tools.files import read_file
from podactors.tools.tracker import FileTracker

__all__ = [
    "RECENT_FILES",
    "SUMMARY_PROMPT",
    "Compaction",
    "ProviderFactory",
    "Summariser",
    "conversation_text",
    "summary_input",
    "tail_start",
]

ProviderFactory = Callable[[ModelConfig], Provider]
"""Builds a provider from a model table (``[model]``, ``[compaction.model]``)."""

#: How many recently touched files the summarising worker is offered.
RECENT_FILES = 5
#: The summarising worker's answer size.
SUMMARY_MAX_TOKENS = 4096
#: Bytes per token assumed for the plain text the summarising worker is given.
TEXT_BYTES_PER_TOKEN = 3

SUMMARY_PROMPT = """\
You are a context compaction assistant. Your job is to hand the next session a structured \
summary plus pointers to the files it actually needs.

Tools you can call:
- `read_file(path, offset?, limit?)`: inspect a file before deciding.
- `mark_read_required(path, offset?, limit?)`: attach a file's contents (or a slice of its \
lines) to the next session. Counts against the auto-read budget.
- `add_reference(path)`: name a file the next session should know about, without its \
contents.
- `write_summary(text)`: deliver the summary. May be called again; only the last call counts.

Always finish by calling `write_summary`. Produce the summary in this format:

## Completed Tasks
### (task name)
- what was done (concrete type, file and function names)
- gotchas or facts that came up

## Active Task
### (task name)
- goal
- current state (what is done, what is not)
- next step

## Key Decisions
- (decision): (reason)

## User Directives
- "verbatim user line": only directives whose wording the next session must not lose.

## Current Work
(2-3 lines on what was happening just before compaction.)

Keep code snippets and raw tool output out of the summary: that is what auto-read and \
references are for. Target 1000-2000 tokens."""

NUDGE = (
    "You have not called `write_summary` yet. Deliver the structured summary now (Completed "
    "Tasks, Active Task, Key Decisions, User Directives, Current Work) and nominate any files "
    "the next session needs with `mark_read_required`."
)

SUMMARY_HEADER = "[Compacted context summary]"
REFERENCES_HEADER = "[Referenced files: known before compaction, contents not included]"
TASKS_HEADER = "[Task list at compaction]"


@attrs.frozen
class Compaction:
    """What a compaction produced, for the pod to persist and switch to.

    ``history`` is the new history: ``new_items`` (summary, auto-read files, reference
    list, task list; what the pod broadcasts) followed by the retained tail.
    ``summarised`` items of the old history were replaced. ``tokens_after`` is an estimate
    (the old session's tokens per byte applied to the new items, plus the tail's share of
    the old timeline and the fixed part of the prompt). ``timings`` says where the time
    went; the pod adds its own phases to it.
    """

    history: list[HistoryItem]
    new_items: list[HistoryItem]
    summarised: int
    retained: int
    tokens_before: int
    tokens_after: int
    timings: CompactionTimings = attrs.field(factory=CompactionTimings, eq=False)


class Summariser:
    """Summarises all but a verbatim tail of a history; see the module docstring.

    ``provider`` is the pod's provider, used by the summarising worker unless
    ``[compaction.model]`` names one (built with ``provider_factory`` for each compaction
    and closed after it). ``fs`` is the pod's scoped filesystem: the summarising worker
    reads, and attaches, only what the pod itself may read.
    """

    def __init__(
        self,
        config: CompactionConfig,
        fs: ScopedFs,
        *,
        provider: Provider,
        model: str,
        provider_factory: ProviderFactory,
    ):
        self.config = config
        self.fs = fs
        self._provider = provider
        self._model = model
        self._factory = provider_factory

    async def compact(
        self,
        history: Sequence[HistoryItem],
        usages: Sequence[Usage],
        *,
        limit: int,
        tokens_before: int | None = None,
        seed: tuple[int, int] | None = None,
        recent_files: Sequence[str] = (),
        tasks: Sequence[Task] = (),
        timings: CompactionTimings | None = None,
    ) -> Compaction:
        """Summarise all but the tail of ``history``; the result must be below ``limit``.

        Raises :class:`~podactors.errors.CompactError` when there is nothing to summarise,
        when the tail alone or the whole result would not fit below ``limit``, or when the
        summarising worker failed or wrote no summary. Neither argument is changed.
        """
        timings = timings or CompactionTimings()
        started = time.perf_counter()
        items = list(history)
        timeline = seeded_timeline(items, usages, seed)
        total = len(items)
        before = timeline.tokens_at() if tokens_before is None else tokens_before
        fixed = timeline.tokens_at(0)
        split = tail_start(items, timeline.split_index_for_tail(self.config.retained_tokens))
        if split == 0:
            raise CompactError(
                "nothing_to_compact",
                f"nothing to summarise: the retained tail (retained_tokens="
                f"{self.config.retained_tokens}) holds all {total} items",
            )
        tail_tokens = timeline.tokens_between(split, total)
        if fixed + tail_tokens >= limit:
            raise CompactError(
                "post_condition",
                f"post-condition: the retained tail alone is ~{fixed + tail_tokens} tokens "
                f"({total - split} items, ~{tail_tokens} tokens, plus ~{fixed} for the prompt "
                f"and tools), not below the threshold {limit}; lower retained_tokens "
                f"({self.config.retained_tokens})",
            )
        rate = _history_rate(timeline, fixed)
        timings.split = time.perf_counter() - started
        summary, attachments, references = await self._summarise(
            items[:split], recent_files, rate, timings
        )
        new_items: list[HistoryItem] = [Message("system", f"{SUMMARY_HEADER}\n\n{summary}")]
        new_items += attachments
        if references:
            listed = "\n".join(f"- {path}" for path in references)
            new_items.append(
                Message(
                    "system",
                    f"{REFERENCES_HEADER}\n{listed}\nUse read_file for their current contents.",
                )
            )
        if tasks:
            new_items.append(
                Message("system", TASKS_HEADER + "\n" + "\n".join(t.line() for t in tasks))
            )
        added = math.ceil(rate * sum(item_bytes(item) for item in new_items))
        after = fixed + tail_tokens + added
        if after >= limit:
            raise CompactError(
                "post_condition",
                f"post-condition: the compacted context would be ~{after} tokens (summary and "
                f"attachments ~{added}, retained tail ~{tail_tokens}, prompt and tools "
                f"~{fixed}), not below the threshold {limit}",
            )
        return Compaction(
            history=new_items + items[split:],
            new_items=new_items,
            summarised=split,
            retained=total - split,
            tokens_before=before,
            tokens_after=after,
            timings=timings,
        )

    async def _summarise(
        self,
        items: list[HistoryItem],
        recent_files: Sequence[str],
        rate: float,
        timings: CompactionTimings,
    ) -> tuple[str, list[FileAttachment], list[str]]:
        """Run the summarising worker; its summary, attachments and references."""
        started = time.perf_counter()
        budget = self.config.worker_max_input_tokens // 2 * TEXT_BYTES_PER_TOKEN
        text = summary_input(items, recent_files, max_bytes=budget)
        timings.summary_input = time.perf_counter() - started
        started = time.perf_counter()
        state = _SummaryState(self.fs, self.config.auto_read_budget, rate)
        provider, owned, model = self._open_provider()
        try:
            worker = self._summary_worker(provider, model, state)
            try:
                result = await worker.run(text, on_step=state.count)
            except PodactorsError as exc:
                raise CompactError("worker", f"the summarising worker failed: {exc}") from exc
        finally:
            if owned:
                with trio.CancelScope(shield=True):
                    await provider.aclose()
        timings.auto_read = state.auto_read_seconds
        timings.worker = max(0.0, time.perf_counter() - started - state.auto_read_seconds)
        if state.summary is None:
            config = self.config
            why = {
                "yielded": f"reached worker_max_input_tokens ({config.worker_max_input_tokens})",
                "limit_reached": f"reached worker_max_turns ({config.worker_max_turns})",
            }.get(result.outcome, "ended")
            raise CompactError(
                "no_summary", f"the summarising worker {why} without calling write_summary"
            )
        return state.summary, list(state.attachments.values()), state.references

    def _open_provider(self) -> tuple[Provider, bool, str]:
        """The summarising worker's provider, whether it is ours to close, and its model."""
        if self.config.model is not None:
            return self._factory(self.config.model), True, self.config.model.model
        return self._provider, False, self._model

    def _summary_worker(self, provider: Provider, model: str, state: _SummaryState) -> Conversation:
        max_input = self.config.worker_max_input_tokens
        nudged = False

        async def within_budget(_: Conversation) -> Literal["proceed", "yield"]:
            return "yield" if state.input_tokens >= max_input else "proceed"

        def nudge_once(_: LlmResponse) -> Decision:
            nonlocal nudged
            if state.summary is not None or nudged:
                return CONTINUE
            nudged = True
            return Nudge(NUDGE)

        return Conversation(
            provider,
            tools=ToolRegistry([read_file, *state.tools()]),
            tool_context=ToolContext(self.fs, files=FileTracker()),
            system_prompt=SUMMARY_PROMPT,
            config=RequestConfig(model=model, max_tokens=SUMMARY_MAX_TOKENS, temperature=0.0),
            max_turns=self.config.worker_max_turns,
            hooks=Hooks(on_turn_end=[nudge_once]),
            interceptor=within_budget,
        )


_FirstLine = Annotated[int, msgspec.Meta(ge=0, description="First line to attach (0-based).")]
_LineCount = Annotated[int, msgspec.Meta(ge=1, description="How many lines to attach.")]


class _SummaryState:
    """What the summarising worker's tools collect."""

    def __init__(self, fs: ScopedFs, budget: int, rate: float):
        self.fs = fs
        self.budget_left = budget
        self.rate = rate
        self.summary: str | None = None
        self.attachments: dict[tuple[str, int | None, int | None], FileAttachment] = {}
        self.references: list[str] = []
        self.input_tokens = 0
        self.auto_read_seconds = 0.0
        self._reading = 0
        self._reading_since = 0.0

    async def count(self, step: Step) -> None:
        if step.usage is not None:
            self.input_tokens += step.usage.input_total

    def tools(self) -> list[Tool]:
        state = self

        @tool
        async def mark_read_required(
            path: Annotated[str, msgspec.Meta(description="File to attach, as read_file takes.")],
            offset: _FirstLine | None = None,
            limit: _LineCount | None = None,
        ) -> ToolOutput:
            """Attach a file (or a slice of its lines) to the next session's context.

            Costs its tokens from the auto-read budget; refused when it does not fit.
            """
            return await state.mark(path, offset, limit)

        @tool
        async def add_reference(
            path: Annotated[str, msgspec.Meta(description="File the next session should know.")],
        ) -> ToolOutput:
            """Name a file in the next session's reference list (its contents are not attached)."""
            shown = state.fs.display(path)
            await trio.to_thread.run_sync(state.fs.check, path, "read")
            if shown not in state.references:
                state.references.append(shown)
            return ToolOutput(f"referenced {shown} ({len(state.references)} references)")

        @tool
        async def write_summary(
            text: Annotated[str, msgspec.Meta(min_length=1, description="The whole summary.")],
        ) -> ToolOutput:
            """Deliver the structured summary; a later call replaces an earlier one."""
            state.summary = text
            return ToolOutput(f"summary saved ({len(text)} characters)")

        return [mark_read_required, add_reference, write_summary]

    async def mark(self, path: str, offset: int | None, limit: int | None) -> ToolOutput:
        """Attach a file; ``auto_read_seconds`` counts the wall time during which at least
        one attachment was being read (the worker runs tool calls concurrently)."""
        if not self._reading:
            self._reading_since = time.perf_counter()
        self._reading += 1
        try:
            return await self._mark(path, offset, limit)
        finally:
            self._reading -= 1
            if not self._reading:
                self.auto_read_seconds += time.perf_counter() - self._reading_since

    async def _mark(self, path: str, offset: int | None, limit: int | None) -> ToolOutput:
        shown = self.fs.display(path)
        key = (shown, offset, limit)
        if key in self.attachments:
            return ToolOutput(f"{shown} is already attached")
        data = await trio.to_thread.run_sync(self.fs.read_bytes, path)
        if b"\0" in data[:8192]:
            raise ToolError(f"{shown} looks like a binary file; not attached")
        content = _slice(data.decode("utf-8", "replace"), offset, limit)
        attachment = FileAttachment(shown, content, offset, limit)
        cost = math.ceil(item_bytes(attachment) * self.rate)
        if cost > self.budget_left:
            raise ToolError(
                f"{shown} needs ~{cost} tokens but only {self.budget_left} of the auto-read "
                "budget are left; attach a slice with offset and limit, or add_reference it"
            )
        self.budget_left -= cost
        self.attachments[key] = attachment
        return ToolOutput(f"will attach {shown} (~{cost} tokens; {self.budget_left} left)")


def _slice(text: str, offset: int | None, limit: int | None) -> str:
    if offset is None and limit is None:
        return text
    lines = text.splitlines(keepends=True)
    start = offset or 0
    end = len(lines) if limit is None else start + limit
    return "".join(lines[start:end])


def _history_rate(timeline: TokenTimeline, fixed: int) -> float:
    """Tokens per serialised history byte on ``timeline`` (the prompt's fixed part left
    out), or the default when it cannot tell."""
    size = timeline.bytes_at(len(timeline))
    tokens = timeline.tokens_at() - fixed
    if size <= 0 or tokens <= 0:
        return DEFAULT_TOKENS_PER_BYTE
    return tokens / size


def tail_start(items: Sequence[HistoryItem], index: int) -> int:
    """Where a verbatim tail starting near ``index`` may start.

    A tail never begins inside a model response or among tool results: it moves back to
    the response's first item (its reasoning, text and calls), so every kept tool result
    keeps its call and signed reasoning stays with what follows it.
    """
    index = max(0, min(index, len(items)))
    if index == len(items):
        return index
    while index > 0 and isinstance(items[index], ToolResult):
        index -= 1
    while index > 0 and part_of_response(items[index]) and part_of_response(items[index - 1]):
        index -= 1
    return index


def conversation_text(items: Sequence[HistoryItem]) -> list[str]:
    """The items as the summarising worker reads them, one entry per item.

    Tool calls keep their name only, tool results their one-line summary; reasoning is
    left out, and so are the contents of attached files.
    """
    lines: list[str] = []
    for item in items:
        match item:
            case Message(role=role, content=content):
                lines.append(f"[{role.capitalize()}] {content}")
            case ToolCall(name=name):
                lines.append(f"[ToolCall] {name}")
            case ToolResult(summary=summary, is_error=is_error):
                lines.append(f"[ToolResult{' error' if is_error else ''}] {summary}")
            case Notification(text=text, source=source):
                lines.append(f"[Notification{f' from {source}' if source else ''}] {text}")
            case FileAttachment(path=path):
                lines.append(f"[File attached] {path}")
            case ChildEvent(child=child, event=event, detail=detail):
                lines.append(f"[Child {child}: {event}] {detail}".rstrip())
            case Reasoning():
                pass
    return lines


def summary_input(
    items: Sequence[HistoryItem], recent_files: Sequence[str] = (), *, max_bytes: int | None = None
) -> str:
    """The summarising worker's input: the recent files and the conversation.

    With ``max_bytes``, the oldest entries of the conversation are left out (and counted)
    until the conversation fits.
    """
    parts = [
        "Summarise the conversation below into a structured summary and nominate the files "
        "the next session needs.\n"
    ]
    if recent_files:
        listed = "".join(f"- {path}\n" for path in recent_files)
        parts.append(
            "These files were touched recently. Use `read_file` on them as needed, then call "
            "`mark_read_required` for any whose contents the next session must have, and "
            "`add_reference` for files it should know by name only.\n\n"
            f"## Recent files\n{listed}"
        )
    lines = conversation_text(items)
    if max_bytes is not None:
        kept: list[str] = []
        size = 0
        for line in reversed(lines):
            size += len(line.encode()) + 2
            if size > max_bytes:
                break
            kept.append(line)
        left_out = len(lines) - len(kept)
        lines = list(reversed(kept))
        if left_out:
            lines.insert(0, f"[… {left_out} earlier entries left out]")
    parts.append("## Conversation\n" + "\n\n".join(lines))
    parts.append("When you are done, call `write_summary` with the final five-section text.")
    return "\n\n".join(parts)


def seeded_timeline(
    history: Sequence[HistoryItem], usages: Sequence[Usage], seed: tuple[int, int] | None
) -> TokenTimeline:
    """The token timeline of ``history``; right after a compaction, before the new
    session has a usage record, the compaction's own estimate (``seed``: history length
    and tokens) stands in for one."""
    timeline = TokenTimeline(history, usages)
    if not usages and seed is not None and seed[0] <= len(history):
        timeline.add_measurement(*seed)
    return timeline
