"""The prune projection: the pure decision, the worker's hook, and the pod's metrics."""

from __future__ import annotations

import random

import msgspec
import pytest
import trio
from standin_pods import standin_manifest

from podactors import protocol as proto
from podactors.agent.conversation import Conversation
from podactors.agent.worker import Projection, Step
from podactors.compaction.prune import (
    METRICS_DOMAIN,
    Fire,
    PruneFireMetric,
    PrunePostRequestMetric,
    PruneSkipMetric,
    Skip,
    metric_entries,
    metrics_for,
    metrics_from_extensions,
    project,
)
from podactors.compaction.tokens import TokenTimeline, item_bytes
from podactors.items import HistoryItem, Message, ToolCall, ToolResult
from podactors.llm.scripted import (
    ScriptedProvider,
    ScriptedReply,
    ScriptedToolCall,
    ScriptedUsage,
)
from podactors.manifest import Manifest
from podactors.runtime.pod import Pod
from podactors.store import FsStore
from podactors.store.entries import Extension, Item, Usage
from podactors.testing import StandinServer
from podactors.tools import ToolOutput, tool

SUMMARY = "tool result summary"
CONTENT = "x" * 2048
SAVED = len(CONTENT) - len(SUMMARY)  # what one pruned result saves at 1 token per byte


def call(n: int) -> ToolCall:
    return ToolCall(f"call-{n}", "big_tool", {})


def result(n: int, *, is_error: bool = False) -> ToolResult:
    return ToolResult(f"call-{n}", SUMMARY, CONTENT, is_error)


def measured(items: list[HistoryItem], *lengths: int) -> list[Usage]:
    """Records at ``lengths``: 1000 fixed tokens plus one token per serialised byte."""
    return [Usage(h, 1000 + sum(item_bytes(i) for i in items[:h])) for h in lengths]


def conversation() -> list[HistoryItem]:
    """Three rounds of call + result; the requests saw 1, 3, 5, 7 and 9 items."""
    return [
        Message("user", "look at the logs"),  # 0
        call(1),  # 1
        result(1),  # 2
        Message("assistant", "first done"),  # 3
        Message("user", "and the next one"),  # 4
        call(2),  # 5
        result(2, is_error=True),  # 6
        Message("assistant", "second done"),  # 7
        Message("user", "one more"),  # 8
        call(3),  # 9
        result(3),  # 10: not yet seen by the model
    ]


def step_bytes(items: list[HistoryItem], start: int, end: int) -> int:
    """What items ``start..end`` cost in :func:`measured` records: one token per byte."""
    return sum(item_bytes(i) for i in items[start:end])


# --- the pure projection ---------------------------------------------------------------


def test_no_measurement_prunes_nothing() -> None:
    items = conversation()
    assert project(items, [], protected_tokens=0, min_savings=0) == Skip("no_candidates", 0, 0)
    # records for a longer history than this one are no measurement of it either
    assert project(items[:3], measured(items, 5), protected_tokens=0, min_savings=0) == Skip(
        "no_candidates", 0, 0
    )


def test_a_protected_tail_covering_everything_leaves_no_candidates() -> None:
    items = conversation()
    usages = measured(items, 1, 3, 5, 7, 9)
    decision = project(items, usages, protected_tokens=10**6, min_savings=0)
    assert decision == Skip("no_candidates", 0, 0)


def test_results_the_model_has_not_seen_are_protected() -> None:
    items = conversation()[:3]  # the first result came after the only request
    decision = project(items, measured(items, 1), protected_tokens=0, min_savings=0)
    assert decision == Skip("no_candidates", 0, 0)


def test_below_min_savings_reports_the_candidates_and_their_saving() -> None:
    items = conversation()
    usages = measured(items, 1, 3, 5, 7, 9)
    protected = step_bytes(items, 7, 9)  # the step from "second done" to the last request
    decision = project(items, usages, protected_tokens=protected, min_savings=2 * SAVED + 1)
    assert decision == Skip("below_min_savings", candidate_count=2, value=2 * SAVED)


