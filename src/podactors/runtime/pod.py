"""The pod actor: one agent, its worker, its active session, and its subscribers.

A pod serves its mailbox all the time: a run goes on as a task in the pod's nursery, so
``cancel``, ``pause``, ``notify`` and ``shutdown`` are served while a turn runs. The
rules are the reference controller's: ``run`` only when idle (else ``already_running``),
``resume`` only when paused (``not_paused``), ``cancel``/``pause`` only while a run is
under way (``not_running``).

Persistence: the user input is committed before the first request; every step the
worker hands over (an LLM call's items with its usage, a batch of tool results) is
appended before the next request; ``TurnEnd`` and the ``Outcome`` close the run, also
when it was cancelled (in a shielded cleanup with a deadline). A notification is
committed as a system item: at once when idle (and it starts a turn), at the next
request boundary while a turn runs, so the log and the history agree on its place.

With ``[compaction]`` in the manifest, every request goes through the prune projection
(:mod:`podactors.compaction.prune`) and its decision is recorded as a metric entry right after the
step of the LLM call that sent it (with ``prune.post_request`` after a fire). A metric
that cannot be written is a warning ``alert``, never a failed run.

Compaction (:mod:`podactors.compaction.compactor`, also with ``[compaction]``): before a run starts
the pod checks ``threshold`` (best effort: a failure is a ``compact_failed`` event and the
run goes on, on the old session); before every LLM request its interceptor checks
``request_threshold`` and makes the worker yield; the pod compacts, closes the run's part in
the old session (``Outcome("yielded")``), switches and resumes the same run. A failure is
never the run's end: it is a ``compact_failed`` event, the run goes on on the old session,
and the request check stays quiet for the rest of that run. ``Compact`` compacts an idle
pod on demand. The status is ``compacting`` meanwhile; a compaction cancelled half-way
leaves the pod on its old session. A compaction never modifies the old session beyond
that closing ``Outcome``.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import jinja2
import msgspec
import trio

from podactors import protocol as proto
from podactors.compaction import prune
from podactors.actor import Actor, ActorHandle
from podactors.compaction.compactor import (
    RECENT_FILES,
    Compaction,
    CompactionTimings,
    Compactor,
    ProviderFactory,
    Trigger,
)
from podactors.errors import (
    CompactError,
    HeadMoved,
    ManifestError,
    PodactorsError,
    PodError,
    ProviderError,
    ToolError,
)
from podactors.fanout import Fanout, Subscription
from podactors.agent.hooks import CONTINUE, Decision, Hooks, Pause
from podactors.items import (
    ConversationItem,
    HistoryItem,
    Message,
    Notification,
    Reasoning,
    RequestConfig,
)
from podactors.llm import create_provider
from podactors.llm import events as llm_events
from podactors.llm.provider import Provider
from podactors.manifest import Manifest
from podactors.store import FsStore, PodRef
from podactors.store.entries import (
    Item,
    LogEntry,
    Origin,
    Outcome,
    SystemItem,
    TurnEnd,
    Usage,
    UserInput,
    session_start,
)
from podactors.store.replay import SessionState
from podactors.tools import Scope, ScopedFs, Tool, ToolContext, ToolRegistry, builtin_tools
from podactors.agent.worker import (
    LlmCallFinished,
    LlmCallStarted,
    Projection,
    Step,
    ToolFinished,
    ToolStarted,
    TurnResult,
    Worker,
    WorkerEvent,
)

CLEANUP_SECONDS = 5.0
"""How long closing a cut-short run on disk may take."""
SNAPSHOT_HISTORY = 50
"""How many recent history items a snapshot carries."""
WIRE_CONTENT_LIMIT = 4096
"""Tool-result content is cut to this many characters in events (the log keeps it all)."""


class RunResult(msgspec.Struct, frozen=True):
    """How a run ended and the session it ended on."""

    outcome: proto.RunOutcome
    session_id: str
    llm_calls: int = 0
    error: str | None = None


class CompactResult(msgspec.Struct, frozen=True):
    """How a manual compaction ended and the session the pod is on after it.

    ``outcome`` is ``compacted``, ``failed`` (``error`` says why; the pod stays on its
    session) or ``cancelled``. The token counts are estimates. ``timings`` (of a compaction
    that succeeded) says where its time went, phase by phase.
    """

    outcome: Literal["compacted", "failed", "cancelled"]
    session_id: str
    tokens_before: int = 0
    tokens_after: int = 0
    error: str | None = None
    timings: CompactionTimings | None = None


T = TypeVar("T")


class Ticket(Generic[T]):
    """The pending result of work started through the mailbox."""

    def __init__(self) -> None:
        self._done = trio.Event()
        self.result: T | None = None

    def set(self, result: T) -> None:
        """Deliver the result."""
        self.result = result
        self._done.set()

    async def wait(self) -> T:
        """Wait for the work to end."""
        await self._done.wait()
        assert self.result is not None
        return self.result


class RunTicket(Ticket[RunResult]):
    """The pending result of a run started through the mailbox."""


class CompactTicket(Ticket[CompactResult]):
    """The pending result of a compaction started through the mailbox."""


class Pod(Actor[proto.AnyMethod]):
    """One agent pod. Start it with ``await nursery.start(pod.run)`` (a supervisor does)."""

    def __init__(
        self,
        manifest: Manifest,
        store: FsStore,
        *,
        provider: Provider | None = None,
        tools: Iterable[Tool] = (),
        hooks: Hooks | None = None,
        fanout: Fanout | None = None,
        compaction_provider: Provider | None = None,
        provider_factory: ProviderFactory = create_provider,
    ):
        self.name = manifest.pod.name
        self.manifest = manifest
        self.store = store
        self.provider = provider or create_provider(manifest.model)
        self.status: proto.PodStatus = "idle"
        self.session_id: str | None = None
        self.turn_count = 0
        self.last_run_interrupted = False
        self._owns_fanout = fanout is None
        self.fanout = fanout or Fanout(self.snapshot)
        self.fanout.snapshot = self.snapshot
        self._head: str | None = None
        self._entries = 0
        self._seq = self.fanout.last_seq
        self._pending_notes: list[Notification] = []
        self._pause_requested = False
        self._turn_scope: trio.CancelScope | None = None
        self._write_lock = trio.Lock()
        self._nursery: trio.Nursery | None = None
        self._tool_ids: dict[int, str] = {}
        self._call_history_len = 0
        self._usages: list[Usage] = []
        self._in_run = False
        self._request_check_off = False
        self.worker = self._make_worker(tools, hooks or Hooks())
        self.compactor: Compactor | None = None
        if manifest.compaction is not None:
            self.compactor = Compactor(
                manifest.compaction,
                self._tool_context.fs,
                provider=self.provider,
                model=manifest.model.model,
                override=compaction_provider,
                provider_factory=provider_factory,
            )

    # --- construction ---------------------------------------------------------------

    def _make_worker(self, tools: Iterable[Tool], hooks: Hooks) -> Worker:
        manifest = self.manifest
        workdir = manifest.pod.workdir
        fs = ScopedFs(Scope.from_config(manifest.scope, base=workdir), workdir)
        context = ToolContext(fs, tool_output_max_bytes=manifest.worker.tool_output_max_bytes)
        self._tool_context = context
        hooks.pre_llm_request.insert(0, self._pause_point)
        hooks.pre_tool_call.insert(0, self._pause_point)
        return Worker(
            self.provider,
            tools=ToolRegistry([*builtin_tools(), *tools]),
            tool_context=context,
            config=RequestConfig(
                model=manifest.model.model,
                max_tokens=manifest.worker.max_tokens,
                temperature=manifest.worker.temperature,
            ),
            max_turns=manifest.worker.max_turns,
            hooks=hooks,
            interceptor=self._before_request,
            project=None if manifest.compaction is None else self._project_request,
        )

    def adopt(self, state: SessionState) -> None:
        """Continue the restored session ``state`` (prompt, config and history as stored)."""
        assert state.session_id is not None
        self.session_id, self._head = state.session_id, state.head
        self._entries = state.entry_count
        self.turn_count = state.turn_count
        self.worker.system_prompt = state.system_prompt
        self.worker.config = state.config
        self.worker.history = list(state.history)
        self.worker.cache_key = state.session_id
        self.worker.cache_breakpoint = _summary_breakpoint(state)
        self._usages = list(state.usage)
        if self.compactor is not None:
            self.compactor.forget_session()
        self.last_run_interrupted = state.last_run_interrupted or bool(self.worker.open_calls())

    # --- the actor --------------------------------------------------------------------

    async def run(
        self,
        *,
        task_status: trio.TaskStatus[ActorHandle[proto.AnyMethod]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve the mailbox; runs go on as tasks beside it."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                await super().run(task_status=task_status)
            finally:
                self._set_status("stopped")
                if self._turn_scope is not None:
                    self._turn_scope.cancel()
                if self._owns_fanout:
                    self.fanout.close()

    async def handle(self, message: proto.AnyMethod) -> Any:
        """Serve one method; see the module docstring for the rules."""
        match message:
            case proto.Run(input=text):
                return self._start_run(text)
            case proto.Resume():
                return self._start_resume()
            case proto.Cancel():
                await self._cancel()
            case proto.Pause():
                if self.status != "running" and not self._in_run:
                    raise self._refuse(
                        "not_running", f"nothing to pause: pod {self.name} is {self.status}"
                    )
                self._pause_requested = True
            case proto.Notify(message=text, source=source):
                return await self._notify(Notification(text, source=source))
            case proto.GetSnapshot() | proto.Attach():
                return self.snapshot()
            case proto.Shutdown():
                self.stop()
                if self._turn_scope is not None:
                    self._turn_scope.cancel()
            case proto.Compact():
                return self._start_compact()
        return None

    def _start_run(self, text: str | None) -> RunTicket:
        if self.status != "idle":
            raise self._refuse("already_running", f"pod {self.name} is {self.status}")
        return self._spawn_turn(text, resume=False)

    def _start_resume(self) -> RunTicket:
        if self.status != "paused":
            raise self._refuse("not_paused", f"pod {self.name} is {self.status}, not paused")
        return self._spawn_turn(None, resume=True)

    def _start_compact(self) -> CompactTicket:
        if self.compactor is None:
            raise self._refuse("invalid_request", "compaction is not configured for this pod")
        if self.status in ("running", "compacting"):
            raise self._refuse("already_running", f"pod {self.name} is {self.status}")
        if self.status != "idle":
            raise self._refuse(
                "invalid_request", f"pod {self.name} is {self.status}; resume or cancel first"
            )
        if self.session_id is None or not self.worker.history:
            raise self._refuse("invalid_request", f"pod {self.name} has nothing to compact yet")
        assert self._nursery is not None
        ticket = CompactTicket()
        self._set_status("compacting")
        self._nursery.start_soon(self._manual_compact, ticket)
        return ticket

    async def _cancel(self) -> None:
        """Cancel the running turn or compaction, or abandon a paused run (its open calls
        get closed)."""
        if self.status in ("running", "compacting") and self._turn_scope is not None:
            self._turn_scope.cancel()
        elif self.status == "paused":
            closing: list[LogEntry] = [Item(r) for r in self.worker.close_open_calls()]
            await self._append([*closing, Outcome("cancelled", interrupted=True)])
            self._set_status("idle")
            self._emit(proto.RunEnd, outcome="cancelled", session_id=self.session_id or "")
        else:
            raise self._refuse(
                "not_running", f"nothing to cancel: pod {self.name} is {self.status}"
            )

    def _refuse(self, code: str, message: str) -> PodError:
        """The error a refused method raises back to its caller (and only to it)."""
        return PodError(code, message)

    def _spawn_turn(self, text: str | None, *, resume: bool) -> RunTicket:
        assert self._nursery is not None
        ticket = RunTicket()
        self._pause_requested = False
        self._set_status("running")
        self._nursery.start_soon(self._run_turn, text, resume, ticket)
        return ticket

    # --- a run ------------------------------------------------------------------------

    async def _run_turn(self, text: str | None, resume: bool, ticket: RunTicket) -> None:
        outcome: proto.RunOutcome = "cancelled"
        result: TurnResult | None = None
        error: str | None = None
        self._in_run = True
        self._request_check_off = False
        try:
            with trio.CancelScope() as scope:
                self._turn_scope = scope
                self._emit(proto.TurnStart, turn=self.turn_count + 1)
                result = await self._drive(text, resume)
                outcome = _run_outcome(result)
        except PodactorsError as exc:
            outcome, error = "error", str(exc)
            self._emit(proto.Error, code=_error_code(exc), message=str(exc))
        except Exception as exc:
            outcome, error = "error", f"{type(exc).__name__}: {exc}"
            self._emit(proto.Error, code="internal", message=error)
        finally:
            self._turn_scope = None
            self._in_run = False
            try:
                with trio.CancelScope(shield=True) as cleanup:
                    cleanup.deadline = trio.current_time() + CLEANUP_SECONDS
                    await self._close_run(outcome, error, result, ticket)
            finally:  # a crash while closing must not leave the caller waiting
                if ticket.result is None:
                    ticket.set(RunResult("error", self.session_id or "", 0, "pod crashed"))

    async def _drive(self, text: str | None, resume: bool) -> TurnResult:
        await self._ensure_session()
        on_step, on_event = self._persist_step, self._forward
        if resume:
            result = await self.worker.resume(on_step=on_step, on_event=on_event)
            return await self._after_yields(result)
        closing: list[LogEntry] = [Item(r) for r in self.worker.close_open_calls()]
        if self._compaction_due("threshold"):
            if closing:
                await self._append(closing)
                closing = []
            await self._compact("threshold")
            self._set_status("running")
        if text is not None:
            closing.append(UserInput(text))
        if closing:
            await self._append(closing)
        result = await self.worker.run(text, on_step=on_step, on_event=on_event)
        return await self._after_yields(result)

    async def _after_yields(self, result: TurnResult) -> TurnResult:
        """Compact and go on while the worker yields; the run's LLM calls are summed and
        ``max_turns`` holds for the whole run."""
        calls = result.llm_calls
        max_turns = self.worker.max_turns
        try:
            while result.outcome == "yielded":
                compacted = await self._compact("request")
                self._set_status("running")
                if compacted.outcome != "compacted":
                    self._request_check_off = True  # go on as is; no retry in this run
                self.worker.max_turns = max(0, max_turns - calls)
                result = await self.worker.run(
                    None, on_step=self._persist_step, on_event=self._forward
                )
                calls += result.llm_calls
        finally:
            self.worker.max_turns = max_turns
        return TurnResult(result.outcome, calls, result.response)

    async def _close_run(
        self,
        outcome: proto.RunOutcome,
        error: str | None,
        result: TurnResult | None,
        ticket: RunTicket,
    ) -> None:
        interrupted = self.worker.last_run_interrupted or outcome in ("cancelled", "error")
        self.last_run_interrupted = interrupted
        self.turn_count += 1
        if self.session_id is not None:
            kind = "limit_reached" if outcome == "limit_reached" else outcome
            await self._append([TurnEnd(), Outcome(kind, interrupted=interrupted, error=error)])
        self._emit(proto.TurnEnd, turn=self.turn_count)
        if self.status != "stopped":
            self._set_status("paused" if outcome == "paused" else "idle")
        calls = result.llm_calls if result else 0
        session_id = self.session_id or ""
        self._emit(proto.RunEnd, outcome=outcome, session_id=session_id, llm_calls=calls)
        ticket.set(RunResult(outcome, session_id, calls, error))

    async def _pause_point(self, *_: Any) -> Decision:
        return Pause() if self._pause_requested else CONTINUE

    async def _before_request(self, worker: Worker) -> Literal["proceed", "yield"]:
        """Commit notifications that arrived during the turn, then let the request go
        unless the context reached ``request_threshold`` (the pod compacts first)."""
        notes, self._pending_notes = self._pending_notes, []
        if notes:
            await self._commit_system_items(notes)
        if self._request_check_off:
            return "proceed"
        return "yield" if self._compaction_due("request") else "proceed"

    # --- compaction -------------------------------------------------------------------

    def _compaction_due(self, trigger: Trigger) -> bool:
        if self.compactor is None or self.session_id is None:
            return False
        return self.compactor.due(trigger, self.worker.history, self._usages)

    async def _manual_compact(self, ticket: CompactTicket) -> None:
        assert self.compactor is not None
        result = CompactResult("cancelled", self.session_id or "")
        try:
            with trio.CancelScope() as scope:
                self._turn_scope = scope
                self.compactor.reset_circuit()
                result = await self._compact("manual")
        finally:
            self._turn_scope = None
            if self.status != "stopped":
                self._set_status("idle")
            ticket.set(result)
        notes, self._pending_notes = self._pending_notes, []
        if notes and self.status == "idle":  # notifications that came while compacting
            await self._commit_system_items(notes)
            self._spawn_turn(None, resume=False)

    async def _compact(self, trigger: Trigger) -> CompactResult:
        """Compact the active session and switch to the new one.

        A failure is a ``compact_failed`` event (and counts towards the circuit breaker),
        never an exception; cancellation propagates, and leaves the pod on its session.
        """
        compactor, old = self.compactor, self.session_id
        assert compactor is not None and old is not None
        history, usages = list(self.worker.history), list(self._usages)
        measuring = time.perf_counter()
        tokens_before = compactor.occupancy(history, usages)
        occupancy = time.perf_counter() - measuring
        started = time.monotonic()
        self._emit(proto.CompactStart, tokens_before=tokens_before)
        self._set_status("compacting")
        try:
            compactor.check_thrash(trigger, tokens_before)
            compaction = await compactor.compact(
                history,
                usages,
                limit=compactor.limit(tokens_before),
                tokens_before=tokens_before,
                recent_files=self._recent_files(),
                tasks=self._tool_context.tasks.tasks(),
            )
            await self._commit_compaction(compaction, close_run=trigger == "request")
        except trio.Cancelled:
            self._emit(proto.CompactFailed, error="cancelled")
            raise
        except Exception as exc:
            error = str(exc) if isinstance(exc, PodactorsError) else f"{type(exc).__name__}: {exc}"
            self._emit(proto.CompactFailed, error=error)
            if compactor.record_failure():
                self.alert(
                    "error",
                    "compactor",
                    f"compaction failed {compactor.consecutive_failures} times in a row "
                    f"(last: {error}); automatic compaction is off until a manual compact",
                )
            return CompactResult("failed", old, tokens_before, error=error)
        timings = compaction.timings
        timings.occupancy = occupancy
        switching = time.perf_counter()
        compactor.record_success(compaction)
        new = self.session_id
        assert new is not None
        self._emit(proto.SessionRotated, old_session_id=old, new_session_id=new, reason="compacted")
        for item in compaction.new_items:
            self._emit(proto.SystemItemAdded, item=item)
        self._emit(
            proto.CompactDone,
            old_session_id=old,
            new_session_id=new,
            tokens_before=tokens_before,
            tokens_after=compaction.tokens_after,
            duration=time.monotonic() - started,
        )
        timings.swap += time.perf_counter() - switching
        return CompactResult(
            "compacted", new, tokens_before, compaction.tokens_after, timings=timings
        )

    async def _commit_compaction(self, compaction: Compaction, *, close_run: bool) -> None:
        """Store the compacted session, point the pod ref at it, then switch in memory.

        With ``close_run`` (a run goes on in the new session) the old session first gets
        ``Outcome("yielded")``. Shielded with a deadline, so the pod ends up either wholly
        on the new session or wholly on the old one (an orphaned new session is all a
        timeout can leave). Fills ``persist`` and (its in-memory part) ``swap`` of the
        compaction's timings.
        """
        assert self.session_id is not None
        state = SessionState(
            system_prompt=self.worker.system_prompt,
            config=self.worker.config,
            history=list(compaction.history),
        )
        switched = False
        timings = compaction.timings
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + CLEANUP_SECONDS
            started = time.perf_counter()
            if close_run:
                await self._append([Outcome("yielded")])
            origin = Origin("compacted_from", self.session_id, head=self._head)
            ref = await self.store.create_compacted(state, origin)
            await self._save_pod_ref(ref.session_id)
            switching = time.perf_counter()
            timings.persist = switching - started
            self._move_to(ref.session_id, ref.head, entries=1)
            self.worker.history = list(compaction.history)
            self.worker.cache_breakpoint = 0  # the summary: a prefix that stays put
            self._usages = []
            timings.swap = time.perf_counter() - switching
            switched = True
        if not switched:
            raise CompactError("commit", "storing the compacted session timed out")

    def _recent_files(self) -> list[str]:
        fs = self._tool_context.fs
        return [fs.display(path) for path in self._tool_context.files.recent_files(RECENT_FILES)]

    # --- notifications ----------------------------------------------------------------

    async def _notify(self, note: Notification) -> RunTicket | None:
        if self.status in ("running", "compacting"):
            self._pending_notes.append(note)
            return None
        await self._ensure_session()
        await self._commit_system_items([note])
        if self.status == "idle":
            return self._spawn_turn(None, resume=False)
        return None

    async def _commit_system_items(self, notes: list[Notification]) -> None:
        await self._append([SystemItem(note) for note in notes])
        self.worker.history.extend(notes)
        for note in notes:
            self._emit(proto.SystemItemAdded, item=note)

    # --- persistence ------------------------------------------------------------------

    async def _ensure_session(self) -> None:
        """Create the session at the first turn, rendering the system prompt once."""
        if self.session_id is not None:
            return
        self.worker.system_prompt = self.render_system_prompt()
        start = session_start(
            self.worker.system_prompt, config=self.worker.config, history=self.worker.history
        )
        ref = await self.store.create_session(start)
        self._move_to(ref.session_id, ref.head, entries=1)
        await self._save_pod_ref()

    def render_system_prompt(self) -> str:
        """The manifest's instruction template, rendered with the pod's surroundings."""
        workdir = Path(self.manifest.pod.workdir)
        agents = workdir / "AGENTS.md"
        context = {
            "now": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "workdir": str(workdir),
            "scope": _scope_summary(self.manifest),
            "tools": [spec.name for spec in self.worker.build_request().tools],
            "agents_md": agents.read_text(errors="replace") if agents.is_file() else "",
            "pod": self.name,
        }
        try:
            template = _JINJA.from_string(self.manifest.instruction_text())
            return template.render(context)
        except jinja2.TemplateError as exc:
            raise ManifestError(f"bad template: {exc}", key="worker.instruction") from None

    async def _persist_step(self, step: Step) -> None:
        usage = step.usage
        decision = step.projection if isinstance(step.projection, prune.Skip | prune.Fire) else None
        if usage is not None and isinstance(decision, prune.Fire):
            usage = msgspec.structs.replace(usage, pruned_tokens=decision.value)
        entries: list[LogEntry] = [Item(item) for item in step.items]
        if usage is not None:
            entries.append(usage)
        if entries:
            await self._append(entries)
        if usage is not None:
            self._usages.append(usage)
            if self.compactor is not None:
                self.compactor.note_progress()
            if decision is not None:
                await self._record_metrics(prune.metrics_for(decision, usage))

    # --- prune projection -------------------------------------------------------------

    def _project_request(self, items: list[HistoryItem]) -> Projection:
        """The prune projection with the manifest's settings; the decision is the note."""
        compaction = self.manifest.compaction
        assert compaction is not None
        decision = prune.project(
            items,
            self._usages,
            protected_tokens=compaction.prune_protected_tokens,
            min_savings=compaction.prune_min_savings,
        )
        return Projection(decision.items if isinstance(decision, prune.Fire) else items, decision)

    async def _record_metrics(self, metrics: list[prune.Metric]) -> None:
        """Append metric entries; a failure is a warning, never the run's end."""
        try:
            await self._append(list(prune.metric_entries(metrics)))
        except Exception as exc:
            names = ", ".join(prune.metric_name(m) for m in metrics)
            self.alert("warn", "metrics", f"could not write metric {names}: {exc}")

    async def _append(self, entries: list[LogEntry]) -> None:
        assert self.session_id is not None
        async with self._write_lock:
            try:
                self._head = await self.store.append(self.session_id, entries, self._head or "")
            except HeadMoved:
                await self._fork_away()
                self._head = await self.store.append(self.session_id, entries, self._head or "")
            self._entries += len(entries)

    async def _fork_away(self) -> None:
        """Another writer moved our session's head: continue on a fork of our prefix."""
        assert self.session_id is not None
        old = self.session_id
        ref = await self.store.fork(old, at=self._entries)
        self._move_to(ref.session_id, ref.head, entries=self._entries)
        self._emit(
            proto.SessionRotated,
            old_session_id=old,
            new_session_id=ref.session_id,
            reason="head_moved",
        )
        await self._save_pod_ref()

    def _move_to(self, session_id: str, head: str, *, entries: int) -> None:
        self.session_id, self._head, self._entries = session_id, head, entries
        self.worker.cache_key = session_id

    async def _save_pod_ref(self, session_id: str | None = None) -> None:
        session_id = session_id or self.session_id
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
            status=self.status,
            session_id=self.session_id,
            turn_count=self.turn_count,
            history=self.worker.history[-SNAPSHOT_HISTORY:],
            last_seq=self._seq,
        )

    def subscribe(self) -> AbstractAsyncContextManager[Subscription]:
        """Events from now on, starting with a snapshot."""
        return self.fanout.subscribe(first=self.snapshot())

    def alert(self, level: proto.AlertLevel, source: str, message: str) -> None:
        """Tell subscribers something an operator should know."""
        self._emit(proto.Alert, level=level, source=source, message=message)

    def _emit(self, event_type: type[proto.Event], **fields: Any) -> None:
        self._seq += 1
        self.fanout.publish(event_type(pod=self.name, seq=self._seq, **fields))  # type: ignore[arg-type]

    def _set_status(self, status: proto.PodStatus) -> None:
        if status != self.status:
            self.status = status
            self._emit(proto.Status, status=status)

    async def _forward(self, event: WorkerEvent) -> None:
        for event_type, fields in self._translate(event):
            self._emit(event_type, **fields)

    def _translate(self, event: WorkerEvent) -> list[tuple[type[proto.Event], dict[str, Any]]]:
        match event:
            case llm_events.TextDelta(text=text):
                return [(proto.TextDelta, {"text": text})]
            case llm_events.ThinkingDelta(text=text):
                return [(proto.ThinkingDelta, {"text": text})]
            case llm_events.ToolCallStart(index=index, id=call_id, name=name):
                self._tool_ids[index] = call_id
                return [(proto.ToolCallStart, {"id": call_id, "name": name})]
            case llm_events.ToolCallArgsDelta(index=index, delta=delta):
                return [
                    (proto.ToolCallArgsDelta, {"id": self._tool_ids.get(index, ""), "delta": delta})
                ]
            case llm_events.ToolCallDone(call=call):
                return [
                    (
                        proto.ToolCallDone,
                        {"id": call.id, "name": call.name, "arguments": call.arguments},
                    )
                ]
            case LlmCallStarted(index=index, history_len=history_len):
                self._tool_ids, self._call_history_len = {}, history_len
                return [(proto.LlmCallStart, {"index": index, "history_len": history_len})]
            case LlmCallFinished(index=index, response=response):
                return [
                    *_done_events(response.items),
                    _usage_event(response, self._call_history_len),
                    (proto.LlmCallEnd, {"index": index, "stop_reason": response.stop_reason}),
                ]
            case ToolFinished(result=result):
                content = None if result.content is None else result.content[:WIRE_CONTENT_LIMIT]
                return [
                    (
                        proto.ToolResult,
                        {
                            "call_id": result.call_id,
                            "summary": result.summary,
                            "is_error": result.is_error,
                            "content": content,
                        },
                    )
                ]
            case (
                ToolStarted()
                | llm_events.UsageUpdate()
                | llm_events.Finish()
                | llm_events.ThinkingSignature()
            ):
                return []
        return []


