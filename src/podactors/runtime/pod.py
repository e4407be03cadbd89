"""The pod actor: one agent, its active session, its worker, its compactor, its events.

A pod is one task serving one mailbox, and that task alone owns the pod's state. Into
the mailbox come the protocol's methods (from handles, the websocket, a supervisor) and
the messages of the pod's own actors, both started in the pod's nursery: the
:class:`~podactors.agent.worker.Worker` asks at every request boundary
(:class:`GateAsked`), hands over every step to be committed (:class:`StepDone`), streams
its events (:class:`EventsReady`, batched while the pod is busy) and reports the end of
its turn (:class:`TurnOver`); the :class:`~podactors.compaction.compactor.Compactor`
reports the end of a compaction (``CompactionOver``). Because turns and compactions run
in those actors, ``cancel``, ``pause``, ``notify`` and ``shutdown`` are served while a
turn streams. The rules are the reference controller's: ``run`` only when idle (else
``already_running``), ``resume`` only when paused (``not_paused``), ``cancel``/``pause``
only while a run is under way (``not_running``).

Persistence: the user input is committed before the first request; every step (an LLM
call's items with its usage, a batch of tool results) is appended before the next
request; ``TurnEnd`` and the ``Outcome`` close the run, also when it was cancelled. A
notification is committed as a system item: at once when idle (and it starts a turn), at
the next request boundary while a turn runs, so the log and the history agree on its place.

With ``[compaction]``, every request goes through the prune projection
(:mod:`podactors.compaction.prune`), computed once per request at the gate, and its
decision is recorded as a metric entry right after the step of the LLM call that sent it.
A metric that cannot be written is a warning ``alert``, never a failed run. Before a run
the pod asks the compactor whether ``threshold`` is due (a failure is a ``compact_failed``
event and the run goes on); at every request gate whether ``request_threshold`` is: then
the worker yields, the pod compacts, closes the run's part in the old session
(``Outcome("yielded")``), switches and resumes the same run with what is left of its
budget. A failure is a ``compact_failed`` event and the run goes on on the old session
without a retry. ``Compact`` compacts an idle pod on demand. The status is ``compacting``
meanwhile; a compaction cancelled half-way leaves the pod on its old session.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import msgspec
import outcome
import trio

from podactors import protocol as proto
from podactors.actor import Actor, ActorHandle
from podactors.agent.hooks import Hooks
from podactors.agent.worker import (
    CancelTurn,
    Gate,
    GatePoint,
    Hold,
    Proceed,
    StartTurn,
    Step,
    TurnCancelled,
    TurnResult,
    Worker,
    WorkerEvent,
    interrupted_result,
)
from podactors.compaction import prune
from podactors.compaction.compactor import (
    CancelCompaction,
    Compact,
    Compacted,
    CompactionCancelled,
    CompactionFailed,
    CompactionOver,
    Compactor,
    Due,
    Trigger,
)
from podactors.compaction.summariser import RECENT_FILES, ProviderFactory, Summariser
from podactors.errors import (
    ActorClosed,
    PodactorsError,
    PodError,
    ProviderError,
    ToolError,
    describe_error,
)
from podactors.fanout import Fanout, Subscription
from podactors.handle import CompactTicket, PodHandle, PodView, RunTicket
from podactors.items import HistoryItem, Message, Notification, RequestConfig
from podactors.llm import create_provider
from podactors.llm.provider import Provider
from podactors.manifest import Manifest
from podactors.protocol import CompactResult, RunResult
from podactors.runtime.events import EventTranslator
from podactors.runtime.session import ActiveSession, render_system_prompt
from podactors.store import PodRef, SessionState, Store
from podactors.store.entries import Item, LogEntry, Outcome, SystemItem, TurnEnd, UserInput
from podactors.tools import Scope, ScopedFs, Tool, ToolContext, ToolRegistry, builtin_tools

CLEANUP_SECONDS = 5.0
"""How long closing a cut-short run on disk may take."""
SNAPSHOT_HISTORY = 50
"""How many recent history items a snapshot carries."""
EVENT_BATCH = 256
"""How many worker events may wait for the pod before the worker waits for it."""
EVENT_FLUSH_SECONDS = 0.005
"""The longest a worker event waits before the pod publishes it (a screen refresh is 16 ms)."""


# --- what the pod's own actors tell it --------------------------------------------------


@attrs.frozen
class GateAsked:
    """The worker is at ``point``: it waits for a :data:`~podactors.agent.worker.Gate`."""

    point: GatePoint


@attrs.frozen
class StepDone:
    """The worker finished ``step``: the pod commits it before answering."""

    step: Step


@attrs.frozen
class EventsReady:
    """Worker events wait in the pod's :class:`WorkerLink`."""


