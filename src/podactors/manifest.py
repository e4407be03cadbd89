"""The pod manifest: what a pod is, which model it talks to and what it may touch.

A manifest is TOML (see ``docs/manifest.md`` and the design note ``MANIFEST.md``). It is
loaded as a cascade of layers, lowest first: built-in defaults, the user's
``~/.config/podactors/manifest.toml``, the nearest ``.podactors/manifest.toml`` walking up
from the working directory, the file given explicitly and a programmatic overlay. Each layer
is checked for unknown keys and has its relative paths resolved against its own directory
before the layers are merged; the merged tables are then structured into frozen attrs classes
by a cattrs converter. Every failure is one :class:`~podactors.errors.ManifestError` whose
one-line message names the file, the dotted key path and what is wrong.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple, Union

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, override

from podactors.errors import ManifestError

__all__ = [
    "DEFAULT_PROVIDER",
    "PROJECT_MANIFEST",
    "PROVIDER_DEFAULTS",
    "USER_MANIFEST",
    "AllowRule",
    "CompactionConfig",
    "DenyRule",
    "Manifest",
    "MemoryConfig",
    "ModelConfig",
    "PermissionRule",
    "PermissionsConfig",
    "PodConfig",
    "ProviderDefaults",
    "ScopeConfig",
    "ScopeRule",
    "WorkerConfig",
    "load_manifest",
]

Provider = Literal["anthropic", "openai_chat", "openai_responses", "gemini", "scripted"]
RestartPolicy = Literal["permanent", "transient", "temporary"]
Permission = Literal["read", "write"]
Action = Literal["allow", "deny", "ask"]

#: Where the user-wide layer lives, relative to the home directory.
USER_MANIFEST = Path(".config/podactors/manifest.toml")
#: The project layer: the nearest one of these walking up from the working directory.
PROJECT_MANIFEST = Path(".podactors/manifest.toml")

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

# Field metadata: the key a field has in TOML (None: not a TOML key at all), and whether a
# path field is relative to the pod's workdir rather than to the layer that wrote it.
_TOML_KEY = "podactors.toml_key"
_RELATIVE_TO_WORKDIR = "podactors.relative_to_workdir"

# The lists that are unioned across layers instead of replaced.
_UNION_KEYS = frozenset({"scope.allow", "scope.deny"})

Origin = Path | str | None
_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


# --- validation helpers -------------------------------------------------------------


class _Invalid(ManifestError):
    """A value failed a field's check; ``detail`` is the message without key or file."""

    def __init__(self, detail: str, *, key: str | None = None) -> None:
        super().__init__(detail, key=key)
        self.detail = detail


def _describe(value: object) -> str:
    """Name a TOML value the way a user wrote it, for 'got …' in messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    return repr(os.fspath(value) if isinstance(value, os.PathLike) else value)


def _expected_choice(choices: Iterable[str], value: object) -> str:
    listed = ", ".join(repr(choice) for choice in choices)
    return f"expected one of {listed}, got {_describe(value)}"


def _one_of(*choices: str) -> _Validator:
    """A validator that accepts exactly one of ``choices``."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in choices:
            raise _Invalid(_expected_choice(choices, value), key=attribute.name)

    return check


def _int_at_least(minimum: int) -> _Validator:
    """A validator for an integer (never a bool) no smaller than ``minimum``."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Invalid(f"expected an integer, got {_describe(value)}", key=attribute.name)
        if value < minimum:
            raise _Invalid(f"must be at least {minimum}, got {value}", key=attribute.name)

    return check


def _number_at_least(minimum: float) -> _Validator:
    """A validator for a number (int or float, never a bool) no smaller than ``minimum``."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise _Invalid(f"expected a number, got {_describe(value)}", key=attribute.name)
        if value < minimum:
            raise _Invalid(f"must be at least {minimum}, got {value}", key=attribute.name)

    return check


def _is_bool(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_describe(value)}", key=attribute.name)


def _non_empty_str(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"expected a non-empty string, got {_describe(value)}", key=attribute.name)


