"""A generic TOML cascade: layers of tables, merged and structured into frozen attrs classes.

Nothing here knows the manifest schema. A :class:`Cascade` is given the root attrs class and a
few hooks, and reads everything else from the fields' types and metadata (:data:`TOML_KEY`,
:data:`AS_WRITTEN`, :data:`UNION`, :data:`NOT_IN_EFFECT`). A document is loaded as layers,
lowest first: built-in defaults, the user's ``~/.config/podactors/manifest.toml``, the nearest
``.podactors/manifest.toml`` walking up from the working directory, the file given explicitly
and a programmatic overlay. Each layer is checked for unknown keys and has its relative paths
resolved against its own directory before the layers are merged; the merged tables are then
structured by a strict cattrs converter. Every failure is one
:class:`~podactors.errors.ManifestError` whose one-line message names the file, the dotted key
path and what is wrong.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Generic, Literal, NamedTuple, TypeVar, Union

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
    "AS_WRITTEN",
    "NOT_IN_EFFECT",
    "PROJECT_MANIFEST",
    "TOML_KEY",
    "UNION",
    "USER_MANIFEST",
    "Cascade",
    "Invalid",
    "Origin",
    "Provenance",
    "check",
    "describe",
    "find_project_manifest",
    "to_optional_path",
    "to_path",
    "typed_fields",
]

T = TypeVar("T")

#: Where the user-wide layer lives, relative to the home directory.
USER_MANIFEST = Path(".config/podactors/manifest.toml")
#: The project layer: the nearest one of these walking up from the working directory.
PROJECT_MANIFEST = Path(".podactors/manifest.toml")

#: Field metadata: the field's TOML key when it is not the field's name (``None``: no key).
TOML_KEY = "podactors.toml_key"
#: Field metadata: a path kept as written instead of resolved against its layer's directory.
AS_WRITTEN = "podactors.as_written"
#: Field metadata: an array concatenated across layers instead of replaced.
UNION = "podactors.union"
#: Field metadata: why the key does nothing yet; a layer that sets it is refused.
NOT_IN_EFFECT = "podactors.not_in_effect"

#: The layer that set a key: its file, ``"<overlay>"``, or ``None`` (defaults and text).
Origin = Path | str | None
_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


# --- strict values ------------------------------------------------------------------------


class Invalid(ManifestError):
    """A value failed a field's check; ``detail`` is the message without key or file."""

    def __init__(self, detail: str, *, key: str | None = None) -> None:
        super().__init__(detail, key=key)
        self.detail = detail


