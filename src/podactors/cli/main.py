"""The ``podactors`` command: pods on the terminal, and a session store's maintenance.

``demo`` plays an offline pod session against a local model stand-in; ``run`` and ``chat``
drive the pod of a manifest, streaming its events; ``serve`` puts pods on a websocket and
``attach`` talks to one there; ``sessions`` inspects and maintains the store. Every command
takes ``--store DIR`` (default ``./.podactors``, or ``$PODACTORS_STORE``). Errors become one
``error: ...`` line on stderr and exit status 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import signal
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import trio
from rich.console import Console
from rich.table import Table
from rich.text import Text

from podactors.cli.demo import PROJECT_DIR, DemoReport, DemoSetup, DemoStep, run_demo
from podactors.cli.terminal import (
    EventRenderer,
    PodRepl,
    catch_interrupts,
    stream_turn,
)
from podactors.cli.views import (
    echo_json,
    entry_line,
    gc_summary,
    history_table,
    human_bytes,
    plural,
    print_sessions,
    print_verify,
    progress_bar,
    run_verify,
    session_summary,
    state_json,
    stderr,
    stdout,
    to_jsonable,
    tool_names,
)
from podactors.client import open_remote
from podactors.errors import PodactorsError, StoreError, single_error
from podactors.fileio import write_atomic
from podactors.handle import PodHandle
from podactors.manifest import PROJECT_MANIFEST, Manifest, find_project_manifest, load_manifest
from podactors.protocol import RunResult
from podactors.runtime.supervisor import TOKEN_FILE, Supervisor, open_supervisor
from podactors.server import WebsocketServer
from podactors.store.fs import FsStore
from podactors.store.replay import fold

DEFAULT_STORE = "./.podactors"

USER_ERRORS = (PodactorsError, ValueError, OSError)
"""Errors shown as one ``error:`` line (exit 2) instead of a traceback."""

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES: dict[str, int] = {
    "finished": 0,
    "error": 1,
    "limit_reached": 3,
    "paused": 4,
    "cancelled": 130,
}
"""The exit status of ``run`` for each run outcome."""
INTERRUPTED_EXIT = 130
"""The exit status when Ctrl-C stopped a command."""


# --- errors, shared options ------------------------------------------------------------


def _fail(exc: BaseException) -> NoReturn:
    message = str(exc).replace("\n", " ") or type(exc).__name__
    stderr().print(Text(f"error: {message}", style="red"))
    raise click.exceptions.Exit(2)


class _Cli(click.Group):
    """The top-level group: podactors, value and OS errors become one red line; Ctrl-C, 130.

    Errors raised inside the commands' nurseries arrive in exception groups; the first
    user error in a group is reported the same way.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            _fail(exc)
        except KeyboardInterrupt:
            _interrupted()
        except BaseExceptionGroup as group:
            if group.subgroup(KeyboardInterrupt) is not None:
                _interrupted()
            user_errors = group.subgroup(USER_ERRORS)
            if user_errors is None:
                raise
            _fail(single_error(user_errors))


def _interrupted() -> NoReturn:
    stderr().print(Text("interrupted", style="yellow"))
    raise click.exceptions.Exit(INTERRUPTED_EXIT)


def store_option(fn: F) -> F:
    """The ``--store DIR`` option every command takes."""
    option = click.option(
        "--store",
        "store_dir",
        type=click.Path(path_type=Path),
        metavar="DIR",
        default=DEFAULT_STORE,
        envvar="PODACTORS_STORE",
        show_default=True,
        show_envvar=True,
        help="Session store directory.",
    )
    return option(fn)


