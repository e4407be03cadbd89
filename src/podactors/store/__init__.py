"""Session persistence: content-addressed segment files (see docs/store-format.md)."""

from podactors.store.fs import (
    FsStore,
    GcReport,
    PodRef,
    SessionInfo,
    SessionRef,
    StoreStatistics,
    VerifyReport,
)
from podactors.store.protocol import Store
from podactors.store.replay import SessionState, fold

__all__ = [
    "FsStore",
    "GcReport",
    "PodRef",
    "SessionInfo",
    "SessionRef",
    "SessionState",
    "Store",
    "StoreStatistics",
    "VerifyReport",
    "fold",
]
