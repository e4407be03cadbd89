"""Anthropic Messages API (``POST /v1/messages``, streaming)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from httpx_sse import ServerSentEvent

from podactors.items import Message, Reasoning, ToolCall, ToolResult
from podactors.llm.events import (
    Finish,
    StopReason,
    StreamDone,
    TextDelta,
    ThinkingDelta,
    ThinkingSignature,
    ToolCallArgsDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageUpdate,
    WireEvent,
)
from podactors.llm.provider import HttpProvider, WireError, decode_json
from podactors.llm.request import Part, Request, Turn, to_turns, tool_result_text

API_VERSION = "2023-06-01"
THINKING_BUDGETS = {"low": 2048, "medium": 8192, "high": 24576}
_STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "refusal": "refusal",
}
_CACHE = {"type": "ephemeral"}


class AnthropicProvider(HttpProvider):
    """Claude through the Messages API; thinking signatures round-trip."""

    name = "anthropic"

    def url(self, request: Request) -> str:
        return f"{self.base_url}/v1/messages"

    def headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    def body(self, request: Request) -> dict[str, Any]:
        config = request.config
        body: dict[str, Any] = {
            "model": config.model or self.model,
            "max_tokens": config.max_tokens or 4096,
            "stream": True,
            "messages": _messages(request),
        }
        if request.system_prompt:
            body["system"] = [{"type": "text", "text": request.system_prompt}]
        if request.tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
        if config.stop_sequences:
            body["stop_sequences"] = list(config.stop_sequences)
        budget = THINKING_BUDGETS.get(config.reasoning_effort or "")
        if budget:
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
            body["max_tokens"] = max(body["max_tokens"], budget + 1024)
        elif config.temperature is not None:
            body["temperature"] = config.temperature
        return body

    def parser(self) -> AnthropicParser:
        return AnthropicParser()


def _messages(request: Request) -> list[dict[str, Any]]:
    """Turns as Messages API messages, with cache breakpoints on the requested item and
    on the last block of the conversation."""
    messages: list[dict[str, Any]] = []
    for turn in to_turns(request.items):
        blocks = _blocks(turn, request.cache_breakpoint)
        if blocks:
            messages.append({"role": turn.role, "content": blocks})
    if messages:
        messages[-1]["content"][-1]["cache_control"] = _CACHE
    return messages


def _blocks(turn: Turn, cache_breakpoint: int | None) -> list[dict[str, Any]]:
    blocks = []
    for index, part in zip(turn.indices, turn.parts, strict=True):
        block = _block(part)
        if block is None:
            continue
        if index == cache_breakpoint:
            block["cache_control"] = _CACHE
        blocks.append(block)
    return blocks


def _block(part: Part) -> dict[str, Any] | None:
    if isinstance(part, Message):
        return {"type": "text", "text": part.content} if part.content else None
    if isinstance(part, ToolCall):
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": part.arguments}
    if isinstance(part, ToolResult):
        return {
            "type": "tool_result",
            "tool_use_id": part.call_id,
            "content": tool_result_text(part),
            "is_error": part.is_error,
        }
    if isinstance(part, Reasoning):
        if part.signature is not None:
            return {"type": "thinking", "thinking": part.text, "signature": part.signature}
        if part.encrypted is not None:
            return {"type": "redacted_thinking", "data": part.encrypted}
    return None  # thinking without a signature cannot be sent back


class AnthropicParser:
    """Messages API stream events → wire events."""

    def __init__(self) -> None:
        self._tool_blocks: set[int] = set()

    def feed(self, event: ServerSentEvent) -> Iterable[WireEvent]:
        if event.event == "ping" or not event.data:
            return ()
        data = decode_json(event.data)
        handler = getattr(self, f"_on_{data.get('type', '')}", None)
        return handler(data) if handler is not None else ()

    def close(self) -> Iterable[WireEvent]:
        return ()

    def _on_message_start(self, data: dict[str, Any]) -> Iterable[WireEvent]:
        return [_usage(data.get("message", {}).get("usage") or {})]

    def _on_content_block_start(self, data: dict[str, Any]) -> Iterable[WireEvent]:
        index, block = data["index"], data["content_block"]
        kind = block.get("type")
        if kind == "tool_use":
            self._tool_blocks.add(index)
            return [ToolCallStart(index, block["id"], block["name"])]
        if kind == "redacted_thinking":
            return [ThinkingSignature(encrypted=block.get("data"))]
        if kind == "text" and block.get("text"):
            return [TextDelta(block["text"])]
        return ()

    def _on_content_block_delta(self, data: dict[str, Any]) -> Iterable[WireEvent]:
        index, delta = data["index"], data["delta"]
        kind = delta.get("type")
        if kind == "text_delta":
            return [TextDelta(delta["text"])]
        if kind == "thinking_delta":
            return [ThinkingDelta(delta["thinking"])]
        if kind == "signature_delta":
            return [ThinkingSignature(signature=delta["signature"])]
        if kind == "input_json_delta":
            return [ToolCallArgsDelta(index, delta["partial_json"])]
        return ()

    def _on_content_block_stop(self, data: dict[str, Any]) -> Iterable[WireEvent]:
        index = data["index"]
        if index in self._tool_blocks:
            self._tool_blocks.discard(index)
            return [ToolCallEnd(index)]
        return ()

    def _on_message_delta(self, data: dict[str, Any]) -> Iterable[WireEvent]:
        events: list[WireEvent] = []
        if usage := data.get("usage"):
            events.append(_usage(usage))
        if reason := (data.get("delta") or {}).get("stop_reason"):
            events.append(Finish(_STOP_REASONS.get(reason, "other")))
        return events

    def _on_message_stop(self, data: dict[str, Any]) -> Iterable[WireEvent]:
        return [StreamDone()]

    def _on_error(self, data: dict[str, Any]) -> Iterable[WireEvent]:
        error = data.get("error") or {}
        raise WireError(f"{error.get('type', 'error')}: {error.get('message', 'stream error')}")


def _usage(usage: dict[str, Any]) -> UsageUpdate:
    """Anthropic counts cache reads and writes apart from ``input_tokens``: add them up."""
    parts = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    total = sum(usage.get(key) or 0 for key in parts) if "input_tokens" in usage else None
    return UsageUpdate(
        input_total=total,
        cache_read=usage.get("cache_read_input_tokens"),
        cache_write=usage.get("cache_creation_input_tokens"),
        output=usage.get("output_tokens"),
    )
