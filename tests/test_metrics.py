"""/metrics: counters that match what was sent; ops endpoints on their own port; draining readiness;
Metrics.answered's fast paths against prometheus-client's public methods."""

import math
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from plugins_for_tests import DenyAll, Raises
from prometheus_client import CollectorRegistry, generate_latest
from structlog.testing import capture_logs

from callgate import hookimpl, samples


def value(text, metric, **labels):
    """The value of one sample in Prometheus exposition text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        m = re.match(rf"^{metric}\{{(.*)\}} (\S+)$", line)
        if m and all(part in m.group(1).split(",") for part in wanted.split(",")):
            return float(m.group(2))
    return 0.0


async def scrape(client):
    response = await client.client.get("/metrics")
    assert response.status == 200 and response.content_type == "text/plain"
    return await response.text()


async def test_counters_match_the_requests_sent(callgate_client):
    client = await callgate_client(plugins={"deny": DenyAll})
    for _ in range(3):
        await client.event(samples.ice())
    await client.event(samples.ace())
    await client.send(samples.ice(), sign=False)
    await client.send(samples.ice(), headers={"x-timestamp": "2001-01-01T00:00:00Z"})
    text = await scrape(client)
    assert value(text, "callgate_callbacks_total", event="ice", status="200") == 3
    assert value(text, "callgate_callbacks_total", event="ace", status="200") == 1
    assert value(text, "callgate_callbacks_total", event="-", status="401") == 2
    assert value(text, "callgate_answer_seconds_count", event="ice") == 3
    assert value(text, "callgate_denials_total", plugin="deny") == 3
    assert value(text, "callgate_signature_failures_total", reason="missing_authorization") == 1
    assert value(text, "callgate_signature_failures_total", reason="bad_signature") == 1
    assert value(text, "callgate_plugin_seconds_count", plugin="deny", hook="authorize_call") == 3


async def test_plugin_failures_are_counted(callgate_client):
    client = await callgate_client(plugins={"raises": Raises})
    await client.event(samples.ice())
    await client.send(samples.dice())
    text = await scrape(client)
    assert value(text, "callgate_plugin_failures_total", plugin="raises", hook="authorize_call", kind="error") == 1
    assert value(text, "callgate_callbacks_total", event="dice", status="503") == 1


async def test_hook_collect_metrics_becomes_a_gauge(callgate_client):
    class Outbox:
        @hookimpl
        async def collect_metrics(self):
            return {"outbox_depth": 7}

    client = await callgate_client(plugins={"outbox": Outbox})
    assert value(await scrape(client), "callgate_plugin_gauge", plugin="outbox", name="outbox_depth") == 7


@pytest.mark.parametrize("answer", [{"depth": "not-a-number"}, [1, 2], "x", {"depth": None}, {"depth": {"b": 1}}])
async def test_hook_collect_metrics_a_bad_answer_is_logged_and_counted_and_every_other_metric_still_served(
        callgate_client, answer):
    class Broken:
        @hookimpl
        def collect_metrics(self):
            return answer

    class Outbox:
        @hookimpl
        def collect_metrics(self):
            return {"outbox_depth": 7, "healthy": True}

    client = await callgate_client(plugins={"broken": Broken, "outbox": Outbox})
    await client.event(samples.ace())
    with capture_logs() as logs:
        response = await client.client.get("/metrics")
        text = await response.text()
    assert response.status == 200
    assert value(text, "callgate_plugin_gauge", plugin="outbox", name="outbox_depth") == 7
    assert value(text, "callgate_plugin_gauge", plugin="outbox", name="healthy") == 1
    assert value(text, "callgate_callbacks_total", event="ace", status="200") == 1
    assert 'plugin="broken",name=' not in text
    assert value(text, "callgate_plugin_failures_total", plugin="broken", hook="collect_metrics", kind="error") == 1
    [failed] = [line for line in logs if line["event"] == "plugin_failed"]
    if isinstance(answer, dict):
        assert failed["plugin"] == "broken" and failed["error"].startswith("skipped 'depth': not a gauge name")
    else:
        assert failed["plugin"] == "broken" and "not a dict of gauge names to numbers" in failed["error"]


async def test_hook_collect_metrics_one_bad_gauge_costs_only_itself(callgate_client):
    """A plugin's gauges are served but for the one that is not a number, which the log names."""
    class Mixed:
        @hookimpl
        def collect_metrics(self):
            return {"good": 1, "bad": "x", "": 2, "also_good": 2.5, "huge": 10 ** 400}

    client = await callgate_client(plugins={"mixed": Mixed})
    with capture_logs() as logs:
        text = await scrape(client)
    assert value(text, "callgate_plugin_gauge", plugin="mixed", name="good") == 1
    assert value(text, "callgate_plugin_gauge", plugin="mixed", name="also_good") == 2.5
    assert 'name="bad"' not in text
    assert value(text, "callgate_plugin_failures_total", plugin="mixed", hook="collect_metrics", kind="error") == 1
    [failed] = [line for line in logs if line["event"] == "plugin_failed"]
    assert failed["error"] == "skipped 'bad', '', 'huge': not a gauge name (a non-empty string) with a number"


async def test_ops_endpoints_move_to_their_own_port(callgate_client, aiohttp_client):
    from callgate.app import create_ops_app
    client = await callgate_client({"server": {"ops_port": 9999}})
    for path in ("/metrics", "/healthz", "/readyz"):
        assert (await client.client.get(path)).status == 404          # not on the public port
    ops = await aiohttp_client(create_ops_app(client.app))
    await client.event(samples.ace())
    assert (await ops.get("/readyz")).status == 200
    assert value(await (await ops.get("/metrics")).text(), "callgate_callbacks_total", event="ace", status="200") == 1


