"""A deterministic, offline provider that plays a script of replies.

Used by demos, tests and benches. Its replies go through the same
:class:`~podactors.llm.assembler.ResponseAssembler` as the wire providers, so a worker
cannot tell it apart from a real stream. The script is a TOML file::

    [[reply]]
    thinking = "Read the README first."
    text = "Let me look."
    tool_calls = [{name = "read_file", arguments = {path = "README.md"}}]
    usage = {input_tokens = 1200, output_tokens = 40, cache_read = 1000, cache_write = 0}
    delay_ms = 20

Replies play in order; running out is a clear :class:`~podactors.errors.ProviderError`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import trio

from podactors.errors import ManifestError, ProviderError
from podactors.llm.assembler import ResponseAssembler
from podactors.llm.events import (
    Finish,
    LlmResponse,
    StreamDone,
    TextDelta,
    ThinkingDelta,
    ToolCallArgsDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageUpdate,
    WireEvent,
)
from podactors.llm.provider import EventListener
from podactors.llm.request import Request


class ScriptedToolCall(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A tool call a scripted reply makes."""

    name: str
    arguments: dict[str, Any] = {}


class ScriptedUsage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The usage a scripted reply reports; ``input_tokens`` counts the whole prompt."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read: int = 0
    cache_write: int = 0


class ScriptedReply(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One reply of a script."""

    text: str = ""
    thinking: str = ""
    tool_calls: list[ScriptedToolCall] = []
    usage: ScriptedUsage | None = None
    delay_ms: int = 0


class _Script(msgspec.Struct, forbid_unknown_fields=True):
    reply: list[ScriptedReply] = []


def load_script(path: str | Path) -> list[ScriptedReply]:
    """Read a script file; a bad one is a :class:`ManifestError` naming the file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return msgspec.convert(data, _Script).reply
    except OSError as exc:
        raise ManifestError(f"cannot read script: {exc.strerror}", file=path) from None
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ManifestError(f"invalid script: {exc}", file=path) from None


class ScriptedProvider:
    """Plays :class:`ScriptedReply` values in order, streaming text word by word."""

    name = "scripted"

    def __init__(self, replies: list[ScriptedReply]):
        self.replies = list(replies)
        self.requests: list[Request] = []

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedProvider:
        """A provider playing the script at ``path``."""
        return cls(load_script(path))

    def __repr__(self) -> str:
        return f"ScriptedProvider({len(self.replies)} replies, {len(self.requests)} played)"

    async def aclose(self) -> None:
        """Nothing to release."""

    async def stream(self, request: Request, on_event: EventListener | None = None) -> LlmResponse:
        """Play the next reply as a stream; raises ProviderError when the script ran out."""
        played = len(self.requests)
        if played >= len(self.replies):
            raise ProviderError(
                self.name, f"script exhausted: all {len(self.replies)} replies were played"
            )
        self.requests.append(request)
        reply = self.replies[played]
        if reply.delay_ms:
            await trio.sleep(reply.delay_ms / 1000)
        assembler = ResponseAssembler(self.name)
        assembler.request_id = f"scripted-{played}"
        for wire in _wire_events(reply, played, request):
            for event in assembler.add(wire):
                if on_event is not None:
                    await on_event(event)
        return assembler.finish()


def _wire_events(reply: ScriptedReply, played: int, request: Request) -> Iterator[WireEvent]:
    for piece in _words(reply.thinking):
        yield ThinkingDelta(piece)
    for piece in _words(reply.text):
        yield TextDelta(piece)
    for index, call in enumerate(reply.tool_calls):
        yield ToolCallStart(index, f"call_{played}_{index}", call.name)
        yield ToolCallArgsDelta(index, msgspec.json.encode(call.arguments).decode())
        yield ToolCallEnd(index)
    yield _usage(reply, request)
    yield Finish("tool_use" if reply.tool_calls else "end_turn")
    yield StreamDone()


def _words(text: str) -> list[str]:
    """Text cut after each run of spaces, as a model streams it."""
    return re.findall(r"\S+\s*|\s+", text)


def _usage(reply: ScriptedReply, request: Request) -> UsageUpdate:
    """The scripted usage, or an estimate of 4 bytes a token when the script gives none."""
    usage = reply.usage or ScriptedUsage()
    prompt_bytes = len(request.system_prompt) + len(msgspec.msgpack.encode(request.items))
    output = (
        len(reply.text)
        + len(reply.thinking)
        + sum(len(msgspec.json.encode(c.arguments)) for c in reply.tool_calls)
    )
    return UsageUpdate(
        input_total=usage.input_tokens if usage.input_tokens is not None else prompt_bytes // 4,
        cache_read=usage.cache_read,
        cache_write=usage.cache_write,
        output=usage.output_tokens if usage.output_tokens is not None else max(1, output // 4),
    )