def _pod_name(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    _non_empty_str(_instance, attribute, value)
    if re.search(r"[\s/\\]", value):
        raise _Invalid(
            f"must not contain whitespace or slashes, got {_describe(value)}", key=attribute.name
        )


def _to_path(value: str | os.PathLike[str]) -> Path:
    return Path(value)


def _to_optional_path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


def _unique_allow(rules: Iterable[AllowRule]) -> tuple[AllowRule, ...]:
    """Keep the first of equal rules, in order (the union of ``scope.allow`` lists)."""
    return tuple(dict.fromkeys(rules))


def _unique_deny(rules: Iterable[DenyRule]) -> tuple[DenyRule, ...]:
    """Keep the first of equal rules, in order (the union of ``scope.deny`` lists)."""
    return tuple(dict.fromkeys(rules))


# --- the tables -----------------------------------------------------------------------


@attrs.frozen
class PodConfig:
    """The ``[pod]`` table: the pod's name, working directory and restart policy.

    ``name`` is required and may not contain whitespace or slashes. ``workdir`` is resolved
    against the directory of the layer that set it (``.`` when no layer did: the working
    directory of :func:`load_manifest`, the file's directory for :meth:`Manifest.from_file`).
    ``restart`` is the supervisor policy: ``permanent``, ``transient`` or ``temporary``.
    """

    name: str = attrs.field(validator=_pod_name)
    workdir: Path = attrs.field(default=Path("."), converter=_to_path)
    restart: RestartPolicy = attrs.field(
        default="transient", validator=_one_of(*typing.get_args(RestartPolicy))
    )


def _default_model(config: ModelConfig) -> str:
    return PROVIDER_DEFAULTS[config.provider].model


def _default_base_url(config: ModelConfig) -> str | None:
    return PROVIDER_DEFAULTS[config.provider].base_url


def _default_api_key_env(config: ModelConfig) -> str | None:
    return PROVIDER_DEFAULTS[config.provider].api_key_env


def _script_if_scripted(instance: ModelConfig, attribute: attrs.Attribute[Any], value: Any) -> None:
    if instance.provider == "scripted" and value is None:
        raise _Invalid("required when provider is 'scripted'", key=attribute.name)


@attrs.frozen
class ModelConfig:
    """The ``[model]`` table (also ``[compaction.model]`` and ``[memory.model]``).

    ``model``, ``base_url`` and ``api_key_env`` default per provider (see
    :data:`PROVIDER_DEFAULTS`);
    the ``scripted`` provider has neither but requires ``script``, a TOML file of replies.
    The API key itself is never stored here, only where to find it, so it cannot leak
    through a repr; :meth:`api_key` reads it on demand.
    """

    provider: Provider = attrs.field(
        default=DEFAULT_PROVIDER, validator=_one_of(*typing.get_args(Provider))
    )
    model: str = attrs.field(
        default=attrs.Factory(_default_model, takes_self=True), validator=_non_empty_str
    )
    base_url: str | None = attrs.field(default=attrs.Factory(_default_base_url, takes_self=True))
    api_key_env: str | None = attrs.field(
        default=attrs.Factory(_default_api_key_env, takes_self=True)
    )
    api_key_file: Path | None = attrs.field(default=None, converter=_to_optional_path)
    context_window: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_int_at_least(1))
    )
    script: Path | None = attrs.field(
        default=None, converter=_to_optional_path, validator=_script_if_scripted
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
        raise _Invalid(
            "set either worker.instruction or worker.instruction_file, not both",
            key=attribute.name,
        )


@attrs.frozen
class WorkerConfig:
    """The ``[worker]`` table: the system prompt and the limits of one run.

    At most one of ``instruction`` (inline Jinja template) and ``instruction_file`` may be
    set; :meth:`Manifest.instruction_text` returns whichever is. ``max_turns`` bounds the LLM
    calls per run; ``tool_output_max_bytes`` caps what one tool result may put in context.
    """

    instruction: str | None = None
    instruction_file: Path | None = attrs.field(
        default=None, converter=_to_optional_path, validator=_not_both_instructions
    )
    max_tokens: int = attrs.field(default=4096, validator=_int_at_least(1))
    temperature: float = attrs.field(default=0.2, validator=_number_at_least(0.0))
    max_turns: int = attrs.field(default=50, validator=_int_at_least(1))
    tool_output_max_bytes: int = attrs.field(default=65536, validator=_int_at_least(1))


@attrs.frozen
class CompactionConfig:
    """The optional ``[compaction]`` table; when it is absent nothing is pruned or compacted.

    ``threshold`` (checked between runs) and ``request_threshold`` (checked before each LLM
    request) are token counts; either is off when ``None``. ``model`` is the compaction
    worker's model; ``None`` means the pod's own. A ``[compaction.model]`` table that names no
    provider, or the pod's provider, inherits the keys it leaves out from ``[model]``.
    """

    threshold: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_int_at_least(1))
    )
    request_threshold: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_int_at_least(1))
    )
    retained_tokens: int = attrs.field(default=8000, validator=_int_at_least(0))
    auto_read_budget: int = attrs.field(default=8000, validator=_int_at_least(0))
    worker_max_input_tokens: int = attrs.field(default=50000, validator=_int_at_least(1))
    worker_max_turns: int = attrs.field(default=20, validator=_int_at_least(1))
    prune_protected_tokens: int = attrs.field(default=8000, validator=_int_at_least(0))
    prune_min_savings: int = attrs.field(default=4096, validator=_int_at_least(0))
    model: ModelConfig | None = None


