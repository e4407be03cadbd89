"""Every wire provider over real HTTP on loopback: fixtures, framing variants and faults."""

from __future__ import annotations

import pytest
import trio
from fake_provider import Reply, fixture
from wire_cases import CASES, FAST_RETRY, WireCase

from podactors.errors import ProviderError, StreamInterrupted
from podactors.items import Message, ToolCall
from podactors.llm.events import ToolCallDone
from podactors.llm.request import Request

REQUEST = Request(system_prompt="You are terse.", items=[Message("user", "What is the timeout?")])

pytestmark = pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])


class Sleeps:
    """Records the waits between attempts instead of sleeping them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


async def call(case: WireCase, server, **kw):
    provider = case.make(server.url, retry=kw.pop("retry", FAST_RETRY), **kw)
    events = []

    async def listen(event):
        events.append(event)

    try:
        with trio.fail_after(10):
            response = await provider.stream(REQUEST, listen)
    finally:
        await provider.aclose()
    return response, events


def assert_expected(case: WireCase, response) -> None:
    assert response.items == case.items
    assert response.stop_reason == case.stop_reason
    assert response.usage == case.usage
    assert response.provider == case.name


async def test_fixture_assembles_into_the_expected_response(case, fake_provider):
    fake_provider.queue(Reply(body=fixture(case.fixture), headers={"request-id": "req-1"}))
    response, events = await call(case, fake_provider)
    assert_expected(case, response)
    assert response.request_id == "req-1"
    calls = [e.call for e in events if isinstance(e, ToolCallDone)]
    assert calls == [i for i in case.items if isinstance(i, ToolCall)]
    [request] = fake_provider.requests
    assert request.path.split("?")[0].endswith(case.path)


@pytest.mark.parametrize("split", [1, 2, 3, 7, 64])
async def test_events_split_at_any_byte_boundary_assemble_the_same(case, fake_provider, split):
    fake_provider.queue(Reply(body=fixture(case.fixture), split=split))
    response, _ = await call(case, fake_provider)
    assert_expected(case, response)


async def test_every_single_cut_point_assembles_the_same(case, fake_provider):
    body = fixture(case.fixture)
    provider = case.make(fake_provider.url, retry=FAST_RETRY)
    with trio.fail_after(60):
        for cut in range(1, len(body)):
            fake_provider.queue(Reply(body=body, split=(cut,)))
            assert_expected(case, await provider.stream(REQUEST))
    await provider.aclose()


async def test_crlf_line_endings_assemble_the_same(case, fake_provider):
    body = fixture(case.fixture).replace(b"\n", b"\r\n")
    fake_provider.queue(Reply(body=body, split=5))
    response, _ = await call(case, fake_provider)
    assert_expected(case, response)


async def test_comment_lines_are_ignored(case, fake_provider):
    body = fixture(case.fixture).replace(b"\n\n", b"\n: keep-alive\n\n")
    fake_provider.queue(Reply(body=b": hello\n\n" + body))
    response, _ = await call(case, fake_provider)
    assert_expected(case, response)


async def test_multi_line_data_fields_are_joined(case, fake_provider):
    # Break every JSON payload after its first comma: a newline is JSON whitespace.
    lines = []
    for line in fixture(case.fixture).split(b"\n"):
        if line.startswith(b"data: {") and b"," in line:
            head, _, tail = line.partition(b",")
            line = head + b",\ndata: " + tail
        lines.append(line)
    fake_provider.queue(Reply(body=b"\n".join(lines)))
    response, _ = await call(case, fake_provider)
    assert_expected(case, response)


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
async def test_connection_closed_early_is_a_typed_retryable_error(case, fake_provider, fraction):
    body = fixture(case.fixture)
    fake_provider.queue(Reply(body=body, cut_after=int(len(body) * fraction)))
    with pytest.raises(StreamInterrupted) as err:
        await call(case, fake_provider)
    assert err.value.provider == case.name and err.value.retryable
    assert err.value.status == 200
    assert not any(isinstance(item, ToolCall) for item in err.value.partial)
    assert len(fake_provider.requests) == 1  # never retried mid-stream


async def test_stream_ending_cleanly_before_its_end_is_interrupted(case, fake_provider):
    body = fixture(case.fixture)
    events = body.rstrip(b"\n").split(b"\n\n")
    fake_provider.queue(Reply(body=b"\n\n".join(events[: len(events) // 2]) + b"\n\n"))
    with pytest.raises(StreamInterrupted):
        await call(case, fake_provider)


async def test_429_with_retry_after_then_success(case, fake_provider):
    sleeps = Sleeps()
    fake_provider.queue(
        Reply(429, case.error_body, headers={"retry-after": "7"}),
        Reply(body=fixture(case.fixture)),
    )
    response, _ = await call(case, fake_provider, sleep=sleeps)
    assert_expected(case, response)
    assert sleeps.delays == [7.0]
    assert len(fake_provider.requests) == 2
    assert fake_provider.requests[0].body == fake_provider.requests[1].body


async def test_500_every_time_gives_up_after_the_bounded_attempts(case, fake_provider):
    sleeps = Sleeps()
    fake_provider.queue(*[Reply(500, case.error_body, headers={"x-request-id": "r9"})] * 5)
    with pytest.raises(ProviderError) as err:
        await call(case, fake_provider, sleep=sleeps)
    assert (err.value.status, err.value.request_id, err.value.retryable) == (500, "r9", True)
    assert len(fake_provider.requests) == FAST_RETRY.max_attempts
    assert len(sleeps.delays) == FAST_RETRY.max_attempts - 1
    assert all(0 < d <= FAST_RETRY.max_delay for d in sleeps.delays)


async def test_4xx_surfaces_the_provider_message_without_retry(case, fake_provider):
    fake_provider.queue(Reply(400, case.error_body, headers={"request-id": "req-400"}))
    with pytest.raises(ProviderError) as err:
        await call(case, fake_provider)
    assert "bad" in str(err.value) and case.name in str(err.value)
    assert "req-400" in str(err.value) and "400" in str(err.value)
    assert not err.value.retryable
    assert len(fake_provider.requests) == 1


async def test_connect_error_is_retried_then_reported(case):
    sleeps = Sleeps()
    provider = case.make("http://127.0.0.1:9", retry=FAST_RETRY, sleep=sleeps)
    with pytest.raises(ProviderError) as err, trio.fail_after(10):
        await provider.stream(REQUEST)
    await provider.aclose()
    assert err.value.retryable and err.value.status is None
    assert len(sleeps.delays) == FAST_RETRY.max_attempts - 1


async def test_api_key_never_appears_in_reprs_or_errors(case, fake_provider):
    fake_provider.queue(Reply(401, case.error_body))
    provider = case.make(fake_provider.url, retry=FAST_RETRY)
    with pytest.raises(ProviderError) as err:
        await provider.stream(REQUEST)
    await provider.aclose()
    assert "sk-secret" not in repr(provider)
    assert "sk-secret" not in str(err.value) and "sk-secret" not in repr(err.value)
    assert "sk-secret" in str(fake_provider.requests[0].headers)  # it was sent, only there
