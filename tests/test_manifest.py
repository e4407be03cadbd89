"""Tests for the pod manifest: defaults, validation messages and the layer cascade."""

from __future__ import annotations

from pathlib import Path

import pytest

from podactors.errors import ManifestError
from podactors.manifest import (
    AllowRule,
    CompactionConfig,
    DenyRule,
    Manifest,
    MemoryConfig,
    ModelConfig,
    PermissionRule,
    PermissionsConfig,
    PodConfig,
    ScopeConfig,
    WorkerConfig,
    find_project_manifest,
    load_manifest,
)

MINIMAL = """
[pod]
name = "alice"

[[scope.allow]]
target = "."
permission = "write"
"""


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``~`` at an empty directory, so no test reads the real user layer."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    return home


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> ManifestError:
    """Load ``text`` from a file and return the error, checking the shared guarantees."""
    file = write(tmp_path / "pod.toml", text)
    with pytest.raises(ManifestError) as info:
        Manifest.from_file(file)
    message = str(info.value)
    assert "\n" not in message
    assert str(file) in message
    assert info.value.file == file
    return info.value


# --- errors -----------------------------------------------------------------------------


def test_missing_pod_name_names_key_and_file(tmp_path: Path) -> None:
    error = load_error(tmp_path, '[[scope.allow]]\ntarget = "."\n')
    assert error.key == "pod.name"
    assert "pod.name" in str(error)
    assert "missing" in str(error)


def test_wrong_type_names_expected_type_and_value(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + '[worker]\nmax_tokens = "lots"\n')
    assert error.key == "worker.max_tokens"
    assert str(error).endswith("worker.max_tokens: expected an integer, got 'lots'")


def test_string_number_is_not_coerced_to_int(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + '[worker]\nmax_turns = "5"\n')
    assert error.key == "worker.max_turns"


def test_string_is_not_coerced_to_bool(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + '[[scope.deny]]\ntarget = "x"\nrecursive = "false"\n')
    assert error.key == "scope.deny[0].recursive"


def test_unknown_key_suggests_close_match(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + '[model]\nmodle = "claude-haiku-4-5"\n')
    assert error.key == "model.modle"
    assert "unknown key 'modle' (did you mean 'model'?)" in str(error)


def test_unknown_table_suggests_close_match(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + "[compacton]\nthreshold = 80000\n")
    assert error.key == "compacton"
    assert "'compacton'" in str(error)
    assert "did you mean 'compaction'?" in str(error)


def test_unknown_key_without_close_match_has_no_suggestion(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + "[worker]\nzzzz = 1\n")
    assert error.key == "worker.zzzz"
    assert "did you mean" not in str(error)


def test_bad_scope_permission_names_indexed_key(tmp_path: Path) -> None:
    text = '[pod]\nname = "a"\n[[scope.allow]]\ntarget = "."\npermission = "execute"\n'
    error = load_error(tmp_path, text)
    assert error.key == "scope.allow[0].permission"
    assert "scope.allow[0].permission" in str(error)
    assert "'execute'" in str(error)


def test_bad_restart_policy_lists_the_choices(tmp_path: Path) -> None:
    text = '[pod]\nname = "a"\nrestart = "forever"\n[[scope.allow]]\ntarget = "."\n'
    error = load_error(tmp_path, text)
    assert error.key == "pod.restart"
    assert "'permanent', 'transient', 'temporary'" in str(error)
    assert "'forever'" in str(error)


def test_no_allow_rule_is_an_error(tmp_path: Path) -> None:
    error = load_error(tmp_path, '[pod]\nname = "a"\n')
    assert error.key == "scope.allow"
    assert "at least one" in str(error)


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, '[pod]\nname = "a"\nworkdir = \n')
    assert "invalid TOML" in str(error)
    assert "line 3" in str(error)


