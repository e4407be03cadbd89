"""Anthropic request bodies as the server receives them, and Anthropic stream specifics."""

from __future__ import annotations

import pytest
import trio
from fake_provider import Reply, fixture

from podactors.errors import StreamInterrupted
from podactors.items import (
    FileAttachment,
    Message,
    Notification,
    Reasoning,
    RequestConfig,
    ToolCall,
    ToolResult,
)
from podactors.llm.anthropic import AnthropicProvider
from podactors.llm.request import Request, ToolSpec

READ_FILE = ToolSpec(
    "read_file",
    "Read a file.",
    {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
)

HISTORY = [
    Message("system", "Summary of earlier work."),
    Message("user", "Read the config."),
    Reasoning("I need the file.", signature="sig-abc"),
    Message("assistant", "Reading it."),
    ToolCall("t1", "read_file", {"path": "a.toml"}),
    ToolCall("t2", "read_file", {"path": "b.toml"}),
    ToolResult("t1", "a: 3 lines", "x = 1"),
    ToolResult("t2", "b: missing", None, is_error=True),
    Notification("build finished", source="ci"),
    FileAttachment("notes.md", "remember the timeout"),
]


async def sent_body(fake_provider, request: Request, **kw):
    fake_provider.queue(Reply(body=fixture("anthropic_text_then_tool_use.sse")))
    provider = AnthropicProvider(
        model="claude-sonnet-4-5", base_url=fake_provider.url, api_key="k", **kw
    )
    with trio.fail_after(10):
        await provider.stream(request)
    await provider.aclose()
    return fake_provider.requests[-1]


async def test_request_body_carries_prompt_tools_and_config(fake_provider):
    config = RequestConfig(max_tokens=1000, temperature=0.3, stop_sequences=("END",))
    request = Request("Be terse.", HISTORY, tools=[READ_FILE], config=config)
    received = await sent_body(fake_provider, request)
    body = received.json()
    assert received.headers["x-api-key"] == "k"
    assert received.headers["anthropic-version"] == "2023-06-01"
    assert body["model"] == "claude-sonnet-4-5" and body["stream"] is True
    assert body["system"] == [{"type": "text", "text": "Be terse."}]
    assert body["tools"] == [
        {"name": "read_file", "description": "Read a file.", "input_schema": READ_FILE.parameters}
    ]
    assert (body["max_tokens"], body["temperature"], body["stop_sequences"]) == (1000, 0.3, ["END"])


async def test_tool_results_follow_their_calls_and_thinking_round_trips(fake_provider):
    body = (await sent_body(fake_provider, Request("p", HISTORY))).json()
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user"]
    user, assistant, results = body["messages"]
    assert [b["text"] for b in user["content"]] == [
        "<system>\nSummary of earlier work.\n</system>",
        "Read the config.",
    ]
    assert assistant["content"][0] == {
        "type": "thinking",
        "thinking": "I need the file.",
        "signature": "sig-abc",
    }
    calls = [b["id"] for b in assistant["content"] if b["type"] == "tool_use"]
    answered = [b["tool_use_id"] for b in results["content"] if b["type"] == "tool_result"]
    assert calls == answered == ["t1", "t2"]
    assert results["content"][0]["content"] == "x = 1"
    assert results["content"][1]["is_error"] is True
    assert results["content"][1]["content"] == "b: missing"  # pruned content: the summary
    texts = [b["text"] for b in results["content"] if b["type"] == "text"]
    assert texts[0].startswith('<notification source="ci">')
    assert texts[1].startswith('<file path="notes.md">')


async def test_cache_breakpoints_mark_the_summary_and_the_last_block(fake_provider):
    body = (await sent_body(fake_provider, Request("p", HISTORY, cache_breakpoint=0))).json()
    marked = [
        (i, j)
        for i, message in enumerate(body["messages"])
        for j, block in enumerate(message["content"])
        if "cache_control" in block
    ]
    last = len(body["messages"]) - 1
    assert marked == [(0, 0), (last, len(body["messages"][last]["content"]) - 1)]


async def test_reasoning_effort_enables_thinking_without_temperature(fake_provider):
    config = RequestConfig(max_tokens=1000, temperature=0.5, reasoning_effort="medium")
    body = (await sent_body(fake_provider, Request("p", HISTORY[:2], config=config))).json()
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert body["max_tokens"] > 8192 and "temperature" not in body


async def test_unsigned_thinking_and_empty_text_are_not_sent(fake_provider):
    history = [Message("user", "hi"), Reasoning("no signature"), Message("assistant", "")]
    history.append(Message("user", "again"))
    body = (await sent_body(fake_provider, Request("p", history))).json()
    assert [m["role"] for m in body["messages"]] == ["user", "user"]


async def test_thinking_stream_yields_signed_reasoning(fake_provider):
    events = [
        ("message_start", '{"type":"message_start","message":{"usage":{"input_tokens":5}}}'),
        (
            "content_block_start",
            '{"type":"content_block_start","index":0,'
            '"content_block":{"type":"thinking","thinking":""}}',
        ),
        (
            "content_block_delta",
            '{"type":"content_block_delta","index":0,'
            '"delta":{"type":"thinking_delta","thinking":"Let me think."}}',
        ),
        (
            "content_block_delta",
            '{"type":"content_block_delta","index":0,'
            '"delta":{"type":"signature_delta","signature":"SIG"}}',
        ),
        ("content_block_stop", '{"type":"content_block_stop","index":0}'),
        (
            "content_block_start",
            '{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}',
        ),
        (
            "content_block_delta",
            '{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Done."}}',
        ),
        (
            "message_delta",
            '{"type":"message_delta","delta":{"stop_reason":"end_turn"},'
            '"usage":{"output_tokens":7}}',
        ),
        ("message_stop", '{"type":"message_stop"}'),
    ]
    body = "".join(f"event: {name}\ndata: {data}\n\n" for name, data in events).encode()
    fake_provider.queue(Reply(body=body))
    provider = AnthropicProvider(model="m", base_url=fake_provider.url)
    with trio.fail_after(10):
        response = await provider.stream(Request("p", [Message("user", "hi")]))
    await provider.aclose()
    assert response.items == [
        Reasoning("Let me think.", signature="SIG"),
        Message("assistant", "Done."),
    ]
    assert (response.usage.input_total, response.usage.output) == (5, 7)
    assert "x-api-key" not in fake_provider.requests[0].headers


async def test_error_event_mid_stream_keeps_the_partial_text(fake_provider):
    fake_provider.queue(
        Reply(body=fixture("anthropic_error_midstream.sse"), headers={"request-id": "r1"})
    )
    provider = AnthropicProvider(model="m", base_url=fake_provider.url, api_key="k")
    with pytest.raises(StreamInterrupted) as err, trio.fail_after(10):
        await provider.stream(Request("p", [Message("user", "hi")]))
    await provider.aclose()
    assert "overloaded_error: Overloaded" in str(err.value)
    assert err.value.retryable and err.value.request_id == "r1"
    assert err.value.partial == [Message("assistant", "Working on")]
    assert len(fake_provider.requests) == 1
