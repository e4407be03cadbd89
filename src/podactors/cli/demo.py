"""The offline demo: a pod fixes a bug in a small project, talking to a local model stand-in.

:func:`run_demo` writes a three-file project (a README, ``src/calc.py`` with a bug and a
test script), starts the Anthropic stand-in (:class:`~podactors.testing.standin.StandinServer`,
the real wire format over real HTTP on loopback) with a scripted conversation, and spawns
a pod whose ``anthropic`` provider points at it, with write scope on the project. It then
plays :data:`DEMO_STEPS`: two user turns and a notification that starts a third. The
model's tool calls (``read_file``, ``bash``, ``edit_file``) are executed for real by the
builtin tools, and every step is persisted to the store. How turns are shown is up to a
:class:`DemoView` (the CLI streams them to the terminal).

The stand-in plays one scripted reply per LLM call, in order, so :func:`demo_script`
lines up with the steps: a reply with tool calls is followed by the reply the model gives
once it has seen their results.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Protocol

import attrs
import trio

from podactors.errors import PodactorsError
from podactors.handle import PodHandle, RunTicket
from podactors.llm.scripted import ScriptedReply, ScriptedToolCall, ScriptedUsage
from podactors.manifest import Manifest
from podactors.protocol import RunResult
from podactors.runtime.supervisor import open_supervisor
from podactors.store import FsStore
from podactors.store.fs import SessionInfo
from podactors.testing import StandinServer

POD_NAME = "demo"
PROJECT_DIR = "demo-project"
"""Where the demo project is written, under the store root."""
MODEL = "claude-sonnet-4-5"
TEST_COMMAND = "python3 tests/test_calc.py"

README = """\
# tinycalc

A tiny calculator library: `add`, `sub`, `mul` and `div`, in `src/calc.py`.

`div` raises `ZeroDivisionError` when the divisor is zero.

The tests are a plain script (no pytest needed):

    python3 tests/test_calc.py
"""

BUGGY_SUB = "def sub(a, b):\n    return a + b\n"
FIXED_SUB = "def sub(a, b):\n    return a - b\n"

CALC_PY = f'''\
"""tinycalc: four operations on numbers."""


def add(a, b):
    return a + b


{BUGGY_SUB}

def mul(a, b):
    return a * b


def div(a, b):
    if b == 0:
        raise ZeroDivisionError("cannot divide by zero")
    return a / b
'''

TEST_CALC_PY = '''\
"""The tests of tinycalc; run them with `python3 tests/test_calc.py`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from calc import add, div, mul, sub  # noqa: E402


def test_add():
    assert add(2, 3) == 5


def test_sub():
    assert sub(7, 4) == 3, f"sub(7, 4) returned {sub(7, 4)}, expected 3"


def test_mul():
    assert mul(6, 7) == 42


def test_div():
    assert div(9, 3) == 3


