"""The supervisor: spawning, restarts that keep the session, escalation, shutdown, restore."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from podactors import protocol as proto
from podactors.agent.hooks import Hooks
from podactors.agent.worker import INTERRUPTED
from podactors.errors import PodactorsError, SupervisorEscalated
from podactors.items import Message, ToolCall, ToolResult
from podactors.llm import create_provider
from podactors.manifest import Manifest
from podactors.runtime.supervisor import open_supervisor
from podactors.store import FsStore
from podactors.store.entries import Outcome, TurnEnd

SCRIPT = """
[[reply]]
text = "Reading."
tool_calls = [{name = "bash", arguments = {command = "echo one"}}]
[[reply]]
tool_calls = [{name = "bash", arguments = {command = "echo two"}}]
[[reply]]
tool_calls = [{name = "bash", arguments = {command = "sleep 60"}}]
[[reply]]
text = "Done after the restart."
[[reply]]
text = "Second answer."
[[reply]]
text = "Third answer."
"""


def write_manifest(tmp_path: Path, name: str = "alice", restart: str = "transient") -> Path:
    (tmp_path / "script.toml").write_text(SCRIPT)
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"""
[pod]
name = "{name}"
restart = "{restart}"
[model]
provider = "scripted"
script = "script.toml"
[worker]
instruction = "You are {{{{ pod }}}}."
[[scope.allow]]
target = "."
permission = "write"
"""
    )
    return path


class FailingClose(FsStore):
    """A store whose disk fails ``failures`` times when a run closes (its TurnEnd)."""

    def __init__(self, root, failures: int):
        super().__init__(root)
        self.failures = failures

    async def append(self, session_id, entries, expected_head):
        entries = list(entries)
        if self.failures and any(isinstance(e, TurnEnd) for e in entries):
            self.failures -= 1
            raise OSError("disk on fire")
        return await super().append(session_id, entries, expected_head)


def skip_replies(count: int):
    """A provider factory whose scripted providers start ``count`` replies in (a fresh
    process replays its script from the top)."""

    def build(model):
        provider = create_provider(model)
        provider.replies = provider.replies[count:]
        return provider

    return build


async def test_spawn_get_pods_and_unique_names(tmp_path):
    async with open_supervisor(tmp_path / "store") as sup:
        alice = await sup.spawn(Manifest.from_file(write_manifest(tmp_path, "alice")))
        bob = await sup.spawn(Manifest.from_file(write_manifest(tmp_path, "bob")))
        assert sup.get("alice") is alice and [p.name for p in sup.pods()] == ["alice", "bob"]
        with pytest.raises(PodactorsError, match="already running"):
            await sup.spawn(Manifest.from_file(write_manifest(tmp_path, "alice")))
        assert bob.status == "idle"
    assert alice.status == "stopped"


async def test_a_crashed_pod_is_restarted_on_its_session(tmp_path):
    manifest = short_script_manifest(tmp_path)
    async with open_supervisor(FailingClose(tmp_path / "store", 1)) as sup:
        handle = await sup.spawn(manifest)
        async with handle.subscribe() as events:
            with trio.fail_after(10):
                crashed = await handle.run("first")
                assert crashed.outcome == "error"
                alert = None
                async for event in events:
                    if isinstance(event, proto.Alert):
                        alert = event
                        break
            assert "disk on fire" in alert.message and alert.source == "supervisor"
        session = crashed.session_id
        with trio.fail_after(10):
            again = await handle.run("second")
        assert again.outcome == "finished" and again.session_id == session
    history = (await FsStore(tmp_path / "store").restore(session)).history
    assert [m.content for m in history if isinstance(m, Message) and m.role == "user"] == [
        "first",
        "second",
    ]


def short_script_manifest(tmp_path: Path) -> Manifest:
    (tmp_path / "short.toml").write_text('[[reply]]\ntext = "one"\n[[reply]]\ntext = "two"\n')
    return Manifest.from_file(write_manifest(tmp_path)).with_overlay(
        {"model": {"script": str(tmp_path / "short.toml")}}
    )


async def test_too_many_restarts_escalate_as_one_typed_error(tmp_path):
    manifest = short_script_manifest(tmp_path)
    store = FailingClose(tmp_path / "store", 10)
    with pytest.raises(SupervisorEscalated) as err:
        async with open_supervisor(store, max_restarts=1, within=60) as sup:
            handle = await sup.spawn(manifest)
            async with handle.subscribe() as events:
                with trio.fail_after(10):
                    await handle.run("a")
                    async for event in events:  # wait for the restart
                        if isinstance(event, proto.Alert):
                            break
                    await handle.run("b")
                    await trio.sleep_forever()  # the escalation cancels the block
    assert err.value.pod == "alice" and err.value.restarts == 2


async def test_closing_the_supervisor_persists_a_running_turn(tmp_path):
    manifest = Manifest.from_file(write_manifest(tmp_path))
    async with open_supervisor(tmp_path / "store") as sup:
        handle = await sup.spawn(manifest)
        async with handle.subscribe() as events:
            await handle.start_run("go")
            with trio.fail_after(20):
                results = 0
                async for event in events:
                    results += isinstance(event, proto.ToolResult)
                    if results == 2:
                        break
                await trio.testing.wait_all_tasks_blocked()
        session = handle.session_id
    entries = await FsStore(tmp_path / "store").read_entries(session)
    assert entries[-1] == Outcome("cancelled", interrupted=True)


async def test_restore_by_name_continues_the_session(tmp_path):
    manifest_file = write_manifest(tmp_path)
    (tmp_path / "script.toml").write_text('[[reply]]\ntext = "first"\n[[reply]]\ntext = "second"\n')
    async with open_supervisor(tmp_path / "store") as sup:
        first = await (await sup.spawn(Manifest.from_file(manifest_file))).run("one")
    async with open_supervisor(tmp_path / "store", providers=skip_replies(1)) as sup:
        handle = await sup.restore("alice")
        assert handle.session_id == first.session_id
        history = await handle.history()
        assert history[-1] == Message("assistant", "first")
        second = await handle.run("two")
    assert second.session_id == first.session_id
    state = await FsStore(tmp_path / "store").restore(first.session_id)
    assert state.turn_count == 2 and state.history[-1] == Message("assistant", "second")


RUNNER = """
import sys, trio
from podactors import protocol as proto
from podactors.manifest import Manifest
from podactors.runtime.supervisor import open_supervisor

