"""What the commands share: the store, the manifest, JSON output, exit codes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.text import Text

from podactors.cli.views import (
    stderr,
)
from podactors.errors import PodactorsError, StoreError
from podactors.manifest import Manifest, find_project_manifest, load_manifest
from podactors.store.fs import FsStore

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
