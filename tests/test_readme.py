"""The README's worker sample runs as written, against the stand-in over real HTTP."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import trio

from podactors.llm.scripted import ScriptedReply
from podactors.testing import StandinServer

README = Path(__file__).parent.parent / "README.md"


def sample(marker: str) -> str:
    """The README's python block that contains ``marker``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    [block] = [b for b in blocks if marker in b]
    return block


async def test_the_worker_sample_runs_a_turn(nursery, tmp_path):
    server = StandinServer([ScriptedReply(text="The test expects a - b.")])
    await nursery.start(server.serve)
    (tmp_path / "pod.toml").write_text(
        f'[pod]\nname = "alice"\n[model]\nprovider = "anthropic"\nbase_url = "{server.url}"\n'
        '[[scope.allow]]\ntarget = "."\npermission = "read"\n'
    )
    (tmp_path / "sample.py").write_text(sample("Conversation("))
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-sample"}
    with trio.fail_after(30):
        done = await trio.run_process(
            [sys.executable, "sample.py"], cwd=tmp_path, env=env, capture_stdout=True
        )
    out = done.stdout.decode()
    assert "['Message']" in out and "finished" in out and "The test expects a - b." in out
    assert len(server.requests) == 1
