"""``podactors run``, ``chat``, ``serve`` and ``attach``: the pods of manifests."""

from __future__ import annotations

import contextlib
import functools
import signal
from collections.abc import Sequence
from pathlib import Path

import click
import trio
from rich.console import Console
from rich.table import Table
from rich.text import Text

from podactors.cli.options import (
    EXIT_CODES,
    INTERRUPTED_EXIT,
    load_pod_manifest,
    manifest_option,
    new_option,
    store_flag,
    store_option,
)
from podactors.cli.terminal import (
    EventRenderer,
    PodRepl,
    catch_interrupts,
    stream_turn,
)
from podactors.cli.views import (
    plural,
    stdout,
)
from podactors.client import open_remote
from podactors.errors import PodactorsError
from podactors.fileio import write_atomic
from podactors.handle import PodHandle
from podactors.manifest import Manifest
from podactors.protocol import RunResult
from podactors.runtime.supervisor import TOKEN_FILE, Supervisor, open_supervisor
from podactors.server import WebsocketServer

# --- pods from manifests ----------------------------------------------------------------


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


@click.command("run")
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


@click.command()
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


@click.command()
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


@click.command()
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