def describe(value: object) -> str:
    """Name a TOML value the way a user wrote it, for the 'got …' of a message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    return repr(os.fspath(value) if isinstance(value, os.PathLike) else value)


class _Scalar(NamedTuple):
    """What a scalar type accepts, how it is named in messages and how it is converted."""

    expected: str
    accepts: Callable[[Any], bool]
    convert: Callable[[Any], Any]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# No silent int("4"), bool("false") or str(3): each type takes only what TOML writes for it.
_SCALARS: Mapping[type, _Scalar] = {
    bool: _Scalar("true or false", lambda value: isinstance(value, bool), bool),
    int: _Scalar("an integer", _is_int, int),
    float: _Scalar("a number", _is_number, float),
    str: _Scalar("a string", lambda value: isinstance(value, str), str),
    Path: _Scalar("a path string", lambda value: isinstance(value, str | os.PathLike), Path),
}


def _is_literal(tp: Any) -> bool:
    return typing.get_origin(tp) is Literal


def _is_scalar(tp: Any) -> bool:
    return _is_literal(tp) or (isinstance(tp, type) and tp in _SCALARS)


def check(value: Any, tp: Any, *, key: str | None = None) -> Any:
    """Return ``value`` as the scalar type ``tp`` (a ``Literal`` or ``bool``, ``int``,
    ``float``, ``str``, ``Path``) or raise :class:`Invalid` naming ``key``; never coerces."""
    if _is_literal(tp):
        choices = typing.get_args(tp)
        if isinstance(value, str) and value in choices:
            return value
        listed = ", ".join(repr(choice) for choice in choices)
        raise Invalid(f"expected one of {listed}, got {describe(value)}", key=key)
    scalar = _SCALARS[tp]
    if scalar.accepts(value):
        return scalar.convert(value)
    raise Invalid(f"expected {scalar.expected}, got {describe(value)}", key=key)


def to_path(value: str | os.PathLike[str]) -> Path:
    """The attrs converter of a path field: a string or path-like as a :class:`Path`."""
    path: Path = check(value, Path)
    return path


def to_optional_path(value: str | os.PathLike[str] | None) -> Path | None:
    """The attrs converter of an optional path field: like :func:`to_path`, ``None`` kept."""
    return None if value is None else to_path(value)


def _without_none(tp: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _type_validator(tp: Any) -> _Validator | None:
    """The validator that checks a field of type ``tp``, if that is a scalar or an optional one."""
    inner = _without_none(tp)
    if not _is_scalar(inner):
        return None
    optional = inner is not tp

    def check_type(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not (optional and value is None):
            check(value, inner, key=attribute.name)

    return check_type


def typed_fields(cls: type, fields: list[attrs.Attribute[Any]]) -> list[attrs.Attribute[Any]]:
    """An attrs ``field_transformer``: resolve each field's type and check values against it.

    Scalar fields (and optional ones) get the same strict check the converter applies to
    TOML, ahead of their own validators, so classes built in code are validated too.
    """
    hints = typing.get_type_hints(cls)
    own = inspect.get_annotations(cls)
    typed: list[attrs.Attribute[Any]] = []
    for field in fields:
        if field.name not in own:  # inherited: already transformed with its own class
            typed.append(field)
            continue
        tp = hints.get(field.name, field.type)
        validators = [v for v in (_type_validator(tp), field.validator) if v is not None]
        validator = attrs.validators.and_(*validators) if validators else None
        typed.append(field.evolve(type=tp, validator=validator))
    return typed


# --- the schema, read from the attrs classes ------------------------------------------------


def _toml_fields(cls: type) -> dict[str, attrs.Attribute[Any]]:
    """The fields of an attrs class by their TOML key, leaving out non-TOML fields."""
    fields: dict[str, attrs.Attribute[Any]] = {}
    for field in attrs.fields(cls):
        key = field.metadata.get(TOML_KEY, field.name)
        if key is not None:
            fields[key] = field
    return fields


def _toml_key(cls: type, attribute: str) -> str:
    if attrs.has(cls):
        for key, field in _toml_fields(cls).items():
            if field.name == attribute:
                return key
    return attribute


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


# --- checking one layer ----------------------------------------------------------------------


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
    table = _table_class(field.type)
    if (why := field.metadata.get(NOT_IN_EFFECT)) is not None:
        what = "table" if table is not None else "key"
        message = f"not in effect yet in this version ({why}); remove the {what}"
        raise ManifestError(message, key=path, file=origin)
    if table is not None:
        if not isinstance(value, Mapping):
            raise ManifestError(f"expected a table, got {describe(value)}", key=path, file=origin)
        return _check_table(value, table, path, origin, base)
    if (item := _array_item_class(field.type)) is not None:
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            message = f"expected an array of tables, got {describe(value)}"
            raise ManifestError(message, key=path, file=origin)
        return [_check_table(v, item, f"{path}[{i}]", origin, base) for i, v in enumerate(value)]
    if _is_layer_relative_path(field) and isinstance(value, str):
        return _resolve(value, base)
    return value


def _is_layer_relative_path(field: attrs.Attribute[Any]) -> bool:
    return _without_none(field.type) is Path and not field.metadata.get(AS_WRITTEN)


def _resolve(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    return os.path.normpath(path if path.is_absolute() else base / path)


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


# --- merging layers --------------------------------------------------------------------------


def _merge_into(
    dst: dict[str, Any],
    src: Mapping[str, Any],
    cls: type,
    origins: dict[str, Origin],
    origin: Origin,
    prefix: str,
) -> None:
    """Merge the checked table ``src`` of class ``cls`` over ``dst`` in place, recording in
    ``origins`` which layer set what.

    Tables merge by key, :data:`UNION` arrays are concatenated (the field's converter may
    drop duplicates), anything else is replaced; ``None`` removes a key.
    """
    fields = _toml_fields(cls)
    for key, value in src.items():
        path = _join(prefix, key)
        field = fields[key]
        table = _table_class(field.type)
        if value is None:
            dst.pop(key, None)
        elif field.metadata.get(UNION):
            existing = dst.setdefault(key, [])
            for item in value:
                origins[f"{path}[{len(existing)}]"] = origin
                existing.append(copy.deepcopy(item))
        elif table is not None:
            if not isinstance(dst.get(key), dict):
                dst[key] = {}
            _merge_into(dst[key], value, table, origins, origin, path)
        else:
            dst[key] = copy.deepcopy(value)
            origins[path] = origin


def _fill_required_tables(data: dict[str, Any], cls: type) -> None:
    """Give each required table that no layer wrote an empty one, so that the error names
    the missing key inside it rather than the table."""
    for key, field in _toml_fields(cls).items():
        table = _table_class(field.type)
        if table is not None and field.default is attrs.NOTHING:
            _fill_required_tables(data.setdefault(key, {}), table)


# --- turning structuring failures into one ManifestError -------------------------------------


def _leaves(exc: BaseException, path: str, cls: type) -> Iterator[tuple[str, type, BaseException]]:
    """Walk cattrs' exception groups, yielding each leaf error with its dotted key path and
    the class being structured."""
    if isinstance(exc, ClassValidationError | IterableValidationError):
        for sub in exc.exceptions:
            yield from _leaves(sub, _child_path(path, sub, exc.cl), exc.cl)
    else:
        yield path, cls, exc


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


def _error(
    exc: Exception, root: type, origins: Mapping[str, Origin], fallback: Origin
) -> ManifestError:
    """The first failure in ``exc`` as one line naming the key path and its layer's file."""
    path, cls, leaf = next(_leaves(exc, "", root))
    if isinstance(leaf, Invalid):
        key, detail = (_join(path, _toml_key(cls, leaf.key)) if leaf.key else path), leaf.detail
    elif isinstance(leaf, KeyError):
        key, detail = path, "required key is missing"
    elif isinstance(leaf, ForbiddenExtraKeysError):
        extra = sorted(leaf.extra_fields)[0]
        key, detail = _join(path, extra), _unknown_key(extra, _toml_fields(leaf.cl))
    else:
        key, detail = path, f"invalid value ({type(leaf).__name__}: {leaf})"
    detail = " ".join(detail.split())
    return ManifestError(detail, key=key or None, file=_origin_of(key, origins, fallback))


