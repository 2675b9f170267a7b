"""What the console records and shows, over real HTTP against the real callback and ops apps."""

from __future__ import annotations

import asyncio
import html
import json
import time

import orjson
import pytest
from callgate_console import Console
from callgate_console.config import ConsoleConfig
from callgate_console.record import COLUMNS, call_hash
from callgate_console.store import COMPONENT, ConsoleStore, migrations
from structlog.testing import capture_logs

from callgate import Deny, hookimpl, samples, v2_samples
from callgate.storage import Database
from callgate.testing import TEST_APPLICATION_SECRET

HOSTILE = "<img src=x onerror=alert(1)>"


class DenyFromNine:
    """Denies callers whose number ends in 9 (a deciding plugin for search and stats)."""

    @hookimpl
    def authorize_call(self, call):
        return Deny("blocked caller") if (call.caller or "").endswith("9") else None


async def test_both_generations_are_recorded_with_request_answer_and_trace(make_console):
    console = await make_console()
    v1 = samples.ice(caller="46701234567", to="+46812345678", callid="v1-call-1")
    v1_answer = await (await console.callgate.send(v1)).json()
    v2 = v2_samples.incoming(caller="+46709876543", to="+46812345678", callid="v2-call-1")
    status, v2_answer = await console.callgate.webhook(v2)
    assert status == 200
    await console.callgate.event(samples.dice(callid="v1-call-1"))
    await console.flush()
    await console.login()

    v1_page = await console.ops.get("/console/calls/v1-call-1")
    text = html.unescape(await v1_page.text())
    assert v1_page.status == 200
    summary = text[text.index('id="call-summary"'):text.index('id="timeline"')]
    assert "46701234567<" in summary and "+46812345678<" in summary        # as Sinch sent them
    assert text.count('class="timeline-entry"') == 2
    assert text.index('data-event="ice"') < text.index('data-event="dice"')
    assert json.dumps(v1_answer, indent=2) in text                       # the answer, formatted
    assert '"callid": "v1-call-1"' in text                               # the request, formatted
    assert 'tr data-plugin="router"' in text and 'class="trace-verdict">route all<' in text

    data = await (await console.ops.get("/console/api/calls/v2%3Av2-call-1")).json()
    assert data["call"]["generation"] == "v2"
    assert (data["call"]["caller"], data["call"]["callee"]) == ("+46709876543", "+46812345678")
    assert data["call"]["decision"] == "allowed" and data["call"]["plugin"] == "router"
    [entry] = data["timeline"]
    assert entry["event"] == "call.incoming" and entry["status"] == 200
    assert json.loads(entry["request"]) == v2 and json.loads(entry["answer"]) == v2_answer
    headers = {name.lower(): value for name, value in entry["headers"]}
    assert "authorization" not in headers and headers["content-type"] == "application/json"
    assert [step["plugin"] for step in entry["trace"]] == ["router", "caller_id"]
    assert all(step["status"] == "ok" and step["ms"] >= 0 for step in entry["trace"])
    assert (await console.ops.get("/console/calls/v2%3Av2-call-1")).status == 200


async def test_the_authorization_header_is_never_stored(make_console, tmp_path):
    console = await make_console(database_url=f"sqlite:///{tmp_path}/auth.sqlite3")
    response = await console.callgate.send(samples.ice(callid="signed"))
    assert response.status == 200
    await console.flush()
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("auth.sqlite3*"))    # the file and its WAL
    assert b"signed" in raw and b"Application " not in raw and b"uthorization" not in raw


async def test_a_hostile_caller_id_and_header_are_shown_as_text(make_console):
    console = await make_console()
    body = samples.ice(caller=HOSTILE, callid="hostile", callHeaders=[{"key": "X-Evil", "value": "<script>x()</script>"}])
    assert (await console.callgate.send(body)).status == 200
    await console.flush()
    await console.login()
    for path in ("/console/", "/console/calls/hostile", "/console/search?callid=hostile"):
        page = await (await console.ops.get(path)).text()
        assert "<img" not in page and "<script>x()" not in page, path
        assert html.escape(HOSTILE) in page or html.escape(HOSTILE, quote=False) in page, path
    data = await (await console.ops.get("/console/api/callbacks?callid=hostile")).json()
    assert data["callbacks"][0]["caller"] == HOSTILE                     # JSON carries it as a string, as sent


