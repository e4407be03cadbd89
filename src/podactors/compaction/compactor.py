"""The compactor: one pod's compaction policy and guards, as an actor.

A :class:`Compactor` belongs to one pod (it is built from the manifest's ``[compaction]``
table and started in the pod's nursery) and answers two messages:

* :class:`Due` (asked before a run with trigger ``threshold`` and before every LLM
  request with ``request``): whether the automatic trigger fires. Each threshold is off
  when unset, and with neither set nothing ever compacts on its own. Occupancy is read
  off the usage timeline (:mod:`podactors.compaction.tokens`) minus what the prune
  projection leaves out of the next request (the pod computed it once for the request),
  never a tokenizer.
* :class:`Compact`: the one entry point of a compaction. The answer is the occupancy
  before; the outcome arrives later in the asker's mailbox as :class:`CompactionOver`
  (``Compacted``, ``CompactionFailed`` or ``CompactionCancelled``). The guards are all
  inside: an automatic trigger right after a compaction, before any LLM call made
  progress on the new session, is thrash; the new context must be below the lowest
  threshold set (the :class:`~podactors.compaction.summariser.Summariser`'s
  post-condition); three failures in a row open a circuit breaker that turns automatic
  compaction off until a manual one, which closes it first.

The compactor never writes to the store: the pod persists a ``Compacted`` outcome as a
new session and switches to it. :class:`CancelCompaction` cancels one in flight.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

import attrs
import trio

from podactors.actor import ActorHandle, WorkingActor
from podactors.compaction.summariser import Compaction, Summariser, seeded_timeline
from podactors.errors import CompactError, describe_error
from podactors.items import HistoryItem
from podactors.manifest import CompactionConfig
from podactors.protocol import CompactionTimings
from podactors.store.entries import Usage
from podactors.tools import Task

__all__ = [
    "FAILURE_LIMIT",
    "CancelCompaction",
    "Compact",
    "CompactOutcome",
    "Compacted",
    "CompactionCancelled",
    "CompactionFailed",
    "CompactionOver",
    "Compactor",
    "CompactorStatistics",
    "Due",
    "GetStatistics",
    "Trigger",
]

Trigger = Literal["threshold", "request", "manual"]
"""What started a compaction: the between-runs ``threshold``, the ``request_threshold``
checked before an LLM request, or a ``Compact`` method."""

#: Consecutive failures after which automatic compaction turns itself off.
FAILURE_LIMIT = 3
#: How long reporting a compaction's end to the pod may take once it is over.
REPORT_SECONDS = 5.0


@attrs.frozen
class Due:
    """Ask: does the automatic ``trigger`` fire for this history? (``pruned``: tokens the
    prune projection leaves out of the next request)."""

    trigger: Trigger
    history: Sequence[HistoryItem]
    usages: Sequence[Usage]
    pruned: int = 0


@attrs.frozen
class Compact:
    """Ask: compact this history (copies the asker will not change); the answer is the
    occupancy before, and :class:`CompactionOver` goes to ``reply_to`` when it ends."""

    trigger: Trigger
    history: Sequence[HistoryItem]
    usages: Sequence[Usage]
    reply_to: ActorHandle[Any]
    recent_files: Sequence[str] = ()
    tasks: Sequence[Task] = ()
    pruned: int = 0


@attrs.frozen
class CancelCompaction:
    """Cancel the compaction in flight (its outcome is ``CompactionCancelled``)."""


@attrs.frozen
class GetStatistics:
    """Ask: the compactor's counters."""


CompactorMessage = Due | Compact | CancelCompaction | GetStatistics


@attrs.frozen
class Compacted:
    """A compaction produced ``compaction``; ``started`` is its ``trio.current_time()``."""

    compaction: Compaction
    tokens_before: int
    started: float


@attrs.frozen
class CompactionFailed:
    """A compaction failed; ``breaker_opened`` when this failure opened the breaker."""

    error: str
    tokens_before: int
    breaker_opened: bool = False
    consecutive: int = 0


@attrs.frozen
class CompactionCancelled:
    """A compaction was cancelled; nothing changed."""

    tokens_before: int


CompactOutcome = Compacted | CompactionFailed | CompactionCancelled


@attrs.frozen
class CompactionOver:
    """Told to the pod: the compaction its ``trigger`` started ended with ``outcome``."""

    trigger: Trigger
    outcome: CompactOutcome


@attrs.frozen
class CompactorStatistics:
    """Counters of one compactor: successes, failures, the breaker and thrash state."""

    compactions: int
    failures: int
    consecutive_failures: int
    circuit_open: bool
    just_compacted: bool


