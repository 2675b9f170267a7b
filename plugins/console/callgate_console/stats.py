"""The stats page's numbers: callbacks, denials and errors per minute (an inline SVG chart), and each
plugin's health (calls, errors, timeouts, p50 and p95 latency) over the last hour."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

MINUTES = 60
#: Plugin health is computed from the newest callbacks of the last hour, at most this many.
HEALTH_SAMPLE = 20_000
SERIES = (("callbacks", "Callbacks"), ("denials", "Denials"), ("errors", "Errors"))


@dataclass(frozen=True, slots=True)
class Chart:
    """An SVG line chart's parts, ready for the template (coordinates in the SVG's user units)."""

    width: int
    height: int
    left: int
    top: int
    bottom: int
    right: int
    maximum: int
    lines: list[tuple[str, str, str, int]]        # (series key, label, points, total)
    ticks: list[tuple[float, str]]                 # (x, HH:MM)


def minutes(rows: Iterable[Mapping[str, Any]], now_minute: int) -> list[dict[str, int]]:
    """The last :data:`MINUTES` minutes, oldest first, each with its three counts (0 when nothing came)."""
    by_minute = {int(r["minute"]): r for r in rows}
    series = []
    for minute in range(now_minute - MINUTES + 1, now_minute + 1):
        r = by_minute.get(minute)
        series.append({"minute": minute, "callbacks": int(r["callbacks"]) if r else 0,
                       "denials": int(r["denials"] or 0) if r else 0, "errors": int(r["errors"] or 0) if r else 0})
    return series


def chart(series: list[dict[str, int]], width: int = 720, height: int = 260) -> Chart:
    left, right, top, bottom = 48, 24, 12, 48   # right: room for half of the last time label
    inner_w, inner_h = width - left - right, height - top - bottom
    maximum = max(1, *(point[key] for point in series for key, _ in SERIES))
    step = inner_w / max(1, len(series) - 1)

    def y(value: int) -> float:
        return top + inner_h - inner_h * value / maximum

    lines = [(key, label, " ".join(f"{left + i * step:.1f},{y(p[key]):.1f}" for i, p in enumerate(series)),
              sum(p[key] for p in series)) for key, label in SERIES]
    ticks = [(left + i * step, datetime.fromtimestamp(p["minute"] * 60, timezone.utc).strftime("%H:%M"))
             for i, p in enumerate(series) if i % 10 == 0 or i == len(series) - 1]
    return Chart(width, height, left, top, height - bottom, width - right, maximum, lines, ticks)


def _percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    return values[max(0, math.ceil(fraction * len(values)) - 1)]


def health(traces: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per plugin, in name order: hook calls, errors, timeouts, p50 and p95 of their milliseconds (``traces``: as
    :meth:`~.record.Stored.plugin_trace` gives them)."""
    calls: dict[str, list[float]] = {}
    failures: dict[str, dict[str, int]] = {}
    for trace in traces:
        for step in trace:
            plugin, status = step["plugin"], step["status"]
            calls.setdefault(plugin, []).append(float(step["ms"]))
            counts = failures.setdefault(plugin, {"error": 0, "timeout": 0})
            if status in counts:
                counts[status] += 1
    result = []
    for plugin in sorted(calls):
        times = sorted(calls[plugin])
        result.append({"plugin": plugin, "calls": len(times), "errors": failures[plugin]["error"],
                       "timeouts": failures[plugin]["timeout"], "p50": round(_percentile(times, 0.5), 3),
                       "p95": round(_percentile(times, 0.95), 3)})
    return result