def json_option(fn: F) -> F:
    """The ``--json`` flag: machine-readable output on stdout."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(fn)


def is_store(path: Path) -> bool:
    """True when ``path`` holds a ``FORMAT`` file that names a podactors store."""
    try:
        return (path / "FORMAT").read_bytes().startswith(b"podactors-store")
    except (FileNotFoundError, NotADirectoryError):
        return False


def open_store(path: Path) -> FsStore:
    """The existing store at ``path``; raises :class:`StoreError` rather than create one."""
    if not is_store(path):
        raise StoreError(f"no podactors store at {path} (try 'podactors demo --store {path}')")
    return FsStore(path)


# --- commands -------------------------------------------------------------------------


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="podactors", prog_name="podactors")
def main() -> None:
    """podactors: trio-native actor framework for long-running LLM agent pods."""


@main.group()
def sessions() -> None:
    """Inspect and maintain the sessions of a store."""


@sessions.command("list")
@store_option
@json_option
def list_cmd(store_dir: Path, as_json: bool) -> None:
    """List every session: id, times, entries, size, objects and origin."""
    infos = trio.run(open_store(store_dir).list_sessions) if is_store(store_dir) else []
    if as_json:
        echo_json(sorted(infos, key=lambda i: (i.created_at, i.session_id)))
    elif not infos:
        stdout().print(Text(f"no sessions in {store_dir} yet"))
    else:
        print_sessions(stdout(), infos)


@sessions.command("show")
@click.argument("session_id")
@store_option
@json_option
@click.option("--entries", is_flag=True, help="Print every log entry, one per line.")
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many of the last history items to print.",
)
def show_cmd(store_dir: Path, session_id: str, as_json: bool, entries: bool, limit: int) -> None:
    """Summarise a session and print its last history items (or every log entry)."""
    log = trio.run(open_store(store_dir).read_entries, session_id)
    state = fold(log)
    if as_json:
        echo_json(state_json(state))
        return
    console = stdout()
    console.print(session_summary(session_id, state))
    if entries:
        names = tool_names(state.history)
        for index, entry in enumerate(log):
            console.print(Text(entry_line(index, entry, names)))
    elif limit:
        console.print(history_table(state.history, limit))


@sessions.command("fork")
@click.argument("session_id")
@store_option
@json_option
@click.option("--at", type=int, default=None, help="Entry count to fork at (default: all).")
def fork_cmd(store_dir: Path, session_id: str, as_json: bool, at: int | None) -> None:
    """Fork a session at its head (free) or after its first AT entries."""
    ref = trio.run(open_store(store_dir).fork, session_id, at)
    if as_json:
        echo_json(ref)
    else:
        where = "head" if at is None else f"entry {at}"
        click.echo(f"{ref.session_id}  (forked from {session_id} at {where}; head {ref.head})")


@sessions.command("verify")
@store_option
@json_option
def verify_cmd(store_dir: Path, as_json: bool) -> None:
    """Re-hash every object and check every ref; exit 1 and name each damaged file."""
    report = run_verify(open_store(store_dir))
    if as_json:
        echo_json({"ok": report.ok, **to_jsonable(report)})
    else:
        print_verify(stdout(), report)
    if not report.ok:
        raise click.exceptions.Exit(1)


@sessions.command("gc")
@store_option
@json_option
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help="Keep unreachable objects younger than this.",
)
def gc_cmd(store_dir: Path, as_json: bool, grace: float) -> None:
    """Remove objects no session reaches, and stale temp files, older than the grace period."""
    store = open_store(store_dir)
    with progress_bar("collecting") as update:
        report = trio.run(functools.partial(store.gc, grace=grace, progress=update))
    if as_json:
        echo_json(report)
    else:
        stdout().print(Text(gc_summary(report)))


# --- pods from manifests ----------------------------------------------------------------


NO_MANIFEST = """\
Pass --manifest FILE, or create .podactors/manifest.toml in this project, for example:

    [pod]
    name = "alice"

    [model]
    provider = "anthropic"   # the key comes from $ANTHROPIC_API_KEY

    [[scope.allow]]
    target = "."
    permission = "write"

Every key is described in docs/manifest.md. 'podactors demo' runs offline, no manifest needed."""


def load_pod_manifest(path: Path | None) -> Manifest:
    """The manifest through the cascade from the working directory, ``path`` on top.

    Without ``path`` and without a project manifest, prints how to write one and exits 2.
    """
    cwd = Path.cwd()
    if path is None and find_project_manifest(cwd) is None:
        console = stderr()
        console.print(Text("error: no manifest for a pod", style="red"))
        console.print(Text(NO_MANIFEST))
        raise click.exceptions.Exit(2)
    return load_manifest(path, cwd=cwd)


async def start_pod(supervisor: Supervisor, manifest: Manifest, *, new: bool = False) -> PodHandle:
    """The manifest's pod, restored by name when the store knows it (unless ``new``)."""
    name = manifest.pod.name
    if new or await supervisor.store.get_pod_ref(name) is None:
        return await supervisor.spawn(manifest)
    return await supervisor.restore(name, manifest)


async def describe_pod(pod: PodHandle) -> str:
    """``new session``, or which session the pod continues and its turns so far."""
    snapshot = await pod.snapshot()
    if snapshot.session_id is None:
        return "new session"
    return f"continuing session {snapshot.session_id} ({plural(snapshot.turn_count, 'turn')})"


