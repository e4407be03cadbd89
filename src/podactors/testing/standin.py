"""Stand-ins for model providers on loopback: real HTTP, scripted answers.

:class:`StandinServer` speaks the Anthropic Messages API. Give it the replies to play,
start it in a nursery and point an Anthropic provider (or a pod's ``[model] base_url``)
at its :attr:`~LoopbackServer.url`::

    server = StandinServer([ScriptedReply(text="Hello."), ScriptedReply(text="Bye.")])
    await nursery.start(server.serve)
    provider = AnthropicProvider(model="m", base_url=server.url, api_key="unused")

Each request gets the next :class:`~podactors.llm.scripted.ScriptedReply` as a Messages
SSE stream (text and thinking streamed word by word, tool arguments in pieces), and its
JSON body is appended to :attr:`StandinServer.requests`, so a test sees exactly what a
provider would have received. Once the replies run out, requests get HTTP 500 with an
Anthropic error body.

:class:`LoopbackServer` is the HTTP/1.1 serving loop underneath (h11 on trio sockets):
subclass it and implement :meth:`~LoopbackServer.respond` for a stand-in of another wire
format. Every response body goes out with chunked transfer encoding, one chunk per item
of :attr:`HttpResponse.chunks`, so a client sees the byte boundaries the stand-in chose.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs
import h11
import msgspec
import trio

from podactors.llm.scripted import ScriptedReply

__all__ = [
    "MAX_REQUEST_BYTES",
    "HttpRequest",
    "HttpResponse",
    "LoopbackServer",
    "StandinServer",
    "render_sse",
]

#: The largest request head (request line and headers) a :class:`LoopbackServer` accepts.
MAX_REQUEST_BYTES = 64 * 1024 * 1024
_RECEIVE_BYTES = 65536


@attrs.frozen
class HttpRequest:
    """A request a :class:`LoopbackServer` received.

    ``path`` is the request target (query string included); ``headers`` maps lower-cased
    names to values.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return msgspec.json.decode(self.body)


@attrs.frozen
class HttpResponse:
    """What :meth:`LoopbackServer.respond` answers.

    Each item of ``chunks`` is sent as one HTTP chunk, as it is produced. ``complete=False``
    drops the connection after the last chunk without ending the body, like a server that
    died mid-response.
    """

    status: int
    headers: Sequence[tuple[str, str]] = ()
    chunks: Iterable[bytes] = ()
    complete: bool = True


class LoopbackServer(abc.ABC):
    """An HTTP/1.1 server on an ephemeral loopback port that answers with :meth:`respond`.

    Start it with ``await nursery.start(server.serve)``; once that returns, :attr:`url` is
    the base URL to give a client. Connections are kept alive between requests unless a
    response says ``connection: close``.
    """

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0

    @property
    def url(self) -> str:
        """``http://host:port``, valid once :meth:`serve` has started."""
        return f"http://{self.host}:{self.port}"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on an ephemeral port until cancelled; ``started()`` once bound."""
        listeners = await trio.open_tcp_listeners(0, host=self.host)
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._connection, listeners)

    @abc.abstractmethod
    async def respond(self, request: HttpRequest) -> HttpResponse:
        """The response to ``request``; called once per request, in arrival order."""

    async def _connection(self, stream: trio.SocketStream) -> None:
        async with stream:
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
            while True:
                try:
                    request = await _read_request(conn, stream)
                except (h11.RemoteProtocolError, trio.BrokenResourceError):
                    return
                if request is None:
                    return
                response = await self.respond(request)
                try:
                    await _send(conn, stream, response)
                except trio.BrokenResourceError:  # the client hung up mid-response
                    return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()


async def _next_event(conn: h11.Connection, stream: trio.SocketStream) -> object:
    while (event := conn.next_event()) is h11.NEED_DATA:
        conn.receive_data(await stream.receive_some(_RECEIVE_BYTES))
    return event


async def _read_request(conn: h11.Connection, stream: trio.SocketStream) -> HttpRequest | None:
    """The next request, or ``None`` when the client closed the connection."""
    head = await _next_event(conn, stream)
    if not isinstance(head, h11.Request):
        return None
    body = bytearray()
    while isinstance(event := await _next_event(conn, stream), h11.Data):
        body += event.data
    if not isinstance(event, h11.EndOfMessage):
        return None
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in head.headers}
    return HttpRequest(head.method.decode(), head.target.decode(), headers, bytes(body))


async def _send(conn: h11.Connection, stream: trio.SocketStream, response: HttpResponse) -> None:
    head = h11.Response(status_code=response.status, headers=list(response.headers))
    await stream.send_all(conn.send(head))
    for chunk in response.chunks:
        await stream.send_all(conn.send(h11.Data(data=chunk)))
    if response.complete:
        await stream.send_all(conn.send(h11.EndOfMessage()))


class StandinServer(LoopbackServer):
    """The Anthropic Messages API on loopback, answering with scripted replies in order.

    ``replies`` are played one per request. ``requests`` records the JSON body of every
    request received (``{}`` for a body that is not JSON), in order, whether or not a
    reply was left for it.
    """

    def __init__(self, replies: Iterable[ScriptedReply], *, host: str = "127.0.0.1") -> None:
        super().__init__(host=host)
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []

    async def respond(self, request: HttpRequest) -> HttpResponse:
        """The next reply as a Messages SSE stream, or a 500 once the replies ran out."""
        try:
            body = request.json()
        except msgspec.DecodeError:
            body = {}
        self.requests.append(body)
        played = len(self.requests) - 1
        headers = [("request-id", f"standin-{played}")]
        if played >= len(self.replies) or not isinstance(body, dict):
            error = {"type": "error", "error": {"type": "api_error", "message": "no reply left"}}
            headers.append(("content-type", "application/json"))
            return HttpResponse(500, headers, [msgspec.json.encode(error)])
        headers.append(("content-type", "text/event-stream"))
        return HttpResponse(200, headers, render_sse(self.replies[played], played, body))


def render_sse(reply: ScriptedReply, played: int, request: dict[str, Any]) -> Iterator[bytes]:
    """``reply`` as the SSE events of one Messages API stream, one chunk per event.

    ``played`` (the reply's index) goes into the message, signature and tool-call ids;
    without scripted usage, token counts are estimated from ``request``'s messages and the
    reply's text (four bytes a token).
    """
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
