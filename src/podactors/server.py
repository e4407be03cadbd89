"""The websocket server: pods' events and methods as JSON over trio-websocket.

A client authenticates on the handshake with ``Authorization: Bearer <token>``; browsers
from other sites are kept out by an ``Origin`` check. It then sends methods (the tagged
structs of :mod:`podactors.protocol`) and receives events. ``attach`` subscribes the
connection to a pod: a ``snapshot`` first, then live events, forwarded by one task per
attached pod, so a slow connection only ever lags itself (the pod's fan-out drops for it
and later sends ``lagged`` and a fresh snapshot). Anything malformed or refused is
answered with an ``error`` event and the connection stays open. A failing connection is
logged and closed; it never takes the server or a pod down with it.

See ``docs/websocket.md`` for the wire format.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets
from collections.abc import Callable, Collection
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import msgspec
import trio
import trio_websocket

from podactors import protocol as proto
from podactors.actor import Reply as Ticket
from podactors.errors import ActorClosed, PodactorsError, PodError
from podactors.fileio import write_atomic
from podactors.handle import PodApi

logger = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
"""The largest message a client may send (bytes or characters); bigger ones close with 1009."""
CLOSE_SECONDS = 5.0
"""How long closing a failed connection may wait for the peer's close frame."""
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Origin hosts allowed when no ``allowed_origins`` are given."""

PodLookup = Callable[[str], PodApi | None]
"""Finds a running pod by name, or ``None``."""


@attrs.frozen
class WebsocketServer:
    """Where a running websocket server listens, and the token clients must present.

    ``token`` is left out of ``repr`` so that logging the server does not leak it;
    ``token_file`` is where it was written, if anywhere.
    """

    host: str
    port: int
    token: str = attrs.field(repr=False)
    token_file: Path | None = None

    @property
    def url(self) -> str:
        """``ws://host:port`` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"


async def serve_websocket(
    lookup: PodLookup,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    token_file: Path | None = None,
    allowed_origins: Collection[str] | None = None,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    task_status: trio.TaskStatus[WebsocketServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve pods over websocket until cancelled; ``task_status.started(WebsocketServer)``.

    ``lookup`` finds a pod by name. A bearer token is always required: when ``token`` is
    ``None`` one is generated. When ``token_file`` is given the token is written there
    (parent directories created, mode 0600 from the moment the file exists). Handshakes
    with a wrong or missing token are refused with HTTP 401, those from a foreign
    ``Origin`` with 403 (with ``allowed_origins`` ``None``, only loopback origins or none
    at all pass). Messages longer than ``max_message_size`` close their connection with
    code 1009. Raises ``OSError`` if the address cannot be bound.
    """
    secret = token if token is not None else secrets.token_urlsafe(32)
    if token_file is not None:
        await trio.to_thread.run_sync(write_token_file, token_file, secret)
    gate = _Gate(secret.encode(), None if allowed_origins is None else frozenset(allowed_origins))
    handler = partial(_handle_request, lookup, gate)
    serve = partial(
        trio_websocket.serve_websocket, handler, host, port, None, max_message_size=max_message_size
    )
    async with trio.open_nursery() as nursery:
        listening = await nursery.start(serve)
        task_status.started(WebsocketServer(host, listening.port, secret, token_file))


def write_token_file(path: Path, token: str) -> None:
    """Write ``token`` to ``path`` atomically, readable by the owner only (mode 0600).

    The file is created under a temporary name with ``os.open(..., 0o600)`` and renamed
    into place, so it is never world-readable, not even briefly, and a reader never sees
    half a token. Parent directories are created (mode 0700).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, token.encode(), mode=0o600)


# --- the handshake ----------------------------------------------------------------------


@attrs.frozen
class _Gate:
    """Decides whether a handshake may proceed: the origin, then the token."""

    token: bytes
    allowed_origins: frozenset[str] | None

    def refusal(self, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes] | None:
        """The HTTP status and body to reject with, or ``None`` to accept."""
        origin = _header(headers, b"origin")
        if origin is not None and not self._origin_allowed(origin.decode("latin-1")):
            return 403, b"origin not allowed\n"
        if not self._token_matches(_header(headers, b"authorization")):
            return 401, b"missing or wrong bearer token\n"
        return None

    def _origin_allowed(self, origin: str) -> bool:
        if self.allowed_origins is not None:
            return origin in self.allowed_origins
        try:
            hostname = urlsplit(origin).hostname
        except ValueError:
            return False
        return hostname in LOOPBACK_HOSTS

    def _token_matches(self, authorization: bytes | None) -> bool:
        scheme, _, credentials = (authorization or b"").partition(b" ")
        presented = credentials.strip() if scheme.lower() == b"bearer" else b""
        return hmac.compare_digest(presented, self.token)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower case), or ``None``."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


async def _handle_request(
    lookup: PodLookup, gate: _Gate, request: trio_websocket.WebSocketRequest
) -> None:
    """One connection from handshake to close; whatever fails here stays here.

    A failure is logged and closes the connection with code 1011 (internal error).
    """
    websocket: trio_websocket.WebSocketConnection | None = None
    try:
        refusal = gate.refusal(request.headers)
        if refusal is not None:
            status, body = refusal
            await request.reject(status, body=body)
            return
        websocket = await request.accept()
        await _Connection(websocket, lookup).serve()
    except* trio_websocket.ConnectionClosed:
        pass
    except* Exception:
        logger.exception("websocket connection from %s failed", request.remote)
        if websocket is not None:
            with trio.move_on_after(CLOSE_SECONDS):
                await websocket.aclose(1011, "internal error")