@attrs.frozen
class MemoryConfig:
    """The optional ``[memory]`` table; when it is absent no memories are extracted.

    ``dir`` is relative to the pod's workdir (see :meth:`Manifest.memory_dir`), not to the
    manifest file. ``extract_threshold`` and ``idle_after_seconds`` are off when 0. ``model``
    behaves as in :class:`CompactionConfig`.
    """

    dir: Path = attrs.field(
        default=Path(".podactors/memory"),
        converter=_to_path,
        metadata={_RELATIVE_TO_WORKDIR: True},
    )
    extract_threshold: int = attrs.field(default=30000, validator=_int_at_least(0))
    idle_after_seconds: int = attrs.field(default=900, validator=_int_at_least(0))
    consolidate_threshold_files: int = attrs.field(default=50, validator=_int_at_least(1))
    consolidate_threshold_bytes: int = attrs.field(default=1048576, validator=_int_at_least(1))
    model: ModelConfig | None = None


@attrs.frozen
class ScopeRule:
    """One scope rule: a ``target`` path, a ``permission`` (``read`` or ``write``) and
    whether it covers everything below the target (``recursive``).

    Use the subclasses :class:`AllowRule` and :class:`DenyRule`; rules of different kinds
    never compare equal. Targets from a manifest are absolute; targets built in code are
    kept as given.
    """

    target: Path = attrs.field(converter=_to_path)
    permission: Permission = attrs.field(
        default="read", validator=_one_of(*typing.get_args(Permission))
    )
    recursive: bool = attrs.field(default=True, validator=_is_bool)


@attrs.frozen
class AllowRule(ScopeRule):
    """Grant ``permission`` on ``target``: ``AllowRule("src/", "write")``."""


@attrs.frozen
class DenyRule(ScopeRule):
    """Cap access to ``target`` strictly below ``permission``: ``read`` denies everything,
    ``write`` leaves read-only access."""


