"""The OpenAI Chat Completions case of the wire tests."""

from __future__ import annotations

from typing import Any

from wire_support import API_KEY, WireCase

from podactors.items import ToolCall
from podactors.llm.events import TokenUsage
from podactors.llm.openai_chat import OpenAIChatProvider
from podactors.llm.provider import HttpProvider


def make(url: str, **kw: Any) -> HttpProvider:
    return OpenAIChatProvider(model="gpt-4.1", base_url=url, api_key=API_KEY, **kw)


CASE = WireCase(
    name="openai_chat",
    make=make,
    fixture="openai_chat_parallel_tool_calls.sse",
    items=[
        ToolCall("call_FAKEa1", "read_file", {"path": "config/app.toml"}),
        ToolCall("call_FAKEb2", "grep", {"pattern": "timeout", "path": "src"}),
    ],
    stop_reason="tool_use",
    usage=TokenUsage(input_total=2410, cache_read=1920, cache_write=0, output=48),
    path="/chat/completions",
    error_body=b'{"error":{"message":"bad request thing","type":"invalid_request_error"}}',
)