# --- a connection -----------------------------------------------------------------------


class _PodField(msgspec.Struct):
    """Just the ``pod`` of a message that did not decode, to address the error."""

    pod: str = ""


class _Connection:
    """One accepted connection: reads methods, forwards the events of attached pods."""

    def __init__(self, websocket: trio_websocket.WebSocketConnection, lookup: PodLookup):
        self._websocket = websocket
        self._lookup = lookup
        self._attached: set[str] = set()

    async def serve(self) -> None:
        """Serve methods until the peer closes (``ConnectionClosed`` is raised then)."""
        async with trio.open_nursery() as nursery:
            try:
                while True:
                    message = await self._websocket.get_message()
                    await self._dispatch(nursery, message)
            finally:
                nursery.cancel_scope.cancel()

    async def _dispatch(self, nursery: trio.Nursery, message: str | bytes) -> None:
        try:
            method = proto.decode_method(message)
        except msgspec.DecodeError as exc:
            await self._error("invalid_request", f"bad message: {exc}", _pod_of(message))
            return
        pod = self._lookup(method.pod)
        if pod is None:
            await self._error(
                "invalid_request", f"no pod named {method.pod!r}", method.pod, method.id
            )
            return
        try:
            await self._apply(nursery, pod, method)
        except trio_websocket.ConnectionClosed:
            raise
        except PodError as exc:
            await self._error(exc.code, exc.message, pod.name, method.id)
        except ActorClosed:
            await self._error(
                "invalid_request", f"pod {pod.name!r} is stopped", pod.name, method.id
            )
        except PodactorsError as exc:
            await self._error("internal", str(exc), pod.name, method.id)
        except Exception as exc:
            logger.exception("websocket method %r on pod %s failed", method, pod.name)
            await self._error("internal", f"{type(exc).__name__}: {exc}", pod.name, method.id)

    async def _apply(self, nursery: trio.Nursery, pod: PodApi, method: proto.AnyMethod) -> None:
        """Hand ``method`` to the pod; answer it (with its ``id``, when it has one)."""
        if isinstance(method, proto.Attach):
            if method.pod not in self._attached:  # the stream replies after its snapshot
                await nursery.start(self._forward, pod, method.id)
                return
            await self._send(await pod.snapshot())  # already attached: no second stream
            if method.id is not None:
                await self._send(proto.Reply(pod=pod.name, id=method.id))
            return
        answer = await pod.call(method)
        if method.id is None:
            if isinstance(answer, proto.Snapshot):
                await self._send(answer)
            elif isinstance(method, proto.GetHistory):
                await self._send(proto.Reply(pod=pod.name, id="", history=answer))
            return
        reply = proto.Reply(pod=pod.name, id=method.id)
        if isinstance(answer, Ticket):
            reply = proto.Reply(pod=pod.name, id=method.id, started=True)
            nursery.start_soon(self._done, pod.name, method.id, answer)
        elif isinstance(answer, proto.Snapshot):
            reply = proto.Reply(pod=pod.name, id=method.id, snapshot=answer)
        elif isinstance(method, proto.GetHistory):
            reply = proto.Reply(pod=pod.name, id=method.id, history=answer)
        await self._send(reply)

    async def _done(self, pod: str, method_id: str, ticket: Ticket[Any]) -> None:
        """Send ``done`` when the run or compaction that ``method_id`` started ends."""
        with contextlib.suppress(trio_websocket.ConnectionClosed):
            try:
                result = await ticket.wait()
            except PodError as exc:
                await self._error(exc.code, exc.message, pod, method_id)
            except PodactorsError as exc:
                await self._error("internal", str(exc), pod, method_id)
            else:
                await self._send(proto.Done(pod=pod, id=method_id, result=result))

    async def _forward(
        self,
        pod: PodApi,
        method_id: str | None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Send ``pod``'s events (a snapshot first) until it stops or the peer goes.

        With ``method_id`` (the ``attach``'s), its ``reply`` follows the first snapshot, so a
        client that waits for the reply has the snapshot by then.
        """
        self._attached.add(pod.name)
        try:
            async with pod.subscribe() as events:
                task_status.started()
                async for event in events:
                    await self._send(event)
                    if method_id is not None:
                        await self._send(proto.Reply(pod=pod.name, id=method_id))
                        method_id = None
            if method_id is not None:  # the events ended before the first: never leave it hanging
                await self._error(
                    "invalid_request", f"pod {pod.name!r} is stopped", pod.name, method_id
                )
        except trio_websocket.ConnectionClosed:
            pass
        finally:
            self._attached.discard(pod.name)

    async def _error(
        self, code: proto.ErrorCode, message: str, pod: str, method_id: str | None = None
    ) -> None:
        await self._send(proto.Error(pod=pod, code=code, message=message, id=method_id))

    async def _send(self, event: proto.AnyEvent) -> None:
        await self._websocket.send_message(proto.encode_event(event).decode())


def _pod_of(message: str | bytes) -> str:
    """The ``pod`` field of a message that did not decode, if it has a usable one."""
    try:
        return msgspec.json.decode(message, type=_PodField).pod
    except msgspec.DecodeError:
        return ""


__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "PodLookup",
    "WebsocketServer",
    "serve_websocket",
    "write_token_file",
]
