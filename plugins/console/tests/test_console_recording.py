"""What the console records and shows, over real HTTP against the real callback and ops apps."""

from __future__ import annotations

import asyncio
import gc
import html
import json
import sqlite3
import time
from urllib.parse import quote

import msgspec
import orjson
import pytest
import zstandard
from callgate_console import Console
from callgate_console.config import ConsoleConfig
from callgate_console.record import Capture, Detail, Stored
from callgate_console.schema import COMPONENT, migrations
from callgate_console.store import ConsoleStore
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


async def test_answered_and_menu_rows_name_the_parties_their_event_names(make_console):
    """v2's call.answered and call.menu carry the leg's from and to, and their rows show them; v1's ACE and PIE
    name neither, and their rows leave them empty (the call's page takes them from its other callbacks)."""
    console = await make_console()
    await console.callgate.webhook(v2_samples.answered(callid="v2-leg", caller="+46850001234", to="+46731112233"))
    await console.callgate.webhook(v2_samples.menu(callid="v2-menu", caller="+46709876543", to="+46812345678"))
    await console.callgate.send(samples.ice(caller="46701234567", to="+46812345678", callid="v1-menu"))
    await console.callgate.event(samples.ace(callid="v1-menu"))
    await console.callgate.event(samples.pie(callid="v1-menu"))
    await console.flush()
    await console.login()
    rows = (await (await console.ops.get("/console/api/callbacks")).json())["callbacks"]
    parties = {(row["call_key"], row["event"]): (row["caller"], row["callee"]) for row in rows}
    assert parties == {("v2:v2-leg", "call.answered"): ("+46850001234", "+46731112233"),
                       ("v2:v2-menu", "call.menu"): ("+46709876543", "+46812345678"),
                       ("v1-menu", "ice"): ("46701234567", "+46812345678"),
                       ("v1-menu", "ace"): (None, None),
                       ("v1-menu", "pie"): (None, None)}
    search = await (await console.ops.get("/console/api/callbacks", params={"number": "46709876543"})).json()
    assert [row["event"] for row in search["callbacks"]] == ["call.menu"]


async def test_a_v2_calls_page_shows_every_leg_of_its_session(make_console):
    """v2 gives the leg a dial made a callId of its own: its call.answered and call.hangup carry that id and the
    session's.  The call's page (from either leg) shows the whole session in order, each entry naming its leg;
    another session's callbacks, and a v1 call, stay on their own pages."""
    console = await make_console()
    session, other = "01JQSESSION0000000000000001", "01JQSESSION0000000000000002"
    sent = [v2_samples.incoming(caller="+46709876543", to="+46812345678", callid="caller-leg", session=session),
            v2_samples.incoming(caller="+46701112223", callid="elsewhere", session=other),
            v2_samples.answered(callid="dialled-leg", session=session),
            v2_samples.menu(callid="caller-leg", caller="+46709876543", to="+46812345678", session=session),
            v2_samples.hangup(callid="dialled-leg", session=session, direction="OUTBOUND", call_name="callee"),
            v2_samples.hangup(callid="caller-leg", caller="+46709876543", to="+46812345678", session=session)]
    for body in sent:
        assert (await console.callgate.webhook(body))[0] == 200
    await console.callgate.send(samples.ice(caller="46701234567", callid="v1-alone"))
    await console.flush()
    await console.login()

    timeline = [("v2:caller-leg", "call.incoming"), ("v2:dialled-leg", "call.answered"),
                ("v2:caller-leg", "call.menu"), ("v2:dialled-leg", "call.hangup"), ("v2:caller-leg", "call.hangup")]
    for key in ("v2%3Acaller-leg", "v2%3Adialled-leg"):
        data = await (await console.ops.get(f"/console/api/calls/{key}")).json()
        assert data["call"]["call_key"] == key.replace("%3A", ":")                  # the leg asked for
        assert [(e["call_key"], e["event"]) for e in data["timeline"]] == timeline
        assert {e["session"] for e in data["timeline"]} == {session}
        assert [leg["call_key"] for leg in data["call"]["legs"]] == ["v2:caller-leg", "v2:dialled-leg"]
        assert (data["call"]["caller"], data["call"]["callee"], data["call"]["decision"]) == (
            "+46709876543", "+46812345678", "allowed")
        assert data["call"]["ended"] == data["timeline"][-1]["time"]
    page = html.unescape(await (await console.ops.get("/console/calls/v2%3Adialled-leg")).text())
    assert "<h1>Call <code>v2:dialled-leg</code></h1>" in page
    assert page.count('class="timeline-entry"') == 5 and page.count('class="entry-leg"') == 5
    assert 'href="/console/calls/v2%3Acaller-leg"' in page and "elsewhere" not in page
    alone = await (await console.ops.get("/console/api/calls/v2%3Aelsewhere")).json()
    assert [e["event"] for e in alone["timeline"]] == ["call.incoming"] and len(alone["call"]["legs"]) == 1
    v1 = html.unescape(await (await console.ops.get("/console/calls/v1-alone")).text())
    assert v1.count('class="timeline-entry"') == 1 and 'class="entry-leg"' not in v1


