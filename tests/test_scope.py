"""Scopes: canonical paths, symlinks, deny caps, non-recursive rules and ScopedFs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from podactors.manifest import AllowRule, DenyRule, ScopeConfig
from podactors.tools.scope import Scope, ScopedFs, ScopeError, glob_regex


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """tmp_path/proj (the workdir) with src/, docs/ and secrets/; tmp_path/outside beside it."""
    root = tmp_path.resolve()
    proj = root / "proj"
    for sub in ("src/pkg", "docs", "secrets"):
        (proj / sub).mkdir(parents=True)
    (proj / "src" / "main.py").write_text("print('hi')\n")
    (proj / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    (proj / "docs" / "guide.md").write_text("# Guide\n")
    (proj / "secrets" / "key.txt").write_text("hunter2\n")
    (root / "outside").mkdir()
    (root / "outside" / "loot.txt").write_text("loot\n")
    return proj


def scoped(project: Path, *rules: AllowRule | DenyRule) -> ScopedFs:
    allow = [rule for rule in rules if isinstance(rule, AllowRule)]
    deny = [rule for rule in rules if isinstance(rule, DenyRule)]
    return ScopedFs(Scope(allow, deny, base=project), project)


def test_path_inside_write_rule_is_readable_and_writable(project: Path) -> None:
    fs = scoped(project, AllowRule(".", "write"))
    assert fs.check("src/main.py", "write") == project / "src" / "main.py"
    assert fs.read_text("src/main.py") == "print('hi')\n"


def test_dotdot_escape_is_refused(project: Path) -> None:
    fs = scoped(project, AllowRule(".", "write"))
    with pytest.raises(ScopeError, match="outside the pod's read scope"):
        fs.read_text("src/../../outside/loot.txt")


def test_dotdot_that_stays_inside_is_allowed(project: Path) -> None:
    fs = scoped(project, AllowRule(".", "write"))
    assert fs.read_text("src/pkg/../main.py") == "print('hi')\n"


def test_symlink_to_a_directory_outside_grants_nothing(project: Path) -> None:
    (project / "src" / "escape").symlink_to(project.parent / "outside")
    fs = scoped(project, AllowRule(".", "write"))
    with pytest.raises(ScopeError) as info:
        fs.read_text("src/escape/loot.txt")
    assert info.value.real_path == project.parent / "outside" / "loot.txt"
    assert "resolves to" in str(info.value)
    with pytest.raises(ScopeError):
        fs.write_text("src/escape/new.txt", "x")
    assert not (project.parent / "outside" / "new.txt").exists()


def test_symlink_to_etc_grants_nothing(project: Path) -> None:
    (project / "etc").symlink_to("/etc")
    fs = scoped(project, AllowRule(".", "write"))
    with pytest.raises(ScopeError, match="read to"):
        fs.read_bytes("etc/hostname")


def test_symlinked_file_pointing_outside_cannot_be_overwritten(project: Path) -> None:
    (project / "src" / "link.txt").symlink_to(project.parent / "outside" / "loot.txt")
    fs = scoped(project, AllowRule(".", "write"))
    with pytest.raises(ScopeError, match="write to"):
        fs.write_text("src/link.txt", "pwned")
    assert (project.parent / "outside" / "loot.txt").read_text() == "loot\n"


def test_symlink_inside_scope_to_inside_is_followed(project: Path) -> None:
    (project / "docs" / "main_link.py").symlink_to(project / "src" / "main.py")
    fs = scoped(project, AllowRule("docs", "read"), AllowRule("src", "read"))
    assert fs.read_text("docs/main_link.py") == "print('hi')\n"


def test_rule_target_behind_a_symlink_is_canonicalised(project: Path) -> None:
    (project / "alias").symlink_to(project / "src")
    fs = scoped(project, AllowRule("alias", "write"))
    assert fs.read_text("src/main.py") == "print('hi')\n"
    with pytest.raises(ScopeError):
        fs.read_text("docs/guide.md")


def test_deny_write_keeps_read(project: Path) -> None:
    fs = scoped(project, AllowRule(".", "write"), DenyRule("docs", "write"))
    assert fs.read_text("docs/guide.md") == "# Guide\n"
    with pytest.raises(ScopeError, match="capped by deny rule") as info:
        fs.write_text("docs/guide.md", "changed")
    assert info.value.allowed == "read"


def test_deny_read_removes_all_access(project: Path) -> None:
    fs = scoped(project, AllowRule(".", "write"), DenyRule("secrets", "read"))
    with pytest.raises(ScopeError, match="capped by deny rule") as info:
        fs.read_text("secrets/key.txt")
    assert info.value.allowed == "none"
    with pytest.raises(ScopeError):
        fs.write_text("secrets/key.txt", "x")


def test_deny_caps_every_allow_rule(project: Path) -> None:
    fs = scoped(
        project,
        AllowRule(".", "read"),
        AllowRule("secrets", "write"),
        DenyRule("secrets", "write"),
    )
    assert fs.scope.access(project / "secrets" / "key.txt") == "read"


def test_highest_allow_rule_wins(project: Path) -> None:
    fs = scoped(project, AllowRule(".", "read"), AllowRule("src", "write"))
    assert fs.scope.access(project / "src" / "main.py") == "write"
    assert fs.scope.access(project / "docs" / "guide.md") == "read"


def test_non_recursive_rule_covers_target_and_children_only(project: Path) -> None:
    fs = scoped(project, AllowRule("src", "read", recursive=False))
    assert fs.read_text("src/main.py") == "print('hi')\n"
    assert fs.check("src", "read") == project / "src"
    assert fs.check("src/pkg", "read") == project / "src" / "pkg"
    with pytest.raises(ScopeError, match="outside the pod's read scope"):
        fs.read_text("src/pkg/mod.py")


def test_non_recursive_deny_leaves_grandchildren_alone(project: Path) -> None:
    fs = scoped(project, AllowRule(".", "write"), DenyRule("src", "read", recursive=False))
    assert fs.scope.access(project / "src" / "main.py") == "none"
    assert fs.scope.access(project / "src" / "pkg" / "mod.py") == "write"


def test_write_to_read_only_path_says_read_only(project: Path) -> None:
    fs = scoped(project, AllowRule(".", "read"))
    with pytest.raises(ScopeError, match="read-only in the pod's scope"):
        fs.write_text("src/new.py", "x")


def test_write_outside_scope_message_names_path_and_rules(project: Path) -> None:
    fs = scoped(project, AllowRule("src", "write"))
    target = project.parent / "outside" / "y.txt"
    with pytest.raises(ScopeError) as info:
        fs.write_text(target, "x")
    assert str(info.value) == (
        f"write to {target} refused: outside the pod's write scope "
        f"(allowed: {project / 'src'} (write, recursive))"
    )
    assert (info.value.path, info.value.wanted, info.value.allowed) == (target, "write", "none")


def test_refusal_lists_deny_rules_too(project: Path) -> None:
    fs = scoped(project, AllowRule(".", "write"), DenyRule("secrets", "read", recursive=False))
    with pytest.raises(ScopeError) as info:
        fs.read_text("secrets/key.txt")
    assert f"deny {project / 'secrets'} (read, non-recursive)" in str(info.value)


def test_scope_from_manifest_config_resolves_relative_targets(project: Path) -> None:
    config = ScopeConfig(allow=(AllowRule("src", "write"),), deny=(DenyRule("src/pkg", "read"),))
    scope = Scope.from_config(config, base=project)
    assert scope.access(project / "src" / "main.py") == "write"
    assert scope.access(project / "src" / "pkg" / "mod.py") == "none"
    assert scope.allow == config.allow


# --- ScopedFs ------------------------------------------------------------------------------


def test_write_text_creates_parent_directories(project: Path) -> None:
    fs = scoped(project, AllowRule(".", "write"))
    real = fs.write_text("src/new/deep/file.txt", "héllo")
    assert real.read_text(encoding="utf-8") == "héllo"
    assert [p.name for p in real.parent.iterdir()] == ["file.txt"]  # no temp file left


def test_write_text_keeps_the_file_mode(project: Path) -> None:
    script = project / "src" / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    scoped(project, AllowRule(".", "write")).write_text("src/run.sh", "#!/bin/sh\necho\n")
    assert stat.S_IMODE(script.stat().st_mode) == 0o755


def test_write_through_symlink_inside_scope_replaces_its_target(project: Path) -> None:
    (project / "src" / "alias.py").symlink_to(project / "src" / "main.py")
    scoped(project, AllowRule(".", "write")).write_text("src/alias.py", "new\n")
    assert (project / "src" / "alias.py").is_symlink()
    assert (project / "src" / "main.py").read_text() == "new\n"


def test_read_text_offset_and_limit_select_lines(project: Path) -> None:
    (project / "lines.txt").write_text("".join(f"l{i}\r\n" for i in range(1, 6)))
    fs = scoped(project, AllowRule(".", "read"))
    assert fs.read_text("lines.txt", offset=1, limit=2) == "l2\nl3\n"
    assert fs.read_text("lines.txt", offset=4) == "l5\n"


def test_exists_and_stat_need_read(project: Path) -> None:
    fs = scoped(project, AllowRule("src", "read"))
    assert fs.exists("src/main.py")
    assert not fs.exists("src/missing.py")
    assert fs.stat("src/main.py").st_size == len("print('hi')\n")
    with pytest.raises(ScopeError):
        fs.exists("docs/guide.md")


def test_iterdir_skips_entries_outside_scope(project: Path) -> None:
    (project / "escape").symlink_to(project.parent / "outside")
    fs = scoped(project, AllowRule(".", "read"), DenyRule("secrets", "read"))
    names = [path.name for path in fs.iterdir(".")]
    assert names == ["docs", "src"]


def test_walk_skips_denied_symlinked_out_and_vcs_entries(project: Path) -> None:
    (project / "src" / "escape").symlink_to(project.parent / "outside")
    (project / "src" / "loot.txt").symlink_to(project.parent / "outside" / "loot.txt")
    (project / ".git").mkdir()
    (project / ".git" / "HEAD").write_text("ref\n")
    fs = scoped(project, AllowRule(".", "read"), DenyRule("secrets", "read"))
    found = [path.relative_to(project).as_posix() for path in fs.walk(".")]
    assert found == ["docs/guide.md", "src/main.py", "src/pkg/mod.py"]


def test_walk_enters_unreadable_directory_holding_an_allowed_target(project: Path) -> None:
    fs = scoped(project, AllowRule("src/pkg", "read"), AllowRule(".", "read", recursive=False))
    found = [path.relative_to(project).as_posix() for path in fs.walk(".")]
    assert found == ["src/pkg/mod.py"]


def test_glob_matches_within_scope(project: Path) -> None:
    fs = scoped(project, AllowRule(".", "read"), DenyRule("src/pkg", "read"))
    assert [p.name for p in fs.glob("**/*.py")] == ["main.py"]
    assert [p.name for p in fs.glob("src/*.py")] == ["main.py"]
    assert [p.name for p in fs.glob("*.md", path="docs")] == ["guide.md"]
    assert [p.name for p in fs.glob(str(project / "docs" / "*.md"))] == ["guide.md"]
    assert fs.glob("docs/guide.md") == [project / "docs" / "guide.md"]


def test_glob_pattern_starting_outside_scope_is_refused(project: Path) -> None:
    fs = scoped(project, AllowRule(".", "read"))
    with pytest.raises(ScopeError):
        fs.glob("../outside/*.txt")


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.py", "a.py", True),
        ("*.py", "src/a.py", False),
        ("**/*.py", "a.py", True),
        ("**/*.py", "src/deep/a.py", True),
        ("src/**", "src/deep/a.py", True),
        ("src/**/test_*.py", "src/test_a.py", True),
        ("src/**/test_*.py", "src/x/test_a.py", True),
        ("src/**/test_*.py", "lib/test_a.py", False),
        ("?.txt", "a.txt", True),
        ("?.txt", "ab.txt", False),
        ("[ab].txt", "b.txt", True),
        ("[!ab].txt", "b.txt", False),
        ("a+b.txt", "a+b.txt", True),
    ],
)
def test_glob_regex_follows_shell_rules(pattern: str, path: str, matches: bool) -> None:
    assert bool(glob_regex(pattern).fullmatch(path)) is matches


def test_relative_paths_resolve_against_workdir_not_cwd(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project.parent / "outside")
    fs = ScopedFs(Scope([AllowRule(project, "read")]), project)
    assert fs.read_text("docs/guide.md") == "# Guide\n"
    assert os.getcwd() == str(project.parent / "outside")
