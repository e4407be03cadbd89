"""Compaction: the pure parts, then the pod against the Anthropic stand-in and a real store.

Occupancy is driven with scripted usage: a first run makes a tool call measured at 1000
tokens and an answer measured at 3000 (the ~4 KB tool result in between costs ~2000), so
the context sits at ~3030 tokens, ~975 of them the fixed prompt. A ``threshold`` of 1500
or a ``request_threshold`` of 2500 then fires (the latter not yet inside the first run,
where the unmeasured result is estimated at 4 bytes a token: ~2040), a 200-token tail
keeps the last answer, and the compacted context (~1050) fits. After a long first input
(~290 tokens), a 2200-token tail reaches back to the tool call but not to the input, and
with the fixed prompt (~685) cannot fit below either threshold.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from standin_pods import standin_manifest

from podactors import protocol as proto
from podactors.actor import ActorHandle
from podactors.compaction.compactor import (
    Compact,
    Compacted,
    CompactionFailed,
    Compactor,
    Due,
    GetStatistics,
)
from podactors.compaction.summariser import (
    Summariser,
    conversation_text,
    summary_input,
    tail_start,
)
from podactors.errors import PodError
from podactors.handle import PodHandle
from podactors.items import (
    FileAttachment,
    HistoryItem,
    Message,
    Notification,
    Reasoning,
    ToolCall,
    ToolResult,
)
from podactors.llm import create_provider
from podactors.llm.events import LlmResponse
from podactors.llm.request import Request
from podactors.llm.scripted import (
    ScriptedProvider,
    ScriptedReply,
    ScriptedToolCall,
    ScriptedUsage,
)
from podactors.manifest import CompactionConfig
from podactors.runtime.pod import Pod
from podactors.store import FsStore
from podactors.store.entries import Origin, Outcome, UserInput
from podactors.testing import StandinServer
from podactors.tools import Scope, ScopedFs, ToolOutput, tool

CONTENT = "x" * 4000
FIRST_RUN_TOKENS = 3000
REQUEST_THRESHOLD = 2500
FITS = "retained_tokens = 200"
TOO_BIG = "retained_tokens = 2200"
LONG_INPUT = "first " + "z" * 600


@tool
def big_tool() -> ToolOutput:
    """Return a long output with a short summary."""
    return ToolOutput("big tool output", CONTENT)


def reply(
    text: str = "", *, tools: list[ScriptedToolCall] | None = None, tokens: int | None = None
) -> ScriptedReply:
    usage = None if tokens is None else ScriptedUsage(input_tokens=tokens, output_tokens=5)
    return ScriptedReply(text=text, tool_calls=tools or [], usage=usage)


def call(name: str, **arguments) -> ScriptedToolCall:
    return ScriptedToolCall(name, arguments)


def first_run() -> list[ScriptedReply]:
    """A tool round and an answer: ~3030 tokens in context afterwards."""
    return [
        reply(tools=[call("big_tool")], tokens=1000),
        reply("done one", tokens=FIRST_RUN_TOKENS),
    ]


def summariser(summary: str = "We did one thing.") -> list[ScriptedReply]:
    """The summarising worker's replies: write the summary, then close."""
    return [reply(tools=[call("write_summary", text=summary)]), reply("ok")]


SUMMARISER_MODEL = '[compaction.model]\nprovider = "anthropic"\nmodel = "summariser"\n'


def summarising_with(provider):
    """A provider factory: ``provider`` for the summariser's model, the real thing else."""

    def build(model):
        return provider if model.model == "summariser" else create_provider(model)

    return build


def manifest_for(server: StandinServer, workdir, compaction: str | None, extra: str = ""):
    table = "" if compaction is None else f"[compaction]\n{compaction}\n{extra}"
    return standin_manifest(server, workdir, extra=table)


