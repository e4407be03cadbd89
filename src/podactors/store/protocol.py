"""The :class:`Store` protocol: what a pod and its supervisor need of a session store.

:class:`~podactors.store.fs.FsStore` is the implementation; a pod or a supervisor accepts
anything with these members. Maintenance (``list_sessions``, ``verify``, ``gc``…) is not
part of it: that is the business of whoever owns the concrete store.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from podactors.store.entries import LogEntry, Origin, SessionStart
from podactors.store.fs import FsStore, PodRef, SessionRef
from podactors.store.replay import SessionState

__all__ = ["Store"]


class Store(Protocol):
    """A session store as pods and supervisors use it.

    Sessions are append-only logs of :class:`~podactors.store.entries.LogEntry` named by
    id; a pod ref names the session a pod continues. Every method is async and may block
    only in a worker thread.
    """

    @property
    def root(self) -> Path:
        """The store's directory; the supervisor writes its websocket token file there."""
        ...

    async def create_session(self, start: SessionStart) -> SessionRef:
        """Create a session whose first entry is ``start``; returns its ref."""
        ...

    async def append(self, session_id: str, entries: Iterable[LogEntry], expected_head: str) -> str:
        """Durably append ``entries`` if the head is still ``expected_head``; returns the new
        head. Raises :class:`~podactors.errors.HeadMoved`, writing nothing, when another
        writer moved the head."""
        ...

    async def restore(self, session_id: str) -> SessionState:
        """Fold the session's entries into a :class:`~podactors.store.replay.SessionState`."""
        ...

    async def fork(self, session_id: str, at: int | None = None) -> SessionRef:
        """A new session holding the first ``at`` entries of ``session_id`` (all by default),
        with its origin ``forked_from`` that session."""
        ...

    async def create_compacted(self, state: SessionState, origin: Origin) -> SessionRef:
        """A new session that starts from ``state`` (prompt, config, history) with ``origin``."""
        ...

    async def get_pod_ref(self, name: str) -> PodRef | None:
        """What the pod ``name`` points to, or ``None`` for a pod the store does not know."""
        ...

    async def set_pod_ref(self, name: str, ref: PodRef) -> None:
        """Atomically point the pod ``name`` at ``ref``."""
        ...


_fs_store_is_a_store: type[Store] = FsStore