# --- the converter ---------------------------------------------------------------------------


def _make_converter() -> cattrs.Converter:
    """A strict converter: no extra keys, no coerced scalars, TOML keys from field metadata."""
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    for scalar in _SCALARS:  # by type, ahead of cattrs' own hooks for the builtins
        converter.register_structure_hook(scalar, check)
    converter.register_structure_hook_func(_is_literal, check)

    def structure_table(cls: type) -> Any:
        overrides: dict[str, Any] = {}
        for field in attrs.fields(cls):
            key = field.metadata.get(TOML_KEY, field.name)
            if key is None:
                overrides[field.name] = override(omit=True)
            elif key != field.name:
                overrides[field.name] = override(rename=key)
        return make_dict_structure_fn(cls, converter, **overrides)

    converter.register_structure_hook_factory(attrs.has, structure_table)
    return converter


_CONVERTER = _make_converter()


# --- the cascade -----------------------------------------------------------------------------


@attrs.frozen
class Provenance:
    """The merged tables a document was built from, which layer set each key, and the most
    specific file that took part."""

    raw: Mapping[str, Any]
    origins: Mapping[str, Origin]
    source: Path | None

    @classmethod
    def of(cls, value: object, source: Path | None) -> Provenance:
        """The provenance of a document built in code: its tables, set by no layer."""
        return cls(raw=_plain(value), origins={}, source=source)

    def origin_of(self, key: str) -> Origin:
        """The layer that set ``key`` or its nearest recorded parent, else ``source``."""
        return _origin_of(key, self.origins, self.source)


@attrs.frozen
class _Layer:
    """One layer of the cascade: its checked tables (paths resolved) and where they came from."""

    raw: Mapping[str, Any]
    origin: Origin


def find_project_manifest(cwd: Path) -> Path | None:
    """The nearest ``.podactors/manifest.toml`` in ``cwd`` or one of its parents."""
    for directory in (cwd, *cwd.parents):
        candidate = directory / PROJECT_MANIFEST
        if candidate.is_file():
            return candidate
    return None


def _layer_base(path: Path) -> Path:
    """What a file's relative paths resolve against: its directory, or the project root
    for a file inside a ``.podactors/`` directory."""
    directory = path.parent
    return directory.parent if directory.name == PROJECT_MANIFEST.parent.name else directory


