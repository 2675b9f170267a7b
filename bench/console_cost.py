"""What the console costs per callback, in process: the hook on the answer path, and the background work.

    .venv/bin/python bench/console_cost.py [--number 20000] [--stored 100000]

Answers one real v1 ICE and one v2 ``call.incoming`` with the real app (router-only plus the
console) to capture their :class:`~callgate.exchange.Exchange`, then times with ``timeit``:

* on the answer path: building the Exchange and calling the console's ``callback_answered``
  (``callgate.exchange.tell``: headers copied without Authorization, the capture taken, the queue
  append); the capture alone is also given;
* off it (the background flush, same process and CPU): packing and writing captures to SQLite in
  batches as the flush does under the benchmark's load (500 per batch: the default 100 ms flush at 5,000
  callbacks/s; on the console's writer thread), each a call of its own, into a store already holding
  ``--stored`` callbacks (default 100,000, the default ``max_callbacks``: the size it keeps under a
  steady load), followed by the retention purge of as many, as CPU time of the whole process (the
  disk flush's wait is not CPU).

Each figure is microseconds per callback, best of 5 repeats (the minimum is the least disturbed by
other processes on a busy machine).  Compare them with a callback's whole cost in router-only
(bench/run.py: 1 / requests-per-second of one worker).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import timeit
import uuid
from pathlib import Path
from typing import Any

import msgspec
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from callgate import exchange as exchange_module
from callgate import hookimpl, samples, v2_samples
from callgate.app import create_app, create_ops_app
from callgate.exchange import Exchange
from callgate.metrics import Metrics
from callgate.state import PLUGINS
from callgate.testing import SignedClient, make_config

BATCH = 500


class Capture:
    """Keeps the exchanges it sees (enabled after the console, so it sees what the console sees)."""

    def __init__(self) -> None:
        self.seen: list[Exchange] = []

    @hookimpl
    def callback_answered(self, exchange: Exchange) -> None:
        self.seen.append(exchange)


def calls(template: Any, count: int) -> list[Any]:
    """``count`` copies of the capture ``template`` (a ``callgate_console.record.Capture``), each a call of its own
    (a fresh callid and key)."""
    captures = []
    for _ in range(count):
        callid = str(uuid.uuid4())
        summary = msgspec.structs.replace(template.summary, call_key=callid, callid=callid)
        captures.append(msgspec.structs.replace(template, summary=summary))
    return captures


def best_us(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


async def measure(number: int, stored: int, folder: Path) -> None:
    from callgate_console import Console
    from callgate_console.record import capture
    from callgate_console.store import ConsoleStore

    os.environ.setdefault("CALLGATE_CONSOLE_TOKEN", "bench-console-token-0123456789")
    route = {"name": "sweden", "prefix": "+46",
             "action": {"name": "connectPstn", "number": "{to}", "maxDuration": 3600}}
    classes = {"console": Console, "capture": Capture}
    config = make_config({"server": {"ops_port": 9}, "plugins": {
        "enabled": ["console", "capture"], "console": {"database_url": f"sqlite:///{folder}/console.sqlite3"},
        "router": {"routes": [route]}}}, plugins=classes)
    app = create_app(config, plugin_classes=classes)
    create_ops_app(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        signed = SignedClient(client, config)
        await signed.event(samples.ice(caller="46701234567", to="+46850001234"))
        await signed.webhook(v2_samples.incoming(caller="+46701234567", to="+46850001234"))
        console = signed.plugin("console")
        v1, v2 = signed.plugin("capture").seen
        console_only = tuple(i for i in app[PLUGINS].impls("callback_answered") if i.plugin.name == "console")
        metrics = Metrics()
        recorder = console.state.recorder
        recorder.limit = 10**9
        for name, ex in (("v1 ICE", v1), ("v2 call.incoming", v2)):
            headers = CIMultiDictProxy(CIMultiDict([*ex.headers.items(), ("Authorization", "Application k:s")]))

            def hook(ex=ex, headers=headers) -> None:
                exchange_module.tell(console_only, metrics, ex.generation, ex.event, ex.call, headers, ex.body,
                                     ex.status, ex.answer, ex.decision, ex.outcomes, ex.problem, ex.summary, ex.ms,
                                     ex.trace)
            on_path = best_us(hook, number)
            recorder.pending.clear()
            to_capture = best_us(lambda ex=ex: capture(ex), number)
            store: ConsoleStore = console.state.store
            template = capture(ex)
            while await store.last_id() < stored:
                await store.insert(calls(template, BATCH))
            batches = [calls(template, BATCH) for _ in range(max(1, number // BATCH))]
            started = time.process_time()          # CPU of every thread (the commit runs on the store's)
            for batch in batches:
                await store.insert(batch)
            await store.purge(0.0, stored)
            write = (time.process_time() - started) / (len(batches) * BATCH) * 1e6
            print(f"{name:<18} answer path (Exchange + capture + hook): {on_path:6.2f} us (capture {to_capture:6.2f} us)"
                  f"   background: packing and the SQLite write {write:6.2f} us   per callback")
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=20000, help="calls per timing (default 20000)")
    parser.add_argument("--stored", type=int, default=100_000,
                        help="callbacks already in the store when the writes are timed (default 100000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="callgate-console-cost-") as folder:
        asyncio.run(measure(args.number, args.stored, Path(folder)))


if __name__ == "__main__":
    main()