@pytest.mark.parametrize("first_to_end", ["dialled-leg", "caller-leg"])
async def test_a_v2_call_is_in_progress_until_every_leg_has_ended_on_the_live_view_and_its_page(make_console,
                                                                                                first_to_end):
    """One leg's hangup ends that leg, not the call: the live view keeps it in progress and its page gives no end
    until the other leg's hangup too (the two used to disagree, each asking a different leg)."""
    console = await make_console()
    session = "01JQSESSION0000000000000003"
    legs = {"caller-leg": {"caller": "+46709876543", "to": "+46812345678"},
            "dialled-leg": {"direction": "OUTBOUND", "call_name": "callee"}}
    await console.callgate.webhook(v2_samples.incoming(caller="+46709876543", to="+46812345678", callid="caller-leg",
                                                       session=session))
    await console.callgate.webhook(v2_samples.answered(callid="dialled-leg", session=session))
    await console.login()

    async def shown() -> tuple[bool, str | None]:
        await console.flush()
        page = await (await console.ops.get("/console/")).text()
        live = page[page.index('id="live-calls"'):page.index('id="latest-callbacks"')]
        call = (await (await console.ops.get("/console/api/calls/v2%3Acaller-leg")).json())["call"]
        return 'data-call-key="v2:caller-leg"' in live, call["ended"]

    assert await shown() == (True, None)
    await console.callgate.webhook(v2_samples.hangup(callid=first_to_end, session=session, **legs[first_to_end]))
    assert await shown() == (True, None)
    last = "caller-leg" if first_to_end == "dialled-leg" else "dialled-leg"
    await console.callgate.webhook(v2_samples.hangup(callid=last, session=session, **legs[last]))
    in_progress, ended = await shown()
    timeline = (await (await console.ops.get("/console/api/calls/v2%3Adialled-leg")).json())["timeline"]
    assert not in_progress and ended == timeline[-1]["time"] and timeline[-1]["call_key"] == f"v2:{last}"


async def test_the_authorization_header_is_never_stored(make_console, tmp_path):
    console = await make_console(database_url=f"sqlite:///{tmp_path}/auth.sqlite3")
    response = await console.callgate.send(samples.ice(callid="signed"))
    assert response.status == 200
    await console.flush()
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("auth.sqlite3*"))    # the file and its WAL
    assert b"Application " not in raw and b"uthorization" not in raw
    with sqlite3.connect(tmp_path / "auth.sqlite3") as db:                          # and what the blobs hold
        (summaries, details), = db.execute("SELECT summaries, details FROM console_batches").fetchall()
    stored = zstandard.decompress(summaries) + zstandard.decompress(details)
    assert b"signed" in stored and b"x-timestamp" in stored
    assert b"Application " not in stored and b"uthorization" not in stored


