"""Builtin file tools: ``read_file``, ``write_file``, ``edit_file``, ``glob`` and ``grep``.

Every file access goes through the context's :class:`~podactors.tools.scope.ScopedFs`, so
the pod's scope applies. :class:`FileTracker` remembers what the pod has read or written in
this session, so ``edit_file`` refuses to edit a file the pod has not seen or that changed
since it last did; it lives in :mod:`podactors.tools.tracker` and is re-exported here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import msgspec

from podactors.tools.base import Tool, ToolError, ToolOutput, tool
from podactors.tools.context import ToolContext
from podactors.tools.scope import glob_regex, split_lines
from podactors.tools.tracker import FileStamp, FileTracker

__all__ = [
    "GLOB_MAX_RESULTS",
    "GREP_MAX_FILE_BYTES",
    "LINE_MAX_CHARS",
    "FileStamp",
    "FileTracker",
    "edit_file",
    "file_tools",
    "glob",
    "grep",
    "read_file",
    "write_file",
]

#: Lines longer than this are cut in ``read_file`` and ``grep`` output.
LINE_MAX_CHARS = 2000
#: How many paths ``glob`` lists at most.
GLOB_MAX_RESULTS = 100
#: Files larger than this are skipped by ``grep``.
GREP_MAX_FILE_BYTES = 10 * 1024 * 1024
_BINARY_SNIFF_BYTES = 8192


def _is_binary(data: bytes) -> bool:
    return b"\0" in data[:_BINARY_SNIFF_BYTES]


def _cut_line(line: str) -> str:
    if len(line) <= LINE_MAX_CHARS:
        return line
    return line[:LINE_MAX_CHARS] + f"… [{len(line) - LINE_MAX_CHARS} more chars]"


def _read_tracked(ctx: ToolContext, path: str) -> tuple[Path, bytes]:
    """Read ``path`` through the scope and record it in the tracker."""
    real = ctx.fs.check(path, "read")
    data = real.read_bytes()
    ctx.files.record(real, FileStamp.of(data, real.stat().st_mtime_ns))
    return real, data


@tool
def read_file(
    ctx: ToolContext,
    path: Annotated[str, msgspec.Meta(description="File to read, relative to the workdir.")],
    offset: Annotated[int, msgspec.Meta(ge=0, description="First line to show (0-based).")] = 0,
    limit: Annotated[int, msgspec.Meta(ge=1, description="How many lines to show.")] = 2000,
) -> ToolOutput:
    """Read a text file and show its lines with line numbers (like ``cat -n``).

    Use offset and limit to page through long files.
    """
    _real, data = _read_tracked(ctx, path)
    shown = ctx.fs.display(path)
    if _is_binary(data):
        raise ToolError(f"{shown} looks like a binary file ({len(data)} bytes); not shown")
    lines = split_lines(data.decode("utf-8", "replace"))
    page = lines[offset : offset + limit]
    numbered = "".join(
        f"{number:>6}\t{_cut_line(line)}\n" for number, line in enumerate(page, offset + 1)
    )
    summary = f"read {len(page)} lines of {shown}"
    if len(page) < len(lines):
        summary += f" (lines {offset + 1}-{offset + len(page)} of {len(lines)})"
    return ToolOutput(summary, numbered or f"(no lines: {shown} has {len(lines)} lines)")


@tool
def write_file(
    ctx: ToolContext,
    path: Annotated[str, msgspec.Meta(description="File to write, relative to the workdir.")],
    content: Annotated[str, msgspec.Meta(description="The complete new content of the file.")],
) -> ToolOutput:
    """Create or overwrite a file with the given content (parent directories are created)."""
    real = ctx.fs.write_text(path, content)
    data = content.encode("utf-8")
    ctx.files.record(real, FileStamp.of(data, real.stat().st_mtime_ns))
    return ToolOutput(f"wrote {len(data)} bytes to {ctx.fs.display(path)}")


@tool
def edit_file(
    ctx: ToolContext,
    path: Annotated[str, msgspec.Meta(description="File to edit, relative to the workdir.")],
    old: Annotated[str, msgspec.Meta(description="Exact text to replace.")],
    new: Annotated[str, msgspec.Meta(description="Text to put in its place.")],
    replace_all: Annotated[
        bool, msgspec.Meta(description="Replace every occurrence instead of exactly one.")
    ] = False,
) -> ToolOutput:
    """Replace an exact string in a file the pod has read.

    Fails when the text is not found, when it occurs more than once (unless replace_all),
    or when the file changed since it was last read.
    """
    shown = ctx.fs.display(path)
    real = ctx.fs.check(path, "write")
    text = _current_text(ctx, real, shown)
    if not old:
        raise ToolError("old must not be empty; use write_file to create a file")
    if old == new:
        raise ToolError("old and new are identical; nothing to change")
    count = text.count(old)
    if count == 0:
        raise ToolError(f"old text not found in {shown}")
    if count > 1 and not replace_all:
        raise ToolError(
            f"old text occurs {count} times in {shown}; "
            "include more context to make it unique or pass replace_all=true"
        )
    updated = text.replace(old, new) if replace_all else text.replace(old, new, 1)
    ctx.fs.write_text(real, updated)
    ctx.files.record(real, FileStamp.of(updated.encode("utf-8"), real.stat().st_mtime_ns))
    replaced = count if replace_all else 1
    plural = "" if replaced == 1 else "s"
    summary = f"edited {shown}: replaced {replaced} occurrence{plural}"
    return ToolOutput(summary, _snippet(updated, text.find(old), new))


def _current_text(ctx: ToolContext, real: Path, shown: str) -> str:
    """The file's text, provided the tracker says the pod has seen exactly this content."""
    seen = ctx.files.stamp(real)
    if seen is None:
        raise ToolError(f"{shown} has not been read in this session; read_file it first")
    data = real.read_bytes()
    if FileStamp.of(data, 0).digest != seen.digest:
        raise ToolError(f"{shown} changed since it was last read; read_file it again first")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ToolError(f"{shown} is not valid UTF-8 text; edit_file cannot edit it") from exc


