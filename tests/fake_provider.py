"""A provider stand-in on loopback: replays scripted HTTP responses byte for byte.

The serving loop is :class:`podactors.testing.LoopbackServer`'s; this module adds the
responses. Bodies go out with chunked transfer encoding, one chunk per piece of ``split``,
so a client sees an event cut at exactly the byte boundaries a test asks for. Every request
is recorded (method, path, headers, body) for the test to assert on.
"""

from __future__ import annotations

import itertools
from collections import deque
from pathlib import Path

import attrs

from podactors.testing import HttpRequest, HttpResponse, LoopbackServer

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

    def response(self) -> HttpResponse:
        """This reply as the loopback server sends it (one connection per request)."""
        content_type = "text/event-stream" if self.status < 400 else "application/json"
        headers = {"content-type": content_type, "connection": "close", **self.headers}
        body = self.body if self.cut_after is None else self.body[: self.cut_after]
        return HttpResponse(
            self.status,
            list(headers.items()),
            _pieces(body, self.split),
            complete=self.cut_after is None,
        )


class FakeProvider(LoopbackServer):
    """Serve queued replies in order; an empty queue answers 500."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: deque[Reply] = deque()
        self.requests: list[HttpRequest] = []

    def queue(self, *replies: Reply) -> None:
        """Add replies to the end of the queue."""
        self.replies.extend(replies)

    async def respond(self, request: HttpRequest) -> HttpResponse:
        """Record ``request`` and answer with the next queued reply."""
        self.requests.append(request)
        reply = self.replies.popleft() if self.replies else Reply(500, b'{"error":"empty"}')
        return reply.response()


def _pieces(body: bytes, split: int | tuple[int, ...] | None) -> list[bytes]:
    if split is None:
        cuts: list[int] = []
    elif isinstance(split, int):
        cuts = list(range(split, len(body), split))
    else:
        cuts = [c for c in split if 0 < c < len(body)]
    bounds = [0, *cuts, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds) if b > a]
