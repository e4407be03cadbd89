"""The wire types of podactors: events a pod emits and methods a client sends.

Both are msgspec Structs tagged by a snake_case ``type`` field, so the websocket speaks
them as JSON and in-process subscribers get the same values. Every event carries the
``pod`` that emitted it and that pod's ``seq`` (1, 2, 3, … per pod).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from podactors.items import HistoryItem

PodStatus = Literal["idle", "running", "paused", "compacting", "stopped"]
RunOutcome = Literal["finished", "paused", "limit_reached", "cancelled", "error"]
ErrorCode = Literal[
    "already_running",
    "not_running",
    "not_paused",
    "invalid_request",
    "provider_error",
    "tool_error",
    "internal",
]
AlertLevel = Literal["info", "warn", "error"]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event: which pod, and its per-pod sequence number."""

    pod: str = ""
    seq: int = 0


class TurnStart(Event, frozen=True, tag="turn_start"):
    """A run's turn began; ``turn`` counts turns of the session."""

    turn: int


class TurnEnd(Event, frozen=True, tag="turn_end"):
    """A turn ended."""

    turn: int


class LlmCallStart(Event, frozen=True, tag="llm_call_start"):
    """An LLM request is being sent with ``history_len`` items."""

    index: int
    history_len: int


class LlmCallEnd(Event, frozen=True, tag="llm_call_end"):
    """An LLM call finished."""

    index: int
    stop_reason: str


class TextDelta(Event, frozen=True, tag="text_delta"):
    """A piece of assistant text."""

    text: str


class TextDone(Event, frozen=True, tag="text_done"):
    """An assistant message is complete."""

    text: str


class ThinkingDelta(Event, frozen=True, tag="thinking_delta"):
    """A piece of model thinking."""

    text: str


class ThinkingDone(Event, frozen=True, tag="thinking_done"):
    """A thinking block is complete."""

    text: str


class ToolCallStart(Event, frozen=True, tag="tool_call_start"):
    """The model began a tool call."""

    id: str
    name: str


class ToolCallArgsDelta(Event, frozen=True, tag="tool_call_args_delta"):
    """A fragment of a tool call's JSON arguments."""

    id: str
    delta: str


class ToolCallDone(Event, frozen=True, tag="tool_call_done"):
    """A tool call with its parsed arguments."""

    id: str
    name: str
    arguments: dict[str, Any]


class ToolResult(Event, frozen=True, tag="tool_result"):
    """A tool call's result (content may be cut for the wire)."""

    call_id: str
    summary: str
    is_error: bool = False
    content: str | None = None


class UsageReport(Event, frozen=True, tag="usage"):
    """Tokens of one LLM call, and the history length it saw."""

    history_len: int
    input_total: int
    cache_read: int = 0
    cache_write: int = 0
    output: int = 0


class SystemItemAdded(Event, frozen=True, tag="system_item"):
    """A system item (a notification, a child's event) was committed to the session."""

    item: HistoryItem


class RunEnd(Event, frozen=True, tag="run_end"):
    """A run ended; ``session_id`` is the session it ended on."""

    outcome: RunOutcome
    session_id: str
    llm_calls: int = 0


class Error(Event, frozen=True, tag="error"):
    """A method was refused or a run failed."""

    code: ErrorCode
    message: str


class Status(Event, frozen=True, tag="status"):
    """The pod's status changed."""

    status: PodStatus


class Alert(Event, frozen=True, tag="alert"):
    """Something an operator should know: a restart, a failed metric write, …"""

    level: AlertLevel
    source: str
    message: str


class SessionRotated(Event, frozen=True, tag="session_rotated"):
    """The pod moved to another session (forked after a foreign write, or compacted)."""

    old_session_id: str
    new_session_id: str
    reason: str


class CompactStart(Event, frozen=True, tag="compact_start"):
    """Compaction began."""

    tokens_before: int = 0


class CompactDone(Event, frozen=True, tag="compact_done"):
    """Compaction produced a new session."""

    old_session_id: str
    new_session_id: str
    tokens_before: int
    tokens_after: int
    duration: float


class CompactFailed(Event, frozen=True, tag="compact_failed"):
    """Compaction failed; the pod stays on its session."""

    error: str


class Snapshot(Event, frozen=True, tag="snapshot"):
    """Where a pod stands: sent once on attach and after a subscriber lagged."""

    status: PodStatus
    session_id: str | None
    turn_count: int
    history: list[HistoryItem]
    last_seq: int


class Lagged(Event, frozen=True, tag="lagged"):
    """This subscriber fell behind and ``missed`` events were dropped for it."""

    missed: int


AnyEvent = (
    TurnStart
    | TurnEnd
    | LlmCallStart
    | LlmCallEnd
    | TextDelta
    | TextDone
    | ThinkingDelta
    | ThinkingDone
    | ToolCallStart
    | ToolCallArgsDelta
    | ToolCallDone
    | ToolResult
    | UsageReport
    | SystemItemAdded
    | RunEnd
    | Error
    | Status
    | Alert
    | SessionRotated
    | CompactStart
    | CompactDone
    | CompactFailed
    | Snapshot
    | Lagged
)
"""Every event type."""


# --- methods --------------------------------------------------------------------------


class Method(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every method: the pod it is for."""

    pod: str


class Attach(Method, frozen=True, tag="attach"):
    """Subscribe to the pod: a snapshot, then live events."""


class Run(Method, frozen=True, tag="run"):
    """Start a run with user input."""

    input: str


class Resume(Method, frozen=True, tag="resume"):
    """Continue a paused run."""


class Cancel(Method, frozen=True, tag="cancel"):
    """Cancel the running turn."""


class Pause(Method, frozen=True, tag="pause"):
    """Pause the running turn at its next step."""


class Notify(Method, frozen=True, tag="notify"):
    """Commit a notification; starts a turn when the pod is idle."""

    message: str
    source: str | None = None


class Compact(Method, frozen=True, tag="compact"):
    """Compact the pod's session now."""


class Shutdown(Method, frozen=True, tag="shutdown"):
    """Stop the pod, persisting an interrupted turn."""


class GetSnapshot(Method, frozen=True, tag="get_snapshot"):
    """Ask for a snapshot without subscribing."""


AnyMethod = Attach | Run | Resume | Cancel | Pause | Notify | Compact | Shutdown | GetSnapshot
"""Every method type."""

_method_decoder: msgspec.json.Decoder[AnyMethod] = msgspec.json.Decoder(AnyMethod)
_encoder = msgspec.json.Encoder()


def decode_method(data: bytes | str) -> AnyMethod:
    """Parse one JSON method; raises ``msgspec.ValidationError``/``DecodeError``."""
    return _method_decoder.decode(data)


def encode_event(event: AnyEvent) -> bytes:
    """One event as JSON."""
    return _encoder.encode(event)
