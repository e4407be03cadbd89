"""OpenAI Chat Completions (``POST {base_url}/chat/completions``, streaming).

The same wire serves vLLM, llama.cpp, Ollama and OpenRouter through ``base_url``, so
the parser also accepts their dialects: ``reasoning_content`` / ``reasoning`` deltas,
usage on a chunk that still has choices, and a body that ends without ``[DONE]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from httpx_sse import ServerSentEvent

from podactors.items import Message, ToolCall, ToolResult
from podactors.llm.events import (
    Finish,
    StopReason,
    StreamDone,
    TextDelta,
    ThinkingDelta,
    ToolCallArgsDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageUpdate,
    WireEvent,
)
from podactors.llm.provider import HttpProvider, WireError, bearer, decode_json
from podactors.llm.request import Part, Request, Turn, to_turns, tool_result_text
from podactors.llm.transport import provider_message

_STOP_REASONS: dict[str, StopReason] = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}


class OpenAIChatProvider(HttpProvider):
    """Chat Completions: OpenAI itself, or any compatible server at ``base_url``.

    Reasoning is streamed but not sent back: the wire has no round trip for it.
    """

    name = "openai_chat"

    def url(self, request: Request) -> str:
        return f"{self.base_url}/chat/completions"

    def headers(self) -> dict[str, str]:
        return bearer(self._api_key)

    def body(self, request: Request) -> dict[str, Any]:
        config = request.config
        body: dict[str, Any] = {
            "model": config.model or self.model,
            "messages": _messages(request),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in request.tools
            ]
        optional = {
            "max_completion_tokens": config.max_tokens,
            "temperature": config.temperature,
            "stop": list(config.stop_sequences) or None,
            "reasoning_effort": config.reasoning_effort,
            "prompt_cache_key": request.cache_key,
        }
        body.update((key, value) for key, value in optional.items() if value is not None)
        return body

    def parser(self) -> OpenAIChatParser:
        return OpenAIChatParser()


def _messages(request: Request) -> list[dict[str, Any]]:
    """The system prompt, then each turn as chat messages."""
    messages: list[dict[str, Any]] = []
    if request.system_prompt:
        messages.append({"role": "system", "content": request.system_prompt})
    for turn in to_turns(request.items):
        messages.extend(_assistant(turn) if turn.role == "assistant" else _user(turn))
    return messages


def _user(turn: Turn) -> list[dict[str, Any]]:
    """Tool results as ``tool`` messages (``to_turns`` put them first), then the text."""
    messages: list[dict[str, Any]] = [
        {"role": "tool", "tool_call_id": part.call_id, "content": tool_result_text(part)}
        for part in turn.parts
        if isinstance(part, ToolResult)
    ]
    if text := _text(turn.parts):
        messages.append({"role": "user", "content": text})
    return messages


def _assistant(turn: Turn) -> list[dict[str, Any]]:
    """One assistant message with its text and tool calls; reasoning is dropped."""
    calls = [_tool_call(part) for part in turn.parts if isinstance(part, ToolCall)]
    text = _text(turn.parts)
    if not calls and not text:
        return []
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _tool_call(call: ToolCall) -> dict[str, Any]:
    arguments = msgspec.json.encode(call.arguments).decode()
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def _text(parts: list[Part]) -> str:
    return "\n\n".join(p.content for p in parts if isinstance(p, Message) and p.content)


class OpenAIChatParser:
    """Chat completion chunks → wire events.

    Tool calls arrive as fragments keyed by ``index``; each gets its own response index
    (a server that reuses an index for a new call id starts a new call) and all open
    calls end when the ``finish_reason`` arrives.
    """

    def __init__(self) -> None:
        self._open: dict[int, tuple[int, str]] = {}  # wire index → (response index, id)
        self._count = 0
        self._finished = False

    def feed(self, event: ServerSentEvent) -> Iterable[WireEvent]:
        data = event.data.strip()
        if not data:
            return ()
        if data == "[DONE]":
            return [StreamDone()]
        chunk = decode_json(data)
        if not isinstance(chunk, dict):
            raise WireError(f"unexpected chunk: {data[:200]}")
        if chunk.get("error"):
            raise WireError(provider_message(chunk) or "stream error")
        events: list[WireEvent] = []
        for choice in chunk.get("choices") or ():
            events.extend(self._choice(choice))
        if usage := chunk.get("usage"):
            events.append(_usage(usage))
        return events

    def close(self) -> Iterable[WireEvent]:
        """Ollama and llama.cpp may end the body without ``[DONE]``: after a
        ``finish_reason`` a clean end is the end; before it, the stream was cut."""
        return [StreamDone()] if self._finished else ()

    def _choice(self, choice: dict[str, Any]) -> list[WireEvent]:
        delta = choice.get("delta") or {}
        events: list[WireEvent] = []
        if reasoning := delta.get("reasoning_content") or delta.get("reasoning"):
            events.append(ThinkingDelta(reasoning))
        if text := delta.get("content") or delta.get("refusal"):
            events.append(TextDelta(text))
        for position, fragment in enumerate(delta.get("tool_calls") or ()):
            events.extend(self._tool_fragment(fragment.get("index", position), fragment))
        if reason := choice.get("finish_reason"):
            events.extend(self._finish(reason))
        return events

    def _tool_fragment(self, wire: int, fragment: dict[str, Any]) -> list[WireEvent]:
        events: list[WireEvent] = []
        call_id = fragment.get("id")
        function = fragment.get("function") or {}
        current = self._open.get(wire)
        if current is None or (call_id and call_id != current[1]):
            if current is not None:
                events.append(ToolCallEnd(current[0]))
            current = (self._count, call_id or f"call_{self._count}")
            self._count += 1
            self._open[wire] = current
            events.append(ToolCallStart(current[0], current[1], function.get("name") or ""))
        if arguments := function.get("arguments"):
            events.append(ToolCallArgsDelta(current[0], arguments))
        return events

    def _finish(self, reason: str) -> list[WireEvent]:
        events: list[WireEvent] = [ToolCallEnd(index) for index, _ in self._open.values()]
        self._open.clear()
        self._finished = True
        events.append(Finish(_STOP_REASONS.get(reason, "other")))
        return events


def _usage(usage: dict[str, Any]) -> UsageUpdate:
    """``prompt_tokens`` already includes the cached tokens (DeepSeek names them
    ``prompt_cache_hit_tokens``)."""
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") or usage.get("prompt_cache_hit_tokens") or 0
    return UsageUpdate(
        input_total=usage.get("prompt_tokens"),
        cache_read=cached,
        cache_write=0,
        output=usage.get("completion_tokens"),
    )