async def main(store, manifest):
    async with open_supervisor(store) as sup:
        pod = await sup.spawn(Manifest.from_file(manifest))
        async with pod.subscribe() as events:
            await pod.start_run("do the three steps")
            async for event in events:
                if isinstance(event, proto.LlmCallStart):  # every earlier step is on disk
                    print("request", event.index, flush=True)

trio.run(main, sys.argv[1], sys.argv[2])
"""


async def test_kill_9_then_restore_in_a_new_process_keeps_every_committed_step(tmp_path):
    manifest_file = write_manifest(tmp_path)
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    child = subprocess.Popen(
        [sys.executable, str(runner), str(tmp_path / "store"), str(manifest_file)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )

    def wait_then_kill() -> None:
        for line in child.stdout:
            if line.split() == ["request", "2"]:  # both earlier tool batches are committed
                child.send_signal(signal.SIGKILL)
                break
        child.wait()

    with trio.fail_after(60):
        await trio.to_thread.run_sync(wait_then_kill)
    assert child.returncode == -signal.SIGKILL
    async with open_supervisor(tmp_path / "store", providers=skip_replies(3)) as sup:
        handle = await sup.restore("alice")
        history = await handle.history()
        results = [i for i in history if isinstance(i, ToolResult)]
        assert [r.call_id for r in results] == ["call_0_0", "call_1_0"]
        assert [r.content.strip() for r in results] == ["one", "two"]
        in_flight = [i for i in history if isinstance(i, ToolCall) and i.id == "call_2_0"]
        assert history[0] == Message("user", "do the three steps")  # committed first
        state = await sup.store.restore(handle.session_id)
        assert state.last_run_interrupted  # no outcome reached the disk
        with trio.fail_after(10):
            result = await handle.run("continue")
        assert result.outcome == "finished"
        history = await handle.history()
    closed = [i for i in history if isinstance(i, ToolResult) and i.summary == INTERRUPTED]
    # The third step was in flight: if it reached the disk, its call is closed, never lost.
    assert [r.call_id for r in closed] == [c.id for c in in_flight]


async def test_the_supervisor_serves_its_pods_over_websocket(tmp_path):
    from podactors.client import open_client

    manifest = short_script_manifest(tmp_path)
    async with open_supervisor(tmp_path / "store") as sup:
        await sup.spawn(manifest)
        server = await sup.serve_websocket()
        token_file = tmp_path / "store" / "websocket.token"
        assert token_file.read_text().strip() == server.token
        assert token_file.stat().st_mode & 0o777 == 0o600
        with trio.fail_after(10):
            async with open_client(server.url, server.token) as client:
                await client.send(proto.Attach(pod="alice"))
                await client.send(proto.Run(pod="alice", input="hello"))
                seen = []
                async for event in client.events():
                    seen.append(event)
                    if isinstance(event, proto.RunEnd):
                        break
    assert isinstance(seen[0], proto.Snapshot) and seen[-1].outcome == "finished"
    assert any(isinstance(e, proto.TextDelta) for e in seen)


def hook_lists(hooks: Hooks) -> dict[str, list]:
    """A copy of every hook point's list."""
    return {point: list(at) for point, at in attrs.asdict(hooks, recurse=False).items()}


async def test_pods_built_with_one_hooks_object_leave_it_unchanged(tmp_path):
    seen: list[str] = []

    async def watch(request):
        seen.append(request.items[-1].content)

    hooks = Hooks(pre_llm_request=[watch])
    before = hook_lists(hooks)
    manifest = short_script_manifest(tmp_path)
    store = FailingClose(tmp_path / "store", 1)  # alice crashes once and is restarted
    async with open_supervisor(store) as sup:
        alice = await sup.spawn(manifest, hooks=hooks)
        bob = await sup.spawn(manifest.with_overlay({"pod": {"name": "bob"}}), hooks=hooks)
        with trio.fail_after(10):
            async with alice.subscribe() as events:
                assert (await alice.run("first")).outcome == "error"  # the crash
                async for event in events:
                    if isinstance(event, proto.Alert):
                        break
            assert (await alice.run("second")).outcome == "finished"
            assert (await bob.run("to bob")).outcome == "finished"
    after = {
        point: list(hooks_at) for point, hooks_at in attrs.asdict(hooks, recurse=False).items()
    }
    assert after == before and after["pre_llm_request"] == [watch]
    assert seen == ["first", "second", "to bob"]  # each request seen once, by one hook
