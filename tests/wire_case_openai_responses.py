"""The OpenAI Responses case of the wire tests."""

from __future__ import annotations

from typing import Any

from wire_support import API_KEY, WireCase

from podactors.items import Message, ToolCall
from podactors.llm.events import TokenUsage
from podactors.llm.openai_responses import OpenAIResponsesProvider
from podactors.llm.provider import HttpProvider


def make(url: str, **kw: Any) -> HttpProvider:
    return OpenAIResponsesProvider(model="gpt-4.1", base_url=url, api_key=API_KEY, **kw)


CASE = WireCase(
    name="openai_responses",
    make=make,
    fixture="openai_responses_text_then_function_call.sse",
    items=[
        Message("assistant", "Checking the config."),
        ToolCall("call_FAKEr1", "read_file", {"path": "config/app.toml"}),
    ],
    stop_reason="tool_use",
    usage=TokenUsage(input_total=3120, cache_read=2048, cache_write=0, output=41),
    path="/responses",
    error_body=b'{"error":{"message":"bad input","type":"invalid_request_error"}}',
)