class PodHandle:
    """What a user holds of a running pod: its methods, its state, its events.

    Methods go through the pod's mailbox; refused ones raise
    :class:`~podactors.errors.PodError` with the protocol error code.
    """

    def __init__(self, pod: Pod, address: ActorHandle[proto.AnyMethod]):
        self._pod = pod
        self._address = address
        self.name = pod.name

    def rebind(self, pod: Pod, address: ActorHandle[proto.AnyMethod]) -> None:
        """Point this handle at a restarted pod (the supervisor does this)."""
        self._pod, self._address = pod, address

    def __repr__(self) -> str:
        return f"PodHandle({self.name!r}, status={self.status!r})"

    @property
    def status(self) -> proto.PodStatus:
        """``idle``, ``running``, ``paused``, ``compacting`` or ``stopped``."""
        return self._pod.status

    @property
    def session_id(self) -> str | None:
        """The session the pod writes to now."""
        return self._pod.session_id

    async def run(self, text: str) -> RunResult:
        """Run a turn on ``text`` and wait for it to end."""
        ticket: RunTicket = await self._address.ask(proto.Run(pod=self.name, input=text))
        return await ticket.wait()

    async def start_run(self, text: str) -> RunTicket:
        """Start a turn on ``text``; await ``ticket.wait()`` for its result."""
        ticket: RunTicket = await self._address.ask(proto.Run(pod=self.name, input=text))
        return ticket

    async def resume(self) -> RunResult:
        """Continue a paused run and wait for it to end."""
        return await (await self.start_resume()).wait()

    async def start_resume(self) -> RunTicket:
        """Continue a paused run; await ``ticket.wait()`` for its result."""
        ticket: RunTicket = await self._address.ask(proto.Resume(pod=self.name))
        return ticket

    async def cancel(self) -> None:
        """Cancel the running (or paused) run."""
        await self._address.ask(proto.Cancel(pod=self.name))

    async def pause(self) -> None:
        """Pause the running run at its next step."""
        await self._address.ask(proto.Pause(pod=self.name))

    async def notify(self, message: str, *, source: str | None = None) -> RunTicket | None:
        """Commit a notification; returns the ticket of the turn it started, if idle."""
        ticket: RunTicket | None = await self._address.ask(
            proto.Notify(pod=self.name, message=message, source=source)
        )
        return ticket

    async def compact(self) -> CompactResult:
        """Compact the pod's session now and wait for the result.

        Refused (:class:`~podactors.errors.PodError`) without ``[compaction]``, unless the
        pod is idle, and before its first run. A manual compaction closes the circuit
        breaker first; it fails (``outcome="failed"``) rather than raising.
        """
        return await (await self.start_compact()).wait()

    async def start_compact(self) -> CompactTicket:
        """Start a compaction; await ``ticket.wait()`` for its result."""
        ticket: CompactTicket = await self._address.ask(proto.Compact(pod=self.name))
        return ticket

    async def shutdown(self) -> None:
        """Stop the pod; a running turn is cancelled and its interrupted state persisted."""
        await self._address.ask(proto.Shutdown(pod=self.name))

    async def snapshot(self) -> proto.Snapshot:
        """Where the pod stands."""
        snapshot: proto.Snapshot = await self._address.ask(proto.GetSnapshot(pod=self.name))
        return snapshot

    async def history(self) -> list[HistoryItem]:
        """The pod's whole history, as the model sees it."""
        await trio.lowlevel.checkpoint()
        return list(self._pod.worker.history)

    def subscribe(self) -> AbstractAsyncContextManager[Subscription]:
        """Events from now on, starting with a snapshot (``async with``)."""
        return self._pod.subscribe()