def _at_least_one_rule(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value:
        raise _Invalid("at least one [[scope.allow]] rule is required", key=attribute.name)


@attrs.frozen
class ScopeConfig:
    """The ``[scope]`` table: what the pod may read and write.

    ``allow`` needs at least one rule; ``deny`` rules cap the allowed ones. Both are unioned
    across manifest layers and kept in order with duplicates removed.
    """

    allow: tuple[AllowRule, ...] = attrs.field(
        default=(), converter=_unique_allow, validator=_at_least_one_rule
    )
    deny: tuple[DenyRule, ...] = attrs.field(default=(), converter=_unique_deny)


@attrs.frozen
class PermissionRule:
    """One ``[[permissions.rule]]``: calls of ``tool`` whose command or path argument
    matches the glob ``pattern`` get ``action`` (``allow``, ``deny`` or ``ask``)."""

    tool: str = attrs.field(validator=_non_empty_str)
    action: Action = attrs.field(validator=_one_of(*typing.get_args(Action)))
    pattern: str = "*"


@attrs.frozen
class PermissionsConfig:
    """The optional ``[permissions]`` table; when it is absent every tool call is allowed.

    ``rules`` (TOML key ``rule``) are tried in order; ``default`` applies when none matches.
    """

    default: Action = attrs.field(default="allow", validator=_one_of(*typing.get_args(Action)))
    rules: tuple[PermissionRule, ...] = attrs.field(
        default=(), converter=tuple, metadata={_TOML_KEY: "rule"}
    )


@attrs.frozen
class _Provenance:
    """The merged raw tables a manifest was built from and which layer set each key."""

    raw: Mapping[str, Any]
    origins: Mapping[str, Origin]


@attrs.frozen(kw_only=True)
class Manifest:
    """A whole pod manifest, merged from its layers and validated.

    ``source`` is the most specific file it came from (``None`` for text and overlays
    only). Build one with :meth:`from_file`, :meth:`from_toml` or :func:`load_manifest`;
    every loading error is a :class:`~podactors.errors.ManifestError` naming the key path
    and the file that set it.
    """

    pod: PodConfig
    model: ModelConfig = attrs.field(factory=ModelConfig)
    worker: WorkerConfig = attrs.field(factory=WorkerConfig)
    compaction: CompactionConfig | None = None
    memory: MemoryConfig | None = None
    scope: ScopeConfig
    permissions: PermissionsConfig | None = None
    source: Path | None = attrs.field(default=None, metadata={_TOML_KEY: None})
    _provenance: _Provenance | None = attrs.field(
        default=None, repr=False, eq=False, metadata={_TOML_KEY: None}
    )

    @classmethod
    def from_toml(cls, text: str, base_dir: str | os.PathLike[str] | None = None) -> Manifest:
        """Load one TOML document over the built-in defaults.

        Relative paths resolve against ``base_dir`` (default: the current directory);
        ``source`` is ``None``. Raises :class:`ManifestError`.
        """
        base = Path.cwd() if base_dir is None else Path(base_dir).absolute()
        layers = [_builtin_layer(base), _toml_layer(text, base, origin=None)]
        return _build(layers, source=None)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Manifest:
        """Load one manifest file over the built-in defaults, ignoring the cascade.

        Relative paths, and the default workdir, resolve against the file's directory.
        Raises :class:`ManifestError` naming the file.
        """
        file = Path(path).absolute()
        return _build([_builtin_layer(file.parent), _file_layer(file)], source=file)

    def with_overlay(
        self, overlay: Mapping[str, Any], *, base_dir: str | os.PathLike[str] | None = None
    ) -> Manifest:
        """Return a new manifest with ``overlay`` merged on top, as the highest layer.

        ``overlay`` is nested like the TOML (``{"worker": {"max_turns": 5}}``); values may
        be attrs rules or paths, and ``None`` removes a key. Relative paths resolve against
        ``base_dir`` (default: the current directory). Raises :class:`ManifestError` with
        ``<overlay>`` as the file when the overlay is at fault.
        """
        base = Path.cwd() if base_dir is None else Path(base_dir).absolute()
        provenance = self._provenance or _Provenance(raw=_plain(self), origins={})
        raw = copy.deepcopy(dict(provenance.raw))
        origins = dict(provenance.origins)
        _merge_into(raw, _overlay_layer(overlay, base).raw, origins, "<overlay>", "")
        return _structure(raw, origins, self.source)

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
            raise ManifestError(
                f"cannot read {path}: {exc.strerror}", key=key, file=self._origin_of(key)
            ) from None

    def memory_dir(self) -> Path | None:
        """Return the memory directory resolved against the workdir, or ``None`` when
        ``[memory]`` is absent."""
        if self.memory is None:
            return None
        return self.pod.workdir / self.memory.dir

    def _origin_of(self, key: str) -> Origin:
        origins = self._provenance.origins if self._provenance else {}
        return _origin_of(key, origins, self.source)


# --- layers -------------------------------------------------------------------------


@attrs.frozen
class _Layer:
    """One layer of the cascade: its tables (paths resolved) and where they came from."""

    raw: Mapping[str, Any]
    origin: Origin


def _builtin_layer(base: Path) -> _Layer:
    """The defaults that depend on a directory; the rest live on the attrs classes."""
    return _Layer(raw={"pod": {"workdir": str(base)}}, origin=None)


def _file_layer(path: Path) -> _Layer:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read manifest: {exc.strerror}", file=path) from None
    return _toml_layer(text, _layer_base(path), origin=path)


def _layer_base(path: Path) -> Path:
    """What a file's relative paths resolve against: its directory, or the project root
    for a file inside a ``.podactors/`` directory."""
    directory = path.parent
    return directory.parent if directory.name == PROJECT_MANIFEST.parent.name else directory


def _toml_layer(text: str, base: Path, *, origin: Origin) -> _Layer:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"invalid TOML: {exc}", file=origin) from None
    return _Layer(raw=_check_table(raw, Manifest, "", origin, base), origin=origin)


