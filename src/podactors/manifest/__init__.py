"""The pod manifest: what a pod is, which model it talks to and what it may touch.

:mod:`~podactors.manifest.schema` declares the tables a user edits; the generic layer
cascade that loads them lives in :mod:`~podactors.manifest.loader`. Everything public is
re-exported here; see ``docs/manifest.md``.
"""

from podactors.manifest.loader import (
    PROJECT_MANIFEST,
    USER_MANIFEST,
    Origin,
    find_project_manifest,
)
from podactors.manifest.schema import (
    DEFAULT_PROVIDER,
    PROVIDER_DEFAULTS,
    Action,
    AllowRule,
    CompactionConfig,
    DenyRule,
    Manifest,
    MemoryConfig,
    ModelConfig,
    Permission,
    PermissionRule,
    PermissionsConfig,
    PodConfig,
    Provider,
    ProviderDefaults,
    RestartPolicy,
    ScopeConfig,
    ScopeRule,
    WorkerConfig,
    load_manifest,
)

__all__ = [
    "DEFAULT_PROVIDER",
    "PROJECT_MANIFEST",
    "PROVIDER_DEFAULTS",
    "USER_MANIFEST",
    "Action",
    "AllowRule",
    "CompactionConfig",
    "DenyRule",
    "Manifest",
    "MemoryConfig",
    "ModelConfig",
    "Origin",
    "Permission",
    "PermissionRule",
    "PermissionsConfig",
    "PodConfig",
    "Provider",
    "ProviderDefaults",
    "RestartPolicy",
    "ScopeConfig",
    "ScopeRule",
    "WorkerConfig",
    "find_project_manifest",
    "load_manifest",
]
