"""A separate process that writes to a store, for the crash and concurrency tests.

python store_writer.py loop ROOT SESSION PACK_RECORDS   append forever, print "ack N"
python store_writer.py race ROOT SESSION                read head, print "ready",
                                                        wait for a line, append once
python store_writer.py contend ROOT SESSION TAG COUNT   append COUNT inputs, retrying
                                                        on HeadMoved
"""

from __future__ import annotations

import sys

import trio

from podactors.errors import HeadMoved
from podactors.store import FsStore
from podactors.store.entries import UserInput


async def loop(root: str, session_id: str, pack_records: str) -> None:
    store = FsStore(root, pack_records=int(pack_records))
    head = await store.head(session_id)
    n = 0
    while True:
        head = await store.append(session_id, [UserInput(f"step {n}" + "." * 2000)], head)
        print(f"ack {n}", flush=True)
        n += 1


async def race(root: str, session_id: str) -> None:
    store = FsStore(root)
    head = await store.head(session_id)
    print("ready", flush=True)
    await trio.to_thread.run_sync(sys.stdin.readline)
    try:
        await store.append(session_id, [UserInput(f"from {trio.lowlevel.current_task()}")], head)
    except HeadMoved:
        print("moved", flush=True)
    else:
        print("ok", flush=True)


async def contend(root: str, session_id: str, tag: str, count: str) -> None:
    store = FsStore(root, pack_records=8)
    moved = 0
    for i in range(int(count)):
        while True:
            head = await store.head(session_id)
            try:
                await store.append(session_id, [UserInput(f"{tag} {i}")], head)
                break
            except HeadMoved:
                moved += 1
    print(f"done {moved}", flush=True)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    trio.run({"loop": loop, "race": race, "contend": contend}[command], *args)
