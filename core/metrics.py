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

import asyncio
import os
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from . import dispatch

if TYPE_CHECKING:
    from .manager import Plugins
    from .pipeline import Answer

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The metrics of one callgate app."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.callbacks = Counter("callgate_callbacks", "Callbacks answered, by event and HTTP status",
                                 ["event", "status"], registry=r)
        self.latency = Histogram("callgate_answer_seconds", "Time to answer a callback, by event",
                                 ["event"], buckets=LATENCY_BUCKETS, registry=r)
        self.plugin_latency = Histogram("callgate_plugin_seconds", "Time a plugin's hook took",
                                        ["plugin", "hook"], buckets=LATENCY_BUCKETS, registry=r)
        self.plugin_failures = Counter("callgate_plugin_failures", "Plugin hook calls that raised or timed out",
                                       ["plugin", "hook", "kind"], registry=r)
        self.denials = Counter("callgate_denials", "ICE callbacks denied, by the plugin whose Deny won",
                               ["plugin"], registry=r)
        self.signature_failures = Counter("callgate_signature_failures", "Callbacks refused by the signature check",
                                          ["reason"], registry=r)
        self.plugin_gauges = Gauge("callgate_plugin_gauge", "Gauges plugins expose (outbox depth, reservations...)",
                                   ["plugin", "name"], registry=r, multiprocess_mode="mostrecent")
        self._children: dict[tuple[int, tuple[str, ...]], object] = {}

    def answered(self, event: str, status: int, seconds: float, answer: Answer | None = None) -> None:
        """Record one callback's outcome (and its plugins' timings, when it reached the pipeline)."""
        self._child(self.callbacks, event, str(status)).inc()
        self._child(self.latency, event).observe(seconds)
        if answer is None:
            return
        for outcome in answer.outcomes:
            self._child(self.plugin_latency, outcome.plugin, outcome.hook).observe(outcome.elapsed_ms / 1000)
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

    def refused_signature(self, reason: str) -> None:
        self._child(self.signature_failures, reason).inc()

    async def render(self, plugins: Plugins) -> bytes:
        """The exposition text, after asking plugins for their gauges."""
        deadline = asyncio.get_running_loop().time() + 2.0
        for outcome in await dispatch.collect(plugins, "collect_metrics", deadline):
            if outcome.status == "ok" and outcome.value:
                for name, value in outcome.value.items():
                    self.plugin_gauges.labels(outcome.plugin, name).set(value)
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
