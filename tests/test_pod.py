"""The pod actor over real HTTP (the Anthropic stand-in) and a real store."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from standin_pods import standin_manifest

from podactors import protocol as proto
from podactors.agent.worker import INTERRUPTED
from podactors.errors import PodError
from podactors.handle import PodHandle
from podactors.items import Message, Notification, ToolResult
from podactors.llm.scripted import ScriptedReply, ScriptedToolCall
from podactors.manifest import Manifest
from podactors.runtime.pod import Pod
from podactors.store import FsStore
from podactors.store.entries import Outcome, SessionStart, SystemItem, TurnEnd, Usage, UserInput
from podactors.testing import StandinServer
from podactors.tools import tool


def manifest_for(server: StandinServer, workdir) -> Manifest:
    instruction = "You are {{ pod }}, working in {{ workdir }}. Tools: {{ tools | join(', ') }}."
    return standin_manifest(server, workdir, extra=f'[worker]\ninstruction = "{instruction}"')


class Gate:
    """A tool that blocks until released, to hold a run in the middle."""

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.release = trio.Event()

        @tool
        async def wait_for_gate(label: str) -> str:
            """Wait until the test opens the gate."""
            self.entered.set()
            await self.release.wait()
            return f"passed {label}"

        self.tool = wait_for_gate


def text(words: str) -> ScriptedReply:
    return ScriptedReply(text=words)


def call(name: str, **arguments) -> ScriptedReply:
    return ScriptedReply(tool_calls=[ScriptedToolCall(name, arguments)])


async def start_pod(
    nursery, tmp_path, replies, *, tools=()
) -> tuple[PodHandle, Pod, StandinServer, FsStore]:
    server = StandinServer(replies)
    await nursery.start(server.serve)
    store = FsStore(tmp_path / "store")
    pod = Pod(manifest_for(server, tmp_path), store, tools=tools)
    handle = await nursery.start(pod.run)
    return handle, pod, server, store


async def test_a_run_persists_every_step_and_closes_with_an_outcome(nursery, tmp_path):
    (tmp_path / "notes.txt").write_text("the answer is 42\n")
    replies = [call("read_file", path="notes.txt"), text("It says 42.")]
    handle, _pod, server, store = await start_pod(nursery, tmp_path, replies)
    with trio.fail_after(10):
        result = await handle.run("what do the notes say?")
    assert (result.outcome, result.session_id, result.llm_calls) == (
        "finished",
        handle.session_id,
        2,
    )
    entries = await store.read_entries(result.session_id)
    kinds = [type(e).__name__ for e in entries]
    assert kinds == [
        "SessionStart",
        "UserInput",
        "Item",
        "Usage",  # the tool call and its LLM call's usage
        "Item",  # the tool result
        "Item",
        "Usage",  # the answer
        "TurnEnd",
        "Outcome",
    ]
    assert entries[-1] == Outcome("finished", interrupted=False)
    prompt = entries[0].system_prompt
    assert prompt.startswith(f"You are alice, working in {tmp_path}.") and "read_file" in prompt
    assert server.requests[0]["system"][0]["text"] == prompt
    assert (await store.get_pod_ref("alice")).session_id == result.session_id
    history = await handle.history()
    assert history[-1] == Message("assistant", "It says 42.")
    assert "the answer is 42" in next(i for i in history if isinstance(i, ToolResult)).content


async def test_events_arrive_in_order_with_pod_and_seq(nursery, tmp_path):
    handle, *_ = await start_pod(nursery, tmp_path, [text("Hello there.")])
    async with handle.subscribe() as events:
        with trio.fail_after(10):
            await handle.run("hi")
        seen = []
        async for event in events:
            seen.append(event)
            if isinstance(event, proto.RunEnd):
                break
    assert isinstance(seen[0], proto.Snapshot) and seen[0].status == "idle"
    assert [e.seq for e in seen[1:]] == list(range(1, len(seen)))
    assert all(e.pod == "alice" for e in seen)
    kinds = [type(e) for e in seen]
    for expected in (
        proto.Status,
        proto.TurnStart,
        proto.LlmCallStart,
        proto.TextDelta,
        proto.TextDone,
        proto.UsageReport,
        proto.LlmCallEnd,
        proto.TurnEnd,
        proto.RunEnd,
    ):
        assert expected in kinds
    assert "".join(e.text for e in seen if isinstance(e, proto.TextDelta)) == "Hello there."


async def test_methods_follow_the_controller_rules(nursery, tmp_path):
    gate = Gate()
    replies = [call("wait_for_gate", label="a"), text("done")]
    handle, _pod, *_ = await start_pod(nursery, tmp_path, replies, tools=[gate.tool])
    for method, code in (
        (handle.resume, "not_paused"),
        (handle.cancel, "not_running"),
        (handle.pause, "not_running"),
    ):
        with pytest.raises(PodError) as err:
            await method()
        assert err.value.code == code
    with trio.fail_after(10):
        ticket = await handle.start_run("go")
        await gate.entered.wait()
        with pytest.raises(PodError) as err:
            await handle.run("again")
        assert err.value.code == "already_running" and handle.status == "running"
        gate.release.set()
        assert (await ticket.wait()).outcome == "finished"
    assert handle.status == "idle"


async def test_cancel_mid_tool_persists_an_interrupted_outcome(nursery, tmp_path):
    gate = Gate()
    handle, _pod, _server, store = await start_pod(
        nursery, tmp_path, [call("wait_for_gate", label="a"), text("next run")], tools=[gate.tool]
    )
    with trio.fail_after(10):
        ticket = await handle.start_run("go")
        await gate.entered.wait()
        await handle.cancel()
        result = await ticket.wait()
    assert result.outcome == "cancelled" and handle.status == "idle"
    entries = await FsStore(tmp_path / "store").read_entries(result.session_id)
    assert entries[-1] == Outcome("cancelled", interrupted=True)
    results = [
        e.item for e in entries if type(e).__name__ == "Item" and isinstance(e.item, ToolResult)
    ]
    assert [r.summary for r in results] == [INTERRUPTED]
    state = await store.restore(result.session_id)
    assert state.last_run_interrupted
    with trio.fail_after(10):
        assert (await handle.run("try again")).outcome == "finished"


async def test_pause_then_resume_finishes_the_run(nursery, tmp_path):
    gate = Gate()
    replies = [call("wait_for_gate", label="a"), text("resumed and done")]
    handle, _pod, server, store = await start_pod(nursery, tmp_path, replies, tools=[gate.tool])
    with trio.fail_after(10):
        ticket = await handle.start_run("go")
        await gate.entered.wait()
        await handle.pause()
        gate.release.set()
        paused = await ticket.wait()
        assert paused.outcome == "paused" and handle.status == "paused"
        assert len(server.requests) == 1  # paused before the next request
        entries = await store.read_entries(paused.session_id)
        assert entries[-1] == Outcome("paused", interrupted=True)
        resumed = await handle.resume()
    assert resumed.outcome == "finished"
    assert (await handle.history())[-1] == Message("assistant", "resumed and done")


async def test_notify_when_idle_commits_and_starts_a_turn(nursery, tmp_path):
    handle, _pod, server, store = await start_pod(nursery, tmp_path, [text("Noted.")])
    with trio.fail_after(10):
        ticket = await handle.notify("build #12 is green", source="ci")
        assert ticket is not None
        result = await ticket.wait()
    entries = await store.read_entries(result.session_id)
    assert SystemItem(Notification("build #12 is green", source="ci")) in entries
    assert not any(isinstance(e, UserInput) for e in entries)
    sent = server.requests[0]["messages"][-1]["content"][0]["text"]
    assert "build #12 is green" in sent


async def test_notify_while_running_enters_at_the_next_request(nursery, tmp_path):
    gate = Gate()
    replies = [call("wait_for_gate", label="a"), text("Saw it.")]
    handle, _pod, server, store = await start_pod(nursery, tmp_path, replies, tools=[gate.tool])
    with trio.fail_after(10):
        ticket = await handle.start_run("go")
        await gate.entered.wait()
        assert await handle.notify("deploy started") is None
        gate.release.set()
        result = await ticket.wait()
    entries = await store.read_entries(result.session_id)
    positions = [i for i, e in enumerate(entries) if isinstance(e, SystemItem)]
    tool_result_index = max(
        i
        for i, e in enumerate(entries)
        if type(e).__name__ == "Item" and isinstance(e.item, ToolResult)
    )
    assert positions and positions[0] > tool_result_index  # after the tool batch, not inside it
    second_request = server.requests[1]["messages"][-1]["content"]
    assert any("deploy started" in block.get("text", "") for block in second_request)


async def test_a_restored_pod_continues_without_re_rendering(nursery, tmp_path):
    handle, pod, server, store = await start_pod(nursery, tmp_path, [text("first"), text("second")])
    with trio.fail_after(10):
        first = await handle.run("one")
    await handle.shutdown()
    state = await store.restore((await store.get_pod_ref("alice")).session_id)
    revived = Pod(
        pod.manifest.with_overlay({"worker": {"instruction": "CHANGED {{ pod }}"}}), store
    )
    revived.adopt(state)
    revived_handle = await nursery.start(revived.run)
    revived.provider = pod.provider  # same stand-in, next scripted reply
    revived.worker.provider = pod.provider
    with trio.fail_after(10):
        second = await revived_handle.run("two")
    assert second.session_id == first.session_id
    entries = await store.read_entries(second.session_id)
    assert sum(isinstance(e, SessionStart) for e in entries) == 1
    assert server.requests[1]["system"][0]["text"] == server.requests[0]["system"][0]["text"]
    assert [type(e) for e in entries].count(TurnEnd) == 2
    assert (await store.restore(second.session_id)).turn_count == 2


async def test_a_foreign_write_makes_the_pod_fork_and_rotate(nursery, tmp_path):
    handle, _pod, _server, store = await start_pod(nursery, tmp_path, [text("one"), text("two")])
    with trio.fail_after(10):
        first = await handle.run("first")
    head = await store.head(first.session_id)
    await store.append(first.session_id, [Usage(0, 1)], head)  # another writer
    async with handle.subscribe() as events:
        with trio.fail_after(10):
            second = await handle.run("second")
        rotated, alerts = [], []
        async for event in events:
            if isinstance(event, proto.SessionRotated):
                rotated.append(event)
            if isinstance(event, proto.Alert):
                alerts.append(event)
            if isinstance(event, proto.RunEnd):
                break
    assert second.session_id != first.session_id
    assert rotated and rotated[0].old_session_id == first.session_id
    [alert] = alerts
    assert (alert.level, alert.source) == ("warn", "store")
    assert first.session_id in alert.message and second.session_id in alert.message
    assert (await store.get_pod_ref("alice")).session_id == second.session_id
    forked = await store.read_entries(second.session_id)
    assert Usage(0, 1) not in forked and UserInput("second") in forked


async def test_three_subscribers_one_never_reading_the_others_get_every_event(nursery, tmp_path):
    words = " ".join(f"w{i}" for i in range(1500))  # more events than a subscriber buffers
    handle, *_ = await start_pod(nursery, tmp_path, [text(words)])
    seen: dict[str, list] = {"a": [], "b": []}

    async def reader(name, task_status=trio.TASK_STATUS_IGNORED):
        async with handle.subscribe() as events:
            task_status.started()
            async for event in events:
                seen[name].append(event)
                if isinstance(event, proto.RunEnd):
                    return

    async with handle.subscribe() as stuck:
        async with trio.open_nursery() as readers:
            await readers.start(reader, "a")
            await readers.start(reader, "b")
            with trio.fail_after(20):
                await handle.run("talk a lot")
        for name in "ab":
            seqs = [e.seq for e in seen[name][1:]]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # every one, in order
            assert not any(isinstance(e, proto.Lagged) for e in seen[name])
            assert "".join(e.text for e in seen[name] if isinstance(e, proto.TextDelta)) == words
        backlog = []
        while not any(isinstance(e, proto.Lagged) for e in backlog):
            backlog.append(await stuck.__anext__())
        assert len(backlog) == 1024 + 1 and backlog[-1].missed > 0
        assert isinstance(await stuck.__anext__(), proto.Snapshot)


async def test_cancel_mid_stream_persists_partial_text_and_an_interrupted_outcome(
    nursery, tmp_path
):
    words = " ".join(f"w{i}" for i in range(20000))  # long enough to be cut while streaming
    handle, _, _, store = await start_pod(nursery, tmp_path, [text(words)])
    async with handle.subscribe() as events:
        with trio.fail_after(20):
            ticket = await handle.start_run("talk")
            async for event in events:
                if isinstance(event, proto.TextDelta):
                    await handle.cancel()
                    break
            result = await ticket.wait()
    assert result.outcome == "cancelled"
    entries = await store.read_entries(result.session_id)
    assert entries[-1] == Outcome("cancelled", interrupted=True)
    [partial] = [e.item for e in entries if type(e).__name__ == "Item"]
    assert partial.role == "assistant" and partial.interrupted
    assert words.startswith(partial.content) and 0 < len(partial.content) < len(words)


async def test_a_handle_reaches_its_pod_only_through_mailbox_fanout_and_view(nursery, tmp_path):
    handle, pod, _server, store = await start_pod(nursery, tmp_path, [text("Through messages.")])
    links = vars(handle)
    assert not any(isinstance(value, Pod) for value in links.values())
    assert {type(value).__name__ for value in links.values()} == {
        "str",
        "ActorHandle",
        "Fanout",
        "PodView",
    }
    del pod  # from here on, only the handle
    with trio.fail_after(10):
        async with handle.subscribe() as events:
            result = await handle.run("hello")
            seen = []
            async for event in events:
                seen.append(event)
                if isinstance(event, proto.RunEnd):
                    break
        history = await handle.history()
    assert result.outcome == "finished" and handle.session_id == result.session_id
    assert handle.status == "idle" and handle.turn_count == 1
    assert isinstance(seen[0], proto.Snapshot)
    assert [e.seq for e in seen[1:]] == sorted(e.seq for e in seen[1:])
    assert history == (await store.restore(result.session_id)).history
