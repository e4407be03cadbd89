"""The builtin tools: files, bash and the task list, called through a ToolRegistry."""

from __future__ import annotations

import os
import select
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from podactors.items import ToolCall, ToolResult
from podactors.manifest import AllowRule, DenyRule
from podactors.store.entries import Extension, LogEntry
from podactors.tools import (
    Scope,
    ScopedFs,
    Task,
    TaskList,
    TaskSnapshot,
    ToolContext,
    ToolRegistry,
    builtin_tools,
)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    root = tmp_path.resolve()
    proj = root / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "secrets").mkdir()
    (root / "outside").mkdir()
    (root / "outside" / "leak.py").write_text("needle = 'outside'\n")
    return proj


@pytest.fixture
def ctx(workdir: Path) -> ToolContext:
    scope = Scope([AllowRule(workdir, "write")], [DenyRule(workdir / "secrets", "read")])
    return ToolContext(ScopedFs(scope, workdir), tool_output_max_bytes=4096)


REGISTRY = ToolRegistry(builtin_tools())


async def run(ctx: ToolContext, name: str, **arguments: Any) -> ToolResult:
    return await REGISTRY.call(ToolCall("c1", name, arguments), ctx)


def test_builtin_tools_are_all_offered() -> None:
    assert REGISTRY.names() == [
        "read_file",
        "write_file",
        "edit_file",
        "glob",
        "grep",
        "bash",
        "task_create",
        "task_list",
        "task_get",
        "task_update",
    ]


# --- read_file -----------------------------------------------------------------------------