@attrs.frozen
class TurnOver:
    """The worker's turn ended with ``result`` (or its error)."""

    result: outcome.Outcome[TurnResult]


PodMessage = proto.AnyMethod | GateAsked | StepDone | EventsReady | TurnOver | CompactionOver


class WorkerLink:
    """The pod as the host of its worker's turns: every call a message to the pod.

    Events are batched: they wait here, and one :class:`EventsReady` in the pod's mailbox
    hands over a whole batch, at most ``EVENT_FLUSH_SECONDS`` after its first event (the
    :meth:`flush_events` task sees to that) and always before the next gate, step or end
    of the turn, so the order of everything the pod emits stays the worker's order. Past
    ``EVENT_BATCH`` waiting events the worker waits for the pod (backpressure, no loss).
    """

    def __init__(self, pod: ActorHandle[PodMessage], session: ActiveSession):
        self._pod = pod
        self._session = session
        self._events: list[WorkerEvent] = []
        self._waiting = trio.Event()
        self._drained = trio.Event()

    @property
    def history(self) -> Sequence[HistoryItem]:
        """The pod's committed history, read only."""
        return self._session.history

    async def gate(self, point: GatePoint) -> Gate:
        """Ask the pod at a request boundary."""
        await self._hand_over()
        gate: Gate = await self._pod.ask(GateAsked(point))
        return gate

    async def commit(self, step: Step) -> None:
        """Have the pod commit ``step``."""
        await self._hand_over()
        await self._pod.ask(StepDone(step))

    async def emit(self, event: WorkerEvent) -> None:
        """Queue ``event`` for the pod."""
        self._events.append(event)
        if len(self._events) == 1:
            self._waiting.set()
        elif len(self._events) >= EVENT_BATCH:
            self._drained = trio.Event()
            await self._hand_over()
            await self._drained.wait()

    async def finished(self, result: outcome.Outcome[TurnResult]) -> None:
        """Tell the pod the turn is over (after the events still waiting); a pod that has
        stopped closes the run itself."""
        with contextlib.suppress(ActorClosed):
            await self._hand_over()
            await self._pod.tell(TurnOver(result))

    def take(self) -> list[WorkerEvent]:
        """The waiting events, in order (the pod calls this)."""
        events, self._events = self._events, []
        self._drained.set()
        return events

    async def flush_events(self) -> None:
        """Hand waiting events over within ``EVENT_FLUSH_SECONDS`` (runs beside the pod,
        until the pod's mailbox closes)."""
        with contextlib.suppress(ActorClosed):
            while True:
                await self._waiting.wait()
                await trio.sleep(EVENT_FLUSH_SECONDS)
                await self._hand_over()

    async def _hand_over(self) -> None:
        if self._waiting.is_set():
            self._waiting = trio.Event()
            await self._pod.tell(EventsReady())


@attrs.define
class _Run:
    """A run under way: what it needs until it closes."""

    ticket: RunTicket
    text: str | None = None
    llm_calls: int = 0
    pause: bool = False
    compaction_off: bool = False
    yielded_at: prune.PruneDecision | None = None