async def test_a_batch_is_stored_compressed(make_console, tmp_path):
    """Each batch's summaries and details are zstd frames: a store takes a fraction of the disk the callbacks'
    bytes would."""
    console = await make_console(database_url=f"sqlite:///{tmp_path}/small.sqlite3", flush_interval_ms=60_000)
    for n in range(50):
        await console.callgate.send(samples.ice(caller="46701234567", callid=f"small-{n}"))
    await console.flush()
    with sqlite3.connect(tmp_path / "small.sqlite3") as db:
        (size, summaries, details), = db.execute("SELECT size, summaries, details FROM console_batches").fetchall()
    assert size == 50
    for blob in (summaries, details):
        assert blob[:4] == b"\x28\xb5\x2f\xfd"                                   # a zstd frame
        assert len(blob) * 4 < len(zstandard.decompress(blob))
    await console.login()
    call = await (await console.ops.get("/console/api/calls/small-49")).json()
    assert orjson.loads(call["timeline"][0]["request"])["callid"] == "small-49"


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
    assert (cb["callid"], cb["call_key"]) == ("n-1", "n-1")             # the body names its call


async def test_an_ignored_or_refused_callback_shows_on_the_page_of_the_call_its_body_names(make_console):
    console = await make_console()
    await console.callgate.send(samples.ice(caller="46701234567", callid="r-1"))
    refused = await console.callgate.send(samples.dice(callid="r-1", duration="long"))
    assert refused.status == 400
    status, _ = await console.callgate.webhook(v2_samples.custom("later", callid="v2-r-1"))
    assert status == 200                                                 # call.webhook.later: ignored
    await console.callgate.send({"event": "dice", "callId": "r-2", "duration": "long"})   # the other spelling
    await console.callgate.send(b'{"event": "dice", "callid": 7}')       # refused, names no call (not a string)
    await console.callgate.send(b'{"event": "dice", "callid": ')         # refused, not JSON
    await console.flush()
    await console.login()

    data = await (await console.ops.get("/console/api/calls/r-1")).json()
    assert [(e["event"], e["status"]) for e in data["timeline"]] == [("ice", 200), ("dice", 400)]  # as its body says
    assert data["timeline"][1]["problem"] and '"long"' in data["timeline"][1]["request"]
    page = await console.ops.get("/console/calls/r-1")
    assert page.status == 200 and html.unescape(await page.text()).count('class="timeline-entry"') == 2
    v2 = await (await console.ops.get("/console/api/calls/v2%3Av2-r-1")).json()
    assert [(e["event"], e["status"]) for e in v2["timeline"]] == [("call.webhook.later", 200)]
    assert (await console.ops.get("/console/calls/v2%3Av2-r-1")).status == 200
    other = await (await console.ops.get("/console/api/calls/r-2")).json()
    assert [(e["event"], e["status"]) for e in other["timeline"]] == [("dice", 400)]
    rows = (await (await console.ops.get("/console/api/callbacks")).json())["callbacks"]
    assert sorted((r["kind"], r["event"], r["callid"]) for r in rows if r["callid"] is None) == [
        ("refused", "-", None), ("refused", "dice", None)]                 # "-": a body that is not JSON names none


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
    # an empty range is a mistake, not "nothing found"
    backwards = await console.ops.get("/console/api/callbacks?since=2026-12-06T10:00&until=2026-12-06T09:00")
    assert backwards.status == 400 and (await backwards.json())["message"] == (
        "until must be after since (since is included, until is not), got since '2026-12-06T10:00' and until "
        "'2026-12-06T09:00'")
    # a number is its digits when it is written as one; other text (markup, a user name) is matched as typed, not
    # cut to the digits it holds ("<img src=x onerror=alert(1)>" found every callback with a 1)
    assert await keys("number=%2B46%2070-123%2000%2009") == ["denied-1"]
    assert await keys("number=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E") == []