async def introduce_pod(pod: PodHandle, console: Console) -> None:
    """Print ``pod alice: new session`` (or the session it continues)."""
    console.print(Text(f"pod {pod.name}: {await describe_pod(pod)}", style="dim"))


def store_flag(store_dir: Path) -> str:
    """`` --store DIR`` for hints, or nothing for the default store."""
    return "" if Path(store_dir) == Path(DEFAULT_STORE) else f" --store {store_dir}"


def manifest_option(fn: F) -> F:
    """The ``--manifest FILE`` option of ``run`` and ``chat``."""
    return click.option(
        "--manifest",
        "-m",
        "manifest_path",
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="FILE",
        default=None,
        help="Pod manifest, over ~/.config/podactors and .podactors/manifest.toml layers.",
    )(fn)


def new_option(fn: F) -> F:
    """The ``--new`` flag: a fresh session even when the store knows the pod."""
    return click.option(
        "--new", is_flag=True, help="Start a new session instead of continuing the pod's."
    )(fn)


# --- run --------------------------------------------------------------------------------


async def run_task(
    store_dir: Path, manifest: Manifest, task: str, *, new: bool, console: Console
) -> RunResult | None:
    """Run ``task`` on the manifest's pod, streamed; ``None`` when Ctrl-C came before it."""
    renderer = EventRenderer(console)
    async with catch_interrupts() as interrupts, open_supervisor(store_dir) as supervisor:
        pod = await start_pod(supervisor, manifest, new=new)
        await introduce_pod(pod, console)
        renderer.user(task)
        return await stream_turn(pod, functools.partial(pod.start_run, task), renderer, interrupts)
    return None


@main.command("run")
@click.argument("task")
@manifest_option
@store_option
@new_option
def run_cmd(task: str, manifest_path: Path | None, store_dir: Path, new: bool) -> None:
    """Run TASK on the manifest's pod and stream it.

    The exit status tells how the run ended: 0 finished, 1 error, 3 limit reached,
    4 paused, 130 cancelled. Ctrl-C cancels the run; the pod persists it as
    interrupted. The pod continues its session when the store knows it.
    """
    manifest = load_pod_manifest(manifest_path)
    console = stdout()
    result = trio.run(
        functools.partial(run_task, store_dir, manifest, task, new=new, console=console)
    )
    if result is None:
        raise click.exceptions.Exit(INTERRUPTED_EXIT)
    hint = f"podactors sessions show {result.session_id}{store_flag(store_dir)}"
    console.print(Text(f"session {result.session_id} · {hint}", style="dim"))
    raise click.exceptions.Exit(EXIT_CODES[result.outcome])


# --- chat -------------------------------------------------------------------------------


async def chat_session(store_dir: Path, manifest: Manifest, *, new: bool, console: Console) -> None:
    """Chat with the manifest's pod until the user leaves."""
    async with catch_interrupts() as interrupts, open_supervisor(store_dir) as supervisor:
        pod = await start_pod(supervisor, manifest, new=new)
        await introduce_pod(pod, console)
        repl = PodRepl(pod, console, interrupts, EventRenderer(console), wait_for_turns=True)
        console.print(Text(repl.help_text(), style="dim"))
        await repl.run()


@main.command()
@manifest_option
@store_option
@new_option
def chat(manifest_path: Path | None, store_dir: Path, new: bool) -> None:
    """Talk to the manifest's pod, one streamed turn per line.

    Ctrl-C cancels a running turn; Ctrl-C or Ctrl-D at the prompt (or /quit) leaves.
    /notify TEXT and /history are available too.
    """
    manifest = load_pod_manifest(manifest_path)
    console = stdout()
    trio.run(functools.partial(chat_session, store_dir, manifest, new=new, console=console))
    console.print(Text("bye", style="dim"))


# --- serve --------------------------------------------------------------------------------


URL_FILE = "websocket.url"
"""Where ``serve`` writes its URL, under the store root, for ``attach`` to find."""


def write_url_file(root: Path, url: str) -> Path:
    """Write ``url`` to ``<root>/websocket.url`` atomically; returns the path."""
    path = root / URL_FILE
    write_atomic(path, (url + "\n").encode())
    return path


def remove_url_file(path: Path, url: str) -> None:
    """Remove the URL file if it still names ``url`` (another server may have replaced it)."""
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8").strip() == url:
            path.unlink()