class Compactor(WorkingActor[CompactorMessage]):
    """One pod's compaction policy and guards; see the module docstring."""

    name = "compactor"
    mailbox_size = 8

    def __init__(
        self,
        config: CompactionConfig,
        summariser: Summariser,
        *,
        failure_limit: int = FAILURE_LIMIT,
    ):
        self.config = config
        self.summariser = summariser
        self.failure_limit = failure_limit
        self._consecutive_failures = 0
        self._circuit_open = False
        self._seed: tuple[int, int] | None = None
        self._compactions = 0
        self._failures = 0
        self._running: trio.CancelScope | None = None

    async def handle(self, message: CompactorMessage) -> Any:
        """Answer one message; see the module docstring."""
        await trio.lowlevel.checkpoint()
        match message:
            case Due(trigger=trigger, history=history, usages=usages, pruned=pruned):
                self._progress(usages)
                threshold = self.threshold_for(trigger)
                if threshold is None or self._circuit_open or not history:
                    return False
                return self.occupancy(history, usages, pruned) >= threshold
            case Compact():
                return self._start(message)
            case CancelCompaction():
                if self._running is not None:
                    self._running.cancel()
            case GetStatistics():
                return self.statistics()
        return None

    # --- policy -----------------------------------------------------------------------

    def threshold_for(self, trigger: Trigger) -> int | None:
        """The threshold ``trigger`` checks (``None``: off, or a manual trigger)."""
        if trigger == "threshold":
            return self.config.threshold
        if trigger == "request":
            return self.config.request_threshold
        return None

    def occupancy(
        self, history: Sequence[HistoryItem], usages: Sequence[Usage], pruned: int = 0
    ) -> int:
        """The estimated size of the next request: the history's tokens on the usage
        timeline (seeded right after a compaction), less what the prune projection
        leaves out."""
        tokens = seeded_timeline(history, usages, self._seed).tokens_at()
        return max(0, tokens - pruned)

    def limit(self, tokens_before: int) -> int:
        """What a compacted context must stay below: the lowest threshold set (at most the
        triggering one, so neither trigger fires again at once), else the size before."""
        thresholds = [t for t in (self.config.threshold, self.config.request_threshold) if t]
        return min(thresholds) if thresholds else tokens_before

    def statistics(self) -> CompactorStatistics:
        """Counters since this compactor was built."""
        return CompactorStatistics(
            self._compactions,
            self._failures,
            self._consecutive_failures,
            self._circuit_open,
            self._seed is not None,
        )

    def _progress(self, usages: Sequence[Usage]) -> None:
        """An LLM call completed on the session since the last compaction: not thrash."""
        if usages:
            self._seed = None

    # --- a compaction -----------------------------------------------------------------

    def _start(self, request: Compact) -> int:
        if self._running is not None:
            raise CompactError("busy", "a compaction is already in flight")
        self._progress(request.usages)
        if request.trigger == "manual":
            self._circuit_open, self._consecutive_failures = False, 0
        measuring = time.perf_counter()
        tokens_before = self.occupancy(request.history, request.usages, request.pruned)
        timings = CompactionTimings(occupancy=time.perf_counter() - measuring)
        self._running = trio.CancelScope()
        self.work.start_soon(self._compact, request, tokens_before, timings, self._running)
        return tokens_before

    async def _compact(
        self,
        request: Compact,
        tokens_before: int,
        timings: CompactionTimings,
        scope: trio.CancelScope,
    ) -> None:
        outcome: CompactOutcome = CompactionCancelled(tokens_before)
        started = trio.current_time()
        try:
            with scope:
                outcome = await self._guarded(request, tokens_before, timings, started)
        finally:
            self._running = None
            with trio.CancelScope(shield=True) as report:
                report.deadline = trio.current_time() + REPORT_SECONDS
                await request.reply_to.tell(CompactionOver(request.trigger, outcome))

    async def _guarded(
        self, request: Compact, tokens_before: int, timings: CompactionTimings, started: float
    ) -> CompactOutcome:
        try:
            if request.trigger != "manual" and self._seed is not None and not request.usages:
                raise CompactError(
                    "thrash",
                    f"thrash: the context is at ~{tokens_before} tokens again right after a "
                    f"compaction, before any progress (threshold "
                    f"{self.threshold_for(request.trigger)})",
                )
            compaction = await self.summariser.compact(
                request.history,
                request.usages,
                limit=self.limit(tokens_before),
                tokens_before=tokens_before,
                seed=self._seed,
                recent_files=request.recent_files,
                tasks=request.tasks,
                timings=timings,
            )
        except Exception as exc:
            return self._failed(exc, tokens_before)
        self._compactions += 1
        self._consecutive_failures = 0
        self._seed = (len(compaction.history), compaction.tokens_after)
        return Compacted(compaction, tokens_before, started)

    def _failed(self, exc: Exception, tokens_before: int) -> CompactionFailed:
        error = describe_error(exc)
        self._seed = None
        self._failures += 1
        self._consecutive_failures += 1
        opened = self._consecutive_failures >= self.failure_limit and not self._circuit_open
        self._circuit_open = self._circuit_open or opened
        return CompactionFailed(error, tokens_before, opened, self._consecutive_failures)
