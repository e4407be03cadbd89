"""A provider stand-in on loopback: replays scripted HTTP responses byte for byte.

Bodies go out with chunked transfer encoding, one chunk per piece of ``split``, so a
client sees an event cut at exactly the byte boundaries a test asks for. Every request
is recorded (path, headers, JSON body) for the test to assert on.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import deque
from pathlib import Path
from typing import Any

import attrs
import msgspec
import trio

FIXTURES = Path(__file__).with_name("fixtures") / "sse"


def fixture(name: str) -> bytes:
    """The bytes of one of the shared SSE fixtures."""
    return (FIXTURES / name).read_bytes()


@attrs.frozen
class Reply:
    """One scripted response. ``split`` cuts the body into chunks: an int is the chunk
    size (``1``: every byte its own chunk), a tuple the offsets to cut at, ``None`` one
    chunk. ``cut_after`` drops the connection after that many body bytes, without the
    chunked terminator."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = attrs.field(factory=dict)
    split: int | tuple[int, ...] | None = None
    cut_after: int | None = None


@attrs.frozen
class Received:
    """A request the server saw."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


class FakeProvider:
    """Serve queued replies in order; an empty queue answers 500."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Received] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                received = await _read_request(stream)
            except (trio.BrokenResourceError, ValueError):
                return
            self.requests.append(received)
            reply = self.replies.popleft() if self.replies else Reply(500, b'{"error":"empty"}')
            with contextlib.suppress(trio.BrokenResourceError):
                await _write_reply(stream, reply)


async def _read_request(stream: trio.SocketStream) -> Received:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise ValueError("connection closed before the request ended")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        body += await stream.receive_some(65536)
    return Received(method, path, headers, body)


async def _write_reply(stream: trio.SocketStream, reply: Reply) -> None:
    content_type = "text/event-stream" if reply.status < 400 else "application/json"
    headers = {"content-type": content_type, "connection": "close", **reply.headers}
    head = [f"HTTP/1.1 {reply.status} X"] + [f"{k}: {v}" for k, v in headers.items()]
    head.append("transfer-encoding: chunked")
    await stream.send_all(("\r\n".join(head) + "\r\n\r\n").encode())
    body = reply.body if reply.cut_after is None else reply.body[: reply.cut_after]
    for piece in _pieces(body, reply.split):
        await stream.send_all(b"%x\r\n%s\r\n" % (len(piece), piece))
    if reply.cut_after is None:
        await stream.send_all(b"0\r\n\r\n")


def _pieces(body: bytes, split: int | tuple[int, ...] | None) -> list[bytes]:
    if split is None:
        cuts: list[int] = []
    elif isinstance(split, int):
        cuts = list(range(split, len(body), split))
    else:
        cuts = [c for c in split if 0 < c < len(body)]
    bounds = [0, *cuts, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds) if b > a]
