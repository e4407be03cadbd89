"""Token accounting from provider-reported usage, without a tokenizer.

Every LLM call reports its prompt size (:class:`~podactors.store.entries.Usage`
``input_total``) and records how many history items it saw (``history_len``). Those records
are *measurements* of the prompt size at a few history lengths; everything in between is
estimated by the items' serialised size (msgspec msgpack bytes):

``measured``
    a record exists for exactly this history length.
``interpolated``
    between the records at ``h0 < n < h1``:
    ``t0 + (t1 - t0) * (bytes(n) - bytes(h0)) / (bytes(h1) - bytes(h0))``.
``extrapolated``
    beyond the last record or before the first: the nearest record's tokens plus the byte
    difference times the *marginal* token rate, ``(t_last - t_first) / (bytes(h_last) -
    bytes(h_first))`` over all records, or :data:`DEFAULT_TOKENS_PER_BYTE` when there is only
    one record (or the rate is not positive). The marginal rate leaves out the fixed part of a
    prompt (system prompt, tool schemas) that a plain ``tokens / bytes`` ratio would smear
    over the history, which inflates estimates badly early in a session.
``none``
    no record at all: ``ceil(bytes(n) / 4)``.

A record counts as ``input_total + pruned_tokens``: a request the prune projection
(:mod:`podactors.compaction.prune`) shortened measured less than its history costs unpruned, and the
timeline is about the history, so the estimated cut is added back.

The estimate for ``n`` is the size of a prompt holding the first ``n`` items, fixed parts
included, so :meth:`TokenTimeline.tokens_between` (a difference) is what a slice of history
costs. :class:`TokenTimeline` keeps cumulative byte lengths, so appending items and records
costs only the new items; an estimate is a binary search over the records.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from typing import Literal, NamedTuple

import msgspec

from podactors.items import HistoryItem
from podactors.store.entries import Usage

__all__ = [
    "DEFAULT_TOKENS_PER_BYTE",
    "Quality",
    "TokenEstimate",
    "TokenTimeline",
    "estimate_tokens",
    "item_bytes",
]

Quality = Literal["measured", "interpolated", "extrapolated", "none"]
"""How an estimate was obtained; see the module docstring."""

#: Tokens per serialised byte assumed when the records give no rate (about 4 bytes a token).
DEFAULT_TOKENS_PER_BYTE = 0.25

_ENCODER = msgspec.msgpack.Encoder()


class TokenEstimate(NamedTuple):
    """An estimated token count and how it was obtained."""

    tokens: int
    quality: Quality


def item_bytes(item: HistoryItem) -> int:
    """The serialised size of one history item (msgspec msgpack)."""
    return len(_ENCODER.encode(item))


class TokenTimeline:
    """Cumulative byte lengths of a history plus the usage records measured on it.

    Build it once from a session's history and usage records, then keep it current with
    :meth:`extend_history` (O(new items)) and :meth:`add_usage` (O(log records)). Records
    that claim more items than the timeline holds are kept but ignored until the history
    catches up. Methods taking an index raise ``IndexError`` outside ``0..len(self)``.
    """

    def __init__(self, history: Iterable[HistoryItem] = (), usages: Iterable[Usage] = ()) -> None:
        self._cumulative = [0]
        self._record_lens: list[int] = []
        self._record_tokens: list[int] = []
        self.extend_history(history)
        for usage in usages:
            self.add_usage(usage)

    def __len__(self) -> int:
        """The number of history items the timeline covers."""
        return len(self._cumulative) - 1

    def extend_history(self, items: Iterable[HistoryItem]) -> None:
        """Append items to the history (only their sizes are kept)."""
        total = self._cumulative[-1]
        for item in items:
            total += item_bytes(item)
            self._cumulative.append(total)

    def add_usage(self, usage: Usage) -> None:
        """Add the measurement of one LLM call; a later record for the same length wins.

        The measurement is ``input_total + pruned_tokens``: the unpruned history's size.
        """
        self.add_measurement(usage.history_len, usage.input_total + usage.pruned_tokens)

    def add_measurement(self, history_len: int, tokens: int) -> None:
        """Record that a prompt with the first ``history_len`` items had ``tokens`` tokens."""
        if history_len < 0 or tokens < 0:
            raise ValueError(f"invalid measurement: {tokens} tokens at {history_len} items")
        index = bisect.bisect_left(self._record_lens, history_len)
        if index < len(self._record_lens) and self._record_lens[index] == history_len:
            self._record_tokens[index] = tokens
            return
        self._record_lens.insert(index, history_len)
        self._record_tokens.insert(index, tokens)

    def bytes_at(self, n: int) -> int:
        """The serialised size of the first ``n`` items."""
        return self._cumulative[self._index(n)]

    def estimate(self, n: int | None = None) -> TokenEstimate:
        """The estimated prompt size with the first ``n`` items (default: all of them)."""
        n = len(self) if n is None else self._index(n)
        usable = bisect.bisect_right(self._record_lens, len(self))
        if usable == 0:
            return TokenEstimate(math.ceil(self._cumulative[n] / 4), "none")
        k = bisect.bisect_left(self._record_lens, n, 0, usable)
        if k < usable and self._record_lens[k] == n:
            return TokenEstimate(self._record_tokens[k], "measured")
        if k in (0, usable):
            nearest = 0 if k == 0 else usable - 1
            return TokenEstimate(self._extrapolate(n, nearest, usable), "extrapolated")
        return TokenEstimate(self._interpolate(n, k - 1, k), "interpolated")

    def tokens_at(self, n: int | None = None) -> int:
        """Just the token count of :meth:`estimate`."""
        return self.estimate(n).tokens

    def tokens_between(self, i: int, j: int | None = None) -> int:
        """The estimated tokens of items ``i..j`` (``j`` excluded; default: to the end)."""
        j = len(self) if j is None else j
        if i > j:
            raise ValueError(f"tokens_between: start {i} is after end {j}")
        return max(0, self.tokens_at(j) - self.tokens_at(i))

    def split_index_for_tail(self, target_tokens: int, n: int | None = None) -> int:
        """The smallest ``i`` such that items ``i..n`` cost at most ``target_tokens``.

        ``n`` defaults to the whole history, so ``history[i:]`` is the longest tail that fits
        the target. Estimates are monotone in ``i`` whenever the records grow with the
        history; when they do not (a later record measured fewer tokens), the answer still
        fits the target but may not be the smallest such index.
        """
        n = len(self) if n is None else self._index(n)
        total = self.tokens_at(n)
        low, high = 0, n
        while low < high:
            mid = (low + high) // 2
            if total - self.tokens_at(mid) <= target_tokens:
                high = mid
            else:
                low = mid + 1
        return low

    def _index(self, n: int) -> int:
        if not 0 <= n <= len(self):
            raise IndexError(f"history index {n} outside 0..{len(self)}")
        return n

    def _interpolate(self, n: int, lower: int, upper: int) -> int:
        h0, h1 = self._record_lens[lower], self._record_lens[upper]
        t0, t1 = self._record_tokens[lower], self._record_tokens[upper]
        b0, b1 = self._cumulative[h0], self._cumulative[h1]
        if b1 == b0:
            return t0
        return round(t0 + (t1 - t0) * (self._cumulative[n] - b0) / (b1 - b0))

    def _extrapolate(self, n: int, nearest: int, usable: int) -> int:
        h, t = self._record_lens[nearest], self._record_tokens[nearest]
        delta = self._cumulative[n] - self._cumulative[h]
        return max(0, round(t + delta * self._marginal_rate(usable)))

    def _marginal_rate(self, usable: int) -> float:
        """Tokens per byte between the first and the last usable record."""
        first_len, last_len = self._record_lens[0], self._record_lens[usable - 1]
        byte_span = self._cumulative[last_len] - self._cumulative[first_len]
        token_span = self._record_tokens[usable - 1] - self._record_tokens[0]
        if byte_span <= 0 or token_span <= 0:
            return DEFAULT_TOKENS_PER_BYTE
        return token_span / byte_span


def estimate_tokens(
    history: Iterable[HistoryItem], usages: Iterable[Usage], n: int | None = None
) -> TokenEstimate:
    """Estimate the prompt size with the first ``n`` items of ``history`` (default: all).

    A one-off convenience over :class:`TokenTimeline`; keep a timeline instead when
    estimating repeatedly.
    """
    return TokenTimeline(history, usages).estimate(n)
