"""Replay: fold a session's entries into the state a pod resumes from."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from podactors.items import HistoryItem, Message, RequestConfig
from podactors.store.entries import (
    ConfigChanged,
    Extension,
    Item,
    LogEntry,
    Origin,
    Outcome,
    SessionStart,
    SystemItem,
    TurnEnd,
    Usage,
    UserInput,
)


class SessionState(msgspec.Struct):
    """Everything a session's log says, folded.

    ``last_run_interrupted`` is also true when the log ends inside a run (input or items
    after the last ``Outcome``): the process died before it could close the run.
    ``extensions`` holds the latest entry per domain; ``extension_log`` every one in order.
    ``entry_count`` is the number of log entries folded. ``session_id`` and ``head`` are
    set by the store's ``restore``: the head to name in the next append.
    """

    system_prompt: str = ""
    config: RequestConfig = RequestConfig()
    history: list[HistoryItem] = []
    turn_count: int = 0
    last_run_interrupted: bool = False
    last_outcome: Outcome | None = None
    usage: list[Usage] = []
    extensions: dict[str, Extension] = {}
    extension_log: list[Extension] = []
    origin: Origin | None = None
    entry_count: int = 0
    session_id: str | None = None
    head: str | None = None


def fold(entries: Iterable[LogEntry], state: SessionState | None = None) -> SessionState:
    """Apply ``entries`` in order to ``state`` (a fresh state by default) and return it."""
    state = SessionState() if state is None else state
    history = state.history
    count = 0
    for entry in entries:
        count += 1
        kind = type(entry)
        if kind is Item or kind is SystemItem:
            history.append(entry.item)  # type: ignore[union-attr]
            state.last_run_interrupted = True  # until an Outcome closes the run
        else:
            _APPLY[kind](state, entry)
    state.entry_count += count
    return state


def _session_start(state: SessionState, entry: SessionStart) -> None:
    state.system_prompt = entry.system_prompt
    state.config = entry.config
    state.history.extend(entry.history)
    state.origin = entry.origin


def _user_input(state: SessionState, entry: UserInput) -> None:
    state.history.append(Message("user", entry.content))
    state.last_run_interrupted = True  # until an Outcome closes the run


def _turn_end(state: SessionState, entry: TurnEnd) -> None:
    state.turn_count += 1


def _usage(state: SessionState, entry: Usage) -> None:
    state.usage.append(entry)


def _outcome(state: SessionState, entry: Outcome) -> None:
    state.last_outcome = entry
    state.last_run_interrupted = entry.interrupted


def _config_changed(state: SessionState, entry: ConfigChanged) -> None:
    state.config = entry.config
    if entry.system_prompt is not None:
        state.system_prompt = entry.system_prompt


def _extension(state: SessionState, entry: Extension) -> None:
    state.extensions[entry.domain] = entry
    state.extension_log.append(entry)


_APPLY: dict[type, Callable[[SessionState, Any], None]] = {
    SessionStart: _session_start,
    UserInput: _user_input,
    TurnEnd: _turn_end,
    Usage: _usage,
    Outcome: _outcome,
    ConfigChanged: _config_changed,
    Extension: _extension,
}
