"""Wire types: every event and method as JSON, and the fan-out to subscribers."""

from __future__ import annotations

import msgspec
import pytest
import trio
import trio.testing

from podactors import protocol as p
from podactors.fanout import Fanout
from podactors.items import Message, Notification

EVENTS = [
    p.TurnStart(turn=1),
    p.TurnEnd(turn=1),
    p.LlmCallStart(index=0, history_len=3),
    p.LlmCallEnd(index=0, stop_reason="end_turn"),
    p.TextDelta(text="hi"),
    p.TextDone(text="hi there"),
    p.ThinkingDelta(text="hm"),
    p.ThinkingDone(text="hmm"),
    p.ToolCallStart(id="c1", name="bash"),
    p.ToolCallArgsDelta(id="c1", delta='{"com'),
    p.ToolCallDone(id="c1", name="bash", arguments={"command": "ls"}),
    p.ToolResult(call_id="c1", summary="2 files", content="a\nb"),
    p.UsageReport(history_len=3, input_total=100, cache_read=80, output=5),
    p.SystemItemAdded(item=Notification("build done", source="ci")),
    p.RunEnd(outcome="finished", session_id="s1", llm_calls=2),
    p.Error(code="already_running", message="busy"),
    p.Status(status="running"),
    p.Alert(level="warn", source="supervisor", message="restarted"),
    p.SessionRotated(old_session_id="s1", new_session_id="s2", reason="compacted"),
    p.CompactStart(tokens_before=9000),
    p.CompactDone(
        old_session_id="s1", new_session_id="s2", tokens_before=9000, tokens_after=900, duration=0.2
    ),
    p.CompactFailed(error="too big"),
    p.Snapshot(
        status="idle", session_id="s1", turn_count=1, history=[Message("user", "x")], last_seq=7
    ),
    p.Lagged(missed=3),
    p.Reply(id="m1", started=True),
    p.Reply(id="m2", history=[Message("user", "x")]),
    p.Done(id="m1", result=p.RunResult(outcome="finished", session_id="s1", llm_calls=1)),
    p.Done(id="m3", result=p.CompactResult(outcome="failed", session_id="s1", error="why")),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_round_trips_as_json_with_pod_and_seq(event):
    stamped = msgspec.structs.replace(event, pod="alice", seq=42)
    data = msgspec.json.decode(p.encode_event(stamped))
    assert data["pod"] == "alice" and data["seq"] == 42 and data["type"]
    assert msgspec.json.decode(p.encode_event(stamped), type=p.AnyEvent) == stamped


def test_every_event_type_is_in_the_union():
    assert {type(e) for e in EVENTS} == set(p.AnyEvent.__args__)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"type":"attach","pod":"a"}', p.Attach(pod="a")),
        ('{"type":"run","pod":"a","input":"go"}', p.Run(pod="a", input="go")),
        ('{"type":"notify","pod":"a","message":"m"}', p.Notify(pod="a", message="m")),
        ('{"type":"cancel","pod":"a"}', p.Cancel(pod="a")),
        ('{"type":"shutdown","pod":"a"}', p.Shutdown(pod="a")),
        ('{"type":"get_history","pod":"a","id":"7"}', p.GetHistory(pod="a", id="7")),
    ],
)
def test_methods_decode_from_json(raw, expected):
    assert p.decode_method(raw) == expected


@pytest.mark.parametrize(
    "raw", ['{"type":"run","pod":"a"}', '{"type":"explode","pod":"a"}', "{not json", "[]"]
)
def test_malformed_methods_raise_a_msgspec_error(raw):
    with pytest.raises(msgspec.MsgspecError):
        p.decode_method(raw)


async def test_a_subscriber_that_never_reads_slows_no_one(nursery):
    snapshots = []

    def snapshot():
        snapshots.append(1)
        return p.Snapshot(status="idle", session_id=None, turn_count=0, history=[], last_seq=0)

    fanout = Fanout(snapshot, buffer=8)
    received: dict[str, list] = {"a": [], "b": []}
    ready = trio.Event()

    async def reader(name, task_status=trio.TASK_STATUS_IGNORED):
        async with fanout.subscribe() as events:
            task_status.started()
            async for event in events:
                received[name].append(event)
                if len(received[name]) == 1000:
                    return

    async with fanout.subscribe() as stuck:
        await nursery.start(reader, "a")
        await nursery.start(reader, "b")
        ready.set()
        for i in range(1000):
            fanout.publish(p.TextDelta(text=str(i), seq=i + 1))
            if i % 4 == 0:  # readers get a turn before their buffer of 8 fills
                await trio.testing.wait_all_tasks_blocked()
        await trio.testing.wait_all_tasks_blocked()
        for name in "ab":
            assert [e.seq for e in received[name]] == list(range(1, 1001))
        assert fanout.statistics().dropped == 1000 - 8
        first = [await stuck.__anext__() for _ in range(10)]
    assert [e.seq for e in first[:8]] == list(range(1, 9))
    assert first[8] == p.Lagged(missed=992)
    assert isinstance(first[9], p.Snapshot) and snapshots == [1]