class Recorder:
    """Every event a pod emits, from the moment it started recording."""

    def __init__(self) -> None:
        self.seen: list[proto.AnyEvent] = []

    async def record(self, handle: PodHandle, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with handle.subscribe() as events:
            task_status.started()
            async for event in events:
                self.seen.append(event)

    async def of(self, kind: type) -> list:
        await trio.testing.wait_all_tasks_blocked()
        return [event for event in self.seen if isinstance(event, kind)]

    async def clear(self) -> None:
        await trio.testing.wait_all_tasks_blocked()
        self.seen.clear()


async def start_pod(
    nursery, workdir, replies, compaction, *, extra: str = "", server=None, **pod_args
) -> tuple[PodHandle, Pod, StandinServer, FsStore, Recorder]:
    if server is None:
        server = StandinServer(replies)
        await nursery.start(server.serve)
    store = FsStore(workdir / "store")
    manifest = manifest_for(server, workdir, compaction, extra)
    pod = Pod(manifest, store, tools=[big_tool], **pod_args)
    handle = await nursery.start(pod.run)
    recorder = Recorder()
    await nursery.start(recorder.record, handle)
    return handle, pod, server, store, recorder


def user_text(request: dict) -> str:
    """All text an Anthropic request carried in its messages."""
    parts = []
    for message in request["messages"]:
        for block in message["content"]:
            parts.append(str(block.get("text") or block.get("content") or ""))
    return "\n".join(parts)


# --- the pure parts ---------------------------------------------------------------------


def test_a_tail_never_starts_inside_a_response_or_its_results() -> None:
    items: list[HistoryItem] = [
        Message("user", "go"),  # 0
        Reasoning("think", signature="sig"),  # 1
        Message("assistant", "calling"),  # 2
        ToolCall("a", "read_file", {"path": "x"}),  # 3
        ToolCall("b", "read_file", {"path": "y"}),  # 4
        ToolResult("a", "read x"),  # 5
        ToolResult("b", "read y"),  # 6
        Message("assistant", "done"),  # 7
    ]
    for index in range(1, 7):
        assert tail_start(items, index) == 1
    assert tail_start(items, 7) == 7
    assert tail_start(items, 0) == 0
    assert tail_start(items, 8) == 8


def test_the_summary_input_strips_arguments_contents_and_reasoning() -> None:
    items: list[HistoryItem] = [
        Message("user", "fix the bug"),
        Reasoning("secret deliberation"),
        ToolCall("a", "read_file", {"path": "src/main.py"}),
        ToolResult("a", "read 3 lines of src/main.py", "def main(): print('hello')"),
        Notification("tests pass", source="ci"),
        FileAttachment("notes.md", "attached content"),
        Message("assistant", "fixed"),
    ]
    assert conversation_text(items) == [
        "[User] fix the bug",
        "[ToolCall] read_file",
        "[ToolResult] read 3 lines of src/main.py",
        "[Notification from ci] tests pass",
        "[File attached] notes.md",
        "[Assistant] fixed",
    ]
    text = summary_input(items, ["src/main.py"])
    assert "- src/main.py" in text and "write_summary" in text
    for secret in ("deliberation", "print('hello')", "attached content", '"path"'):
        assert secret not in text


def test_the_summary_input_leaves_out_the_oldest_entries_to_fit() -> None:
    items: list[HistoryItem] = [Message("user", f"message number {n:03}") for n in range(100)]
    text = summary_input(items, max_bytes=300)
    assert "message number 099" in text and "message number 000" not in text
    assert "earlier entries left out]" in text


async def start_compactor(nursery, replies, **settings):
    """A compactor (summarising with ``replies``) and the inbox its outcomes reach."""
    fs = ScopedFs(Scope([]), ".")
    config = CompactionConfig(**settings)
    summariser = Summariser(
        config, fs, provider=ScriptedProvider(replies), model="", provider_factory=create_provider
    )
    address = await nursery.start(Compactor(config, summariser).run)
    send, inbox = trio.open_memory_channel(8)
    return address, ActorHandle("inbox", send), inbox


async def compact(address, reply_to, inbox, trigger, history, usages=()):
    await address.ask(Compact(trigger, history, list(usages), reply_to))
    with trio.fail_after(5):
        return (await inbox.receive()).message.outcome


LONG: list[HistoryItem] = [Message("user", "x" * 1000), Message("assistant", "ok")]


async def test_an_automatic_trigger_right_after_a_compaction_is_thrash(nursery) -> None:
    address, reply_to, inbox = await start_compactor(
        nursery, summariser("s") * 2, threshold=100, retained_tokens=0
    )
    first = await compact(address, reply_to, inbox, "threshold", LONG)
    assert isinstance(first, Compacted)
    new = first.compaction.history
    # a manual compaction is never thrash
    assert isinstance(await compact(address, reply_to, inbox, "manual", new), Compacted)
    thrash = await compact(address, reply_to, inbox, "threshold", new)
    assert isinstance(thrash, CompactionFailed) and thrash.error.startswith("thrash")
    assert str(thrash.tokens_before) in thrash.error


async def test_the_breaker_opens_at_the_third_failure_and_a_manual_compact_closes_it(
    nursery,
) -> None:
    address, reply_to, inbox = await start_compactor(nursery, [], threshold=100, retained_tokens=0)
    assert await address.ask(Due("threshold", LONG, []))
    failures = [await compact(address, reply_to, inbox, "threshold", LONG) for _ in range(3)]
    assert [f.breaker_opened for f in failures] == [False, False, True]
    assert not await address.ask(Due("threshold", LONG, []))
    assert (await address.ask(GetStatistics())).circuit_open
    manual = await compact(address, reply_to, inbox, "manual", LONG)
    assert isinstance(manual, CompactionFailed) and not manual.breaker_opened
    assert await address.ask(Due("threshold", LONG, []))
    assert (await address.ask(GetStatistics())).consecutive_failures == 1


async def test_without_thresholds_nothing_is_ever_due(nursery) -> None:
    address, *_ = await start_compactor(nursery, [])
    history: list[HistoryItem] = [Message("user", "x" * 100_000)]
    assert not await address.ask(Due("threshold", history, []))
    assert not await address.ask(Due("request", history, []))


# --- the pod ----------------------------------------------------------------------------


async def test_pre_run_compaction_rotates_to_a_compacted_session(nursery, tmp_path):
    replies = [*first_run(), *summariser("We ran big_tool once."), reply("hello again")]
    settings = f"threshold = 1500\n{FITS}"
    handle, pod, server, store, events = await start_pod(nursery, tmp_path, replies, settings)
    with trio.fail_after(10):
        first = await handle.run("first")
        old_entries = await store.read_entries(first.session_id)
        old_head = await store.head(first.session_id)
        await events.clear()
        second = await handle.run("second")
    assert second.outcome == "finished" and second.session_id != first.session_id
    assert handle.session_id == second.session_id
    # events: start, rotation, done, with the numbers; the status went through compacting
    (start,) = await events.of(proto.CompactStart)
    (rotated,) = await events.of(proto.SessionRotated)
    (done,) = await events.of(proto.CompactDone)
    assert (rotated.old_session_id, rotated.new_session_id, rotated.reason) == (
        first.session_id,
        second.session_id,
        "compacted",
    )
    assert (done.old_session_id, done.new_session_id) == (first.session_id, second.session_id)
    assert start.tokens_before == done.tokens_before > FIRST_RUN_TOKENS
    assert 0 < done.tokens_after < 1500 and done.duration >= 0
    assert "compacting" in [e.status for e in await events.of(proto.Status)]
    assert not await events.of(proto.CompactFailed)
    # the new session: compacted from the old head; summary, then the retained answer
    state = await store.restore(second.session_id)
    assert state.origin == Origin("compacted_from", first.session_id, head=old_head)
    summary, retained = state.history[:2]
    assert summary == Message("system", "[Compacted context summary]\n\nWe ran big_tool once.")
    assert retained == Message("assistant", "done one")
    assert state.history[2:] == [Message("user", "second"), Message("assistant", "hello again")]
    assert (await store.get_pod_ref("alice")).session_id == second.session_id
    # the old session is untouched
    assert await store.read_entries(first.session_id) == old_entries
    # the summarising request saw the conversation without the tool output
    summarising = server.requests[2]
    assert "context compaction assistant" in summarising["system"][0]["text"]
    assert "[ToolCall] big_tool" in user_text(summarising)
    assert CONTENT not in user_text(summarising)
    assert {t["name"] for t in summarising["tools"]} == {
        "read_file",
        "mark_read_required",
        "add_reference",
        "write_summary",
    }
    # the run's request: the summary first, cached as the stable prefix
    run_request = server.requests[-1]
    first_block = run_request["messages"][0]["content"][0]
    assert "[Compacted context summary]" in first_block["text"]
    assert first_block["cache_control"] == {"type": "ephemeral"}
    assert pod.session.transcript.cache_breakpoint == 0


async def test_a_failed_pre_run_compaction_leaves_the_pod_on_its_session(nursery, tmp_path):
    # the summarising worker never writes a summary, even after its one nudge
    replies = [*first_run(), reply("I would rather not."), reply("Still no."), reply("answer")]
    handle, _pod, server, store, events = await start_pod(
        nursery, tmp_path, replies, f"threshold = 1500\n{FITS}"
    )
    with trio.fail_after(10):
        first = await handle.run("first")
        await events.clear()
        second = await handle.run("second")
    assert second.outcome == "finished" and second.session_id == first.session_id
    assert len(await events.of(proto.CompactStart)) == 1
    (failed,) = await events.of(proto.CompactFailed)
    assert "write_summary" in failed.error
    assert not await events.of(proto.CompactDone) and not await events.of(proto.SessionRotated)
    # the nudge went to the summarising worker, once
    assert "You have not called `write_summary` yet" in user_text(server.requests[3])
    assert handle.status == "idle"
    history = await handle.history()
    assert history[-2:] == [Message("user", "second"), Message("assistant", "answer")]
    assert len(await store.list_sessions()) == 1


async def test_request_threshold_compacts_mid_run_and_the_run_resumes(nursery, tmp_path):
    replies = [*first_run(), *summariser(), reply("resumed", tokens=1100)]
    handle, _pod, server, store, events = await start_pod(
        nursery, tmp_path, replies, f"request_threshold = {REQUEST_THRESHOLD}\n{FITS}"
    )
    with trio.fail_after(10):
        first = await handle.run("first")
        await events.clear()
        second = await handle.run("second")
    assert second.outcome == "finished" and second.llm_calls == 1
    (done,) = await events.of(proto.CompactDone)
    assert (done.old_session_id, done.new_session_id) == (first.session_id, second.session_id)
    (run_end,) = await events.of(proto.RunEnd)
    assert run_end.session_id == second.session_id
    assert [e.status for e in await events.of(proto.Status)] == [
        "running",
        "compacting",
        "running",
        "idle",
    ]
    # the old session: the user input, then the run's part closed as yielded
    old = await store.read_entries(first.session_id)
    assert old[-2:] == [UserInput("second"), Outcome("yielded")]
    # the new session carries the rest of the run
    state = await store.restore(second.session_id)
    assert state.history[1:] == [
        Message("assistant", "done one"),
        Message("user", "second"),
        Message("assistant", "resumed"),
    ]
    assert state.last_outcome == Outcome("finished") and state.turn_count == 1
    assert len(server.requests) == 5  # 2 + the summariser's 2 + the resumed call


async def test_only_the_new_system_items_are_broadcast(nursery, tmp_path):
    replies = [
        reply(tools=[call("task_create", title="ship it")], tokens=1000),
        reply("created", tokens=1100),
        reply("noted", tokens=1200),  # the turn the notification starts
        *summariser(),
    ]
    handle, _pod, _server, store, events = await start_pod(
        nursery, tmp_path, replies, "threshold = 100000\nretained_tokens = 150"
    )
    with trio.fail_after(10):
        await handle.run("plan")
        ticket = await handle.notify("build is green", source="ci")
        await ticket.wait()
        await events.clear()
        result = await handle.compact()
    assert result.outcome == "compacted"
    state = await store.restore(result.session_id)
    broadcast = [e.item for e in await events.of(proto.SystemItemAdded)]
    assert [type(i) for i in broadcast] == [Message, Message]
    assert broadcast[0].content.startswith("[Compacted context summary]")
    assert broadcast[1].content == "[Task list at compaction]\n#1 [pending] ship it"
    # the retained notification is in the new history, but was not broadcast again
    assert state.history[:2] == broadcast
    assert Notification("build is green", source="ci") in state.history[2:]


async def test_a_retained_tail_too_big_fails_the_post_condition_without_a_loop(nursery, tmp_path):
    # the tail reaches back to the tool call: with the fixed prompt that is ~2740 tokens
    replies = [*first_run(), reply("went on", tokens=3100)]
    handle, _pod, server, store, events = await start_pod(
        nursery, tmp_path, replies, f"request_threshold = {REQUEST_THRESHOLD}\n{TOO_BIG}"
    )
    with trio.fail_after(10):
        first = await handle.run(LONG_INPUT)
        await events.clear()
        second = await handle.run("second")
    assert second.outcome == "finished" and second.session_id == first.session_id
    assert len(await events.of(proto.CompactStart)) == 1  # tried once in the run, not again
    (failed,) = await events.of(proto.CompactFailed)
    assert "post-condition" in failed.error and str(REQUEST_THRESHOLD) in failed.error
    assert "retained_tokens" in failed.error
    assert len(server.requests) == 3  # the summarising worker was never asked
    assert len(await store.list_sessions()) == 1
    entries = await store.read_entries(first.session_id)
    assert Outcome("yielded") not in entries and entries[-1] == Outcome("finished")


async def test_tripping_a_threshold_again_before_any_progress_is_thrash_not_a_loop(
    nursery, tmp_path
):
    replies = [*first_run(), *summariser(), reply("read it all")]
    settings = f"threshold = 1500\nrequest_threshold = {REQUEST_THRESHOLD}\n{FITS}"
    handle, _pod, server, _store, events = await start_pod(nursery, tmp_path, replies, settings)
    with trio.fail_after(10):
        first = await handle.run("first")
        await events.clear()
        # compacted before the run; then a huge input trips the request check at once
        second = await handle.run("please read: " + "q" * 20_000)
    assert second.outcome == "finished" and second.session_id != first.session_id
    assert len(await events.of(proto.CompactStart)) == 2
    assert len(await events.of(proto.CompactDone)) == 1
    (failed,) = await events.of(proto.CompactFailed)
    assert failed.error.startswith("thrash")
    assert len(server.requests) == 5  # no second summarising run


async def test_the_breaker_opens_after_three_failures_and_a_manual_compact_closes_it(
    nursery, tmp_path
):
    replies = [*first_run(), *(reply(f"run {n}", tokens=3100 + n) for n in range(5))]
    handle, pod, _server, _store, events = await start_pod(
        nursery, tmp_path, replies, f"threshold = 1500\n{TOO_BIG}"
    )
    with trio.fail_after(10):
        await handle.run(LONG_INPUT)
        for n in range(3):
            assert (await handle.run(f"again {n}")).outcome == "finished"
        failures = await events.of(proto.CompactFailed)
        assert len(failures) == 3 and all("post-condition" in f.error for f in failures)
        (alert,) = await events.of(proto.Alert)
        assert (alert.level, alert.source) == ("error", "compactor")
        assert "3 times in a row" in alert.message and "manual compact" in alert.message
        await events.clear()
        await handle.run("breaker open")
        assert not await events.of(proto.CompactStart)  # automatic compaction is off
        manual = await handle.compact()
        assert manual.outcome == "failed" and "post-condition" in manual.error
        assert not pod.compactor.statistics().circuit_open
        await events.clear()
        await handle.run("breaker closed")
        assert len(await events.of(proto.CompactStart)) == 1  # automatic again


async def test_a_compacted_session_restores_after_a_restart(nursery, tmp_path):
    replies = [*first_run(), *summariser("Restored summary."), reply("after restart")]
    settings = f"threshold = 1500\n{FITS}"
    handle, _pod, server, _store, _events = await start_pod(nursery, tmp_path, replies, settings)
    with trio.fail_after(10):
        first = await handle.run("first")
        compacted = await handle.compact()
        history = await handle.history()
        await handle.shutdown()
    assert compacted.outcome == "compacted"
    store = FsStore(tmp_path / "store")  # a new process
    ref = await store.get_pod_ref("alice")
    assert ref.session_id == compacted.session_id
    state = await store.restore(ref.session_id)
    assert state.origin.kind == "compacted_from" and state.origin.session_id == first.session_id
    assert state.history == history
    revived = Pod(manifest_for(server, tmp_path, settings), store, tools=[big_tool])
    revived.adopt(state)
    assert revived.session.transcript.cache_breakpoint == 0
    revived_handle = await nursery.start(revived.run)
    with trio.fail_after(10):
        result = await revived_handle.run("third")
    assert (result.outcome, result.session_id) == ("finished", compacted.session_id)
    request = server.requests[-1]
    assert "Restored summary." in request["messages"][0]["content"][0]["text"]
    assert request["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    old = await store.restore(first.session_id)
    assert old.history[-1] == Message("assistant", "done one")


async def test_the_compaction_model_gets_the_summarising_requests(nursery, tmp_path):
    small = StandinServer(summariser("From the small model."))
    await nursery.start(small.serve)
    extra = f'[compaction.model]\nmodel = "small-model"\nbase_url = "{small.url}"\n'
    replies = [*first_run(), reply("answer")]
    handle, _pod, server, store, _events = await start_pod(
        nursery, tmp_path, replies, f"threshold = 1500\n{FITS}", extra=extra
    )
    with trio.fail_after(10):
        await handle.run("first")
        second = await handle.run("second")
    assert len(small.requests) == 2 and len(server.requests) == 3
    assert all(r["model"] == "small-model" for r in small.requests)
    assert server.requests[-1]["model"] != "small-model"
    state = await store.restore(second.session_id)
    assert state.history[0].content.endswith("From the small model.")


async def test_auto_read_refuses_files_outside_the_scope_and_over_the_budget(nursery, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    (tmp_path / "secret.txt").write_text("top secret\n")
    (workdir / "notes.txt").write_text("line one\nline two\nline three\n")
    (workdir / "huge.txt").write_text("y" * 5000)
    summarising = ScriptedProvider(
        [
            reply(
                tools=[
                    call("mark_read_required", path="../secret.txt"),
                    call("mark_read_required", path="notes.txt", offset=1, limit=1),
                    call("mark_read_required", path="huge.txt"),
                    call("add_reference", path="huge.txt"),
                ]
            ),
            reply(tools=[call("write_summary", text="first draft")]),
            reply(tools=[call("write_summary", text="final summary")]),
            reply("done"),
        ]
    )
    handle, _pod, _server, store, events = await start_pod(
        nursery,
        workdir,
        [reply(tools=[call("read_file", path="notes.txt")], tokens=1000), reply("ok", tokens=2000)],
        "threshold = 100000\nretained_tokens = 0\nauto_read_budget = 500",
        extra=SUMMARISER_MODEL,
        providers=summarising_with(summarising),
    )
    with trio.fail_after(10):
        await handle.run("look at the notes")
        result = await handle.compact()
    assert result.outcome == "compacted"
    # where the time went: every phase that did work was timed
    timings = result.timings
    assert timings is not None
    for phase in ("occupancy", "split", "summary_input", "worker", "auto_read", "persist"):
        assert getattr(timings, phase) > 0, phase
    assert timings.swap >= 0 and timings.total >= timings.persist
    # the recently read file was offered; the results of the four calls came back
    assert "- notes.txt" in summarising.requests[0].items[0].content
    results = [i for i in summarising.requests[1].items if isinstance(i, ToolResult)]
    secret, notes, huge, reference = results
    assert secret.is_error and "secret.txt" in secret.summary
    assert not notes.is_error and "notes.txt" in notes.summary
    assert huge.is_error and "budget" in huge.summary
    assert not reference.is_error
    state = await store.restore(result.session_id)
    summary, attachment, references = state.history
    assert summary.content.endswith("final summary")  # the last write_summary wins
    assert attachment == FileAttachment("notes.txt", "line two\n", 1, 1)
    assert references.role == "system" and "- huge.txt" in references.content
    assert all("top secret" not in str(item) for item in state.history)
    broadcast = [e.item for e in await events.of(proto.SystemItemAdded)]
    assert broadcast == state.history


async def test_without_thresholds_nothing_compacts_on_its_own(nursery, tmp_path):
    replies = [
        reply(tools=[call("big_tool")], tokens=1000),
        reply("done one", tokens=10**6),
        reply("still here", tokens=2 * 10**6),
        *summariser(),
    ]
    handle, _pod, _server, store, events = await start_pod(
        nursery, tmp_path, replies, "retained_tokens = 0"
    )
    with trio.fail_after(10):
        first = await handle.run("first")
        second = await handle.run("second")
        assert second.session_id == first.session_id
        assert not await events.of(proto.CompactStart)
        manual = await handle.compact()  # asked for, it still works
    assert manual.outcome == "compacted" and manual.tokens_after < manual.tokens_before
    assert len(await store.list_sessions()) == 2


async def test_compact_is_refused_unless_configured_and_idle(nursery, tmp_path):
    handle, *_ = await start_pod(nursery, tmp_path, [reply("hi")], None)
    with pytest.raises(PodError) as err:
        await handle.compact()
    assert err.value.code == "invalid_request" and "not configured" in err.value.message
    handle, *_ = await start_pod(nursery, tmp_path / "b", [reply("hi")], "retained_tokens = 0")
    with pytest.raises(PodError) as err:
        await handle.compact()
    assert err.value.code == "invalid_request" and "nothing to compact" in err.value.message


class BlockingProvider:
    """A provider whose calls wait until cancelled."""

    name = "blocking"

    def __init__(self) -> None:
        self.entered = trio.Event()

    async def stream(self, request: Request, on_event=None) -> LlmResponse:
        self.entered.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        pass


async def test_a_compaction_cancelled_half_way_leaves_the_pod_on_its_session(nursery, tmp_path):
    blocking = BlockingProvider()
    handle, _pod, _server, store, events = await start_pod(
        nursery,
        tmp_path,
        [*first_run(), reply("still usable")],
        "threshold = 100000\nretained_tokens = 0",
        extra=SUMMARISER_MODEL,
        providers=summarising_with(blocking),
    )
    with trio.fail_after(10):
        first = await handle.run("first")
        ticket = await handle.start_compact()
        await blocking.entered.wait()
        assert handle.status == "compacting"
        with pytest.raises(PodError) as err:
            await handle.run("too early")
        assert err.value.code == "already_running"
        await handle.cancel()
        result = await ticket.wait()
        assert (result.outcome, result.session_id) == ("cancelled", first.session_id)
        assert handle.status == "idle" and handle.session_id == first.session_id
        (failed,) = await events.of(proto.CompactFailed)
        assert failed.error == "cancelled"
        again = await handle.run("go on")
    assert (again.outcome, again.session_id) == ("finished", first.session_id)
    assert len(await store.list_sessions()) == 1
