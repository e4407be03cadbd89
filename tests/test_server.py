"""The websocket server and client over real loopback sockets, with a real pod and store."""

from __future__ import annotations

import stat
from functools import partial

import pytest
import trio
import trio_websocket
from standin_pods import standin_manifest

from podactors import protocol as proto
from podactors.client import ConnectionRefused, PodClient, open_client
from podactors.handle import PodHandle
from podactors.items import Message, Notification
from podactors.llm.scripted import ScriptedReply, ScriptedToolCall
from podactors.manifest import Manifest
from podactors.runtime.pod import Pod
from podactors.server import WebsocketServer, serve_websocket
from podactors.store import FsStore
from podactors.testing import StandinServer
from podactors.tools import tool

TOKEN = "test-token-0123456789"


def manifest_for(server: StandinServer, workdir) -> Manifest:
    return standin_manifest(server, workdir, extra='[worker]\ninstruction = "You are {{ pod }}."')


def text(words: str) -> ScriptedReply:
    return ScriptedReply(text=words)


def call(name: str, **arguments) -> ScriptedReply:
    return ScriptedReply(tool_calls=[ScriptedToolCall(name, arguments)])


class Gate:
    """A tool that blocks until released, to hold a run in the middle; ``reset`` re-arms it."""

    def __init__(self) -> None:
        self.reset()

        @tool
        async def wait_for_gate(label: str) -> str:
            """Wait until the test opens the gate."""
            self.entered.set()
            await self.release.wait()
            return f"passed {label}"

        self.tool = wait_for_gate

    def reset(self) -> None:
        self.entered = trio.Event()
        self.release = trio.Event()


async def start_pod(nursery, tmp_path, replies, *, tools=()) -> PodHandle:
    server = StandinServer(replies)
    await nursery.start(server.serve)
    pod = Pod(manifest_for(server, tmp_path), FsStore(tmp_path / "store"), tools=tools)
    return await nursery.start(pod.run)


async def start_server(nursery, handle: PodHandle, **options) -> WebsocketServer:
    options.setdefault("token", TOKEN)
    pods = {handle.name: handle}
    server: WebsocketServer = await nursery.start(partial(serve_websocket, pods.get, **options))
    return server


async def served(nursery, tmp_path, replies=(), **options) -> tuple[PodHandle, WebsocketServer]:
    handle = await start_pod(nursery, tmp_path, list(replies))
    return handle, await start_server(nursery, handle, **options)


async def until(client: PodClient, done) -> list[proto.AnyEvent]:
    """Events up to and including the first one ``done`` accepts."""
    seen = []
    async for event in client.events():
        seen.append(event)
        if done(event):
            return seen
    raise AssertionError(f"connection closed before the expected event; saw {seen}")


def is_run_end(event) -> bool:
    return isinstance(event, proto.RunEnd)


def is_error(event) -> bool:
    return isinstance(event, proto.Error)


def is_snapshot(event) -> bool:
    return isinstance(event, proto.Snapshot)


# --- the handshake ----------------------------------------------------------------------


async def test_wrong_token_is_refused_with_401(nursery, tmp_path):
    _, server = await served(nursery, tmp_path)
    with trio.fail_after(10), pytest.raises(ConnectionRefused) as err:
        async with open_client(server.url, "not-the-token"):
            pass
    assert err.value.status == 401
    assert TOKEN not in str(err.value)


async def test_missing_token_is_refused_with_401(nursery, tmp_path):
    _, server = await served(nursery, tmp_path)
    with trio.fail_after(10), pytest.raises(trio_websocket.ConnectionRejected) as err:
        async with trio_websocket.open_websocket_url(server.url):
            pass
    assert err.value.status_code == 401
    with trio.fail_after(10), pytest.raises(ConnectionRefused) as refused:
        async with open_client(server.url, ""):
            pass
    assert refused.value.status == 401


async def test_generated_token_is_written_0600_and_works(nursery, tmp_path):
    token_file = tmp_path / "run" / "nested" / "token"
    handle = await start_pod(nursery, tmp_path, [])
    server = await start_server(nursery, handle, token=None, token_file=token_file)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text() == server.token and len(server.token) >= 40
    assert server.token not in repr(server)
    assert server.url == f"ws://127.0.0.1:{server.port}" and server.port > 0
    with trio.fail_after(10):
        async with open_client(server.url, token_file.read_text()) as client:
            await client.send(proto.GetSnapshot(pod="alice"))
            snapshot = await client.receive()
    assert isinstance(snapshot, proto.Snapshot) and snapshot.pod == "alice"


