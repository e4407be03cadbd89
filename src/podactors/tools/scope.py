"""Scopes: what a pod may read and write, and the file system view that enforces it.

A :class:`Scope` is a list of allow rules and deny rules (the manifest's
:class:`~podactors.manifest.AllowRule` and :class:`~podactors.manifest.DenyRule`). Permissions
are ordered ``none < read < write``. A rule covers its target and, when ``recursive``,
everything below it; a non-recursive rule covers the target and its direct children only.

The access a path gets is the highest permission of the allow rules that cover it, then
capped by every deny rule that covers it. A deny rule caps *strictly below* its stated level:
``deny write`` takes write away and leaves read; ``deny read`` takes everything away.

Paths are checked by their canonical real path (``os.path.realpath``: ``..`` and every
symlink resolved), and rule targets are canonicalised the same way, so ``..`` cannot climb
out and a symlink inside the scope that points outside grants nothing. Relative paths are
relative to the pod's working directory.

:class:`ScopedFs` is the only way builtin tools touch files; every method checks the scope
first and raises :class:`ScopeError` on a violation. Its methods block; call them from a
worker thread (the tool registry runs sync tools in one).
"""

from __future__ import annotations

import os
import re
import stat as stat_module
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import attrs

from podactors.errors import ScopeError
from podactors.fileio import write_atomic
from podactors.manifest import AllowRule, DenyRule, Permission, ScopeConfig, ScopeRule

__all__ = [
    "SKIPPED_DIRS",
    "Access",
    "Scope",
    "ScopeError",
    "ScopedFs",
    "glob_regex",
    "split_lines",
]

Access = Literal["none", "read", "write"]
"""What a scope grants on one path."""

_ACCESS: tuple[Access, ...] = ("none", "read", "write")
_LEVEL: dict[str, int] = {"none": 0, "read": 1, "write": 2}

#: Directories :meth:`ScopedFs.walk` never descends into (version-control metadata).
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn"})


def canonical(path: str | os.PathLike[str], base: Path) -> Path:
    """``path`` (relative to ``base``) with ``..`` and every symlink resolved."""
    return Path(os.path.realpath(base / Path(path).expanduser()))


@attrs.frozen
class _Rule:
    """A rule with its target canonicalised and its permission as a level."""

    target: Path
    level: int
    recursive: bool
    source: ScopeRule

    def covers(self, path: Path) -> bool:
        if path == self.target:
            return True
        if self.recursive:
            return path.is_relative_to(self.target)
        return path.parent == self.target

    def describe(self, kind: str = "") -> str:
        reach = "recursive" if self.recursive else "non-recursive"
        return f"{self.target} ({kind}{self.source.permission}, {reach})"