def test_instruction_and_instruction_file_together_is_an_error(tmp_path: Path) -> None:
    text = MINIMAL + '[worker]\ninstruction = "hi"\ninstruction_file = "prompt.md"\n'
    error = load_error(tmp_path, text)
    assert error.key == "worker.instruction_file"
    assert "not both" in str(error)


def test_scripted_provider_without_script_names_model_script(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + '[model]\nprovider = "scripted"\n')
    assert error.key == "model.script"


def test_unknown_provider_names_model_provider(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + '[model]\nprovider = "llama"\n')
    assert error.key == "model.provider"
    assert "'scripted'" in str(error)


def test_negative_limit_is_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + "[compaction]\nworker_max_turns = 0\n")
    assert error.key == "compaction.worker_max_turns"
    assert "at least 1" in str(error)


def test_table_given_as_scalar_is_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, 'model = "claude"\n' + MINIMAL)
    assert error.key == "model"
    assert "expected a table" in str(error)


def test_missing_manifest_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read manifest") as info:
        Manifest.from_file(tmp_path / "absent.toml")
    assert info.value.file == tmp_path / "absent.toml"


def test_from_toml_error_names_key_without_file() -> None:
    with pytest.raises(ManifestError) as info:
        Manifest.from_toml('[pod]\nname = 3\n[[scope.allow]]\ntarget = "."\n')
    assert str(info.value) == "pod.name: expected a string, got 3"


# --- defaults ---------------------------------------------------------------------------


def test_minimal_manifest_has_every_documented_default(tmp_path: Path) -> None:
    manifest = Manifest.from_toml(MINIMAL, base_dir=tmp_path)
    assert manifest.source is None
    assert manifest.pod.name == "alice"
    assert manifest.pod.workdir == tmp_path
    assert manifest.pod.restart == "transient"
    assert manifest.model == ModelConfig(
        provider="anthropic",
        model="claude-sonnet-4-5",
        base_url="https://api.anthropic.com",
        api_key_env="ANTHROPIC_API_KEY",
    )
    assert manifest.model.api_key_file is None
    assert manifest.model.context_window is None
    assert manifest.model.script is None
    worker = manifest.worker
    assert worker.instruction is None
    assert worker.instruction_file is None
    assert (worker.max_tokens, worker.temperature, worker.max_turns) == (4096, 0.2, 50)
    assert worker.tool_output_max_bytes == 65536
    assert manifest.compaction is None
    assert manifest.memory is None
    assert manifest.permissions is None
    assert manifest.scope.allow == (AllowRule(tmp_path, "write", True),)
    assert manifest.scope.deny == ()


def test_empty_optional_table_gets_documented_defaults() -> None:
    manifest = Manifest.from_toml(MINIMAL + "[compaction]\n")
    assert manifest.compaction == CompactionConfig(
        threshold=None,
        request_threshold=None,
        retained_tokens=8000,
        auto_read_budget=8000,
        worker_max_input_tokens=50000,
        worker_max_turns=20,
        prune_protected_tokens=8000,
        prune_min_savings=4096,
        model=None,
    )


def test_tables_not_in_effect_have_documented_defaults_in_code() -> None:
    assert MemoryConfig() == MemoryConfig(
        dir=Path(".podactors/memory"),
        extract_threshold=30000,
        idle_after_seconds=900,
        consolidate_threshold_files=50,
        consolidate_threshold_bytes=1048576,
        model=None,
    )
    assert PermissionsConfig() == PermissionsConfig(default="allow", rules=())


def test_scope_rule_defaults_are_read_and_recursive() -> None:
    rule = AllowRule("src/")
    assert (rule.target, rule.permission, rule.recursive) == (Path("src"), "read", True)
    assert DenyRule("secrets").permission == "read"


NOT_IN_EFFECT = {
    "memory": "memory: not in effect yet in this version (memories are not extracted); "
    "remove the table",
    "permissions": "permissions: not in effect yet in this version "
    "(tool permissions are not enforced); remove the table",
}


