"""The worker: one agent turn, as LLM calls and tool calls, for whoever hosts the turn.

A turn sends the history to the provider, streams the answer, runs the tools the model
asked for (concurrently, results kept in call order) and repeats until the model stops,
its budget of LLM calls is spent, a hook pauses or aborts, or the host holds the turn.
The worker keeps no conversation of its own: it runs a turn *on* a :class:`TurnHost`,
which owns the history and answers three things, in messages when the host is a pod:

* ``gate(point)`` before every LLM request (``"request"``: the host hands over the
  request to send, or holds the turn to pause it or to let it yield for compaction) and
  before every batch of tool calls (``"tools"``);
* ``commit(step)``: every finished LLM call and every batch of tool results, before the
  next request; only once the host committed a step does its history include it, so
  memory never runs ahead of the log;
* ``emit(event)``: stream and tool events, as they come.

Whatever ends a turn early (cancellation, a provider error, an abort) leaves a history
a provider accepts on the next request: partial assistant text is kept and marked
``interrupted``, and every tool call gets a result (a synthetic ``[interrupted]`` where
it never ran), committed in a shielded step with a deadline. A pause is the one
exception: its pending calls stay open, for a resumed turn to run.

:class:`Worker` is also an actor: started with ``await nursery.start(worker.run)``, it
runs the turn a :class:`StartTurn` message asks for as a task beside its mailbox, so a
:class:`CancelTurn` is served while the turn streams, and reports the end to the host's
``finished``. :class:`~podactors.agent.conversation.Conversation` hosts turns in memory
for use without a pod.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import attrs
import msgspec
import outcome
import trio

from podactors.actor import WorkingActor
from podactors.agent.hooks import Abort, Hooks, Nudge, Pause, Skip
from podactors.errors import ActorClosed, StreamInterrupted, TurnAborted
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
GatePoint = Literal["request", "tools"]
INTERRUPTED = "[interrupted]"
CLEANUP_SECONDS = 5.0
"""How long the shielded hand-over of a cut-short turn's last step may take."""


class ToolRunner(Protocol):
    """What the worker needs of a tool registry."""

    def specs(self) -> list[ToolSpec]: ...

    async def call(self, call: ToolCall, ctx: Any = None) -> ToolResult: ...


class LlmCallStarted(msgspec.Struct, frozen=True, tag="llm_call_start", tag_field="type"):
    """An LLM request is about to be sent; ``index`` counts calls within the turn."""

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
    """Items the turn added, to be committed before the next request.

    ``usage`` accompanies an LLM call's items, and so does ``projection``: the note the
    host's gate returned with the request that call sent. ``user_input`` marks the step
    that opens a turn with the user's text; ``interrupted`` the closing step of a turn
    cut short.
    """

    items: list[ConversationItem]
    usage: Usage | None = None
    interrupted: bool = False
    projection: object = None
    user_input: bool = False


@attrs.frozen
class Projection:
    """What a request projection made of the history.

    ``items`` are sent instead of the history and must match it one for one (usage records
    index the history by length); ``note`` is whatever the owner wants back with the
    step of the LLM call that sent them (e.g. a :data:`podactors.compaction.prune.PruneDecision`).
    """

    items: list[HistoryItem]
    note: object = None


@attrs.frozen
class Proceed:
    """The gate's answer to go on; at ``"request"``, with the request to send and the
    note that comes back on the call's step."""

    request: Request | None = None
    note: object = None


@attrs.frozen
class Hold:
    """The gate's answer to end the turn here: ``pause`` it, or ``yield`` it to the host
    (which compacts, for example, and starts another)."""

    reason: Literal["pause", "yield"]


Gate = Proceed | Hold


class TurnResult(msgspec.Struct, frozen=True):
    """How a turn ended, how many LLM calls it made, and the last response."""

    outcome: TurnOutcome
    llm_calls: int
    response: LlmResponse | None = None


