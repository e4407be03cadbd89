"""OpenAI Responses API (``POST /v1/responses``, streaming, stateless).

Every call sends the whole history (``store: false``, no ``previous_response_id``);
reasoning round-trips as its encrypted content, without item ids, which the API would
otherwise look up in a store it does not keep.
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
    ToolCallArgsDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageUpdate,
    WireEvent,
)
from podactors.llm.provider import HttpProvider, WireError, bearer, decode_json
from podactors.llm.request import Part, Request, to_turns, tool_result_text

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_INCOMPLETE_REASONS: dict[str, StopReason] = {
    "max_output_tokens": "max_tokens",
    "content_filter": "refusal",
}


class OpenAIResponsesProvider(HttpProvider):
    """OpenAI models through the Responses API; encrypted reasoning round-trips."""

    name = "openai_responses"

    def __init__(self, *, model: str, base_url: str = DEFAULT_BASE_URL, **kw: Any):
        super().__init__(model=model, base_url=base_url, **kw)

    def url(self, request: Request) -> str:
        return f"{self.base_url}/responses"

    def headers(self) -> dict[str, str]:
        return bearer(self._api_key)

    def body(self, request: Request) -> dict[str, Any]:
        config = request.config
        body: dict[str, Any] = {
            "model": config.model or self.model,
            "stream": True,
            "store": False,
            "input": input_items(request),
        }
        if request.system_prompt:
            body["instructions"] = request.system_prompt
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                }
                for t in request.tools
            ]
        if config.max_tokens is not None:
            body["max_output_tokens"] = config.max_tokens
        if config.reasoning_effort:
            body["reasoning"] = {"effort": config.reasoning_effort, "summary": "auto"}
            body["include"] = ["reasoning.encrypted_content"]
        elif config.temperature is not None:
            body["temperature"] = config.temperature
        if request.cache_key:
            body["prompt_cache_key"] = request.cache_key
        # Stop sequences: the Responses API has none; they are left out.
        return body

    def parser(self) -> OpenAIResponsesParser:
        return OpenAIResponsesParser()


def input_items(request: Request) -> list[dict[str, Any]]:
    """The history as Responses API input items, in turn order (results first)."""
    items: list[dict[str, Any]] = []
    for turn in to_turns(request.items):
        for part in turn.parts:
            item = _input_item(part)
            if item is not None:
                items.append(item)
    return items


def _input_item(part: Part) -> dict[str, Any] | None:
    if isinstance(part, Message):
        return _message(part) if part.content else None
    if isinstance(part, ToolCall):
        return {
            "type": "function_call",
            "call_id": part.id,
            "name": part.name,
            "arguments": msgspec.json.encode(part.arguments).decode(),
        }
    if isinstance(part, ToolResult):
        return {
            "type": "function_call_output",
            "call_id": part.call_id,
            "output": tool_result_text(part),
        }
    return _reasoning(part)


def _reasoning(part: Reasoning) -> dict[str, Any] | None:
    """Reasoning without its encrypted content cannot be sent back; no ``id`` is sent, as
    the API would look it up in the store that ``store: false`` leaves empty."""
    if part.encrypted is None:
        return None
    summary = [{"type": "summary_text", "text": part.text}] if part.text else []
    return {"type": "reasoning", "encrypted_content": part.encrypted, "summary": summary}


def _message(message: Message) -> dict[str, Any]:
    if message.role == "assistant":
        return {"role": "assistant", "content": [{"type": "output_text", "text": message.content}]}
    return {"role": "user", "content": [{"type": "input_text", "text": message.content}]}


class OpenAIResponsesParser:
    """Responses API stream events → wire events; tool calls keyed by ``output_index``."""

    def __init__(self) -> None:
        self._saw_call = False

    def feed(self, event: ServerSentEvent) -> Iterable[WireEvent]:
        if not event.data:
            return ()
        data = decode_json(event.data)
        kind = str(data.get("type") or event.event).replace(".", "_")
        handler = getattr(self, f"_on_{kind}", None)
        return handler(data) if handler is not None else ()

    def close(self) -> Iterable[WireEvent]:
        return ()

    def _on_response_output_text_delta(self, data: dict[str, Any]) -> Iterable[WireEvent]:
        return [TextDelta(data["delta"])]

    def _on_response_reasoning_summary_text_delta(
        self, data: dict[str, Any]
    ) -> Iterable[WireEvent]:
        return [ThinkingDelta(data["delta"])]

    _on_response_reasoning_text_delta = _on_response_reasoning_summary_text_delta

    def _on_response_reasoning_summary_part_added(
        self, data: dict[str, Any]
    ) -> Iterable[WireEvent]:
        """Summary parts of one reasoning item read as paragraphs of one text."""
        return [ThinkingDelta("\n\n")] if data.get("summary_index", 0) > 0 else ()

    def _on_response_output_item_added(self, data: dict[str, Any]) -> Iterable[WireEvent]:
        item = data["item"]
        if item.get("type") == "function_call":
            self._saw_call = True
            return [ToolCallStart(data["output_index"], item["call_id"], item["name"])]
        if item.get("type") == "reasoning":
            return [ThinkingDelta("")]  # a new reasoning item: a new thinking block
        return ()

    def _on_response_function_call_arguments_delta(
        self, data: dict[str, Any]
    ) -> Iterable[WireEvent]:
        return [ToolCallArgsDelta(data["output_index"], data["delta"])]

    def _on_response_output_item_done(self, data: dict[str, Any]) -> Iterable[WireEvent]:
        item = data["item"]
        if item.get("type") == "function_call":
            return [ToolCallEnd(data["output_index"], arguments=item.get("arguments"))]
        if item.get("type") == "reasoning" and item.get("encrypted_content"):
            return [ThinkingSignature(encrypted=item["encrypted_content"])]
        return ()

    def _on_response_completed(self, data: dict[str, Any]) -> Iterable[WireEvent]:
        response = data.get("response") or {}
        calls = self._saw_call or any(
            item.get("type") == "function_call" for item in response.get("output") or ()
        )
        return [_usage(response), Finish("tool_use" if calls else "end_turn"), StreamDone()]

    def _on_response_incomplete(self, data: dict[str, Any]) -> Iterable[WireEvent]:
        response = data.get("response") or {}
        reason = (response.get("incomplete_details") or {}).get("reason") or ""
        return [_usage(response), Finish(_INCOMPLETE_REASONS.get(reason, "other")), StreamDone()]

    def _on_response_failed(self, data: dict[str, Any]) -> Iterable[WireEvent]:
        error = (data.get("response") or {}).get("error") or {}
        raise WireError(_error_text(error, "response failed"))

    def _on_error(self, data: dict[str, Any]) -> Iterable[WireEvent]:
        error = data.get("error")
        raise WireError(_error_text(error if isinstance(error, dict) else data, "stream error"))


def _error_text(error: dict[str, Any], default: str) -> str:
    message = error.get("message") or default
    code = error.get("code") or error.get("type")
    return f"{code}: {message}" if code else str(message)


def _usage(response: dict[str, Any]) -> UsageUpdate:
    """``input_tokens`` already includes the cached ones; the API reports no cache writes."""
    usage = response.get("usage")
    if not usage:
        return UsageUpdate()
    details = usage.get("input_tokens_details") or {}
    return UsageUpdate(
        input_total=usage.get("input_tokens"),
        cache_read=details.get("cached_tokens"),
        cache_write=0,
        output=usage.get("output_tokens"),
    )
