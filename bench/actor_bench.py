"""Actor bench: mailbox round trips, idle pods, and many pods streaming to websockets.

Three measurements, each against a floor taken in the same run where one exists:

1. a method round trip through a pod's mailbox (``get_snapshot``) against a raw trio
   memory-channel request/reply round trip;
2. N idle pods in one supervisor (scripted provider): spawn time per pod and memory
   per pod (tracemalloc, allocated by the spawns);
3. P pods streaming a reply of D deltas each from the local Anthropic stand-in at the
   same time, each with its own websocket subscriber: events/s delivered, p50/p99 latency
   from publish to a client's receipt, and whether every event arrived.

    python bench/actor_bench.py [--idle 1000] [--streaming 100] [--deltas 200] [--json]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import msgspec
import trio

from podactors import protocol as proto
from podactors.client import open_client
from podactors.fanout import Fanout
from podactors.llm.scripted import ScriptedProvider, ScriptedReply
from podactors.manifest import Manifest
from podactors.runtime.supervisor import open_supervisor
from podactors.testing import StandinServer

ROUNDS = 5_000
"""Round trips per timed batch."""
BATCHES = 5
"""Timed batches; the median batch is reported."""
WARM_UP = 5_000
"""Round trips before timing (the first thousands run slower)."""


def manifest(name: str, workdir: Path, base_url: str | None = None) -> Manifest:
    model = (
        f'provider = "anthropic"\nbase_url = "{base_url}"'
        if base_url
        else 'provider = "scripted"\nscript = "unused.toml"'
    )
    return Manifest.from_toml(
        f'[pod]\nname = "{name}"\n[model]\n{model}\n[worker]\ninstruction = "Be brief."\n'
        '[[scope.allow]]\ntarget = "."\n',
        base_dir=workdir,
    )


async def bench_round_trip(root: Path) -> dict[str, float]:
    """``get_snapshot`` through a pod mailbox vs a raw channel request/reply."""
    async with open_supervisor(root / "rt") as sup:
        pod = await sup.spawn(manifest("rt", root), provider=ScriptedProvider([]))
        for _ in range(WARM_UP):
            await pod.snapshot()
        batches = []
        for _ in range(BATCHES):
            start = time.perf_counter()
            for _ in range(ROUNDS):
                await pod.snapshot()
            batches.append((time.perf_counter() - start) / ROUNDS)
        mailbox = statistics.median(batches)
    async with trio.open_nursery() as nursery:
        request_send, request_receive = trio.open_memory_channel[int](64)
        reply_send, reply_receive = trio.open_memory_channel[int](1)

        async def echo() -> None:
            async for message in request_receive:
                await reply_send.send(message)

        nursery.start_soon(echo)
        for i in range(WARM_UP):
            await request_send.send(i)
            await reply_receive.receive()
        batches = []
        for _ in range(BATCHES):
            start = time.perf_counter()
            for i in range(ROUNDS):
                await request_send.send(i)
                await reply_receive.receive()
            batches.append((time.perf_counter() - start) / ROUNDS)
        raw = statistics.median(batches)
        nursery.cancel_scope.cancel()
    return {"mailbox_us": mailbox * 1e6, "raw_channel_us": raw * 1e6, "ratio": mailbox / raw}


async def bench_idle_pods(root: Path, count: int) -> dict[str, float]:
    """Spawn ``count`` idle pods; time and memory per pod."""
    manifests = [manifest(f"idle-{i}", root) for i in range(count)]
    async with open_supervisor(root / "idle") as sup:
        await sup.spawn(manifest("warm-up", root), provider=ScriptedProvider([]))
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        for m in manifests:
            await sup.spawn(m, provider=ScriptedProvider([]))
        elapsed = time.perf_counter() - start
        allocated = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert len(sup.pods()) == count + 1
    return {
        "pods": count,
        "spawn_ms_per_pod": elapsed / count * 1e3,
        "kb_per_pod": allocated / count / 1024,
    }


class Published:
    """Records when each (pod, seq) event was published, for latency."""

    def __init__(self) -> None:
        self.at: dict[tuple[str, int], float] = {}
        original = Fanout.publish

        def publish(fanout: Fanout, event: proto.AnyEvent) -> None:
            self.at[(event.pod, event.seq)] = time.perf_counter()
            original(fanout, event)

        Fanout.publish = publish  # type: ignore[method-assign]
        self._original = original

    def restore(self) -> None:
        Fanout.publish = self._original  # type: ignore[method-assign]


async def bench_streaming(root: Path, pods: int, deltas: int) -> dict[str, Any]:
    """``pods`` pods stream ``deltas`` deltas each to one websocket client apiece."""
    reply = ScriptedReply(text=" ".join(f"w{i}" for i in range(deltas)))
    server = StandinServer([reply] * pods)
    published = Published()
    latencies: list[float] = []
    received: dict[str, list[int]] = {}
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            async with open_supervisor(root / "stream") as sup:
                for i in range(pods):
                    await sup.spawn(manifest(f"s{i}", root, server.url))
                ws = await sup.serve_websocket()
                ready = trio.Event()
                attached: set[str] = set()

                async def subscriber(name: str) -> None:
                    seqs = received.setdefault(name, [])
                    async with open_client(ws.url, ws.token) as client:
                        await client.send(proto.Attach(pod=name))
                        async for event in client.events():
                            if isinstance(event, proto.Snapshot):
                                attached.add(name)
                                if len(attached) == pods:
                                    ready.set()
                                continue
                            latencies.append(time.perf_counter() - published.at[(name, event.seq)])
                            seqs.append(event.seq)
                            if isinstance(event, proto.RunEnd):
                                return

                async with trio.open_nursery() as clients:
                    for i in range(pods):
                        clients.start_soon(subscriber, f"s{i}")
                    await ready.wait()
                    start = time.perf_counter()
                    for i in range(pods):
                        await sup.get(f"s{i}").start_run("stream please")
                elapsed = time.perf_counter() - start
            nursery.cancel_scope.cancel()
    finally:
        published.restore()
    # Every event a pod published up to its run_end must have reached its client.
    expected = {
        name: {s for (pod, s) in published.at if pod == name and 0 < s <= max(seqs, default=0)}
        for name, seqs in received.items()
    }
    missing = sorted((n, s) for n in received for s in expected[n] - set(received[n]))
    lost = len(missing)
    in_order = all(seqs == sorted(seqs) for seqs in received.values())
    events = sum(len(s) for s in received.values())
    ordered = sorted(latencies)
    return {
        "pods": pods,
        "deltas_per_pod": deltas,
        "events": events,
        "events_per_s": events / elapsed,
        "latency_p50_ms": statistics.median(ordered) * 1e3,
        "latency_p99_ms": ordered[int(0.99 * (len(ordered) - 1))] * 1e3,
        "lost": lost,
        "missing": missing[:5],
        "in_order": in_order,
    }


def print_report(report: dict[str, dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="podactors actor bench")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rt, idle, stream = report["round_trip"], report["idle"], report["streaming"]
    rows = [
        ("pod mailbox round trip (get_snapshot)", f"{rt['mailbox_us']:.1f} us"),
        ("raw trio channel round trip (floor)", f"{rt['raw_channel_us']:.1f} us"),
        ("ratio (target <= 1.3x)", f"{rt['ratio']:.2f}x"),
        ("idle pods spawned", f"{idle['pods']}"),
        ("spawn time per pod", f"{idle['spawn_ms_per_pod']:.2f} ms"),
        ("memory per idle pod (target <= 100 KB)", f"{idle['kb_per_pod']:.1f} KB"),
        (f"pods streaming at once ({stream['deltas_per_pod']} deltas each)", f"{stream['pods']}"),
        ("events delivered over websockets", f"{stream['events']:,}"),
        ("events/s", f"{stream['events_per_s']:,.0f}"),
        (
            "publish -> client latency p50 / p99",
            f"{stream['latency_p50_ms']:.1f} / {stream['latency_p99_ms']:.1f} ms",
        ),
        ("events lost / all in order", f"{stream['lost']} / {stream['in_order']}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console(width=100).print(table)


async def main(idle: int, streaming: int, deltas: int, as_json: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="podactors-actor-bench-", dir=Path.cwd()) as d:
        root = Path(d)
        report = {
            "round_trip": await bench_round_trip(root),
            "idle": await bench_idle_pods(root, idle),
            "streaming": await bench_streaming(root, streaming, deltas),
        }
    if as_json:
        print(msgspec.json.encode(report).decode())
    else:
        print_report(report)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--streaming", type=int, default=100)
    parser.add_argument("--deltas", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    trio.run(main, args.idle, args.streaming, args.deltas, args.json)