async def test_a_search_that_finds_more_than_it_shows_says_so(make_console):
    """A search shows the newest 200 matches: the page and the JSON say when more match, so that a script counting
    or exporting them knows its answer is cut (and narrows the time range)."""
    from callgate_console.views import SEARCH_LIMIT

    console = await make_console()
    for n in range(SEARCH_LIMIT + 1):
        await console.callgate.send(samples.ice(caller=f"4670{n:07d}", callid=f"c-{n}"))
    await console.callgate.send(samples.ice(caller="4680000000", callid="other"))
    await console.flush()
    await console.login()
    found = await (await console.ops.get("/console/api/callbacks?number=4670")).json()
    assert (len(found["callbacks"]), found["truncated"], found["limit"]) == (SEARCH_LIMIT, True, SEARCH_LIMIT)
    assert found["callbacks"][0]["callid"] == f"c-{SEARCH_LIMIT}" and found["callbacks"][-1]["callid"] == "c-1"
    one = await (await console.ops.get("/console/api/callbacks?number=4680")).json()
    assert [c["callid"] for c in one["callbacks"]] == ["other"] and one["truncated"] is False
    page = await (await console.ops.get("/console/search?number=4670")).text()
    assert f'id="result-count">{SEARCH_LIMIT} callbacks (the newest {SEARCH_LIMIT}: more match;' in page
    page = await (await console.ops.get("/console/search?number=4680")).text()
    assert 'id="result-count">1 callback</p>' in page


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
    await console.plugin.state.store.db.execute("DROP TABLE console_batches")     # every write now fails
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


#: What a queued capture may hold: values the garbage collector never counts.
UNCOUNTED = (str, bytes, int, float, type(None), msgspec.Raw)


async def test_queued_captures_hold_nothing_the_garbage_collector_counts(make_console):
    """Thousands of captures wait for each flush; were any part of them a tuple, list or dict, every one would bring
    the next collection nearer (a young collection every hundred callbacks under bench/run.py's load)."""
    console = await make_console(flush_interval_ms=60_000, plugins={"deny_nine": DenyFromNine},
                                 enabled=("deny_nine", "console"))
    await console.callgate.send(samples.ice(callid="c-1"))
    await console.callgate.send(samples.ice(caller="46701234569", callid="c-2"))      # denied
    await console.callgate.event(samples.ace(callid="c-1"))
    await console.callgate.event(samples.dice(callid="c-1"))
    await console.callgate.webhook(v2_samples.incoming(callid="c-3"))
    await console.callgate.webhook(v2_samples.hangup(callid="c-3"))
    pending = list(console.plugin.state.recorder.pending)
    assert len(pending) == 6

    def check(value, path):
        if isinstance(value, msgspec.Struct):
            assert not gc.is_tracked(value), path
            for name in value.__struct_fields__:
                check(getattr(value, name), f"{path}.{name}")
        else:
            assert type(value) in UNCOUNTED, f"{path} is a {type(value).__name__}"
    for n, captured in enumerate(pending):
        check(captured, f"capture {n}")
    assert [c.summary.decision for c in pending[:2]] == ["allowed", "denied"]
    assert orjson.loads(pending[0].headers) and "authorization" not in pending[0].headers.decode().lower()


async def test_a_flush_writes_what_was_queued_when_it_started_and_leaves_the_rest_for_the_next(make_console):
    console = await make_console(flush_interval_ms=60_000)
    recorder, store = console.plugin.state.recorder, console.plugin.state.store
    for n in range(3):
        await console.callgate.send(samples.ice(callid=f"before-{n}"))
    write = store.insert

    async def answer_while_writing(captures):
        await console.callgate.send(samples.ice(callid="during"))    # answered while the batch is written
        await write(captures)
    store.insert = answer_while_writing
    await recorder.flush(store)
    assert [c.summary.callid for c in recorder.pending] == ["during"]
    assert sorted(r["callid"] for r in await store.latest()) == ["before-0", "before-1", "before-2"]


async def test_the_background_flush_writes_within_the_interval(make_console):
    console = await make_console(flush_interval_ms=50)
    await console.callgate.send(samples.ice(callid="flushed"))
    await asyncio.sleep(0.4)
    await console.login()
    assert (await console.ops.get("/console/calls/flushed")).status == 200


