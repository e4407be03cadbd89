"""What a user holds of a pod: its methods, what it shows of itself, and its events.

A :class:`PodHandle` speaks to its pod only in messages: every method goes through the
pod's mailbox (:class:`~podactors.actor.ActorHandle`), events come from the pod's fan-out,
and ``status``, ``session_id`` and ``turn_count`` are read off a :class:`PodView` that the
pod updates and nobody else writes. The handle holds no reference to the pod itself, so
the same interface (:class:`PodApi`) also sits in front of a pod across a websocket
(:class:`podactors.client.RemotePod`).

Methods a pod refuses raise :class:`~podactors.errors.PodError` with the protocol error
code; a pod that stopped raises :class:`~podactors.errors.ActorClosed`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import attrs

from podactors import protocol as proto
from podactors.actor import ActorHandle, Reply
from podactors.errors import ActorClosed
from podactors.fanout import Fanout, Subscription
from podactors.items import HistoryItem
from podactors.protocol import CompactResult, RunResult

RunTicket = Reply[RunResult]
"""The pending result of a run: ``await ticket.wait()``."""
CompactTicket = Reply[CompactResult]
"""The pending result of a compaction: ``await ticket.wait()``."""


@attrs.define
class PodView:
    """What a pod shows of itself without being asked; only the pod writes it."""

    name: str
    status: proto.PodStatus = "idle"
    session_id: str | None = None
    turn_count: int = 0


class PodApi(abc.ABC):
    """The methods of a pod, wherever it runs; subclasses say how a method travels."""

    name: str

    @property
    @abc.abstractmethod
    def status(self) -> proto.PodStatus:
        """``idle``, ``running``, ``paused``, ``compacting`` or ``stopped``."""

    @property
    @abc.abstractmethod
    def session_id(self) -> str | None:
        """The session the pod writes to now."""

    @property
    @abc.abstractmethod
    def turn_count(self) -> int:
        """Turns the pod's session has had."""

    @abc.abstractmethod
    async def call(self, method: proto.AnyMethod) -> Any:
        """Send ``method`` to the pod and return its answer (a ticket for work that
        goes on, a snapshot, a history, or ``None``)."""

    @abc.abstractmethod
    def subscribe(self) -> AbstractAsyncContextManager[AsyncIterator[proto.AnyEvent]]:
        """Events from now on, starting with a snapshot (``async with``)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, status={self.status!r})"

    async def start_run(self, text: str) -> RunTicket:
        """Start a turn on ``text``; await ``ticket.wait()`` for its result."""
        ticket: RunTicket = await self.call(proto.Run(pod=self.name, input=text))
        return ticket

    async def run(self, text: str) -> RunResult:
        """Run a turn on ``text`` and wait for it to end."""
        return await (await self.start_run(text)).wait()

    async def start_resume(self) -> RunTicket:
        """Continue a paused run; await ``ticket.wait()`` for its result."""
        ticket: RunTicket = await self.call(proto.Resume(pod=self.name))
        return ticket

    async def resume(self) -> RunResult:
        """Continue a paused run and wait for it to end."""
        return await (await self.start_resume()).wait()

    async def cancel(self) -> None:
        """Cancel the running run or compaction, or abandon a paused run."""
        await self.call(proto.Cancel(pod=self.name))

    async def pause(self) -> None:
        """Pause the running run at its next step."""
        await self.call(proto.Pause(pod=self.name))

    async def notify(self, message: str, *, source: str | None = None) -> RunTicket | None:
        """Commit a notification; returns the ticket of the turn it started, if idle."""
        ticket: RunTicket | None = await self.call(
            proto.Notify(pod=self.name, message=message, source=source)
        )
        return ticket

    async def start_compact(self) -> CompactTicket:
        """Start a compaction; await ``ticket.wait()`` for its result."""
        ticket: CompactTicket = await self.call(proto.Compact(pod=self.name))
        return ticket

    async def compact(self) -> CompactResult:
        """Compact the pod's session now and wait for the result.

        Refused (:class:`~podactors.errors.PodError`) without ``[compaction]``, unless the
        pod is idle, and before its first run. A manual compaction closes the circuit
        breaker first; it fails (``outcome="failed"``) rather than raising.
        """
        return await (await self.start_compact()).wait()

    async def shutdown(self) -> None:
        """Stop the pod; a running turn is cancelled and its interrupted state persisted."""
        await self.call(proto.Shutdown(pod=self.name))

    async def snapshot(self) -> proto.Snapshot:
        """Where the pod stands (recent history only)."""
        snapshot: proto.Snapshot = await self.call(proto.GetSnapshot(pod=self.name))
        return snapshot

    async def history(self) -> list[HistoryItem]:
        """The pod's whole history, as the model sees it."""
        history: list[HistoryItem] = await self.call(proto.GetHistory(pod=self.name))
        return history


class ViewedPod(PodApi):
    """A pod whose state is read off a :class:`PodView` (``_view``) kept up to date for it."""

    _view: PodView

    @property
    def status(self) -> proto.PodStatus:
        """``idle``, ``running``, ``paused``, ``compacting`` or ``stopped``."""
        return self._view.status

    @property
    def session_id(self) -> str | None:
        """The session the pod writes to now."""
        return self._view.session_id

    @property
    def turn_count(self) -> int:
        """Turns the pod's session has had."""
        return self._view.turn_count


class PodHandle(ViewedPod):
    """A pod in this process, reached through its mailbox, its fan-out and its view."""

    def __init__(
        self, address: ActorHandle[Any], fanout: Fanout, view: PodView, *, name: str
    ) -> None:
        self.name = name
        self._address = address
        self._fanout = fanout
        self._view = view

    def rebind(self, other: PodHandle) -> None:
        """Point this handle where ``other`` points: a restarted pod's mailbox and view
        (a supervisor does this, so handles outlive restarts)."""
        self._address, self._view = other._address, other._view

    async def call(self, method: proto.AnyMethod) -> Any:
        """Ask the pod's mailbox."""
        return await self._address.ask(method)

    def subscribe(self) -> AbstractAsyncContextManager[Subscription]:
        """Events from now on, starting with a snapshot (``async with``)."""
        return self._subscribe()

    @asynccontextmanager
    async def _subscribe(self) -> AsyncIterator[Subscription]:
        try:
            subscription: Subscription = await self._address.ask(proto.Attach(pod=self.name))
        except ActorClosed:  # between incarnations, or stopped: the fan-out's own snapshot
            subscription = self._fanout.open(first=self._fanout.snapshot())
        try:
            yield subscription
        finally:
            self._fanout.remove(subscription)


__all__ = ["CompactTicket", "PodApi", "PodHandle", "PodView", "RunTicket", "ViewedPod"]
