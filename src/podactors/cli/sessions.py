"""``podactors sessions``: inspect and maintain the sessions of a store."""

from __future__ import annotations

import functools
from pathlib import Path

import click
import trio
from rich.text import Text

from podactors.cli.options import is_store, json_option, open_store, store_option
from podactors.cli.views import (
    echo_json,
    entry_line,
    gc_summary,
    history_table,
    print_sessions,
    print_verify,
    progress_bar,
    run_verify,
    session_summary,
    state_json,
    stdout,
    to_jsonable,
    tool_names,
)
from podactors.store.replay import fold


@click.group()
def sessions() -> None:
    """Inspect and maintain the sessions of a store."""


@sessions.command("list")
@store_option
@json_option
def list_cmd(store_dir: Path, as_json: bool) -> None:
    """List every session: id, times, entries, size, objects and origin.

    A session whose ref cannot be read is listed as damaged (with the file and offset)
    beside the healthy ones, and the exit status is then 1.
    """
    infos = trio.run(open_store(store_dir).list_sessions) if is_store(store_dir) else []
    if as_json:
        echo_json(sorted(infos, key=lambda i: (i.created_at, i.session_id)))
    elif not infos:
        stdout().print(Text(f"no sessions in {store_dir} yet"))
    else:
        print_sessions(stdout(), infos)
    if any(info.damage is not None for info in infos):
        raise click.exceptions.Exit(1)


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
@click.option(
    "--at", type=click.IntRange(min=1), default=None, help="Entry count to fork at (default: all)."
)
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
