"""podactors: a trio-native actor framework for long-running LLM agent pods."""

from podactors import errors
from podactors.handle import PodHandle
from podactors.items import (
    ChildEvent,
    FileAttachment,
    Message,
    Notification,
    Reasoning,
    RequestConfig,
    ToolCall,
    ToolResult,
)
from podactors.manifest import AllowRule, DenyRule, Manifest, load_manifest
from podactors.protocol import CompactResult, RunResult
from podactors.runtime.pod import Pod
from podactors.runtime.supervisor import PodSpec, Supervisor, open_supervisor
from podactors.store import FsStore, SessionState

__version__ = "0.1.0"

__all__ = [
    "AllowRule",
    "ChildEvent",
    "CompactResult",
    "DenyRule",
    "FileAttachment",
    "FsStore",
    "Manifest",
    "Message",
    "Notification",
    "Pod",
    "PodHandle",
    "PodSpec",
    "Reasoning",
    "RequestConfig",
    "RunResult",
    "SessionState",
    "Supervisor",
    "ToolCall",
    "ToolResult",
    "__version__",
    "errors",
    "load_manifest",
    "open_supervisor",
]
