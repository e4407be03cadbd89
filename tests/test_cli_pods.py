"""The pod commands of `podactors`: demo, run, chat, serve and attach, end to end.

The CLI calls ``trio.run`` itself, so CliRunner tests are plain sync tests; the ones that
need real signals run the CLI as a subprocess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner, Result
from rich.console import Console

from podactors import protocol as proto
from podactors.cli import main
from podactors.cli.demo import FIXED_SUB, PROJECT_DIR
from podactors.cli.terminal import YOU, EventRenderer, content_preview
from podactors.client import open_client
from podactors.items import Notification, ToolCall, ToolResult
from podactors.store import FsStore
from podactors.store.entries import Item, LogEntry, Outcome, SystemItem, TurnEnd

ENV = {"COLUMNS": "100", "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "PODACTORS_STORE": None}
CLI = [sys.executable, "-m", "podactors.cli"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, and a home without a user manifest."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def cli(*args: str | Path, input: str | None = None) -> Result:
    return CliRunner(env=ENV).invoke(main, [str(a) for a in args], input=input)


def write_pod(directory: Path, replies: str, *, name: str = "alice", max_turns: int = 10) -> Path:
    """A manifest for a pod on the scripted provider, with ``replies`` as its script."""
    (directory / f"{name}-script.toml").write_text(replies)
    manifest = directory / f"{name}.toml"
    manifest.write_text(
        f"""