async def test_unsigned_requests_are_not_recorded(make_console):
    console = await make_console()
    assert (await console.callgate.send(samples.ice(callid="forged"), sign=False)).status == 401
    assert (await console.callgate.send(samples.ice(callid="forged2"),
                                        headers={"Authorization": "Application x:y"})).status == 401
    await console.flush()
    await console.login()
    assert (await (await console.ops.get("/console/api/callbacks")).json())["callbacks"] == []


async def test_ignored_events_are_recorded_too(make_console):
    console = await make_console()
    assert (await console.callgate.send({"event": "newThing", "callid": "n-1"})).status == 200
    await console.flush()
    await console.login()
    [cb] = (await (await console.ops.get("/console/api/callbacks")).json())["callbacks"]
    assert (cb["event"], cb["kind"], cb["status"], cb["summary"]) == ("newThing", "ignored", 200, "ignored")


async def test_mask_numbers_masks_every_view(make_console):
    console = await make_console(mask_numbers=True)
    await console.callgate.send(samples.ice(caller="46701234567", to="+46812345678", callid="masked"))
    await console.flush()
    await console.login()
    pages = [await (await console.ops.get(path)).text()
             for path in ("/console/", "/console/calls/masked", "/console/search?number=46701234567",
                          "/console/api/callbacks", "/console/api/calls/masked")]
    pages[2] = pages[2][pages[2].index('id="results"'):]                # the form shows what the operator typed
    for text in pages:
        assert "46701234567" not in text and "46812345678" not in text
    assert ">4670****567<" in pages[0] and ">+4681****678<" in pages[0]
    assert "4670****567" in pages[1]                                     # inside the request JSON too
    assert 'data-call-key="masked"' in pages[2]                          # search still finds the full number


@pytest.mark.postgres
async def test_the_live_stream_sends_a_new_callback_within_two_seconds(make_console, callgate_database_url):
    console = await make_console(database_url=callgate_database_url, flush_interval_ms=100)
    await console.login()
    async with console.ops.get("/console/stream") as stream:
        assert stream.status == 200 and stream.content_type == "text/event-stream"
        assert await stream.content.readuntil(b"\n\n") == b"retry: 2000\n\n"
        assert (await stream.content.readuntil(b"\n\n")).startswith(b"event: ready")   # from here on, nothing is missed
        sent = time.monotonic()
        await console.callgate.webhook(v2_samples.incoming(caller="+46701112223", callid="live-1"))
        event = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 2.0)
        assert time.monotonic() - sent < 2.0
    name, data = event.decode().strip().split("\n")
    assert name == "event: callback"
    item = json.loads(data.removeprefix("data: "))
    assert (item["call_key"], item["kind"], item["caller"], item["url"]) == (
        "v2:live-1", "incoming", "+46701112223", "/console/calls/v2%3Alive-1")


async def test_the_live_page_shows_calls_in_progress_and_the_latest_callbacks(make_console):
    console = await make_console()
    await console.callgate.send(samples.ice(callid="ongoing"))
    await console.callgate.send(samples.ice(callid="finished"))
    await console.callgate.send(samples.dice(callid="finished"))
    await console.flush()
    await console.login()
    page = await (await console.ops.get("/console/")).text()
    live = page[page.index('id="live-calls"'):page.index('id="latest-callbacks"')]
    assert 'data-call-key="ongoing"' in live and 'data-call-key="finished"' not in live
    latest = page[page.index('id="latest-callbacks"'):]
    ids = [int(part.split('"')[0]) for part in latest.split('data-callback-id="')[1:]]
    assert len(ids) == 3 and ids == sorted(ids, reverse=True)
    assert 'class="cb-event">dice<' in latest and 'class="call-link" href="/console/calls/finished"' in latest
    assert 'id="stream-state"' in page and '<script src="/console/static/live.js">' in page