def test_fire_replaces_old_contents_by_summaries_and_leaves_the_tail_alone() -> None:
    items = conversation()
    before = list(items)
    usages = measured(items, 1, 3, 5, 7, 9)
    protected = step_bytes(items, 7, 9)
    decision = project(items, usages, protected_tokens=protected, min_savings=2 * SAVED)
    assert isinstance(decision, Fire)
    assert (decision.candidate_count, decision.protected_start_index, decision.value) == (
        2,
        7,
        2 * SAVED,
    )
    projected = decision.items
    assert projected[2] == ToolResult("call-1", SUMMARY, None, False)
    assert projected[6] == ToolResult("call-2", SUMMARY, None, True)  # is_error kept
    assert projected[7:] == items[7:]  # the tail, and the unseen result in it, untouched
    assert [p for k, p in enumerate(projected) if k not in (2, 6)] == [
        p for k, p in enumerate(items) if k not in (2, 6)
    ]
    assert items == before  # the history itself never changes
    again = project(projected, usages, protected_tokens=protected, min_savings=0)
    assert isinstance(again, Skip) and again.reason == "no_candidates"


def test_the_tail_holds_whole_steps_that_fit() -> None:
    items = conversation()
    usages = measured(items, 1, 3, 5, 7, 9)
    # one token short of the two newest steps: only the newest fits, so the step holding
    # the second result is left out whole (a step is never split)
    protected = step_bytes(items, 5, 9) - 1
    decision = project(items, usages, protected_tokens=protected, min_savings=0)
    assert isinstance(decision, Fire) and decision.protected_start_index == 7
    # the whole measured history fits, even with the items before the first record
    everything = step_bytes(items, 0, 9)
    assert project(items, usages, protected_tokens=everything, min_savings=0) == Skip(
        "no_candidates"
    )
    # a budget of 0 still protects what the model has not seen
    decision = project(items, usages, protected_tokens=0, min_savings=0)
    assert isinstance(decision, Fire) and decision.protected_start_index == 9
    assert decision.items[10] == items[10] and decision.candidate_count == 2


def test_results_without_content_are_no_candidates() -> None:
    items = conversation()
    items[2] = ToolResult("call-1", "nothing to show")
    items[6] = ToolResult("call-2", "nothing either", is_error=True)
    usages = measured(items, 1, 3, 5, 7, 9)
    decision = project(items, usages, protected_tokens=step_bytes(items, 7, 9), min_savings=0)
    assert decision == Skip("no_candidates", 0, 0)


def random_session(rng: random.Random) -> tuple[list[HistoryItem], list[Usage]]:
    """A session of tool rounds with records at each request, some measured after a prune."""
    items: list[HistoryItem] = [Message("user", "start")]
    usages: list[Usage] = []
    tokens = rng.randint(100, 3000)
    seen = 0
    for n in range(rng.randint(1, 12)):
        grown = sum(item_bytes(i) for i in items[seen:])
        tokens += round(grown * rng.uniform(0.1, 0.6)) - rng.choice([0, 0, 0, 400])
        usages.append(Usage(len(items), max(0, tokens)))
        seen = len(items)
        for k in range(rng.randint(1, 3)):
            items.append(ToolCall(f"c{n}.{k}", "t", {}))
        for k in range(len([i for i in items[seen:] if isinstance(i, ToolCall)])):
            content = None if rng.random() < 0.2 else "y" * rng.randint(0, 6000)
            items.append(ToolResult(f"c{n}.{k}", f"summary {n}.{k}", content, rng.random() < 0.1))
        if rng.random() < 0.3:
            items.append(Message("user", "more " * rng.randint(1, 50)))
    return items, usages


@pytest.mark.parametrize("seed", range(200))
def test_projection_is_idempotent_and_touches_only_old_contents(seed: int) -> None:
    rng = random.Random(seed)
    items, usages = random_session(rng)
    protected, floor = rng.randint(0, 4000), rng.choice([0, 1, 500, 2000])
    decision = project(items, usages, protected_tokens=protected, min_savings=floor)
    projected = decision.items if isinstance(decision, Fire) else items
    if isinstance(decision, Fire):
        changed = [k for k, (a, b) in enumerate(zip(items, projected, strict=True)) if a != b]
        assert len(changed) == decision.candidate_count > 0
        assert max(changed) < decision.protected_start_index <= max(u.history_len for u in usages)
        for k in changed:
            old = items[k]
            assert isinstance(old, ToolResult) and old.content
            assert projected[k] == ToolResult(old.call_id, old.summary, None, old.is_error)
        assert decision.value >= floor
    again = project(projected, usages, protected_tokens=protected, min_savings=floor)
    assert isinstance(again, Skip)


