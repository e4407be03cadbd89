"""Gemini request bodies as the server receives them, and Gemini stream specifics."""

from __future__ import annotations

import json
from typing import Any

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
from podactors.llm.events import LlmResponse
from podactors.llm.gemini import GeminiProvider, strip_schema
from podactors.llm.request import Request, ToolSpec

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ReadFile",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "path": {"type": "string", "title": "Path"},
        "title": {"type": "string"},
        "ranges": {
            "type": "array",
            "items": {"type": "object", "additionalProperties": False, "properties": {}},
        },
    },
    "required": ["path"],
}
READ_FILE = ToolSpec("read_file", "Read a file.", SCHEMA)

HISTORY = [
    Message("user", "Read the config."),
    Reasoning("I need both files.", signature="sig-abc"),
    ToolCall("c1", "read_file", {"path": "a.toml"}),
    ToolCall("c2", "list_dir", {"path": "."}),
    ToolResult("c1", "a: 3 lines", "x = 1"),
    ToolResult("c2", "no such dir", None, is_error=True),
    Notification("build finished", source="ci"),
]


def sse(*chunks: dict[str, Any]) -> bytes:
    """A Gemini SSE body, one ``data:`` event per chunk."""
    return b"".join(b"data: %s\r\n\r\n" % json.dumps(c).encode() for c in chunks)


def chunk(*parts: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """A ``GenerateContentResponse`` chunk with these parts."""
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "responseId": "R1", **extra}


async def stream(fake_provider, request: Request, reply: Reply, **kw: Any) -> LlmResponse:
    fake_provider.queue(reply)
    provider = GeminiProvider(model="gemini-2.5-flash", base_url=fake_provider.url, **kw)
    try:
        with trio.fail_after(10):
            return await provider.stream(request)
    finally:
        await provider.aclose()


async def sent_body(fake_provider, request: Request) -> dict[str, Any]:
    reply = Reply(body=fixture("gemini_text_then_function_call.sse"))
    await stream(fake_provider, request, reply, api_key="k")
    body: dict[str, Any] = fake_provider.requests[-1].json()
    return body


async def test_api_key_is_sent_in_a_header_never_in_the_url(fake_provider):
    await sent_body(fake_provider, Request("p", [Message("user", "hi")]))
    [received] = fake_provider.requests
    assert received.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert received.headers["x-goog-api-key"] == "k"


async def test_no_api_key_sends_no_key_header(fake_provider):
    reply = Reply(body=fixture("gemini_text_then_function_call.sse"))
    await stream(fake_provider, Request("p", [Message("user", "hi")]), reply)
    assert "x-goog-api-key" not in fake_provider.requests[0].headers


async def test_request_model_overrides_the_provider_model_in_the_url(fake_provider):
    config = RequestConfig(model="gemini-2.5-pro")
    await sent_body(fake_provider, Request("p", [Message("user", "hi")], config=config))
    assert fake_provider.requests[0].path.startswith("/v1beta/models/gemini-2.5-pro:")


async def test_request_body_carries_prompt_tools_and_config(fake_provider):
    config = RequestConfig(max_tokens=1000, temperature=0.3, stop_sequences=("END",))
    body = await sent_body(fake_provider, Request("Be terse.", HISTORY, [READ_FILE], config))
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    [declaration] = body["tools"][0]["functionDeclarations"]
    assert (declaration["name"], declaration["description"]) == ("read_file", "Read a file.")
    assert body["generationConfig"] == {
        "maxOutputTokens": 1000,
        "temperature": 0.3,
        "stopSequences": ["END"],
    }


async def test_tool_schema_loses_the_keys_gemini_rejects_but_keeps_property_names(fake_provider):
    body = await sent_body(fake_provider, Request("p", HISTORY, [READ_FILE]))
    parameters = body["tools"][0]["functionDeclarations"][0]["parameters"]
    assert parameters == strip_schema(SCHEMA)
    assert parameters == {
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "title": {"type": "string"},
            "ranges": {"type": "array", "items": {"type": "object", "properties": {}}},
        },
        "required": ["path"],
    }


async def test_function_responses_follow_their_calls_named_after_them(fake_provider):
    body = await sent_body(fake_provider, Request("p", HISTORY))
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    user, model, results = body["contents"]
    assert user["parts"] == [{"text": "Read the config."}]
    calls = [p["functionCall"] for p in model["parts"]]
    assert calls == [
        {"name": "read_file", "args": {"path": "a.toml"}},
        {"name": "list_dir", "args": {"path": "."}},
    ]
    assert results["parts"][:2] == [
        {"functionResponse": {"name": "read_file", "response": {"content": "x = 1"}}},
        {"functionResponse": {"name": "list_dir", "response": {"error": "no such dir"}}},
    ]
    assert results["parts"][2]["text"].startswith('<notification source="ci">')


async def test_thought_signature_rides_on_the_next_function_call_part(fake_provider):
    body = await sent_body(fake_provider, Request("p", HISTORY))
    model = body["contents"][1]
    assert model["parts"][0]["thoughtSignature"] == "sig-abc"
    assert "thoughtSignature" not in model["parts"][1]
    assert "I need both files." not in json.dumps(body)  # reasoning text is not sent back