async def test_search_by_number_callid_decision_plugin_and_time(make_console):
    console = await make_console(plugins={"deny9": DenyFromNine}, enabled=("deny9", "console"))
    await console.callgate.send(samples.ice(caller="46701230009", callid="denied-1"))
    await console.callgate.send(samples.ice(caller="46705550000", callid="allowed-1"))
    await console.flush()
    await console.login()

    async def keys(query: str) -> list[str]:
        page = await (await console.ops.get("/console/search?" + query)).text()
        table = page[page.index('id="results"'):] if 'id="results"' in page else ""
        return [part.split('"')[0] for part in table.split('data-call-key="')[1:]]

    assert await keys("number=46701230009") == ["denied-1"]
    assert await keys("number=%2B46701230009") == ["denied-1"]
    assert await keys("callid=allowed-1") == ["allowed-1"]
    assert await keys("decision=denied") == ["denied-1"]
    assert await keys("decision=allowed") == ["allowed-1"]
    assert await keys("plugin=deny9") == ["denied-1"]
    assert await keys("plugin=router") == ["allowed-1"]
    assert await keys("since=2000-01-01T00:00&until=2000-01-02T00:00") == []
    assert sorted(await keys("since=2000-01-01T00:00")) == ["allowed-1", "denied-1"]
    assert await keys("since=2000-01-01T00:00:00%2B00:00&decision=denied") == ["denied-1"]
    page = await console.ops.get("/console/search?number=46701230009")
    assert 'id="result-count">1 callback<' in await page.text()
    bad = await console.ops.get("/console/search?decision=maybe")
    assert bad.status == 400 and "decision must be allowed, denied or error" in await bad.text()
    bad_api = await console.ops.get("/console/api/callbacks?since=yesterday")
    assert bad_api.status == 400 and "since must be a date and time" in (await bad_api.json())["message"]


async def test_stats_count_callbacks_denials_errors_and_plugin_health(make_console):
    console = await make_console(plugins={"deny9": DenyFromNine}, enabled=("deny9", "console"))
    for n in range(3):
        await console.callgate.send(samples.ice(caller=f"4670123000{n}"))
    await console.callgate.send(samples.ice(caller="46701230009"))
    await console.callgate.send(b'{"event": "ice", "callid": 7}')                # signed, refused: an error
    await console.flush()
    await console.login()
    data = await (await console.ops.get("/console/api/stats")).json()
    now = data["minutes"][-1]
    assert len(data["minutes"]) == 60
    assert (now["callbacks"], now["denials"], now["errors"]) == (5, 1, 1)
    health = {p["plugin"]: p for p in data["plugins"]}
    assert health["deny9"]["calls"] == 4 and health["router"]["calls"] == 3
    assert health["deny9"]["errors"] == health["deny9"]["timeouts"] == 0
    assert 0 <= health["router"]["p50"] <= health["router"]["p95"]
    page = await (await console.ops.get("/console/stats")).text()
    assert '<svg id="chart"' in page and 'data-series="denials" data-total="1"' in page
    assert 'data-series="errors" data-total="1"' in page and 'data-series="callbacks" data-total="5"' in page
    assert '<tr data-plugin="deny9">' in page and 'class="ph-calls">4<' in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page


