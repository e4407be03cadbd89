"""Turn a provider's wire events into listener events and one :class:`LlmResponse`.

This is the one place that accumulates deltas, so every provider gets the same rules:
tool-call arguments are parsed once, when the call ends; a call that never ended is
dropped, never half-built; text and thinking keep their order in the response.
"""

from __future__ import annotations

from typing import Any

import attrs
import msgspec

from podactors.errors import InvalidToolArguments, StreamInterrupted
from podactors.items import ConversationItem, Message, Reasoning, ToolCall
from podactors.llm.events import (
    Finish,
    LlmResponse,
    StopReason,
    StreamDone,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ThinkingSignature,
    TokenUsage,
    ToolCallArgsDelta,
    ToolCallDone,
    ToolCallEnd,
    ToolCallStart,
    UsageUpdate,
    WireEvent,
)


@attrs.define(eq=False)
class _PendingCall:
    id: str
    name: str
    fragments: list[str] = attrs.field(factory=list)


@attrs.define
class _Block:
    """A run of text or thinking being accumulated."""

    kind: str  # "text" | "thinking"
    parts: list[str] = attrs.field(factory=list)
    signature: str | None = None
    encrypted: str | None = None


class ResponseAssembler:
    """Accumulates one response; :meth:`add` returns what listeners should see."""

    def __init__(self, provider: str):
        self.provider = provider
        self.request_id: str | None = None
        self._items: list[ConversationItem | _Block | _PendingCall] = []
        self._calls: dict[int, _PendingCall] = {}
        self._usage = TokenUsage()
        self._stop: StopReason | None = None
        self._done = False

    def add(self, event: WireEvent) -> list[StreamEvent]:
        """Fold one wire event in; returns the events to pass on to listeners."""
        if isinstance(event, TextDelta | ThinkingDelta):
            self._block("text" if isinstance(event, TextDelta) else "thinking").parts.append(
                event.text
            )
            return [event] if event.text else []
        if isinstance(event, ThinkingSignature):
            block = self._block("thinking", continuing=True)
            block.signature = event.signature or block.signature
            block.encrypted = event.encrypted or block.encrypted
            return []
        if isinstance(event, ToolCallStart):
            pending = _PendingCall(event.id, event.name)
            self._calls[event.index] = pending
            self._items.append(pending)
            return [event]
        if isinstance(event, ToolCallArgsDelta):
            self._pending(event.index).fragments.append(event.delta)
            return [event] if event.delta else []
        if isinstance(event, ToolCallEnd):
            return [self._end_call(event)]
        if isinstance(event, UsageUpdate):
            self._usage = _merge_usage(self._usage, event)
            return [event]
        if isinstance(event, Finish):
            self._stop = event.reason
            return [event]
        assert isinstance(event, StreamDone)
        self._done = True
        return []

    @property
    def done(self) -> bool:
        """Whether the wire's end-of-response marker arrived."""
        return self._done

    def finish(self) -> LlmResponse:
        """The response; raises :class:`StreamInterrupted` if the stream was cut short."""
        if not self._done or self._calls:
            raise self.interrupted("stream ended before the response was complete")
        return LlmResponse(
            items=self.partial_items(),
            stop_reason=self._stop or "other",
            usage=self._usage,
            provider=self.provider,
            request_id=self.request_id,
        )

    def interrupted(self, message: str, *, status: int | None = None) -> StreamInterrupted:
        """A typed error carrying the text and reasoning received so far.

        Tool calls are left out even when complete: the response that asked for them
        never finished, so they must not run.
        """
        return StreamInterrupted(
            self.provider,
            message,
            status=status,
            request_id=self.request_id,
            partial=[i for i in self.partial_items() if isinstance(i, Message | Reasoning)],
        )

    def partial_items(self) -> list[ConversationItem]:
        """Finished items plus text and thinking so far; unfinished tool calls left out."""
        return [x for x in map(_finish_block, self._items) if x is not None]

    def _block(self, kind: str, *, continuing: bool = False) -> _Block:
        """The block to add to: the last one if of this kind (thinking that already has
        its signature is closed, unless the signature itself is ``continuing`` it)."""
        last = self._items[-1] if self._items else None
        sealed = isinstance(last, _Block) and (last.signature or last.encrypted) and not continuing
        if isinstance(last, _Block) and last.kind == kind and not sealed:
            return last
        block = _Block(kind)
        self._items.append(block)
        return block

    def _pending(self, index: int) -> _PendingCall:
        try:
            return self._calls[index]
        except KeyError:
            raise self.interrupted(f"tool call {index} continued before it started") from None

    def _end_call(self, event: ToolCallEnd) -> ToolCallDone:
        pending = self._pending(event.index)
        raw = event.arguments if event.arguments is not None else "".join(pending.fragments)
        call = ToolCall(pending.id, pending.name, self._parse_arguments(pending, raw))
        del self._calls[event.index]
        self._items[self._items.index(pending)] = call
        return ToolCallDone(event.index, call)

    def _parse_arguments(self, pending: _PendingCall, raw: str) -> dict[str, Any]:
        try:
            value = msgspec.json.decode(raw or "{}")
        except msgspec.DecodeError as exc:
            raise InvalidToolArguments(
                self.provider,
                f"tool call {pending.id} ({pending.name}): arguments are not valid JSON: {exc}",
                request_id=self.request_id,
            ) from None
        if not isinstance(value, dict):
            raise InvalidToolArguments(
                self.provider,
                f"tool call {pending.id} ({pending.name}): arguments must be a JSON object",
                request_id=self.request_id,
            )
        return value


def _finish_block(item: ConversationItem | _Block | _PendingCall) -> ConversationItem | None:
    if isinstance(item, _PendingCall):
        return None
    if not isinstance(item, _Block):
        return item
    text = "".join(item.parts)
    if item.kind == "text":
        return Message("assistant", text) if text else None
    if not text and item.signature is None and item.encrypted is None:
        return None
    return Reasoning(text, signature=item.signature, encrypted=item.encrypted)


def _merge_usage(usage: TokenUsage, update: UsageUpdate) -> TokenUsage:
    return TokenUsage(
        input_total=usage.input_total if update.input_total is None else update.input_total,
        cache_read=usage.cache_read if update.cache_read is None else update.cache_read,
        cache_write=usage.cache_write if update.cache_write is None else update.cache_write,
        output=usage.output if update.output is None else update.output,
    )
