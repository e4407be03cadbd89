"""The podactors exception hierarchy.

Every error a user can see derives from :class:`PodactorsError`. Exception groups
raised inside the framework are unwrapped at its edges, so callers catch one typed
error rather than an ``ExceptionGroup``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal


class PodactorsError(Exception):
    """Root of every error podactors raises on purpose."""


# --- manifest ---------------------------------------------------------------------


class ManifestError(PodactorsError):
    """A manifest could not be loaded.

    The message is one line that names the key path (``model.provider``), the file the
    bad value came from, and a suggestion when the key looks misspelt.
    """

    def __init__(self, message: str, *, key: str | None = None, file: Path | str | None = None):
        self.key = key
        self.file = None if file is None else Path(file)
        where = f"{self.file}: " if self.file is not None else ""
        what = f"{key}: " if key else ""
        super().__init__(f"{where}{what}{message}")


# --- session store ----------------------------------------------------------------


class StoreError(PodactorsError):
    """Base class for errors of the session store."""


class StoreFormatError(StoreError):
    """The store root holds a format this version does not understand."""


class CorruptSegment(StoreError):
    """A stored object or ref does not hash to what it should, or does not decode.

    ``path`` is the file, ``expected`` and ``actual`` the hashes (``actual`` is ``None``
    when the bytes could not even be framed), ``offset`` the byte offset inside a ref
    file when the damage is in one of its records.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        expected: str | None = None,
        actual: str | None = None,
        offset: int | None = None,
        reason: str | None = None,
    ):
        self.path = Path(path)
        self.expected = expected
        self.actual = actual
        self.offset = offset
        self.reason = reason
        parts = [f"corrupt store file {self.path}"]
        if offset is not None:
            parts.append(f"at offset {offset}")
        if expected is not None:
            parts.append(f"expected hash {expected}")
        if actual is not None:
            parts.append(f"actual hash {actual}")
        if reason:
            parts.append(f"({reason})")
        super().__init__(" ".join(parts))


class HeadMoved(StoreError):
    """An append named a head that is no longer the session's head.

    Another writer appended first. Nothing was written; restore (or fork) and retry.
    """

    def __init__(self, session_id: str, *, expected: str | None, actual: str | None):
        self.session_id = session_id
        self.expected = expected
        self.actual = actual
        super().__init__(f"session {session_id}: head moved (expected {expected}, found {actual})")


class SessionNotFound(StoreError):
    """No session with this id exists in the store."""

    def __init__(self, session_id: str):
        self.session_id = session_id
        super().__init__(f"no session {session_id!r} in the store")


class StoreLocked(StoreError):
    """A session lock could not be taken within the timeout."""


# --- model providers --------------------------------------------------------------


class ProviderError(PodactorsError):
    """A model provider call failed.

    Carries the ``provider`` name, the HTTP ``status`` and provider ``request_id`` when
    known, and whether a retry may succeed (``retryable``). The message is the provider's
    own when it sent one. API keys never appear in it.
    """

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        retryable: bool = False,
    ):
        self.provider = provider
        self.message = message
        self.status = status
        self.request_id = request_id
        self.retryable = retryable
        details = [f"HTTP {status}" if status is not None else None]
        details.append(f"request {request_id}" if request_id else None)
        suffix = ", ".join(d for d in details if d)
        super().__init__(f"{provider}: {message}" + (f" ({suffix})" if suffix else ""))


class StreamInterrupted(ProviderError):
    """A stream ended early: a dropped connection, an error event, a truncated body.

    Never retried automatically, since the model may already have acted. ``partial``
    holds the text and reasoning received so far (never a half-built tool call), so the
    caller can keep it, marked interrupted.
    """

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        partial: list[object] | None = None,
        status: int | None = None,
        request_id: str | None = None,
        retryable: bool = True,
    ):
        super().__init__(
            provider, message, status=status, request_id=request_id, retryable=retryable
        )
        self.partial = list(partial or [])


class InvalidToolArguments(ProviderError):
    """The model sent tool-call arguments that are not a JSON object."""


# --- worker -----------------------------------------------------------------------


