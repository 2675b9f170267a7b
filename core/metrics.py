"""Prometheus metrics: what an operator needs to see callgate work.

Each app has its own registry (tests build many apps); with several workers
(``callgate serve --workers N``) every worker writes to the shared
``PROMETHEUS_MULTIPROC_DIR`` that the supervisor sets, and ``/metrics``
aggregates them, so a scrape counts every worker's requests whichever worker
answers it.

Plugins expose gauges by implementing the ``collect_metrics`` hook; each value
becomes ``callgate_plugin_gauge{plugin="...", name="..."}``.
"""

from __future__ import annotations

import math
import os
import time
from bisect import bisect_left
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

try:
    from prometheus_client.values import MutexValue
except ImportError:     # not in this version: every value goes through its own inc
    MutexValue = None  # type: ignore[assignment,misc]

from . import dispatch

if TYPE_CHECKING:
    from .manager import Plugins
    from .pipeline import Reply

log = structlog.get_logger("callgate")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The metrics of one callgate app."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # generation after event: labels in alphabetical order, as multiprocess exposition prints them anyway.
        self.callbacks = Counter("callgate_callbacks", "Callbacks and webhooks answered, by event, HTTP status and "
                                 "API generation (v1, v2)", ["event", "generation", "status"], registry=r)
        self.latency = Histogram("callgate_answer_seconds", "Time to answer a callback, by event",
                                 ["event"], buckets=LATENCY_BUCKETS, registry=r)
        self.plugin_latency = Histogram("callgate_plugin_seconds", "Time a plugin's hook took",
                                        ["plugin", "hook"], buckets=LATENCY_BUCKETS, registry=r)
        self.plugin_failures = Counter("callgate_plugin_failures", "Plugin hook calls that raised or timed out",
                                       ["plugin", "hook", "kind"], registry=r)
        self.denials = Counter("callgate_denials", "ICE callbacks denied, by the plugin whose Deny won",
                               ["plugin"], registry=r)
        self.signature_failures = Counter("callgate_signature_failures", "Callbacks and webhooks refused by the "
                                          "signature check, by reason and API generation", ["reason", "generation"],
                                          registry=r)
        self.plugin_gauges = Gauge("callgate_plugin_gauge", "Gauges plugins expose (outbox depth, reservations...)",
                                   ["plugin", "name"], registry=r, multiprocess_mode="mostrecent")
        self._children: dict[tuple[int, tuple[str, ...]], object] = {}
        # The hot path, per callback: (event, status, generation) -> (count it, observe its latency), and
        # (plugin, hook) -> observe its time; see _fast_inc and _fast_observe.
        self._answers: dict[tuple[str, int, str], tuple[Callable[[], None], Callable[[float], None]]] = {}
        self._plugin_times: dict[tuple[str, str], Callable[[float], None]] = {}

    def answered(self, event: str, status: int, seconds: float, answer: Reply | None = None, *,
                 generation: str = "v1") -> None:
        """Record one callback's outcome (and its plugins' timings, when it reached the pipeline)."""
        key = (event, status, generation)
        record = self._answers.get(key)
        if record is None:
            record = self._answers[key] = (
                _fast_inc(self._child(self.callbacks, event, generation, str(status))),
                _fast_observe(self._child(self.latency, event)))
        count, observe = record
        count()
        observe(seconds)
        if answer is None:
            return
        plugin_times = self._plugin_times
        for outcome in answer.outcomes:
            observe_plugin = plugin_times.get((outcome.plugin, outcome.hook))
            if observe_plugin is None:
                observe_plugin = plugin_times[(outcome.plugin, outcome.hook)] = _fast_observe(
                    self._child(self.plugin_latency, outcome.plugin, outcome.hook))
            observe_plugin(outcome.elapsed_ms / 1000)
            if outcome.status != "ok":
                self._child(self.plugin_failures, outcome.plugin, outcome.hook, outcome.status).inc()
        if answer.decision is not None and not answer.decision.allowed:
            self._child(self.denials, answer.decision.decided_by).inc()

    def _child(self, metric, *labels: str):
        """``metric.labels(*labels)``, looked up once (prometheus-client's own lookup costs microseconds)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def hook_failed(self, plugin: str, hook: str, kind: str) -> None:
        """Count a hook call outside the pipeline that raised or timed out (``callback_answered``)."""
        self._child(self.plugin_failures, plugin, hook, kind).inc()

    def refused_signature(self, reason: str, *, generation: str = "v1") -> None:
        """Count a request refused by the signature check (``reason``: SignatureError's, or no_application /
        no_service)."""
        self._child(self.signature_failures, reason, generation).inc()

    async def render(self, plugins: Plugins) -> bytes:
        """The exposition text, after asking plugins for their gauges."""
        deadline = time.monotonic() + 2.0
        for outcome in await dispatch.collect(plugins, "collect_metrics", deadline):
            if outcome.status != "ok":            # raised or timed out: logged by the dispatcher, counted here
                self.hook_failed(outcome.plugin, "collect_metrics", outcome.status)
            elif outcome.value is not None:
                read = _gauges(outcome.value)
                if read is None:
                    # One plugin's bad answer must not cost the scrape (a 500) everyone else's metrics.
                    log.error("plugin_failed", plugin=outcome.plugin, hook="collect_metrics", status="error",
                              error=f"returned {type(outcome.value).__name__}: not a dict of gauge names to numbers")
                    self.hook_failed(outcome.plugin, "collect_metrics", "error")
                    continue
                gauges, skipped = read
                if skipped:           # the plugin's other gauges are still served
                    log.error("plugin_failed", plugin=outcome.plugin, hook="collect_metrics", status="error",
                              error=f"skipped {', '.join(skipped)}: not a gauge name (a non-empty string) with a "
                                    f"number")
                    self.hook_failed(outcome.plugin, "collect_metrics", "error")
                for name, value in gauges:
                    self.plugin_gauges.labels(outcome.plugin, name).set(value)
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def _gauges(value: Any) -> tuple[list[tuple[str, float]], list[str]] | None:
    """A ``collect_metrics`` answer as its (name, value) pairs of a name and a real number (``True`` and ``False``
    count as 1 and 0, as Prometheus writes them) and the keys of the other entries (their ``repr``, clipped), or
    None when it is not a dict."""
    if not isinstance(value, dict):
        return None
    gauges, skipped = [], []
    for name, number in value.items():
        gauge = _real(number) if isinstance(name, str) and name else None
        if gauge is None:
            skipped.append(f"{name!r:.60}")
        else:
            gauges.append((name, gauge))
    return gauges, skipped


def _real(value: Any) -> float | None:
    """A number as a float; None for anything else, an integer too large for a float (``10**400``) included."""
    if not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


# The hot path.  Counter.inc and Histogram.observe check, per call, that the metric is a labelled
# child, that the amount is not negative and whether there is an exemplar, then walk the buckets
# one by one, and every value they change takes its lock.  For a labelled child and an amount >= 0
# (a count, a time), what they change is exactly: the counter's value; the histogram's sum and the
# one bucket whose upper bound is the first >= the amount.  The two functions below change exactly
# that, on the same value objects, with the bucket found by bisection:
#
# - in one process (MutexValue: a float and a lock), by adding to the float without the lock.  The
#   lock only orders threads, and callgate's metrics are written (answered, refused_signature) and
#   read (render) on its event loop's thread alone;
# - in multiprocess mode (PROMETHEUS_MULTIPROC_DIR), through the value's own ``inc``, which writes
#   this process's mmap file at once, as Counter.inc and Histogram.observe do.
#
# They read attributes outside prometheus-client's API (Counter child ``_value``; Histogram child
# ``_sum``, ``_buckets``, ``_upper_bounds``; MutexValue ``_value``), unchanged since long before
# 0.20, checked here; tests/test_metrics.py compares what they produce with the public methods'.
# Anything unexpected falls back to the public method.

def _lockless(value: object) -> bool:
    """A single-process value, that is a float that can be added to directly."""
    return type(value) is MutexValue and type(getattr(value, "_value", None)) is float


def _fast_inc(counter_child) -> Callable[[], None]:
    """``counter_child.inc()``."""
    value: Any = getattr(counter_child, "_value", None)
    if _lockless(value):
        def inc() -> None:
            value._value += 1
        return inc
    if callable(getattr(value, "inc", None)):
        return partial(value.inc, 1)
    return counter_child.inc


def _fast_observe(histogram_child) -> Callable[[float], None]:
    """``histogram_child.observe(amount)``."""
    observe = histogram_child.observe
    try:
        total = histogram_child._sum
        buckets = list(histogram_child._buckets)
        bounds = [float(bound) for bound in histogram_child._upper_bounds]
    except (AttributeError, TypeError, ValueError):
        return observe
    if not bounds or len(buckets) != len(bounds) or bounds[-1] != math.inf or bounds != sorted(bounds):
        return observe

    if _lockless(total) and all(_lockless(bucket) for bucket in buckets):
        def fast_observe(amount: float) -> None:
            if amount >= 0:          # and not NaN, which lands in no bucket: the public method knows
                total._value += amount
                buckets[bisect_left(bounds, amount)]._value += 1
            else:
                observe(amount)
        return fast_observe

    total_inc = total.inc
    bucket_incs = [bucket.inc for bucket in buckets]

    def fast_observe_mp(amount: float) -> None:
        if amount >= 0:
            total_inc(amount)
            bucket_incs[bisect_left(bounds, amount)](1)
        else:
            observe(amount)
    return fast_observe_mp