[pod]
name = "{name}"
[model]
provider = "scripted"
script = "{name}-script.toml"
[worker]
max_turns = {max_turns}
[[scope.allow]]
target = "."
permission = "write"
"""
    )
    return manifest


def reply(text: str = "", command: str | None = None) -> str:
    calls = f'tool_calls = [{{name = "bash", arguments = {{command = "{command}"}}}}]\n'
    return f'[[reply]]\ntext = "{text}"\n' + (calls if command else "")


async def read_pod_entries(root: Path, pod: str) -> list[LogEntry]:
    store = FsStore(root)
    ref = await store.get_pod_ref(pod)
    assert ref is not None
    return await store.read_entries(ref.session_id)


def pod_entries(root: Path, pod: str) -> list[LogEntry]:
    return trio.run(read_pod_entries, root, pod)


def outcomes(entries: list[LogEntry]) -> list[Outcome]:
    return [e for e in entries if isinstance(e, Outcome)]


# --- demo ---------------------------------------------------------------------------


def test_demo_runs_real_tools_persists_every_turn_and_fixes_the_bug(tmp_path: Path) -> None:
    root = tmp_path / "store"
    result = cli("demo", "--store", root)
    assert result.exit_code == 0, result.output

    entries = pod_entries(root, "demo")
    calls = [e.item for e in entries if isinstance(e, Item) and isinstance(e.item, ToolCall)]
    assert Counter(c.name for c in calls) == {"read_file": 2, "bash": 2, "edit_file": 1}
    names = {c.id: c.name for c in calls}
    results = [e.item for e in entries if isinstance(e, Item) and isinstance(e.item, ToolResult)]
    failed = {names[r.call_id] for r in results if r.is_error}
    assert failed == {"bash"}  # the first test run, before the fix
    assert {names[r.call_id] for r in results} == {"read_file", "bash", "edit_file"}
    notes = [e.item for e in entries if isinstance(e, SystemItem)]
    assert notes == [Notification("build #418 on main passed (4 jobs, 2m 10s)", source="ci")]
    assert sum(isinstance(e, TurnEnd) for e in entries) == 3
    assert [o.outcome for o in outcomes(entries)] == ["finished"] * 3

    project = root / PROJECT_DIR
    assert FIXED_SUB in (project / "src" / "calc.py").read_text()
    tests = subprocess.run(
        [sys.executable, "tests/test_calc.py"], cwd=project, capture_output=True, text=True
    )
    assert tests.returncode == 0, tests.stdout
    assert cli("sessions", "verify", "--store", root).exit_code == 0


def test_demo_streams_text_tool_calls_results_usage_and_a_summary(tmp_path: Path) -> None:
    result = cli("demo", "--store", tmp_path / "store")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in (
        f"{YOU} Run the tests and fix whatever fails.",
        '→ read_file path="README.md"',
        '→ bash command="python3 tests/test_calc.py"',
        "→ edit_file",
        "✗ exit code 1",
        "FAIL test_sub",
        "✓ exit code 0",
        "notification from ci: build #418",
        "All 4 tests pass.",
        "llm call 1: 1,912 in (1,650 written to cache) · 58 out",
        "✓ finished · 5 LLM calls",
        "fixed on disk",
        "ok: ",
    ):
        assert expected in out, expected
    shown = out[: out.index("explore it:")]  # the hints after it are whole commands
    assert max(len(line) for line in shown.splitlines()) <= 100


def test_demo_leftover_project_without_store_is_not_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    (root / PROJECT_DIR).mkdir(parents=True)
    result = cli("demo", "--store", root)
    assert result.exit_code == 0, result.output


# --- run ------------------------------------------------------------------------------


def test_run_finished_exits_zero_and_persists_the_run(project: Path) -> None:
    manifest = write_pod(project, reply("Checking.", "echo hi") + reply("It says hi."))
    result = cli("run", "--manifest", manifest, "--store", project / "store", "say hi")
    assert result.exit_code == 0, result.output
    assert f"{YOU} say hi" in result.stdout
    assert "It says hi." in result.stdout
    assert "✓ finished · 2 LLM calls" in result.stdout
    entries = pod_entries(project / "store", "alice")
    assert outcomes(entries) == [Outcome("finished")]


def test_run_limit_reached_exits_three(project: Path) -> None:
    loop = reply("Again.", "echo again") * 3
    manifest = write_pod(project, loop, max_turns=1)
    result = cli("run", "-m", manifest, "--store", project / "store", "loop")
    assert result.exit_code == 3, result.output
    assert "limit reached" in result.stdout
    assert outcomes(pod_entries(project / "store", "alice"))[-1].outcome == "limit_reached"


def test_run_provider_error_exits_one(project: Path) -> None:
    manifest = write_pod(project, "reply = []\n")
    result = cli("run", "-m", manifest, "--store", project / "store", "anything")
    assert result.exit_code == 1, result.output
    assert "script exhausted" in result.stdout


def test_run_continues_the_pods_session_unless_new(project: Path) -> None:
    manifest = write_pod(project, reply("One."))
    store = project / "store"
    assert cli("run", "-m", manifest, "--store", store, "first").exit_code == 0
    first = pod_entries(store, "alice")
    again = cli("run", "-m", manifest, "--store", store, "second")
    assert again.exit_code == 0, again.output
    assert "continuing session" in again.stdout
    assert pod_entries(store, "alice")[: len(first)] == first
    fresh = cli("run", "-m", manifest, "--store", store, "--new", "third")
    assert fresh.exit_code == 0, fresh.output
    assert "new session" in fresh.stdout
    assert len(outcomes(pod_entries(store, "alice"))) == 1


def test_run_uses_the_project_manifest_found_from_the_working_directory(project: Path) -> None:
    (project / ".podactors").mkdir()
    manifest = write_pod(project, reply("From the project."))  # its paths: from the project
    manifest.rename(project / ".podactors" / "manifest.toml")
    result = cli("run", "pick it up")  # the store defaults to ./.podactors too
    assert result.exit_code == 0, result.output
    assert "From the project." in result.stdout
    assert outcomes(pod_entries(project / ".podactors", "alice")) == [Outcome("finished")]


def test_run_without_any_manifest_explains_how_to_write_one(project: Path) -> None:
    result = cli("run", "--store", project / "store", "hello")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no manifest")
    assert ".podactors/manifest.toml" in result.stderr
    assert "[[scope.allow]]" in result.stderr
    assert not (project / "store").exists()


def test_run_with_a_bad_manifest_exits_two_naming_the_key(project: Path) -> None:
    manifest = project / "pod.toml"
    manifest.write_text('[pod]\nname = "alice"\n[modle]\n')
    result = cli("run", "-m", manifest, "--store", project / "store", "hello")
    assert result.exit_code == 2
    assert "modle" in result.stderr and "Traceback" not in result.output


def test_ctrl_c_cancels_the_run_persists_it_and_exits_130(project: Path) -> None:
    manifest = write_pod(project, reply("Sleeping.", "sleep 30"))
    command = [*CLI, "run", "-m", str(manifest), "--store", str(project / "store"), "nap"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "100"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    )
    try:
        shown = read_until(process, "llm call 1")  # the call is committed; bash runs next
        process.send_signal(signal.SIGINT)
        shown += process.communicate(timeout=20)[0]
        assert process.returncode == 130, shown
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "cancelled" in shown
    last = outcomes(pod_entries(project / "store", "alice"))[-1]
    assert last == Outcome("cancelled", interrupted=True)


def read_until(process: subprocess.Popen[str], text: str) -> str:
    """The process's output up to the first line containing ``text``."""
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"{text!r} did not show in:\n{''.join(seen)}")