async def test_foreign_origin_is_refused_with_403(nursery, tmp_path):
    _, server = await served(nursery, tmp_path)
    with trio.fail_after(10), pytest.raises(ConnectionRefused) as err:
        async with open_client(server.url, TOKEN, origin="https://evil.example"):
            pass
    assert err.value.status == 403
    for origin in ("http://localhost:5173", "http://127.0.0.1", "http://[::1]:8080"):
        with trio.fail_after(10):
            async with open_client(server.url, TOKEN, origin=origin):
                pass


async def test_allowed_origins_replace_the_loopback_default(nursery, tmp_path):
    allowed = ["https://console.example"]
    _, server = await served(nursery, tmp_path, allowed_origins=allowed)
    with trio.fail_after(10):
        async with open_client(server.url, TOKEN, origin="https://console.example"):
            pass
        async with open_client(server.url, TOKEN):  # no Origin: not a browser
            pass
        with pytest.raises(ConnectionRefused) as err:
            async with open_client(server.url, TOKEN, origin="http://localhost:5173"):
                pass
    assert err.value.status == 403


async def test_nothing_listening_is_refused_without_status(nursery, tmp_path):
    _, server = await served(nursery, tmp_path)
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    with trio.fail_after(10), pytest.raises(ConnectionRefused) as err:
        async with open_client(f"ws://127.0.0.1:{port}", server.token):
            pass
    assert err.value.status is None


# --- methods and events -----------------------------------------------------------------


async def test_attach_sends_a_snapshot_then_the_live_events_of_a_run(nursery, tmp_path):
    handle, server = await served(nursery, tmp_path, [text("First answer."), text("Second.")])
    with trio.fail_after(10):
        await handle.run("first question")
        async with open_client(server.url, TOKEN) as client:
            await client.send(proto.Attach(pod="alice"))
            snapshot = await client.receive()
            await client.send(proto.Run(pod="alice", input="second question"))
            live = await until(client, is_run_end)
    assert isinstance(snapshot, proto.Snapshot)
    assert (snapshot.pod, snapshot.status, snapshot.turn_count) == ("alice", "idle", 1)
    assert Message("assistant", "First answer.") in snapshot.history
    assert [e.seq for e in live] == list(
        range(snapshot.last_seq + 1, snapshot.last_seq + 1 + len(live))
    )
    assert all(e.pod == "alice" for e in live)
    assert isinstance(live[0], proto.Status) and live[0].status == "running"
    assert "".join(e.text for e in live if isinstance(e, proto.TextDelta)) == "Second."
    end = live[-1]
    assert isinstance(end, proto.RunEnd) and end.outcome == "finished"
    assert end.session_id == handle.session_id


@pytest.mark.parametrize(
    ("message", "pod", "fragment"),
    [
        ("{not json", "", "bad message"),
        ('{"type": "explode", "pod": "alice"}', "alice", "bad message"),
        ('{"type": "run", "pod": "alice"}', "alice", "input"),
        ('{"type": "run", "pod": "alice", "input": 7}', "alice", "input"),
        ('["attach", "alice"]', "", "bad message"),
        ('{"type": "attach", "pod": "bob"}', "bob", "no pod named 'bob'"),
    ],
)
async def test_a_malformed_message_gets_invalid_request_and_the_connection_stays(
    nursery, tmp_path, message, pod, fragment
):
    _, server = await served(nursery, tmp_path)
    with trio.fail_after(10):
        async with open_client(server.url, TOKEN) as client:
            await client.websocket.send_message(message)
            error = await client.receive()
            await client.send(proto.GetSnapshot(pod="alice"))
            snapshot = await client.receive()
    assert isinstance(error, proto.Error)
    assert (error.code, error.pod, error.seq) == ("invalid_request", pod, 0)
    assert fragment in error.message
    assert isinstance(snapshot, proto.Snapshot) and snapshot.status == "idle"


async def test_resume_while_idle_is_refused_with_not_paused(nursery, tmp_path):
    handle, server = await served(nursery, tmp_path)
    with trio.fail_after(10):
        async with open_client(server.url, TOKEN) as client:
            await client.send(proto.Resume(pod="alice"))
            error = await client.receive()
            await client.send(proto.Cancel(pod="alice"))
            second = await client.receive()
    assert isinstance(error, proto.Error)
    assert (error.code, error.pod) == ("not_paused", "alice")
    assert isinstance(second, proto.Error) and second.code == "not_running"
    assert handle.status == "idle"