async def test_retention_by_age_and_by_count_removes_whole_batches_oldest_first(make_console):
    console = await make_console(max_callbacks=100, retention_hours=1, flush_interval_ms=60_000)
    store = console.plugin.state.store
    now = time.time()
    await store.insert([await _capture(console, samples.ice(callid=f"old-{n}"), received_at=now - 7200)
                        for n in range(5)])
    new = [await _capture(console, samples.ice(callid=f"new-{n}"), received_at=now - 60) for n in range(120)]
    for start in range(0, 120, 10):                               # twelve batches of ten
        await store.insert(new[start:start + 10])
    removed = await console.plugin.purge()
    assert removed == 5 + 20                                      # the old batch, then the two oldest new ones
    remaining = await store.latest(1000)
    assert [r["callid"] for r in reversed(remaining)] == [f"new-{n}" for n in range(20, 120)]
    assert await console.plugin.purge() == 0


#: Two calls, the key of one inside the other's: the store's quick test of which batches may hold a call (and
#: a number) matches text, so it selects both; each callback is then checked exactly.
NESTED = ("call-1", "call-12")


@pytest.mark.postgres
async def test_two_calls_whose_keys_contain_each_other_are_never_mixed(make_console, callgate_database_url):
    console = await make_console(database_url=callgate_database_url)
    short, long = NESTED
    await console.callgate.send(samples.ice(caller="46701111111", callid=short))
    await console.callgate.send(samples.ice(caller="467011111112", callid=long))
    await console.callgate.event(samples.dice(callid=long))
    await console.flush()
    await console.login()
    call = await (await console.ops.get(f"/console/api/calls/{short}")).json()
    assert [(cb["callid"], cb["event"]) for cb in call["timeline"]] == [(short, "ice")]
    found = await (await console.ops.get(f"/console/api/callbacks?callid={short}")).json()
    assert [(cb["callid"], cb["event"]) for cb in found["callbacks"]] == [(short, "ice")]
    found = await (await console.ops.get(f"/console/api/callbacks?callid={long}")).json()
    assert [(cb["callid"], cb["event"]) for cb in found["callbacks"]] == [(long, "dice"), (long, "ice")]
    by_number = await (await console.ops.get("/console/api/callbacks?number=467011111112")).json()
    assert [cb["callid"] for cb in by_number["callbacks"]] == [long]
    in_progress = await console.plugin.state.store.in_progress(time.time() - 3600)
    assert [c["callid"] for c in in_progress] == [short]           # the long one ended; the short one did not


async def _capture(console, body, *, received_at: float):
    """The capture of ``body`` as the recorder makes it, received at ``received_at``."""
    await console.callgate.send(body)
    captured = console.plugin.state.recorder.pending.pop()
    return msgspec.structs.replace(captured, summary=msgspec.structs.replace(captured.summary,
                                                                             received_at=received_at))


async def test_a_dry_run_records_nothing_and_opens_nothing(tmp_path, console_token):
    plugin = Console(ConsoleConfig(database_url=f"sqlite:///{tmp_path}/dry.sqlite3"))
    await plugin.startup(dry_run=True)
    assert plugin.state.store is None and not (tmp_path / "dry.sqlite3").exists()
    await plugin.shutdown()


