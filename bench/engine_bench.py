"""Engine bench: what the LLM layer and the worker add on top of reading the stream.

Against the local stand-in server (Anthropic wire format over loopback HTTP), for a
response of ``--deltas`` text deltas it measures, interleaved in one run:

* raw:      httpx POST + reading the whole streamed body (the floor),
* provider: ``AnthropicProvider.stream`` (SSE decoding, JSON per event, assembly),
* worker:   ``Worker.run`` over that provider (hooks, steps, event fan-out),

and prints medians, events/s and ratios to the floor. Against the scripted provider
it prints the worker's own cost per LLM call (a one-word reply, and a reply of
``--deltas`` words).

    python bench/engine_bench.py [--deltas 2000] [--rounds 30] [--json]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx
import msgspec
import trio

from podactors.agent.worker import Worker
from podactors.items import Message
from podactors.llm.anthropic import AnthropicProvider
from podactors.llm.request import Request
from podactors.llm.scripted import ScriptedProvider, ScriptedReply
from podactors.testing import StandinServer

REQUEST = Request("You are terse.", [Message("user", "Tell me a long story.")])


def long_reply(words: int) -> ScriptedReply:
    return ScriptedReply(text=" ".join(f"word{i}" for i in range(words)))


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


async def bench_http(deltas: int, rounds: int) -> dict[str, float]:
    reply = long_reply(deltas)
    server = StandinServer([reply] * (3 * rounds + 3))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        client = httpx.AsyncClient()
        provider = AnthropicProvider(model="m", base_url=server.url, client=client)
        body = msgspec.json.encode(provider.body(REQUEST))

        async def raw() -> None:
            async with client.stream("POST", f"{server.url}/v1/messages", content=body) as r:
                async for _ in r.aiter_bytes():
                    pass

        async def through_provider() -> None:
            await provider.stream(REQUEST)

        async def through_worker() -> None:
            await Worker(provider, system_prompt="You are terse.").run("Tell me a long story.")

        samples: dict[str, list[float]] = {"raw": [], "provider": [], "worker": []}
        for fn in (raw, through_provider, through_worker):  # warm the connection pool
            await fn()
        for _ in range(rounds):
            samples["raw"].append(await timed(raw))
            samples["provider"].append(await timed(through_provider))
            samples["worker"].append(await timed(through_worker))
        await client.aclose()
        nursery.cancel_scope.cancel()
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return {
        "deltas": deltas,
        "raw_ms": medians["raw"] * 1e3,
        "provider_ms": medians["provider"] * 1e3,
        "worker_ms": medians["worker"] * 1e3,
        "provider_ratio": medians["provider"] / medians["raw"],
        "worker_ratio": medians["worker"] / medians["raw"],
        "events_per_s": deltas / medians["worker"],
    }


async def bench_scripted(deltas: int, rounds: int) -> dict[str, float]:
    results = {}
    for label, reply in (("short", ScriptedReply(text="ok")), ("long", long_reply(deltas))):
        provider = ScriptedProvider([reply] * (rounds + 1))
        samples = []
        for _ in range(rounds):
            worker = Worker(provider)
            samples.append(await timed(lambda w=worker: w.run("go")))
        results[f"scripted_{label}_us"] = statistics.median(samples) * 1e6
    return results


def print_table(row: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="podactors engine bench (medians; ratios against the raw read)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    lines = [
        ("deltas per response", f"{row['deltas']:.0f}"),
        ("raw httpx read (floor)", f"{row['raw_ms']:.2f} ms"),
        ("provider stream", f"{row['provider_ms']:.2f} ms  ({row['provider_ratio']:.2f}x)"),
        ("worker turn over HTTP", f"{row['worker_ms']:.2f} ms  ({row['worker_ratio']:.2f}x)"),
        ("events/s through the worker", f"{row['events_per_s']:,.0f}"),
        ("worker turn, scripted 1-word", f"{row['scripted_short_us']:.0f} us"),
        (f"worker turn, scripted {row['deltas']:.0f}-word", f"{row['scripted_long_us']:.0f} us"),
    ]
    for name, value in lines:
        table.add_row(name, value)
    Console(width=100).print(table)


async def main(deltas: int, rounds: int, as_json: bool) -> None:
    row = await bench_http(deltas, rounds)
    row.update(await bench_scripted(deltas, rounds))
    if as_json:
        print(msgspec.json.encode(row).decode())
    else:
        print_table(row)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deltas", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    trio.run(main, args.deltas, args.rounds, args.json)
