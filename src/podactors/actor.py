"""The actor kernel: a task with a bounded mailbox, and the handle that talks to it.

An actor is started with ``handle = await nursery.start(actor.run)``. ``tell`` puts a
message in its mailbox (waiting while the mailbox is full: backpressure, never a drop);
``ask`` also waits for the answer, which travels back on a one-shot channel, exceptions
included. When an actor stops, for whatever reason, everyone still waiting on it gets
:class:`~podactors.errors.ActorClosed` instead of hanging: queued asks are answered with
it and later sends fail with it.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import attrs
import outcome
import trio

from podactors.errors import ActorClosed, AskTimeout

M = TypeVar("M")
T = TypeVar("T")

DEFAULT_MAILBOX_SIZE = 64


class Reply(Generic[T]):
    """A one-shot answer slot: the first result set wins, whoever waits gets it.

    It answers an ``ask`` and serves as the ticket of work that ends later (a run, a
    compaction): ``await reply.wait()`` returns the value or raises the error.
    """

    __slots__ = ("_waiters", "outcome")

    def __init__(self) -> None:
        self._waiters: list[trio.lowlevel.Task] | None = None
        self.outcome: outcome.Outcome[T] | None = None

    def set(self, result: outcome.Outcome[T]) -> None:
        """Deliver ``result`` unless an answer was already delivered."""
        if self.outcome is None:
            self.outcome = result
            waiters, self._waiters = self._waiters, None
            for task in waiters or ():
                trio.lowlevel.reschedule(task)

    def deliver(self, value: T) -> None:
        """Deliver ``value`` (a no-op once answered)."""
        self.set(outcome.Value(value))

    def fail(self, error: BaseException) -> None:
        """Deliver ``error``, to be raised in the waiter (a no-op once answered)."""
        self.set(outcome.Error(error))

    def refuse(self, name: str) -> None:
        """Answer with :class:`ActorClosed` (a no-op once answered)."""
        self.fail(ActorClosed(name))

    async def wait(self) -> T:
        """The answer, or its exception raised."""
        if self.outcome is None:
            task = trio.lowlevel.current_task()
            waiters = self._waiters = self._waiters or []
            waiters.append(task)

            def abort(_: Any) -> trio.lowlevel.Abort:
                waiters.remove(task)
                return trio.lowlevel.Abort.SUCCEEDED

            await trio.lowlevel.wait_task_rescheduled(abort)
        else:
            await trio.lowlevel.checkpoint()
        assert self.outcome is not None
        return self.outcome.unwrap()


class Envelope(Generic[M]):
    """A message in a mailbox, with the slot its answer goes to (for ``ask``)."""

    __slots__ = ("message", "reply")

    def __init__(self, message: M, reply: Reply[Any] | None = None) -> None:
        self.message = message
        self.reply = reply


@attrs.frozen
class MailboxStatistics:
    """A snapshot of a mailbox: messages queued, its size, and tasks waiting to send."""

    queued: int
    size: float
    waiting_senders: int


class ActorHandle(Generic[M]):
    """The caller's side of an actor: safe to share between tasks."""

    def __init__(self, name: str, mailbox: trio.MemorySendChannel[Envelope[M]]):
        self.name = name
        self._mailbox = mailbox

    def __repr__(self) -> str:
        return f"ActorHandle({self.name!r})"

    async def tell(self, message: M) -> None:
        """Queue ``message``; waits while the mailbox is full. Raises ActorClosed."""
        await self._send(Envelope(message))

    def tell_nowait(self, message: M) -> None:
        """Queue ``message`` or raise ``trio.WouldBlock`` when the mailbox is full."""
        try:
            self._mailbox.send_nowait(Envelope(message))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ActorClosed(self.name) from None

    async def ask(self, message: M, *, timeout: float | None = None) -> Any:
        """Send ``message`` and return the actor's answer (or raise its exception).

        Raises :class:`AskTimeout` when no answer came within ``timeout`` seconds and
        :class:`ActorClosed` when the actor stopped before answering.
        """
        reply: Reply[Any] = Reply()
        if timeout is None:
            await self._send(Envelope(message, reply))
            return await reply.wait()
        with trio.move_on_after(timeout):
            await self._send(Envelope(message, reply))
            return await reply.wait()
        raise AskTimeout(self.name, timeout)

    def statistics(self) -> MailboxStatistics:
        """How full the mailbox is."""
        stats = self._mailbox.statistics()
        return MailboxStatistics(
            stats.current_buffer_used, stats.max_buffer_size, stats.tasks_waiting_send
        )

    async def _send(self, envelope: Envelope[M]) -> None:
        try:
            await self._mailbox.send(envelope)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ActorClosed(self.name) from None


class Actor(Generic[M]):
    """Base class: override :meth:`handle`; start with ``await nursery.start(a.run)``.

    Messages are handled one at a time, in order. An exception from :meth:`handle`
    goes back to an asker; from a ``tell`` it stops the actor (and propagates into the
    parent's nursery, where a supervisor can see it). ``address`` is the actor's own
    handle once it runs.
    """

    name: str = "actor"
    mailbox_size: int = DEFAULT_MAILBOX_SIZE

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the mailbox until it is closed or the actor's scope is cancelled."""
        send, receive = trio.open_memory_channel[Envelope[M]](self.mailbox_size)
        self.address = ActorHandle(self.name, send)
        self._stopping = False
        task_status.started(self.on_started())
        try:
            async for envelope in receive:
                await self._dispatch(envelope)
                if self._stopping:
                    break
        finally:
            _refuse_remaining(receive, self.name)

    async def handle(self, message: M) -> Any:
        """Act on one message; the return value answers an ``ask``."""
        raise NotImplementedError

    def on_started(self) -> Any:
        """Called once the mailbox exists, before the first message; what it returns is
        what ``nursery.start(actor.run)`` returns (the actor's :class:`ActorHandle`, unless
        a subclass hands out something richer built on it)."""
        return self.address

    def stop(self) -> None:
        """Stop after the message being handled; queued and later messages are refused."""
        self._stopping = True

    async def _dispatch(self, envelope: Envelope[M]) -> None:
        if envelope.reply is None:
            await self.handle(envelope.message)
            return
        reply = envelope.reply
        try:  # Cancelled and friends are not answers: they belong to the actor's own scope
            reply.deliver(await self.handle(envelope.message))
        except Exception as exc:
            reply.fail(exc)
        finally:
            reply.refuse(self.name)


class WorkingActor(Actor[M]):
    """An actor whose work goes on as tasks beside its mailbox, in a nursery of its own
    (``work``), so that it keeps serving messages (a cancel, say) while the work runs.
    The work ends with the actor."""

    work: trio.Nursery

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the mailbox, with the work's nursery open beside it."""
        async with trio.open_nursery() as nursery:
            self.work = nursery
            try:
                await super().run(task_status=task_status)
            finally:
                nursery.cancel_scope.cancel()


def _refuse_remaining(receive: trio.MemoryReceiveChannel[Envelope[Any]], name: str) -> None:
    """Close the mailbox and answer every queued ask with ActorClosed."""
    while True:
        try:
            envelope = receive.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            break
        if envelope.reply is not None:
            envelope.reply.refuse(name)
    receive.close()
