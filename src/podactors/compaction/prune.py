"""The prune projection: old tool-result content left out of a request, and its metrics.

A request may replace the ``content`` of old :class:`~podactors.items.ToolResult` items by
their one-line ``summary``; the history (and the log) keep the content. :func:`project` is
a pure function of the history and the session's usage records, so the same log always
gives the same request:

* Token counts come from the usage records (``input_total + pruned_tokens``: what the
  unpruned history cost). Without any record for this history nothing is pruned
  (``Skip("no_candidates")``): there is no measurement to go by, and a bytes/4 guess is not
  good enough to break a provider's prompt cache for.
* The *protected tail* is everything after the latest record (the model has not seen those
  items yet, so it sees them whole once), plus the newest whole request steps before it
  whose measured tokens fit in ``protected_tokens``. A step is what lies between two
  records: one response and its tool results, so a batch of results is never split.
* The *candidates* are the tool results before the protected tail that still have content.
  A candidate saves the tokens of its content minus those of its summary (the wire sends
  the summary in its place): the item's estimated tokens
  (:class:`~podactors.compaction.tokens.TokenTimeline`, interpolated by serialised bytes) times the
  share of its bytes that the content has over the summary.
* No candidates: ``Skip("no_candidates")``. A total saving below ``min_savings``:
  ``Skip("below_min_savings")`` (breaking the prompt cache for little is not worth it).
  Otherwise :class:`Fire` with the projected items.

The tail boundary is read off the records (only items before the first record are sized
by bytes), so leaving contents out before it cannot move it later: projecting a projected
history changes nothing more. Interpolating the boundary by bytes would not have that
property (the pruned items' bytes shrink, the records do not).

Each decision is recorded as a metric: an :class:`~podactors.store.entries.Extension`
of domain :data:`METRICS_DOMAIN` holding a :data:`Metric`. ``prune.skip`` and
``prune.fire`` describe the decision; ``prune.post_request`` carries the cache numbers of
the LLM call that sent a fired projection, joined to its ``prune.fire`` by
``correlation_id``. :func:`metrics_from_extensions` reads them back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Literal

import msgspec

from podactors.compaction.tokens import TokenTimeline, item_bytes
from podactors.items import HistoryItem, ToolResult
from podactors.store.entries import Extension, Usage

__all__ = [
    "METRICS_DOMAIN",
    "Fire",
    "Metric",
    "PruneDecision",
    "PruneFireMetric",
    "PrunePostRequestMetric",
    "PruneSkipMetric",
    "Skip",
    "SkipReason",
    "metric_entries",
    "metric_name",
    "metrics_for",
    "metrics_from_extensions",
    "project",
]

METRICS_DOMAIN = "metrics"
"""The extension domain metric entries are written under."""

SkipReason = Literal["no_candidates", "below_min_savings"]


class Skip(msgspec.Struct, frozen=True):
    """The request goes out as the history is.

    ``value`` is the estimated saving in tokens (0 when there were no candidates).
    """

    reason: SkipReason
    candidate_count: int = 0
    value: int = 0


class Fire(msgspec.Struct, frozen=True):
    """The request goes out as ``items``: ``candidate_count`` contents left out.

    ``protected_start_index`` is where the untouched tail begins; ``value`` is the
    estimated saving in tokens.
    """

    candidate_count: int
    protected_start_index: int
    value: int
    items: list[HistoryItem]


PruneDecision = Skip | Fire
"""What :func:`project` decided for one request."""


def project(
    history: Sequence[HistoryItem],
    usages: Iterable[Usage],
    *,
    protected_tokens: int,
    min_savings: int,
) -> PruneDecision:
    """Decide how the next request shows ``history``; see the module docstring.

    ``usages`` are the session's usage records (with their ``history_len``); records beyond
    ``len(history)`` are ignored, and a later record for the same length wins. Neither
    argument is changed.
    """
    items = list(history)
    records = [usage for usage in usages if usage.history_len <= len(items)]
    if not records:
        return Skip("no_candidates")
    timeline = TokenTimeline(items, records)
    start = _protected_start(records, timeline, protected_tokens)
    candidates = [
        k for k in range(start) if isinstance(item := items[k], ToolResult) and item.content
    ]
    if not candidates:
        return Skip("no_candidates")
    saving = round(sum(_saving(timeline, items, k) for k in candidates))
    if saving < min_savings:
        return Skip("below_min_savings", len(candidates), saving)
    projected = list(items)
    for k in candidates:
        result = items[k]
        assert isinstance(result, ToolResult)
        projected[k] = ToolResult(result.call_id, result.summary, None, result.is_error)
    return Fire(len(candidates), start, saving, projected)


def _protected_start(records: list[Usage], timeline: TokenTimeline, budget: int) -> int:
    """Where the protected tail begins: a record's length (or 0), see the module docstring."""
    measured = {usage.history_len: usage.input_total + usage.pruned_tokens for usage in records}
    lengths = sorted(measured)
    latest = measured[lengths[-1]]
    start = lengths[-1]
    for length in reversed(lengths[:-1]):
        if latest - measured[length] > budget:
            return start
        start = length
    if start > 0 and latest - timeline.tokens_at(0) <= budget:
        return 0  # the items before the first record fit as well
    return start


