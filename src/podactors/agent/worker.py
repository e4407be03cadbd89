"""The worker: one agent turn, as LLM calls and tool calls, with hooks and an interceptor.

A turn sends the history to the provider, streams the answer, runs the tools the model
asked for (concurrently, results kept in call order) and repeats until the model stops,
``max_turns`` LLM calls were made, a hook pauses or aborts, or the interceptor yields.
Every finished LLM call and every batch of tool results is handed to ``on_step`` before
the next request, so the owner can persist it first. An optional request projection
(``project``) rewrites the items of each request, never the history itself (the prune
projection of :mod:`podactors.compaction.prune` is one).

Whatever ends a turn early (cancellation, a provider error, an abort) leaves a history
a provider accepts on the next request: partial assistant text is kept and marked
``interrupted``, and every tool call gets a result (a synthetic ``[interrupted]`` where
it never ran). A pause is the one exception: its pending calls stay open, for
:meth:`Worker.resume` to run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, Protocol

import attrs
import msgspec
import trio

from podactors.errors import StreamInterrupted, TurnAborted
from podactors.agent.hooks import Abort, Hooks, Nudge, Pause, Skip
from podactors.items import (
    ConversationItem,
    HistoryItem,
    Message,
    Reasoning,
    RequestConfig,
    ToolCall,
    ToolResult,
)
from podactors.llm.events import LlmResponse, StreamEvent, TextDelta, ThinkingDelta
from podactors.llm.provider import Provider
from podactors.llm.request import Request, ToolSpec
from podactors.store.entries import Usage

TurnOutcome = Literal["finished", "paused", "limit_reached", "yielded"]
INTERRUPTED = "[interrupted]"
CLEANUP_SECONDS = 5.0
"""How long the shielded hand-over of a cut-short turn's last step may take."""


class ToolRunner(Protocol):
    """What the worker needs of a tool registry."""

    def specs(self) -> list[ToolSpec]: ...

    async def call(self, call: ToolCall, ctx: Any = None) -> ToolResult: ...


class LlmCallStarted(msgspec.Struct, frozen=True, tag="llm_call_start", tag_field="type"):
    """An LLM request is about to be sent; ``index`` counts calls within the run."""

    index: int
    history_len: int


class LlmCallFinished(msgspec.Struct, frozen=True, tag="llm_call_end", tag_field="type"):
    """An LLM call finished."""

    index: int
    response: LlmResponse


class ToolStarted(msgspec.Struct, frozen=True, tag="tool_start", tag_field="type"):
    """A tool began running."""

    call: ToolCall


class ToolFinished(msgspec.Struct, frozen=True, tag="tool_result", tag_field="type"):
    """A tool produced its result (or a hook supplied one)."""

    call: ToolCall
    result: ToolResult


WorkerEvent = StreamEvent | LlmCallStarted | LlmCallFinished | ToolStarted | ToolFinished


@attrs.frozen
class Step:
    """Items the turn added, to be persisted before the next request.

    ``usage`` accompanies an LLM call's items, and so does ``projection``: the note the
    worker's request projection returned for the request that call sent (``None`` without
    a projection). ``interrupted`` marks the closing step of a turn cut short.
    """

    items: list[ConversationItem]
    usage: Usage | None = None
    interrupted: bool = False
    projection: object = None


@attrs.frozen
class Projection:
    """What a request projection made of the history.

    ``items`` are sent instead of the history and must match it one for one (usage records
    index the history by length); ``note`` is whatever the owner wants back with the
    step of the LLM call that sent them (e.g. a :data:`podactors.compaction.prune.PruneDecision`).
    """

    items: list[HistoryItem]
    note: object = None


class TurnResult(msgspec.Struct, frozen=True):
    """How a turn ended, how many LLM calls it made, and the last response."""

    outcome: TurnOutcome
    llm_calls: int
    response: LlmResponse | None = None


StepSink = Callable[[Step], Awaitable[None]]
EventSink = Callable[[WorkerEvent], Awaitable[None]]
Interceptor = Callable[["Worker"], Awaitable[Literal["proceed", "yield"]]]
"""Asked before every LLM request; ``"yield"`` ends the turn as ``yielded``."""
RequestProjection = Callable[[list[HistoryItem]], Projection]
"""Given a copy of the history, the items to send instead; must be pure and quick."""


async def _discard(_: Any) -> None:
    pass


