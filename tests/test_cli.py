"""The `podactors` command on real stores: listing, showing, forking, verify, gc, demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner, Result
from demo_store import build_demo_store

from podactors.cli import main
from podactors.errors import StoreError
from podactors.store import FsStore
from podactors.store.fs import SessionInfo

# Wide, colourless output whatever the developer's terminal says.
ENV = {"COLUMNS": "200", "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "PODACTORS_STORE": None}


def cli(*args: str | Path) -> Result:
    return CliRunner(env=ENV).invoke(main, [str(a) for a in args])


def list_sessions(root: Path) -> list[SessionInfo]:
    return trio.run(FsStore(root).list_sessions)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    trio.run(build_demo_store, FsStore(root))
    return root


@pytest.fixture
def agent_id(store: Path) -> str:
    return min(list_sessions(store), key=lambda i: i.created_at).session_id


def object_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "objects").rglob("*") if p.is_file())


def test_demo_on_empty_dir_plays_a_session_and_verifies(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    result = cli("demo", "--store", root)
    assert result.exit_code == 0, result.output
    infos = list_sessions(root)
    assert len(infos) == 1
    assert infos[0].session_id in result.stdout
    assert "ok: " in result.stdout
    assert f"podactors sessions show {infos[0].session_id}" in result.stdout


def test_sessions_list_table_shows_every_id_and_origin(store: Path) -> None:
    result = cli("sessions", "list", "--store", store)
    assert result.exit_code == 0, result.output
    for info in list_sessions(store):
        assert info.session_id in result.stdout
    assert result.stdout.count("forked_from") == 2


def test_sessions_list_json_matches_store_entry_counts(store: Path) -> None:
    result = cli("sessions", "list", "--store", store, "--json")
    assert result.exit_code == 0, result.output
    listed = {row["session_id"]: row["entries"] for row in json.loads(result.stdout)}
    assert listed == {info.session_id: info.entries for info in list_sessions(store)}


def test_store_env_var_selects_store(store: Path) -> None:
    result = CliRunner(env={**ENV, "PODACTORS_STORE": str(store)}).invoke(
        main, ["sessions", "list", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 4


def test_sessions_list_without_store_prints_friendly_line_and_creates_nothing(
    tmp_path: Path,
) -> None:
    root = tmp_path / "nothing-here"
    result = cli("sessions", "list", "--store", root)
    assert result.exit_code == 0
    assert "no sessions" in result.stdout
    assert not root.exists()


def test_show_prints_prompt_tool_names_and_summary(store: Path, agent_id: str) -> None:
    result = cli("sessions", "show", agent_id, "--store", store)
    assert result.exit_code == 0, result.output
    assert "You are a careful coding agent" in result.stdout
    for tool in ("read_file", "bash", "edit_file"):
        assert tool in result.stdout
    assert "finished" in result.stdout
    assert "metrics" in result.stdout


def test_show_limit_prints_only_last_items(store: Path, agent_id: str) -> None:
    result = cli("sessions", "show", agent_id, "--store", store, "--limit", "2")
    assert result.exit_code == 0, result.output
    assert "8 passed" in result.stdout
    assert "What does this project do" not in result.stdout


def test_show_json_parses_with_decoded_extensions(store: Path, agent_id: str) -> None:
    result = cli("sessions", "show", agent_id, "--store", store, "--json")
    assert result.exit_code == 0, result.output
    state = json.loads(result.stdout)
    assert state["turn_count"] == 2
    assert state["entry_count"] == next(
        i.entries for i in list_sessions(store) if i.session_id == agent_id
    )
    assert state["extensions"] == {"metrics": {"name": "prune.skip", "reason": "below_min_savings"}}
    assert [h["type"] for h in state["history"]].count("tool_call") == 5


def test_show_entries_prints_one_line_per_log_entry(store: Path, agent_id: str) -> None:
    result = cli("sessions", "show", agent_id, "--store", store, "--entries")
    assert result.exit_code == 0, result.output
    entries = next(i.entries for i in list_sessions(store) if i.session_id == agent_id)
    lines = [line for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert len(lines) == entries
    assert "session_start" in lines[0]
    assert "outcome" in lines[-1]


def test_fork_at_entry_creates_session_listed_with_origin(store: Path, agent_id: str) -> None:
    result = cli("sessions", "fork", agent_id, "--at", "5", "--store", store, "--json")
    assert result.exit_code == 0, result.output
    new_id = json.loads(result.stdout)["session_id"]
    listed = cli("sessions", "list", "--store", store)
    assert f"forked_from {agent_id}@5" in listed.stdout
    assert new_id in listed.stdout
    info = next(i for i in list_sessions(store) if i.session_id == new_id)
    assert info.entries == 5


def test_fork_beyond_the_end_exits_two_with_error(store: Path, agent_id: str) -> None:
    result = cli("sessions", "fork", agent_id, "--at", "9999", "--store", store)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output


def test_verify_on_clean_store_exits_zero(store: Path) -> None:
    result = cli("sessions", "verify", "--store", store)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: ")


def test_verify_after_flipped_byte_exits_one_and_names_object(store: Path) -> None:
    assert cli("sessions", "gc", "--grace", "0", "--store", store).exit_code == 0
    victim = object_files(store)[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))

    result = cli("sessions", "verify", "--store", store)
    assert result.exit_code == 1
    assert str(victim) in result.stdout
    as_json = cli("sessions", "verify", "--store", store, "--json")
    assert as_json.exit_code == 1
    assert str(victim) in {p["path"] for p in json.loads(as_json.stdout)["problems"]}


def test_gc_grace_zero_removes_superseded_objects_and_reports_it(store: Path) -> None:
    before = len(object_files(store))
    result = cli("sessions", "gc", "--grace", "0", "--store", store, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["objects_removed"] >= 1
    assert len(object_files(store)) == before - report["objects_removed"]
    again = cli("sessions", "gc", "--grace", "0", "--store", store)
    assert "removed 0 objects" in again.stdout
    assert cli("sessions", "verify", "--store", store).exit_code == 0


def test_gc_default_grace_keeps_fresh_objects(store: Path) -> None:
    before = object_files(store)
    result = cli("sessions", "gc", "--store", store)
    assert result.exit_code == 0, result.output
    assert "removed 0 objects" in result.stdout
    assert object_files(store) == before


def test_unknown_session_exits_two_with_error_line_and_no_traceback(store: Path) -> None:
    result = cli("sessions", "show", "20260101-000000-deadbeef", "--store", store)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "deadbeef" in result.stderr
    assert "Traceback" not in result.output


def test_malformed_session_id_exits_two_with_error_line(store: Path) -> None:
    result = cli("sessions", "show", "../escape", "--store", store)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid session id")


def test_verify_without_store_exits_two_and_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "absent"
    result = cli("sessions", "verify", "--store", root)
    assert result.exit_code == 2
    assert "no podactors store" in result.stderr
    assert not root.exists()


def test_demo_fresh_on_non_store_dir_refuses_and_keeps_files(tmp_path: Path) -> None:
    precious = tmp_path / "project"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    result = cli("demo", "--store", precious, "--fresh")
    assert result.exit_code == 2
    assert "refusing to delete" in result.stderr
    assert (precious / "notes.txt").read_text() == "keep me"


def test_demo_into_non_store_dir_refuses(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    result = cli("demo", "--store", tmp_path)
    assert result.exit_code == 2
    assert not (tmp_path / "FORMAT").exists()


def test_demo_fresh_on_store_starts_over(store: Path) -> None:
    result = cli("demo", "--store", store, "--fresh")
    assert result.exit_code == 0, result.output
    assert len(list_sessions(store)) == 1


def test_demo_fresh_keeps_a_store_that_holds_a_project_manifest(store: Path) -> None:
    (store / "manifest.toml").write_text('[pod]\nname = "alice"\n')
    result = cli("demo", "--store", store, "--fresh")
    assert result.exit_code == 2
    assert "project manifest" in result.stderr
    assert (store / "manifest.toml").exists()
    assert len(list_sessions(store)) == 4


def test_demo_again_on_its_store_adds_a_session(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    assert cli("demo", "--store", root).exit_code == 0
    result = cli("demo", "--store", root)
    assert result.exit_code == 0, result.output
    assert len(list_sessions(root)) == 2


def test_version_option_prints_version() -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert "podactors" in result.stdout


def test_an_unexpected_error_is_one_line_not_a_traceback(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(self: FsStore) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(FsStore, "list_sessions", explode)
    result = cli("sessions", "list", "--store", store)
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: internal error: RuntimeError: boom"
    assert "Traceback" not in result.output


def test_sessions_list_names_a_damaged_ref_and_lists_the_rest(store: Path) -> None:
    refs = sorted((store / "refs" / "sessions").iterdir())
    broken, healthy = refs[0], refs[1:]
    data = bytearray(broken.read_bytes())
    data[-3] ^= 0x40
    broken.write_bytes(bytes(data))
    result = cli("sessions", "list", "--store", store)
    assert result.exit_code == 1
    assert "damaged" in result.stdout and broken.name in result.stdout
    assert all(ref.name in result.stdout for ref in healthy)


def test_an_error_inside_a_group_is_its_own_one_line(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(self: FsStore) -> None:
        raise ExceptionGroup("nursery", [StoreError("the disk is gone")])

    monkeypatch.setattr(FsStore, "list_sessions", explode)
    result = cli("sessions", "list", "--store", store)
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: the disk is gone"
