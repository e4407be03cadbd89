"""Hooks: read-only observers of a worker's turn that return a decision.

Each hook point takes callables (sync or async) that run in registration order; the
first decision other than :data:`CONTINUE` wins. Hooks see frozen values and must not
mutate what they are shown: anything that changes the context goes through the log.

=================  ==============================  =====================================
hook point         called with                     may return
=================  ==============================  =====================================
on_prompt_submit   the user input                  Continue, Abort
pre_llm_request    the :class:`Request`            Continue, Pause, Abort
pre_tool_call      the :class:`ToolCall`           Continue, Skip, Pause, Abort
post_tool_call     the call and its result         Continue, Pause, Abort
on_turn_end        the final :class:`LlmResponse`  Continue, Nudge
on_abort           the reason                      (nothing)
=================  ==============================  =====================================
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import msgspec

from podactors.items import ToolCall, ToolResult
from podactors.llm.events import LlmResponse
from podactors.llm.request import Request


class Continue(msgspec.Struct, frozen=True):
    """Go on as if the hook were not there."""


class Skip(msgspec.Struct, frozen=True):
    """Do not run the tool; the model sees this result instead."""

    summary: str
    content: str | None = None
    is_error: bool = False


class Pause(msgspec.Struct, frozen=True):
    """Stop the turn here; ``resume`` continues it (pending tools still run)."""


class Abort(msgspec.Struct, frozen=True):
    """End the turn with :class:`~podactors.errors.TurnAborted`."""

    reason: str


class Nudge(msgspec.Struct, frozen=True):
    """Do not end the turn: add this user message and ask the model again."""

    text: str


CONTINUE = Continue()
Decision = Continue | Skip | Pause | Abort | Nudge
Hook = Callable[..., Decision | Awaitable[Decision | None] | None]


@attrs.define
class Hooks:
    """The hooks of one worker, by hook point."""

    on_prompt_submit: list[Hook] = attrs.field(factory=list)
    pre_llm_request: list[Hook] = attrs.field(factory=list)
    pre_tool_call: list[Hook] = attrs.field(factory=list)
    post_tool_call: list[Hook] = attrs.field(factory=list)
    on_turn_end: list[Hook] = attrs.field(factory=list)
    on_abort: list[Hook] = attrs.field(factory=list)

    async def prompt_submit(self, text: str) -> Decision:
        """Run ``on_prompt_submit`` hooks."""
        return await _decide(self.on_prompt_submit, text)

    async def llm_request(self, request: Request) -> Decision:
        """Run ``pre_llm_request`` hooks."""
        return await _decide(self.pre_llm_request, request)

    async def tool_call(self, call: ToolCall) -> Decision:
        """Run ``pre_tool_call`` hooks."""
        return await _decide(self.pre_tool_call, call)

    async def tool_result(self, call: ToolCall, result: ToolResult) -> Decision:
        """Run ``post_tool_call`` hooks."""
        return await _decide(self.post_tool_call, call, result)

    async def turn_end(self, response: LlmResponse) -> Decision:
        """Run ``on_turn_end`` hooks."""
        return await _decide(self.on_turn_end, response)

    async def aborted(self, reason: str) -> None:
        """Tell every ``on_abort`` hook."""
        for hook in self.on_abort:
            await _call(hook, reason)


async def _decide(hooks: list[Hook], *args: Any) -> Decision:
    for hook in hooks:
        decision = await _call(hook, *args)
        if decision is not None and not isinstance(decision, Continue):
            return decision
    return CONTINUE


async def _call(hook: Hook, *args: Any) -> Decision | None:
    result = hook(*args)
    if inspect.isawaitable(result):
        result = await result
    return result