class TurnHost(Protocol):
    """Who a turn runs for: the owner of its history; see the module docstring."""

    @property
    def history(self) -> Sequence[HistoryItem]:
        """The committed history (read only)."""
        ...

    async def gate(self, point: GatePoint) -> Gate:
        """Answer before a request or a batch of tool calls."""
        ...

    async def commit(self, step: Step) -> None:
        """Persist ``step``; afterwards :attr:`history` includes its items."""
        ...

    async def emit(self, event: WorkerEvent) -> None:
        """Take a stream or tool event."""
        ...

    async def finished(self, result: outcome.Outcome[TurnResult]) -> None:
        """A turn started by :class:`StartTurn` ended (with its result or its error)."""
        ...


@attrs.frozen
class StartTurn:
    """Run a turn for ``host``: on the user's ``text`` (``None``: on the history as it is,
    open tool calls first), with at most ``budget`` LLM calls."""

    host: TurnHost
    text: str | None
    budget: int


@attrs.frozen
class CancelTurn:
    """Cancel the running turn (it commits its closing step and reports ``finished``)."""


WorkerMessage = StartTurn | CancelTurn


@attrs.define
class Transcript:
    """A conversation's in-memory state: what each request is built from."""

    history: list[HistoryItem] = attrs.field(factory=list)
    system_prompt: str = ""
    config: RequestConfig = attrs.field(factory=RequestConfig)
    cache_key: str | None = None
    cache_breakpoint: int | None = None

    def request(self, tools: list[ToolSpec], items: list[HistoryItem] | None = None) -> Request:
        """The request for the history (or for ``items`` sent in its place)."""
        return Request(
            system_prompt=self.system_prompt,
            items=list(self.history) if items is None else items,
            tools=tools,
            config=self.config,
            cache_breakpoint=self.cache_breakpoint,
            cache_key=self.cache_key,
        )

    def open_calls(self) -> list[ToolCall]:
        """Tool calls of the latest LLM response that have no result yet."""
        return open_calls(self.history)

    def close_open_calls(self) -> list[ToolResult]:
        """Give every open tool call an ``[interrupted]`` result; returns what was added."""
        closing = [interrupted_result(call) for call in self.open_calls()]
        self.history.extend(closing)
        return closing


