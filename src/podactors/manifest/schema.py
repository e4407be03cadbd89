"""The pod manifest schema: the tables a user edits, their defaults and their checks.

A manifest is TOML (see ``docs/manifest.md`` and the design note ``MANIFEST.md``) loaded
through the layer cascade of :mod:`podactors.manifest.loader` into the frozen attrs classes
declared here. Each field's type is the whole of its type check (strict, for TOML and for
classes built in code alike); the validators here add only what a type cannot say.
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

import attrs

from podactors.errors import ManifestError
from podactors.manifest.loader import (
    AS_WRITTEN,
    NOT_IN_EFFECT,
    TOML_KEY,
    UNION,
    Cascade,
    Invalid,
    Provenance,
    describe,
    to_optional_path,
    to_path,
    typed_fields,
)

__all__ = [
    "DEFAULT_PROVIDER",
    "PROVIDER_DEFAULTS",
    "Action",
    "AllowRule",
    "CompactionConfig",
    "DenyRule",
    "Manifest",
    "MemoryConfig",
    "ModelConfig",
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
    "load_manifest",
]

#: The ``model.provider`` values.
Provider = Literal["anthropic", "openai_chat", "openai_responses", "gemini", "scripted"]
#: The ``pod.restart`` values: the supervisor's restart policies.
RestartPolicy = Literal["permanent", "transient", "temporary"]
#: The ``permission`` of a scope rule.
Permission = Literal["read", "write"]
#: The ``action`` of a permission rule and ``permissions.default``.
Action = Literal["allow", "deny", "ask"]

#: The provider used when ``[model]`` does not name one.
DEFAULT_PROVIDER: Provider = "anthropic"


class ProviderDefaults(NamedTuple):
    """What a provider's ``[model]`` keys default to when the manifest leaves them out."""

    model: str
    base_url: str | None
    api_key_env: str | None


#: ``provider -> ProviderDefaults``.
PROVIDER_DEFAULTS: Mapping[str, ProviderDefaults] = types.MappingProxyType(
    {
        "anthropic": ProviderDefaults(
            "claude-sonnet-4-5", "https://api.anthropic.com", "ANTHROPIC_API_KEY"
        ),
        "openai_chat": ProviderDefaults("gpt-4.1", "https://api.openai.com/v1", "OPENAI_API_KEY"),
        "openai_responses": ProviderDefaults(
            "gpt-4.1", "https://api.openai.com/v1", "OPENAI_API_KEY"
        ),
        "gemini": ProviderDefaults(
            "gemini-2.5-flash", "https://generativelanguage.googleapis.com", "GEMINI_API_KEY"
        ),
        "scripted": ProviderDefaults("scripted", None, None),
    }
)

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]
_Rule = TypeVar("_Rule", bound="ScopeRule")


# --- constraints beyond the field types ----------------------------------------------------