# --- chat -----------------------------------------------------------------------------


def test_chat_runs_each_line_notifies_shows_history_and_quits(project: Path) -> None:
    manifest = write_pod(project, reply("Hello there.") + reply("Noted the build."))
    lines = "hi\n/notify build 12 is green\n/history\n/quit\nnever sent\n"
    result = cli("chat", "-m", manifest, "--store", project / "store", input=lines)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Hello there." in out and "Noted the build." in out
    assert "notification: build 12 is green" in out
    assert "history (last 4)" in out
    entries = pod_entries(project / "store", "alice")
    assert [o.outcome for o in outcomes(entries)] == ["finished", "finished"]
    assert SystemItem(Notification("build 12 is green")) in entries


def test_chat_ends_at_end_of_input(project: Path) -> None:
    manifest = write_pod(project, reply("Hello."))
    result = cli("chat", "-m", manifest, "--store", project / "store", input="hi\n")
    assert result.exit_code == 0, result.output
    assert "bye" in result.stdout


# --- serve and attach -------------------------------------------------------------------


async def test_serve_writes_url_and_token_files_and_attach_runs_a_turn(project: Path) -> None:
    manifest = write_pod(project, reply("Hello over the socket.") + reply("Second turn."))
    store = project / "store"
    command = [*CLI, "serve", "-m", str(manifest), "--store", str(store)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    )
    try:
        with trio.fail_after(20):
            served = await trio.to_thread.run_sync(read_until, server, "serving at")
            url = (store / "websocket.url").read_text().strip()
            token = (store / "websocket.token").read_text().strip()
            async with open_client(url, token) as client:
                await client.send(proto.Attach(pod="alice"))
                await client.send(proto.Run(pod="alice", input="hello"))
                async for event in client.events():
                    if isinstance(event, proto.RunEnd):
                        assert event.outcome == "finished"
                        break
            attach = [*CLI, "attach", "alice", "--store", str(store)]
            attached = await trio.run_process(
                attach, stdin=b"again\n", capture_stdout=True, capture_stderr=True, env=env
            )
        shown = attached.stdout.decode()
        assert "Hello over the socket." in shown  # the snapshot's history
        assert "Second turn." in shown and "✓ finished" in shown
        server.send_signal(signal.SIGINT)
        with trio.fail_after(20):
            served += (await trio.to_thread.run_sync(server.communicate))[0]
        assert server.returncode == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert url in served and "websocket.token" in served
    assert token not in served
    assert not (store / "websocket.url").exists()
    entries = await read_pod_entries(store, "alice")
    assert [o.outcome for o in outcomes(entries)] == ["finished"] * 2


def test_attach_without_a_server_says_how_to_start_one(project: Path) -> None:
    result = cli("attach", "alice", "--store", project / "store")
    assert result.exit_code == 2
    assert "podactors serve --store" in result.stderr


# --- rendering --------------------------------------------------------------------------


def test_streamed_text_wraps_at_word_boundaries_within_the_width() -> None:
    console = Console(width=40, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    renderer = EventRenderer(console)
    words = "a fairly long sentence that keeps going well past one line of forty columns. " * 3
    for word in words.split(" "):
        renderer.show(proto.TextDelta(text=word + " "))
    renderer.show(proto.TextDone(text=words))
    lines = console.export_text().splitlines()
    assert len(lines) > 3
    assert all(len(line) <= 40 and line.startswith("  ") for line in lines)
    assert " ".join(line.strip() for line in lines) == " ".join(words.split())


def test_content_preview_keeps_head_and_last_line() -> None:
    assert content_preview("a\nb\n", 5) == ["a", "b"]
    lines = "\n".join(str(n) for n in range(1, 21))
    assert content_preview(lines, 4) == ["1", "2", "3", "… 16 more lines", "20"]
