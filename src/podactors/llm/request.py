"""What an LLM call asks for, and the provider-neutral turns a history becomes.

Every provider speaks in alternating user/assistant turns; :func:`to_turns` groups a
history into them once, so each provider module only maps parts to its wire format.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
import msgspec

from podactors.items import (
    ChildEvent,
    FileAttachment,
    HistoryItem,
    Message,
    Notification,
    Reasoning,
    RequestConfig,
    ToolCall,
    ToolResult,
)

__all__ = ["Part", "Request", "RequestConfig", "ToolSpec", "Turn", "to_turns"]


class ToolSpec(msgspec.Struct, frozen=True):
    """A tool as the model sees it: name, description and JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


class Request(msgspec.Struct, frozen=True):
    """One LLM call.

    ``cache_breakpoint`` is the index of the last item of the cached prefix (Anthropic
    ``cache_control``); ``cache_key`` routes requests of one session to the same cache
    (OpenAI ``prompt_cache_key``).
    """

    system_prompt: str
    items: list[HistoryItem]
    tools: list[ToolSpec] = []
    config: RequestConfig = RequestConfig()
    cache_breakpoint: int | None = None
    cache_key: str | None = None


Part = Message | Reasoning | ToolCall | ToolResult
"""One element of a turn: text, thinking, a tool call or a tool result."""


@attrs.frozen
class Turn:
    """Consecutive parts of one role; ``indices`` are the history indices of the parts."""

    role: Literal["user", "assistant"]
    parts: list[Part]
    indices: list[int]


def to_turns(items: list[HistoryItem]) -> list[Turn]:
    """Group a history into alternating user/assistant turns.

    System items and system messages become user text (providers accept system text
    only at the top); tool results are user parts; reasoning and tool calls are
    assistant parts. Within a user turn, tool results come before text, as the wire
    formats require results to answer the preceding calls first.
    """
    turns: list[Turn] = []
    for index, item in enumerate(items):
        role, part = _role_and_part(item)
        if turns and turns[-1].role == role:
            turns[-1].parts.append(part)
            turns[-1].indices.append(index)
        else:
            turns.append(Turn(role, [part], [index]))
    for turn in turns:
        if turn.role == "user":
            _results_first(turn)
    return turns


def _role_and_part(item: HistoryItem) -> tuple[Literal["user", "assistant"], Part]:
    if isinstance(item, Message):
        if item.role == "assistant":
            return "assistant", item
        if item.role == "system":
            return "user", Message("user", f"<system>\n{item.content}\n</system>")
        return "user", item
    if isinstance(item, Reasoning | ToolCall):
        return "assistant", item
    if isinstance(item, ToolResult):
        return "user", item
    return "user", Message("user", system_item_text(item))


def system_item_text(item: Notification | FileAttachment | ChildEvent) -> str:
    """How a system item reads to the model."""
    if isinstance(item, Notification):
        source = f' source="{item.source}"' if item.source else ""
        return f"<notification{source}>\n{item.text}\n</notification>"
    if isinstance(item, FileAttachment):
        span = "" if item.offset is None else f' offset="{item.offset}"'
        return f'<file path="{item.path}"{span}>\n{item.content}\n</file>'
    return f'<child-event child="{item.child}" event="{item.event}">\n{item.detail}\n</child-event>'


def _results_first(turn: Turn) -> None:
    order = sorted(range(len(turn.parts)), key=lambda i: not isinstance(turn.parts[i], ToolResult))
    turn.parts[:] = [turn.parts[i] for i in order]
    turn.indices[:] = [turn.indices[i] for i in order]


def tool_result_text(result: ToolResult) -> str:
    """A tool result as text: its content, or its summary when content was pruned."""
    return result.content if result.content is not None else result.summary