class Scope:
    """Allow and deny rules over canonical paths; see the module docstring for semantics.

    Relative rule targets resolve against ``base`` (default: the current directory); all
    targets are canonicalised once, when the scope is built.
    """

    def __init__(
        self,
        allow: Sequence[AllowRule],
        deny: Sequence[DenyRule] = (),
        *,
        base: str | os.PathLike[str] | None = None,
    ) -> None:
        root = Path.cwd() if base is None else Path(base)
        self._allow_rules = tuple(allow)
        self._deny_rules = tuple(deny)
        self._allow = tuple(_compile(rule, root) for rule in allow)
        self._deny = tuple(_compile(rule, root) for rule in deny)

    @classmethod
    def from_config(cls, config: ScopeConfig, base: str | os.PathLike[str]) -> Scope:
        """The scope of a manifest's ``[scope]`` table; relative targets resolve on ``base``."""
        return cls(config.allow, config.deny, base=base)

    @property
    def allow(self) -> tuple[AllowRule, ...]:
        """The allow rules, as given."""
        return self._allow_rules

    @property
    def deny(self) -> tuple[DenyRule, ...]:
        """The deny rules, as given."""
        return self._deny_rules

    def access(self, real_path: Path) -> Access:
        """What the scope grants on ``real_path``, which must already be canonical."""
        return _ACCESS[self._level(real_path)[0]]

    def allows(self, real_path: Path, permission: Permission) -> bool:
        """True when the scope grants at least ``permission`` on canonical ``real_path``."""
        return self._level(real_path)[0] >= _LEVEL[permission]

    def may_contain_readable(self, real_dir: Path) -> bool:
        """True when something at or below canonical ``real_dir`` may be readable.

        Used to prune directory walks: a directory outside the scope is still entered when an
        allow rule's target lies below it.
        """
        if self.allows(real_dir, "read"):
            return True
        return any(
            rule.target.is_relative_to(real_dir) and self.allows(rule.target, "read")
            for rule in self._allow
        )

    def describe(self) -> str:
        """The rules on one line, e.g. ``/proj/src (write, recursive); deny /proj/.env …``."""
        parts = [rule.describe() for rule in self._allow]
        parts += [f"deny {rule.describe()}" for rule in self._deny]
        return "; ".join(parts) or "nothing"

    def refusal(self, path: Path, real_path: Path, wanted: Permission) -> ScopeError:
        """The :class:`ScopeError` explaining why ``wanted`` on ``path`` is refused."""
        level, capped_by = self._level(real_path)
        allowed = _ACCESS[level]
        if capped_by is not None:
            reason = f"capped by deny rule {capped_by.describe('deny ')}"
        elif allowed == "read":
            reason = "read-only in the pod's scope"
        else:
            reason = f"outside the pod's {wanted} scope"
        shown = str(path) if path == real_path else f"{path} (resolves to {real_path})"
        message = f"{wanted} to {shown} refused: {reason} (allowed: {self.describe()})"
        return ScopeError(message, path=path, real_path=real_path, wanted=wanted, allowed=allowed)

    def _level(self, real_path: Path) -> tuple[int, _Rule | None]:
        """The access level on ``real_path`` and the deny rule that lowered it, if any."""
        level = max((rule.level for rule in self._allow if rule.covers(real_path)), default=0)
        capped_by = None
        for rule in self._deny:
            if rule.covers(real_path) and rule.level - 1 < level:
                level, capped_by = rule.level - 1, rule
        return level, capped_by


def _compile(rule: ScopeRule, base: Path) -> _Rule:
    return _Rule(canonical(rule.target, base), _LEVEL[rule.permission], rule.recursive, rule)


# --- the scoped file system --------------------------------------------------------------


