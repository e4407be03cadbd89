"""The scripted provider: deterministic replies through the shared assembler."""

from __future__ import annotations

import pytest
import trio

from podactors.errors import ManifestError, ProviderError
from podactors.items import Message, Reasoning, ToolCall
from podactors.llm.events import TextDelta, ToolCallDone
from podactors.llm.request import Request
from podactors.llm.scripted import ScriptedProvider, load_script

SCRIPT = """
[[reply]]
thinking = "Read the README first."
text = "Let me look at it."
tool_calls = [{name = "read_file", arguments = {path = "README.md", limit = 10}}]
usage = {input_tokens = 1200, output_tokens = 40, cache_read = 1000}
delay_ms = 250

[[reply]]
text = "It is a calculator."
"""

REQUEST = Request("p", [Message("user", "what is this?")])


@pytest.fixture
def script_file(tmp_path):
    path = tmp_path / "script.toml"
    path.write_text(SCRIPT)
    return path


async def test_replies_play_in_order_as_streams(script_file, autojump_clock):
    provider = ScriptedProvider.from_file(script_file)
    events = []

    async def listen(event):
        events.append(event)

    start = trio.current_time()
    first = await provider.stream(REQUEST, listen)
    assert trio.current_time() - start == pytest.approx(0.25)
    assert first.items == [
        Reasoning("Read the README first."),
        Message("assistant", "Let me look at it."),
        ToolCall("call_0_0", "read_file", {"path": "README.md", "limit": 10}),
    ]
    assert first.stop_reason == "tool_use"
    assert (first.usage.input_total, first.usage.cache_read, first.usage.output) == (1200, 1000, 40)
    assert [e.text for e in events if isinstance(e, TextDelta)] == [
        "Let ",
        "me ",
        "look ",
        "at ",
        "it.",
    ]
    assert [e.call.id for e in events if isinstance(e, ToolCallDone)] == ["call_0_0"]
    second = await provider.stream(REQUEST)
    assert second.items == [Message("assistant", "It is a calculator.")]
    assert second.stop_reason == "end_turn" and second.usage.input_total > 0
    assert provider.requests == [REQUEST, REQUEST]


async def test_running_out_of_replies_is_a_clear_error(script_file):
    provider = ScriptedProvider(load_script(script_file)[1:])
    await provider.stream(REQUEST)
    with pytest.raises(ProviderError, match="script exhausted: all 1 replies were played"):
        await provider.stream(REQUEST)


def test_bad_script_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[reply]]\ntext = "x"\ntool_cals = []\n')
    with pytest.raises(ManifestError, match=r"bad\.toml") as err:
        load_script(path)
    assert "tool_cals" in str(err.value)
    with pytest.raises(ManifestError, match="cannot read script"):
        load_script(tmp_path / "missing.toml")


def test_create_provider_builds_what_the_manifest_names(tmp_path, monkeypatch):
    from podactors.llm import GeminiProvider, create_provider
    from podactors.manifest import Manifest

    (tmp_path / "s.toml").write_text(SCRIPT)
    base = '[pod]\nname = "p"\n[[scope.allow]]\ntarget = "."\n'
    scripted = Manifest.from_toml(
        base + '[model]\nprovider = "scripted"\nscript = "s.toml"\n', base_dir=tmp_path
    )
    assert isinstance(create_provider(scripted.model), ScriptedProvider)
    monkeypatch.setenv("GEMINI_API_KEY", "g-key")
    gemini = create_provider(Manifest.from_toml(base + '[model]\nprovider = "gemini"\n').model)
    assert isinstance(gemini, GeminiProvider) and gemini.model == "gemini-2.5-flash"
    assert "g-key" not in repr(gemini)