async def test_a_store_failure_never_changes_an_answer_and_is_logged_and_counted(make_console):
    plain = await make_console()
    console = await make_console()
    body = samples.ice(caller="46701234567", callid="same-call")
    expected = await (await plain.callgate.send(body)).read()
    await console.plugin.state.store.db.execute("DROP TABLE console_callbacks")   # every write now fails
    with capture_logs() as logs:
        for _ in range(3):
            response = await console.callgate.send(body)
            assert response.status == 200 and await response.read() == expected
        await console.flush()
    failures = [e for e in logs if e["event"] == "console_store_failed"]
    assert len(failures) == 1 and "no such table" in failures[0]["error"]
    assert TEST_APPLICATION_SECRET not in repr(logs) and "Authorization" not in repr(logs)
    metrics = await (await console.ops.get("/metrics")).text()
    gauges = {line.split('name="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
              for line in metrics.splitlines() if line.startswith('callgate_plugin_gauge{') and 'plugin="console"' in line}
    assert gauges["failed_writes"] == 1 and gauges["lost"] == 3 and gauges["recorded"] == 0


async def test_a_full_queue_drops_and_counts_without_waiting(make_console):
    console = await make_console(queue_limit=10, flush_interval_ms=60_000)
    for _ in range(15):
        assert (await console.callgate.send(samples.ice())).status == 200
    metrics = console.plugin.collect_metrics()
    assert metrics["queued"] == 10 and metrics["dropped"] == 5
    await console.flush()
    assert console.plugin.collect_metrics()["recorded"] == 10


async def test_the_background_flush_writes_within_the_interval(make_console):
    console = await make_console(flush_interval_ms=50)
    await console.callgate.send(samples.ice(callid="flushed"))
    await asyncio.sleep(0.4)
    await console.login()
    assert (await console.ops.get("/console/calls/flushed")).status == 200


async def test_retention_by_age_and_by_count(make_console):
    console = await make_console(max_callbacks=100, retention_hours=1, flush_interval_ms=60_000)
    store = console.plugin.state.store
    now = time.time()
    old = [await _row(console, samples.ice(callid=f"old-{n}"), received_at=now - 7200) for n in range(5)]
    new = [await _row(console, samples.ice(callid=f"new-{n}"), received_at=now - 60) for n in range(120)]
    await store.insert(old + new)
    removed = await console.plugin.purge()
    assert removed == 5 + 20
    remaining = await store.db.fetch("SELECT callid FROM console_callbacks ORDER BY id")
    assert [r["callid"] for r in remaining] == [f"new-{n}" for n in range(20, 120)]


#: Two v1 callids whose call keys have the same hash (the store's call index): found by search, not made up.
SAME_HASH = ("call-03985819", "call-04420602")


@pytest.mark.postgres
async def test_two_calls_whose_keys_share_a_hash_are_never_mixed(make_console, callgate_database_url):
    console = await make_console(database_url=callgate_database_url)
    first, second = SAME_HASH
    assert call_hash(first) == call_hash(second)
    await console.callgate.send(samples.ice(caller="46701111111", callid=first))
    await console.callgate.send(samples.ice(caller="46702222222", callid=second))
    await console.callgate.event(samples.dice(callid=second))
    await console.flush()
    await console.login()
    call = await (await console.ops.get(f"/console/api/calls/{first}")).json()
    assert [(cb["callid"], cb["event"]) for cb in call["timeline"]] == [(first, "ice")]
    found = await (await console.ops.get(f"/console/api/callbacks?callid={second}")).json()
    assert [(cb["callid"], cb["event"]) for cb in found["callbacks"]] == [(second, "dice"), (second, "ice")]
    in_progress = await console.plugin.state.store.in_progress(time.time() - 3600)
    assert [c["callid"] for c in in_progress] == [first]           # the second ended; the first did not


async def _row(console, body, *, received_at: float):
    """A stored row of ``body`` as the recorder makes it, received at ``received_at``."""
    await console.callgate.send(body)
    values = list(console.plugin.state.recorder.pending.pop())
    values[COLUMNS.index("received_at")] = received_at
    values[COLUMNS.index("minute")] = int(received_at // 60)
    return tuple(values)


async def test_a_dry_run_records_nothing_and_opens_nothing(tmp_path, console_token):
    plugin = Console(ConsoleConfig(database_url=f"sqlite:///{tmp_path}/dry.sqlite3"))
    await plugin.startup(dry_run=True)
    assert plugin.state.store is None and not (tmp_path / "dry.sqlite3").exists()
    await plugin.shutdown()


@pytest.mark.postgres
async def test_the_store_works_on_both_databases(make_console, callgate_database_url):
    console = await make_console(database_url=callgate_database_url)
    await console.callgate.send(samples.ice(caller="46701234567", callid="pg-1"))
    await console.callgate.webhook(v2_samples.incoming(caller="+46705550000", callid="pg-2"))
    await console.flush()
    store: ConsoleStore = console.plugin.state.store
    assert store.db.dialect == ("postgresql" if callgate_database_url.startswith("postgresql") else "sqlite")
    await console.login()
    found = await (await console.ops.get("/console/api/callbacks?number=46701234567")).json()
    assert [cb["call_key"] for cb in found["callbacks"]] == ["pg-1"]
    call = await (await console.ops.get("/console/api/calls/v2%3Apg-2")).json()
    assert orjson.loads(call["timeline"][0]["request"])["call"]["callId"] == "pg-2"
    stats = await (await console.ops.get("/console/api/stats")).json()
    assert stats["minutes"][-1]["callbacks"] == 2
    assert await console.plugin.purge() == 0


@pytest.mark.postgres
async def test_the_live_feed_shows_a_row_committed_after_a_higher_id(make_console, callgate_database_url):
    """PostgreSQL takes an id at insert and shows the row at commit: an instance whose transaction commits
    late adds a row below ids already shown.  The feed looks back and sends it once."""
    if not callgate_database_url.startswith("postgresql"):
        pytest.skip("only PostgreSQL commits ids out of order")
    console = await make_console(database_url=callgate_database_url, flush_interval_ms=60_000)
    store = console.plugin.state.store
    feed = console.plugin.state.feed
    await console.callgate.send(samples.ice(callid="first"))
    late = await _row(console, samples.ice(callid="late"), received_at=time.time())
    early = [await _row(console, samples.ice(callid="early"), received_at=time.time())]
    await console.flush()
    queue = await feed.subscribe()
    reserved = await store.db.fetchval("SELECT nextval(pg_get_serial_sequence('console_callbacks', 'id'))")
    await store.insert(early)                                      # a higher id, committed first
    got = [await asyncio.wait_for(queue.get(), 2.0)]
    await store.db.execute(f"INSERT INTO console_callbacks (id, {', '.join(COLUMNS)}) VALUES ($1, "
                           f"{', '.join(f'${n}' for n in range(2, len(COLUMNS) + 2))})", reserved, *late)
    got.append(await asyncio.wait_for(queue.get(), 2.0))
    assert [item["callid"] for item in got] == ["early", "late"] and got[1]["id"] < got[0]["id"]
    await asyncio.sleep(1.0)
    assert queue.empty()                                           # each sent once
    feed.unsubscribe(queue)


async def test_a_store_from_before_the_call_hash_is_migrated_and_keeps_its_callbacks(tmp_path):
    url = f"sqlite:///{tmp_path}/old.sqlite3"
    db = await Database.connect(url)
    await db.migrate(COMPONENT, migrations(db.dialect)[:1])              # the store as the first 0.4.0 builds made it
    old = [c for c in COLUMNS if c != "call_hash"]
    values = [time.time(), int(time.time() // 60), "v1", "ice", "incoming", "old-call", "old-call", "46701234567",
              "+46812345678", 200, "allowed", "router", None, "allowed", None, 1.0, "[]", "{}", "{}", "[]"]
    await db.execute(f"INSERT INTO console_callbacks ({', '.join(old)}) VALUES "
                     f"({', '.join(f'${n}' for n in range(1, len(old) + 1))})", *values)
    await db.close()
    store = await ConsoleStore.open(url)
    try:
        new = list(values)
        new.insert(COLUMNS.index("call_hash"), call_hash("new-call"))
        new[COLUMNS.index("call_key")] = new[COLUMNS.index("callid")] = "new-call"
        await store.insert([tuple(new)])
        assert [r["callid"] for r in await store.call("new-call")] == ["new-call"]
        assert [r["callid"] for r in await store.latest()] == ["new-call", "old-call"]
        assert await store.call("old-call") == []                       # as the CHANGELOG says
    finally:
        await store.close()
