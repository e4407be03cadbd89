"""The websocket client: talk to pods served by :func:`podactors.server.serve_websocket`.

``async with open_client(url, token) as client`` connects and authenticates; methods
are sent with :meth:`PodClient.send` or its shorthands (``attach``, ``run``, ``notify``,
…) and every event the server sends, whether from an attached pod or in answer to a
method, comes out of :meth:`PodClient.receive` / :meth:`PodClient.events`. Methods are
not answered one by one: a refusal arrives as an ``error`` event, a success shows in the
pod's events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import trio_websocket

from podactors import protocol as proto
from podactors.errors import ConnectionRefused, Disconnected

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds a connection and its handshake may take."""
DEFAULT_MAX_MESSAGE_SIZE = 64 << 20
"""The largest event the client accepts (a snapshot carries recent history)."""


_event_decoder: msgspec.json.Decoder[proto.AnyEvent] = msgspec.json.Decoder(proto.AnyEvent)
_method_encoder = msgspec.json.Encoder()


class PodClient:
    """One authenticated websocket connection to a pod server.

    Sending never waits for an answer; events (pods' and the server's answers) are read
    with :meth:`receive` or iterated with :meth:`events`. One task should read events,
    any number may send.
    """

    def __init__(self, websocket: trio_websocket.WebSocketConnection):
        self._websocket = websocket

    @property
    def close_reason(self) -> Disconnected | None:
        """Why the connection closed, or ``None`` while it is open."""
        closed = self._websocket.closed
        return None if closed is None else Disconnected(closed.code, closed.reason)

    async def send(self, method: proto.AnyMethod) -> None:
        """Send one method; raises :class:`Disconnected` when the connection is closed."""
        await self.send_raw(_method_encoder.encode(method).decode())

    async def send_raw(self, message: str | bytes) -> None:
        """Send a message as is (for tools and tests); see :meth:`send`."""
        try:
            await self._websocket.send_message(message)
        except trio_websocket.ConnectionClosed as exc:
            raise _disconnected(exc) from None

    async def attach(self, pod: str) -> None:
        """Subscribe to ``pod``: a ``snapshot`` follows, then its live events."""
        await self.send(proto.Attach(pod=pod))

    async def run(self, pod: str, text: str) -> None:
        """Start a run on ``text``; it ends with a ``run_end`` event of ``pod``."""
        await self.send(proto.Run(pod=pod, input=text))

    async def resume(self, pod: str) -> None:
        """Continue ``pod``'s paused run."""
        await self.send(proto.Resume(pod=pod))

    async def cancel(self, pod: str) -> None:
        """Cancel ``pod``'s running (or paused) run."""
        await self.send(proto.Cancel(pod=pod))

    async def pause(self, pod: str) -> None:
        """Pause ``pod``'s run at its next step."""
        await self.send(proto.Pause(pod=pod))

    async def notify(self, pod: str, message: str, *, source: str | None = None) -> None:
        """Give ``pod`` a notification; it starts a turn when the pod is idle."""
        await self.send(proto.Notify(pod=pod, message=message, source=source))

    async def compact(self, pod: str) -> None:
        """Ask ``pod`` to compact its session now."""
        await self.send(proto.Compact(pod=pod))

    async def shutdown(self, pod: str) -> None:
        """Stop ``pod``."""
        await self.send(proto.Shutdown(pod=pod))

    async def get_snapshot(self, pod: str) -> None:
        """Ask for a ``snapshot`` of ``pod`` without subscribing."""
        await self.send(proto.GetSnapshot(pod=pod))

    async def receive(self) -> proto.AnyEvent:
        """The next event; raises :class:`Disconnected` once the connection is closed.

        Raises ``msgspec.ValidationError`` if the server sends something that is not an
        event of this version's protocol.
        """
        try:
            message = await self._websocket.get_message()
        except trio_websocket.ConnectionClosed as exc:
            raise _disconnected(exc) from None
        return _event_decoder.decode(message)

    def events(self) -> AsyncIterator[proto.AnyEvent]:
        """Iterate events until the connection closes (then the iteration just ends)."""
        return _Events(self)


class _Events:
    """The async iterator :meth:`PodClient.events` returns."""

    def __init__(self, client: PodClient):
        self._client = client

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> proto.AnyEvent:
        try:
            return await self._client.receive()
        except Disconnected:
            raise StopAsyncIteration from None


def _disconnected(exc: trio_websocket.ConnectionClosed) -> Disconnected:
    reason = exc.reason
    return Disconnected(None, None) if reason is None else Disconnected(reason.code, reason.reason)


@asynccontextmanager
async def open_client(
    url: str,
    token: str,
    *,
    origin: str | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> AsyncIterator[PodClient]:
    """Connect to ``url`` with bearer ``token``; the connection closes with the block.

    Whitespace around ``token`` is ignored (it may come straight from a token file); an
    empty one sends no ``Authorization`` header at all.
    ``origin`` sends an ``Origin`` header, as a browser would. Raises
    :class:`ConnectionRefused` when the connection or its handshake fails (with the
    HTTP status when the server rejected it).
    """
    headers: list[tuple[bytes, bytes]] = []
    if token.strip():
        headers.append((b"Authorization", f"Bearer {token.strip()}".encode()))
    if origin is not None:
        headers.append((b"Origin", origin.encode()))
    connected = False
    try:
        async with trio_websocket.open_websocket_url(
            url,
            extra_headers=headers,
            connect_timeout=connect_timeout,
            max_message_size=max_message_size,
        ) as websocket:
            connected = True
            yield PodClient(websocket)
    except trio_websocket.HandshakeError as exc:
        if connected:
            raise
        raise _refused(url, exc) from exc


def _refused(url: str, exc: trio_websocket.HandshakeError) -> ConnectionRefused:
    if isinstance(exc, trio_websocket.ConnectionRejected):
        body = (exc.body or b"").decode("utf-8", "replace").strip()
        return ConnectionRefused(url, exc.status_code, body)
    if isinstance(exc, trio_websocket.ConnectionTimeout):
        return ConnectionRefused(url, None, "timed out")
    return ConnectionRefused(url, None, str(exc.__cause__ or exc))


__all__ = ["ConnectionRefused", "Disconnected", "PodClient", "open_client"]
