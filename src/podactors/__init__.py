"""podactors: a trio-native actor framework for long-running LLM agent pods."""

from podactors import errors
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
from podactors.store import FsStore

__all__ = [
    "ChildEvent",
    "FileAttachment",
    "FsStore",
    "Message",
    "Notification",
    "Reasoning",
    "RequestConfig",
    "ToolCall",
    "ToolResult",
    "errors",
]
