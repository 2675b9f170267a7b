"""/metrics: counters that match what was sent; ops endpoints on their own port; draining readiness."""

import re

from callgate import hookimpl, samples

from plugins_for_tests import DenyAll, Raises


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
