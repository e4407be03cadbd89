"""Event fan-out: one publisher, any number of subscribers, none able to slow it.

Each subscriber has its own bounded buffer. Publishing never waits: when a subscriber's
buffer is full, further events are dropped *for that subscriber only* and counted; once
it has drained what it holds, it receives a :class:`~podactors.protocol.Lagged` marker
with the count, then a fresh snapshot, then live events again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs
import trio

from podactors.protocol import AnyEvent, Lagged

DEFAULT_BUFFER = 1024


@attrs.frozen
class FanoutStatistics:
    """Subscribers now, and events dropped for lagging subscribers since the start."""

    subscribers: int
    dropped: int


class Subscription:
    """One subscriber's view: an async iterator of events, ending when closed."""

    def __init__(self, size: int, snapshot: Callable[[], AnyEvent]):
        self._queue: deque[AnyEvent] = deque()
        self._size = size
        self._snapshot = snapshot
        self._missed = 0
        self._closed = False
        self._wakeup = trio.Event()

    def offer(self, event: AnyEvent) -> bool:
        """Queue ``event`` unless the buffer is full or the subscriber is catching up."""
        accepted = not self._missed and len(self._queue) < self._size
        if accepted:
            self._queue.append(event)
        else:
            self._missed += 1
        self._wakeup.set()
        return accepted

    def close(self) -> None:
        """End the iteration once the queued events are read."""
        self._closed = True
        self._wakeup.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> AnyEvent:
        await trio.lowlevel.checkpoint()
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._missed:
                missed, self._missed = self._missed, 0
                self._queue.append(self._snapshot())
                return Lagged(missed=missed)
            if self._closed:
                raise StopAsyncIteration
            self._wakeup = trio.Event()
            await self._wakeup.wait()


class Fanout:
    """Delivers each published event to every current subscriber.

    ``snapshot`` builds the snapshot a lagging subscriber gets after its ``lagged``
    marker; it is called when the subscriber gets there, so it is fresh. A restarted
    pod takes over the fanout (and its ``last_seq``), so subscribers outlive restarts.
    """

    def __init__(self, snapshot: Callable[[], AnyEvent], *, buffer: int = DEFAULT_BUFFER):
        self.snapshot = snapshot
        self._buffer = buffer
        self._subscribers: list[Subscription] = []
        self._dropped = 0
        self._closed = False
        self.last_seq = 0

    def publish(self, event: AnyEvent) -> None:
        """Offer ``event`` to every subscriber; never blocks."""
        self.last_seq = max(self.last_seq, event.seq)
        for subscriber in self._subscribers:
            if not subscriber.offer(event):
                self._dropped += 1

    def open(self, *, first: AnyEvent | None = None, buffer: int | None = None) -> Subscription:
        """A new subscription, ``first`` delivered before anything; :meth:`remove` ends it.

        Taking the snapshot for ``first`` and opening in the same step (no checkpoint
        between) is what guarantees the subscriber misses nothing after it.
        """
        subscription = Subscription(buffer or self._buffer, lambda: self.snapshot())
        if first is not None:
            subscription.offer(first)
        if self._closed:
            subscription.close()
        self._subscribers.append(subscription)
        return subscription

    def remove(self, subscription: Subscription) -> None:
        """Stop delivering to ``subscription`` and end its iteration."""
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)
        subscription.close()

    @asynccontextmanager
    async def subscribe(
        self, *, first: AnyEvent | None = None, buffer: int | None = None
    ) -> AsyncIterator[Subscription]:
        """Subscribe for the duration of the block; ``first`` is delivered before anything."""
        await trio.lowlevel.checkpoint()
        subscription = self.open(first=first, buffer=buffer)
        try:
            yield subscription
        finally:
            self.remove(subscription)

    def close(self) -> None:
        """End every subscription (after its queued events); later ones end at once."""
        self._closed = True
        for subscription in self._subscribers:
            subscription.close()

    def statistics(self) -> FanoutStatistics:
        """How many subscribe, and how many events were dropped for laggards."""
        return FanoutStatistics(len(self._subscribers), self._dropped)


__all__ = ["Fanout", "FanoutStatistics", "Subscription"]
