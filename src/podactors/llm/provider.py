"""The provider interface and the shared machinery of the HTTP providers.

A provider module says only what differs on the wire: the URL, the headers, the
request body and a :class:`WireParser` for its events. :class:`HttpProvider` does the
rest once: transport and retry, SSE decoding (httpx-sse), assembly and error mapping.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ClassVar, Protocol

import httpx
import msgspec
import trio
from httpx_sse import EventSource, ServerSentEvent

from podactors.llm.assembler import ResponseAssembler
from podactors.llm.events import LlmResponse, StreamEvent, WireEvent
from podactors.llm.request import Request
from podactors.llm.transport import HttpTransport, RetryPolicy, Sleep, request_id

EventListener = Callable[[StreamEvent], Awaitable[None]]
"""Awaited with every stream event, in order, while the call runs."""


class WireError(Exception):
    """Raised by a parser for an error the provider reported inside the stream."""


class Provider(Protocol):
    """Anything that turns a :class:`Request` into an :class:`LlmResponse`."""

    @property
    def name(self) -> str:
        """The provider's name, as in manifests and errors."""
        ...

    async def stream(
        self, request: Request, on_event: EventListener | None = None
    ) -> LlmResponse: ...

    async def aclose(self) -> None: ...


class WireParser(Protocol):
    """Turns one call's SSE events into wire events; one parser per call."""

    def feed(self, event: ServerSentEvent) -> Iterable[WireEvent]:
        """The wire events one SSE event carries; raises :class:`WireError`."""
        ...

    def close(self) -> Iterable[WireEvent]:
        """Wire events implied by the end of the body (``StreamDone`` where the wire has
        no explicit end marker)."""
        ...


class HttpProvider:
    """Base class of the providers that stream SSE over HTTP."""

    name: ClassVar[str]

    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        api_key: str | None = None,
        client: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep | None = None,
    ):
        self.model = model
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.transport = HttpTransport(
            self.name, client=client, retry=retry, sleep=sleep or trio.sleep
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    # --- what each provider defines ---------------------------------------------------

    def url(self, request: Request) -> str:
        """Where the request goes."""
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        """Headers, authentication included."""
        raise NotImplementedError

    def body(self, request: Request) -> dict[str, Any]:
        """The JSON body."""
        raise NotImplementedError

    def parser(self) -> WireParser:
        """A fresh parser for one response."""
        raise NotImplementedError

    # --- shared --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the provider's HTTP connections."""
        await self.transport.aclose()

    async def stream(self, request: Request, on_event: EventListener | None = None) -> LlmResponse:
        """Send ``request``, pass each stream event to ``on_event``, return the response.

        Raises :class:`~podactors.errors.ProviderError` before the stream,
        :class:`~podactors.errors.StreamInterrupted` (with the partial text) when it
        breaks off, :class:`~podactors.errors.InvalidToolArguments` for bad JSON.
        """
        body = msgspec.json.encode(self.body(request))
        headers = {"content-type": "application/json", "accept": "text/event-stream"}
        headers.update(self.headers())
        async with self.transport.stream(self.url(request), headers=headers, body=body) as resp:
            assembler = ResponseAssembler(self.name)
            assembler.request_id = request_id(resp)
            await self._read(resp, self.parser(), assembler, on_event)
            return assembler.finish()

    async def _read(
        self,
        response: httpx.Response,
        parser: WireParser,
        assembler: ResponseAssembler,
        on_event: EventListener | None,
    ) -> None:
        try:
            async for sse in EventSource(response).aiter_sse():
                await _deliver(parser.feed(sse), assembler, on_event)
                if assembler.done:
                    return
            await _deliver(parser.close(), assembler, on_event)
        except WireError as exc:
            raise assembler.interrupted(str(exc), status=response.status_code) from None
        except httpx.TransportError as exc:
            raise assembler.interrupted(
                f"connection lost mid-stream ({type(exc).__name__})", status=response.status_code
            ) from None


async def _deliver(
    events: Iterable[WireEvent], assembler: ResponseAssembler, on_event: EventListener | None
) -> None:
    for wire in events:
        for event in assembler.add(wire):
            if on_event is not None:
                await on_event(event)


def bearer(api_key: str | None) -> dict[str, str]:
    """The ``authorization`` header of OpenAI-style APIs; none for keyless local servers."""
    return {"authorization": f"Bearer {api_key}"} if api_key else {}


def decode_json(data: str) -> Any:
    """Decode one SSE ``data`` payload; undecodable data is a :class:`WireError`."""
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise WireError(f"undecodable event data: {exc}") from None