class Worker:
    """Runs agent turns for one history.

    ``history`` is the worker's own list, appended to as the turn goes; the owner may
    append to it between turns (or from the interceptor) items it has already persisted.
    ``tool_context`` is passed to every tool call. ``project``, when given, is applied to
    the items of every request (:meth:`build_request`), never to ``history``.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        tools: ToolRunner | None = None,
        tool_context: Any = None,
        system_prompt: str = "",
        config: RequestConfig | None = None,
        max_turns: int = 50,
        hooks: Hooks | None = None,
        interceptor: Interceptor | None = None,
        history: Sequence[HistoryItem] = (),
        cache_key: str | None = None,
        project: RequestProjection | None = None,
    ):
        self.provider = provider
        self.tools = tools
        self.tool_context = tool_context
        self.system_prompt = system_prompt
        self.config = config or RequestConfig()
        self.max_turns = max_turns
        self.hooks = hooks or Hooks()
        self.interceptor = interceptor
        self.history: list[HistoryItem] = list(history)
        self.cache_key = cache_key
        self.project = project
        self.cache_breakpoint: int | None = None
        self.last_run_interrupted = False
        self._partial: list[str] = []
        self._partial_thinking: list[str] = []
        self._finished_results: dict[str, ToolResult] = {}

    # --- public -------------------------------------------------------------------------

    async def run(
        self, text: str | None, *, on_step: StepSink = _discard, on_event: EventSink = _discard
    ) -> TurnResult:
        """Start a turn with the user's ``text`` (already persisted by the owner).

        ``text=None`` starts a turn on the history as it is (e.g. after a notification).
        """
        if text is not None:
            decision = await self.hooks.prompt_submit(text)
            if isinstance(decision, Abort):
                await self._abort(decision.reason)
            self.history.append(Message("user", text))
        return await self._turn(on_step, on_event)

    async def resume(
        self, *, on_step: StepSink = _discard, on_event: EventSink = _discard
    ) -> TurnResult:
        """Continue a paused turn: run its pending tool calls, then go on."""
        return await self._turn(on_step, on_event)

    def open_calls(self) -> list[ToolCall]:
        """Tool calls of the latest LLM response that have no result yet."""
        answered: set[str] = set()
        calls: list[ToolCall] = []
        for item in reversed(self.history):
            if isinstance(item, ToolResult):
                if calls:
                    break  # results of an earlier response
                answered.add(item.call_id)
            elif isinstance(item, ToolCall):
                calls.append(item)
            elif not _part_of_response(item):
                break
        return [call for call in reversed(calls) if call.id not in answered]

    def close_open_calls(self) -> list[ToolResult]:
        """Give every open tool call an ``[interrupted]`` result; returns what was added."""
        closing = [_interrupted_result(call) for call in self.open_calls()]
        self.history.extend(closing)
        return closing

    def build_request(self) -> Request:
        """The request the next LLM call would send (projected, when there is a projection)."""
        return self._prepare_request()[0]

    def _prepare_request(self) -> tuple[Request, object]:
        """The next request and the projection's note about it."""
        items: list[HistoryItem] = list(self.history)
        note: object = None
        if self.project is not None:
            projection = self.project(list(items))
            if len(projection.items) != len(items):
                raise ValueError(
                    f"a request projection must keep every item: got {len(projection.items)}"
                    f" items for a history of {len(items)}"
                )
            items, note = list(projection.items), projection.note
        request = Request(
            system_prompt=self.system_prompt,
            items=items,
            tools=self.tools.specs() if self.tools is not None else [],
            config=self.config,
            cache_breakpoint=self.cache_breakpoint,
            cache_key=self.cache_key,
        )
        return request, note

    # --- the loop -----------------------------------------------------------------------

    async def _turn(self, on_step: StepSink, on_event: EventSink) -> TurnResult:
        self.last_run_interrupted = False
        try:
            return await self._loop(on_step, on_event)
        except BaseException as exc:
            await self._close_cut_short(exc, on_step)
            raise

    async def _loop(self, on_step: StepSink, on_event: EventSink) -> TurnResult:
        calls = 0
        response: LlmResponse | None = None
        while True:
            if self.open_calls() and await self._run_tools(on_step, on_event) == "paused":
                return self._paused(calls, response)
            if calls >= self.max_turns:
                return TurnResult("limit_reached", calls, response)
            if self.interceptor is not None and await self.interceptor(self) == "yield":
                return TurnResult("yielded", calls, response)
            request, note = self._prepare_request()
            decision = await self.hooks.llm_request(request)
            if isinstance(decision, Pause):
                return self._paused(calls, response)
            if isinstance(decision, Abort):
                await self._abort(decision.reason)
            response = await self._call(request, calls, on_event)
            calls += 1
            self.history.extend(response.items)
            usage = _usage(response, request)
            await on_step(Step(list(response.items), usage=usage, projection=note))
            if response.tool_calls:
                continue
            decision = await self.hooks.turn_end(response)
            if not isinstance(decision, Nudge):
                return TurnResult("finished", calls, response)
            nudge = Message("user", decision.text)
            self.history.append(nudge)
            await on_step(Step([nudge]))

    async def _call(self, request: Request, index: int, on_event: EventSink) -> LlmResponse:
        self._partial, self._partial_thinking = [], []

        async def listen(event: StreamEvent) -> None:
            if isinstance(event, TextDelta):
                self._partial.append(event.text)
            elif isinstance(event, ThinkingDelta):
                self._partial_thinking.append(event.text)
            await on_event(event)

        await on_event(LlmCallStarted(index, len(request.items)))
        response = await self.provider.stream(request, listen)
        self._partial, self._partial_thinking = [], []
        await on_event(LlmCallFinished(index, response))
        return response

    async def _run_tools(self, on_step: StepSink, on_event: EventSink) -> str | None:
        """Run the open calls; ``"paused"`` when a hook paused before or after one."""
        calls = self.open_calls()
        results = self._finished_results = {}
        runnable, stop = await self._pre_tool_decisions(calls, results, on_event)
        if isinstance(stop, Abort):
            await self._abort(stop.reason)
        async with trio.open_nursery() as nursery:
            for call in runnable:
                nursery.start_soon(self._run_tool, call, results, on_event)
        for call in calls:
            if call.id in results:
                decision = await self.hooks.tool_result(call, results[call.id])
                if stop is None and isinstance(decision, Abort | Pause):
                    stop = decision
        done = [results[call.id] for call in calls if call.id in results]
        self.history.extend(done)
        self._finished_results = {}
        await on_step(Step(list(done)))
        if isinstance(stop, Abort):
            await self._abort(stop.reason)
        return "paused" if isinstance(stop, Pause) else None

    async def _pre_tool_decisions(
        self, calls: list[ToolCall], results: dict[str, ToolResult], on_event: EventSink
    ) -> tuple[list[ToolCall], Pause | Abort | None]:
        runnable: list[ToolCall] = []
        for call in calls:
            decision = await self.hooks.tool_call(call)
            if isinstance(decision, Pause | Abort):
                return runnable, decision
            if isinstance(decision, Skip):
                result = ToolResult(call.id, decision.summary, decision.content, decision.is_error)
                results[call.id] = result
                await on_event(ToolFinished(call, result))
            else:
                runnable.append(call)
        return runnable, None

    async def _run_tool(
        self, call: ToolCall, results: dict[str, ToolResult], on_event: EventSink
    ) -> None:
        await on_event(ToolStarted(call))
        if self.tools is None:
            result = ToolResult(call.id, f"no tool named {call.name!r}", is_error=True)
        else:
            result = await self.tools.call(call, self.tool_context)
        results[call.id] = result
        await on_event(ToolFinished(call, result))

    # --- ending early -------------------------------------------------------------------

    def _paused(self, calls: int, response: LlmResponse | None) -> TurnResult:
        self.last_run_interrupted = True
        return TurnResult("paused", calls, response)

    async def _abort(self, reason: str) -> None:
        """Tell the on_abort hooks, then end the turn; open calls get closed on the way out."""
        await self.hooks.aborted(reason)
        raise TurnAborted(reason)

    async def _close_cut_short(self, exc: BaseException, on_step: StepSink) -> None:
        """Make the history valid again after ``exc`` and hand the fix-up to the owner."""
        self.last_run_interrupted = True
        closing: list[ConversationItem] = self._partial_items(exc)
        finished, self._finished_results = self._finished_results, {}
        closing += [
            finished.get(call.id) or _interrupted_result(call) for call in self.open_calls()
        ]
        self._partial, self._partial_thinking = [], []
        if not closing:
            return
        self.history.extend(closing)
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + CLEANUP_SECONDS
            await on_step(Step(closing, interrupted=True))

    def _partial_items(self, exc: BaseException) -> list[ConversationItem]:
        if isinstance(exc, StreamInterrupted):
            partial = [i for i in exc.partial if isinstance(i, Message | Reasoning)]
        else:
            partial = []
            if self._partial_thinking:
                partial.append(Reasoning("".join(self._partial_thinking)))
            if self._partial:
                partial.append(Message("assistant", "".join(self._partial)))
        return [
            msgspec.structs.replace(item, interrupted=True) if isinstance(item, Message) else item
            for item in partial
        ]


def _part_of_response(item: HistoryItem) -> bool:
    return isinstance(item, Reasoning) or (isinstance(item, Message) and item.role == "assistant")


def _interrupted_result(call: ToolCall) -> ToolResult:
    return ToolResult(call.id, INTERRUPTED, None, is_error=True)


def _usage(response: LlmResponse, request: Request) -> Usage:
    usage = response.usage
    return Usage(
        history_len=len(request.items),
        input_total=usage.input_total,
        cache_read=usage.cache_read,
        cache_write=usage.cache_write,
        output=usage.output,
    )


__all__ = [
    "INTERRUPTED",
    "EventSink",
    "Interceptor",
    "LlmCallFinished",
    "LlmCallStarted",
    "Projection",
    "RequestProjection",
    "Step",
    "StepSink",
    "ToolFinished",
    "ToolRunner",
    "ToolStarted",
    "TurnOutcome",
    "TurnResult",
    "Worker",
    "WorkerEvent",
]