def test_a_pruned_requests_usage_counts_what_it_left_out() -> None:
    items = conversation()
    timeline = TokenTimeline(items, [Usage(3, 1000, pruned_tokens=500)])
    assert timeline.estimate(3).tokens == 1500


# --- metrics ---------------------------------------------------------------------------


def test_metrics_round_trip_through_extensions_and_skip_what_they_do_not_know() -> None:
    usage = Usage(9, 5000, cache_read=1234, cache_write=50)
    fire = Fire(2, 7, 4058, [])
    metrics = [
        *metrics_for(Skip("no_candidates"), usage),
        *metrics_for(fire, usage, correlation_id="c-1"),
    ]
    assert metrics == [
        PruneSkipMetric("no_candidates", 0, 0),
        PruneFireMetric(2, 7, 4058, "c-1"),
        PrunePostRequestMetric("c-1", 1234, 50, 9),
    ]
    log = [
        Extension.of("memory", {"pointer": 3}),
        *metric_entries(metrics),
        Extension.of(METRICS_DOMAIN, {"name": "compact.done", "value": 1}),  # a newer writer's
    ]
    assert metrics_from_extensions(log) == metrics
    assert metrics_from_extensions([]) == []
    generated = metrics_for(fire, usage)
    assert generated[0].correlation_id == generated[1].correlation_id != "c-1"


# --- the worker's projection hook ------------------------------------------------------


class BigTools:
    def specs(self):
        return []

    async def call(self, c: ToolCall, ctx=None) -> ToolResult:
        return ToolResult(c.id, SUMMARY, CONTENT)


async def test_the_worker_projects_requests_never_its_history() -> None:
    provider = ScriptedProvider(
        [ScriptedReply(tool_calls=[ScriptedToolCall("big_tool")]), ScriptedReply(text="ok")]
    )

    def summaries_only(items: list[HistoryItem]) -> Projection:
        shown = [
            ToolResult(i.call_id, i.summary, None, i.is_error) if isinstance(i, ToolResult) else i
            for i in items
        ]
        return Projection(shown, note=len(items))

    steps: list[Step] = []

    async def on_step(step: Step) -> None:
        steps.append(step)

    worker = Conversation(provider, tools=BigTools(), project=summaries_only)
    await worker.run("go", on_step=on_step)
    sent = provider.requests[1].items
    assert isinstance(sent[2], ToolResult) and sent[2].content is None
    assert isinstance(worker.history[2], ToolResult) and worker.history[2].content == CONTENT
    assert [s.projection for s in steps if s.usage is not None] == [1, 3]
    assert [s.projection for s in steps if s.usage is None] == [None]


async def test_a_projection_must_keep_every_item() -> None:
    provider = ScriptedProvider([ScriptedReply(text="ok")])
    worker = Conversation(provider, project=lambda items: Projection(items[1:]))
    with pytest.raises(ValueError, match="keep every item"):
        await worker.run("go")
    assert provider.requests == []


# --- the pod ---------------------------------------------------------------------------


@tool
def big_tool() -> ToolOutput:
    """Return a long output with a short summary."""
    return ToolOutput(SUMMARY, CONTENT)


def manifest_for(server: StandinServer, workdir, compaction: str | None) -> Manifest:
    return standin_manifest(server, workdir, extra=compaction_table(compaction))


def compaction_table(settings: str | None) -> str:
    """A ``[compaction]`` table with ``settings``, or nothing for a pod without one."""
    return "" if settings is None else f"[compaction]\n{settings}\n"


def prune_settings(protected: int, min_savings: int) -> str:
    return f"prune_protected_tokens = {protected}\nprune_min_savings = {min_savings}"


def tool_round(input_tokens: int) -> ScriptedReply:
    return ScriptedReply(
        tool_calls=[ScriptedToolCall("big_tool")],
        usage=ScriptedUsage(input_tokens=input_tokens, output_tokens=10),
    )


def answer(words: str, input_tokens: int, cache_read: int = 0, cache_write: int = 0):
    return ScriptedReply(
        text=words,
        usage=ScriptedUsage(
            input_tokens=input_tokens,
            output_tokens=5,
            cache_read=cache_read,
            cache_write=cache_write,
        ),
    )


