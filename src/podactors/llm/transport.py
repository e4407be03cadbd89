"""HTTP transport shared by every wire provider: send, retry before the first byte, stream.

A request is retried only while nothing of the response body has been read: on
connect errors, timeouts and the statuses of :attr:`RetryPolicy.retry_statuses`, with
exponential backoff and jitter, honouring ``Retry-After``, within a bounded number of
attempts and a total time. Once a 2xx response has arrived the call is never repeated:
the model may already be acting on it.
"""

from __future__ import annotations

import email.utils
import functools
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import certifi
import httpx
import msgspec
import trio

from podactors.errors import ProviderError

REQUEST_ID_HEADERS = ("request-id", "x-request-id", "x-goog-request-id")
"""Where providers put the id their support desk asks for."""

Sleep = Callable[[float], Awaitable[None]]


@attrs.frozen
class RetryPolicy:
    """When and how long to wait before trying a request again."""

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    total_timeout: float = 120.0
    retry_statuses: frozenset[int] = frozenset({408, 409, 429, 500, 502, 503, 504, 529})

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt ``attempt + 1``: ``Retry-After`` if the server
        sent one, else exponential backoff with jitter (between half and all of it)."""
        if retry_after is not None:
            return max(0.0, retry_after)
        ceiling = min(self.max_delay, self.base_delay * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=30.0, pool=10.0)


class HttpTransport:
    """One ``httpx.AsyncClient`` for one provider instance, with retry-before-stream.

    ``sleep`` is what waits between attempts (tests pass one that records the delays).
    """

    def __init__(
        self,
        provider: str,
        *,
        client: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        sleep: Sleep = trio.sleep,
    ):
        self.provider = provider
        self.retry = retry or RetryPolicy()
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout, verify=shared_ssl_context())
        self._sleep = sleep

    async def aclose(self) -> None:
        """Close the client's connections (only if this transport created it)."""
        if self._owns_client:
            await self._client.aclose()

    @asynccontextmanager
    async def stream(
        self, url: str, *, headers: dict[str, str], body: bytes
    ) -> AsyncIterator[httpx.Response]:
        """POST ``body`` and yield the streaming 2xx response, retrying before it.

        Raises :class:`ProviderError` with the provider's message, status and request
        id when the response is an error or the attempts run out.
        """
        response = await self._send_with_retry(url, headers, body)
        try:
            yield response
        finally:
            with trio.CancelScope(shield=True):
                await response.aclose()

    async def _send_with_retry(
        self, url: str, headers: dict[str, str], body: bytes
    ) -> httpx.Response:
        deadline = time.monotonic() + self.retry.total_timeout
        attempt = 0
        while True:
            error, retry_after = await self._attempt(url, headers, body)
            if isinstance(error, httpx.Response):
                return error
            attempt += 1
            if not error.retryable or attempt >= self.retry.max_attempts:
                raise error
            wait = self.retry.delay(attempt - 1, retry_after)
            if time.monotonic() + wait > deadline:
                raise error
            await self._sleep(wait)

    async def _attempt(
        self, url: str, headers: dict[str, str], body: bytes
    ) -> tuple[httpx.Response | ProviderError, float | None]:
        request = self._client.build_request("POST", url, headers=headers, content=body)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TransportError as exc:
            return ProviderError(self.provider, _describe(exc), retryable=True), None
        if response.is_success:
            return response, None
        try:
            await response.aread()
        except httpx.TransportError:
            pass
        finally:
            await response.aclose()
        return self._status_error(response), _retry_after(response)

    def _status_error(self, response: httpx.Response) -> ProviderError:
        return ProviderError(
            self.provider,
            error_message(response),
            status=response.status_code,
            request_id=request_id(response),
            retryable=response.status_code in self.retry.retry_statuses,
        )


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying SSL context for every provider's client: loading the CA bundle
    costs ~20 ms, which 1 000 pods would otherwise pay 1 000 times."""
    return ssl.create_default_context(cafile=certifi.where())


def request_id(response: httpx.Response) -> str | None:
    """The provider's id for this request, if it sent one."""
    for name in REQUEST_ID_HEADERS:
        value: str | None = response.headers.get(name)
        if value:
            return value
    return None


def error_message(response: httpx.Response) -> str:
    """The provider's own words from an error body, else the status line."""
    try:
        body: Any = msgspec.json.decode(response.content)
    except (msgspec.DecodeError, httpx.ResponseNotRead):
        text = response.text.strip() if response.is_stream_consumed else ""
        return text[:500] or f"HTTP {response.status_code} {response.reason_phrase}"
    return provider_message(body) or f"HTTP {response.status_code} {response.reason_phrase}"


def provider_message(body: Any) -> str | None:
    """Dig the message out of the error shapes providers use (``error.message`` …)."""
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, dict):
        return None
    error = body.get("error", body)
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        message = error.get("message")
        kind = error.get("type") or error.get("status")
        if isinstance(message, str):
            return f"{kind}: {message}" if isinstance(kind, str) else message
    return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _describe(exc: httpx.TransportError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