_JINJA = jinja2.Environment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)


def _done_events(items: list[ConversationItem]) -> list[tuple[type[proto.Event], dict[str, Any]]]:
    done: list[tuple[type[proto.Event], dict[str, Any]]] = []
    for item in items:
        if isinstance(item, Message):
            done.append((proto.TextDone, {"text": item.content}))
        elif isinstance(item, Reasoning):
            done.append((proto.ThinkingDone, {"text": item.text}))
    return done


def _usage_event(
    response: llm_events.LlmResponse, history_len: int
) -> tuple[type[proto.Event], dict[str, Any]]:
    usage = response.usage
    return (
        proto.UsageReport,
        {
            "history_len": history_len,
            "input_total": usage.input_total,
            "cache_read": usage.cache_read,
            "cache_write": usage.cache_write,
            "output": usage.output,
        },
    )


def _summary_breakpoint(state: SessionState) -> int | None:
    """A compacted session caches its prompt up to its summary, the first item."""
    compacted = state.origin is not None and state.origin.kind == "compacted_from"
    first = state.history[0] if state.history else None
    if compacted and isinstance(first, Message) and first.role == "system":
        return 0
    return None


def _run_outcome(result: TurnResult) -> proto.RunOutcome:
    if result.outcome == "yielded":
        return "finished"
    return result.outcome


def _error_code(exc: PodactorsError) -> proto.ErrorCode:
    if isinstance(exc, ProviderError):
        return "provider_error"
    if isinstance(exc, ToolError):
        return "tool_error"
    if isinstance(exc, PodError):
        return exc.code  # type: ignore[return-value]
    return "internal"


def _scope_summary(manifest: Manifest) -> str:
    allow = [
        f"{rule.permission} {rule.target}{'' if rule.recursive else ' (top only)'}"
        for rule in manifest.scope.allow
    ]
    deny = [f"deny {rule.permission} {rule.target}" for rule in manifest.scope.deny]
    return "; ".join(allow + deny)


__all__ = [
    "CompactResult",
    "CompactTicket",
    "Pod",
    "PodHandle",
    "RunResult",
    "RunTicket",
    "Ticket",
]
