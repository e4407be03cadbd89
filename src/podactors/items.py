"""Conversation items: what a pod's history is made of.

Items are frozen msgspec Structs tagged by a snake_case ``type`` field, so a history
encodes to msgpack or JSON and decodes back into the exact types. Conversation items
(:class:`Message`, :class:`ToolCall`, :class:`ToolResult`, :class:`Reasoning`) are what the
model said or was told; system items (:class:`Notification`, :class:`FileAttachment`,
:class:`ChildEvent`) are what the runtime added to the context.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Role = Literal["user", "assistant", "system"]


class Message(msgspec.Struct, frozen=True, tag="message", tag_field="type"):
    """Text from the user, the assistant or the system.

    ``interrupted`` marks assistant text that was cut short by a cancel or a failed
    stream; it is kept so the model sees what it had already said.
    """

    role: Role
    content: str
    interrupted: bool = False


class ToolCall(msgspec.Struct, frozen=True, tag="tool_call", tag_field="type"):
    """A tool call the model asked for; ``arguments`` is the parsed JSON object."""

    id: str
    name: str
    arguments: dict[str, Any]


class ToolResult(msgspec.Struct, frozen=True, tag="tool_result", tag_field="type"):
    """The answer to the tool call ``call_id``.

    ``summary`` is one line that survives pruning; ``content`` is the full output,
    which a prune projection may drop from old requests.
    """

    call_id: str
    summary: str
    content: str | None = None
    is_error: bool = False


class Reasoning(msgspec.Struct, frozen=True, tag="reasoning", tag_field="type"):
    """Model thinking, kept with its signature or encrypted blob for the round trip."""

    text: str
    signature: str | None = None
    encrypted: str | None = None


class Notification(msgspec.Struct, frozen=True, tag="notification", tag_field="type"):
    """A message from outside the conversation (``Notify``), committed before it is seen."""

    text: str
    source: str | None = None


class FileAttachment(msgspec.Struct, frozen=True, tag="file_attachment", tag_field="type"):
    """A file (or a slice of one) placed in the context, e.g. re-read after compaction."""

    path: str
    content: str
    offset: int | None = None
    limit: int | None = None


class ChildEvent(msgspec.Struct, frozen=True, tag="child_event", tag_field="type"):
    """An event a child pod reported to its parent (turn ended, errored, shut down, …)."""

    child: str
    event: str
    detail: str = ""


ConversationItem = Message | ToolCall | ToolResult | Reasoning
"""What the model said or was told."""

SystemContent = Notification | FileAttachment | ChildEvent
"""What the runtime placed in the context."""

HistoryItem = (
    Message | ToolCall | ToolResult | Reasoning | Notification | FileAttachment | ChildEvent
)
"""Any item of a pod's history."""


class RequestConfig(msgspec.Struct, frozen=True):
    """How the model is asked: shared by the session log and the LLM layer.

    ``None`` leaves a setting to the provider's default.
    """

    model: str = ""
    max_tokens: int | None = None
    temperature: float | None = None
    stop_sequences: tuple[str, ...] = ()
    reasoning_effort: str | None = None
