"""The normalised stream every provider produces, and the response it assembles into.

Provider parsers turn wire events into :data:`WireEvent` values; the shared
:class:`~podactors.llm.assembler.ResponseAssembler` turns those into
:data:`StreamEvent` values for listeners and a final :class:`LlmResponse`.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from podactors.items import ConversationItem, ToolCall

StopReason = Literal["end_turn", "tool_use", "max_tokens", "stop_sequence", "refusal", "other"]


class TokenUsage(msgspec.Struct, frozen=True):
    """Tokens of one LLM call. ``input_total`` is the whole prompt, cache included."""

    input_total: int = 0
    cache_read: int = 0
    cache_write: int = 0
    output: int = 0


class TextDelta(msgspec.Struct, frozen=True, tag="text_delta", tag_field="type"):
    """A piece of assistant text."""

    text: str


class ThinkingDelta(msgspec.Struct, frozen=True, tag="thinking_delta", tag_field="type"):
    """A piece of model thinking."""

    text: str


class ThinkingSignature(msgspec.Struct, frozen=True, tag="thinking_signature", tag_field="type"):
    """The signature or encrypted blob that lets thinking round-trip to the provider."""

    signature: str | None = None
    encrypted: str | None = None


class ToolCallStart(msgspec.Struct, frozen=True, tag="tool_call_start", tag_field="type"):
    """The model started a tool call; ``index`` identifies it within this response."""

    index: int
    id: str
    name: str


class ToolCallArgsDelta(msgspec.Struct, frozen=True, tag="tool_call_args_delta", tag_field="type"):
    """A fragment of a tool call's JSON arguments."""

    index: int
    delta: str


class ToolCallEnd(msgspec.Struct, frozen=True, tag="tool_call_end", tag_field="type"):
    """The wire says a tool call is complete; ``arguments`` when sent whole, not in deltas."""

    index: int
    arguments: str | None = None


class ToolCallDone(msgspec.Struct, frozen=True, tag="tool_call_done", tag_field="type"):
    """A complete tool call with its arguments parsed (emitted by the assembler)."""

    index: int
    call: ToolCall


class UsageUpdate(msgspec.Struct, frozen=True, tag="usage", tag_field="type"):
    """Usage as reported so far; ``None`` fields keep their earlier value."""

    input_total: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None
    output: int | None = None


class Finish(msgspec.Struct, frozen=True, tag="finish", tag_field="type"):
    """The model stopped; the stream may still carry usage after this."""

    reason: StopReason


class StreamDone(msgspec.Struct, frozen=True, tag="stream_done", tag_field="type"):
    """The wire's own end-of-response marker: nothing more will follow."""


WireEvent = (
    TextDelta
    | ThinkingDelta
    | ThinkingSignature
    | ToolCallStart
    | ToolCallArgsDelta
    | ToolCallEnd
    | UsageUpdate
    | Finish
    | StreamDone
)
"""What a provider's wire parser yields."""

StreamEvent = (
    TextDelta
    | ThinkingDelta
    | ThinkingSignature
    | ToolCallStart
    | ToolCallArgsDelta
    | ToolCallDone
    | UsageUpdate
    | Finish
)
"""What listeners of an LLM call see."""


class LlmResponse(msgspec.Struct, frozen=True):
    """One finished LLM call: the items it produced, in order, and what it cost."""

    items: list[ConversationItem]
    stop_reason: StopReason
    usage: TokenUsage
    provider: str
    request_id: str | None = None

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls the model asked for, in order."""
        return [item for item in self.items if isinstance(item, ToolCall)]