def _snippet(text: str, index: int, new: str, context: int = 3) -> str:
    """The edited region with line numbers and ``context`` lines around it."""
    first = text.count("\n", 0, max(index, 0))
    last = first + new.count("\n")
    lines = split_lines(text)
    start, end = max(first - context, 0), min(last + context + 1, len(lines))
    return "".join(
        f"{number:>6}\t{_cut_line(line)}\n"
        for number, line in enumerate(lines[start:end], start + 1)
    )


@tool
def glob(
    ctx: ToolContext,
    pattern: Annotated[
        str, msgspec.Meta(description="Glob such as **/*.py; ** spans directories.")
    ],
    path: Annotated[str, msgspec.Meta(description="Directory to search from.")] = ".",
) -> ToolOutput:
    """Find files by name pattern; newest first.

    Only files inside the pod's read scope are listed.
    """
    found = ctx.fs.glob(pattern, path)
    found.sort(key=_mtime_ns, reverse=True)
    shown = [ctx.fs.display(item) for item in found[:GLOB_MAX_RESULTS]]
    summary = f"{len(found)} files match {pattern}"
    if len(found) > GLOB_MAX_RESULTS:
        summary += f" (showing the {GLOB_MAX_RESULTS} newest)"
    return ToolOutput(summary, "\n".join(shown) if shown else "(no matches)")


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


@tool
def grep(
    ctx: ToolContext,
    pattern: Annotated[str, msgspec.Meta(description="Python regular expression.")],
    path: Annotated[str, msgspec.Meta(description="File or directory to search.")] = ".",
    glob: Annotated[
        str | None,
        msgspec.Meta(description="Only files matching this glob (*.py matches at any depth)."),
    ] = None,
    ignore_case: bool = False,
    max_results: Annotated[int, msgspec.Meta(ge=1)] = 200,
) -> ToolOutput:
    """Search file contents with a regular expression; prints file:line:text.

    Only files inside the pod's read scope are searched; binary files are skipped.
    """
    try:
        regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise ToolError(f"invalid regular expression {pattern!r}: {exc}") from exc
    root = ctx.fs.check(path, "read")
    matches: list[str] = []
    files = 0
    for file in _grep_candidates(ctx, path, root, glob):
        hits = _grep_file(file, regex, max_results - len(matches))
        files += bool(hits)
        shown = ctx.fs.display(file)
        matches += [f"{shown}:{number}:{_cut_line(line)}" for number, line in hits]
        if len(matches) >= max_results:
            break
    summary = f"{len(matches)} matches in {files} files for {pattern}"
    if len(matches) >= max_results:
        summary += f" (stopped at max_results={max_results})"
    return ToolOutput(summary, "\n".join(matches) if matches else "(no matches)")


def _grep_candidates(ctx: ToolContext, path: str, root: Path, pattern: str | None) -> list[Path]:
    files = list(ctx.fs.walk(path))
    if pattern is None:
        return files
    matcher = glob_regex(pattern)
    if "/" not in pattern:
        return [file for file in files if matcher.fullmatch(file.name)]
    base = root if root.is_dir() else root.parent
    return [file for file in files if matcher.fullmatch(file.relative_to(base).as_posix())]


def _grep_file(file: Path, regex: re.Pattern[str], limit: int) -> list[tuple[int, str]]:
    """Up to ``limit`` ``(line number, line)`` pairs of ``file`` matching ``regex``."""
    try:
        if file.stat().st_size > GREP_MAX_FILE_BYTES:
            return []
        data = file.read_bytes()
    except OSError:
        return []
    if _is_binary(data):
        return []
    hits: list[tuple[int, str]] = []
    for number, line in enumerate(split_lines(data.decode("utf-8", "replace")), 1):
        if regex.search(line):
            hits.append((number, line))
            if len(hits) >= limit:
                break
    return hits


def file_tools() -> list[Tool]:
    """The builtin file tools, in the order they are offered."""
    return [read_file, write_file, edit_file, glob, grep]
