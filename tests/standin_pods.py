"""The manifest of a test pod that talks to the Anthropic stand-in."""

from __future__ import annotations

from pathlib import Path

from podactors.manifest import Manifest
from podactors.testing import StandinServer


def standin_manifest(server: StandinServer, workdir: Path, *, extra: str = "") -> Manifest:
    """Pod ``alice`` on ``server`` with write scope on ``workdir``; ``extra`` is more TOML
    (whole tables such as ``[worker]`` or ``[compaction]``)."""
    return Manifest.from_toml(
        f"""
[pod]
name = "alice"
[model]
provider = "anthropic"
base_url = "{server.url}"
[[scope.allow]]
target = "."
permission = "write"
{extra}
""",
        base_dir=workdir,
    )
