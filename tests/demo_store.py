"""A session store built offline for the CLI tests: what a pod would have written.

One agent session of two turns (reading a file, running tests, fixing a failure), appended
one step at a time the way a pod persists a run, then forked at its head and in the middle,
and compacted into a new session whose origin is the old head.
"""

from __future__ import annotations

from collections.abc import Sequence

from podactors.items import (
    HistoryItem,
    Message,
    Notification,
    Reasoning,
    RequestConfig,
    ToolCall,
    ToolResult,
)
from podactors.store.entries import (
    Extension,
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
from podactors.store.fs import FsStore
from podactors.store.replay import SessionState

SYSTEM_PROMPT = """\
You are a careful coding agent working in the repository at /work/demo.
Read before you write, run the tests after every change, and keep answers short."""

CONFIG = RequestConfig(model="demo-model", max_tokens=4096, temperature=0.2)

README = """\
# tinycalc

A tiny calculator library: `add`, `sub`, `mul`, `div` over integers and floats.

## Install

    pip install -e .

## Usage

    >>> from tinycalc import div
    >>> div(7, 2)
    3.5

Division by zero raises `ZeroDivisionError` with a clear message.
Run the tests with `pytest -q`.
"""

PYTEST_FAILED = """\
....F...                                                                 [100%]
=================================== FAILURES ===================================
_______________________________ test_div_by_zero _______________________________

    def test_div_by_zero():
        with pytest.raises(ZeroDivisionError, match="cannot divide 7 by zero"):
>           div(7, 0)

tests/test_calc.py:31:
_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _

a = 7, b = 0

    def div(a: float, b: float) -> float:
>       return a / b
E       ZeroDivisionError: division by zero

src/tinycalc/ops.py:14: ZeroDivisionError

During handling of the above exception, another exception occurred:

    def test_div_by_zero():
>       with pytest.raises(ZeroDivisionError, match="cannot divide 7 by zero"):
E       AssertionError: Regex pattern did not match.
E        Regex: 'cannot divide 7 by zero'
E        Input: 'division by zero'

tests/test_calc.py:30: AssertionError
=========================== short test summary info ============================
FAILED tests/test_calc.py::test_div_by_zero - AssertionError: Regex pattern did not match.
1 failed, 7 passed in 0.04s
"""

OPS_PY = '''\
"""The four operations."""


def add(a: float, b: float) -> float:
    return a + b


def sub(a: float, b: float) -> float:
    return a - b


def mul(a: float, b: float) -> float:
    return a * b


def div(a: float, b: float) -> float:
    return a / b
'''

FIXED_DIV = """\
def div(a: float, b: float) -> float:
    if b == 0:
        raise ZeroDivisionError(f"cannot divide {a} by zero")
    return a / b
"""

PYTEST_PASSED = """\
........                                                                 [100%]
8 passed in 0.03s
"""


def _turn_one() -> list[list[LogEntry]]:
    """Turn 1: read the README and summarise it. One list per append, like a pod."""
    return [
        [UserInput("What does this project do? Keep it to two sentences.")],
        [
            Item(Reasoning("I should read the README before answering.", signature="sig-demo-1")),
            Item(ToolCall("call-1", "read_file", {"path": "README.md"})),
            Usage(history_len=1, input_total=1_850, cache_write=1_600, output=64),
        ],
        [Item(ToolResult("call-1", "README.md: 17 lines", README))],
        [
            Item(
                Message(
                    "assistant",
                    "tinycalc is a tiny calculator library offering add, sub, mul and div "
                    "over integers and floats.\nDivision by zero is meant to raise a "
                    "ZeroDivisionError with a clear message; tests run with `pytest -q`.",
                )
            ),
            Usage(history_len=4, input_total=2_310, cache_read=1_600, output=58),
        ],
        [TurnEnd(), Outcome("finished")],
    ]


def _turn_two() -> list[list[LogEntry]]:
    """Turn 2: run the tests, read the failing code, fix it, re-run. One list per append."""
    edit = {"path": "src/tinycalc/ops.py", "old": "    return a / b\n", "new": FIXED_DIV}
    return [
        [UserInput("Run the tests and fix whatever fails.")],
        [
            Item(Reasoning("Run the suite first to see what fails.", signature="sig-demo-2")),
            Item(ToolCall("call-2", "bash", {"command": "pytest -q", "timeout": 120})),
            Usage(history_len=7, input_total=2_420, cache_read=2_250, output=41),
        ],
        [Item(ToolResult("call-2", "exit 1: 1 failed, 7 passed", PYTEST_FAILED, is_error=True))],
        [SystemItem(Notification("CI: build #418 on main finished (green)", source="ci"))],
        [
            Item(ToolCall("call-3", "read_file", {"path": "src/tinycalc/ops.py"})),
            Usage(history_len=10, input_total=3_480, cache_read=2_400, output=37),
        ],
        [Item(ToolResult("call-3", "src/tinycalc/ops.py: 17 lines", OPS_PY))],
        [
            Item(Reasoning("div must raise with the message the test expects.")),
            Item(ToolCall("call-4", "edit_file", edit)),
            Usage(history_len=12, input_total=3_760, cache_read=3_450, output=112),
        ],
        [Item(ToolResult("call-4", "src/tinycalc/ops.py: 1 replacement", "ok"))],
        [Extension.of("metrics", {"name": "prune.skip", "reason": "below_min_savings"})],
        [
            Item(ToolCall("call-5", "bash", {"command": "pytest -q", "timeout": 120})),
            Usage(history_len=15, input_total=3_990, cache_read=3_740, output=35),
        ],
        [Item(ToolResult("call-5", "exit 0: 8 passed", PYTEST_PASSED))],
        [
            Item(
                Message(
                    "assistant",
                    "Fixed: `div` now raises `ZeroDivisionError('cannot divide 7 by zero')`, "
                    "as the README promises. All 8 tests pass.",
                )
            ),
            Usage(history_len=17, input_total=4_120, cache_read=3_960, output=48),
        ],
        [TurnEnd(), Outcome("finished")],
    ]


async def _append_steps(
    store: FsStore, session_id: str, head: str, steps: Sequence[Sequence[LogEntry]]
) -> str:
    for step in steps:
        head = await store.append(session_id, step, head)
    return head


def _compacted_history(state: SessionState, keep: int) -> list[HistoryItem]:
    """A summary message followed by the last ``keep`` items, starting at a whole item.

    The tail never starts with a tool result, so a call is never split from its result.
    """
    tail = state.history[-keep:]
    while tail and isinstance(tail[0], ToolResult):
        tail = tail[1:]
    summary = Message(
        "system",
        "Summary of the session so far: the user asked what tinycalc does (a small "
        "calculator library; README read and summarised), then asked to run the tests. "
        "test_div_by_zero failed because div raised the default message; div in "
        "src/tinycalc/ops.py was edited to raise 'cannot divide {a} by zero'.",
    )
    return [summary, *tail]


async def build_demo_store(store: FsStore) -> list[str]:
    """Write a realistic two-turn agent session into ``store``, then fork and compact it.

    Returns the ids of the sessions created, in order: the agent session, its fork at
    the head (shares every object), its fork in the middle of turn 2 (writes one prefix
    object) and its compacted successor (origin ``compacted_from``). The session is
    packed at each turn end so the store holds objects, one of them superseded by a
    merge (garbage that ``gc`` removes). Raises what the store raises.
    """
    created = await store.create_session(session_start(SYSTEM_PROMPT, config=CONFIG))
    session_id, head = created.session_id, created.head
    head = await _append_steps(store, session_id, head, _turn_one())
    await store.pack(session_id)
    turn_two = _turn_two()
    head = await _append_steps(store, session_id, head, turn_two)
    await store.pack(session_id)

    at_head = await store.fork(session_id)
    entries = (await store.restore(session_id)).entry_count
    retry_point = entries - sum(len(step) for step in turn_two[-4:])
    mid = await store.fork(session_id, retry_point)

    state = await store.restore(session_id)
    state.history = _compacted_history(state, keep=4)
    origin = Origin("compacted_from", session_id, head=head, at=state.entry_count)
    compacted = await store.create_compacted(state, origin)
    return [session_id, at_head.session_id, mid.session_id, compacted.session_id]
