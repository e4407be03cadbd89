"""A pod over the websocket through RemotePod: the in-process handle's methods, remotely."""

from __future__ import annotations

import pytest
import trio
from test_server import TOKEN, served, text

from podactors import protocol as proto
from podactors.client import open_client, open_remote
from podactors.errors import PodError


async def test_a_remote_pod_runs_a_turn_and_answers_like_the_handle(nursery, tmp_path):
    handle, server = await served(nursery, tmp_path, [text("Hello from afar.")])
    with trio.fail_after(10):
        async with open_remote(server.url, TOKEN) as remote:
            pod = await remote.pod("alice")
            assert (pod.status, pod.session_id) == ("idle", None)
            async with pod.subscribe() as events:
                result = await pod.run("hello")
                seen = []
                async for event in events:
                    seen.append(event)
                    if isinstance(event, proto.RunEnd):
                        break
            assert result == proto.RunResult("finished", handle.session_id, 1)
            assert await pod.history() == await handle.history()
            assert (await pod.snapshot()).session_id == handle.session_id
            assert pod.session_id == handle.session_id and pod.turn_count == 1
            with pytest.raises(PodError) as refused:
                await pod.resume()
    assert refused.value.code == "not_paused"
    assert isinstance(seen[0], proto.Snapshot)
    numbered = [event.seq for event in seen[1:]]
    assert numbered == sorted(numbered) and len(set(numbered)) == len(numbered)
    assert any(isinstance(e, proto.TextDelta) for e in seen)


async def test_a_method_with_an_id_gets_exactly_one_reply_and_one_done(nursery, tmp_path):
    handle, server = await served(nursery, tmp_path, [text("One answer.")])
    with trio.fail_after(10):
        async with open_client(server.url, TOKEN) as client:
            await client.send(proto.Run(pod="alice", input="go", id="r1"))
            await client.send(proto.Resume(pod="alice", id="r2"))  # refused: not paused
            answers: list[proto.AnyEvent] = []
            async for event in client.events():
                if getattr(event, "id", None) is not None:
                    answers.append(event)
                if isinstance(event, proto.Done):
                    break
    replies = [a for a in answers if isinstance(a, proto.Reply)]
    errors = [a for a in answers if isinstance(a, proto.Error)]
    assert [(r.id, r.started) for r in replies] == [("r1", True)]
    assert [(e.id, e.code) for e in errors] == [("r2", "not_paused")]
    finished = proto.RunResult("finished", handle.session_id, llm_calls=1)
    assert answers[-1] == proto.Done(pod="alice", id="r1", result=finished)


async def test_a_remote_pod_that_does_not_exist_is_an_error(nursery, tmp_path):
    _, server = await served(nursery, tmp_path)
    with trio.fail_after(10):
        async with open_remote(server.url, TOKEN) as remote:
            with pytest.raises(PodError, match="no pod named 'bob'"):
                await remote.pod("bob")


async def test_the_view_is_live_once_the_pod_is_attached(nursery, tmp_path):
    handle, server = await served(nursery, tmp_path, [text("First.")])
    with trio.fail_after(10):
        await handle.run("hi")
        async with open_remote(server.url, TOKEN) as remote:
            pod = await remote.pod("alice")
            assert (pod.status, pod.session_id, pod.turn_count) == ("idle", handle.session_id, 1)


async def test_a_local_subscriber_that_lags_gets_lagged_then_a_snapshot(nursery, tmp_path):
    words = " ".join(f"w{i}" for i in range(1500))  # more deltas than a subscriber buffers
    _, server = await served(nursery, tmp_path, [text(words)])
    with trio.fail_after(20):
        async with open_remote(server.url, TOKEN) as remote:
            pod = await remote.pod("alice")
            async with pod.subscribe() as events, pod.subscribe() as watcher:
                await pod.run("talk")
                async for event in watcher:  # till the run's end has arrived; events waits
                    if isinstance(event, proto.RunEnd):
                        break
                seen = []
                async for event in events:
                    seen.append(event)
                    if isinstance(event, proto.Snapshot) and len(seen) > 1:
                        break
    lagged = next(i for i, event in enumerate(seen) if isinstance(event, proto.Lagged))
    assert seen[lagged].missed > 0
    snapshot = seen[lagged + 1]
    assert isinstance(snapshot, proto.Snapshot)
    assert (snapshot.status, snapshot.turn_count) == ("idle", 1)
    assert snapshot.last_seq > seen[lagged - 1].seq
