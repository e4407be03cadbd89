"""The tool protocol: schemas from signatures, the registry, errors and the output cap."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import pytest
import trio

from podactors.items import ToolCall
from podactors.manifest import AllowRule
from podactors.tools import (
    Scope,
    ScopedFs,
    Tool,
    ToolContext,
    ToolError,
    ToolOutput,
    ToolRegistry,
    ToolSpec,
    tool,
    truncate_utf8,
)


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    fs = ScopedFs(Scope([AllowRule(tmp_path, "write")]), tmp_path)
    return ToolContext(fs, tool_output_max_bytes=64)


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall("call-1", name, arguments)


class Point(msgspec.Struct):
    x: int
    y: int


def search(
    query: Annotated[str, msgspec.Meta(description="What to look for.")],
    limit: int = 10,
    mode: Literal["fast", "exact"] = "fast",
    origin: Point | None = None,
) -> str:
    """Search the index.

    This second paragraph is not part of the description.
    """
    return f"{query} {limit} {mode} {origin}"


# --- schema ------------------------------------------------------------------------------


def test_signature_types_become_schema_properties() -> None:
    schema = Tool.from_function(search).parameters_schema
    assert schema["type"] == "object"
    assert schema["properties"]["query"]["type"] == "string"
    assert schema["properties"]["limit"]["type"] == "integer"
    assert schema["properties"]["mode"]["enum"] == ["exact", "fast"]


def test_parameters_with_defaults_are_not_required() -> None:
    schema = Tool.from_function(search).parameters_schema
    assert schema["required"] == ["query"]
    assert schema["properties"]["limit"]["default"] == 10


def test_annotated_meta_description_is_kept() -> None:
    schema = Tool.from_function(search).parameters_schema
    assert schema["properties"]["query"]["description"] == "What to look for."


def test_top_level_schema_is_inlined_without_ref() -> None:
    schema = Tool.from_function(search).parameters_schema
    assert "$ref" not in schema
    assert "title" not in schema
    assert schema["$defs"]["Point"]["required"] == ["x", "y"]
    assert msgspec.json.decode(msgspec.json.encode(schema)) == schema


def test_docstring_first_paragraph_becomes_description() -> None:
    assert Tool.from_function(search).description == "Search the index."


def test_explicit_name_and_description_win() -> None:
    built = Tool.from_function(search, name="find", description="Find things.")
    assert built.spec() == ToolSpec("find", "Find things.", built.parameters_schema)


def test_ctx_parameter_is_excluded_from_schema() -> None:
    @tool
    def whoami(ctx: ToolContext, verbose: bool = False) -> str:
        """Say where we are."""
        return str(ctx.workdir)

    assert list(whoami.parameters_schema["properties"]) == ["verbose"]
    assert whoami.context_params == ("ctx",)


def test_tool_without_parameters_has_empty_object_schema() -> None:
    @tool
    def ping() -> str:
        return "pong"

    assert ping.parameters_schema["properties"] == {}
    assert ping.parameters_schema["required"] == []
    assert ping.description == ""


def test_variadic_parameters_are_rejected() -> None:
    def bad(*args: int) -> str:
        return ""

    with pytest.raises(TypeError, match="args"):
        Tool.from_function(bad)


def test_invalid_tool_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="invalid tool name"):
        Tool.from_function(search, name="has space")


def test_duplicate_tool_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        ToolRegistry([search, search])


def test_registry_specs_list_every_tool_in_order() -> None:
    @tool(name="ping", description="Answer pong.")
    def ping_tool() -> str:
        return "pong"

    registry = ToolRegistry([search, ping_tool])
    assert [spec.name for spec in registry.specs()] == ["search", "ping"]
    assert registry.names() == ["search", "ping"]
    assert "ping" in registry and len(registry) == 2
    assert registry.specs()[1].description == "Answer pong."


# --- calling -----------------------------------------------------------------------------


async def test_sync_tool_runs_in_a_worker_thread(ctx: ToolContext) -> None:
    main = threading.current_thread()

    @tool
    def where() -> str:
        return "worker" if threading.current_thread() is not main else "main"

    result = await ToolRegistry([where]).call(call("where"), ctx)
    assert result.summary == "worker"
    assert not result.is_error


async def test_async_tool_is_awaited(ctx: ToolContext) -> None:
    @tool
    async def later(n: int) -> ToolOutput:
        await trio.lowlevel.checkpoint()
        return ToolOutput(f"got {n}", "details")

    result = await ToolRegistry([later]).call(call("later", n=3), ctx)
    assert (result.call_id, result.summary, result.content) == ("call-1", "got 3", "details")


async def test_arguments_are_converted_and_defaults_applied(ctx: ToolContext) -> None:
    result = await ToolRegistry([search]).call(
        call("search", query="q", origin={"x": 1, "y": 2}), ctx
    )
    assert result.summary == "q 10 fast Point(x=1, y=2)"


async def test_context_is_injected(ctx: ToolContext) -> None:
    @tool
    def whoami(ctx: ToolContext) -> str:
        return str(ctx.workdir)

    result = await ToolRegistry([whoami]).call(call("whoami"), ctx)
    assert result.summary == str(ctx.workdir)


async def test_wrong_argument_type_returns_error_naming_it(ctx: ToolContext) -> None:
    result = await ToolRegistry([search]).call(call("search", query="q", limit=[1]), ctx)
    assert result.is_error
    assert "`limit`" in result.summary
    assert "search" in result.summary


async def test_nested_bad_argument_names_its_path(ctx: ToolContext) -> None:
    result = await ToolRegistry([search]).call(
        call("search", query="q", origin={"x": 1, "y": "far"}), ctx
    )
    assert result.is_error
    assert "`origin.y`" in result.summary


async def test_missing_argument_returns_error_naming_it(ctx: ToolContext) -> None:
    result = await ToolRegistry([search]).call(call("search", limit=3), ctx)
    assert result.is_error
    assert "`query`" in result.summary


async def test_unknown_argument_returns_error_naming_it(ctx: ToolContext) -> None:
    result = await ToolRegistry([search]).call(call("search", query="q", colour="red"), ctx)
    assert result.is_error
    assert "`colour`" in result.summary


async def test_numeric_strings_are_accepted_for_numbers(ctx: ToolContext) -> None:
    result = await ToolRegistry([search]).call(call("search", query="q", limit="7"), ctx)
    assert result.summary == "q 7 fast None"


async def test_raising_tool_returns_error_result_with_type(ctx: ToolContext) -> None:
    @tool
    def broken() -> str:
        raise ValueError("no such widget")

    result = await ToolRegistry([broken]).call(call("broken"), ctx)
    assert result.is_error
    assert result.summary == "ValueError: no such widget"


async def test_tool_error_returns_its_message_verbatim(ctx: ToolContext) -> None:
    @tool
    async def picky() -> str:
        raise ToolError("read the file first")

    result = await ToolRegistry([picky]).call(call("picky"), ctx)
    assert (result.is_error, result.summary) == (True, "read the file first")


async def test_multiline_error_keeps_full_message_in_content(ctx: ToolContext) -> None:
    @tool
    def noisy() -> str:
        raise RuntimeError("first line\nsecond line")

    result = await ToolRegistry([noisy]).call(call("noisy"), ctx)
    assert result.summary == "RuntimeError: first line"
    assert result.content == "RuntimeError: first line\nsecond line"


async def test_unknown_tool_returns_error_result(ctx: ToolContext) -> None:
    result = await ToolRegistry([search]).call(call("nope"), ctx)
    assert result.is_error
    assert "unknown tool 'nope'" in result.summary
    assert "search" in result.summary


async def test_bad_return_type_returns_error_result(ctx: ToolContext) -> None:
    @tool
    def number() -> int:
        return 3

    result = await ToolRegistry([number]).call(call("number"), ctx)
    assert result.is_error
    assert "expected str or ToolOutput" in result.summary


async def test_cancellation_propagates_out_of_a_tool(ctx: ToolContext) -> None:
    @tool
    async def forever() -> str:
        await trio.sleep_forever()
        return "unreachable"

    registry = ToolRegistry([forever])
    with trio.move_on_after(0) as scope:
        await registry.call(call("forever"), ctx)
    assert scope.cancelled_caught


async def test_base_exception_propagates_out_of_a_tool(ctx: ToolContext) -> None:
    class Stop(BaseException):
        pass

    @tool
    async def stopper() -> str:
        raise Stop

    with pytest.raises(Stop):
        await ToolRegistry([stopper]).call(call("stopper"), ctx)


async def test_string_return_gives_first_line_summary_and_full_content(ctx: ToolContext) -> None:
    @tool
    def report() -> str:
        return "\n3 passed, 1 failed\ndetails follow"

    result = await ToolRegistry([report]).call(call("report"), ctx)
    assert result.summary == "3 passed, 1 failed"
    assert result.content == "\n3 passed, 1 failed\ndetails follow"


async def test_long_first_line_summary_is_cut_to_200_chars(ctx: ToolContext) -> None:
    @tool
    def wide() -> str:
        return "w" * 500

    result = await ToolRegistry([wide]).call(call("wide"), ctx)
    assert len(result.summary) == 200
    assert result.summary.endswith("…")


# --- output cap --------------------------------------------------------------------------


async def test_long_content_is_capped_with_a_marker(ctx: ToolContext) -> None:
    @tool
    def flood() -> ToolOutput:
        return ToolOutput("flood", "€" * 100)  # 300 bytes, cap is 64

    result = await ToolRegistry([flood]).call(call("flood"), ctx)
    assert result.content is not None
    data = result.content.encode("utf-8")
    assert len(data) <= 64
    assert "output truncated: 300 bytes" in result.content
    assert result.content.startswith("€")


@pytest.mark.parametrize("char", ["é", "€", "😀"])
def test_truncation_never_splits_a_multibyte_char(char: str) -> None:
    text = "ab" + char * 400
    total = len(text.encode("utf-8"))
    for max_bytes in range(120, 200):
        cut = truncate_utf8(text, max_bytes)
        assert len(cut.encode("utf-8")) <= max_bytes
        kept, marker = cut.split("\n[… output truncated: ")
        assert text.startswith(kept)
        assert marker == f"{total} bytes, showing first {len(kept.encode('utf-8'))}]"


def test_text_within_cap_is_unchanged() -> None:
    assert truncate_utf8("héllo", 6) == "héllo"


def test_tiny_cap_cuts_without_marker_on_char_boundary() -> None:
    assert truncate_utf8("€€€", 5) == "€"


def test_reported_total_adds_a_marker_to_precut_text() -> None:
    cut = truncate_utf8("x" * 10, 1000, total_bytes=5000)
    assert cut == "x" * 10 + "\n[… output truncated: 5000 bytes, showing first 10]"


async def test_tool_needing_context_without_one_is_an_error() -> None:
    @tool
    def whoami(ctx: ToolContext) -> str:
        return str(ctx.workdir)

    result = await ToolRegistry([whoami]).call(call("whoami"))
    assert result.is_error
    assert "needs a ToolContext" in result.summary


async def test_callable_object_with_async_call_is_awaited(ctx: ToolContext) -> None:
    class Greeter:
        __name__ = "greet"

        async def __call__(self, name: str) -> str:
            await trio.lowlevel.checkpoint()
            return f"hello {name}"

    result = await ToolRegistry([Greeter()]).call(ToolCall("c", "greet", {"name": "bob"}), ctx)
    assert result.summary == "hello bob"