async def test_pause_and_resume_over_the_websocket_keep_the_connection_served(nursery, tmp_path):
    gate = Gate()
    replies = [call("wait_for_gate", label="a"), call("wait_for_gate", label="b"), text("done")]
    handle = await start_pod(nursery, tmp_path, replies, tools=[gate.tool])
    server = await start_server(nursery, handle)
    with trio.fail_after(10):
        async with open_client(server.url, TOKEN) as client:
            await client.send(proto.Attach(pod="alice"))
            await client.send(proto.Run(pod="alice", input="go"))
            await gate.entered.wait()
            await client.send(proto.Pause(pod="alice"))
            gate.release.set()
            paused = await until(client, is_run_end)
            gate.reset()
            await client.send(proto.Resume(pod="alice"))
            await gate.entered.wait()
            # answered while the resumed run goes on
            await client.send(proto.GetSnapshot(pod="alice"))
            during = await until(client, is_snapshot)
            gate.release.set()
            resumed = await until(client, is_run_end)
    assert paused[-1].outcome == "paused"
    assert during[-1].status == "running"
    assert resumed[-1].outcome == "finished"
    assert (await handle.history())[-1] == Message("assistant", "done")


async def test_notify_over_the_websocket_starts_a_turn(nursery, tmp_path):
    handle, server = await served(nursery, tmp_path, [text("Noted.")])
    with trio.fail_after(10):
        async with open_client(server.url, TOKEN) as client:
            await client.send(proto.Attach(pod="alice"))
            await client.send(proto.Notify(pod="alice", message="the build finished", source="ci"))
            events = await until(client, is_run_end)
    added = [e for e in events if isinstance(e, proto.SystemItemAdded)]
    assert [e.item for e in added] == [Notification("the build finished", source="ci")]
    assert events[-1].outcome == "finished"
    assert (await handle.history())[-1] == Message("assistant", "Noted.")


async def test_two_clients_attached_to_one_pod_both_get_the_run(nursery, tmp_path):
    _, server = await served(nursery, tmp_path, [text("Hello both.")])
    with trio.fail_after(10):
        async with open_client(server.url, TOKEN) as one, open_client(server.url, TOKEN) as two:
            for client in (one, two):
                await client.send(proto.Attach(pod="alice"))
                assert is_snapshot(await client.receive())
            await one.send(proto.Run(pod="alice", input="hi"))
            seen_one = await until(one, is_run_end)
            seen_two = await until(two, is_run_end)
    assert seen_one == seen_two
    assert seen_one[-1].outcome == "finished"


async def test_attaching_twice_sends_a_snapshot_but_no_duplicate_events(nursery, tmp_path):
    _, server = await served(nursery, tmp_path, [text("Once.")])
    with trio.fail_after(10):
        async with open_client(server.url, TOKEN) as client:
            await client.send(proto.Attach(pod="alice"))
            await client.send(proto.Attach(pod="alice"))
            assert is_snapshot(await client.receive())
            assert is_snapshot(await client.receive())
            await client.send(proto.Run(pod="alice", input="hi"))
            events = await until(client, is_run_end)
    seqs = [e.seq for e in events]
    assert len(seqs) == len(set(seqs))


# --- isolation --------------------------------------------------------------------------


async def test_an_oversized_message_closes_only_that_connection(nursery, tmp_path):
    handle, server = await served(nursery, tmp_path, [text("Still here.")], max_message_size=1024)
    with trio.fail_after(10):
        async with open_client(server.url, TOKEN) as bystander:
            await bystander.send(proto.Attach(pod="alice"))
            assert is_snapshot(await bystander.receive())
            async with open_client(server.url, TOKEN) as offender:
                await offender.websocket.send_message("x" * 2048)
                assert [e async for e in offender.events()] == []
                assert offender.close_reason is not None
                assert offender.close_reason.code == 1009
            await bystander.send(proto.Run(pod="alice", input="are you there?"))
            events = await until(bystander, is_run_end)
            assert events[-1].outcome == "finished"
        async with open_client(server.url, TOKEN) as newcomer:
            await newcomer.send(proto.GetSnapshot(pod="alice"))
            snapshot = await newcomer.receive()
    assert isinstance(snapshot, proto.Snapshot) and snapshot.turn_count == 1
    assert handle.status == "idle"


async def test_a_failing_connection_does_not_stop_the_server(nursery, tmp_path):
    handle = await start_pod(nursery, tmp_path, [])

    def lookup(name: str) -> PodHandle | None:
        if name == "boom":
            raise RuntimeError("lookup exploded")
        return handle if name == handle.name else None

    server: WebsocketServer = await nursery.start(partial(serve_websocket, lookup, token=TOKEN))
    with trio.fail_after(10):
        async with open_client(server.url, TOKEN) as victim:
            await victim.send(proto.GetSnapshot(pod="boom"))
            assert [e async for e in victim.events()] == []
            assert victim.close_reason is not None and victim.close_reason.code == 1011
        async with open_client(server.url, TOKEN) as client:
            await client.send(proto.GetSnapshot(pod="alice"))
            assert is_snapshot(await client.receive())