class Worker(WorkingActor[WorkerMessage]):
    """Runs agent turns with a provider, tools and hooks; see the module docstring.

    ``tool_context`` is passed to every tool call. The worker holds no history: call
    :meth:`turn` with a host, or start it as an actor and send :class:`StartTurn`.
    """

    name = "worker"
    mailbox_size = 4

    def __init__(
        self,
        provider: Provider,
        *,
        tools: ToolRunner | None = None,
        tool_context: Any = None,
        hooks: Hooks | None = None,
    ):
        self.provider = provider
        self.tools = tools
        self.tool_context = tool_context
        self.hooks = hooks or Hooks()
        self._turn_scope: trio.CancelScope | None = None

    def tool_specs(self) -> list[ToolSpec]:
        """The tools as the model sees them."""
        return self.tools.specs() if self.tools is not None else []

    # --- the actor --------------------------------------------------------------------

    async def handle(self, message: WorkerMessage) -> None:
        """Start or cancel a turn."""
        match message:
            case StartTurn(host=host, text=text, budget=budget):
                if self._turn_scope is not None:
                    raise RuntimeError("a turn is already running on this worker")
                self._turn_scope = trio.CancelScope()
                self.work.start_soon(self._hosted_turn, host, text, budget, self._turn_scope)
            case CancelTurn():
                if self._turn_scope is not None:
                    self._turn_scope.cancel()
        await trio.lowlevel.checkpoint()

    async def _hosted_turn(
        self, host: TurnHost, text: str | None, budget: int, scope: trio.CancelScope
    ) -> None:
        result: outcome.Outcome[TurnResult] = outcome.Error(TurnCancelled())
        try:
            with scope:
                try:
                    result = outcome.Value(await self.turn(host, text, budget=budget))
                except Exception as exc:
                    result = outcome.Error(exc)
        finally:
            self._turn_scope = None
            with trio.CancelScope(shield=True) as cleanup:
                cleanup.deadline = trio.current_time() + CLEANUP_SECONDS
                await host.finished(result)

    # --- a turn -----------------------------------------------------------------------

    async def turn(self, host: TurnHost, text: str | None = None, *, budget: int) -> TurnResult:
        """Run one turn for ``host``; ``text`` (the user's input) opens it when given."""
        state = _TurnState()
        try:
            if text is not None:
                decision = await self.hooks.prompt_submit(text)
                if isinstance(decision, Abort):
                    await self._abort(decision.reason)
                await host.commit(Step([Message("user", text)], user_input=True))
            return await self._loop(host, budget, state)
        except BaseException as exc:
            await self._close_cut_short(host, exc, state)
            raise

    async def _loop(self, host: TurnHost, budget: int, state: _TurnState) -> TurnResult:
        calls = 0
        response: LlmResponse | None = None
        while True:
            if open_calls(host.history):
                if isinstance(await host.gate("tools"), Hold):
                    return TurnResult("paused", calls, response)
                if await self._run_tools(host, state) == "paused":
                    return TurnResult("paused", calls, response)
            if calls >= budget:
                return TurnResult("limit_reached", calls, response)
            gate = await host.gate("request")
            if isinstance(gate, Hold):
                held: TurnOutcome = "paused" if gate.reason == "pause" else "yielded"
                return TurnResult(held, calls, response)
            request = gate.request or Request("", list(host.history), self.tool_specs())
            decision = await self.hooks.llm_request(request)
            if isinstance(decision, Pause):
                return TurnResult("paused", calls, response)
            if isinstance(decision, Abort):
                await self._abort(decision.reason)
            response = await self._call(host, request, calls, state)
            calls += 1
            usage = _usage(response, request)
            await host.commit(Step(list(response.items), usage=usage, projection=gate.note))
            if response.tool_calls:
                continue
            decision = await self.hooks.turn_end(response)
            if not isinstance(decision, Nudge):
                return TurnResult("finished", calls, response)
            await host.commit(Step([Message("user", decision.text)]))

    async def _call(
        self, host: TurnHost, request: Request, index: int, state: _TurnState
    ) -> LlmResponse:
        state.partial, state.partial_thinking = [], []

        async def listen(event: StreamEvent) -> None:
            if isinstance(event, TextDelta):
                state.partial.append(event.text)
            elif isinstance(event, ThinkingDelta):
                state.partial_thinking.append(event.text)
            await host.emit(event)

        await host.emit(LlmCallStarted(index, len(request.items)))
        response = await self.provider.stream(request, listen)
        state.partial, state.partial_thinking = [], []
        await host.emit(LlmCallFinished(index, response))
        return response

    async def _run_tools(self, host: TurnHost, state: _TurnState) -> str | None:
        """Run the open calls; ``"paused"`` when a hook paused before or after one."""
        calls = open_calls(host.history)
        results = state.finished = {}
        runnable, stop = await self._pre_tool_decisions(host, calls, results)
        if isinstance(stop, Abort):
            await self._abort(stop.reason)
        async with trio.open_nursery() as nursery:
            for call in runnable:
                nursery.start_soon(self._run_tool, host, call, results)
        for call in calls:
            if call.id in results:
                decision = await self.hooks.tool_result(call, results[call.id])
                if stop is None and isinstance(decision, Abort | Pause):
                    stop = decision
        done = [results[call.id] for call in calls if call.id in results]
        await host.commit(Step(list(done)))
        state.finished = {}
        if isinstance(stop, Abort):
            await self._abort(stop.reason)
        return "paused" if isinstance(stop, Pause) else None

    async def _pre_tool_decisions(
        self, host: TurnHost, calls: list[ToolCall], results: dict[str, ToolResult]
    ) -> tuple[list[ToolCall], Pause | Abort | None]:
        runnable: list[ToolCall] = []
        for call in calls:
            decision = await self.hooks.tool_call(call)
            if isinstance(decision, Pause | Abort):
                return runnable, decision
            if isinstance(decision, Skip):
                result = ToolResult(call.id, decision.summary, decision.content, decision.is_error)
                results[call.id] = result
                await host.emit(ToolFinished(call, result))
            else:
                runnable.append(call)
        return runnable, None

    async def _run_tool(
        self, host: TurnHost, call: ToolCall, results: dict[str, ToolResult]
    ) -> None:
        await host.emit(ToolStarted(call))
        if self.tools is None:
            result = ToolResult(call.id, f"no tool named {call.name!r}", is_error=True)
        else:
            result = await self.tools.call(call, self.tool_context)
        results[call.id] = result
        await host.emit(ToolFinished(call, result))

    # --- ending early -------------------------------------------------------------------

    async def _abort(self, reason: str) -> None:
        """Tell the on_abort hooks, then end the turn; open calls get closed on the way out."""
        await self.hooks.aborted(reason)
        raise TurnAborted(reason)

    async def _close_cut_short(self, host: TurnHost, exc: BaseException, state: _TurnState) -> None:
        """Make the history valid again after ``exc``: commit the partial response and a
        result for every open call (the ones that finished keep theirs)."""
        closing: list[ConversationItem] = state.partial_items(exc)
        finished, state.finished = state.finished, {}
        closing += [
            finished.get(call.id) or interrupted_result(call) for call in open_calls(host.history)
        ]
        if not closing:
            return
        with trio.CancelScope(shield=True) as scope, contextlib.suppress(ActorClosed):
            scope.deadline = trio.current_time() + CLEANUP_SECONDS
            await host.commit(Step(closing, interrupted=True))  # a stopped host closes itself


