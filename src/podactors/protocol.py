"""The wire types of podactors: events a pod emits and methods a client sends.

Both are msgspec Structs tagged by a snake_case ``type`` field, so the websocket speaks
them as JSON and in-process subscribers get the same values. Every event carries the
``pod`` that emitted it and that pod's ``seq`` (1, 2, 3, … per pod).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from podactors.errors import ErrorCode as ErrorCode
from podactors.items import HistoryItem

PodStatus = Literal["idle", "running", "paused", "compacting", "stopped"]
RunOutcome = Literal["finished", "paused", "limit_reached", "cancelled", "error"]
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
    """A method was refused or a run failed; ``id`` is the refused method's, if it had one."""

    code: ErrorCode
    message: str
    id: str | None = None


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


# --- results and answers ----------------------------------------------------------------


class RunResult(msgspec.Struct, frozen=True, tag="run_result", tag_field="kind"):
    """How a run ended and the session it ended on."""

    outcome: RunOutcome
    session_id: str
    llm_calls: int = 0
    error: str | None = None


class CompactionTimings(msgspec.Struct):
    """Where one compaction's time went, in seconds (``time.perf_counter`` deltas).

    The compactor fills ``occupancy`` (measuring the context before), ``split`` (the token
    timeline and the choice of the retained tail), ``summary_input`` (building the
    summarising worker's stripped input), ``worker`` (the summarising worker's turn, less
    ``auto_read``) and ``auto_read`` (the wall time while files it marked were being read).
    The pod fills ``persist`` (writing the new session and the pod ref) and ``swap``
    (switching to it in memory and telling subscribers).
    """

    occupancy: float = 0.0
    split: float = 0.0
    summary_input: float = 0.0
    worker: float = 0.0
    auto_read: float = 0.0
    persist: float = 0.0
    swap: float = 0.0

    @property
    def total(self) -> float:
        """The sum of the phases."""
        return (
            self.occupancy
            + self.split
            + self.summary_input
            + self.worker
            + self.auto_read
            + self.persist
            + self.swap
        )


class CompactResult(msgspec.Struct, frozen=True, tag="compact_result", tag_field="kind"):
    """How a manual compaction ended and the session the pod is on after it.

    ``outcome`` is ``compacted``, ``failed`` (``error`` says why; the pod stays on its
    session) or ``cancelled``. The token counts are estimates. ``timings`` (of a compaction
    that succeeded) says where its time went, phase by phase.
    """

    outcome: Literal["compacted", "failed", "cancelled"]
    session_id: str
    tokens_before: int = 0
    tokens_after: int = 0
    error: str | None = None
    timings: CompactionTimings | None = None


class Reply(Event, frozen=True, tag="reply"):
    """The answer to a method sent with an ``id`` (a refusal is an ``error`` with it).

    ``started``: the method started a run or a compaction, whose result follows as a
    ``done`` with the same ``id``. ``snapshot`` and ``history`` answer ``get_snapshot`` /
    ``attach`` and ``get_history``.
    """

    id: str
    started: bool = False
    snapshot: Snapshot | None = None
    history: list[HistoryItem] | None = None


class Done(Event, frozen=True, tag="done"):
    """The result of the run or compaction that the method ``id`` started."""

    id: str
    result: RunResult | CompactResult


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
    | Reply
    | Done
)
"""Every event type (``reply`` and ``done`` go only to the connection that asked)."""


# --- methods --------------------------------------------------------------------------


class Method(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every method: the pod it is for, and an optional ``id`` to be answered by.

    Over the websocket, a method with an ``id`` gets a ``reply`` (or an ``error``) with
    that id, and a ``done`` when the run or compaction it started ends.
    """

    pod: str
    id: str | None = None


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


class GetHistory(Method, frozen=True, tag="get_history"):
    """Ask for the pod's whole history, as the model sees it."""


AnyMethod = (
    Attach | Run | Resume | Cancel | Pause | Notify | Compact | Shutdown | GetSnapshot | GetHistory
)
"""Every method type."""

_method_decoder: msgspec.json.Decoder[AnyMethod] = msgspec.json.Decoder(AnyMethod)
_encoder = msgspec.json.Encoder()


def decode_method(data: bytes | str) -> AnyMethod:
    """Parse one JSON method; raises ``msgspec.ValidationError``/``DecodeError``."""
    return _method_decoder.decode(data)


def encode_event(event: AnyEvent) -> bytes:
    """One event as JSON."""
    return _encoder.encode(event)
