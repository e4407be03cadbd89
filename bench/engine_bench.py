"""Engine bench: what the LLM layer and the worker add on top of reading the stream.

Against the local stand-in server (Anthropic wire format over loopback HTTP), for a
response of ``--deltas`` text deltas it measures, interleaved in one run:

* raw:      httpx POST + reading the whole streamed body (the floor),
* provider: ``AnthropicProvider.stream`` (SSE decoding, JSON per event, assembly),
* conversation: a worker turn hosted in memory (``Conversation.run``: hooks, steps),
* pod:      the same turn through a pod on a real store: the worker actor's gate, steps
            and batched events travel as messages to the pod, which persists every step
            and publishes every event to its fan-out,

and prints medians, events/s and ratios to the floor and to the provider alone. Against
the scripted provider it prints the worker's own cost per LLM call (a one-word reply, and a reply of
``--deltas`` words).

    python bench/engine_bench.py [--deltas 2000] [--rounds 30] [--json]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import msgspec
import trio

from podactors.agent.conversation import Conversation
from podactors.items import Message
from podactors.llm.anthropic import AnthropicProvider
from podactors.llm.request import Request
from podactors.llm.scripted import ScriptedProvider, ScriptedReply
from podactors.manifest import Manifest
from podactors.runtime.pod import Pod
from podactors.store import FsStore
from podactors.testing import StandinServer

REQUEST = Request("You are terse.", [Message("user", "Tell me a long story.")])


def pod_manifest(url: str, workdir: Path) -> Manifest:
    """A pod on the stand-in at ``url``, with no tools in play."""
    return Manifest.from_toml(
        f'[pod]\nname = "bench"\n[model]\nprovider = "anthropic"\nbase_url = "{url}"\n'
        '[[scope.allow]]\ntarget = "."\npermission = "read"\n',
        base_dir=workdir,
    )


def long_reply(words: int) -> ScriptedReply:
    return ScriptedReply(text=" ".join(f"word{i}" for i in range(words)))


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


async def bench_http(deltas: int, rounds: int) -> dict[str, float]:
    reply = long_reply(deltas)
    server = StandinServer([reply] * (4 * rounds + 4))
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

        async def through_conversation() -> None:
            await Conversation(provider, system_prompt="You are terse.").run(
                "Tell me a long story."
            )

        store_dir = Path(tempfile.mkdtemp(prefix="engine-bench-"))
        store = FsStore(store_dir / "store")

        async def through_pod() -> float:
            pod = Pod(pod_manifest(server.url, store_dir), store, provider=provider)
            handle = await nursery.start(pod.run)
            elapsed = await timed(lambda: handle.run("Tell me a long story."))
            await handle.shutdown()
            return elapsed

        samples: dict[str, list[float]] = {"raw": [], "provider": [], "worker": [], "pod": []}
        for fn in (raw, through_provider, through_conversation, through_pod):  # warm up
            await fn()
        for _ in range(rounds):
            samples["raw"].append(await timed(raw))
            samples["provider"].append(await timed(through_provider))
            samples["worker"].append(await timed(through_conversation))
            samples["pod"].append(await through_pod())
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
        "pod_ms": medians["pod"] * 1e3,
        "pod_ratio": medians["pod"] / medians["raw"],
        "pod_over_provider": medians["pod"] / medians["provider"],
        "events_per_s": deltas / medians["pod"],
    }


async def bench_scripted(deltas: int, rounds: int) -> dict[str, float]:
    results = {}
    for label, reply in (("short", ScriptedReply(text="ok")), ("long", long_reply(deltas))):
        provider = ScriptedProvider([reply] * (rounds + 1))
        samples = []
        for _ in range(rounds):
            conversation = Conversation(provider)
            samples.append(await timed(lambda c=conversation: c.run("go")))
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
        ("pod turn over HTTP", f"{row['pod_ms']:.2f} ms  ({row['pod_ratio']:.2f}x)"),
        ("pod turn / provider stream", f"{row['pod_over_provider']:.3f}x"),
        ("events/s through the pod", f"{row['events_per_s']:,.0f}"),
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