def _at_least(minimum: float) -> _Validator:
    """A validator for a number no smaller than ``minimum``."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value < minimum:
            raise Invalid(f"must be at least {minimum}, got {value}", key=attribute.name)

    return check


def _non_empty(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value.strip():
        raise Invalid(f"expected a non-empty string, got {describe(value)}", key=attribute.name)


def _pod_name(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    _non_empty(instance, attribute, value)
    if re.search(r"[\s/\\]", value):
        raise Invalid(
            f"must not contain whitespace or slashes, got {describe(value)}", key=attribute.name
        )


def _unique(rules: Iterable[_Rule]) -> tuple[_Rule, ...]:
    """Keep the first of equal rules, in order (the union of a scope list across layers)."""
    return tuple(dict.fromkeys(rules))


# --- the tables -----------------------------------------------------------------------


@attrs.frozen(field_transformer=typed_fields)
class PodConfig:
    """The ``[pod]`` table: the pod's name, working directory and restart policy.

    ``name`` is required and may not contain whitespace or slashes. ``workdir`` is resolved
    against the directory of the layer that set it (``.`` when no layer did: the working
    directory of :func:`load_manifest`, the file's directory for :meth:`Manifest.from_file`).
    ``restart`` is the supervisor policy: ``permanent``, ``transient`` or ``temporary``.
    """

    name: str = attrs.field(validator=_pod_name)
    workdir: Path = attrs.field(default=Path("."), converter=to_path)
    restart: RestartPolicy = "transient"


def _provider_default(key: str) -> Any:
    """The default of ``[model]`` key ``key``: the instance's provider's, per
    :data:`PROVIDER_DEFAULTS`."""

    def default(config: ModelConfig) -> str | None:
        value: str | None = getattr(PROVIDER_DEFAULTS[config.provider], key)
        return value

    return attrs.Factory(default, takes_self=True)


def _script_if_scripted(instance: ModelConfig, attribute: attrs.Attribute[Any], value: Any) -> None:
    if instance.provider == "scripted" and value is None:
        raise Invalid("required when provider is 'scripted'", key=attribute.name)


@attrs.frozen(field_transformer=typed_fields)
class ModelConfig:
    """The ``[model]`` table (also ``[compaction.model]`` and ``[memory.model]``).

    ``model``, ``base_url`` and ``api_key_env`` default per provider (see
    :data:`PROVIDER_DEFAULTS`);
    the ``scripted`` provider has neither but requires ``script``, a TOML file of replies.
    The API key itself is never stored here, only where to find it, so it cannot leak
    through a repr; :meth:`api_key` reads it on demand.
    """

    provider: Provider = DEFAULT_PROVIDER
    model: str = attrs.field(default=_provider_default("model"), validator=_non_empty)
    base_url: str | None = attrs.field(default=_provider_default("base_url"))
    api_key_env: str | None = attrs.field(default=_provider_default("api_key_env"))
    api_key_file: Path | None = attrs.field(default=None, converter=to_optional_path)
    context_window: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_at_least(1))
    )
    script: Path | None = attrs.field(
        default=None, converter=to_optional_path, validator=_script_if_scripted
    )

    def api_key(self) -> str | None:
        """Return the API key: the stripped content of ``api_key_file`` if set, else the
        value of the ``api_key_env`` environment variable, else ``None``.

        Raises :class:`ManifestError` (key ``api_key_file``) when the file cannot be read.
        """
        if self.api_key_file is not None:
            try:
                return self.api_key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ManifestError(
                    f"cannot read API key file {self.api_key_file}: {exc.strerror}",
                    key="api_key_file",
                ) from None
        if self.api_key_env:
            return os.environ.get(self.api_key_env) or None
        return None


def _not_both_instructions(
    instance: WorkerConfig, attribute: attrs.Attribute[Any], value: Any
) -> None:
    if value is not None and instance.instruction is not None:
        raise Invalid(
            "set either worker.instruction or worker.instruction_file, not both",
            key=attribute.name,
        )


@attrs.frozen(field_transformer=typed_fields)
class WorkerConfig:
    """The ``[worker]`` table: the system prompt and the limits of one run.

    At most one of ``instruction`` (inline Jinja template) and ``instruction_file`` may be
    set; :meth:`Manifest.instruction_text` returns whichever is. ``max_turns`` bounds the LLM
    calls per run; ``tool_output_max_bytes`` caps what one tool result may put in context.
    """

    instruction: str | None = None
    instruction_file: Path | None = attrs.field(
        default=None, converter=to_optional_path, validator=_not_both_instructions
    )
    max_tokens: int = attrs.field(default=4096, validator=_at_least(1))
    temperature: float = attrs.field(default=0.2, validator=_at_least(0.0))
    max_turns: int = attrs.field(default=50, validator=_at_least(1))
    tool_output_max_bytes: int = attrs.field(default=65536, validator=_at_least(1))


@attrs.frozen(field_transformer=typed_fields)
class CompactionConfig:
    """The optional ``[compaction]`` table; when it is absent nothing is pruned or compacted.

    ``threshold`` (checked between runs) and ``request_threshold`` (checked before each LLM
    request) are token counts; either is off when ``None``. ``model`` is the compaction
    worker's model; ``None`` means the pod's own. A ``[compaction.model]`` table that names no
    provider, or the pod's provider, inherits the keys it leaves out from ``[model]``.
    """

    threshold: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_at_least(1))
    )
    request_threshold: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_at_least(1))
    )
    retained_tokens: int = attrs.field(default=8000, validator=_at_least(0))
    auto_read_budget: int = attrs.field(default=8000, validator=_at_least(0))
    worker_max_input_tokens: int = attrs.field(default=50000, validator=_at_least(1))
    worker_max_turns: int = attrs.field(default=20, validator=_at_least(1))
    prune_protected_tokens: int = attrs.field(default=8000, validator=_at_least(0))
    prune_min_savings: int = attrs.field(default=4096, validator=_at_least(0))
    model: ModelConfig | None = None


@attrs.frozen(field_transformer=typed_fields)
class MemoryConfig:
    """The optional ``[memory]`` table; not in effect yet, so loading refuses it.

    ``dir`` is relative to the pod's workdir (see :meth:`Manifest.memory_dir`), not to the
    manifest file. ``extract_threshold`` and ``idle_after_seconds`` are off when 0. ``model``
    behaves as in :class:`CompactionConfig`.
    """

    dir: Path = attrs.field(
        default=Path(".podactors/memory"), converter=to_path, metadata={AS_WRITTEN: True}
    )
    extract_threshold: int = attrs.field(default=30000, validator=_at_least(0))
    idle_after_seconds: int = attrs.field(default=900, validator=_at_least(0))
    consolidate_threshold_files: int = attrs.field(default=50, validator=_at_least(1))
    consolidate_threshold_bytes: int = attrs.field(default=1048576, validator=_at_least(1))
    model: ModelConfig | None = None


@attrs.frozen(field_transformer=typed_fields)
class ScopeRule:
    """One scope rule: a ``target`` path, a ``permission`` (``read`` or ``write``) and
    whether it covers everything below the target (``recursive``).

    Use the subclasses :class:`AllowRule` and :class:`DenyRule`; rules of different kinds
    never compare equal. Targets from a manifest are absolute; targets built in code are
    kept as given.
    """

    target: Path = attrs.field(converter=to_path)
    permission: Permission = "read"
    recursive: bool = True


@attrs.frozen(field_transformer=typed_fields)
class AllowRule(ScopeRule):
    """Grant ``permission`` on ``target``: ``AllowRule("src/", "write")``."""


@attrs.frozen(field_transformer=typed_fields)
class DenyRule(ScopeRule):
    """Cap access to ``target`` strictly below ``permission``: ``read`` denies everything,
    ``write`` leaves read-only access."""


def _at_least_one_rule(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value:
        raise Invalid("at least one [[scope.allow]] rule is required", key=attribute.name)


@attrs.frozen(field_transformer=typed_fields)
class ScopeConfig:
    """The ``[scope]`` table: what the pod may read and write.

    ``allow`` needs at least one rule; ``deny`` rules cap the allowed ones. Both are unioned
    across manifest layers and kept in order with duplicates removed.
    """

    allow: tuple[AllowRule, ...] = attrs.field(
        default=(), converter=_unique, validator=_at_least_one_rule, metadata={UNION: True}
    )
    deny: tuple[DenyRule, ...] = attrs.field(default=(), converter=_unique, metadata={UNION: True})


@attrs.frozen(field_transformer=typed_fields)
class PermissionRule:
    """One ``[[permissions.rule]]``: calls of ``tool`` whose command or path argument
    matches the glob ``pattern`` get ``action`` (``allow``, ``deny`` or ``ask``)."""

    tool: str = attrs.field(validator=_non_empty)
    action: Action
    pattern: str = "*"


@attrs.frozen(field_transformer=typed_fields)
class PermissionsConfig:
    """The optional ``[permissions]`` table; not in effect yet, so loading refuses it.

    ``rules`` (TOML key ``rule``) are tried in order; ``default`` applies when none matches.
    """

    default: Action = "allow"
    rules: tuple[PermissionRule, ...] = attrs.field(
        default=(), converter=tuple, metadata={TOML_KEY: "rule"}
    )


@attrs.frozen(kw_only=True, field_transformer=typed_fields)
class Manifest:
    """A whole pod manifest, merged from its layers and validated.

    ``source`` is the most specific file it came from (``None`` for text and overlays
    only). Build one with :meth:`from_file`, :meth:`from_toml` or :func:`load_manifest`;
    every loading error is a :class:`~podactors.errors.ManifestError` naming the key path
    and the file that set it. ``[memory]`` and ``[permissions]`` are not in effect yet: a
    layer that sets them is refused.
    """

    pod: PodConfig
    model: ModelConfig = attrs.field(factory=ModelConfig)
    worker: WorkerConfig = attrs.field(factory=WorkerConfig)
    compaction: CompactionConfig | None = None
    memory: MemoryConfig | None = attrs.field(
        default=None, metadata={NOT_IN_EFFECT: "memories are not extracted"}
    )
    scope: ScopeConfig
    permissions: PermissionsConfig | None = attrs.field(
        default=None, metadata={NOT_IN_EFFECT: "tool permissions are not enforced"}
    )
    source: Path | None = attrs.field(default=None, metadata={TOML_KEY: None})
    _provenance: Provenance | None = attrs.field(
        default=None, repr=False, eq=False, metadata={TOML_KEY: None}
    )

    @classmethod
    def from_toml(cls, text: str, base_dir: str | os.PathLike[str] | None = None) -> Manifest:
        """Load one TOML document over the built-in defaults.

        Relative paths resolve against ``base_dir`` (default: the current directory);
        ``source`` is ``None``. Raises :class:`ManifestError`.
        """
        return _CASCADE.load_text(text, base_dir)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Manifest:
        """Load one manifest file over the built-in defaults, ignoring the cascade.

        Relative paths, and the default workdir, resolve against the file's directory.
        Raises :class:`ManifestError` naming the file.
        """
        return _CASCADE.load_file(path)

    def with_overlay(
        self, overlay: Mapping[str, Any], *, base_dir: str | os.PathLike[str] | None = None
    ) -> Manifest:
        """Return a new manifest with ``overlay`` merged on top, as the highest layer.

        ``overlay`` is nested like the TOML (``{"worker": {"max_turns": 5}}``); values may
        be attrs rules or paths, and ``None`` removes a key. Relative paths resolve against
        ``base_dir`` (default: the current directory). Raises :class:`ManifestError` with
        ``<overlay>`` as the file when the overlay is at fault.
        """
        below = self._provenance or Provenance.of(self, self.source)
        return _CASCADE.with_overlay(below, overlay, base_dir=base_dir)

    def instruction_text(self) -> str:
        """Return the system prompt template: ``worker.instruction`` or the content of
        ``worker.instruction_file`` (``""`` when neither is set).

        Raises :class:`ManifestError` naming ``worker.instruction_file`` when the file
        cannot be read.
        """
        if self.worker.instruction is not None:
            return self.worker.instruction
        path = self.worker.instruction_file
        if path is None:
            return ""
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            key = "worker.instruction_file"
            origin = self._provenance.origin_of(key) if self._provenance else self.source
            raise ManifestError(
                f"cannot read {path}: {exc.strerror}", key=key, file=origin
            ) from None

    def memory_dir(self) -> Path | None:
        """Return the memory directory resolved against the workdir, or ``None`` when
        ``[memory]`` is absent."""
        if self.memory is None:
            return None
        return self.pod.workdir / self.memory.dir


# --- loading ------------------------------------------------------------------------------


def _directory_defaults(base: Path) -> dict[str, Any]:
    """The defaults that depend on a directory; the rest live on the attrs classes."""
    return {"pod": {"workdir": str(base)}}


def _inherit_models(data: dict[str, Any]) -> None:
    """Let ``[compaction.model]``/``[memory.model]`` inherit what they omit from ``[model]``
    unless they name a different provider."""
    parent = data.get("model", {})
    parent_provider = parent.get("provider", DEFAULT_PROVIDER)
    for table in ("compaction", "memory"):
        child = data.get(table, {}).get("model")
        if child is not None and child.get("provider", parent_provider) == parent_provider:
            data[table]["model"] = {**parent, **child}


def _attach(manifest: Manifest, provenance: Provenance) -> Manifest:
    return attrs.evolve(manifest, source=provenance.source, provenance=provenance)


_CASCADE = Cascade(Manifest, defaults=_directory_defaults, attach=_attach, prepare=_inherit_models)


def load_manifest(
    path: str | os.PathLike[str] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    overlay: Mapping[str, Any] | None = None,
) -> Manifest:
    """Load a manifest through the whole cascade, lowest layer first.

    Built-in defaults, ``~/.config/podactors/manifest.toml``, the nearest
    ``.podactors/manifest.toml`` walking up from ``cwd``, the explicit ``path`` (relative to
    ``cwd``; it must exist) and ``overlay``. ``cwd`` defaults to the current directory.
    Relative paths resolve against the directory of the layer that wrote them (``cwd`` for
    the defaults and the overlay). ``source`` is the most specific file found. Raises
    :class:`ManifestError` naming the layer at fault.
    """
    return _CASCADE.load(path, cwd=cwd, overlay=overlay)