def _saving(timeline: TokenTimeline, items: list[HistoryItem], k: int) -> float:
    """Estimated tokens saved by sending tool result ``k``'s summary instead of its content.

    The item's estimated tokens, times the share of its serialised bytes that the content
    has over the summary; never negative.
    """
    result = items[k]
    assert isinstance(result, ToolResult) and result.content is not None
    dropped = len(result.content.encode()) - len(result.summary.encode())
    size = item_bytes(result)
    tokens = timeline.tokens_between(k, k + 1)
    if dropped <= 0 or size <= 0 or tokens <= 0:
        return 0.0
    return tokens * min(1.0, dropped / size)


# --- metrics ---------------------------------------------------------------------------


class PruneSkipMetric(msgspec.Struct, frozen=True, tag="prune.skip", tag_field="name"):
    """A request went out unpruned: why, how many candidates, their estimated saving."""

    reason: str
    candidate_count: int
    value: int


class PruneFireMetric(msgspec.Struct, frozen=True, tag="prune.fire", tag_field="name"):
    """A request went out pruned; ``value`` is the estimated saving in tokens."""

    candidate_count: int
    protected_start_index: int
    value: int
    correlation_id: str


class PrunePostRequestMetric(
    msgspec.Struct, frozen=True, tag="prune.post_request", tag_field="name"
):
    """The LLM call that sent a pruned request; ``value`` is its cache-read tokens."""

    correlation_id: str
    value: int
    cache_write_tokens: int
    history_len: int


Metric = PruneSkipMetric | PruneFireMetric | PrunePostRequestMetric
"""A metric record; the ``name`` tag (``prune.skip``, …) tells them apart."""


def metric_name(metric: Metric) -> str:
    """The metric's name (its tag): ``prune.skip``, ``prune.fire`` or ``prune.post_request``."""
    return str(metric.__struct_config__.tag)


def metrics_for(
    decision: PruneDecision, usage: Usage, *, correlation_id: str | None = None
) -> list[Metric]:
    """The metrics of one request: its decision and, after a fire, the call's cache numbers.

    ``usage`` is the usage of the LLM call that sent the request; a fire and its
    ``prune.post_request`` share ``correlation_id`` (a fresh uuid4 hex by default).
    """
    if isinstance(decision, Skip):
        return [PruneSkipMetric(decision.reason, decision.candidate_count, decision.value)]
    correlation_id = correlation_id or uuid.uuid4().hex
    return [
        PruneFireMetric(
            decision.candidate_count, decision.protected_start_index, decision.value, correlation_id
        ),
        PrunePostRequestMetric(
            correlation_id, usage.cache_read, usage.cache_write, usage.history_len
        ),
    ]


def metric_entries(metrics: Iterable[Metric]) -> list[Extension]:
    """Log entries holding ``metrics``, one per metric."""
    return [Extension.of(METRICS_DOMAIN, metric) for metric in metrics]


_METRIC_DECODER = msgspec.msgpack.Decoder(Metric)


def metrics_from_extensions(extension_log: Iterable[Extension]) -> list[Metric]:
    """The metrics among a session's extension entries, in log order.

    Entries of other domains are skipped, and so are metrics this version does not know
    (a newer writer's), so any session replays.
    """
    metrics: list[Metric] = []
    for entry in extension_log:
        if entry.domain != METRICS_DOMAIN:
            continue
        try:
            metrics.append(_METRIC_DECODER.decode(entry.payload))
        except msgspec.DecodeError:
            continue
    return metrics
