"""The Gemini streamGenerateContent case of the wire tests."""

from __future__ import annotations

from typing import Any

from wire_support import API_KEY, WireCase

from podactors.items import Message, ToolCall
from podactors.llm.events import TokenUsage
from podactors.llm.gemini import GeminiProvider
from podactors.llm.provider import HttpProvider


def make(url: str, **kw: Any) -> HttpProvider:
    return GeminiProvider(model="gemini-2.5-flash", base_url=url, api_key=API_KEY, **kw)


CASE = WireCase(
    name="gemini",
    make=make,
    fixture="gemini_text_then_function_call.sse",
    items=[
        Message("assistant", "Let me look at the config file."),
        ToolCall("call_FAKEresp01_0", "read_file", {"path": "config/app.toml"}),
    ],
    stop_reason="tool_use",
    usage=TokenUsage(input_total=1450, cache_read=1024, cache_write=0, output=27),
    path="/v1beta/models/gemini-2.5-flash:streamGenerateContent",
    error_body=b'{"error":{"code":400,"message":"bad request","status":"INVALID_ARGUMENT"}}',
)