async def start_pod(nursery, tmp_path, replies, compaction, *, store_type=FsStore):
    server = StandinServer(replies)
    await nursery.start(server.serve)
    store = store_type(tmp_path / "store")
    pod = Pod(manifest_for(server, tmp_path, compaction), store, tools=[big_tool])
    handle = await nursery.start(pod.run)
    return handle, server, store


async def session_metrics(store: FsStore, session_id: str):
    return metrics_from_extensions((await store.restore(session_id)).extension_log)


def sent_results(request: dict) -> list[str]:
    """The tool-result texts an Anthropic request carried, in order."""
    return [
        block["content"]
        for message in request["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]


async def test_pod_skips_then_fires_and_joins_the_next_call_by_correlation_id(nursery, tmp_path):
    replies = [
        tool_round(500),
        answer("ok", 800, cache_write=200),
        answer("done", 900, cache_read=1234, cache_write=50),
    ]
    handle, server, store = await start_pod(nursery, tmp_path, replies, prune_settings(1, 1))
    with trio.fail_after(10):
        assert (await handle.run("first")).outcome == "finished"
        second = await handle.run("second")
    assert second.outcome == "finished"
    metrics = await session_metrics(store, second.session_id)
    # run 1: nothing measured, then only an unseen result -> two no_candidates skips
    assert metrics[:2] == [PruneSkipMetric("no_candidates", 0, 0)] * 2
    fire, post = metrics[2:]
    assert isinstance(fire, PruneFireMetric) and isinstance(post, PrunePostRequestMetric)
    assert (fire.candidate_count, fire.protected_start_index) == (1, 3)
    assert fire.value > 0 and fire.correlation_id == post.correlation_id
    assert (post.value, post.cache_write_tokens, post.history_len) == (1234, 50, 5)
    # the third request carried the summary; the log and the history keep the content
    assert sent_results(server.requests[1]) == [CONTENT]
    assert sent_results(server.requests[2]) == [SUMMARY]
    entries = await store.read_entries(second.session_id)
    stored = [e.item for e in entries if isinstance(e, Item) and isinstance(e.item, ToolResult)]
    assert [r.content for r in stored] == [CONTENT]
    history = await handle.history()
    assert [i.content for i in history if isinstance(i, ToolResult)] == [CONTENT]
    # the pruned call's usage says how much it left out; the others say nothing
    usages = [e for e in entries if isinstance(e, Usage)]
    assert [u.pruned_tokens for u in usages] == [0, 0, fire.value]


async def test_pod_fires_within_one_long_tool_loop_and_keeps_firing(nursery, tmp_path):
    # One run, no second user turn. Each round adds ~540 tokens (a 2 KB result); the
    # provider reports the prompt it really got, which after a prune is the smaller one.
    # The pruned calls' usage records carry the cut, so the timeline still knows what the
    # history costs and each request prunes one result more. (Without the cut added back,
    # the smaller measurements make the history look cheaper than it is and the projection
    # falls behind: here it would leave out the first result only, every time.)
    replies = [
        tool_round(314),
        tool_round(851),
        tool_round(1388),
        tool_round(1417),  # pruned from here on: 1 result left out, then 2, then 3
        tool_round(1446),
        answer("done", 1475, cache_read=100, cache_write=20),
    ]
    handle, server, store = await start_pod(nursery, tmp_path, replies, prune_settings(600, 400))
    with trio.fail_after(10):
        run = await handle.run("one long task")
    assert run.outcome == "finished" and run.llm_calls == 6
    metrics = await session_metrics(store, run.session_id)
    assert metrics[:3] == [PruneSkipMetric("no_candidates", 0, 0)] * 3
    assert [type(m) for m in metrics[3:]] == [PruneFireMetric, PrunePostRequestMetric] * 3
    fires = [m for m in metrics if isinstance(m, PruneFireMetric)]
    assert [f.candidate_count for f in fires] == [1, 2, 3]
    assert [f.protected_start_index for f in fires] == [3, 5, 7]
    assert [sent_results(r).count(SUMMARY) for r in server.requests] == [0, 0, 0, 1, 2, 3]
    post = metrics[-1]
    assert isinstance(post, PrunePostRequestMetric)
    assert (post.value, post.cache_write_tokens, post.history_len) == (100, 20, 11)


async def test_pod_records_a_below_min_savings_skip(nursery, tmp_path):
    replies = [tool_round(500), answer("ok", 800), answer("done", 900)]
    handle, server, store = await start_pod(
        nursery, tmp_path, replies, prune_settings(1, 1_000_000)
    )
    with trio.fail_after(10):
        await handle.run("first")
        second = await handle.run("second")
    metrics = await session_metrics(store, second.session_id)
    below = metrics[-1]
    assert isinstance(below, PruneSkipMetric) and below.reason == "below_min_savings"
    assert below.candidate_count == 1 and 0 < below.value < 1_000_000
    assert not any(isinstance(m, PruneFireMetric | PrunePostRequestMetric) for m in metrics)
    assert sent_results(server.requests[2]) == [CONTENT]


class MetricFailingStore(FsStore):
    """An FsStore that refuses appends holding nothing but metric entries."""

    async def append(self, session_id, entries, expected_head):
        entries = list(entries)
        if entries and all(
            isinstance(e, Extension) and e.domain == METRICS_DOMAIN for e in entries
        ):
            raise OSError("synthetic failure")
        return await super().append(session_id, entries, expected_head)


async def test_a_metric_that_cannot_be_written_is_a_warning_not_a_failed_run(nursery, tmp_path):
    replies = [tool_round(500), answer("ok", 800), answer("done", 900)]
    handle, _server, store = await start_pod(
        nursery, tmp_path, replies, prune_settings(1, 1), store_type=MetricFailingStore
    )
    alerts = []
    async with handle.subscribe() as events:
        with trio.fail_after(10):
            await handle.run("first")
            second = await handle.run("second")
        async for event in events:
            if isinstance(event, proto.Alert):
                alerts.append(event)
            if isinstance(event, proto.RunEnd) and len(alerts) >= 3:
                break
    assert second.outcome == "finished"
    assert [(a.level, a.source) for a in alerts] == [("warn", "metrics")] * 3
    assert "prune.skip" in alerts[0].message and "synthetic failure" in alerts[0].message
    assert "prune.fire, prune.post_request" in alerts[2].message
    assert await session_metrics(store, second.session_id) == []
    entries = await store.read_entries(second.session_id)
    assert sum(isinstance(e, Usage) for e in entries) == 3  # every step made it to the log


async def test_without_compaction_nothing_is_pruned_and_no_metric_written(nursery, tmp_path):
    replies = [tool_round(500), answer("ok", 800), answer("done", 900)]
    handle, server, store = await start_pod(nursery, tmp_path, replies, None)
    with trio.fail_after(10):
        await handle.run("first")
        second = await handle.run("second")
    state = await store.restore(second.session_id)
    assert metrics_from_extensions(state.extension_log) == []
    assert all(e.domain != METRICS_DOMAIN for e in state.extension_log)
    assert sent_results(server.requests[2]) == [CONTENT]
    assert all(u.pruned_tokens == 0 for u in state.usage)


async def test_a_restored_pod_projects_from_the_logged_usage(nursery, tmp_path):
    replies = [tool_round(500), answer("ok", 800), answer("done", 900)]
    handle, server, store = await start_pod(nursery, tmp_path, replies, prune_settings(1, 1))
    with trio.fail_after(10):
        first = await handle.run("first")
    await handle.shutdown()
    state = await store.restore(first.session_id)
    revived = Pod(manifest_for(server, tmp_path, prune_settings(1, 1)), store, tools=[big_tool])
    revived.adopt(state)
    revived_handle = await nursery.start(revived.run)
    with trio.fail_after(10):
        second = await revived_handle.run("second")
    assert second.session_id == first.session_id
    assert sent_results(server.requests[2]) == [SUMMARY]
    metrics = await session_metrics(store, second.session_id)
    assert [type(m) for m in metrics][-2:] == [PruneFireMetric, PrunePostRequestMetric]


def test_metric_payloads_are_plain_msgpack_maps_named_by_their_tag() -> None:
    entry = metric_entries([PruneSkipMetric("no_candidates", 0, 0)])[0]
    assert msgspec.msgpack.decode(entry.payload) == {
        "name": "prune.skip",
        "reason": "no_candidates",
        "candidate_count": 0,
        "value": 0,
    }
