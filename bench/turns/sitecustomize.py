"""``bench/run.py --turns``: counts the event loop's turns that callgate's answers wait for (a diagnostic).

Under load a turn of the event loop is every other request's work, so an answer that hands over between tasks or
threads N times waits about N turns whatever the CPU it needs (docs/performance.md, "turns of the event loop").
Python imports this module at start-up when ``bench/turns`` is on ``PYTHONPATH``; it does something only in a
``callgate serve`` process whose environment has ``CALLGATE_BENCH_TURNS`` (the JSON file to write).  It wraps:

* ``BaseEventLoop._run_once``: counts every turn, and times the work of each (the turn less its wait in the
  selector; turns with more than 50 us of work are kept);
* ``Pipeline.answer``: the turns each callback took, by event name;
* ``dispatch._awaited``: the turns each ``async`` plugin hook took, by plugin and hook.

Every 2 s it writes ``{"turn_ms": {...}, "callback <event>": {...}, "hook <plugin>.<hook>": {...}}``, each with
``n``, ``p50``, ``p90``, ``p99``.  The wrappers cost a few microseconds per turn and per callback: a run with
``--turns`` measures where answers wait, not how fast callgate is.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict

_OUT = os.environ.get("CALLGATE_BENCH_TURNS")


def _quantiles(values: list[float]) -> dict[str, float | int]:
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * share))]
    return {"n": len(ordered), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99)}


def _install(out: str) -> None:
    import asyncio.base_events
    import selectors

    from callgate import dispatch, pipeline

    turns = [0]
    waited = [0.0]      # seconds this turn spent waiting in the selector
    busy_ms: list[float] = []
    waits: dict[str, list[float]] = defaultdict(list)
    written = [time.monotonic()]

    def write() -> None:
        report = {"turn_ms": _quantiles(busy_ms)} if busy_ms else {}
        report.update({name: _quantiles(values) for name, values in sorted(waits.items())})
        with open(out + ".tmp", "w") as file:
            json.dump(report, file, indent=1)
        os.replace(out + ".tmp", out)

    run_once = asyncio.base_events.BaseEventLoop._run_once
    select = selectors.DefaultSelector.select

    def timed_select(self: selectors.BaseSelector, timeout: float | None = None) -> list:
        start = time.perf_counter()
        try:
            return select(self, timeout)
        finally:
            waited[0] += time.perf_counter() - start

    def counted_run_once(self: asyncio.base_events.BaseEventLoop) -> None:
        turns[0] += 1
        waited[0] = 0.0
        start = time.perf_counter()
        run_once(self)
        ms = (time.perf_counter() - start - waited[0]) * 1000
        if ms > 0.05:
            busy_ms.append(ms)
        if start - written[0] > 2:
            written[0] = start
            write()

    answer = pipeline.Pipeline.answer

    async def counted_answer(self: pipeline.Pipeline, event: object) -> object:
        first = turns[0]
        try:
            return await answer(self, event)  # type: ignore[arg-type]
        finally:
            waits[f"callback {getattr(event, 'event', '?')}"].append(turns[0] - first)

    awaited = dispatch._awaited

    async def counted_awaited(impl: object, hook: str, *args: object) -> object:
        first = turns[0]
        try:
            return await awaited(impl, hook, *args)  # type: ignore[arg-type]
        finally:
            waits[f"hook {getattr(getattr(impl, 'plugin', None), 'name', '?')}.{hook}"].append(turns[0] - first)

    asyncio.base_events.BaseEventLoop._run_once = counted_run_once  # type: ignore[method-assign]
    selectors.DefaultSelector.select = timed_select  # type: ignore[method-assign]
    pipeline.Pipeline.answer = counted_answer  # type: ignore[method-assign, assignment]
    dispatch._awaited = counted_awaited  # type: ignore[assignment]


if _OUT and "serve" in sys.argv[1:2]:
    _install(_OUT)
