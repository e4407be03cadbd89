"""The worker's turn: tool loop, limits, hooks, the interceptor and cut-short turns."""

from __future__ import annotations

import functools

import pytest
import trio
import trio.testing

from podactors.agent.conversation import Conversation
from podactors.agent.hooks import Abort, Hooks, Nudge, Pause, Skip
from podactors.agent.worker import INTERRUPTED, Step
from podactors.errors import StreamInterrupted, TurnAborted
from podactors.items import Message, ToolCall, ToolResult
from podactors.llm.events import TextDelta
from podactors.llm.request import ToolSpec
from podactors.llm.scripted import ScriptedProvider, ScriptedReply, ScriptedToolCall


class FakeTools:
    """Tools as coroutines by name; ``started`` records the order calls began."""

    def __init__(self, **tools):
        self.tools = tools
        self.started: list[str] = []

    def specs(self) -> list[ToolSpec]:
        return [ToolSpec(name, name, {"type": "object"}) for name in self.tools]

    async def call(self, call: ToolCall, ctx=None) -> ToolResult:
        self.started.append(call.id)
        output = await self.tools[call.name](**call.arguments)
        return ToolResult(call.id, f"{call.name} done", output)


def reply(text: str = "", *calls: tuple[str, dict]) -> ScriptedReply:
    return ScriptedReply(text=text, tool_calls=[ScriptedToolCall(n, a) for n, a in calls])


async def echo(value: str = "") -> str:
    return value


class Recorder:
    def __init__(self):
        self.steps: list[Step] = []
        self.events: list = []

    async def step(self, step: Step) -> None:
        self.steps.append(step)

    async def event(self, event) -> None:
        self.events.append(event)


def assert_provider_would_accept(history) -> None:
    """Every tool call has exactly one result, after it."""
    calls = [i.id for i in history if isinstance(i, ToolCall)]
    results = [i.call_id for i in history if isinstance(i, ToolResult)]
    assert sorted(calls) == sorted(results)
    for item in history:
        if isinstance(item, ToolResult):
            assert item.call_id in calls[: calls.index(item.call_id) + 1]


async def test_plain_answer_finishes_with_one_step():
    worker = Conversation(ScriptedProvider([reply("Hello.")]), system_prompt="be nice")
    rec = Recorder()
    result = await worker.run("hi", on_step=rec.step, on_event=rec.event)
    assert (result.outcome, result.llm_calls) == ("finished", 1)
    assert worker.history == [Message("user", "hi"), Message("assistant", "Hello.")]
    [step] = rec.steps
    assert step.items == [Message("assistant", "Hello.")]
    assert step.usage is not None and step.usage.history_len == 1
    assert "".join(e.text for e in rec.events if isinstance(e, TextDelta)) == "Hello."


async def test_parallel_tools_run_concurrently_and_results_keep_call_order():
    a_started, b_started = trio.Event(), trio.Event()

    async def first() -> str:
        a_started.set()
        await b_started.wait()  # only finishes if the other tool runs meanwhile
        return "a"

    async def second() -> str:
        b_started.set()
        await a_started.wait()
        return "b"

    tools = FakeTools(first=first, second=second)
    provider = ScriptedProvider([reply("", ("second", {}), ("first", {})), reply("done")])
    worker = Conversation(provider, tools=tools)
    rec = Recorder()
    with trio.fail_after(5):
        result = await worker.run("go", on_step=rec.step)
    assert result.outcome == "finished"
    results = [i for i in worker.history if isinstance(i, ToolResult)]
    assert [r.content for r in results] == ["b", "a"]  # the model's order, not finishing order
    assert [len(s.items) for s in rec.steps] == [2, 2, 1]
    assert provider.requests[1].items[-2:] == results
    assert_provider_would_accept(worker.history)


async def test_max_turns_stops_with_limit_reached_and_a_valid_history():
    provider = ScriptedProvider([reply("", ("echo", {"value": str(i)})) for i in range(5)])
    worker = Conversation(provider, tools=FakeTools(echo=echo), max_turns=3)
    result = await worker.run("loop")
    assert (result.outcome, result.llm_calls) == ("limit_reached", 3)
    assert len(provider.requests) == 3
    assert_provider_would_accept(worker.history)


