#!/usr/bin/env python3
"""The full stack's database work per callback, in-process: SQL statements, group commits and CPU per ICE and DICE.

    .venv/bin/python bench/full_stack_writes.py [--calls 2048] [--concurrency 64] [--shared] [--repeats]

The three plugins of ``bench/run.py --config full`` (allowlist, credit_check, crm_export with a file sink) on
SQLite, driven through the real pipeline with decoded v1 events, ``--concurrency`` callbacks at a time as the
benchmark's connections send them, in its mix: groups of seven ICEs of new calls and the ACE, PIE and DICE of
the group's first call (``--phases``: every ICE, then every DICE, measured apart; ``--repeats``: every callback
sent twice, as the benchmark's rotation does).  Counts every statement SQLite
runs (``set_trace_callback`` on each plugin's connection), and the group commits (``COMMIT``), per callback:
exact and repeatable, unlike the CPU time (``time.process_time``, the database thread included), which is
printed beside them.  ``--shared``: credit_check and crm_export configured with one database URL (one
file, one connection, one group commit for both).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import structlog

from callgate import samples
from callgate.manager import load_plugins
from callgate.pipeline import Pipeline
from callgate.protocols.v1.decode import decode_event
from callgate.storage import SQLiteDatabase
from callgate.testing import full_stack_config, make_config

ACCOUNTS = [f"+4670123450{i}" for i in range(5)]
RATES = "prefix,currency,per_minute,connect_fee,increments\n+46,EUR,0.10,0,60/60\n"


def sqlite_databases(plugins) -> list[SQLiteDatabase]:
    """The SQLite databases the plugins opened (credit_check's store, crm_export's outbox), each once."""
    found: dict[int, SQLiteDatabase] = {}
    for plugin in (loaded.instance for loaded in plugins.loaded):
        for db in (getattr(getattr(getattr(plugin, "handle", None), "_store", None), "db", None),
                   getattr(getattr(plugin, "outbox", None), "db", None)):
            if isinstance(db, SQLiteDatabase):
                found[id(db)] = db
    return list(found.values())


async def run(args: argparse.Namespace) -> None:
    from callgate_credit_check.rate_csv import parse_rates
    from callgate_credit_check.store import CreditStore

    tmp = Path(tempfile.mkdtemp(prefix="callgate-writes-"))
    credit_url = f"sqlite:///{tmp / 'credit.sqlite3'}"
    crm_url = credit_url if args.shared else f"sqlite:///{tmp / 'crm.sqlite3'}"
    store = await CreditStore.open(credit_url)
    await store.import_rates(parse_rates(RATES))
    for account in ACCOUNTS:
        await store.add_account(account, "EUR")
        await store.credit(account, 10**12)
    await store.close()

    text = full_stack_config(tmp, overrides={"plugins": {
        "allowlist": {"rules": [{"action": "allow", "caller": "+4670*"}]},
        "credit_check": {"database_url": credit_url, "expiry_interval_seconds": 3600},
        "crm_export": {"database_url": crm_url}}})
    config = make_config(text)
    plugins = load_plugins(config.plugins, server_timeout_ms=config.server.plugin_timeout_ms)
    await plugins.startup()
    pipeline = Pipeline(plugins, config.server)
    statements: Counter[str] = Counter()
    databases = sqlite_databases(plugins)
    for db in databases:
        assert db._conn is not None
        db._conn.set_trace_callback(lambda sql: statements.update([sql.split(None, 1)[0].upper()]))
    times = 2 if args.repeats else 1
    ices = [samples.ice(caller=ACCOUNTS[i % len(ACCOUNTS)].lstrip("+"), to="+46850001234")
            for i in range(args.calls)]
    dices = [samples.dice(ice["callid"], caller=ice["cli"], to="+46850001234", duration=95) for ice in ices]

    async def phase(bodies) -> tuple[float, Counter[str], int]:
        import json
        events = [decode_event(json.dumps(body).encode()) for body in bodies for _ in range(times)]
        statements.clear()
        started = time.process_time()
        for i in range(0, len(events), args.concurrency):
            answers = await asyncio.gather(*(pipeline.answer(e) for e in events[i:i + args.concurrency]))
            assert all(a.status == 200 for a in answers), [a.body for a in answers if a.status != 200][:1]
        return time.process_time() - started, Counter(statements), len(events)

    # The benchmark's mix: groups of ten, seven ICEs of new calls, then the ACE, PIE and DICE of the group's first.
    mix = []
    for g in range(0, len(ices) - 6, 7):
        first = ices[g]["callid"]
        mix += ices[g:g + 7] + [samples.ace(first), samples.pie(first), dices[g]]
    phases = [("ICE", ices), ("DICE", dices)] if args.phases else [("mix", mix)]
    try:
        for name, bodies in phases:
            cpu, counted, n = await phase(bodies)
            total = sum(counted.values())
            kinds = ", ".join(f"{k} {v / n:.2f}" for k, v in counted.most_common())
            print(f"{name:<5} {n} callbacks: {total / n:.2f} statements per callback ({kinds}); "
                  f"{counted['COMMIT'] / n:.3f} group commits per callback; CPU {cpu / n * 1e6:.0f} us per callback")
    finally:
        await plugins.shutdown()


def main() -> int:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2048)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--shared", action="store_true", help="credit_check and crm_export on one SQLite file")
    parser.add_argument("--repeats", action="store_true", help="every callback sent twice")
    parser.add_argument("--phases", action="store_true",
                        help="every ICE first, then every DICE, each measured apart (default: the benchmark's mix)")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {args.calls} calls, {args.concurrency} at a time"
          f"{', one database for both plugins' if args.shared else ''}{', each callback twice' if args.repeats else ''}")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
