"""The actor kernel: tell, ask, backpressure, and never hanging a caller."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from podactors.actor import Actor, ActorHandle
from podactors.errors import ActorClosed, AskTimeout


class Counter(Actor[tuple]):
    """Adds, echoes, fails or blocks on command."""

    name = "counter"
    mailbox_size = 2

    def __init__(self) -> None:
        self.total = 0
        self.gate = trio.Event()
        self.late = trio.Event()

    async def handle(self, message: tuple):
        match message:
            case ("add", n):
                self.total += n
                return self.total
            case ("fail", text):
                raise ValueError(text)
            case ("wait",):
                await self.gate.wait()
                return "released"
            case ("late",):
                await self.late.wait()
                return "too late"
        raise AssertionError(message)


async def start(nursery) -> tuple[Counter, ActorHandle]:
    actor = Counter()
    return actor, await nursery.start(actor.run)


async def test_nursery_start_hands_back_a_handle_that_tells_and_asks(nursery):
    actor, handle = await start(nursery)
    assert isinstance(handle, ActorHandle) and handle is actor.address
    await handle.tell(("add", 2))
    assert await handle.ask(("add", 3)) == 5  # in order: the tell was handled first


async def test_an_exception_goes_back_to_the_asker_and_the_actor_lives_on(nursery):
    _, handle = await start(nursery)
    with pytest.raises(ValueError, match="boom"):
        await handle.ask(("fail", "boom"))
    assert await handle.ask(("add", 1)) == 1


async def test_ask_timeout_is_a_typed_error(nursery, autojump_clock):
    actor, handle = await start(nursery)
    with pytest.raises(AskTimeout) as err:
        await handle.ask(("late",), timeout=1)
    assert err.value.timeout == 1
    actor.late.set()  # the answer now comes, to nobody
    assert await handle.ask(("add", 1)) == 1  # the late answer did not break the actor


async def test_a_full_mailbox_applies_backpressure_instead_of_dropping(nursery):
    actor, handle = await start(nursery)
    nursery.start_soon(handle.ask, ("wait",))
    await trio.testing.wait_all_tasks_blocked()
    handle.tell_nowait(("add", 1))
    handle.tell_nowait(("add", 1))
    with pytest.raises(trio.WouldBlock):
        handle.tell_nowait(("add", 1))
    nursery.start_soon(handle.tell, ("add", 1))
    await trio.testing.wait_all_tasks_blocked()
    assert handle.statistics().waiting_senders == 1
    actor.gate.set()
    assert await handle.ask(("add", 0)) == 3


async def test_callers_of_a_cancelled_actor_get_actor_closed_not_a_hang():
    results = []
    with trio.fail_after(5):
        async with trio.open_nursery() as outer:
            actor_scope = trio.CancelScope()

            async def run_actor(task_status=trio.TASK_STATUS_IGNORED):
                with actor_scope:
                    await Counter().run(task_status=task_status)

            handle = await outer.start(run_actor)

            async def ask(message):
                try:
                    results.append(await handle.ask(message))
                except ActorClosed as exc:
                    results.append(exc)

            outer.start_soon(ask, ("wait",))  # in progress when the actor stops
            await trio.testing.wait_all_tasks_blocked()
            outer.start_soon(ask, ("add", 1))  # queued behind it
            await trio.testing.wait_all_tasks_blocked()
            actor_scope.cancel()
    assert [type(r) for r in results] == [ActorClosed, ActorClosed]
    with pytest.raises(ActorClosed):
        await handle.tell(("add", 1))
    with pytest.raises(ActorClosed):
        handle.tell_nowait(("add", 1))


async def test_a_crash_on_tell_stops_the_actor_and_reaches_its_parent():
    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match="crash")):
        async with trio.open_nursery() as nursery:
            _, handle = await start(nursery)
            await handle.tell(("fail", "crash"))
    with pytest.raises(ActorClosed):
        await handle.ask(("add", 1))


async def test_stop_refuses_queued_and_later_messages(nursery):
    class Stopper(Counter):
        async def handle(self, message):
            if message == ("stop",):
                self.stop()
                return "stopping"
            return await super().handle(message)

    actor = Stopper()
    handle = await nursery.start(actor.run)
    nursery.start_soon(handle.ask, ("wait",))
    await trio.testing.wait_all_tasks_blocked()
    results = []

    async def ask(message):
        try:
            results.append(await handle.ask(message))
        except ActorClosed as exc:
            results.append(type(exc))

    nursery.start_soon(ask, ("stop",))
    await trio.testing.wait_all_tasks_blocked()
    nursery.start_soon(ask, ("add", 1))
    await trio.testing.wait_all_tasks_blocked()
    actor.gate.set()
    await trio.testing.wait_all_tasks_blocked()
    assert sorted(map(str, results)) == sorted(map(str, ["stopping", ActorClosed]))
