"""The builtin ``bash`` tool.

``bash`` runs ``/bin/bash -c COMMAND`` in the pod's working directory with stdin closed and
stdout and stderr merged. It is **not** confined by the pod's scope: the command can touch
anything the podactors process can. Scope-aware command permissions (``[permissions]`` in the
manifest) are a later feature; until then, offer ``bash`` only to pods you would trust with a
shell.

The command runs in its own process group; when the timeout expires (or the call is
cancelled) the whole group is killed with ``SIGKILL``, so background children do not
outlive it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Annotated

import attrs
import msgspec
import trio

from podactors.tools.base import Tool, ToolOutput, tool, truncate_utf8
from podactors.tools.context import ToolContext

__all__ = ["BASH", "CommandResult", "bash", "run_command", "shell_tools"]

#: The shell ``bash`` runs.
BASH = "/bin/bash"
_READ_CHUNK = 65536
_REAP_TIMEOUT = 5.0


@attrs.frozen
class CommandResult:
    """How a command ended: the first bytes of its output, how many bytes it wrote in all,
    its return code (``None`` when it was killed on timeout) and whether it timed out."""

    output: bytes
    total_bytes: int
    returncode: int | None
    timed_out: bool

    def text(self, max_bytes: int) -> str:
        """The output as text, cut to ``max_bytes`` with a marker when it was longer."""
        decoded = self.output.decode("utf-8", "replace")
        total = self.total_bytes if self.total_bytes > len(self.output) else None
        return truncate_utf8(decoded, max_bytes, total_bytes=total)


async def run_command(command: str, *, cwd: Path, timeout: float, max_bytes: int) -> CommandResult:
    """Run ``command`` with :data:`BASH` in ``cwd``; keep at most ``max_bytes`` of output.

    On timeout or cancellation the process group is killed and reaped before this returns
    (or re-raises the cancellation).
    """
    process = await trio.lowlevel.open_process(
        [BASH, "-c", command],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    kept = bytearray()
    total = 0
    finished = False
    try:
        with trio.move_on_after(timeout):
            assert process.stdout is not None
            while chunk := await process.stdout.receive_some(_READ_CHUNK):
                total += len(chunk)
                kept += chunk[: max(max_bytes - len(kept), 0)]
            await process.wait()
            finished = True
    finally:
        if not finished:
            _kill_group(process.pid)
        with trio.CancelScope(shield=True), trio.move_on_after(_REAP_TIMEOUT):
            if process.stdout is not None:
                await process.stdout.aclose()
            await process.wait()
    returncode = process.returncode if finished else None
    return CommandResult(bytes(kept), total, returncode, timed_out=not finished)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@tool
async def bash(
    ctx: ToolContext,
    command: Annotated[str, msgspec.Meta(description="The command line, run by /bin/bash -c.")],
    timeout: Annotated[
        float, msgspec.Meta(gt=0, le=3600, description="Seconds before the command is killed.")
    ] = 120,
) -> ToolOutput:
    """Run a shell command in the pod's working directory; stdout and stderr are merged.

    The command is killed when it runs longer than timeout seconds. It is not limited to
    the pod's file scope.
    """
    result = await run_command(
        command, cwd=ctx.workdir, timeout=timeout, max_bytes=ctx.tool_output_max_bytes
    )
    text = result.text(ctx.tool_output_max_bytes) or "(no output)"
    if result.timed_out:
        summary = f"timed out after {timeout:g}s; the process group was killed"
        return ToolOutput(summary, text, is_error=True)
    code = result.returncode
    assert code is not None
    ended = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    summary = f"{ended} ({result.total_bytes} bytes of output)"
    return ToolOutput(summary, text, is_error=code != 0)


def shell_tools() -> list[Tool]:
    """The builtin shell tools (just ``bash``)."""
    return [bash]