async def test_a_sqlite_store_has_large_pages_and_its_writer_purges_with_secure_delete_fast(make_console):
    console = await make_console()
    store = console.plugin.state.store
    assert await store.db.fetchval("PRAGMA page_size") == 65536
    assert await store.writer.fetchval("PRAGMA secure_delete") == 2            # FAST


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
async def test_a_nul_in_a_callback_loses_nothing_and_a_nul_in_a_lookup_finds_it(make_console, callgate_database_url):
    """A signed v1 cli is taken as sent, NUL included; a PostgreSQL text value cannot hold a NUL, and refused the
    whole batch. Every callback of the batch is recorded, on both databases, and a lookup naming a NUL answers."""
    console = await make_console(database_url=callgate_database_url, flush_interval_ms=60_000)
    for n in range(20):
        assert (await console.callgate.send(samples.ice(caller="46701234567", callid=f"plain-{n}"))).status == 200
    assert (await console.callgate.send(samples.ice(caller="anon\x00ymous", callid="nul-cli"))).status == 200
    assert (await console.callgate.send(samples.dice(callid="nul\x00dice"))).status == 400   # refused: a NUL in an id
    await console.flush()
    assert console.plugin.state.recorder.metrics() | {"queued": 0} == {
        "queued": 0, "recorded": 22, "dropped": 0, "failed_writes": 0, "lost": 0}
    await console.login()
    found = await console.ops.get("/console/api/callbacks", params={"number": "anon\x00ymous"})
    assert found.status == 200
    assert [cb["callid"] for cb in (await found.json())["callbacks"]] == ["nul-cli"]
    for key in ("nul-cli", "nul\x00dice"):
        call = await console.ops.get("/console/api/calls/" + quote(key, safe=""))
        assert call.status == 200 and [e["callid"] for e in (await call.json())["timeline"]] == [key]
    assert (await console.ops.get("/console/calls/" + quote("a\x00b", safe=""))).status == 404
    nothing = await console.ops.get("/console/api/callbacks", params={"callid": "a\x00b"})
    assert nothing.status == 200 and (await nothing.json())["callbacks"] == []


@pytest.mark.postgres
async def test_ids_become_visible_in_order_when_two_instances_write_at_once(make_console, callgate_database_url):
    """Each batch takes its ids in its own transaction, so a reader never sees an id before a lower one: the live
    feed, which asks for the callbacks after the last id it sent, misses none of two instances writing at once."""
    console = await make_console(database_url=callgate_database_url, flush_interval_ms=60_000)
    store = console.plugin.state.store
    other = await ConsoleStore.open(callgate_database_url)
    feed = console.plugin.state.feed
    try:
        captures = [await _capture(console, samples.ice(callid=f"race-{n}"), received_at=time.time())
                    for n in range(40)]
        queue = await feed.subscribe()
        await asyncio.gather(*(writer.insert(captures[n:n + 2]) for n, writer in
                               zip(range(0, 40, 2), [store, other] * 10, strict=True)))
        got = [await asyncio.wait_for(queue.get(), 3.0) for _ in range(40)]
        assert sorted(item["callid"] for item in got) == sorted(f"race-{n}" for n in range(40))
        ids = [item["id"] for item in got]
        assert ids == sorted(ids) and len(set(ids)) == 40                 # in order, each once
        await asyncio.sleep(1.0)
        assert queue.empty()
        feed.unsubscribe(queue)
    finally:
        await other.close()


async def test_pages_follow_the_time_callbacks_came_in_not_the_order_batches_were_written(make_console):
    """With several instances (or workers) one's batch of older callbacks may be written after another's newer ones,
    so ids are not time order: a call's timeline, its start and end, the latest callbacks and a search still are."""
    console = await make_console(flush_interval_ms=60_000)
    store = console.plugin.state.store
    now = time.time()
    ice = await _capture(console, samples.ice(caller="46701234567", callid="late-ice"), received_at=now - 3)
    ace = await _capture(console, samples.ace(callid="late-ice"), received_at=now - 2)
    dice = await _capture(console, samples.dice(callid="late-ice", caller="46701234567"), received_at=now - 1)
    await store.insert([dice])                       # another instance wrote its batch first
    await store.insert([ace, ice])                   # (a batch holds what one instance queued, in its order)
    await console.login()
    data = await (await console.ops.get("/console/api/calls/late-ice")).json()
    assert [e["event"] for e in data["timeline"]] == ["ice", "ace", "dice"]
    assert [e["id"] for e in data["timeline"]] == [3, 2, 1]
    assert (data["call"]["started"], data["call"]["ended"]) == (data["timeline"][0]["time"], data["timeline"][2]["time"])
    latest = await store.latest(10)
    assert [c["event"] for c in latest] == ["dice", "ace", "ice"]                       # newest first, by time
    found = await (await console.ops.get("/console/api/callbacks?callid=late-ice")).json()
    assert [c["event"] for c in found["callbacks"]] == ["dice", "ace", "ice"]
    assert await store.in_progress(now - 60) == []                                      # its DICE ended it
    page = await (await console.ops.get("/console/")).text()
    latest_rows = page[page.index('id="latest-callbacks"'):]
    assert [part.split('"')[0] for part in latest_rows.split('data-callback-id="')[1:]] == ["1", "2", "3"]


