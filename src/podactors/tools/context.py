"""What a running tool may use besides its arguments: the :class:`ToolContext`.

It sits below the tool machinery (:mod:`podactors.tools.base`) and the builtin tools, and
above what it holds: the scoped filesystem, the file tracker and the task list.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from podactors.tools.scope import ScopedFs
from podactors.tools.tasklist import TaskList
from podactors.tools.tracker import FileTracker

__all__ = ["DEFAULT_TOOL_OUTPUT_MAX_BYTES", "ToolContext"]

#: The default cap on a tool result's content (``[worker] tool_output_max_bytes``).
DEFAULT_TOOL_OUTPUT_MAX_BYTES = 65536


@attrs.frozen
class ToolContext:
    """What a running tool may use besides its arguments.

    ``fs`` is the only way builtin tools touch files; ``tool_output_max_bytes`` caps result
    content; ``files`` is the session's file tracker (what the pod has read, for
    ``edit_file``'s freshness check); ``tasks`` is the session's task list.
    """

    fs: ScopedFs
    tool_output_max_bytes: int = DEFAULT_TOOL_OUTPUT_MAX_BYTES
    files: FileTracker = attrs.field(factory=FileTracker)
    tasks: TaskList = attrs.field(factory=TaskList)

    @property
    def workdir(self) -> Path:
        """The pod's working directory (where relative paths and ``bash`` start)."""
        return self.fs.workdir