async def test_cancel_mid_stream_keeps_partial_text_marked_interrupted():
    provider = ScriptedProvider([reply("one two three four five", ("echo", {}))])
    worker = Conversation(provider, tools=FakeTools(echo=echo))
    rec = Recorder()
    with trio.CancelScope() as scope:

        async def on_event(event) -> None:
            if isinstance(event, TextDelta) and event.text == "two ":
                scope.cancel()
                await trio.lowlevel.checkpoint()

        await worker.run("count", on_step=rec.step, on_event=on_event)
    assert worker.history[-1] == Message("assistant", "one two ", interrupted=True)
    assert worker.last_run_interrupted
    assert rec.steps[-1].interrupted and rec.steps[-1].items == [worker.history[-1]]
    assert_provider_would_accept(worker.history)


async def test_cancel_mid_tool_closes_every_open_call():
    release = trio.Event()

    async def hang() -> str:
        await trio.sleep_forever()
        raise AssertionError

    async def quick() -> str:
        release.set()
        return "fast"

    tools = FakeTools(hang=hang, quick=quick)
    provider = ScriptedProvider([reply("", ("hang", {}), ("quick", {}))])
    worker = Conversation(provider, tools=tools)
    rec = Recorder()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(worker.run, "go", on_step=rec.step))
            await release.wait()
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    results = {r.call_id: r for r in worker.history if isinstance(r, ToolResult)}
    assert [r.summary for r in results.values()] == [INTERRUPTED, "quick done"]
    assert results["call_0_0"].is_error
    assert rec.steps[-1].interrupted
    assert_provider_would_accept(worker.history)


async def test_stream_interrupted_keeps_partial_text_and_raises(fake_provider):
    from fake_provider import Reply, fixture

    from podactors.llm.anthropic import AnthropicProvider

    fake_provider.queue(Reply(body=fixture("anthropic_error_midstream.sse")))
    provider = AnthropicProvider(model="m", base_url=fake_provider.url)
    worker = Conversation(provider)
    with pytest.raises(StreamInterrupted), trio.fail_after(10):
        await worker.run("hi")
    await provider.aclose()
    assert worker.history[-1] == Message("assistant", "Working on", interrupted=True)


async def test_prompt_submit_abort_leaves_history_untouched():
    aborted = []
    hooks = Hooks(on_prompt_submit=[lambda text: Abort("no")], on_abort=[aborted.append])
    worker = Conversation(ScriptedProvider([reply("x")]), hooks=hooks)
    with pytest.raises(TurnAborted, match="no"):
        await worker.run("hi")
    assert worker.history == [] and aborted == ["no"]


async def test_pre_llm_request_pause_sends_nothing():
    provider = ScriptedProvider([reply("x")])
    worker = Conversation(provider, hooks=Hooks(pre_llm_request=[lambda request: Pause()]))
    result = await worker.run("hi")
    assert result.outcome == "paused" and provider.requests == []
    assert worker.last_run_interrupted


async def test_pre_llm_request_abort_raises_before_the_call():
    provider = ScriptedProvider([reply("x")])
    worker = Conversation(provider, hooks=Hooks(pre_llm_request=[lambda request: Abort("budget")]))
    with pytest.raises(TurnAborted):
        await worker.run("hi")
    assert provider.requests == []


async def test_pre_tool_call_skip_supplies_the_result():
    tools = FakeTools(echo=echo)

    def deny_echo(call):
        return Skip("not allowed here", is_error=True) if call.name == "echo" else None

    provider = ScriptedProvider([reply("", ("echo", {"value": "x"})), reply("ok")])
    worker = Conversation(provider, tools=tools, hooks=Hooks(pre_tool_call=[deny_echo]))
    await worker.run("go")
    assert tools.started == []
    assert ToolResult("call_0_0", "not allowed here", None, True) in worker.history


async def test_pre_tool_call_pause_then_resume_runs_the_pending_tools():
    tools = FakeTools(echo=echo)
    gate = {"open": False}

    def pause_until_open(call):
        return None if gate["open"] else Pause()

    provider = ScriptedProvider([reply("", ("echo", {"value": "v"})), reply("all done")])
    worker = Conversation(provider, tools=tools, hooks=Hooks(pre_tool_call=[pause_until_open]))
    assert (await worker.run("go")).outcome == "paused"
    assert [c.id for c in worker.open_calls()] == ["call_0_0"] and tools.started == []
    gate["open"] = True
    result = await worker.resume()
    assert result.outcome == "finished" and tools.started == ["call_0_0"]
    assert worker.history[-1] == Message("assistant", "all done")
    assert_provider_would_accept(worker.history)


