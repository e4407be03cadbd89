"""Token accounting: measured, interpolated, extrapolated and unmeasured estimates."""

from __future__ import annotations

import pytest

from podactors.compaction.tokens import TokenEstimate, TokenTimeline, estimate_tokens, item_bytes
from podactors.items import HistoryItem, Message, ToolCall, ToolResult
from podactors.store.entries import Usage

# Every ITEM serialises to exactly 100 bytes, so bytes(n) = 100 * n.
ITEM = Message("user", "a" * 53)


def history(n: int) -> list[Message]:
    return [ITEM] * n


def test_item_fixture_is_100_bytes() -> None:
    assert item_bytes(ITEM) == 100


def test_no_records_estimates_bytes_over_four() -> None:
    # 3 items = 300 bytes -> 300 / 4 = 75.
    assert estimate_tokens(history(3), []) == TokenEstimate(75, "none")


def test_no_records_rounds_up() -> None:
    timeline = TokenTimeline([Message("user", "")])  # 46 bytes -> ceil(11.5) = 12
    assert timeline.estimate() == TokenEstimate(12, "none")


def test_exact_record_is_measured() -> None:
    usages = [Usage(history_len=2, input_total=1000), Usage(history_len=6, input_total=1400)]
    assert estimate_tokens(history(8), usages, n=2) == TokenEstimate(1000, "measured")
    assert estimate_tokens(history(8), usages, n=6) == TokenEstimate(1400, "measured")


def test_between_records_interpolates_by_bytes() -> None:
    # 1000 + (1400 - 1000) * (500 - 200) / (600 - 200) = 1300
    usages = [Usage(2, 1000), Usage(6, 1400)]
    assert estimate_tokens(history(8), usages, n=5) == TokenEstimate(1300, "interpolated")


def test_interpolation_follows_bytes_not_item_count() -> None:
    big = Message("user", "b" * 253)  # 300 bytes: 45 overhead + 2 header + 253
    assert item_bytes(big) == 300
    items = [ITEM, ITEM, big, ITEM]  # bytes(2) = 200, bytes(3) = 500, bytes(4) = 600
    usages = [Usage(2, 1000), Usage(4, 1400)]
    # 1000 + 400 * (500 - 200) / (600 - 200) = 1300, not the item-count midpoint 1200.
    assert estimate_tokens(items, usages, n=3) == TokenEstimate(1300, "interpolated")


def test_after_last_record_extrapolates_with_marginal_rate() -> None:
    # rate = (1400 - 1000) / (600 - 200) = 1 token/byte; 1400 + (800 - 600) * 1 = 1600
    usages = [Usage(2, 1000), Usage(6, 1400)]
    assert estimate_tokens(history(8), usages) == TokenEstimate(1600, "extrapolated")


def test_before_first_record_extrapolates_backwards() -> None:
    # 1000 - (200 - 100) * 1 = 900; at 0 items: 800 (the prompt's fixed part).
    usages = [Usage(2, 1000), Usage(6, 1400)]
    assert estimate_tokens(history(8), usages, n=1) == TokenEstimate(900, "extrapolated")
    assert estimate_tokens(history(8), usages, n=0) == TokenEstimate(800, "extrapolated")


def test_single_record_extrapolates_at_default_rate() -> None:
    # One record: 0.25 tokens/byte beyond it: 3000 + (500 - 200) * 0.25 = 3075.
    # (A plain tokens/bytes ratio, 15 tokens/byte here, would claim 7500.)
    assert estimate_tokens(history(5), [Usage(2, 3000)]) == TokenEstimate(3075, "extrapolated")


def test_extrapolation_never_goes_negative() -> None:
    # rate = (2000 - 100) / (400 - 200) = 9.5; at 0 items: 100 - 200 * 9.5 < 0 -> 0
    usages = [Usage(2, 100), Usage(4, 2000)]
    assert estimate_tokens(history(4), usages, n=0) == TokenEstimate(0, "extrapolated")


def test_later_record_for_same_length_wins() -> None:
    timeline = TokenTimeline(history(4), [Usage(2, 1000), Usage(2, 1100)])
    assert timeline.estimate(2) == TokenEstimate(1100, "measured")


def test_record_beyond_history_is_ignored_until_history_catches_up() -> None:
    timeline = TokenTimeline(history(2), [Usage(4, 5000)])
    assert timeline.estimate() == TokenEstimate(50, "none")
    timeline.extend_history(history(2))
    assert timeline.estimate() == TokenEstimate(5000, "measured")


def test_index_outside_history_raises() -> None:
    timeline = TokenTimeline(history(2))
    with pytest.raises(IndexError):
        timeline.estimate(3)
    with pytest.raises(IndexError):
        timeline.bytes_at(-1)


def test_tokens_between_is_the_difference() -> None:
    timeline = TokenTimeline(history(8), [Usage(2, 1000), Usage(6, 1400)])
    assert timeline.tokens_between(2, 6) == 400
    assert timeline.tokens_between(6) == 200  # 1600 - 1400
    with pytest.raises(ValueError):
        timeline.tokens_between(5, 4)


def test_split_index_for_tail_keeps_longest_tail_within_target() -> None:
    # tokens(n) = 800 + 100 n here; total at 8 items = 1600.
    timeline = TokenTimeline(history(8), [Usage(2, 1000), Usage(6, 1400)])
    assert timeline.split_index_for_tail(250) == 6  # 1600 - 1400 = 200 <= 250; 300 > 250
    assert timeline.split_index_for_tail(300) == 5
    assert timeline.split_index_for_tail(0) == 8
    assert timeline.split_index_for_tail(10_000) == 0
    assert timeline.split_index_for_tail(250, n=6) == 4  # 1400 - 1200 = 200


def test_incremental_timeline_equals_from_scratch() -> None:
    items: list[HistoryItem] = [
        Message("user", "please fix the bug"),
        ToolCall("c1", "read_file", {"path": "src/app.py"}),
        ToolResult("c1", "read 120 lines of src/app.py", "x = 1\n" * 120),
        Message("assistant", "Found it. Patching now."),
        ToolCall("c2", "edit_file", {"path": "src/app.py", "old": "x = 1", "new": "x = 2"}),
        ToolResult("c2", "edited src/app.py"),
        Message("assistant", "Done."),
    ]
    usages = [Usage(1, 900), Usage(3, 1500), Usage(6, 1650)]
    incremental = TokenTimeline()
    incremental.extend_history(items[:1])
    incremental.add_usage(usages[0])
    incremental.extend_history(items[1:3])
    incremental.add_usage(usages[1])
    incremental.extend_history(items[3:6])
    incremental.add_usage(usages[2])
    incremental.extend_history(items[6:])
    scratch = TokenTimeline(items, usages)
    assert len(incremental) == len(scratch) == len(items)
    for n in range(len(items) + 1):
        assert incremental.estimate(n) == scratch.estimate(n)
        assert incremental.bytes_at(n) == sum(item_bytes(item) for item in items[:n])
