"""Tools: the protocol (schemas from signatures, the registry), scopes and the builtins.

See ``docs/tools.md``. :func:`builtin_tools` returns every builtin tool; build a
:class:`ToolRegistry` from them (plus your own) and call it with a :class:`ToolContext`.
"""

from __future__ import annotations

from podactors.tools.base import (
    Tool,
    ToolError,
    ToolOutput,
    ToolRegistry,
    ToolSpec,
    tool,
    truncate_utf8,
)
from podactors.tools.context import DEFAULT_TOOL_OUTPUT_MAX_BYTES, ToolContext
from podactors.tools.files import file_tools
from podactors.tools.scope import Scope, ScopedFs, ScopeError
from podactors.tools.shell import shell_tools
from podactors.tools.tasklist import Task, TaskList, TaskNotFound, TaskSnapshot
from podactors.tools.tasks import task_tools
from podactors.tools.tracker import FileStamp, FileTracker

__all__ = [
    "DEFAULT_TOOL_OUTPUT_MAX_BYTES",
    "FileStamp",
    "FileTracker",
    "Scope",
    "ScopeError",
    "ScopedFs",
    "Task",
    "TaskList",
    "TaskNotFound",
    "TaskSnapshot",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolOutput",
    "ToolRegistry",
    "ToolSpec",
    "builtin_tools",
    "tool",
    "truncate_utf8",
]


def builtin_tools() -> list[Tool]:
    """Every builtin tool: the file tools, ``bash`` and the task-list tools."""
    return [*file_tools(), *shell_tools(), *task_tools()]
