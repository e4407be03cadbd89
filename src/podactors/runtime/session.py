"""The active session: everything about the session a pod is on, in one place.

:class:`ActiveSession` holds the session's identity in the store (id, head, entry
count), its usage records, and its content in memory (history, system prompt, request
config, cache key and breakpoint, as a :class:`~podactors.agent.worker.Transcript`). It
appends to the store, forks away when another writer moved the head, and switches to a
compacted session (stored first, switched to only once the pod ref names it). Items join
the history only once they are in the store, so memory never runs ahead of the log.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

import jinja2

from podactors.agent.worker import Transcript
from podactors.errors import HeadMoved, ManifestError
from podactors.items import HistoryItem, Message, RequestConfig
from podactors.manifest import Manifest
from podactors.store import SessionRef, SessionState, Store
from podactors.store.entries import LogEntry, Origin, Usage, session_start

FORK_ATTEMPTS = 3
"""How many times one append forks away from a head that keeps moving before it fails."""


class ActiveSession:
    """The session a pod writes to; see the module docstring."""

    def __init__(self, store: Store, *, config: RequestConfig):
        self.store = store
        self.transcript = Transcript(config=config)
        self.session_id: str | None = None
        self.head: str | None = None
        self.entries = 0
        self.usages: list[Usage] = []

    @property
    def history(self) -> list[HistoryItem]:
        """The committed history, as the model sees it (only the session changes it)."""
        return self.transcript.history

    @property
    def started(self) -> bool:
        """Whether the session exists in the store yet."""
        return self.session_id is not None

    async def create(self, system_prompt: str) -> None:
        """Create the session in the store with ``system_prompt`` (once, at the first turn)."""
        self.transcript.system_prompt = system_prompt
        transcript = self.transcript
        ref = await self.store.create_session(
            session_start(system_prompt, config=transcript.config, history=transcript.history)
        )
        self._move_to(ref, entries=1)

    def adopt(self, state: SessionState) -> None:
        """Continue the restored session ``state`` (prompt, config and history as stored)."""
        assert state.session_id is not None and state.head is not None
        self.transcript = Transcript(
            history=list(state.history),
            system_prompt=state.system_prompt,
            config=state.config,
            cache_key=state.session_id,
            cache_breakpoint=_summary_breakpoint(state),
        )
        self.session_id, self.head = state.session_id, state.head
        self.entries = state.entry_count
        self.usages = list(state.usage)

    async def append(self, entries: Sequence[LogEntry]) -> str | None:
        """Append ``entries``; returns the old session's id when another writer had moved
        its head and the session forked away from it first (``None`` otherwise)."""
        assert self.session_id is not None
        forked_from: str | None = None
        for _ in range(FORK_ATTEMPTS):
            try:
                self.head = await self.store.append(self.session_id, list(entries), self.head or "")
            except HeadMoved:
                forked_from = forked_from or self.session_id
                ref = await self.store.fork(self.session_id, at=self.entries)
                self._move_to(ref, entries=self.entries)
                continue
            self.entries += len(entries)
            return forked_from
        raise HeadMoved(self.session_id, expected=self.head, actual=None)

    def add(self, items: Sequence[HistoryItem]) -> None:
        """Items that are in the store join the history."""
        self.history.extend(items)

    def record_usage(self, usage: Usage) -> None:
        """A usage record that is in the store joins the timeline."""
        self.usages.append(usage)

    async def store_compacted(self, history: Sequence[HistoryItem]) -> SessionRef:
        """Store ``history`` as a new session compacted from this one (the pod stays on
        this one until :meth:`switch_to`)."""
        assert self.session_id is not None
        state = SessionState(
            system_prompt=self.transcript.system_prompt,
            config=self.transcript.config,
            history=list(history),
        )
        origin = Origin("compacted_from", self.session_id, head=self.head)
        return await self.store.create_compacted(state, origin)

    def switch_to(self, ref: SessionRef, history: Sequence[HistoryItem]) -> str:
        """Move to the compacted session ``ref`` holding ``history``; returns the old id.
        The summary (the first item) is the cached prefix, and usage starts again."""
        assert self.session_id is not None
        old = self.session_id
        self._move_to(ref, entries=1)
        self.transcript.history = list(history)
        self.transcript.cache_breakpoint = 0
        self.usages = []
        return old

    def _move_to(self, ref: SessionRef, *, entries: int) -> None:
        self.session_id, self.head, self.entries = ref.session_id, ref.head, entries
        self.transcript.cache_key = ref.session_id


def render_system_prompt(manifest: Manifest, tool_names: Sequence[str]) -> str:
    """The manifest's instruction template, rendered with the pod's surroundings."""
    workdir = Path(manifest.pod.workdir)
    agents = workdir / "AGENTS.md"
    context = {
        "now": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "workdir": str(workdir),
        "scope": _scope_summary(manifest),
        "tools": list(tool_names),
        "agents_md": agents.read_text(errors="replace") if agents.is_file() else "",
        "pod": manifest.pod.name,
    }
    try:
        return _JINJA.from_string(manifest.instruction_text()).render(context)
    except jinja2.TemplateError as exc:
        raise ManifestError(f"bad template: {exc}", key="worker.instruction") from None


_JINJA = jinja2.Environment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)


def _summary_breakpoint(state: SessionState) -> int | None:
    """A compacted session caches its prompt up to its summary, the first item."""
    compacted = state.origin is not None and state.origin.kind == "compacted_from"
    first = state.history[0] if state.history else None
    if compacted and isinstance(first, Message) and first.role == "system":
        return 0
    return None


def _scope_summary(manifest: Manifest) -> str:
    allow = [
        f"{rule.permission} {rule.target}{'' if rule.recursive else ' (top only)'}"
        for rule in manifest.scope.allow
    ]
    deny = [f"deny {rule.permission} {rule.target}" for rule in manifest.scope.deny]
    return "; ".join(allow + deny)


__all__ = ["FORK_ATTEMPTS", "ActiveSession", "render_system_prompt"]
