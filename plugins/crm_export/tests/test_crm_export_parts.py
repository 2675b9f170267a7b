"""The small parts: configuration errors, the fact buffer, group commit."""

import asyncio

import pytest

from callgate.manager import PluginError, build_plugin
from callgate_crm_export import CrmExport
from callgate_crm_export.batching import Batcher
from callgate_crm_export.buffer import FactBuffer

SINK = {"name": "hook", "type": "webhook", "url": "https://crm.example/hook", "secret": "x" * 20}


def build(table):
    return build_plugin("crm_export", CrmExport, table)


def test_a_minimal_configuration_has_sensible_defaults():
    config = build({"sinks": [SINK]}).instance.config
    assert config.database_url.get_secret_value() == "sqlite:///var/callgate/crm.sqlite3" and config.retention_days == 30
    sink = config.sinks[0]
    assert (sink.concurrency, sink.max_attempts, sink.timeout_seconds, sink.lease_seconds) == (4, 20, 10.0, 15.0)
    assert build({"sinks": [SINK]}).on_error == "skip"          # the export never hangs up a call


@pytest.mark.parametrize("table,message", [
    ({}, "sinks: required, and not given"),
    ({"sinks": []}, "sinks: List should have at least 1 item"),
    ({"sinks": [SINK, SINK]}, "sink name 'hook' is used twice"),
    ({"sinks": [{**SINK, "type": "salesforce"}]}, "does not match any of the expected tags"),
    ({"sinks": [{**SINK, "url": "ftp://crm.example"}]}, "must be an http:// or https:// URL"),
    ({"sinks": [{**SINK, "secret": "short"}]}, "at least 16 characters"),
    ({"sinks": [{**SINK, "name": "Hook Sink"}]}, "lower-case letters, digits"),
    ({"sinks": [{**SINK, "backoff_initial_seconds": 10, "backoff_max_seconds": 1}]}, "backoff_max_seconds must be"),
    ({"sinks": [{**SINK, "colour": "blue"}]}, "colour: unknown key: this table has no such setting"),
    ({"sinks": [SINK], "database_url": "mysql://db"}, "must be sqlite:///path/to/file.sqlite3 or postgresql://"),
    ({"sinks": [{"name": "hs", "type": "hubspot"}]}, "token: required, and not given"),
    ({"sinks": [{"name": "hs", "type": "hubspot", "token": "pat-na1-x", "dispositions": {"ANSWERD": "f240bbac"}}]},
     "dispositions: 'ANSWERD' is not a call result; the results are ANSWERED, BUSY, CANCEL"),
    ({"sinks": [{"name": "hs", "type": "hubspot", "token": "pat-na1-x",
                 "dispositions": {"BUSY": "g1", "busy": "g2", "ANSWERD": "g3"}}]},
     "dispositions: 'busy' is the result BUSY again (keys are read in capitals): give it once"),
])
def test_configuration_errors_name_the_key_and_the_fix(table, message):
    with pytest.raises(PluginError) as err:
        build(table)
    assert message in str(err.value) and "[plugins.crm_export]" in str(err.value)


def test_a_secret_never_appears_in_the_config_repr():
    config = build({"sinks": [SINK, {"name": "hs", "type": "hubspot", "token": "pat-na1-very-secret"}]}).instance.config
    assert "x" * 20 not in repr(config) and "pat-na1-very-secret" not in repr(config)


def test_the_buffer_merges_and_hands_over_a_calls_facts():
    buffer = FactBuffer()
    buffer.add("c1", {"ice": {"n": 1}})
    buffer.add("c1", {"answer": {"at": "t"}, "ice": {"n": 2}})
    assert buffer.take("c1") == {"ice": {"n": 1}, "answer": {"at": "t"}} and buffer.take("c1") == {}


def test_a_failed_flush_keeps_the_facts_and_a_running_one_is_still_visible():
    buffer = FactBuffer()
    buffer.add("c1", {"ice": {"n": 1}})
    assert buffer.start_flush() == [("c1", {"ice": {"n": 1}})]
    assert buffer.take("c1") == {"ice": {"n": 1}}          # a DICE during the flush still sees the ICE
    buffer.end_flush(written=False)
    assert len(buffer) == 1 and buffer.start_flush() == [("c1", {"ice": {"n": 1}})]
    buffer.end_flush(written=True)
    assert len(buffer) == 0


def test_the_buffer_is_bounded():
    buffer = FactBuffer(max_calls=3)
    for i in range(5):
        buffer.add(f"c{i}", {"ice": {}})
    assert len(buffer) == 3 and buffer.dropped == 2 and buffer.take("c0") == {} and buffer.take("c4") == {"ice": {}}


async def test_concurrent_submits_share_batches_and_results_keep_their_order():
    calls = []

    async def run(items):
        calls.append(list(items))
        await asyncio.sleep(0.01)
        return [item * 10 for item in items]

    batcher = Batcher(run)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(50))) == [i * 10 for i in range(50)]
    assert calls == [list(range(50))]                       # one transaction for the burst
    first = asyncio.create_task(batcher.submit(100))
    await asyncio.sleep(0.001)                              # running alone, at once
    later = await asyncio.gather(*(batcher.submit(i) for i in range(101, 111)))
    assert await first == 1000 and later == [i * 10 for i in range(101, 111)]
    assert calls[1:] == [[100], list(range(101, 111))]      # whatever queued meanwhile: the next batch


async def test_a_failed_batch_fails_each_submitter_and_a_cancelled_one_does_not_stop_it():
    ran = []

    async def run(items):
        await asyncio.sleep(0.05)
        if "bad" in items:
            raise RuntimeError("disk full")
        ran.extend(items)
        return items

    batcher = Batcher(run)
    first = asyncio.create_task(batcher.submit("a"))
    await asyncio.sleep(0)
    bad = [asyncio.create_task(batcher.submit(x)) for x in ("bad", "b")]
    first.cancel()                                          # its hook timed out
    await batcher.wait_idle()
    assert ran == ["a"]                                      # committed anyway
    for task in bad:
        with pytest.raises(RuntimeError, match="disk full"):
            await task


async def test_an_item_may_fail_alone():
    async def run(items):
        return [ValueError(f"bad {i}") if i == 2 else i for i in items]

    batcher = Batcher(run)
    results = await asyncio.gather(*(batcher.submit(i) for i in (1, 2, 3)), return_exceptions=True)
    assert results[0] == 1 and results[2] == 3 and isinstance(results[1], ValueError)