@pytest.mark.parametrize(
    ("text", "table"),
    [
        ("[memory]\n", "memory"),
        ('[memory]\ndir = "notes"\n', "memory"),
        ('[memory.model]\nmodel = "small"\n', "memory"),
        ("[permissions]\n", "permissions"),
        ('[permissions]\ndefault = "ask"\n', "permissions"),
        ('[[permissions.rule]]\ntool = "bash"\naction = "deny"\n', "permissions"),
    ],
)
def test_table_not_in_effect_is_refused(tmp_path: Path, text: str, table: str) -> None:
    error = load_error(tmp_path, MINIMAL + text)
    assert error.key == table
    assert str(error) == f"{tmp_path / 'pod.toml'}: {NOT_IN_EFFECT[table]}"


def test_table_not_in_effect_names_the_layer_that_set_it(
    cascade: dict[str, Path],
) -> None:
    write(cascade["user"], "[memory]\nextract_threshold = 0\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(cascade["explicit"], cwd=cascade["cwd"])
    assert str(info.value) == f"{cascade['user']}: {NOT_IN_EFFECT['memory']}"


def test_overlay_setting_a_table_not_in_effect_is_refused() -> None:
    with pytest.raises(ManifestError) as info:
        Manifest.from_toml(MINIMAL).with_overlay({"permissions": {"default": "deny"}})
    assert str(info.value) == f"<overlay>: {NOT_IN_EFFECT['permissions']}"


def test_permission_rules_keep_their_toml_key_through_an_overlay(tmp_path: Path) -> None:
    rules = (PermissionRule(tool="bash", pattern="rm *", action="deny"),)
    manifest = Manifest(
        pod=PodConfig("bob", workdir=tmp_path),
        scope=ScopeConfig(allow=[AllowRule(tmp_path, "write")]),
        permissions=PermissionsConfig(default="ask", rules=rules),
    )
    assert manifest.with_overlay({"worker": {"max_turns": 2}}).permissions == (
        PermissionsConfig(default="ask", rules=rules)
    )


def test_memory_dir_is_relative_to_workdir(tmp_path: Path) -> None:
    manifest = Manifest(
        pod=PodConfig("a", workdir=tmp_path / "work"),
        scope=ScopeConfig(allow=[AllowRule(tmp_path)]),
        memory=MemoryConfig(),
    )
    assert manifest.memory_dir() == tmp_path / "work" / ".podactors/memory"


@pytest.mark.parametrize(
    ("provider", "model", "base_url", "key_env"),
    [
        ("anthropic", "claude-sonnet-4-5", "https://api.anthropic.com", "ANTHROPIC_API_KEY"),
        ("openai_chat", "gpt-4.1", "https://api.openai.com/v1", "OPENAI_API_KEY"),
        ("openai_responses", "gpt-4.1", "https://api.openai.com/v1", "OPENAI_API_KEY"),
        (
            "gemini",
            "gemini-2.5-flash",
            "https://generativelanguage.googleapis.com",
            "GEMINI_API_KEY",
        ),
    ],
)
def test_provider_without_url_or_key_gets_provider_defaults(
    provider: str, model: str, base_url: str, key_env: str
) -> None:
    manifest = Manifest.from_toml(MINIMAL + f'[model]\nprovider = "{provider}"\n')
    assert manifest.model.provider == provider
    assert manifest.model.model == model
    assert manifest.model.base_url == base_url
    assert manifest.model.api_key_env == key_env


def test_explicit_url_and_key_env_override_provider_defaults() -> None:
    text = MINIMAL + '[model]\nprovider = "openai_chat"\nbase_url = "http://localhost:8000/v1"\n'
    text += 'api_key_env = "LOCAL_KEY"\n'
    model = Manifest.from_toml(text).model
    assert (model.base_url, model.api_key_env) == ("http://localhost:8000/v1", "LOCAL_KEY")


def test_scripted_provider_has_no_url_or_key_and_resolves_script(tmp_path: Path) -> None:
    text = MINIMAL + '[model]\nprovider = "scripted"\nscript = "demo.toml"\n'
    model = Manifest.from_toml(text, base_dir=tmp_path).model
    assert model.base_url is None
    assert model.api_key_env is None
    assert model.script == tmp_path / "demo.toml"
    assert model.api_key() is None


def test_compaction_model_inherits_omitted_keys_from_pod_model() -> None:
    text = MINIMAL + '[model]\nprovider = "openai_chat"\nmodel = "big"\ncontext_window = 128000\n'
    text += '[compaction.model]\nmodel = "small"\n'
    compaction = Manifest.from_toml(text).compaction
    assert compaction is not None and compaction.model is not None
    assert compaction.model.provider == "openai_chat"
    assert compaction.model.model == "small"
    assert compaction.model.context_window == 128000


def test_compaction_model_with_other_provider_inherits_nothing() -> None:
    text = MINIMAL + '[model]\nprovider = "openai_chat"\nmodel = "big"\n'
    text += '[compaction.model]\nprovider = "gemini"\nmodel = "flash"\n'
    compaction = Manifest.from_toml(text).compaction
    assert compaction is not None and compaction.model is not None
    assert compaction.model.base_url == "https://generativelanguage.googleapis.com"


def test_allow_rule_positional_construction() -> None:
    rule = AllowRule("src/", "write")
    assert rule.target == Path("src")
    assert rule.permission == "write"
    assert rule.recursive is True
    other: object = DenyRule("src/", "write")
    assert rule != other


def test_allow_rule_with_bad_permission_raises_manifest_error() -> None:
    with pytest.raises(ManifestError, match="permission"):
        AllowRule("src/", "execute")  # type: ignore[arg-type]


def test_classes_built_in_code_check_their_field_types() -> None:
    with pytest.raises(ManifestError, match="max_turns: expected an integer, got '5'"):
        WorkerConfig(max_turns="5")  # type: ignore[arg-type]


def test_scope_config_without_allow_rule_raises() -> None:
    with pytest.raises(ManifestError, match="at least one"):
        ScopeConfig(allow=())


# --- api keys and instructions ------------------------------------------------------------


def test_api_key_from_env_var_is_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODACTORS_TEST_KEY", "sk-secret-from-env")
    manifest = Manifest.from_toml(MINIMAL + '[model]\napi_key_env = "PODACTORS_TEST_KEY"\n')
    assert manifest.model.api_key() == "sk-secret-from-env"
    assert "sk-secret-from-env" not in repr(manifest)


def test_api_key_from_file_is_not_in_repr(tmp_path: Path) -> None:
    write(tmp_path / "key.txt", "sk-secret-from-file\n")
    text = MINIMAL + '[model]\napi_key_file = "key.txt"\n'
    manifest = Manifest.from_toml(text, base_dir=tmp_path)
    assert manifest.model.api_key_file == tmp_path / "key.txt"
    assert manifest.model.api_key() == "sk-secret-from-file"
    assert "sk-secret-from-file" not in repr(manifest)


def test_api_key_absent_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert Manifest.from_toml(MINIMAL).model.api_key() is None


def test_instruction_text_reads_instruction_file(tmp_path: Path) -> None:
    write(tmp_path / "prompts" / "pod.md", "You are {{ name }}.")
    file = write(tmp_path / "pod.toml", MINIMAL + '[worker]\ninstruction_file = "prompts/pod.md"\n')
    assert Manifest.from_file(file).instruction_text() == "You are {{ name }}."


def test_instruction_text_returns_inline_instruction() -> None:
    manifest = Manifest.from_toml(MINIMAL + '[worker]\ninstruction = "Be brief."\n')
    assert manifest.instruction_text() == "Be brief."


def test_missing_instruction_file_names_key_and_manifest(tmp_path: Path) -> None:
    file = write(tmp_path / "pod.toml", MINIMAL + '[worker]\ninstruction_file = "nope.md"\n')
    manifest = Manifest.from_file(file)
    with pytest.raises(ManifestError) as info:
        manifest.instruction_text()
    assert info.value.key == "worker.instruction_file"
    assert info.value.file == file
    assert "nope.md" in str(info.value)


# --- the cascade ----------------------------------------------------------------------------


@pytest.fixture
def cascade(tmp_path: Path, home: Path) -> dict[str, Path]:
    """A home config, a project with a nested cwd, and an explicit file elsewhere."""
    project = tmp_path / "project"
    cwd = project / "src" / "deep"
    cwd.mkdir(parents=True)
    user_file = write(
        home / ".config/podactors/manifest.toml",
        '[model]\nprovider = "openai_chat"\nmodel = "gpt-home"\napi_key_file = "key.txt"\n'
        "[worker]\nmax_turns = 7\ntemperature = 0.5\n"
        '[[scope.allow]]\ntarget = "notes"\npermission = "read"\n',
    )
    project_file = write(
        project / ".podactors/manifest.toml",
        # inside .podactors/, relative paths resolve against the project root
        '[pod]\nname = "proj"\nworkdir = "."\n'
        "[worker]\nmax_turns = 9\n"
        '[[scope.allow]]\ntarget = "src"\npermission = "write"\n'
        '[[scope.deny]]\ntarget = "src/secrets"\n',
    )
    explicit_file = write(
        tmp_path / "explicit" / "pod.toml",
        '[pod]\nname = "explicit"\n'
        '[model]\nmodel = "gpt-explicit"\n'
        '[[scope.allow]]\ntarget = "data"\n'
        '[[scope.allow]]\ntarget = "../project/src"\npermission = "write"\n',
    )
    return {
        "root": tmp_path,
        "home": home,
        "project": project,
        "cwd": cwd,
        "user": user_file,
        "project_file": project_file,
        "explicit": explicit_file,
    }


def test_cascade_merges_all_layers(cascade: dict[str, Path]) -> None:
    root, project = cascade["root"], cascade["project"]
    manifest = load_manifest(
        cascade["explicit"],
        cwd=cascade["cwd"],
        overlay={"worker": {"max_turns": 3}, "scope": {"allow": [AllowRule("extra", "read")]}},
    )
    assert manifest.source == cascade["explicit"]
    # scalars: the highest layer wins
    assert manifest.pod.name == "explicit"
    assert manifest.model.model == "gpt-explicit"
    assert manifest.worker.max_turns == 3
    # tables merge by key: keys only the home layer set survive
    assert manifest.model.provider == "openai_chat"
    assert manifest.model.base_url == "https://api.openai.com/v1"
    assert manifest.worker.temperature == 0.5
    # relative paths resolve against the directory of the layer that wrote them
    assert manifest.model.api_key_file == cascade["home"] / ".config/podactors/key.txt"
    assert manifest.pod.workdir == project
    # allow/deny are unioned in layer order, duplicates removed
    assert manifest.scope.allow == (
        AllowRule(cascade["home"] / ".config/podactors/notes", "read"),
        AllowRule(project / "src", "write"),
        AllowRule(root / "explicit/data", "read"),
        AllowRule(cascade["cwd"] / "extra", "read"),
    )
    assert manifest.scope.deny == (DenyRule(project / "src/secrets", "read"),)


def test_cascade_finds_nearest_project_manifest_from_nested_cwd(
    cascade: dict[str, Path],
) -> None:
    manifest = load_manifest(cwd=cascade["cwd"])
    assert manifest.source == cascade["project_file"]
    assert manifest.pod.name == "proj"
    assert manifest.worker.max_turns == 9


def test_cascade_without_files_uses_defaults_and_overlay(tmp_path: Path) -> None:
    manifest = load_manifest(
        cwd=tmp_path,
        overlay={"pod": {"name": "solo"}, "scope": {"allow": [{"target": "."}]}},
    )
    assert manifest.source is None
    assert manifest.pod.workdir == tmp_path
    assert manifest.scope.allow == (AllowRule(tmp_path, "read"),)


def test_error_in_home_layer_names_home_file(cascade: dict[str, Path]) -> None:
    write(cascade["user"], "[worker]\nmax_tokns = 10\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(cascade["explicit"], cwd=cascade["cwd"])
    assert info.value.file == cascade["user"]
    assert info.value.key == "worker.max_tokns"
    assert "did you mean 'max_tokens'?" in str(info.value)


def test_type_error_after_merge_names_the_layer_that_set_the_key(
    cascade: dict[str, Path],
) -> None:
    write(cascade["user"], '[worker]\ntemperature = "warm"\n')
    with pytest.raises(ManifestError) as info:
        load_manifest(cascade["explicit"], cwd=cascade["cwd"])
    assert info.value.file == cascade["user"]
    assert info.value.key == "worker.temperature"
    assert "\n" not in str(info.value)


def test_bad_rule_in_unioned_list_names_its_own_layer(cascade: dict[str, Path]) -> None:
    write(cascade["project_file"], '[[scope.allow]]\ntarget = "."\npermission = "all"\n')
    with pytest.raises(ManifestError) as info:
        load_manifest(cascade["explicit"], cwd=cascade["cwd"])
    assert info.value.key == "scope.allow[1].permission"
    assert info.value.file == cascade["project_file"]


def test_bad_overlay_value_names_overlay(tmp_path: Path) -> None:
    file = write(tmp_path / "pod.toml", MINIMAL)
    with pytest.raises(ManifestError) as info:
        load_manifest(file, cwd=tmp_path, overlay={"worker": {"max_turns": "x"}})
    assert str(info.value) == "<overlay>: worker.max_turns: expected an integer, got 'x'"


def test_find_project_manifest_walks_up_to_the_nearest(cascade: dict[str, Path]) -> None:
    assert find_project_manifest(cascade["cwd"]) == cascade["project_file"]
    assert find_project_manifest(cascade["root"]) is None


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read manifest"):
        load_manifest("missing.toml", cwd=tmp_path)


# --- overlays --------------------------------------------------------------------------------


def test_with_overlay_replaces_scalars_and_keeps_source(tmp_path: Path) -> None:
    file = write(tmp_path / "pod.toml", MINIMAL + '[model]\nprovider = "openai_chat"\n')
    manifest = Manifest.from_file(file)
    child = manifest.with_overlay({"pod": {"name": "child"}, "model": {"provider": "gemini"}})
    assert child.pod.name == "child"
    assert child.source == file
    # provider defaults follow the new provider rather than sticking to the old one
    assert child.model.base_url == "https://generativelanguage.googleapis.com"
    assert manifest.pod.name == "alice"


def test_with_overlay_none_removes_a_table() -> None:
    manifest = Manifest.from_toml(MINIMAL + "[compaction]\n")
    assert manifest.with_overlay({"compaction": None}).compaction is None


def test_with_overlay_error_names_overlay() -> None:
    with pytest.raises(ManifestError) as info:
        Manifest.from_toml(MINIMAL).with_overlay({"pod": {"restrat": "permanent"}})
    assert str(info.value).startswith("<overlay>: pod.restrat: unknown key 'restrat'")
    assert "did you mean 'restart'?" in str(info.value)


def test_with_overlay_on_programmatic_manifest(tmp_path: Path) -> None:
    manifest = Manifest(
        pod=PodConfig("bob", workdir=tmp_path),
        scope=ScopeConfig(allow=[AllowRule(tmp_path, "write")]),
    )
    child = manifest.with_overlay({"worker": {"max_turns": 2}})
    assert child.worker.max_turns == 2
    assert child.pod == manifest.pod
    assert child.scope == manifest.scope