async def test_read_file_numbers_lines_from_offset(ctx: ToolContext, workdir: Path) -> None:
    (workdir / "ten.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    result = await run(ctx, "read_file", path="ten.txt", offset=3, limit=2)
    assert result.content == "     4\tline 4\n     5\tline 5\n"
    assert result.summary == "read 2 lines of ten.txt (lines 4-5 of 10)"


async def test_read_file_whole_file_summary(ctx: ToolContext, workdir: Path) -> None:
    (workdir / "two.txt").write_text("a\nb")
    result = await run(ctx, "read_file", path="two.txt")
    assert (result.summary, result.content) == ("read 2 lines of two.txt", "     1\ta\n     2\tb\n")


async def test_read_file_out_of_scope_is_an_error(ctx: ToolContext, workdir: Path) -> None:
    (workdir / "secrets" / "k").write_text("k")
    result = await run(ctx, "read_file", path="secrets/k")
    assert result.is_error
    assert result.summary.startswith("read to")


async def test_read_file_refuses_binary(ctx: ToolContext, workdir: Path) -> None:
    (workdir / "blob.bin").write_bytes(b"\x00\x01\x02")
    result = await run(ctx, "read_file", path="blob.bin")
    assert result.is_error
    assert "binary" in result.summary


async def test_read_file_negative_offset_is_an_argument_error(ctx: ToolContext) -> None:
    result = await run(ctx, "read_file", path="x", offset=-1)
    assert result.is_error
    assert "`offset`" in result.summary


# --- write_file / edit_file ----------------------------------------------------------------


async def test_write_file_creates_the_file(ctx: ToolContext, workdir: Path) -> None:
    result = await run(ctx, "write_file", path="src/new.py", content="x = 1\n")
    assert result.summary == "wrote 6 bytes to src/new.py"
    assert (workdir / "src" / "new.py").read_text() == "x = 1\n"


async def test_edit_file_replaces_text_after_read(ctx: ToolContext, workdir: Path) -> None:
    (workdir / "a.py").write_text("x = 1\ny = 2\n")
    await run(ctx, "read_file", path="a.py")
    result = await run(ctx, "edit_file", path="a.py", old="y = 2", new="y = 3")
    assert not result.is_error, result.summary
    assert result.summary == "edited a.py: replaced 1 occurrence"
    assert (workdir / "a.py").read_text() == "x = 1\ny = 3\n"
    assert result.content is not None and "y = 3" in result.content


async def test_edit_file_refuses_unread_file(ctx: ToolContext, workdir: Path) -> None:
    (workdir / "a.py").write_text("x = 1\n")
    result = await run(ctx, "edit_file", path="a.py", old="x", new="z")
    assert result.is_error
    assert result.summary == "a.py has not been read in this session; read_file it first"
    assert (workdir / "a.py").read_text() == "x = 1\n"


async def test_edit_file_refuses_file_changed_since_read(ctx: ToolContext, workdir: Path) -> None:
    (workdir / "a.py").write_text("x = 1\n")
    await run(ctx, "read_file", path="a.py")
    (workdir / "a.py").write_text("x = 2\n")  # someone else edits it
    result = await run(ctx, "edit_file", path="a.py", old="x = 2", new="x = 3")
    assert result.is_error
    assert "changed since it was last read" in result.summary
    assert (workdir / "a.py").read_text() == "x = 2\n"


async def test_edit_file_after_own_edit_needs_no_reread(ctx: ToolContext, workdir: Path) -> None:
    (workdir / "a.py").write_text("a\n")
    await run(ctx, "read_file", path="a.py")
    await run(ctx, "edit_file", path="a.py", old="a", new="b")
    result = await run(ctx, "edit_file", path="a.py", old="b", new="c")
    assert not result.is_error, result.summary
    assert (workdir / "a.py").read_text() == "c\n"


async def test_edit_file_after_write_file_needs_no_read(ctx: ToolContext, workdir: Path) -> None:
    await run(ctx, "write_file", path="b.py", content="old\n")
    result = await run(ctx, "edit_file", path="b.py", old="old", new="new")
    assert not result.is_error, result.summary


async def test_edit_file_refuses_ambiguous_match(ctx: ToolContext, workdir: Path) -> None:
    (workdir / "a.py").write_text("x = 1\nx = 1\n")
    await run(ctx, "read_file", path="a.py")
    result = await run(ctx, "edit_file", path="a.py", old="x = 1", new="x = 2")
    assert result.is_error
    assert "occurs 2 times" in result.summary
    result = await run(ctx, "edit_file", path="a.py", old="x = 1", new="x = 2", replace_all=True)
    assert result.summary == "edited a.py: replaced 2 occurrences"
    assert (workdir / "a.py").read_text() == "x = 2\nx = 2\n"


async def test_edit_file_refuses_missing_text(ctx: ToolContext, workdir: Path) -> None:
    (workdir / "a.py").write_text("x = 1\n")
    await run(ctx, "read_file", path="a.py")
    result = await run(ctx, "edit_file", path="a.py", old="nope", new="x")
    assert (result.is_error, result.summary) == (True, "old text not found in a.py")


async def test_file_tracker_lists_recent_files(ctx: ToolContext, workdir: Path) -> None:
    for name in ("a", "b", "c"):
        (workdir / name).write_text(name)
    for name in ("a", "b", "c", "a"):
        await run(ctx, "read_file", path=name)
    assert [path.name for path in ctx.files.recent_files(2)] == ["a", "c"]


# --- glob / grep ---------------------------------------------------------------------------


@pytest.fixture
def tree(workdir: Path) -> Path:
    (workdir / "src" / "pkg").mkdir()
    files = {
        "src/app.py": "import os\nneedle = 1\n",
        "src/pkg/util.py": "NEEDLE = 2\nother\n",
        "src/notes.md": "needle in markdown\n",
        "secrets/key.py": "needle = 'secret'\n",
    }
    for index, (name, text) in enumerate(files.items()):
        (workdir / name).write_text(text)
        os.utime(workdir / name, ns=(0, (index + 1) * 10**9))
    (workdir / "src" / "leak.py").symlink_to(workdir.parent / "outside" / "leak.py")
    return workdir


async def test_glob_lists_in_scope_files_newest_first(ctx: ToolContext, tree: Path) -> None:
    result = await run(ctx, "glob", pattern="**/*.py")
    assert result.content == "src/pkg/util.py\nsrc/app.py"
    assert result.summary == "2 files match **/*.py"


async def test_glob_with_no_match_says_so(ctx: ToolContext, tree: Path) -> None:
    result = await run(ctx, "glob", pattern="*.rs", path="src")
    assert (result.summary, result.content) == ("0 files match *.rs", "(no matches)")


async def test_grep_prints_file_line_text_within_scope(ctx: ToolContext, tree: Path) -> None:
    result = await run(ctx, "grep", pattern="needle")
    assert result.content == "src/app.py:2:needle = 1\nsrc/notes.md:1:needle in markdown"
    assert result.summary == "2 matches in 2 files for needle"


async def test_grep_ignore_case_and_glob_filter(ctx: ToolContext, tree: Path) -> None:
    result = await run(ctx, "grep", pattern="needle", glob="*.py", ignore_case=True)
    assert result.content == "src/app.py:2:needle = 1\nsrc/pkg/util.py:1:NEEDLE = 2"


async def test_grep_stops_at_max_results(ctx: ToolContext, tree: Path) -> None:
    result = await run(ctx, "grep", pattern="e", max_results=2)
    assert result.content is not None and len(result.content.splitlines()) == 2
    assert "stopped at max_results=2" in result.summary


async def test_grep_invalid_regex_is_an_error(ctx: ToolContext, tree: Path) -> None:
    result = await run(ctx, "grep", pattern="(")
    assert result.is_error
    assert "invalid regular expression" in result.summary


async def test_grep_in_denied_directory_is_refused(ctx: ToolContext, tree: Path) -> None:
    result = await run(ctx, "grep", pattern="needle", path="secrets")
    assert result.is_error
    assert "refused" in result.summary


# --- bash ----------------------------------------------------------------------------------


async def test_bash_runs_in_workdir(ctx: ToolContext, workdir: Path) -> None:
    with trio.fail_after(10):
        result = await run(ctx, "bash", command="pwd")
    assert result.content == f"{workdir}\n"
    assert result.summary == f"exit code 0 ({len(str(workdir)) + 1} bytes of output)"
    assert not result.is_error


async def test_bash_merges_stderr_and_reports_exit_code(ctx: ToolContext) -> None:
    with trio.fail_after(10):
        result = await run(ctx, "bash", command="echo out; echo err >&2; exit 3")
    assert result.content == "out\nerr\n"
    assert result.is_error
    assert result.summary.startswith("exit code 3")


async def test_bash_timeout_kills_the_command(ctx: ToolContext) -> None:
    with trio.fail_after(10):
        result = await run(ctx, "bash", command="echo started; sleep 30", timeout=0.5)
    assert result.is_error
    assert result.summary == "timed out after 0.5s; the process group was killed"
    assert result.content == "started\n"


async def test_bash_timeout_kills_background_children(ctx: ToolContext, workdir: Path) -> None:
    with trio.fail_after(10):
        await run(ctx, "bash", command="sleep 30 & echo $! > bg.pid; wait", timeout=0.5)
        pid = int((workdir / "bg.pid").read_text())
        await wait_for_exit(pid)


async def wait_for_exit(pid: int) -> None:
    """Wait until ``pid`` has exited (a pidfd turns readable), without polling."""
    if not hasattr(os, "pidfd_open"):
        pytest.skip("needs os.pidfd_open")
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # already gone
    try:
        await trio.lowlevel.wait_readable(fd)
        assert select.select([fd], [], [], 0)[0] == [fd]
    finally:
        os.close(fd)


async def test_bash_output_is_capped_on_char_boundary(ctx: ToolContext) -> None:
    with trio.fail_after(10):
        result = await run(ctx, "bash", command="yes é | head -n 20000 | tr -d '\\n'")
    assert result.content is not None
    assert len(result.content.encode("utf-8")) <= 4096
    kept, marker = result.content.split("\n[… output truncated: ")
    assert set(kept) == {"é"}
    assert marker.startswith("40000 bytes, showing first ")
    assert result.summary == "exit code 0 (40000 bytes of output)"


async def test_bash_cancellation_propagates(ctx: ToolContext) -> None:
    with trio.fail_after(10), trio.move_on_after(0.2) as scope:
        await run(ctx, "bash", command="sleep 30")
    assert scope.cancelled_caught


# --- task list -----------------------------------------------------------------------------


async def test_task_tools_create_list_get_update(ctx: ToolContext) -> None:
    created = await run(ctx, "task_create", title="write tests", description="cover bash")
    assert created.summary == "created task #1 [pending] write tests"
    await run(ctx, "task_create", title="ship it")
    updated = await run(ctx, "task_update", id=1, status="in_progress")
    assert updated.summary == "updated task #1 [in_progress] write tests"
    listed = await run(ctx, "task_list")
    assert listed.summary == "2 tasks, 2 open"
    assert listed.content == "#1 [in_progress] write tests\n#2 [pending] ship it"
    got = await run(ctx, "task_get", id=1)
    assert got.content == "#1 [in_progress] write tests\n\ncover bash"


async def test_task_update_unknown_id_is_an_error(ctx: ToolContext) -> None:
    result = await run(ctx, "task_update", id=9, status="completed")
    assert (result.is_error, result.summary) == (True, "no task #9")


async def test_task_update_bad_status_names_the_argument(ctx: ToolContext) -> None:
    await run(ctx, "task_create", title="t")
    result = await run(ctx, "task_update", id=1, status="done")
    assert result.is_error
    assert "`status`" in result.summary


def test_task_list_snapshot_round_trips_through_extension() -> None:
    tasks = TaskList()
    tasks.create("first")
    tasks.create("second", "details")
    tasks.update(1, status="completed", title="first!")
    entry = tasks.snapshot_entry()
    assert entry.domain == "tasks"
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(entry), type=LogEntry)
    assert isinstance(decoded, Extension)
    restored = TaskList.from_snapshot(decoded)
    assert restored.tasks() == [
        Task(1, "first!", "", "completed"),
        Task(2, "second", "details", "pending"),
    ]
    assert restored.create("third").id == 3


def test_task_list_from_snapshot_keeps_ids_unique() -> None:
    restored = TaskList.from_snapshot(TaskSnapshot([Task(5, "x")], next_id=1))
    assert restored.create("y").id == 6


def test_task_list_revision_counts_changes() -> None:
    tasks = TaskList()
    tasks.create("a")
    tasks.update(1, status="cancelled")
    assert tasks.revision == 2


def test_task_list_rejects_foreign_extension() -> None:
    with pytest.raises(ValueError, match="not 'tasks'"):
        TaskList.from_snapshot(Extension.of("memory", {"x": 1}))
