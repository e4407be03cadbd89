"""``podactors demo``: the offline demo on the terminal."""

from __future__ import annotations

import functools
import shutil
from collections import Counter
from pathlib import Path

import click
import trio
from rich.console import Console
from rich.table import Table
from rich.text import Text

from podactors.cli.demo import PROJECT_DIR, DemoReport, DemoSetup, DemoStep, run_demo
from podactors.cli.options import is_store, store_flag, store_option
from podactors.cli.terminal import (
    EventRenderer,
    stream_turn,
)
from podactors.cli.views import (
    human_bytes,
    plural,
    print_verify,
    run_verify,
    stdout,
)
from podactors.errors import StoreError
from podactors.handle import PodHandle
from podactors.manifest import PROJECT_MANIFEST
from podactors.protocol import RunResult
from podactors.store.fs import FsStore

# --- demo ---------------------------------------------------------------------------------


def remove_store(path: Path) -> None:
    """Delete the store at ``path``; refuses (``StoreError``) anything that is not a store,
    and a store that also holds a project manifest."""
    if not path.exists():
        return
    if not is_store(path):
        raise StoreError(f"refusing to delete {path}: not a podactors store (no FORMAT file)")
    if (path / PROJECT_MANIFEST.name).exists():
        raise StoreError(
            f"refusing to delete {path}: it holds {PROJECT_MANIFEST.name}, a project manifest"
        )
    shutil.rmtree(path)


def _check_demo_target(path: Path) -> None:
    """Refuse a ``--store`` that exists and is neither a store nor an unfinished demo's."""
    if not path.exists() or is_store(path):
        return
    leftovers = {child.name for child in path.iterdir()} if path.is_dir() else {""}
    if leftovers - {PROJECT_DIR}:
        raise StoreError(f"{path} exists and is not a podactors store; pick another --store")


class TerminalDemoView:
    """Shows the demo on a console: the setup, then every turn as it streams."""

    def __init__(self, console: Console):
        self.console = console
        self.renderer = EventRenderer(console)
        self.turns = 0

    def started(self, setup: DemoSetup) -> None:
        """Say what runs where."""
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        grid.add_row("model", f"{setup.model}, via the Anthropic stand-in at {setup.standin_url}")
        grid.add_row("", Text("(the real Messages wire format over HTTP; scripted replies)"))
        grid.add_row("project", f"{setup.project}: README.md, src/calc.py, tests/test_calc.py")
        grid.add_row("pod", f"{setup.pod}, with write scope on the project")
        grid.add_row("store", f"{setup.store} (every step is persisted as it happens)")
        self.console.print(Text("podactors demo: a pod fixes a bug, offline", style="bold"))
        self.console.print(grid)

    async def play(self, pod: PodHandle, step: DemoStep) -> RunResult:
        """Stream one turn of the demo."""
        self.turns += 1
        what = "a notification arrives" if step.is_notification else "you ask"
        self.console.print()
        self.console.rule(Text(f"turn {self.turns}: {what}", style="bold"), align="left")
        if not step.is_notification:
            self.renderer.user(step.text)
        return await stream_turn(pod, functools.partial(step.start, pod), self.renderer)


def demo_summary(report: DemoReport, store_dir: Path) -> Table:
    """What the demo left in the store and on disk."""
    info = report.session
    outcomes = Counter(result.outcome for result in report.results)
    finished = ", ".join(f"{n} {outcome}" for outcome, n in outcomes.items())
    calc = report.project / "src" / "calc.py"
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("session", Text(info.session_id, style="cyan"))
    grid.add_row("turns", f"{report.turn_count} ({finished}); {report.llm_requests} LLM requests")
    stored = f"{plural(info.objects, 'packed object')} + {plural(info.tail_records, 'record')}"
    grid.add_row(
        "entries", f"{info.entries}, in {stored} of the ref's tail; {human_bytes(info.bytes)}"
    )
    fixed = "fixed on disk (sub returns a - b)" if report.fixed else "NOT fixed"
    grid.add_row("project", Text(f"{calc}: {fixed}", style="" if report.fixed else "red"))
    return grid


def demo_hints(report: DemoReport, store_dir: Path) -> list[str]:
    """Commands to explore what the demo left."""
    session, flag = report.session.session_id, store_flag(store_dir)
    return [
        f"podactors sessions show {session}{flag}",
        f"podactors sessions show {session} --entries{flag}",
        f"podactors sessions fork {session} --at 10{flag}",
        f"python3 {report.project / 'tests' / 'test_calc.py'}",
    ]


@click.command()
@store_option
@click.option("--fresh", is_flag=True, help="Delete the store at DIR first (only a store).")
def demo(store_dir: Path, fresh: bool) -> None:
    """Watch a pod fix a bug, offline, in a few seconds.

    A local Anthropic stand-in plays a scripted model over real HTTP; the pod's tool calls
    (read_file, bash, edit_file) run for real on a demo project under the store, across
    three turns, one started by a notification. Every step is persisted; the store is
    verified at the end.
    """
    if fresh:
        remove_store(store_dir)
    _check_demo_target(store_dir)
    console = stdout()
    store = FsStore(store_dir)
    report = trio.run(run_demo, store, TerminalDemoView(console))
    console.print()
    console.rule(Text("persisted", style="bold"), align="left")
    console.print(demo_summary(report, store_dir))
    verified = run_verify(store)
    print_verify(console, verified)
    console.print(Text("explore it:", style="bold"))
    for hint in demo_hints(report, store_dir):
        console.print(Text(f"  {hint}"))
    if not (report.ok and verified.ok):
        raise click.exceptions.Exit(1)
