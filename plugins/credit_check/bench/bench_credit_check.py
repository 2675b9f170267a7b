#!/usr/bin/env python3
"""Benchmark of credit_check: how long the answer path and settlement take, and how fast they go.

    .venv/bin/python plugins/credit_check/bench/bench_credit_check.py [--calls 2000] [--postgres URL]

PostgreSQL is measured when --postgres or $CALLGATE_TEST_POSTGRES_DSN names a server (a
schema of its own is created and dropped).  Prints, per database:

* rating: ``grant()`` alone (pure Python, no I/O);
* ICE: the whole callgate pipeline answering an ICE with credit_check enabled (account
  lookup, rate lookup, reservation, ledger entry, routing), one call at a time: p50/p99;
* ICE burst: ``--burst`` ICEs on one account at once (they serialize on the account row);
* DICE: the pipeline settling a call, one at a time: p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid

import structlog

from callgate import samples
from callgate.manager import load_plugins
from callgate.pipeline import Pipeline
from callgate.protocols.v1.decode import decode_event
from callgate.testing import make_config
from callgate_credit_check import CreditCheck
from callgate_credit_check.rate_csv import parse_rates
from callgate_credit_check.rating import Increments, Rate, grant
from callgate_credit_check.store import CreditStore

RATES = "prefix,currency,per_minute,connect_fee,increments\n+46,EUR,0.10,0,60/60\n+4670,EUR,0.12,0.01,30/6\n"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def bench_rating(n: int = 200_000) -> None:
    rate = Rate(currency="EUR", per_minute=120_000, increments=Increments(30, 6), connect_fee=10_000)
    started = time.perf_counter()
    for i in range(n):
        grant(rate, 1_000_000 + i, 3600)
    per_call = (time.perf_counter() - started) / n * 1e6
    print(f"rating   grant(): {per_call:.2f} us per call ({n} calls)")


async def bench_database(label: str, url: str, calls: int, burst: int) -> None:
    store = await CreditStore.open(url)
    await store.import_rates(parse_rates(RATES))
    account = "+46701234567"
    await store.add_account(account, "EUR")
    await store.credit(account, 10**12)
    await store.add_account("+46709999999", "EUR")
    await store.credit("+46709999999", 10**12)
    config = make_config({"plugins": {"credit_check": {"database_url": url, "expiry_interval_seconds": 3600},
                                      "router": {"routes": [{"action": {"name": "connectPstn", "number": "{to}"}}]}}},
                         plugins={"credit_check": CreditCheck})
    plugins = load_plugins(config.plugins, classes={"credit_check": CreditCheck})
    await plugins.startup()
    pipeline = Pipeline(plugins, config.server)
    try:
        ices = [json.dumps(samples.ice(caller=account.lstrip("+"), to="+46701112233")).encode() for _ in range(calls)]
        ice_ms, dice_ms = [], []
        for body in ices:
            event = decode_event(body)
            t = time.perf_counter()
            answer = await pipeline.answer(event)
            ice_ms.append((time.perf_counter() - t) * 1000)
            assert answer.action == "connectPstn", answer.body
        for body in ices:
            callid = json.loads(body)["callid"]
            event = decode_event(json.dumps(samples.dice(callid, duration=95)))
            t = time.perf_counter()
            answer = await pipeline.answer(event)
            dice_ms.append((time.perf_counter() - t) * 1000)
            assert answer.status == 200, answer.body
        burst_events = [decode_event(json.dumps(samples.ice(caller="46709999999", to="+46850001234")))
                        for _ in range(burst)]
        t = time.perf_counter()
        answers = await asyncio.gather(*(pipeline.answer(e) for e in burst_events))
        burst_s = time.perf_counter() - t
        assert all(a.action == "connectPstn" for a in answers)
    finally:
        await plugins.shutdown()
        await store.close()
    print(f"{label:<8} ICE  (whole pipeline, {calls} sequential): p50 {statistics.median(ice_ms):.3f} ms, "
          f"p99 {percentile(ice_ms, 99):.3f} ms, {calls / (sum(ice_ms) / 1000):.0f}/s")
    print(f"{label:<8} DICE (whole pipeline, {calls} sequential): p50 {statistics.median(dice_ms):.3f} ms, "
          f"p99 {percentile(dice_ms, 99):.3f} ms, {calls / (sum(dice_ms) / 1000):.0f}/s")
    print(f"{label:<8} ICE burst: {burst} at once on one account in {burst_s * 1000:.1f} ms "
          f"({burst / burst_s:.0f}/s)")


async def main() -> int:
    # Per-call log lines would measure the terminal: warnings and errors only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--postgres", default=os.environ.get("CALLGATE_TEST_POSTGRES_DSN"))
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}")
    bench_rating()
    with tempfile.TemporaryDirectory() as tmp:
        await bench_database("sqlite", f"sqlite:///{tmp}/bench.sqlite3", args.calls, args.burst)
    if args.postgres:
        import asyncpg
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(args.postgres)
        await conn.execute(f"CREATE SCHEMA {schema}")
        try:
            sep = "&" if "?" in args.postgres else "?"
            await bench_database("postgres", f"{args.postgres}{sep}search_path={schema}", args.calls, args.burst)
        finally:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
            await conn.close()
    else:
        print("postgres skipped: give --postgres URL or set CALLGATE_TEST_POSTGRES_DSN")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