class ScopedFs:
    """File access confined to a :class:`Scope`; every method raises :class:`ScopeError`
    when the scope does not grant what it needs.

    Relative paths are relative to ``workdir``. Methods block (plain ``os`` calls); run them
    in a worker thread from async code.
    """

    def __init__(self, scope: Scope, workdir: str | os.PathLike[str]) -> None:
        self.scope = scope
        self.workdir = Path(os.path.realpath(workdir))

    def absolute(self, path: str | os.PathLike[str]) -> Path:
        """``path`` made absolute against the workdir (symlinks not resolved)."""
        return self.workdir / Path(path).expanduser()

    def display(self, path: str | os.PathLike[str]) -> str:
        """``path`` relative to the workdir when it lies below it, else absolute."""
        absolute = self.absolute(path)
        if absolute.is_relative_to(self.workdir):
            return absolute.relative_to(self.workdir).as_posix() or "."
        return str(absolute)

    def check(self, path: str | os.PathLike[str], permission: Permission) -> Path:
        """The canonical real path of ``path``; raises :class:`ScopeError` unless the scope
        grants ``permission`` on it."""
        absolute = self.absolute(path)
        real = canonical(absolute, self.workdir)
        if not self.scope.allows(real, permission):
            raise self.scope.refusal(absolute, real, permission)
        return real

    def readable(self, path: str | os.PathLike[str]) -> bool:
        """True when ``path`` may be read (never raises for scope reasons)."""
        return self.scope.allows(canonical(self.absolute(path), self.workdir), "read")

    def read_bytes(self, path: str | os.PathLike[str]) -> bytes:
        """The bytes of a readable file."""
        return self.check(path, "read").read_bytes()

    def read_text(
        self, path: str | os.PathLike[str], offset: int | None = None, limit: int | None = None
    ) -> str:
        """A readable file as text (UTF-8, undecodable bytes replaced).

        ``offset`` (0-based) and ``limit`` select lines; the result then holds those lines,
        each ending with ``\\n``.
        """
        text = self.read_bytes(path).decode("utf-8", "replace")
        if offset is None and limit is None:
            return text
        start = offset or 0
        lines = split_lines(text)
        end = len(lines) if limit is None else start + limit
        return "".join(line + "\n" for line in lines[start:end])

    def write_text(self, path: str | os.PathLike[str], text: str) -> Path:
        """Write ``text`` (UTF-8) atomically to a writable path; returns its real path.

        Parent directories are created; an existing file keeps its permission bits; writing
        through a symlink replaces the file it points to.
        """
        real = self.check(path, "write")
        real.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(real, text.encode("utf-8"), mode=_mode_of(real))
        return real

    def exists(self, path: str | os.PathLike[str]) -> bool:
        """True when a readable ``path`` exists."""
        return self.check(path, "read").exists()

    def stat(self, path: str | os.PathLike[str]) -> os.stat_result:
        """``os.stat`` of a readable path."""
        return self.check(path, "read").stat()

    def iterdir(self, path: str | os.PathLike[str] = ".") -> list[Path]:
        """The readable entries of a readable directory, sorted by name.

        Entries the scope does not let the pod read (a symlink out of scope, a denied file)
        are left out.
        """
        real = self.check(path, "read")
        return sorted(child for child in real.iterdir() if self.readable(child))

    def walk(self, path: str | os.PathLike[str] = ".") -> Iterator[Path]:
        """Every readable file at or below ``path``, depth first, in name order.

        Symlinked directories are not followed; a symlinked file is yielded only when its
        target is readable. Directories in :data:`SKIPPED_DIRS` and directories that hold
        nothing readable are not entered.
        """
        root = self.check(path, "read")
        if not root.is_dir():
            yield root
            return
        yield from self._walk_dir(root)

    def glob(self, pattern: str, path: str | os.PathLike[str] = ".") -> list[Path]:
        """Readable files matching ``pattern`` below ``path``, sorted by name.

        ``*`` and ``?`` match within one path component, ``**`` any number of directories;
        character classes ``[…]`` work as in the shell. Literal leading components
        (``src/**/*.py``, or an absolute pattern) narrow where the walk starts.
        """
        prefix, rest = _split_pattern(pattern)
        base = self.absolute(path) / prefix
        if not rest:
            return [base] if self.readable(base) and base.is_file() else []
        matcher = glob_regex(rest)
        root = self.check(base, "read")
        return sorted(
            found
            for found in self.walk(root)
            if matcher.fullmatch(found.relative_to(root).as_posix())
        )

    def _walk_dir(self, directory: Path) -> Iterator[Path]:
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except OSError:
            return
        for entry in entries:
            child = Path(entry.path)
            if entry.is_symlink():
                target = Path(os.path.realpath(child))
                if target.is_file() and self.scope.allows(target, "read"):
                    yield child
            elif entry.is_dir():
                if entry.name not in SKIPPED_DIRS and self.scope.may_contain_readable(child):
                    yield from self._walk_dir(child)
            elif self.scope.allows(child, "read"):
                yield child


def split_lines(text: str) -> list[str]:
    """``text`` split on ``\\n`` (a trailing ``\\r`` dropped), without a final empty line."""
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex matching ``/``-separated relative paths against a glob ``pattern``."""
    parts = pattern.split("/")
    out: list[str] = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]*/)*")
            continue
        out.append(_translate_component(part))
        if not last:
            out.append("/")
    return re.compile("".join(out), re.DOTALL)


def _translate_component(part: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(part):
        char = part[i]
        i += 1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := part.find("]", i + 1)) != -1:
            body = part[i:end]
            negate = body.startswith("!")
            body = (body[1:] if negate else body).replace("\\", "\\\\")
            out.append(f"[^{body}]" if negate else f"[{body}]")
            i = end + 1
        else:
            out.append(re.escape(char))
    return "".join(out)


def _split_pattern(pattern: str) -> tuple[str, str]:
    """Split a glob into its literal leading directories and the wildcard rest."""
    parts = pattern.split("/")
    literal: list[str] = []
    for part in parts[:-1]:
        if any(char in part for char in "*?["):
            break
        literal.append(part)
    rest = parts[len(literal) :]
    if len(rest) == 1 and not any(char in rest[0] for char in "*?["):
        literal.append(rest.pop())
    prefix = "/".join(literal) if literal != [""] else "/"
    return prefix, "/".join(rest)


def _mode_of(path: Path) -> int | None:
    """The permission bits of an existing file, ``None`` when there is none."""
    try:
        return stat_module.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
