"""The session task list: a small to-do list the model keeps with the task tools.

A :class:`TaskList` lives in the :class:`~podactors.tools.context.ToolContext`. It persists
as an extension entry: :meth:`TaskList.snapshot_entry` returns
``Extension.of("tasks", snapshot)`` and :meth:`TaskList.from_snapshot` restores it.
"""

from __future__ import annotations

import threading
from typing import Literal

import msgspec

from podactors.errors import TaskNotFound
from podactors.store.entries import Extension

__all__ = ["TASKS_DOMAIN", "Task", "TaskList", "TaskNotFound", "TaskSnapshot", "TaskStatus"]

#: The extension domain a task-list snapshot is stored under.
TASKS_DOMAIN = "tasks"

TaskStatus = Literal["pending", "in_progress", "completed", "cancelled"]
"""Where a task stands."""


class Task(msgspec.Struct, frozen=True):
    """One task: a numeric ``id``, a ``title``, an optional ``description`` and a status."""

    id: int
    title: str
    description: str = ""
    status: TaskStatus = "pending"

    def line(self) -> str:
        """``#3 [in_progress] title``."""
        return f"#{self.id} [{self.status}] {self.title}"


class TaskSnapshot(msgspec.Struct, frozen=True):
    """A task list as persisted: its tasks in creation order and the next id to hand out."""

    tasks: list[Task] = []
    next_id: int = 1


class TaskList:
    """A session's task list (thread-safe; tools run in worker threads).

    ``revision`` grows with every change, so the owner can tell when a new snapshot is due.
    Lookups of unknown ids raise :class:`TaskNotFound`.
    """

    def __init__(self, snapshot: TaskSnapshot | None = None) -> None:
        start = snapshot or TaskSnapshot()
        self._tasks: dict[int, Task] = {task.id: task for task in start.tasks}
        self._next_id = max(start.next_id, max(self._tasks, default=0) + 1)
        self._lock = threading.Lock()
        self.revision = 0

    @classmethod
    def from_snapshot(cls, snapshot: TaskSnapshot | Extension) -> TaskList:
        """Restore a list from a snapshot or from the extension entry holding one."""
        if isinstance(snapshot, Extension):
            if snapshot.domain != TASKS_DOMAIN:
                raise ValueError(f"extension domain {snapshot.domain!r} is not {TASKS_DOMAIN!r}")
            snapshot = snapshot.decode(TaskSnapshot)
        return cls(snapshot)

    def snapshot(self) -> TaskSnapshot:
        """The current state as a :class:`TaskSnapshot`."""
        with self._lock:
            return TaskSnapshot(list(self._tasks.values()), self._next_id)

    def snapshot_entry(self) -> Extension:
        """The current state as the extension entry ``Extension.of("tasks", snapshot)``."""
        return Extension.of(TASKS_DOMAIN, self.snapshot())

    def create(self, title: str, description: str = "") -> Task:
        """Add a pending task and return it."""
        with self._lock:
            task = Task(self._next_id, title, description)
            self._tasks[task.id] = task
            self._next_id += 1
            self.revision += 1
            return task

    def get(self, task_id: int) -> Task:
        """The task ``task_id``."""
        with self._lock:
            return self._get(task_id)

    def tasks(self) -> list[Task]:
        """All tasks, in creation order."""
        with self._lock:
            return list(self._tasks.values())

    def update(
        self,
        task_id: int,
        *,
        status: TaskStatus | None = None,
        title: str | None = None,
        description: str | None = None,
    ) -> Task:
        """Change the given fields of task ``task_id`` and return the new task."""
        with self._lock:
            task = self._get(task_id)
            changes = {"status": status, "title": title, "description": description}
            updated = msgspec.structs.replace(
                task, **{key: value for key, value in changes.items() if value is not None}
            )
            self._tasks[task_id] = updated
            self.revision += 1
            return updated

    def __len__(self) -> int:
        with self._lock:
            return len(self._tasks)

    def _get(self, task_id: int) -> Task:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise TaskNotFound(task_id) from None