async def test_readiness_fails_while_draining(callgate_client):
    from callgate.state import LIFECYCLE
    client = await callgate_client()
    client.app[LIFECYCLE].draining = True
    response = await client.client.get("/readyz")
    assert response.status == 503 and (await response.json())["status"] == "draining"
    status, _ = await client.event(samples.ace())          # callbacks are still answered while draining
    assert status == 200


# --- Metrics.answered's fast paths (callgate.metrics._fast_inc, _fast_observe) --------------------------
# They change prometheus-client's value objects directly; these tests compare what a scrape shows
# with what the public Counter.inc / Histogram.observe give for the same callbacks, in one process
# and in multiprocess mode, with the prometheus-client installed.

#: Times on, between, below and above the bucket bounds, and the odd ones (inf, NaN, negative, int).
TIMES = [0.0, 1e-9, 0.0005, 0.00050001, 0.001, 0.0123, 0.1, 0.7, 5.0, 5.0001, 1e9, math.inf, math.nan, -0.5, 3]
#: (event, status, seconds, [(plugin, hook, status, elapsed_ms)], denied by)
CALLBACKS = [(event, status, seconds, [("router", "route_call", "ok", seconds * 1000),
                                       ("crm", "call_decided", "ok" if i % 3 else "timeout", seconds * 500)],
              "deny" if i % 4 == 0 else None)
             for i, seconds in enumerate(TIMES) for event, status in (("ice", 200), ("dice", 503))]
CALLBACKS += [("-", 401, 0.0002, None, None), ("unknown", 200, 0.0001, None, None)]


def record(metrics, fast: bool) -> None:
    """Record CALLBACKS through Metrics.answered (fast) or through the public methods it replaces."""
    for event, status, seconds, outcomes, denied_by in CALLBACKS:
        answer = None if outcomes is None else SimpleNamespace(
            outcomes=[SimpleNamespace(plugin=p, hook=h, status=s, elapsed_ms=ms) for p, h, s, ms in outcomes],
            decision=None if event != "ice" else SimpleNamespace(allowed=denied_by is None, decided_by=denied_by))
        if fast:
            metrics.answered(event, status, seconds, answer)
            continue
        metrics.callbacks.labels(event, "v1", str(status)).inc()
        metrics.latency.labels(event).observe(seconds)
        for o in answer.outcomes if answer else ():
            metrics.plugin_latency.labels(o.plugin, o.hook).observe(o.elapsed_ms / 1000)
            if o.status != "ok":
                metrics.plugin_failures.labels(o.plugin, o.hook, o.status).inc()
        if answer and answer.decision and not answer.decision.allowed:
            metrics.denials.labels(answer.decision.decided_by).inc()


def exposition(registry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_fast_paths_are_in_use_with_this_prometheus_client():
    from callgate.metrics import Metrics, _fast_inc, _fast_observe
    metrics = Metrics()
    histogram, counter = metrics.latency.labels("ice"), metrics.callbacks.labels("ice", "v1", "200")
    # Not the public methods (else the comparisons below would compare them with themselves).
    assert getattr(_fast_observe(histogram), "__self__", None) is not histogram
    assert getattr(_fast_inc(counter), "__self__", None) is not counter


def test_fast_paths_record_what_the_public_methods_do():
    from callgate.metrics import Metrics
    fast, public = Metrics(), Metrics()
    record(fast, fast=True)
    record(public, fast=False)
    assert exposition(fast.registry) == exposition(public.registry)
    text = "\n".join(exposition(fast.registry))
    assert value(text, "callgate_answer_seconds_count", event="ice") == len(TIMES) - 1    # NaN: in no bucket
    assert value(text, "callgate_answer_seconds_bucket", event="ice", le="0.0005") == 4   # 0, 1e-9, -0.5, 0.0005
    assert value(text, "callgate_callbacks_total", event="dice", status="503") == len(TIMES)


MULTIPROCESS_RECORD = """
import sys
sys.path.insert(0, sys.argv[1])
from callgate.metrics import Metrics, _fast_observe
import test_metrics
metrics = Metrics()
assert _fast_observe(metrics.latency.labels("ice")).__name__ == "fast_observe_mp"
test_metrics.record(metrics, fast=sys.argv[2] == "fast")
"""


def test_fast_paths_in_multiprocess_mode_write_what_the_public_methods_write(tmp_path):
    """Each worker's values are in its mmap file as soon as answered returns (no flush, no exit needed
    before a scrape: the process is still running when this reads them)."""
    from prometheus_client import multiprocess
    texts = []
    for way in ("fast", "public"):
        directory = tmp_path / way
        directory.mkdir()
        env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(directory))
        worker = subprocess.Popen([sys.executable, "-c", MULTIPROCESS_RECORD + "print('done', flush=True)\n"
                                   "sys.stdin.read()\n", str(Path(__file__).parent), way],
                                  env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert worker.stdout.readline() == "done\n"
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=str(directory))
            texts.append(exposition(registry))
        finally:
            worker.communicate("", timeout=30)
        assert worker.returncode == 0
    fast, public = texts
    assert sorted(fast) == sorted(public)         # in the order each process first wrote them
    assert value("\n".join(fast), "callgate_answer_seconds_count", event="ice") == len(TIMES) - 1