async def test_a_burst_beyond_what_the_stream_sends_per_poll_is_counted_and_the_page_told(make_console):
    """The live stream sends at most MAX_PER_POLL new callbacks a poll (the newest): those it leaves out are counted
    in stream_events_dropped, and the stream says ``skipped`` so that a page reads its calls in progress again."""
    from callgate_console.live import MAX_PER_POLL

    console = await make_console(flush_interval_ms=60_000)
    store, feed = console.plugin.state.store, console.plugin.state.feed
    queue = await feed.subscribe()
    capture = await _capture(console, samples.ice(callid="burst"), received_at=time.time())
    await store.insert([capture] * (MAX_PER_POLL + 30))
    items = [await asyncio.wait_for(queue.get(), 3.0) for _ in range(MAX_PER_POLL + 1)]
    assert items[0] == "skipped" and all(isinstance(item, dict) for item in items[1:])
    assert [item["id"] for item in items[1:]] == list(range(31, MAX_PER_POLL + 31))     # the newest
    assert feed.dropped == 30 and console.plugin.collect_metrics()["stream_events_dropped"] == 30
    feed.unsubscribe(queue)


async def test_a_store_from_a_development_build_is_upgraded_to_batches(tmp_path):
    url = f"sqlite:///{tmp_path}/old.sqlite3"
    db = await Database.connect(url)
    await db.migrate(COMPONENT, migrations(db.dialect)[:2])              # a row per callback, as 0.4.0 builds made it
    await db.execute("INSERT INTO console_callbacks (received_at, minute, generation, event, kind, call_key, status, "
                     "summary, ms, headers, body, answer, trace) VALUES ($1, 0, 'v1', 'ice', 'incoming', 'old-call', "
                     "200, 'allowed', 1.0, '[]', '{}', '{}', '[]')", time.time())
    await db.close()
    store = await ConsoleStore.open(url)
    try:
        assert await store.latest() == []                               # dropped, as the CHANGELOG says
        await store.insert([_synthetic("new-call")])
        assert [r["callid"] for r in await store.call("new-call")] == ["new-call"]
        assert [r["id"] for r in await store.latest()] == [1]
    finally:
        await store.close()


async def test_batches_of_a_development_build_are_dropped_when_the_store_is_opened(tmp_path):
    """Batches written before 0.4.0 compressed them (plain MessagePack, traces as lists) cannot be read: opening the
    store drops them, as the CHANGELOG says."""
    url = f"sqlite:///{tmp_path}/plain.sqlite3"
    db = await Database.connect(url)
    await db.migrate(COMPONENT, migrations(db.dialect)[:3])              # batches, uncompressed
    await db.execute("INSERT INTO console_batches (first_id, size, first_at, last_at, calls, numbers, summaries, "
                     "details) VALUES (1, 1, $1, $1, 'old-call', '', $2, $3)", time.time(),
                     msgspec.msgpack.encode([]), msgspec.msgpack.encode([[], b"[]"]))
    await db.close()
    store = await ConsoleStore.open(url)
    try:
        assert await store.latest() == []
        await store.insert([_synthetic("new-call")])
        assert [r["callid"] for r in await store.call("new-call")] == ["new-call"]
    finally:
        await store.close()


def _synthetic(key: str) -> Capture:
    """A capture (as :func:`callgate_console.record.capture` makes it) of an allowed ICE of the call ``key``."""
    summary = Stored(time.time(), "v1", "ice", "incoming", key, key, None, None, 200, "allowed", None, None,
                     "allowed", msgspec.Raw(msgspec.msgpack.encode([])))
    return Capture(summary, Detail(None, 1.0, b"{}", b"{}"), b'[["Content-Type","application/json"]]')
