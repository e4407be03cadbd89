"""The websocket client: talk to pods served by :func:`podactors.server.serve_websocket`.

Two levels:

* ``async with open_remote(url, token) as remote: pod = await remote.pod("alice")``
  gives a :class:`RemotePod`: the same methods, view and events as an in-process
  :class:`~podactors.handle.PodHandle` (``await pod.run("hi")`` returns the run's result,
  a refusal raises :class:`~podactors.errors.PodError`), so code written against
  :class:`~podactors.handle.PodApi` drives a pod wherever it runs.
* ``async with open_client(url, token) as client`` is the raw connection: methods go out
  with :meth:`PodClient.send` and every event the server sends comes out of
  :meth:`PodClient.receive` / :meth:`PodClient.events`.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import msgspec
import trio
import trio_websocket

from podactors import protocol as proto
from podactors.actor import Reply as Ticket
from podactors.errors import ConnectionRefused, Disconnected, PodError
from podactors.fanout import Fanout
from podactors.handle import PodView, ViewedPod
from podactors.items import HistoryItem

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
    def websocket(self) -> trio_websocket.WebSocketConnection:
        """The trio-websocket connection underneath, for frames outside the protocol."""
        return self._websocket

    @property
    def close_reason(self) -> Disconnected | None:
        """Why the connection closed, or ``None`` while it is open."""
        closed = self._websocket.closed
        return None if closed is None else Disconnected(closed.code, closed.reason)

    async def send(self, method: proto.AnyMethod) -> None:
        """Send one method; raises :class:`Disconnected` when the connection is closed."""
        try:
            await self._websocket.send_message(_method_encoder.encode(method).decode())
        except trio_websocket.ConnectionClosed as exc:
            raise _disconnected(exc) from None

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


# --- pods over a connection ------------------------------------------------------------


class RemotePod(ViewedPod):
    """A pod served over a websocket connection; see the module docstring.

    Its view (status, session id, turn count) follows the pod's events; its events come
    from a local fan-out the connection's reader fills, so any number of tasks can
    subscribe. A local subscriber that falls behind gets ``lagged`` and then a snapshot
    built here: the live view and ``last_seq``, with the history of the last snapshot the
    server sent.
    """

    def __init__(self, connection: RemoteConnection, name: str):
        self.name = name
        self._connection = connection
        self._view = PodView(name)
        self._history: list[HistoryItem] = []
        self._fanout = Fanout(self._local_snapshot)

    async def call(self, method: proto.AnyMethod) -> Any:
        """Send ``method`` with an id and return its answer, as the in-process handle does."""
        reply, ticket = await self._connection.request(method)
        if ticket is not None:
            return ticket
        if isinstance(method, proto.GetSnapshot):
            return reply.snapshot
        if isinstance(method, proto.GetHistory):
            return reply.history or []
        return None

    def subscribe(self) -> AbstractAsyncContextManager[AsyncIterator[proto.AnyEvent]]:
        """Events from now on, starting with a snapshot (``async with``)."""
        return self._subscribe()

    @asynccontextmanager
    async def _subscribe(self) -> AsyncIterator[AsyncIterator[proto.AnyEvent]]:
        subscription = self._fanout.open()
        try:
            snapshot = await self.snapshot()
            yield _after(snapshot, subscription)
        finally:
            self._fanout.remove(subscription)

    def _local_snapshot(self) -> proto.Snapshot:
        """Where the pod stands as far as this connection has seen."""
        view, last_seq = self._view, self._fanout.last_seq
        return proto.Snapshot(
            pod=self.name,
            seq=last_seq,
            status=view.status,
            session_id=view.session_id,
            turn_count=view.turn_count,
            history=list(self._history),
            last_seq=last_seq,
        )

    def receive(self, event: proto.AnyEvent) -> None:
        """An event of this pod arrived (the connection's reader calls this)."""
        view = self._view
        match event:
            case proto.Snapshot():
                view.status, view.session_id = event.status, event.session_id
                view.turn_count, self._history = event.turn_count, event.history
            case proto.Status(status=status):
                view.status = status
            case proto.SessionRotated(new_session_id=session_id):
                view.session_id = session_id
            case proto.TurnEnd(turn=turn):
                view.turn_count = turn
            case proto.RunEnd(session_id=session_id) if session_id:
                view.session_id = session_id
        self._fanout.publish(event)

    def close(self) -> None:
        """The connection is gone: end every subscription."""
        self._fanout.close()


async def _after(
    snapshot: proto.Snapshot, events: AsyncIterator[proto.AnyEvent]
) -> AsyncIterator[proto.AnyEvent]:
    """``snapshot``, then the events after it (those it already covers are dropped)."""
    yield snapshot
    async for event in events:
        if event.seq == 0 or event.seq > snapshot.last_seq:
            yield event


class RemoteConnection:
    """One connection's pods and pending answers; obtain one with :func:`open_remote`."""

    def __init__(self, client: PodClient):
        self._client = client
        self._ids = itertools.count(1)
        self._pending: dict[str, Ticket[tuple[proto.Reply, Ticket[Any] | None]]] = {}
        self._started: dict[str, Ticket[Any]] = {}
        self._pods: dict[str, RemotePod] = {}

    async def pod(self, name: str) -> RemotePod:
        """The pod ``name``, attached: its view is live from here on."""
        pod = self._pods.get(name)
        if pod is None:
            pod = self._pods[name] = RemotePod(self, name)
            try:
                await self.request(proto.Attach(pod=name))
            except BaseException:
                del self._pods[name]
                raise
        return pod

    async def request(self, method: proto.AnyMethod) -> tuple[proto.Reply, Ticket[Any] | None]:
        """Send ``method`` with a fresh id; its reply, and the ticket of work it started."""
        method_id = str(next(self._ids))
        slot: Ticket[tuple[proto.Reply, Ticket[Any] | None]] = Ticket()
        self._pending[method_id] = slot
        try:
            await self._client.send(msgspec.structs.replace(method, id=method_id))
            return await slot.wait()
        finally:
            self._pending.pop(method_id, None)

    async def read(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Route every event until the connection closes; then fail whoever still waits."""
        task_status.started()
        try:
            async for event in self._client.events():
                self._route(event)
        finally:
            reason = self._client.close_reason or Disconnected(None, None)
            for waiting in [*self._pending.values(), *self._started.values()]:
                waiting.fail(reason)
            for pod in self._pods.values():
                pod.close()

    def _route(self, event: proto.AnyEvent) -> None:
        match event:
            case proto.Reply(id=method_id) if method_id in self._pending:
                ticket: Ticket[Any] | None = None
                if event.started:
                    ticket = self._started[method_id] = Ticket()
                self._pending[method_id].deliver((event, ticket))
            case proto.Done(id=method_id):
                started = self._started.pop(method_id, None)
                if started is not None:
                    started.deliver(event.result)
            case proto.Error(id=method_id) if method_id in self._pending:
                self._pending[method_id].fail(PodError(event.code, event.message))
            case proto.Error(id=method_id) if method_id in self._started:
                self._started.pop(method_id).fail(PodError(event.code, event.message))
            case proto.Reply() | proto.Done():
                pass  # the answer to a call that is no longer waiting: not a pod event
            case _:
                pod = self._pods.get(event.pod)
                if pod is not None:
                    pod.receive(event)


@asynccontextmanager
async def open_remote(url: str, token: str, **options: Any) -> AsyncIterator[RemoteConnection]:
    """Connect to ``url`` with bearer ``token`` for :class:`RemotePod` handles.

    ``options`` are :func:`open_client`'s. The connection and its reader close with the
    block; a pod's methods raise :class:`Disconnected` once the server has gone.
    """
    async with open_client(url, token, **options) as client, trio.open_nursery() as nursery:
        connection = RemoteConnection(client)
        await nursery.start(connection.read)
        try:
            yield connection
        finally:
            nursery.cancel_scope.cancel()


__all__ = [
    "ConnectionRefused",
    "Disconnected",
    "PodClient",
    "RemoteConnection",
    "RemotePod",
    "open_client",
    "open_remote",
]
