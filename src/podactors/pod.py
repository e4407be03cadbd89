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
(:mod:`podactors.prune`) and its decision is recorded as a metric entry right after the
step of the LLM call that sent it (with ``prune.post_request`` after a fire). A metric
that cannot be written is a warning ``alert``, never a failed run.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Literal

import jinja2
import msgspec
import trio

from podactors import protocol as proto
from podactors import prune
from podactors.actor import Actor, ActorHandle
from podactors.errors import (
    HeadMoved,
    ManifestError,
    PodactorsError,
    PodError,
    ProviderError,
    ToolError,
)
from podactors.fanout import Fanout, Subscription
from podactors.hooks import CONTINUE, Decision, Hooks, Pause
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
    Outcome,
    SystemItem,
    TurnEnd,
    Usage,
    UserInput,
    session_start,
)
from podactors.store.replay import SessionState
from podactors.tools import Scope, ScopedFs, Tool, ToolContext, ToolRegistry, builtin_tools
from podactors.worker import (
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


class RunTicket:
    """The pending result of a run started through the mailbox."""

    def __init__(self) -> None:
        self._done = trio.Event()
        self.result: RunResult | None = None

    def set(self, result: RunResult) -> None:
        """Deliver the run's result."""
        self.result = result
        self._done.set()

    async def wait(self) -> RunResult:
        """Wait for the run to end."""
        await self._done.wait()
        assert self.result is not None
        return self.result


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
        self.worker = self._make_worker(tools, hooks or Hooks())

    # --- construction ---------------------------------------------------------------

    def _make_worker(self, tools: Iterable[Tool], hooks: Hooks) -> Worker:
        manifest = self.manifest
        workdir = manifest.pod.workdir
        fs = ScopedFs(Scope.from_config(manifest.scope, base=workdir), workdir)
        context = ToolContext(fs, tool_output_max_bytes=manifest.worker.tool_output_max_bytes)
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
        self._usages = list(state.usage)
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
                if self.status != "running":
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
                raise self._refuse("invalid_request", "compaction is not configured for this pod")
        return None

    def _start_run(self, text: str | None) -> RunTicket:
        if self.status != "idle":
            raise self._refuse("already_running", f"pod {self.name} is {self.status}")
        return self._spawn_turn(text, resume=False)

    def _start_resume(self) -> RunTicket:
        if self.status != "paused":
            raise self._refuse("not_paused", f"pod {self.name} is {self.status}, not paused")
        return self._spawn_turn(None, resume=True)

    async def _cancel(self) -> None:
        """Cancel the running turn, or abandon a paused one (its open calls get closed)."""
        if self.status == "running" and self._turn_scope is not None:
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
            return await self.worker.resume(on_step=on_step, on_event=on_event)
        closing: list[LogEntry] = [Item(r) for r in self.worker.close_open_calls()]
        if text is not None:
            closing.append(UserInput(text))
        if closing:
            await self._append(closing)
        return await self.worker.run(text, on_step=on_step, on_event=on_event)

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
        """Commit notifications that arrived during the turn, then let the request go."""
        notes, self._pending_notes = self._pending_notes, []
        if notes:
            await self._commit_system_items(notes)
        return "proceed"

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

    async def _save_pod_ref(self) -> None:
        if self.session_id is not None:
            source = self.manifest.source
            ref = PodRef(
                self.session_id,
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

    async def compact(self) -> None:
        """Compact the pod's session now."""
        await self._address.ask(proto.Compact(pod=self.name))

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


__all__ = ["Pod", "PodHandle", "RunResult", "RunTicket"]