async def test_trailing_signature_gets_an_empty_text_part_and_unsigned_thinking_none(
    fake_provider,
):
    history = [
        Message("user", "hi"),
        Reasoning("unsigned"),
        Message("assistant", "Hello."),
        Reasoning("", signature="sig-end"),
        Message("user", "again"),
    ]
    body = await sent_body(fake_provider, Request("p", history))
    assert body["contents"][1] == {
        "role": "model",
        "parts": [{"text": "Hello."}, {"text": "", "thoughtSignature": "sig-end"}],
    }


async def test_reasoning_effort_sets_a_thinking_budget_with_thoughts_included(fake_provider):
    config = RequestConfig(reasoning_effort="high")
    body = await sent_body(fake_provider, Request("p", [Message("user", "hi")], config=config))
    assert body["generationConfig"] == {
        "thinkingConfig": {"thinkingBudget": 24576, "includeThoughts": True}
    }


async def test_thought_parts_stream_into_signed_reasoning_before_the_call(fake_provider):
    body = sse(
        chunk({"text": "Let me think", "thought": True}),
        chunk({"text": " it over.", "thought": True}),
        chunk(
            {"functionCall": {"name": "ls", "args": {}}, "thoughtSignature": "SIG"},
            {"functionCall": {"id": "given", "name": "ls", "args": {"path": "a"}}},
            finish="STOP",
            usageMetadata={
                "promptTokenCount": 10,
                "candidatesTokenCount": 4,
                "thoughtsTokenCount": 6,
            },
        ),
    )
    response = await stream(fake_provider, Request("p", [Message("user", "hi")]), Reply(body=body))
    assert response.items == [
        Reasoning("Let me think it over.", signature="SIG"),
        ToolCall("call_R1_0", "ls", {}),
        ToolCall("given", "ls", {"path": "a"}),
    ]
    assert response.stop_reason == "tool_use"
    assert (response.usage.input_total, response.usage.output) == (10, 10)


async def test_signature_from_the_stream_round_trips_on_the_same_part(fake_provider):
    body = sse(
        chunk({"text": "Thinking.", "thought": True}),
        chunk({"text": "Answer.", "thoughtSignature": "SIG"}, finish="STOP"),
    )
    history: list[Any] = [Message("user", "hi")]
    response = await stream(fake_provider, Request("p", history), Reply(body=body))
    assert response.items == [
        Reasoning("Thinking.", signature="SIG"),
        Message("assistant", "Answer."),
    ]
    assert response.stop_reason == "end_turn"
    sent = await sent_body(fake_provider, Request("p", [*history, *response.items]))
    assert sent["contents"][1]["parts"] == [{"text": "Answer.", "thoughtSignature": "SIG"}]


async def test_error_chunk_mid_stream_interrupts_with_the_partial_text(fake_provider):
    body = sse(
        chunk({"text": "Working on"}),
        {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
    )
    reply = Reply(body=body, headers={"x-request-id": "r1"})
    with pytest.raises(StreamInterrupted) as err:
        await stream(fake_provider, Request("p", [Message("user", "hi")]), reply)
    assert "UNAVAILABLE: The model is overloaded." in str(err.value)
    assert err.value.partial == [Message("assistant", "Working on")]
    assert len(fake_provider.requests) == 1


async def test_max_tokens_finish_reason_stops_with_max_tokens(fake_provider):
    body = sse(chunk({"text": "Cut sh"}, finish="MAX_TOKENS"))
    response = await stream(fake_provider, Request("p", [Message("user", "hi")]), Reply(body=body))
    assert response.stop_reason == "max_tokens"
    assert response.items == [Message("assistant", "Cut sh")]


@pytest.mark.parametrize(
    ("finish", "expected"),
    [("STOP", "end_turn"), ("SAFETY", "refusal"), ("RECITATION", "refusal"), ("OTHER", "other")],
)
async def test_finish_reason_maps_to_its_stop_reason(fake_provider, finish, expected):
    body = sse(chunk({"text": "x"}, finish=finish))
    response = await stream(fake_provider, Request("p", [Message("user", "hi")]), Reply(body=body))
    assert response.stop_reason == expected


async def test_blocked_prompt_without_candidates_is_a_refusal(fake_provider):
    body = sse({"promptFeedback": {"blockReason": "SAFETY"}, "responseId": "R1"})
    response = await stream(fake_provider, Request("p", [Message("user", "hi")]), Reply(body=body))
    assert (response.stop_reason, response.items) == ("refusal", [])


async def test_stream_without_a_finish_reason_is_interrupted(fake_provider):
    body = sse(chunk({"text": "Half an answ"}))
    with pytest.raises(StreamInterrupted) as err:
        await stream(fake_provider, Request("p", [Message("user", "hi")]), Reply(body=body))
    assert err.value.partial == [Message("assistant", "Half an answ")]