if __name__ == "__main__":
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_")]
    failed = 0
    for name, test in tests:
        try:
            test()
        except AssertionError as exc:
            failed += 1
            print(f"FAIL {name}: {exc}")
        else:
            print(f"ok   {name}")
    print(f"{len(tests) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
'''

PROJECT_FILES = {"README.md": README, "src/calc.py": CALC_PY, "tests/test_calc.py": TEST_CALC_PY}

INSTRUCTION = """\
You are {{ pod }}, a careful coding agent working in {{ workdir }}.
Tools: {{ tools | join(', ') }}. File scope: {{ scope }}.
Read before you edit, keep changes minimal, and run the tests after every change.\
"""


@attrs.frozen
class DemoStep:
    """One turn of the demo: user input, or a notification from ``source`` (which starts
    a turn, since the pod is idle)."""

    text: str
    source: str | None = None

    @property
    def is_notification(self) -> bool:
        """True for a notification, false for user input."""
        return self.source is not None

    async def start(self, pod: PodHandle) -> RunTicket:
        """Start this step's turn on ``pod``; returns the turn's ticket."""
        if self.source is None:
            return await pod.start_run(self.text)
        ticket = await pod.notify(self.text, source=self.source)
        if ticket is None:
            raise PodactorsError(f"pod {pod.name} was busy: the notification started no turn")
        return ticket


DEMO_STEPS = (
    DemoStep("What is this project, and how are its tests run?"),
    DemoStep("Run the tests and fix whatever fails."),
    DemoStep("build #418 on main passed (4 jobs, 2m 10s)", source="ci"),
)
"""The turns the demo plays, in order."""


def _call(name: str, **arguments: object) -> list[ScriptedToolCall]:
    return [ScriptedToolCall(name, dict(arguments))]


def _usage(prompt: int, cached: int, output: int, written: int = 0) -> ScriptedUsage:
    """Usage of a call whose prompt has ``prompt`` tokens in all, ``written`` of them newly
    cached (the stand-in reports those apart, as Anthropic does)."""
    return ScriptedUsage(
        input_tokens=prompt - written, output_tokens=output, cache_read=cached, cache_write=written
    )


def _turn_one() -> list[ScriptedReply]:
    return [
        ScriptedReply(
            thinking="An overview question: the README is the place to start.",
            text="Let me read the README.",
            tool_calls=_call("read_file", path="README.md"),
            usage=_usage(1_912, 0, 58, written=1_650),
        ),
        ScriptedReply(
            text="tinycalc is a tiny calculator library with four functions, `add`, `sub`, "
            "`mul` and `div`, in `src/calc.py`; `div` raises `ZeroDivisionError` on a zero "
            f"divisor. Its tests are a plain script, run with `{TEST_COMMAND}`.",
            usage=_usage(2_301, 1_650, 61),
        ),
    ]


def _turn_two() -> list[ScriptedReply]:
    return [
        ScriptedReply(
            text="Running the tests first.",
            tool_calls=_call("bash", command=TEST_COMMAND, timeout=60),
            usage=_usage(2_398, 2_250, 40),
        ),
        ScriptedReply(
            text="`test_sub` fails: `sub(7, 4)` returned 11. Let me look at `sub`.",
            tool_calls=_call("read_file", path="src/calc.py"),
            usage=_usage(2_590, 2_380, 44),
        ),
        ScriptedReply(
            thinking="sub adds its arguments instead of subtracting them: a one-line fix.",
            text="`sub` returns `a + b`; it should subtract.",
            tool_calls=_call("edit_file", path="src/calc.py", old=BUGGY_SUB, new=FIXED_SUB),
            usage=_usage(2_870, 2_570, 96),
        ),
        ScriptedReply(
            text="Re-running the tests.",
            tool_calls=_call("bash", command=TEST_COMMAND, timeout=60),
            usage=_usage(3_015, 2_850, 38),
        ),
        ScriptedReply(
            text="Fixed: `sub` in `src/calc.py` returned `a + b` and now returns `a - b`. "
            "All 4 tests pass.",
            usage=_usage(3_160, 3_000, 47),
        ),
    ]


def _turn_three() -> list[ScriptedReply]:
    return [
        ScriptedReply(
            text="Noted: CI build #418 on main passed. It ran before my change to `sub`, "
            "so the next build will be the first to check the fix; `src/calc.py` is the "
            "only file I changed.",
            usage=_usage(3_240, 3_140, 52),
        )
    ]


def demo_script() -> list[ScriptedReply]:
    """The model's replies, one per LLM call, lined up with :data:`DEMO_STEPS`."""
    return [*_turn_one(), *_turn_two(), *_turn_three()]


def write_project(directory: Path) -> Path:
    """(Re)create the demo project in ``directory``, bug included; returns it."""
    if directory.exists():
        shutil.rmtree(directory)
    for name, text in PROJECT_FILES.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return directory


def demo_manifest(base_url: str, project: Path) -> Manifest:
    """The demo pod: ``anthropic`` at ``base_url`` (no API key), write scope on ``project``."""
    return Manifest.from_toml(
        f"""
[pod]
name = "{POD_NAME}"
restart = "temporary"

[model]
provider = "anthropic"
model = "{MODEL}"
base_url = "{base_url}"
api_key_env = "PODACTORS_DEMO_API_KEY"  # unset: the stand-in asks for no key

[worker]
instruction = '''{INSTRUCTION}'''
max_turns = 10

[[scope.allow]]
target = "."
permission = "write"
""",
        base_dir=project,
    )


@attrs.frozen
class DemoSetup:
    """What the demo started: the stand-in's URL, the project, the store and the pod."""

    standin_url: str
    project: Path
    store: Path
    pod: str
    model: str


@attrs.frozen
class DemoReport:
    """What the demo did: each turn's result, the session it wrote, the project."""

    project: Path
    results: list[RunResult]
    session: SessionInfo
    turn_count: int
    llm_requests: int

    @property
    def ok(self) -> bool:
        """True when every turn finished and the bug is fixed on disk."""
        finished = all(result.outcome == "finished" for result in self.results)
        return finished and self.fixed

    @property
    def fixed(self) -> bool:
        """True when ``src/calc.py`` holds the fix."""
        return FIXED_SUB in (self.project / "src/calc.py").read_text(encoding="utf-8")


class DemoView(Protocol):
    """How the demo is shown: told when it is set up, then asked to play each step."""

    def started(self, setup: DemoSetup) -> None:
        """The stand-in is serving and the pod is spawned."""

    async def play(self, pod: PodHandle, step: DemoStep) -> RunResult:
        """Run ``step`` on ``pod`` (``await step.start(pod)``), showing it; its result."""


async def run_demo(store: FsStore, view: DemoView) -> DemoReport:
    """Play the demo into ``store``: project, stand-in, pod, every step of :data:`DEMO_STEPS`.

    Raises what the pod or the store raises; a turn that does not finish is reported in
    the result, not raised.
    """
    project = write_project(store.root / PROJECT_DIR)
    server = StandinServer(demo_script())
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        async with open_supervisor(store) as supervisor:
            pod = await supervisor.spawn(demo_manifest(server.url, project))
            view.started(DemoSetup(server.url, project, store.root, pod.name, MODEL))
            results = [await view.play(pod, step) for step in DEMO_STEPS]
        nursery.cancel_scope.cancel()
    session_id = results[-1].session_id
    infos = {info.session_id: info for info in await store.list_sessions()}
    state = await store.restore(session_id)
    return DemoReport(project, results, infos[session_id], state.turn_count, len(server.requests))


__all__ = [
    "DEMO_STEPS",
    "PROJECT_DIR",
    "DemoReport",
    "DemoSetup",
    "DemoStep",
    "DemoView",
    "demo_manifest",
    "demo_script",
    "run_demo",
    "write_project",
]