class Pod(Actor[PodMessage]):
    """One agent pod: ``handle = await nursery.start(pod.run)`` (a supervisor does).

    ``provider`` is the pod's model (built from ``[model]`` with ``providers`` when not
    given); ``providers`` builds a provider for any model table, ``[compaction.model]``
    included. ``hooks`` are read, never changed.
    """

    def __init__(
        self,
        manifest: Manifest,
        store: Store,
        *,
        provider: Provider | None = None,
        tools: Iterable[Tool] = (),
        hooks: Hooks | None = None,
        fanout: Fanout | None = None,
        providers: ProviderFactory = create_provider,
    ):
        self.name = manifest.pod.name
        self.manifest = manifest
        self.store = store
        self.provider = provider or providers(manifest.model)
        self.view = PodView(self.name)
        self._owns_fanout = fanout is None
        self.fanout = fanout or Fanout(self.snapshot)
        self.fanout.snapshot = self.snapshot  # a given fan-out outlives restarts: repoint it
        self._seq = self.fanout.last_seq
        self.session = ActiveSession(
            store,
            config=RequestConfig(
                model=manifest.model.model,
                max_tokens=manifest.worker.max_tokens,
                temperature=manifest.worker.temperature,
            ),
        )
        workdir = manifest.pod.workdir
        fs = ScopedFs(Scope.from_config(manifest.scope, base=workdir), workdir)
        self._tool_context = ToolContext(
            fs, tool_output_max_bytes=manifest.worker.tool_output_max_bytes
        )
        self.worker = Worker(
            self.provider,
            tools=ToolRegistry([*builtin_tools(), *tools]),
            tool_context=self._tool_context,
            hooks=hooks,
        )
        self.compactor: Compactor | None = None
        if manifest.compaction is not None:
            summariser = Summariser(
                manifest.compaction,
                fs,
                provider=self.provider,
                model=manifest.model.model,
                provider_factory=providers,
            )
            self.compactor = Compactor(manifest.compaction, summariser)
        self.last_run_interrupted = False
        self._translator = EventTranslator()
        self._run: _Run | None = None
        self._manual: CompactTicket | None = None
        self._compacting: Trigger | None = None
        self._notes: list[Notification] = []
        self._shutting_down = False
        self._handlers = self._dispatch_table()

    def adopt(self, state: SessionState) -> None:
        """Continue the restored session ``state`` (prompt, config and history as stored)."""
        self.session.adopt(state)
        self.view.session_id = state.session_id
        self.view.turn_count = state.turn_count
        self.last_run_interrupted = state.last_run_interrupted or bool(
            self.session.transcript.open_calls()
        )

    # --- the actor --------------------------------------------------------------------

    async def _flush_worker_events(self) -> None:
        await trio.lowlevel.checkpoint()
        await self._link.flush_events()

    def on_started(self) -> PodHandle:
        """``nursery.start(pod.run)`` returns the pod's handle."""
        self._link = WorkerLink(self.address, self.session)
        return PodHandle(self.address, self.fanout, self.view, name=self.name)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the mailbox, with the worker and the compactor beside it."""
        async with trio.open_nursery() as nursery:
            self._worker = await nursery.start(self.worker.run)
            self._compactor = None
            if self.compactor is not None:
                self._compactor = await nursery.start(self.compactor.run)
            nursery.start_soon(self._flush_worker_events)
            try:
                await super().run(task_status=task_status)
            finally:
                with trio.CancelScope(shield=True) as cleanup:
                    cleanup.deadline = trio.current_time() + CLEANUP_SECONDS
                    await self._abandon()
                nursery.cancel_scope.cancel()
                if self._owns_fanout:
                    self.fanout.close()

    async def handle(self, message: PodMessage) -> Any:
        """Serve one message; see the module docstring."""
        return await self._handlers[type(message)](message)

    def _dispatch_table(self) -> dict[type, Callable[[Any], Awaitable[Any]]]:
        """The handler of each message the pod serves: every method, then its actors'."""
        return {
            proto.Run: self._on_run,
            proto.Resume: self._on_resume,
            proto.Cancel: lambda _: self._cancel(),
            proto.Pause: self._on_pause,
            proto.Notify: self._on_notify,
            proto.GetSnapshot: self._on_snapshot,
            proto.Attach: self._on_attach,
            proto.GetHistory: self._on_history,
            proto.Shutdown: lambda _: self._shutdown(),
            proto.Compact: lambda _: self._begin_compact(),
            StepDone: self._on_step,
            EventsReady: self._on_events,
            GateAsked: self._on_gate,
            TurnOver: self._on_turn_over,
            CompactionOver: self._on_compaction_over,
        }

    async def _on_run(self, method: proto.Run) -> RunTicket:
        if self.view.status != "idle":
            raise self._refuse("already_running", f"pod {self.name} is {self.view.status}")
        return await self._begin_run(method.input)

    async def _on_resume(self, _: proto.Resume) -> RunTicket:
        if self.view.status != "paused":
            raise self._refuse("not_paused", f"pod {self.name} is {self.view.status}, not paused")
        return await self._begin_run(None, resume=True)

    async def _on_pause(self, _: proto.Pause) -> None:
        await trio.lowlevel.checkpoint()
        if self._run is None:
            raise self._refuse(
                "not_running", f"nothing to pause: pod {self.name} is {self.view.status}"
            )
        self._run.pause = True

    async def _on_notify(self, method: proto.Notify) -> RunTicket | None:
        return await self._notify(Notification(method.message, source=method.source))

    async def _on_snapshot(self, _: proto.GetSnapshot) -> proto.Snapshot:
        return self.snapshot()

    async def _on_attach(self, _: proto.Attach) -> Subscription:
        return self.fanout.open(first=self.snapshot())

    async def _on_history(self, _: proto.GetHistory) -> list[HistoryItem]:
        return list(self.session.history)

    async def _on_step(self, message: StepDone) -> None:
        await self._commit_step(message.step)

    async def _on_events(self, _: EventsReady) -> None:
        emit = self._emit
        for event in self._link.take():
            for event_type, fields in self._translator.translate(event):
                emit(event_type, **fields)

    async def _on_gate(self, message: GateAsked) -> Gate:
        return await self._gate(message.point)

    async def _on_turn_over(self, message: TurnOver) -> None:
        await self._turn_over(message.result)

    async def _on_compaction_over(self, message: CompactionOver) -> None:
        await self._compaction_over(message.trigger, message.outcome)

    def _refuse(self, code: proto.ErrorCode, message: str) -> PodError:
        """The error a refused method raises back to its caller (and only to it)."""
        return PodError(code, message)

    # --- a run ------------------------------------------------------------------------

    async def _begin_run(self, text: str | None, *, resume: bool = False) -> RunTicket:
        run = self._run = _Run(RunTicket(), text=text)
        self._set_status("running")
        self._emit(proto.TurnStart, turn=self.view.turn_count + 1)
        try:
            await self._ensure_session()
            if resume:
                await self._start_turn(None)
                return run.ticket
            await self._close_open_calls()
            decision = self._projection()
            if await self._due("threshold", decision):
                await self._begin_compaction("threshold", decision)
            else:
                await self._start_turn(text)
        except Exception as exc:
            await self._run_failed(exc)
        return run.ticket

    async def _start_turn(self, text: str | None) -> None:
        run = self._run
        assert run is not None
        budget = max(0, self.manifest.worker.max_turns - run.llm_calls)
        run.text = None
        await self._worker.tell(StartTurn(self._link, text, budget))

    async def _gate(self, point: GatePoint) -> Gate:
        run = self._run
        if run is None:  # a turn whose run was abandoned: it must not go on
            return Hold("pause")
        if point == "tools":
            return Hold("pause") if run.pause else Proceed()
        notes, self._notes = self._notes, []
        if notes:
            await self._commit_system_items(notes)
        decision = self._projection()
        if not run.compaction_off and await self._due("request", decision):
            run.yielded_at = decision  # the compaction that follows measures with it
            return Hold("yield")
        if run.pause:
            return Hold("pause")
        items = decision.items if isinstance(decision, prune.Fire) else None
        request = self.session.transcript.request(self.worker.tool_specs(), items)
        return Proceed(request, decision)

    async def _commit_step(self, step: Step) -> None:
        usage = step.usage
        decision = step.projection if isinstance(step.projection, prune.Skip | prune.Fire) else None
        if usage is not None and isinstance(decision, prune.Fire):
            usage = msgspec.structs.replace(usage, pruned_tokens=decision.value)
        entries: list[LogEntry]
        if step.user_input:
            entries = [UserInput(item.content) for item in step.items if isinstance(item, Message)]
        else:
            entries = [Item(item) for item in step.items]
        if usage is not None:
            entries.append(usage)
        if entries:
            await self._append(entries)
        self.session.add(step.items)
        if usage is not None:
            self.session.record_usage(usage)
            if decision is not None:
                await self._record_metrics(prune.metrics_for(decision, usage))

    async def _turn_over(self, result: outcome.Outcome[TurnResult]) -> None:
        run = self._run
        if run is None:
            return
        if isinstance(result, outcome.Error):
            await self._run_failed(result.error)
            return
        turn = result.unwrap()
        run.llm_calls += turn.llm_calls
        if turn.outcome == "yielded":
            await self._begin_compaction("request", run.yielded_at)
            return
        await self._end_run(turn.outcome)

    async def _run_failed(self, exc: BaseException) -> None:
        """End the run that ``exc`` cut short (an ``error`` event unless it was cancelled)."""
        if isinstance(exc, TurnCancelled):
            await self._end_run("cancelled")
            return
        error = describe_error(exc)
        self._emit(proto.Error, code=_error_code(exc), message=error)
        await self._end_run("error", error)

    async def _end_run(self, outcome_: proto.RunOutcome, error: str | None = None) -> None:
        """Close the run: persist its end, tell subscribers, answer its ticket."""
        run, self._run = self._run, None
        assert run is not None
        interrupted = outcome_ in ("paused", "cancelled", "error")
        self.last_run_interrupted = interrupted
        self.view.turn_count += 1
        session_id = self.session.session_id or ""
        try:
            with trio.CancelScope(shield=True) as cleanup:
                cleanup.deadline = trio.current_time() + CLEANUP_SECONDS
                if self.session.started:
                    await self._append(
                        [TurnEnd(), Outcome(outcome_, interrupted=interrupted, error=error)]
                    )
        except BaseException as exc:  # the pod crashes; its caller still gets an answer
            failure = f"the run could not be closed: {describe_error(exc)}"
            run.ticket.deliver(RunResult("error", session_id, run.llm_calls, failure))
            raise
        session_id = self.session.session_id or ""
        self._emit(proto.TurnEnd, turn=self.view.turn_count)
        self._set_status("paused" if outcome_ == "paused" else "idle")
        self._emit(proto.RunEnd, outcome=outcome_, session_id=session_id, llm_calls=run.llm_calls)
        run.ticket.deliver(RunResult(outcome_, session_id, run.llm_calls, error))
        await self._after_work()

    async def _after_work(self) -> None:
        """Once a run or compaction is over: stop if asked to, else take notifications
        that came meanwhile (they start a turn of their own when the pod is idle)."""
        if self._shutting_down:
            self.stop()
        elif self._notes and self.view.status == "idle":
            notes, self._notes = self._notes, []
            await self._commit_system_items(notes)
            await self._begin_run(None)

    async def _cancel(self) -> None:
        """Cancel the running turn or compaction, or abandon a paused run (its open calls
        get closed)."""
        if self._compacting is not None and self._compactor is not None:
            await self._compactor.tell(CancelCompaction())
        elif self._run is not None:
            await self._worker.tell(CancelTurn())
        elif self.view.status == "paused":
            await self._close_open_calls(Outcome("cancelled", interrupted=True))
            self._set_status("idle")
            self._emit(proto.RunEnd, outcome="cancelled", session_id=self.session.session_id or "")
        else:
            raise self._refuse(
                "not_running", f"nothing to cancel: pod {self.name} is {self.view.status}"
            )

    async def _shutdown(self) -> None:
        if self._run is None and self._compacting is None:
            self.stop()
            return
        self._shutting_down = True
        await self._cancel()

    async def _abandon(self) -> None:
        """The pod stops with work under way (it was cancelled or crashed): close the run
        on disk as interrupted, with a result for every open call."""
        self._set_status("stopped")
        run, self._run = self._run, None
        if self._manual is not None:
            self._manual.deliver(CompactResult("cancelled", self.session.session_id or ""))
        if run is None:
            return
        session_id = self.session.session_id or ""
        try:
            if self.session.started:
                closing: list[LogEntry] = [
                    Item(r) for r in self.session.transcript.close_open_calls()
                ]
                await self._append([*closing, TurnEnd(), Outcome("cancelled", interrupted=True)])
        finally:
            run.ticket.deliver(RunResult("cancelled", session_id, run.llm_calls, "pod stopped"))

    # --- compaction -------------------------------------------------------------------

    def _projection(self) -> prune.PruneDecision | None:
        """The prune projection of the next request (``None`` without ``[compaction]``)."""
        compaction = self.manifest.compaction
        if compaction is None:
            return None
        return prune.project(
            self.session.history,
            self.session.usages,
            protected_tokens=compaction.prune_protected_tokens,
            min_savings=compaction.prune_min_savings,
        )

    async def _due(self, trigger: Trigger, decision: prune.PruneDecision | None) -> bool:
        """Whether the compactor says ``trigger`` fires, with the next request's projection."""
        if self._compactor is None or not self.session.started:
            return False
        session = self.session
        due: bool = await self._compactor.ask(
            Due(trigger, session.history, session.usages, _pruned(decision))
        )
        return due

    async def _begin_compact(self) -> CompactTicket:
        if self.compactor is None:
            raise self._refuse("invalid_request", "compaction is not configured for this pod")
        if self.view.status in ("running", "compacting"):
            raise self._refuse("already_running", f"pod {self.name} is {self.view.status}")
        if self.view.status != "idle":
            raise self._refuse(
                "invalid_request", f"pod {self.name} is {self.view.status}; resume or cancel first"
            )
        if not self.session.started or not self.session.history:
            raise self._refuse("invalid_request", f"pod {self.name} has nothing to compact yet")
        ticket = self._manual = CompactTicket()
        await self._begin_compaction("manual", self._projection())
        return ticket

    async def _begin_compaction(
        self, trigger: Trigger, decision: prune.PruneDecision | None
    ) -> None:
        assert self._compactor is not None
        fs = self._tool_context.fs
        recent = [fs.display(path) for path in self._tool_context.files.recent_files(RECENT_FILES)]
        session = self.session
        tokens_before: int = await self._compactor.ask(
            Compact(
                trigger,
                list(session.history),
                list(session.usages),
                self.address,
                recent_files=recent,
                tasks=self._tool_context.tasks.tasks(),
                pruned=_pruned(decision),
            )
        )
        self._compacting = trigger
        self._emit(proto.CompactStart, tokens_before=tokens_before)
        self._set_status("compacting")

    async def _compaction_over(
        self, trigger: Trigger, over: Compacted | CompactionFailed | CompactionCancelled
    ) -> None:
        self._compacting = None
        old = self.session.session_id or ""
        result = CompactResult("cancelled", old, over.tokens_before)
        if isinstance(over, Compacted):
            try:
                result = await self._commit_compaction(over, close_run=trigger == "request")
            except Exception as exc:
                over = CompactionFailed(describe_error(exc), over.tokens_before)
        if isinstance(over, CompactionFailed):
            self._emit(proto.CompactFailed, error=over.error)
            if over.breaker_opened:
                self.alert(
                    "error",
                    "compactor",
                    f"compaction failed {over.consecutive} times in a row (last: {over.error}); "
                    "automatic compaction is off until a manual compact",
                )
            result = CompactResult("failed", old, over.tokens_before, error=over.error)
        elif isinstance(over, CompactionCancelled):
            self._emit(proto.CompactFailed, error="cancelled")
        if trigger == "manual":
            ticket, self._manual = self._manual, None
            self._set_status("idle")
            if ticket is not None:
                ticket.deliver(result)
            await self._after_work()
            return
        run = self._run
        if run is None:
            return
        if isinstance(over, CompactionCancelled) or self._shutting_down:
            await self._end_run("cancelled")
            return
        if trigger == "request" and result.outcome != "compacted":
            run.compaction_off = True  # go on as is; no retry in this run
        self._set_status("running")
        try:
            await self._start_turn(run.text)
        except Exception as exc:
            await self._run_failed(exc)

    async def _commit_compaction(self, over: Compacted, *, close_run: bool) -> CompactResult:
        """Store the compacted session, point the pod ref at it, switch, tell subscribers.

        With ``close_run`` (a run goes on in the new session) the old session first gets
        ``Outcome("yielded")``. Shielded with a deadline, so the pod ends up either wholly
        on the new session or wholly on the old one.
        """
        compaction = over.compaction
        timings = compaction.timings
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + CLEANUP_SECONDS
            started = time.perf_counter()
            if close_run:
                await self._append([Outcome("yielded")])
            ref = await self.session.store_compacted(compaction.history)
            await self._save_pod_ref(ref.session_id)
            timings.persist = time.perf_counter() - started
        if scope.cancelled_caught:
            raise PodactorsError("storing the compacted session timed out")
        switching = time.perf_counter()
        old = self.session.switch_to(ref, compaction.history)
        new = ref.session_id
        self.view.session_id = new
        self._emit(proto.SessionRotated, old_session_id=old, new_session_id=new, reason="compacted")
        for item in compaction.new_items:
            self._emit(proto.SystemItemAdded, item=item)
        self._emit(
            proto.CompactDone,
            old_session_id=old,
            new_session_id=new,
            tokens_before=over.tokens_before,
            tokens_after=compaction.tokens_after,
            duration=trio.current_time() - over.started,
        )
        timings.swap = time.perf_counter() - switching
        return CompactResult(
            "compacted", new, over.tokens_before, compaction.tokens_after, timings=timings
        )

    # --- notifications ----------------------------------------------------------------

    async def _notify(self, note: Notification) -> RunTicket | None:
        if self.view.status in ("running", "compacting"):
            self._notes.append(note)
            return None
        await self._ensure_session()
        await self._commit_system_items([note])
        if self.view.status == "idle":
            return await self._begin_run(None)
        return None

    async def _commit_system_items(self, notes: list[Notification]) -> None:
        await self._append([SystemItem(note) for note in notes])
        self.session.add(notes)
        for note in notes:
            self._emit(proto.SystemItemAdded, item=note)

    # --- persistence ------------------------------------------------------------------

    async def _ensure_session(self) -> None:
        """Create the session at the first turn, rendering the system prompt once."""
        if self.session.started:
            return
        tool_names = [spec.name for spec in self.worker.tool_specs()]
        await self.session.create(render_system_prompt(self.manifest, tool_names))
        self.view.session_id = self.session.session_id
        await self._save_pod_ref()

    async def _close_open_calls(self, *then: LogEntry) -> None:
        """Give every open tool call an ``[interrupted]`` result, appending ``then`` with
        them; they join the history once they are in the store."""
        closing = [interrupted_result(call) for call in self.session.transcript.open_calls()]
        entries: list[LogEntry] = [*(Item(result) for result in closing), *then]
        if entries:
            await self._append(entries)
        self.session.add(closing)

    async def _record_metrics(self, metrics: list[prune.Metric]) -> None:
        """Append metric entries; a failure is a warning, never the run's end."""
        try:
            await self._append(list(prune.metric_entries(metrics)))
        except Exception as exc:
            names = ", ".join(prune.metric_name(m) for m in metrics)
            self.alert("warn", "metrics", f"could not write metric {names}: {exc}")

    async def _append(self, entries: list[LogEntry]) -> None:
        forked_from = await self.session.append(entries)
        if forked_from is not None:
            self.view.session_id = self.session.session_id
            self._emit(
                proto.SessionRotated,
                old_session_id=forked_from,
                new_session_id=self.session.session_id,
                reason="head_moved",
            )
            self.alert(
                "warn",
                "store",
                f"another writer moved session {forked_from}; pod {self.name} continues "
                f"on a fork of its own entries, {self.session.session_id}",
            )
            await self._save_pod_ref()

    async def _save_pod_ref(self, session_id: str | None = None) -> None:
        """Point the pod ref at ``session_id`` (by default the session the pod is on)."""
        session_id = session_id or self.session.session_id
        if session_id is not None:
            source = self.manifest.source
            ref = PodRef(
                session_id,
                updated_at=time.time(),
                manifest=None if source is None else str(Path(source).absolute()),
            )
            await self.store.set_pod_ref(self.name, ref)

    # --- events -----------------------------------------------------------------------

    def snapshot(self) -> proto.Snapshot:
        """Where the pod stands now (recent history only)."""
        return proto.Snapshot(
            pod=self.name,
            seq=self._seq,
            status=self.view.status,
            session_id=self.session.session_id,
            turn_count=self.view.turn_count,
            history=self.session.history[-SNAPSHOT_HISTORY:],
            last_seq=self._seq,
        )

    def alert(self, level: proto.AlertLevel, source: str, message: str) -> None:
        """Tell subscribers something an operator should know."""
        self._emit(proto.Alert, level=level, source=source, message=message)

    def _emit(self, event_type: type[proto.Event], **fields: Any) -> None:
        self._seq += 1
        self.fanout.publish(event_type(pod=self.name, seq=self._seq, **fields))  # type: ignore[arg-type]

    def _set_status(self, status: proto.PodStatus) -> None:
        if self.view.status == "stopped":
            return
        if status != self.view.status:
            self.view.status = status
            self._emit(proto.Status, status=status)


def _pruned(decision: prune.PruneDecision | None) -> int:
    """Tokens the prune projection leaves out of the next request."""
    return decision.value if isinstance(decision, prune.Fire) else 0


def _error_code(exc: BaseException) -> proto.ErrorCode:
    if isinstance(exc, ProviderError):
        return "provider_error"
    if isinstance(exc, ToolError):
        return "tool_error"
    if isinstance(exc, PodError):
        return exc.code
    return "internal"


__all__ = ["EventsReady", "GateAsked", "Pod", "StepDone", "TurnOver", "WorkerLink"]
