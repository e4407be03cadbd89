"""OpenAI Responses request bodies as the server receives them, and stream specifics."""

from __future__ import annotations

import json

import pytest
import trio
from fake_provider import Reply, fixture

from podactors.errors import StreamInterrupted
from podactors.items import (
    Message,
    Notification,
    Reasoning,
    RequestConfig,
    ToolCall,
    ToolResult,
)
from podactors.llm.openai_responses import DEFAULT_BASE_URL, OpenAIResponsesProvider
from podactors.llm.request import Request, ToolSpec

READ_FILE = ToolSpec(
    "read_file",
    "Read a file.",
    {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
)

HISTORY = [
    Message("user", "Read the config."),
    Reasoning("I need the file.", encrypted="ENC-1"),
    Message("assistant", "Reading it."),
    ToolCall("call_1", "read_file", {"path": "a.toml"}),
    ToolResult("call_1", "a: 3 lines", "x = 1"),
    Notification("build finished", source="ci"),
]


def sse(*events: dict[str, object]) -> bytes:
    """An SSE body of named events, one per JSON payload."""
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def completed(output: list[dict[str, object]] | None = None) -> dict[str, object]:
    usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 5}
    response = {"status": "completed", "output": output or [], "usage": usage}
    return {"type": "response.completed", "response": response}


def text_delta(text: str) -> dict[str, object]:
    return {"type": "response.output_text.delta", "output_index": 1, "delta": text}


def provider(fake_provider, **kw) -> OpenAIResponsesProvider:
    return OpenAIResponsesProvider(model="gpt-5", base_url=fake_provider.url, **kw)


async def run(fake_provider, request: Request, body: bytes, **kw):
    fake_provider.queue(Reply(body=body))
    llm = provider(fake_provider, **kw)
    try:
        with trio.fail_after(10):
            return await llm.stream(request)
    finally:
        await llm.aclose()


async def sent_body(fake_provider, request: Request, **kw):
    await run(fake_provider, request, fixture("openai_responses_text_then_function_call.sse"), **kw)
    return fake_provider.requests[-1]


def test_no_base_url_defaults_to_the_openai_api():
    assert OpenAIResponsesProvider(model="gpt-5").base_url == DEFAULT_BASE_URL


async def test_request_carries_instructions_tools_and_config(fake_provider):
    config = RequestConfig(max_tokens=1000, temperature=0.3, stop_sequences=("END",))
    request = Request("Be terse.", HISTORY, tools=[READ_FILE], config=config, cache_key="sess-1")
    received = await sent_body(fake_provider, request, api_key="k")
    body = received.json()
    assert received.path == "/responses"
    assert received.headers["authorization"] == "Bearer k"
    assert body["model"] == "gpt-5"
    assert (body["stream"], body["store"]) == (True, False)
    assert body["instructions"] == "Be terse."
    assert body["tools"] == [
        {
            "type": "function",
            "name": "read_file",
            "description": "Read a file.",
            "parameters": READ_FILE.parameters,
        }
    ]
    assert (body["max_output_tokens"], body["temperature"]) == (1000, 0.3)
    assert body["prompt_cache_key"] == "sess-1"
    assert "stop" not in body and "previous_response_id" not in body
    assert "reasoning" not in body and "include" not in body


async def test_history_becomes_input_items_in_order(fake_provider):
    body = (await sent_body(fake_provider, Request("p", HISTORY))).json()
    assert body["input"] == [
        {"role": "user", "content": [{"type": "input_text", "text": "Read the config."}]},
        {
            "type": "reasoning",
            "encrypted_content": "ENC-1",
            "summary": [{"type": "summary_text", "text": "I need the file."}],
        },
        {"role": "assistant", "content": [{"type": "output_text", "text": "Reading it."}]},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "read_file",
            "arguments": '{"path":"a.toml"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "x = 1"},
        {
            "role": "user",
            "content": [
                {
                    "type": "input_text",
                    "text": '<notification source="ci">\nbuild finished\n</notification>',
                }
            ],
        },
    ]


async def test_notification_before_result_is_sent_after_the_result(fake_provider):
    history = [
        Message("user", "go"),
        ToolCall("c1", "read_file", {"path": "a"}),
        Notification("late"),
        ToolResult("c1", "a: pruned", None, is_error=True),
    ]
    body = (await sent_body(fake_provider, Request("p", history))).json()
    kinds = [item.get("type", item.get("role")) for item in body["input"]]
    assert kinds == ["user", "function_call", "function_call_output", "user"]
    assert body["input"][2]["output"] == "a: pruned"  # pruned content: the summary


async def test_unencrypted_reasoning_and_empty_text_are_not_sent(fake_provider):
    history = [
        Message("user", "hi"),
        Reasoning("no blob", signature="sig"),
        Message("assistant", ""),
        Reasoning("", encrypted="ENC-2"),
    ]
    body = (await sent_body(fake_provider, Request("p", history))).json()
    assert body["input"][1:] == [{"type": "reasoning", "encrypted_content": "ENC-2", "summary": []}]
    assert "instructions" in body