class TurnCancelled(Exception):
    """What :meth:`TurnHost.finished` receives for a turn that was cancelled."""


class _TurnState:
    """What a turn in progress has that is not committed yet."""

    __slots__ = ("finished", "partial", "partial_thinking")

    def __init__(self) -> None:
        self.partial: list[str] = []
        self.partial_thinking: list[str] = []
        self.finished: dict[str, ToolResult] = {}

    def partial_items(self, exc: BaseException) -> list[ConversationItem]:
        """The streamed part of a response cut short by ``exc``, marked interrupted."""
        if isinstance(exc, StreamInterrupted):
            partial = [i for i in exc.partial if isinstance(i, Message | Reasoning)]
        else:
            partial = []
            if self.partial_thinking:
                partial.append(Reasoning("".join(self.partial_thinking)))
            if self.partial:
                partial.append(Message("assistant", "".join(self.partial)))
        self.partial, self.partial_thinking = [], []
        return [
            msgspec.structs.replace(item, interrupted=True) if isinstance(item, Message) else item
            for item in partial
        ]


def part_of_response(item: HistoryItem) -> bool:
    """Whether ``item`` belongs to a model response (its reasoning, text or tool calls)."""
    return isinstance(item, Reasoning | ToolCall) or (
        isinstance(item, Message) and item.role == "assistant"
    )


def open_calls(history: Sequence[HistoryItem]) -> list[ToolCall]:
    """Tool calls of the latest LLM response in ``history`` that have no result yet."""
    answered: set[str] = set()
    calls: list[ToolCall] = []
    for item in reversed(history):
        if isinstance(item, ToolResult):
            if calls:
                break  # results of an earlier response
            answered.add(item.call_id)
        elif isinstance(item, ToolCall):
            calls.append(item)
        elif not part_of_response(item):
            break
    return [call for call in reversed(calls) if call.id not in answered]


def interrupted_result(call: ToolCall) -> ToolResult:
    """The result a call gets when it never ran to the end."""
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
    "CancelTurn",
    "Gate",
    "GatePoint",
    "Hold",
    "LlmCallFinished",
    "LlmCallStarted",
    "Proceed",
    "Projection",
    "StartTurn",
    "Step",
    "ToolFinished",
    "ToolRunner",
    "ToolStarted",
    "Transcript",
    "TurnCancelled",
    "TurnHost",
    "TurnOutcome",
    "TurnResult",
    "Worker",
    "WorkerEvent",
    "WorkerMessage",
    "interrupted_result",
    "open_calls",
    "part_of_response",
]
