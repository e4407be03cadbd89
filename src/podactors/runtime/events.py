"""Worker and LLM events as the protocol's pod events, by one explicit table.

:class:`EventTranslator` turns each :data:`~podactors.agent.worker.WorkerEvent` into the
fields of zero or more :mod:`podactors.protocol` events (the pod adds ``pod`` and
``seq``). It remembers what later events of the same call need: the tool-call ids by
stream index, and the history length the call was sent with.

=======================  =================================================================
worker event             protocol events
=======================  =================================================================
TextDelta                text_delta
ThinkingDelta            thinking_delta
ToolCallStart            tool_call_start
ToolCallArgsDelta        tool_call_args_delta (with the call's id)
ToolCallDone             tool_call_done
LlmCallStarted           llm_call_start
LlmCallFinished          text_done / thinking_done per item, usage, llm_call_end
ToolFinished             tool_result (content cut to ``WIRE_CONTENT_LIMIT``)
anything else            nothing
=======================  =================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from podactors import protocol as proto
from podactors.agent.worker import LlmCallFinished, LlmCallStarted, ToolFinished, WorkerEvent
from podactors.items import Message, Reasoning
from podactors.llm import events as llm_events

WIRE_CONTENT_LIMIT = 4096
"""Tool-result content is cut to this many characters in events (the log keeps it all)."""

Translated = list[tuple[type[proto.Event], dict[str, Any]]]
"""Event types and their fields, in the order they are emitted."""


class EventTranslator:
    """Translates one pod's worker events; see the module docstring."""

    def __init__(self) -> None:
        self._tool_ids: dict[int, str] = {}
        self._history_len = 0
        self._table: dict[type, Callable[[Any], Translated]] = {
            llm_events.TextDelta: lambda e: [(proto.TextDelta, {"text": e.text})],
            llm_events.ThinkingDelta: lambda e: [(proto.ThinkingDelta, {"text": e.text})],
            llm_events.ToolCallStart: self._tool_call_start,
            llm_events.ToolCallArgsDelta: self._tool_call_args,
            llm_events.ToolCallDone: self._tool_call_done,
            LlmCallStarted: self._llm_call_start,
            LlmCallFinished: self._llm_call_end,
            ToolFinished: self._tool_result,
        }

    def translate(self, event: WorkerEvent) -> Translated:
        """The protocol events for ``event`` (none for events the protocol leaves out)."""
        translate = self._table.get(type(event))
        return [] if translate is None else translate(event)

    def _tool_call_start(self, event: llm_events.ToolCallStart) -> Translated:
        self._tool_ids[event.index] = event.id
        return [(proto.ToolCallStart, {"id": event.id, "name": event.name})]

    def _tool_call_args(self, event: llm_events.ToolCallArgsDelta) -> Translated:
        call_id = self._tool_ids.get(event.index, "")
        return [(proto.ToolCallArgsDelta, {"id": call_id, "delta": event.delta})]

    def _tool_call_done(self, event: llm_events.ToolCallDone) -> Translated:
        call = event.call
        fields = {"id": call.id, "name": call.name, "arguments": call.arguments}
        return [(proto.ToolCallDone, fields)]

    def _llm_call_start(self, event: LlmCallStarted) -> Translated:
        self._tool_ids, self._history_len = {}, event.history_len
        return [(proto.LlmCallStart, {"index": event.index, "history_len": event.history_len})]

    def _llm_call_end(self, event: LlmCallFinished) -> Translated:
        response = event.response
        done: Translated = []
        for item in response.items:
            if isinstance(item, Message):
                done.append((proto.TextDone, {"text": item.content}))
            elif isinstance(item, Reasoning):
                done.append((proto.ThinkingDone, {"text": item.text}))
        usage = response.usage
        done.append(
            (
                proto.UsageReport,
                {
                    "history_len": self._history_len,
                    "input_total": usage.input_total,
                    "cache_read": usage.cache_read,
                    "cache_write": usage.cache_write,
                    "output": usage.output,
                },
            )
        )
        done.append((proto.LlmCallEnd, {"index": event.index, "stop_reason": response.stop_reason}))
        return done

    def _tool_result(self, event: ToolFinished) -> Translated:
        result = event.result
        content = None if result.content is None else result.content[:WIRE_CONTENT_LIMIT]
        fields = {
            "call_id": result.call_id,
            "summary": result.summary,
            "is_error": result.is_error,
            "content": content,
        }
        return [(proto.ToolResult, fields)]


__all__ = ["WIRE_CONTENT_LIMIT", "EventTranslator", "Translated"]
