"""The pod manifest: what a pod is, which model it talks to and what it may touch.

:mod:`~podactors.manifest.schema` declares the tables a user edits; the generic layer
cascade that loads them lives in :mod:`~podactors.manifest.loader`. Everything public is
re-exported here; see ``docs/manifest.md``.
"""

from podactors.manifest import schema
from podactors.manifest.loader import (
    PROJECT_MANIFEST,
    USER_MANIFEST,
    Origin,
    find_project_manifest,
)
from podactors.manifest.schema import *  # noqa: F403 (every name the schema exports)

__all__ = ["PROJECT_MANIFEST", "USER_MANIFEST", "Origin", "find_project_manifest"]
__all__ += schema.__all__
