"""Benchmark of crm_export: what it costs on the answer path, how fast DICEs are made durable, how fast
records go out.  Prints figures; asserts nothing.

    .venv/bin/python plugins/crm_export/bench/bench_crm_export.py            # SQLite
    CALLGATE_TEST_POSTGRES_DSN=postgresql://postgres@127.0.0.1:5432/test \
        .venv/bin/python plugins/crm_export/bench/bench_crm_export.py        # and PostgreSQL

1. ``call_decided`` + ``on_answer`` per call (the ICE/ACE hooks: in memory only).
2. ``on_disconnect`` latency one at a time, and DICE throughput with 50 at once (each one a committed
   transaction before it returns).
3. Delivery throughput to a local aiohttp receiver (always 200), per sink concurrency.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timezone

from aiohttp import web

from callgate.decisions import PhoneNumber, Route
from callgate.protocols.v1.decode import decode_event
from callgate.protocols.v1.svaml import ConnectPstn, Svaml
from callgate.results import Decision, Outcome
from callgate.samples import ace, dice, ice
from callgate_crm_export import CrmExport
from callgate_crm_export.facts import dice_facts
from callgate_crm_export.outbox import Outbox


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def plugin(database_url: str, url: str, concurrency: int = 4) -> CrmExport:
    config = CrmExport.Config.model_validate({
        "database_url": database_url, "poll_interval_seconds": 0.05, "retention_days": 0,
        "sinks": [{"name": "hook", "type": "webhook", "url": url, "secret": "bench-secret-0123456789",
                   "concurrency": concurrency}]})
    return CrmExport(config)


def answer_path(n: int = 20000) -> None:
    exporter = plugin("sqlite://:memory:", "http://127.0.0.1:9/hook")
    route = Route(PhoneNumber("+15612600684"), name="us", max_duration=600)
    svaml = Svaml(action=ConnectPstn(number="+15612600684", max_duration=600))
    decision = Decision(True, "allowlist", "allowed", svaml, route, "router", None, 600,
                        (Outcome("allowlist", "authorize_call", None), Outcome("router", "route_call", route)))
    ices = [decode_event(json.dumps(ice(callid=str(i)))) for i in range(n)]
    aces = [decode_event(json.dumps(ace(callid=str(i)))) for i in range(n)]
    start = time.perf_counter()
    for call in ices:
        exporter.call_decided(call, decision)
    mid = time.perf_counter()
    for call in aces:
        exporter.on_answer(call)
    end = time.perf_counter()
    print(f"answer path: call_decided {(mid - start) / n * 1e6:.1f} us/call, on_answer {(end - mid) / n * 1e6:.1f} us/call "
          f"({n} calls, in memory)")


async def dice_writes(database_url: str, label: str, sequential: int = 300, burst: int = 2000) -> None:
    exporter = plugin(database_url, "http://127.0.0.1:9/hook")
    await exporter.startup()
    for worker in exporter.workers:        # measure the write alone: nobody delivers
        await worker.stop(0)
    try:
        latencies = []
        for _ in range(sequential):
            call = decode_event(json.dumps(dice(callid=str(uuid.uuid4()))))
            start = time.perf_counter()
            await exporter.on_disconnect(call)
            latencies.append((time.perf_counter() - start) * 1000)
        calls = [decode_event(json.dumps(dice(callid=str(uuid.uuid4())))) for _ in range(burst)]
        gate = asyncio.Semaphore(50)

        async def one(call):
            async with gate:
                t = time.perf_counter()
                await exporter.on_disconnect(call)
                return (time.perf_counter() - t) * 1000

        start = time.perf_counter()
        burst_latencies = await asyncio.gather(*(one(c) for c in calls))
        elapsed = time.perf_counter() - start
        print(f"{label}: on_disconnect one at a time p50 {statistics.median(latencies):.2f} ms, "
              f"p99 {percentile(latencies, 0.99):.2f} ms; 50 at once: {burst / elapsed:.0f} DICE/s, "
              f"p50 {statistics.median(burst_latencies):.1f} ms, p99 {percentile(burst_latencies, 0.99):.1f} ms")
    finally:
        await exporter.shutdown()


async def delivery(database_url: str, label: str, records: int = 2000, concurrency: int = 4) -> None:
    received = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal received
        await request.read()
        received += 1
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    outbox = await Outbox.open(database_url, ["hook"])
    now = datetime.now(timezone.utc)
    for _ in range(records):
        callid = str(uuid.uuid4())
        await outbox.add_facts(callid, dice_facts(decode_event(json.dumps(dice(callid=callid))), now), time.time())
    await outbox.close()
    exporter = plugin(database_url, f"http://127.0.0.1:{port}/hook", concurrency)
    start = time.perf_counter()
    await exporter.startup()
    try:
        while received < records:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        print(f"{label}: delivered {records} queued records in {elapsed:.2f} s = {records / elapsed:.0f} records/s "
              f"(webhook, concurrency {concurrency}, local receiver)")
    finally:
        await exporter.shutdown()
        await runner.cleanup()


async def main() -> None:
    answer_path()
    with tempfile.TemporaryDirectory() as tmp:
        databases = [(f"sqlite:///{tmp}/bench-a.sqlite3", "sqlite")]
        dsn = os.environ.get("CALLGATE_TEST_POSTGRES_DSN")
        schema = None
        if dsn:
            import asyncpg
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            conn = await asyncpg.connect(dsn)
            await conn.execute(f"CREATE SCHEMA {schema}")
            await conn.close()
            pg = f"{dsn}{'&' if '?' in dsn else '?'}search_path={schema}"
            databases.append((pg, "postgresql"))
        try:
            await dice_writes(databases[0][0], f"{databases[0][1]} (file, synchronous=FULL)")
            for concurrency in (4, 16):
                await delivery(f"sqlite:///{tmp}/bench-c{concurrency}.sqlite3", "sqlite", concurrency=concurrency)
            if dsn:
                await dice_writes(databases[1][0], "postgresql")
                for concurrency in (4, 16):
                    await delivery(databases[1][0], "postgresql", concurrency=concurrency)
        finally:
            if schema:
                conn = await asyncpg.connect(dsn)
                await conn.execute(f"DROP SCHEMA {schema} CASCADE")
                await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
