"""A conversation in memory: the host of a worker's turns when no pod is around.

``Conversation`` keeps the history, builds every request (through an optional request
projection, which rewrites the items sent, never the history), and hands each step to an
``on_step`` callback and each event to ``on_event``. It is what a disposable worker (a
compaction's summariser, a script) runs on::

    conversation = Conversation(provider, tools=registry, system_prompt="Be terse.")
    result = await conversation.run("why does the test fail?", on_step=persist)
    conversation.history   # every item of the turn
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

import outcome

from podactors.agent.hooks import Hooks
from podactors.agent.worker import (
    Gate,
    GatePoint,
    Hold,
    Proceed,
    Projection,
    Step,
    ToolRunner,
    Transcript,
    TurnResult,
    Worker,
    WorkerEvent,
)
from podactors.items import HistoryItem, RequestConfig
from podactors.llm.provider import Provider
from podactors.llm.request import Request

StepSink = Callable[[Step], Awaitable[None]]
EventSink = Callable[[WorkerEvent], Awaitable[None]]
Interceptor = Callable[["Conversation"], Awaitable[Literal["proceed", "yield"]]]
"""Asked before every LLM request; ``"yield"`` ends the turn as ``yielded``."""
RequestProjection = Callable[[list[HistoryItem]], Projection]
"""Given a copy of the history, the items to send instead; must be pure and quick."""


async def _discard(_: Any) -> None:
    pass


class Conversation(Transcript):
    """Runs a worker's turns on a history of its own; see the module docstring."""

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
        super().__init__(
            history=list(history),
            system_prompt=system_prompt,
            config=config or RequestConfig(),
            cache_key=cache_key,
        )
        self.worker = Worker(provider, tools=tools, tool_context=tool_context, hooks=hooks)
        self.max_turns = max_turns
        self.interceptor = interceptor
        self.project = project
        self.last_run_interrupted = False
        self._on_step: StepSink = _discard
        self._on_event: EventSink = _discard

    async def run(
        self, text: str | None, *, on_step: StepSink = _discard, on_event: EventSink = _discard
    ) -> TurnResult:
        """Run a turn on the user's ``text`` (``None``: on the history as it is)."""
        return await self._turn(text, on_step, on_event)

    async def resume(
        self, *, on_step: StepSink = _discard, on_event: EventSink = _discard
    ) -> TurnResult:
        """Continue a paused turn: run its pending tool calls, then go on."""
        return await self._turn(None, on_step, on_event)

    def build_request(self) -> Request:
        """The request the next LLM call would send (projected, when there is a projection)."""
        return self._prepare_request()[0]

    async def _turn(self, text: str | None, on_step: StepSink, on_event: EventSink) -> TurnResult:
        self._on_step, self._on_event = on_step, on_event
        self.last_run_interrupted = False
        try:
            result = await self.worker.turn(self, text, budget=self.max_turns)
        except BaseException:
            self.last_run_interrupted = True
            raise
        self.last_run_interrupted = result.outcome == "paused"
        return result

    def _prepare_request(self) -> tuple[Request, object]:
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
        return self.request(self.worker.tool_specs(), items), note

    # --- the turn's host --------------------------------------------------------------

    async def gate(self, point: GatePoint) -> Gate:
        """Ask the interceptor before a request, then hand over the request."""
        if point == "tools":
            return Proceed()
        if self.interceptor is not None and await self.interceptor(self) == "yield":
            return Hold("yield")
        request, note = self._prepare_request()
        return Proceed(request, note)

    async def commit(self, step: Step) -> None:
        """Add the step to the history, then hand it to ``on_step`` (all but the user's
        text, which the caller of :meth:`run` has already)."""
        self.history.extend(step.items)
        if not step.user_input:
            await self._on_step(step)

    async def emit(self, event: WorkerEvent) -> None:
        """Hand the event to ``on_event``."""
        await self._on_event(event)

    async def finished(self, result: outcome.Outcome[TurnResult]) -> None:
        """Turns run here are awaited directly; nothing to report."""


__all__ = ["Conversation", "EventSink", "Interceptor", "RequestProjection", "StepSink"]
