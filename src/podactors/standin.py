"""A stand-in for the Anthropic Messages API on loopback, for demos, tests and benches.

It speaks the real wire format over real HTTP (h11 on trio sockets): each request gets
the next :class:`~podactors.llm.scripted.ScriptedReply` rendered as a Messages SSE
stream, text and thinking streamed word by word. Requests are recorded, so a caller
can see exactly what a provider would have received.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import h11
import msgspec
import trio

from podactors.llm.scripted import ScriptedReply

MAX_REQUEST_BYTES = 64 * 1024 * 1024


class StandinServer:
    """Serve scripted replies in Anthropic's SSE format; bind with :meth:`serve`.

    When the replies run out, requests get HTTP 500 with an Anthropic error body.
    """

    def __init__(self, replies: list[ScriptedReply], *, host: str = "127.0.0.1"):
        self.replies = list(replies)
        self.host = host
        self.port = 0
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        """The base URL to give an Anthropic provider."""
        return f"http://{self.host}:{self.port}"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on an ephemeral port until cancelled; ``started()`` once bound."""
        listeners = await trio.open_tcp_listeners(0, host=self.host)
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        async with stream:
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
            while True:
                try:
                    body = await _read_request(conn, stream)
                except (h11.RemoteProtocolError, trio.BrokenResourceError):
                    return
                if body is None:
                    return
                try:
                    await self._respond(conn, stream, body)
                except trio.BrokenResourceError:  # the client hung up mid-stream
                    return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()

    async def _respond(self, conn: h11.Connection, stream: trio.SocketStream, body: bytes) -> None:
        try:
            request = msgspec.json.decode(body)
        except msgspec.DecodeError:
            request = {}
        self.requests.append(request)
        played = len(self.requests) - 1
        if played >= len(self.replies) or not isinstance(request, dict):
            error = {"type": "error", "error": {"type": "api_error", "message": "no reply left"}}
            await _send(conn, stream, 500, "application/json", [msgspec.json.encode(error)])
            return
        events = render_sse(self.replies[played], played, request)
        await _send(conn, stream, 200, "text/event-stream", events)


async def _read_request(conn: h11.Connection, stream: trio.SocketStream) -> bytes | None:
    """The next request's body, or ``None`` when the client closed the connection."""
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def _send(
    conn: h11.Connection, stream: trio.SocketStream, status: int, content_type: str, chunks: Any
) -> None:
    headers = [("content-type", content_type), ("request-id", f"standin-{id(conn):x}")]
    await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
    for chunk in chunks:
        await stream.send_all(conn.send(h11.Data(data=chunk)))
    await stream.send_all(conn.send(h11.EndOfMessage()))


def render_sse(reply: ScriptedReply, played: int, request: dict[str, Any]) -> Iterator[bytes]:
    """``reply`` as the SSE events of one Messages API stream, one chunk per event."""
    usage = reply.usage
    prompt = (
        usage.input_tokens
        if usage and usage.input_tokens is not None
        else len(msgspec.json.encode(request.get("messages", []))) // 4
    )
    cache_read = usage.cache_read if usage else 0
    start_usage = {
        "input_tokens": max(0, prompt - cache_read),
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": usage.cache_write if usage else 0,
        "output_tokens": 1,
    }
    yield _event(
        "message_start", {"message": {"id": f"msg_standin_{played}", "usage": start_usage}}
    )
    index = 0
    if reply.thinking:
        yield from _block(
            index,
            {"type": "thinking", "thinking": ""},
            "thinking_delta",
            "thinking",
            reply.thinking,
        )
        yield _event(
            "content_block_delta",
            {
                "index": index,
                "delta": {"type": "signature_delta", "signature": f"standin-sig-{played}"},
            },
        )
        yield _event("content_block_stop", {"index": index})
        index += 1
    if reply.text:
        yield from _block(index, {"type": "text", "text": ""}, "text_delta", "text", reply.text)
        yield _event("content_block_stop", {"index": index})
        index += 1
    for n, call in enumerate(reply.tool_calls):
        arguments = msgspec.json.encode(call.arguments).decode()
        block = {
            "type": "tool_use",
            "id": f"toolu_standin_{played}_{n}",
            "name": call.name,
            "input": {},
        }
        yield _event("content_block_start", {"index": index, "content_block": block})
        half = len(arguments) // 2
        for piece in ("", arguments[:half], arguments[half:]):
            yield _event(
                "content_block_delta",
                {"index": index, "delta": {"type": "input_json_delta", "partial_json": piece}},
            )
        yield _event("content_block_stop", {"index": index})
        index += 1
    output = (
        usage.output_tokens
        if usage and usage.output_tokens is not None
        else max(1, len(reply.text) // 4)
    )
    stop = "tool_use" if reply.tool_calls else "end_turn"
    yield _event(
        "message_delta", {"delta": {"stop_reason": stop}, "usage": {"output_tokens": output}}
    )
    yield _event("message_stop", {})


def _block(index: int, start: dict[str, Any], kind: str, field: str, text: str) -> Iterator[bytes]:
    yield _event("content_block_start", {"index": index, "content_block": start})
    for word in re.findall(r"\S+\s*|\s+", text):
        yield _event("content_block_delta", {"index": index, "delta": {"type": kind, field: word}})


def _event(name: str, data: dict[str, Any]) -> bytes:
    payload = msgspec.json.encode({"type": name, **data})
    return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"
