"""The Anthropic stand-in server, driven by the real Anthropic provider over loopback."""

from __future__ import annotations

import pytest
import trio

from podactors.errors import ProviderError
from podactors.items import Message, Reasoning, ToolCall
from podactors.llm.anthropic import AnthropicProvider
from podactors.llm.request import Request
from podactors.llm.scripted import ScriptedReply, ScriptedToolCall, ScriptedUsage
from podactors.llm.transport import RetryPolicy
from podactors.testing import StandinServer

REPLIES = [
    ScriptedReply(
        thinking="Check the file.",
        text="Reading it now.",
        tool_calls=[ScriptedToolCall("read_file", {"path": "a.txt"})],
        usage=ScriptedUsage(input_tokens=900, output_tokens=30, cache_read=600),
    ),
    ScriptedReply(text="Done."),
]


async def test_replies_arrive_as_a_real_messages_stream(nursery):
    server = StandinServer(REPLIES)
    await nursery.start(server.serve)
    provider = AnthropicProvider(model="m", base_url=server.url, api_key="k")
    request = Request("p", [Message("user", "go")])
    with trio.fail_after(10):
        first = await provider.stream(request)
        second = await provider.stream(request)
    assert first.items == [
        Reasoning("Check the file.", signature="standin-sig-0"),
        Message("assistant", "Reading it now."),
        ToolCall("toolu_standin_0_0", "read_file", {"path": "a.txt"}),
    ]
    assert (first.stop_reason, first.usage.input_total, first.usage.cache_read) == (
        "tool_use",
        900,
        600,
    )
    assert second.items == [Message("assistant", "Done.")] and second.stop_reason == "end_turn"
    assert [r["messages"][0]["content"][0]["text"] for r in server.requests] == ["go", "go"]
    with pytest.raises(ProviderError) as err:
        await AnthropicProvider(
            model="m", base_url=server.url, retry=RetryPolicy(max_attempts=1)
        ).stream(request)
    assert err.value.status == 500 and "no reply left" in str(err.value)
    await provider.aclose()