def _overlay_layer(overlay: Mapping[str, Any], base: Path) -> _Layer:
    origin = "<overlay>"
    raw = _plain(overlay)
    if not isinstance(raw, dict):
        raise ManifestError(f"expected a table, got {_describe(raw)}", file=origin)
    return _Layer(raw=_check_table(raw, Manifest, "", origin, base), origin=origin)


def _plain(value: Any) -> Any:
    """Turn attrs instances, tuples and paths into the dicts, lists and strings of TOML."""
    if attrs.has(type(value)):
        fields = _toml_fields(type(value)).items()
        items = ((key, getattr(value, field.name)) for key, field in fields)
        return {key: _plain(item) for key, item in items if item is not None}
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


# --- checking one layer against the schema ------------------------------------------------


def _toml_fields(cls: type) -> dict[str, attrs.Attribute[Any]]:
    """The fields of an attrs class by their TOML key, leaving out non-TOML fields."""
    fields: dict[str, attrs.Attribute[Any]] = {}
    for field in attrs.fields(cls):
        key = field.metadata.get(_TOML_KEY, field.name)
        if key is not None:
            fields[key] = field
    return fields


def _toml_key(cls: type, attribute: str) -> str:
    for key, field in _toml_fields(cls).items():
        if field.name == attribute:
            return key
    return attribute


