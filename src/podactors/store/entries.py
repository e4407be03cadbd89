"""Session log entries: the tagged union a session is made of.

A session is a linear list of :data:`LogEntry` values. Replaying them in order
(:func:`podactors.store.replay.fold`) gives the :class:`~podactors.store.replay.SessionState`
a pod resumes from.
"""

from __future__ import annotations

import time
from typing import Any, Literal, TypeVar

import msgspec

from podactors.items import ConversationItem, HistoryItem, RequestConfig, SystemContent

T = TypeVar("T")

OriginKind = Literal["forked_from", "compacted_from"]
OutcomeKind = Literal["finished", "paused", "limit_reached", "yielded", "error", "cancelled"]


class Origin(msgspec.Struct, frozen=True):
    """Where a session came from: the session and head it was forked or compacted from."""

    kind: OriginKind
    session_id: str
    head: str | None = None
    at: int | None = None


class SessionStart(msgspec.Struct, frozen=True, tag="session_start", tag_field="type"):
    """The first entry of every session: prompt, config and any inherited history."""

    system_prompt: str
    config: RequestConfig = RequestConfig()
    history: list[HistoryItem] = []
    origin: Origin | None = None
    created_at: float = 0.0


class UserInput(msgspec.Struct, frozen=True, tag="user_input", tag_field="type"):
    """Input a user gave to start a run; replays as a user message."""

    content: str


class Item(msgspec.Struct, frozen=True, tag="item", tag_field="type"):
    """A conversation item: assistant text, tool call, tool result or reasoning."""

    item: ConversationItem


class SystemItem(msgspec.Struct, frozen=True, tag="system_item", tag_field="type"):
    """A system item: notification, file attachment or child-pod event."""

    item: SystemContent


class TurnEnd(msgspec.Struct, frozen=True, tag="turn_end", tag_field="type"):
    """A run's turn finished; replay counts these."""


class Usage(msgspec.Struct, frozen=True, tag="usage", tag_field="type"):
    """Token usage reported for one LLM call that saw ``history_len`` items.

    ``input_total`` is the whole prompt, cache reads and writes included, as the provider
    reported it. ``pruned_tokens`` is the estimated size of what a prune projection left out
    of that request, so ``input_total + pruned_tokens`` estimates the unpruned history (what
    token accounting needs; see :mod:`podactors.compaction.tokens`).
    """

    history_len: int
    input_total: int
    cache_read: int = 0
    cache_write: int = 0
    output: int = 0
    pruned_tokens: int = 0


class Outcome(msgspec.Struct, frozen=True, tag="outcome", tag_field="type"):
    """How a run ended; ``interrupted`` when it was cut short (cancel, pause, crash)."""

    outcome: OutcomeKind
    interrupted: bool = False
    error: str | None = None


class ConfigChanged(msgspec.Struct, frozen=True, tag="config_changed", tag_field="type"):
    """The request config (and optionally the system prompt) changed from here on."""

    config: RequestConfig
    system_prompt: str | None = None


class Extension(msgspec.Struct, frozen=True, tag="extension", tag_field="type"):
    """A domain-specific record (metrics, memory pointer, task list, scope snapshot).

    ``payload`` stays encoded until its owner decodes it with :meth:`decode`, so the
    store can carry records whose types it does not know.
    """

    domain: str
    payload: msgspec.Raw

    @classmethod
    def of(cls, domain: str, value: Any) -> Extension:
        """Build an extension entry holding ``value`` (any msgspec-encodable value)."""
        return cls(domain, msgspec.Raw(msgspec.msgpack.encode(value)))

    def decode(self, type: type[T] = Any) -> T:  # type: ignore[assignment]
        """Decode the payload into ``type``."""
        return msgspec.msgpack.decode(self.payload, type=type)


LogEntry = (
    SessionStart
    | UserInput
    | Item
    | SystemItem
    | TurnEnd
    | Usage
    | Outcome
    | ConfigChanged
    | Extension
)
"""One entry of a session log."""


def session_start(
    system_prompt: str,
    *,
    config: RequestConfig | None = None,
    history: list[HistoryItem] | None = None,
    origin: Origin | None = None,
) -> SessionStart:
    """A :class:`SessionStart` stamped with the current time."""
    return SessionStart(
        system_prompt=system_prompt,
        config=config or RequestConfig(),
        history=list(history or []),
        origin=origin,
        created_at=time.time(),
    )