def _cascade_files(path: str | os.PathLike[str] | None, cwd: Path) -> list[Path]:
    """The user, project and explicit files that exist, lowest first, each once."""
    user = Path.home() / USER_MANIFEST
    candidates = [
        user if user.is_file() else None,
        find_project_manifest(cwd),
        None if path is None else cwd / path,
    ]
    files: list[Path] = []
    for candidate in candidates:
        if candidate is not None and all(not _same_file(candidate, f) for f in files):
            files.append(candidate)
    return files


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _base_dir(base_dir: str | os.PathLike[str] | None) -> Path:
    return Path.cwd() if base_dir is None else Path(base_dir).absolute()


@attrs.frozen
class Cascade(Generic[T]):
    """How documents of the attrs class ``root`` are loaded through the layers.

    ``defaults(base)`` is the built-in layer: the defaults that depend on the base directory
    (the others live on the attrs classes). ``prepare`` may adjust the merged tables in place
    before they are structured. ``attach`` returns the structured document with its
    :class:`Provenance` stored on it.
    """

    root: type[T]
    defaults: Callable[[Path], Mapping[str, Any]]
    attach: Callable[[T, Provenance], T]
    prepare: Callable[[dict[str, Any]], None]

    def load(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        cwd: str | os.PathLike[str] | None = None,
        overlay: Mapping[str, Any] | None = None,
    ) -> T:
        """Load through the whole cascade: defaults, ``~/.config/podactors/manifest.toml``,
        the nearest ``.podactors/manifest.toml`` from ``cwd`` up, ``path`` (relative to
        ``cwd``; it must exist) and ``overlay``; the source is the most specific file."""
        base = _base_dir(cwd)
        files = _cascade_files(path, base)
        layers = [self._builtin(base), *(self._file(file) for file in files)]
        if overlay is not None:
            layers.append(self._overlay(overlay, base))
        return self._build(layers, source=files[-1] if files else None)

    def load_text(self, text: str, base_dir: str | os.PathLike[str] | None = None) -> T:
        """Load one TOML document over the defaults, its paths relative to ``base_dir``."""
        base = _base_dir(base_dir)
        return self._build([self._builtin(base), self._text(text, base, origin=None)], source=None)

    def load_file(self, path: str | os.PathLike[str]) -> T:
        """Load one file over the defaults, the file's directory standing in for ``cwd``."""
        file = Path(path).absolute()
        return self._build([self._builtin(file.parent), self._file(file)], source=file)

    def with_overlay(
        self,
        below: Provenance,
        overlay: Mapping[str, Any],
        *,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> T:
        """Merge ``overlay`` as the highest layer over the document ``below`` was built from."""
        raw = copy.deepcopy(dict(below.raw))
        origins = dict(below.origins)
        layer = self._overlay(overlay, _base_dir(base_dir))
        _merge_into(raw, layer.raw, self.root, origins, layer.origin, "")
        return self._structure(raw, origins, below.source)

    def _builtin(self, base: Path) -> _Layer:
        return _Layer(raw=self.defaults(base), origin=None)

    def _file(self, path: Path) -> _Layer:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ManifestError(f"cannot read manifest: {exc.strerror}", file=path) from None
        return self._text(text, _layer_base(path), origin=path)

    def _text(self, text: str, base: Path, *, origin: Origin) -> _Layer:
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ManifestError(f"invalid TOML: {exc}", file=origin) from None
        return _Layer(raw=_check_table(raw, self.root, "", origin, base), origin=origin)

    def _overlay(self, overlay: Mapping[str, Any], base: Path) -> _Layer:
        origin = "<overlay>"
        raw = _plain(overlay)
        if not isinstance(raw, dict):
            raise ManifestError(f"expected a table, got {describe(raw)}", file=origin)
        return _Layer(raw=_check_table(raw, self.root, "", origin, base), origin=origin)

    def _build(self, layers: Iterable[_Layer], *, source: Path | None) -> T:
        raw: dict[str, Any] = {}
        origins: dict[str, Origin] = {}
        for layer in layers:
            _merge_into(raw, layer.raw, self.root, origins, layer.origin, "")
        return self._structure(raw, origins, source)

    def _structure(
        self, raw: Mapping[str, Any], origins: dict[str, Origin], source: Path | None
    ) -> T:
        data = copy.deepcopy(dict(raw))
        self.prepare(data)
        _fill_required_tables(data, self.root)
        try:
            document = _CONVERTER.structure(data, self.root)
        except Exception as exc:  # cattrs groups, validator errors, …: one readable error
            raise _error(exc, self.root, origins, source) from None
        return self.attach(document, Provenance(raw, origins, source))