def serving_summary(
    pods: Sequence[tuple[PodHandle, str]], server: WebsocketServer, url_file: Path, show: bool
) -> Table:
    """What ``serve`` serves, where the token and the URL are, and how to attach."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for pod, description in pods:
        grid.add_row(f"pod {pod.name}", description)
    token_file = str(server.token_file)
    grid.add_row("token", server.token if show else f"in {token_file} (--show-token prints it)")
    grid.add_row("url file", str(url_file))
    grid.add_row("attach", f"podactors attach {pods[0][0].name}{store_flag(url_file.parent)}")
    return grid


async def serve_pods(
    store_dir: Path,
    manifests: Sequence[Manifest],
    *,
    host: str,
    port: int,
    show_token: bool,
    console: Console,
) -> None:
    """Serve the manifests' pods over websocket until Ctrl-C or SIGTERM."""
    async with catch_interrupts(signal.SIGTERM), open_supervisor(store_dir) as supervisor:
        pods = [await start_pod(supervisor, manifest) for manifest in manifests]
        described = [(pod, await describe_pod(pod)) for pod in pods]
        server = await supervisor.serve_websocket(host, port)
        url_file = write_url_file(supervisor.store.root, server.url)
        try:
            console.print(Text(f"serving at {server.url} (Ctrl-C stops)", style="bold"))
            console.print(serving_summary(described, server, url_file, show_token))
            await trio.sleep_forever()
        finally:
            remove_url_file(url_file, server.url)


@main.command()
@click.option(
    "--manifest",
    "-m",
    "manifest_paths",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    multiple=True,
    help="A pod manifest (repeat for more pods); default: the project manifest.",
)
@store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Port (default: any).")
@click.option("--show-token", is_flag=True, help="Print the bearer token too.")
def serve(
    manifest_paths: tuple[Path, ...], store_dir: Path, host: str, port: int, show_token: bool
) -> None:
    """Serve pods over websocket until Ctrl-C.

    Clients connect with 'podactors attach' or podactors.client. Each pod continues
    its session when the store knows it. The bearer token is written to
    <store>/websocket.token (owner-only) and the URL to <store>/websocket.url.
    """
    paths: Sequence[Path | None] = manifest_paths or [None]
    manifests = [load_pod_manifest(path) for path in paths]
    console = stdout()
    trio.run(
        functools.partial(
            serve_pods,
            store_dir,
            manifests,
            host=host,
            port=port,
            show_token=show_token,
            console=console,
        )
    )
    console.print(Text("stopped; every pod's state is persisted", style="dim"))


# --- attach -------------------------------------------------------------------------------


def read_server_file(path: Path, what: str, store_dir: Path) -> str:
    """The stripped content of a file ``serve`` wrote, or a clear error naming it."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise PodactorsError(
            f"no {what} at {path}: is 'podactors serve{store_flag(store_dir)}' running?"
        ) from None


async def attach_pod(url: str, token: str, name: str, console: Console) -> None:
    """Attach to ``name`` at ``url``: print its events, send typed lines, until detached."""
    renderer = EventRenderer(console, show_snapshot=True)
    async with catch_interrupts() as interrupts, open_remote(url, token) as remote:
        pod = await remote.pod(name)
        repl = PodRepl(pod, console, interrupts, renderer, wait_for_turns=False)
        console.print(Text(f"attached to {name} at {url}. {repl.help_text()}", style="dim"))
        await repl.run()


@main.command()
@click.argument("name")
@store_option
@click.option("--url", default=None, help="Server URL (default: from <store>/websocket.url).")
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="File holding the bearer token (default: <store>/websocket.token).",
)
@click.option("--token", default=None, envvar="PODACTORS_TOKEN", help="The bearer token itself.")
def attach(
    name: str, store_dir: Path, url: str | None, token_file: Path | None, token: str | None
) -> None:
    """Watch and talk to the pod NAME of a running 'podactors serve'.

    Events print as they come; each line typed is a run (or /cancel, /pause, /resume,
    /notify TEXT). The URL and token come from the files 'serve' wrote in the store,
    unless given. At the end of piped input, attach waits for the turn it started.
    """
    url = url or read_server_file(store_dir / URL_FILE, "server URL", store_dir)
    if token is None:
        path = token_file or store_dir / TOKEN_FILE
        token = read_server_file(path, "token file", store_dir)
    trio.run(attach_pod, url, token, name, stdout())


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


@main.command()
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


if __name__ == "__main__":
    main()
