"""The builtin task-list tools: ``task_create``, ``task_list``, ``task_get``, ``task_update``.

They work on the context's :class:`~podactors.tools.tasklist.TaskList` (the per-session
to-do list and its persistence), whose names are re-exported here.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from podactors.tools.base import Tool, ToolOutput, tool
from podactors.tools.context import ToolContext
from podactors.tools.tasklist import (
    TASKS_DOMAIN,
    Task,
    TaskList,
    TaskNotFound,
    TaskSnapshot,
    TaskStatus,
)

__all__ = [
    "TASKS_DOMAIN",
    "Task",
    "TaskList",
    "TaskNotFound",
    "TaskSnapshot",
    "TaskStatus",
    "task_create",
    "task_get",
    "task_list",
    "task_tools",
    "task_update",
]

_Id = Annotated[int, msgspec.Meta(description="The task's number, as shown by task_list.")]


@tool
def task_create(
    ctx: ToolContext,
    title: Annotated[str, msgspec.Meta(min_length=1, description="Short imperative title.")],
    description: str = "",
) -> ToolOutput:
    """Add a task to the session's task list (it starts as pending)."""
    task = ctx.tasks.create(title, description)
    return ToolOutput(f"created task {task.line()}")


@tool
def task_list(ctx: ToolContext) -> ToolOutput:
    """List the session's tasks with their ids and statuses."""
    tasks = ctx.tasks.tasks()
    open_count = sum(task.status in ("pending", "in_progress") for task in tasks)
    summary = f"{len(tasks)} tasks, {open_count} open"
    return ToolOutput(summary, "\n".join(task.line() for task in tasks) or "(no tasks)")


@tool
def task_get(ctx: ToolContext, id: _Id) -> ToolOutput:
    """Show one task with its description."""
    task = ctx.tasks.get(id)
    return ToolOutput(task.line(), f"{task.line()}\n\n{task.description}".rstrip())


@tool
def task_update(
    ctx: ToolContext,
    id: _Id,
    status: TaskStatus | None = None,
    title: str | None = None,
    description: str | None = None,
) -> ToolOutput:
    """Change a task's status (pending, in_progress, completed, cancelled), title or
    description."""
    task = ctx.tasks.update(id, status=status, title=title, description=description)
    return ToolOutput(f"updated task {task.line()}")


def task_tools() -> list[Tool]:
    """The builtin task-list tools."""
    return [task_create, task_list, task_get, task_update]