async def test_reasoning_effort_asks_for_encrypted_reasoning_without_temperature(fake_provider):
    config = RequestConfig(temperature=0.5, reasoning_effort="high")
    body = (await sent_body(fake_provider, Request("p", HISTORY[:1], config=config))).json()
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["include"] == ["reasoning.encrypted_content"]
    assert "temperature" not in body and "max_output_tokens" not in body


async def test_no_api_key_sends_no_authorization(fake_provider):
    await sent_body(fake_provider, Request("p", HISTORY[:1]))
    assert "authorization" not in fake_provider.requests[0].headers


async def test_reasoning_stream_gives_encrypted_reasoning_then_the_message(fake_provider):
    reasoning = {"id": "rs_1", "type": "reasoning", "summary": []}
    body = sse(
        {"type": "response.created", "response": {"status": "in_progress"}},
        {"type": "response.output_item.added", "output_index": 0, "item": reasoning},
        {"type": "response.reasoning_summary_part.added", "output_index": 0, "summary_index": 0},
        {"type": "response.reasoning_summary_text.delta", "output_index": 0, "delta": "Think"},
        {"type": "response.reasoning_summary_text.delta", "output_index": 0, "delta": "ing."},
        {"type": "response.reasoning_summary_part.added", "output_index": 0, "summary_index": 1},
        {"type": "response.reasoning_summary_text.delta", "output_index": 0, "delta": "More."},
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": {**reasoning, "encrypted_content": "ENC-OUT"},
        },
        {"type": "response.output_item.added", "output_index": 1, "item": {"type": "message"}},
        text_delta("Done."),
        completed(),
    )
    response = await run(fake_provider, Request("p", [Message("user", "hi")]), body)
    assert response.items == [
        Reasoning("Thinking.\n\nMore.", encrypted="ENC-OUT"),
        Message("assistant", "Done."),
    ]
    assert response.stop_reason == "end_turn"
    assert (response.usage.input_total, response.usage.output) == (10, 5)


async def test_two_reasoning_items_stay_apart(fake_provider):
    body = sse(
        {"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning"}},
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": {"type": "reasoning", "encrypted_content": "E1"},
        },
        {"type": "response.output_item.added", "output_index": 1, "item": {"type": "reasoning"}},
        {
            "type": "response.output_item.done",
            "output_index": 1,
            "item": {"type": "reasoning", "encrypted_content": "E2"},
        },
        text_delta("ok"),
        completed(),
    )
    response = await run(fake_provider, Request("p", [Message("user", "hi")]), body)
    assert response.items == [
        Reasoning("", encrypted="E1"),
        Reasoning("", encrypted="E2"),
        Message("assistant", "ok"),
    ]


async def test_response_failed_mid_stream_is_interrupted_with_partial_text(fake_provider):
    failure = {"status": "failed", "error": {"code": "server_error", "message": "bad luck"}}
    body = sse(
        text_delta("Working "),
        text_delta("on"),
        {"type": "response.failed", "response": failure},
    )
    with pytest.raises(StreamInterrupted) as err:
        await run(fake_provider, Request("p", [Message("user", "hi")]), body)
    assert "server_error: bad luck" in str(err.value)
    assert err.value.retryable and err.value.status == 200
    assert err.value.partial == [Message("assistant", "Working on")]


async def test_error_event_mid_stream_is_interrupted(fake_provider):
    body = sse(
        text_delta("Hal"),
        {"type": "error", "code": "rate_limit_exceeded", "message": "slow down"},
    )
    with pytest.raises(StreamInterrupted) as err:
        await run(fake_provider, Request("p", [Message("user", "hi")]), body)
    assert "rate_limit_exceeded: slow down" in str(err.value)
    assert err.value.partial == [Message("assistant", "Hal")]


async def test_response_incomplete_at_max_output_tokens_stops_at_max_tokens(fake_provider):
    incomplete = {
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "usage": {"input_tokens": 7, "output_tokens": 3},
    }
    body = sse(text_delta("Trunc"), {"type": "response.incomplete", "response": incomplete})
    response = await run(fake_provider, Request("p", [Message("user", "hi")]), body)
    assert response.items == [Message("assistant", "Trunc")]
    assert response.stop_reason == "max_tokens"
    assert (response.usage.input_total, response.usage.output) == (7, 3)


async def test_function_call_done_arguments_win_over_the_deltas(fake_provider):
    call = {"type": "function_call", "call_id": "c9", "name": "read_file", "arguments": ""}
    body = sse(
        {"type": "response.output_item.added", "output_index": 0, "item": call},
        {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": '{"pa'},
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": {**call, "arguments": '{"path":"z"}'},
        },
        completed([call]),
    )
    response = await run(fake_provider, Request("p", [Message("user", "hi")]), body)
    assert response.items == [ToolCall("c9", "read_file", {"path": "z"})]
    assert response.stop_reason == "tool_use"