async def test_pre_tool_call_abort_closes_the_calls():
    provider = ScriptedProvider([reply("", ("echo", {}), ("echo", {}))])
    worker = Conversation(
        provider, tools=FakeTools(echo=echo), hooks=Hooks(pre_tool_call=[lambda c: Abort("x")])
    )
    with pytest.raises(TurnAborted):
        await worker.run("go")
    assert [r.summary for r in worker.history if isinstance(r, ToolResult)] == [INTERRUPTED] * 2


async def test_post_tool_call_pause_stops_after_the_batch():
    provider = ScriptedProvider([reply("", ("echo", {"value": "1"})), reply("next")])
    hooks = Hooks(post_tool_call=[lambda call, result: Pause()])
    worker = Conversation(provider, tools=FakeTools(echo=echo), hooks=hooks)
    result = await worker.run("go")
    assert result.outcome == "paused" and len(provider.requests) == 1
    assert worker.open_calls() == [] and isinstance(worker.history[-1], ToolResult)


async def test_turn_end_nudge_asks_again_once():
    nudged = []

    def nudge_once(response):
        if not nudged:
            nudged.append(response)
            return Nudge("You forgot the summary.")
        return None

    provider = ScriptedProvider([reply("first"), reply("summary")])
    rec = Recorder()
    worker = Conversation(provider, hooks=Hooks(on_turn_end=[nudge_once]))
    result = await worker.run("go", on_step=rec.step)
    assert result.outcome == "finished" and result.llm_calls == 2
    assert Message("user", "You forgot the summary.") in provider.requests[1].items
    assert [s.items for s in rec.steps][1] == [Message("user", "You forgot the summary.")]


async def test_interceptor_yield_ends_the_turn_before_the_request():
    seen = []

    async def intercept(worker: Conversation):
        seen.append(len(worker.history))
        return "yield" if len(seen) == 2 else "proceed"

    provider = ScriptedProvider([reply("", ("echo", {})), reply("never")])
    worker = Conversation(provider, tools=FakeTools(echo=echo), interceptor=intercept)
    result = await worker.run("go")
    assert (result.outcome, result.llm_calls) == ("yielded", 1)
    assert len(provider.requests) == 1
    assert_provider_would_accept(worker.history)


async def test_close_open_calls_answers_each_once():
    worker = Conversation(
        ScriptedProvider([]),
        history=[
            Message("user", "x"),
            ToolCall("a", "t", {}),
            ToolCall("b", "t", {}),
            ToolResult("a", "ok"),
        ],
    )
    assert [c.id for c in worker.open_calls()] == ["b"]
    assert worker.close_open_calls() == [ToolResult("b", INTERRUPTED, None, True)]
    assert worker.open_calls() == [] and worker.close_open_calls() == []


async def test_a_raising_tool_becomes_an_error_result_not_a_crash():
    from podactors.tools import ToolRegistry

    def explode(path: str) -> str:
        """Always fails."""
        raise RuntimeError(f"cannot open {path}")

    provider = ScriptedProvider([reply("", ("explode", {"path": "x"})), reply("recovered")])
    worker = Conversation(provider, tools=ToolRegistry([explode]))
    result = await worker.run("go")
    assert result.outcome == "finished"
    [res] = [i for i in worker.history if isinstance(i, ToolResult)]
    assert res.is_error and "RuntimeError: cannot open x" in res.summary
    assert provider.requests[1].items[-1] == res


async def test_builtin_tools_run_inside_the_scope(tmp_path):
    from podactors.manifest import AllowRule
    from podactors.tools import Scope, ScopedFs, ToolContext, ToolRegistry, builtin_tools

    (tmp_path / "README.md").write_text("tinycalc adds numbers\n")
    fs = ScopedFs(Scope([AllowRule(tmp_path, "read")], []), tmp_path)
    provider = ScriptedProvider(
        [
            reply(
                "",
                ("read_file", {"path": "README.md"}),
                ("write_file", {"path": "x", "content": "y"}),
            ),
            reply("It adds numbers."),
        ]
    )
    worker = Conversation(
        provider, tools=ToolRegistry(builtin_tools()), tool_context=ToolContext(fs)
    )
    await worker.run("what is this?")
    read, write = [i for i in worker.history if isinstance(i, ToolResult)]
    assert "tinycalc adds numbers" in read.content and not read.is_error
    assert write.is_error and "refused" in write.summary
    assert not (tmp_path / "x").exists()
    assert {s.name for s in provider.requests[0].tools} >= {"read_file", "bash", "task_create"}