def _without_none(tp: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _table_class(tp: Any) -> type | None:
    inner = _without_none(tp)
    return inner if isinstance(inner, type) and attrs.has(inner) else None


def _array_item_class(tp: Any) -> type | None:
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _table_class(args[0])
    return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unknown_key(key: str, known: Iterable[str]) -> str:
    message = f"unknown key {key!r}"
    close = difflib.get_close_matches(key, list(known), n=1)
    return f"{message} (did you mean {close[0]!r}?)" if close else message


def _check_table(
    raw: Mapping[str, Any], cls: type, path: str, origin: Origin, base: Path
) -> dict[str, Any]:
    """Copy one layer's table, rejecting unknown keys and resolving relative paths."""
    fields = _toml_fields(cls)
    checked: dict[str, Any] = {}
    for key, value in raw.items():
        key_path = _join(path, key)
        field = fields.get(key)
        if field is None:
            raise ManifestError(_unknown_key(key, fields), key=key_path, file=origin)
        checked[key] = _check_value(value, field, key_path, origin, base)
    return checked


def _check_value(
    value: Any, field: attrs.Attribute[Any], path: str, origin: Origin, base: Path
) -> Any:
    if value is None:  # only overlays can say this: remove the key
        return None
    if (table := _table_class(field.type)) is not None:
        if not isinstance(value, Mapping):
            raise ManifestError(f"expected a table, got {_describe(value)}", key=path, file=origin)
        return _check_table(value, table, path, origin, base)
    if (item := _array_item_class(field.type)) is not None:
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            message = f"expected an array of tables, got {_describe(value)}"
            raise ManifestError(message, key=path, file=origin)
        return [_check_table(v, item, f"{path}[{i}]", origin, base) for i, v in enumerate(value)]
    if _is_layer_relative_path(field) and isinstance(value, str):
        return _resolve(value, base)
    return value


def _is_layer_relative_path(field: attrs.Attribute[Any]) -> bool:
    return _without_none(field.type) is Path and not field.metadata.get(_RELATIVE_TO_WORKDIR)


def _resolve(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    return os.path.normpath(path if path.is_absolute() else base / path)


# --- merging layers -----------------------------------------------------------------------


def _merge_into(
    dst: dict[str, Any],
    src: Mapping[str, Any],
    origins: dict[str, Origin],
    origin: Origin,
    prefix: str,
) -> None:
    """Merge ``src`` over ``dst`` in place, recording in ``origins`` which layer set what.

    Tables merge by key, ``scope.allow``/``scope.deny`` are concatenated (duplicates are
    dropped when structured), anything else is replaced.
    """
    for key, value in src.items():
        path = _join(prefix, key)
        if value is None:
            dst.pop(key, None)
        elif path in _UNION_KEYS:
            existing = dst.setdefault(key, [])
            for item in value:
                origins[f"{path}[{len(existing)}]"] = origin
                existing.append(copy.deepcopy(item))
        elif isinstance(value, Mapping):
            if not isinstance(dst.get(key), dict):
                dst[key] = {}
            _merge_into(dst[key], value, origins, origin, path)
        else:
            dst[key] = copy.deepcopy(value)
            origins[path] = origin


def _build(layers: Iterable[_Layer], *, source: Path | None) -> Manifest:
    raw: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    for layer in layers:
        _merge_into(raw, layer.raw, origins, layer.origin, "")
    return _structure(raw, origins, source)


def _inherit_models(data: dict[str, Any]) -> None:
    """Let ``[compaction.model]``/``[memory.model]`` inherit what they omit from ``[model]``
    unless they name a different provider."""
    parent = data.get("model", {})
    parent_provider = parent.get("provider", DEFAULT_PROVIDER)
    for table in ("compaction", "memory"):
        child = data.get(table, {}).get("model")
        if child is not None and child.get("provider", parent_provider) == parent_provider:
            data[table]["model"] = {**parent, **child}


def _structure(raw: Mapping[str, Any], origins: dict[str, Origin], source: Path | None) -> Manifest:
    data = copy.deepcopy(dict(raw))
    _inherit_models(data)
    data.setdefault("pod", {})
    data.setdefault("scope", {})
    try:
        manifest = _CONVERTER.structure(data, Manifest)
    except Exception as exc:  # cattrs groups, validator errors, …: one readable error
        raise _manifest_error(exc, origins, source) from None
    return attrs.evolve(manifest, source=source, provenance=_Provenance(raw, origins))


# --- turning structuring failures into one ManifestError ----------------------------------


def _leaves(exc: BaseException, path: str) -> Iterator[tuple[str, BaseException]]:
    """Walk cattrs' exception groups, yielding each leaf error with its dotted key path."""
    if isinstance(exc, ClassValidationError | IterableValidationError):
        for sub in exc.exceptions:
            yield from _leaves(sub, _child_path(path, sub, exc.cl))
    else:
        yield path, exc


def _child_path(path: str, exc: BaseException, cls: type) -> str:
    """Extend ``path`` by the attribute or index cattrs noted on ``exc``."""
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, AttributeValidationNote):
            return _join(path, _toml_key(cls, note.name))
        if isinstance(note, IterableValidationNote):
            return f"{path}[{note.index}]"
    return path


def _parent_key(path: str) -> str:
    """``a.b[0].c`` -> ``a.b[0]`` -> ``a.b`` -> ``a`` -> ``""``."""
    return re.sub(r"(^|\.)[^.\[]+$|\[\d+\]$", "", path)


def _origin_of(path: str, origins: Mapping[str, Origin], fallback: Origin) -> Origin:
    """The layer that set ``path`` or its nearest recorded parent, else ``fallback``."""
    while path:
        if path in origins:
            return origins[path] or fallback
        path = _parent_key(path)
    return fallback


def _manifest_error(
    exc: Exception, origins: Mapping[str, Origin], fallback: Origin
) -> ManifestError:
    """The first failure in ``exc`` as one line naming the key path and its layer's file."""
    path, leaf = next(_leaves(exc, ""))
    if isinstance(leaf, _Invalid):
        key, detail = (_join(path, leaf.key) if leaf.key else path), leaf.detail
    elif isinstance(leaf, KeyError):
        key, detail = path, "required key is missing"
    elif isinstance(leaf, ForbiddenExtraKeysError):
        extra = sorted(leaf.extra_fields)[0]
        key, detail = _join(path, extra), _unknown_key(extra, _toml_fields(leaf.cl))
    else:
        key, detail = path, f"invalid value ({type(leaf).__name__}: {leaf})"
    detail = " ".join(detail.split())
    return ManifestError(detail, key=key or None, file=_origin_of(key, origins, fallback))


# --- the converter ------------------------------------------------------------------------


def _structure_int(value: Any, _tp: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _Invalid(f"expected an integer, got {_describe(value)}")


def _structure_float(value: Any, _tp: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _Invalid(f"expected a number, got {_describe(value)}")


def _structure_bool(value: Any, _tp: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _Invalid(f"expected true or false, got {_describe(value)}")


def _structure_str(value: Any, _tp: Any) -> str:
    if isinstance(value, str):
        return value
    raise _Invalid(f"expected a string, got {_describe(value)}")


def _structure_path(value: Any, _tp: Any) -> Path:
    if isinstance(value, str | os.PathLike):
        return Path(value)
    raise _Invalid(f"expected a path string, got {_describe(value)}")


def _is_literal(tp: Any) -> bool:
    return typing.get_origin(tp) is Literal


def _structure_literal(value: Any, tp: Any) -> Any:
    choices = typing.get_args(tp)
    if value in choices and isinstance(value, str):
        return value
    raise _Invalid(_expected_choice(choices, value))


def _make_converter() -> cattrs.Converter:
    """A strict converter: no extra keys, no silent int('4') or bool('false')."""
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(Path, _structure_path)
    converter.register_structure_hook_func(_is_literal, _structure_literal)
    converter.register_structure_hook(
        PermissionsConfig,
        make_dict_structure_fn(PermissionsConfig, converter, rules=override(rename="rule")),
    )
    converter.register_structure_hook(
        Manifest,
        make_dict_structure_fn(
            Manifest, converter, source=override(omit=True), _provenance=override(omit=True)
        ),
    )
    return converter


for _cls in (
    PodConfig,
    ModelConfig,
    WorkerConfig,
    CompactionConfig,
    MemoryConfig,
    ScopeRule,
    AllowRule,
    DenyRule,
    ScopeConfig,
    PermissionRule,
    PermissionsConfig,
    _Provenance,
    Manifest,
):
    attrs.resolve_types(_cls, globals(), locals())

_CONVERTER = _make_converter()


# --- the cascade --------------------------------------------------------------------------


def _find_project_manifest(cwd: Path) -> Path | None:
    """The nearest ``.podactors/manifest.toml`` in ``cwd`` or one of its parents."""
    for directory in (cwd, *cwd.parents):
        candidate = directory / PROJECT_MANIFEST
        if candidate.is_file():
            return candidate
    return None


def _cascade_files(path: str | os.PathLike[str] | None, cwd: Path, home: Path) -> list[Path]:
    user = home / USER_MANIFEST
    candidates = [
        user if user.is_file() else None,
        _find_project_manifest(cwd),
        None if path is None else cwd / path,
    ]
    files: list[Path] = []
    for candidate in candidates:
        if candidate is not None and all(not _same_file(candidate, f) for f in files):
            files.append(candidate)
    return files


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def load_manifest(
    path: str | os.PathLike[str] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    overlay: Mapping[str, Any] | None = None,
    home: str | os.PathLike[str] | None = None,
) -> Manifest:
    """Load a manifest through the whole cascade, lowest layer first.

    Built-in defaults, ``<home>/.config/podactors/manifest.toml``, the nearest
    ``.podactors/manifest.toml`` walking up from ``cwd``, the explicit ``path`` (relative to
    ``cwd``; it must exist) and ``overlay``. ``cwd`` defaults to the current directory and
    ``home`` to ``Path.home()``. Relative paths resolve against the directory of the layer
    that wrote them (``cwd`` for the defaults and the overlay). ``source`` is the most
    specific file found. Raises :class:`ManifestError` naming the layer at fault.
    """
    base = Path.cwd() if cwd is None else Path(cwd).absolute()
    home_dir = Path.home() if home is None else Path(home)
    files = _cascade_files(path, base, home_dir)
    layers = [_builtin_layer(base), *(_file_layer(file) for file in files)]
    if overlay is not None:
        layers.append(_overlay_layer(overlay, base))
    return _build(layers, source=files[-1] if files else None)
