"""Gemini API (``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``).

Gemini sends whole parts, not deltas: a function call arrives complete, and the thought
signatures that let thinking round-trip ride on the parts they belong to. The stream has
no end marker, so it is complete only once a ``finishReason`` was seen.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from httpx_sse import ServerSentEvent

from podactors.items import Message, Reasoning, ToolCall, ToolResult
from podactors.llm.events import (
    Finish,
    StopReason,
    StreamDone,
    TextDelta,
    ThinkingDelta,
    ThinkingSignature,
    ToolCallEnd,
    ToolCallStart,
    UsageUpdate,
    WireEvent,
)
from podactors.llm.provider import HttpProvider, WireError, decode_json
from podactors.llm.request import Part, Request, ToolSpec, Turn, to_turns, tool_result_text
from podactors.llm.transport import provider_message

THINKING_BUDGETS = {"low": 1024, "medium": 8192, "high": 24576}
_REFUSALS = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
_STOP_REASONS: dict[str, StopReason] = {"STOP": "end_turn", "MAX_TOKENS": "max_tokens"}
_UNSUPPORTED_SCHEMA_KEYS = frozenset({"additionalProperties", "$schema", "title"})


class GeminiProvider(HttpProvider):
    """Gemini through ``streamGenerateContent``; thought signatures round-trip.

    The API key goes in the ``x-goog-api-key`` header, never in the URL, which ends up in
    logs and error messages.
    """

    name = "gemini"

    def url(self, request: Request) -> str:
        model = (request.config.model or self.model).removeprefix("models/")
        return f"{self.base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse"

    def headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self._api_key} if self._api_key else {}

    def body(self, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = {"contents": _contents(request)}
        if request.system_prompt:
            body["systemInstruction"] = {"parts": [{"text": request.system_prompt}]}
        if request.tools:
            body["tools"] = [{"functionDeclarations": [_declaration(t) for t in request.tools]}]
        if config := _generation_config(request):
            body["generationConfig"] = config
        return body

    def parser(self) -> GeminiParser:
        return GeminiParser()


def _generation_config(request: Request) -> dict[str, Any]:
    config = request.config
    generation: dict[str, Any] = {}
    if config.max_tokens is not None:
        generation["maxOutputTokens"] = config.max_tokens
    if config.temperature is not None:
        generation["temperature"] = config.temperature
    if config.stop_sequences:
        generation["stopSequences"] = list(config.stop_sequences)
    if budget := THINKING_BUDGETS.get(config.reasoning_effort or ""):
        generation["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": True}
    return generation


def _declaration(tool: ToolSpec) -> dict[str, Any]:
    return {
        "name": tool.name,
        "description": tool.description,
        "parameters": strip_schema(tool.parameters),
    }


def strip_schema(schema: Any) -> Any:
    """``schema`` without the JSON-schema keys Gemini rejects, at any depth.

    The names inside ``properties`` are property names, not keywords: a property called
    ``title`` stays.
    """
    if isinstance(schema, list):
        return [strip_schema(value) for value in schema]
    if not isinstance(schema, dict):
        return schema
    stripped: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _UNSUPPORTED_SCHEMA_KEYS:
            continue
        if key == "properties" and isinstance(value, dict):
            stripped[key] = {name: strip_schema(prop) for name, prop in value.items()}
        else:
            stripped[key] = strip_schema(value)
    return stripped


def _contents(request: Request) -> list[dict[str, Any]]:
    """Turns as Gemini contents; a function response is named after the call it answers."""
    names = {item.id: item.name for item in request.items if isinstance(item, ToolCall)}
    contents: list[dict[str, Any]] = []
    for turn in to_turns(request.items):
        parts = _model_parts(turn) if turn.role == "assistant" else _user_parts(turn, names)
        if parts:
            contents.append(
                {"role": "model" if turn.role == "assistant" else "user", "parts": parts}
            )
    return contents


def _user_parts(turn: Turn, names: dict[str, str]) -> list[dict[str, Any]]:
    parts = []
    for part in turn.parts:
        if isinstance(part, ToolResult):
            parts.append(_function_response(part, names.get(part.call_id, part.call_id)))
        elif (wire := _part(part)) is not None:
            parts.append(wire)
    return parts


def _function_response(result: ToolResult, name: str) -> dict[str, Any]:
    key = "error" if result.is_error else "content"
    response = {key: tool_result_text(result)}
    return {"functionResponse": {"name": name, "response": response}}


def _model_parts(turn: Turn) -> list[dict[str, Any]]:
    """Model parts; a reasoning signature rides on the next part of the turn (on an empty
    text part of its own when nothing follows). Reasoning text is not sent back."""
    parts: list[dict[str, Any]] = []
    signature: str | None = None
    for part in turn.parts:
        if isinstance(part, Reasoning):
            if part.signature is not None:
                if signature is not None:
                    parts.append({"text": "", "thoughtSignature": signature})
                signature = part.signature
            continue
        wire = _part(part)
        if wire is None:
            continue
        if signature is not None:
            wire["thoughtSignature"] = signature
            signature = None
        parts.append(wire)
    if signature is not None:
        parts.append({"text": "", "thoughtSignature": signature})
    return parts


def _part(part: Part) -> dict[str, Any] | None:
    if isinstance(part, Message):
        return {"text": part.content} if part.content else None
    if isinstance(part, ToolCall):
        return {"functionCall": {"name": part.name, "args": part.arguments}}
    return None


class GeminiParser:
    """``GenerateContentResponse`` chunks → wire events."""

    def __init__(self) -> None:
        self._calls = 0
        self._response_id = ""
        self._finished = False

    def feed(self, event: ServerSentEvent) -> Iterable[WireEvent]:
        if not event.data:
            return ()
        data = decode_json(event.data)
        if not isinstance(data, dict):
            raise WireError("event data is not a JSON object")
        if "error" in data:
            raise WireError(provider_message(data) or "stream error")
        self._response_id = data.get("responseId") or self._response_id
        candidates = data.get("candidates") or [{}]
        events = self._parts(candidates[0])
        if usage := data.get("usageMetadata"):
            events.append(_usage(usage))
        if reason := self._finish_reason(candidates[0], data.get("promptFeedback") or {}):
            self._finished = True
            events.append(Finish(reason))
        return events

    def close(self) -> Iterable[WireEvent]:
        return [StreamDone()] if self._finished else []

    def _parts(self, candidate: dict[str, Any]) -> list[WireEvent]:
        events: list[WireEvent] = []
        for part in (candidate.get("content") or {}).get("parts") or []:
            events.extend(self._part(part))
        return events

    def _part(self, part: dict[str, Any]) -> list[WireEvent]:
        """A thought part's signature closes its thinking; any other part's signature
        belongs to the thinking before it, so it goes first."""
        signature = part.get("thoughtSignature")
        signed: list[WireEvent] = [ThinkingSignature(signature=signature)] if signature else []
        if part.get("thought"):
            return [ThinkingDelta(part.get("text") or ""), *signed]
        if call := part.get("functionCall"):
            return [*signed, *self._function_call(call)]
        text = part.get("text")
        return [*signed, TextDelta(text)] if text else signed

    def _function_call(self, call: dict[str, Any]) -> list[WireEvent]:
        index = self._calls
        self._calls += 1
        call_id = call.get("id") or f"call_{self._response_id}_{index}"
        name = call.get("name")
        if not isinstance(name, str) or not name:
            raise WireError(f"function call {call_id} has no name")
        arguments = msgspec.json.encode(call.get("args") or {}).decode()
        return [ToolCallStart(index, call_id, name), ToolCallEnd(index, arguments)]

    def _finish_reason(
        self, candidate: dict[str, Any], feedback: dict[str, Any]
    ) -> StopReason | None:
        if feedback.get("blockReason"):
            return "refusal"  # the prompt itself was blocked: no candidates follow
        reason = candidate.get("finishReason")
        if not reason or reason == "FINISH_REASON_UNSPECIFIED":
            return None
        if reason == "STOP" and self._calls:
            return "tool_use"
        if reason in _REFUSALS:
            return "refusal"
        return _STOP_REASONS.get(reason, "other")


def _usage(usage: dict[str, Any]) -> UsageUpdate:
    """Gemini's prompt count includes its cached part; thinking tokens are output too."""
    counts = [usage.get(key) for key in ("candidatesTokenCount", "thoughtsTokenCount")]
    output = sum(c or 0 for c in counts) if any(c is not None for c in counts) else None
    return UsageUpdate(
        input_total=usage.get("promptTokenCount"),
        cache_read=usage.get("cachedContentTokenCount") or 0,
        cache_write=0,
        output=output,
    )