class TurnAborted(PodactorsError):
    """A hook aborted the turn; the history was closed so it stays valid."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"turn aborted: {reason}")


# --- tools ------------------------------------------------------------------------


class ToolError(PodactorsError):
    """Raise from a tool to fail with a message written for the model.

    The registry turns it into an error result whose summary is the message itself,
    without the ``ExceptionType:`` prefix other exceptions get.
    """


class ScopeError(ToolError):
    """A file operation was refused by the pod's scope.

    ``path`` is the path as asked for (absolute), ``real_path`` what it resolves to,
    ``wanted`` the permission that was needed (``read`` | ``write``) and ``allowed`` what
    the scope grants there (``none`` | ``read`` | ``write``). The message names them all.
    """

    def __init__(
        self, message: str, *, path: Path, real_path: Path, wanted: str, allowed: str
    ) -> None:
        super().__init__(message)
        self.path = path
        self.real_path = real_path
        self.wanted = wanted
        self.allowed = allowed


class TaskNotFound(ToolError):
    """No task with this id exists in the session's task list."""

    def __init__(self, task_id: int) -> None:
        super().__init__(f"no task #{task_id}")
        self.task_id = task_id


# --- actors -------------------------------------------------------------------------


class ActorClosed(PodactorsError):
    """The actor stopped (or was never running): its mailbox takes no more messages."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"actor {name!r} is closed")


class AskTimeout(PodactorsError):
    """An ``ask`` got no answer within its timeout."""

    def __init__(self, name: str, timeout: float):
        self.name = name
        self.timeout = timeout
        super().__init__(f"actor {name!r} did not answer within {timeout:g}s")


# --- compaction -----------------------------------------------------------------------


class CompactError(PodactorsError):
    """A compaction failed; the pod stays on its session. ``reason`` says which guard or step
    failed (``nothing_to_compact``, ``post_condition``, ``thrash``, ``no_summary``,
    ``worker``, ``commit``); the message carries the numbers."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


# --- pods -----------------------------------------------------------------------------


ErrorCode = Literal[
    "already_running",
    "not_running",
    "not_paused",
    "invalid_request",
    "provider_error",
    "tool_error",
    "internal",
]
"""The protocol's error codes: why a method was refused or a run failed."""


class PodError(PodactorsError):
    """A pod refused a method or a run failed; ``code`` is the protocol error code
    (``already_running``, ``not_running``, ``not_paused``, ``invalid_request``,
    ``provider_error``, ``tool_error``, ``internal``)."""

    def __init__(self, code: ErrorCode, message: str):
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class SupervisorEscalated(PodactorsError):
    """A pod restarted more than the supervisor's intensity allows; the supervisor gave up."""

    def __init__(self, pod: str, restarts: int, within: float, reason: str):
        self.pod = pod
        self.restarts = restarts
        self.within = within
        self.reason = reason
        super().__init__(
            f"pod {pod} restarted {restarts} times within {within:g}s (last: {reason}); "
            "the supervisor escalates"
        )


# --- websocket client ---------------------------------------------------------------


class ConnectionRefused(PodactorsError):
    """The server could not be reached or refused the websocket handshake.

    ``status`` is the HTTP status of a rejected handshake (401 for a wrong or missing
    token, 403 for a foreign ``Origin``), ``None`` when no HTTP answer came (nothing
    listening, a timeout, a broken connection).
    """

    def __init__(self, url: str, status: int | None, detail: str = ""):
        self.url = url
        self.status = status
        self.detail = detail
        why = f"HTTP {status}" if status is not None else "no handshake"
        super().__init__(f"{url}: connection refused ({why}){f': {detail}' if detail else ''}")


class Disconnected(PodactorsError):
    """The connection is closed; ``code`` and ``reason`` are the websocket close frame's.

    ``code`` is 1009 when the server closed because a message was too big, ``None`` when
    the connection ended without a close frame.
    """

    def __init__(self, code: int | None, reason: str | None):
        self.code = code
        self.reason = reason
        super().__init__(f"websocket closed (code {code}{f': {reason}' if reason else ''})")


def describe_error(exc: BaseException) -> str:
    """How ``exc`` reads to a user: a podactors error's own message, else ``Type: message``."""
    return str(exc) if isinstance(exc, PodactorsError) else f"{type(exc).__name__}: {exc}"


def leaf_errors(exc: BaseException) -> list[BaseException]:
    """The exceptions inside ``exc``, depth first: ``exc`` itself unless it is a group."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaf_errors(inner)]
    return [exc]


def single_error(exc: BaseException) -> BaseException:
    """The one error to raise or show for ``exc``, keeping every cause.

    Outside a group that is ``exc``; for an exception group, its first leaf, with each
    other leaf added to it as a note (``also: Type: message``), so nothing is dropped.
    """
    first, *others = leaf_errors(exc)
    for other in others:
        note = f"also: {type(other).__name__}: {other}"
        if note not in getattr(first, "__notes__", ()):
            first.add_note(note)
    return first
