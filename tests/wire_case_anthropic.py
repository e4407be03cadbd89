"""The Anthropic Messages case of the wire tests."""

from __future__ import annotations

from typing import Any

from wire_support import API_KEY, WireCase

from podactors.items import Message, ToolCall
from podactors.llm.anthropic import AnthropicProvider
from podactors.llm.events import TokenUsage
from podactors.llm.provider import HttpProvider


def make(url: str, **kw: Any) -> HttpProvider:
    return AnthropicProvider(model="claude-sonnet-4-5", base_url=url, api_key=API_KEY, **kw)


CASE = WireCase(
    name="anthropic",
    make=make,
    fixture="anthropic_text_then_tool_use.sse",
    items=[
        Message("assistant", "Let me read the config file first."),
        ToolCall(
            "toolu_01FAKE0000000000000000002",
            "read_file",
            {"path": "config/app.toml", "limit": 200},
        ),
    ],
    stop_reason="tool_use",
    usage=TokenUsage(input_total=1832 + 12288, cache_read=12288, cache_write=0, output=64),
    path="/v1/messages",
    error_body=b'{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}',
)
