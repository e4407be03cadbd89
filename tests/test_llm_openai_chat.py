"""Chat Completions request bodies as the server receives them, and stream specifics."""

from __future__ import annotations

import json

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
from podactors.llm.events import TokenUsage
from podactors.llm.openai_chat import OpenAIChatProvider
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

HI = Request("p", [Message("user", "hi")])


def make(url: str, api_key: str | None = "k") -> OpenAIChatProvider:
    return OpenAIChatProvider(model="gpt-4.1", base_url=url, api_key=api_key)


async def stream(fake_provider, body: bytes, request: Request = HI, **kw):
    fake_provider.queue(Reply(body=body))
    provider = make(fake_provider.url, **kw)
    try:
        with trio.fail_after(10):
            return await provider.stream(request)
    finally:
        await provider.aclose()


async def sent(fake_provider, request: Request, **kw):
    await stream(fake_provider, fixture("openai_chat_text.sse"), request, **kw)
    return fake_provider.requests[-1]


def sse(*chunks: object, done: bool = True) -> bytes:
    """An SSE body of chat completion chunks, ``[DONE]`` last unless ``done`` is false."""
    lines = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks]
    if done:
        lines.append("data: [DONE]\n\n")
    return "".join(lines).encode()


def delta(finish: str | None = None, **fields: object) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": finish}]}


async def test_request_carries_prompt_tools_and_config(fake_provider):
    config = RequestConfig(
        max_tokens=1000, temperature=0.3, stop_sequences=("END",), reasoning_effort="low"
    )
    request = Request("Be terse.", HISTORY, tools=[READ_FILE], config=config, cache_key="s-1")
    received = await sent(fake_provider, request)
    body = received.json()
    assert received.path == "/chat/completions"
    assert received.headers["authorization"] == "Bearer k"
    assert body["model"] == "gpt-4.1" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"][0] == {"role": "system", "content": "Be terse."}
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "description": "Read a file.",
                "parameters": READ_FILE.parameters,
            },
        }
    ]
    assert body["max_completion_tokens"] == 1000 and body["temperature"] == 0.3
    assert body["stop"] == ["END"] and body["reasoning_effort"] == "low"
    assert body["prompt_cache_key"] == "s-1"


async def test_unset_options_are_left_out(fake_provider):
    body = (await sent(fake_provider, Request("", [Message("user", "hi")]))).json()
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    for key in ("tools", "max_completion_tokens", "temperature", "stop", "prompt_cache_key"):
        assert key not in body
    assert "reasoning_effort" not in body


async def test_config_model_overrides_the_provider_model(fake_provider):
    request = Request("p", [Message("user", "hi")], config=RequestConfig(model="qwen3"))
    assert (await sent(fake_provider, request)).json()["model"] == "qwen3"


async def test_tool_results_become_tool_messages_right_after_their_calls(fake_provider):
    body = (await sent(fake_provider, Request("p", HISTORY))).json()
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "tool", "user"]
    _, user, assistant, first, second, after = body["messages"]
    assert user["content"] == "<system>\nSummary of earlier work.\n</system>\n\nRead the config."
    assert assistant["content"] == "Reading it."  # the reasoning is dropped
    assert assistant["tool_calls"] == [
        {
            "id": "t1",
            "type": "function",
            "function": {"name": "read_file", "arguments": '{"path":"a.toml"}'},
        },
        {
            "id": "t2",
            "type": "function",
            "function": {"name": "read_file", "arguments": '{"path":"b.toml"}'},
        },
    ]
    assert first == {"role": "tool", "tool_call_id": "t1", "content": "x = 1"}
    assert second == {"role": "tool", "tool_call_id": "t2", "content": "b: missing"}
    assert after["content"].startswith('<notification source="ci">\nbuild finished')
    assert '\n\n<file path="notes.md">' in after["content"]


async def test_assistant_turn_without_text_has_null_content(fake_provider):
    history = [
        Message("user", "go"),
        Reasoning("thinking only"),
        ToolCall("c1", "grep", {}),
        ToolResult("c1", "done", "ok"),
    ]
    messages = (await sent(fake_provider, Request("", history))).json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["content"] is None and messages[1]["tool_calls"][0]["id"] == "c1"


async def test_thinking_only_and_empty_assistant_turns_are_not_sent(fake_provider):
    history = [Message("user", "hi"), Reasoning("hmm"), Message("assistant", "")]
    history.append(Message("user", "again"))
    messages = (await sent(fake_provider, Request("", history))).json()["messages"]
    assert [m["role"] for m in messages] == ["user", "user"]


async def test_no_api_key_sends_no_authorization_header(fake_provider):
    received = await sent(fake_provider, HI, api_key=None)
    assert "authorization" not in received.headers


async def test_text_fixture_assembles_into_a_message_with_cached_usage(fake_provider):
    response = await stream(fake_provider, fixture("openai_chat_text.sse"))
    assert response.items == [Message("assistant", "The timeout is set to 30 seconds.")]
    assert response.stop_reason == "end_turn"
    assert response.usage == TokenUsage(2520, 2304, 0, 9)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_deltas_become_reasoning_before_the_text(fake_provider, field):
    body = sse(
        delta(**{field: "Let me "}),
        delta(**{field: "think."}),
        delta(content="Done."),
        delta("stop"),
    )
    response = await stream(fake_provider, body)
    assert response.items == [Reasoning("Let me think."), Message("assistant", "Done.")]


async def test_finish_without_done_marker_on_clean_end_succeeds(fake_provider):
    usage = {"prompt_tokens": 7, "completion_tokens": 2}
    body = sse(delta(content="Hi."), delta("stop"), {"choices": [], "usage": usage}, done=False)
    response = await stream(fake_provider, body)
    assert response.items == [Message("assistant", "Hi.")]
    assert response.usage == TokenUsage(7, 0, 0, 2)


async def test_clean_end_without_finish_reason_is_interrupted(fake_provider):
    with pytest.raises(StreamInterrupted) as err:
        await stream(fake_provider, sse(delta(content="Half"), done=False))
    assert err.value.partial == [Message("assistant", "Half")]


async def test_error_chunk_mid_stream_keeps_the_partial_text(fake_provider):
    error = {"error": {"message": "upstream overloaded", "type": "server_error"}}
    with pytest.raises(StreamInterrupted) as err:
        await stream(fake_provider, sse(delta(content="Working on"), error))
    assert "server_error: upstream overloaded" in str(err.value)
    assert err.value.partial == [Message("assistant", "Working on")]
    assert len(fake_provider.requests) == 1


async def test_whole_tool_call_with_finish_in_one_chunk_is_assembled(fake_provider):
    call = {"index": 0, "id": "c9", "function": {"name": "grep", "arguments": '{"q": 1}'}}
    response = await stream(fake_provider, sse(delta("tool_calls", tool_calls=[call])))
    assert response.items == [ToolCall("c9", "grep", {"q": 1})]
    assert response.stop_reason == "tool_use"


async def test_reused_index_with_a_new_id_starts_a_new_call(fake_provider):
    first = {"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}
    second = {"index": 0, "id": "b", "function": {"name": "g", "arguments": '{"x": 2}'}}
    body = sse(delta(tool_calls=[first]), delta(tool_calls=[second]), delta("tool_calls"))
    response = await stream(fake_provider, body)
    assert response.items == [ToolCall("a", "f", {}), ToolCall("b", "g", {"x": 2})]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        ("function_call", "tool_use"),
        ("eos", "other"),
    ],
)
async def test_finish_reasons_map_to_stop_reasons(fake_provider, reason, expected):
    response = await stream(fake_provider, sse(delta(content="x"), delta(reason)))
    assert response.stop_reason == expected
