"""The console in a real browser: headless Chromium (Debian's, through its own ChromeDriver) on the pages of a
real ``callgate serve`` that receives signed v1 callbacks and v2 webhooks over real HTTP.  What the pages
show is compared with what was sent and what the HTTP client was answered.

One server and one browser for the module (starting them takes seconds); each test sends calls of its own,
with numbers no other test uses, and looks for those.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone

import pytest
from console_browser import (
    COOKIE,
    DENIED_PREFIX,
    DENY_PROMPT,
    ConsoleServer,
    Sent,
    chromium,
    dialogs,
    find,
    http,
    login,
    missing_browser,
    texts,
    wait_for,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from callgate import samples, v2_samples
from callgate.calls import call_key
from callgate.testing import POSTGRES_DSN_ENV, postgres_schema

#: Starts the real callgate command and a browser, and waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

HOSTILE_CALLER = """<img src=x onerror="document.title='pwned';window.__pwned=1">"""
HOSTILE_HEADER = """<script>document.title='pwned';window.__pwned=1</script>"""


@pytest.fixture(scope="module")
def console(tmp_path_factory) -> Iterator[ConsoleServer]:
    """The real ``callgate serve`` with the console enabled (module-wide)."""
    reason = missing_browser()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)     # CI installs the browser (.ci/run): its absence there is a failure
        pytest.skip(reason)
    server = ConsoleServer(tmp_path_factory.mktemp("console")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(console) -> Iterator[WebDriver]:
    """One headless Chromium for the module, logged in to the console."""
    driver = chromium()
    login(driver, console)
    yield driver
    driver.quit()


@pytest.fixture
def stranger(console) -> Iterator[WebDriver]:
    """A headless Chromium of its own that never logged in (no cookie)."""
    driver = chromium()
    yield driver
    driver.quit()


_numbers = iter(range(100, 1000))


def caller_number(prefix: str = "+4670") -> str:
    """A caller number no other test in the module uses."""
    return f"{prefix}1{next(_numbers):03d}{int(time.time()) % 1000:03d}"


def open_call(browser: WebDriver, console: ConsoleServer, key: str) -> None:
    browser.get(console.url("/calls/" + urllib.parse.quote(key, safe="")))
    wait_for(lambda: find(browser, "#call-summary"), what=f"the page of call {key}")


def parsed_pre(element) -> object:
    """The JSON a ``pre`` shows (formatted JSON, parsed back)."""
    return json.loads(element.get_attribute("textContent"))


def v1_key(sent: list[Sent]) -> str:
    """The console's key of a v1 call (the core's ``call_key``: the ``callid`` itself)."""
    return call_key("v1", sent[0].body["callid"])


def v2_key(sent: list[Sent]) -> str:
    """The console's key of a v2 call (``v2:<callId>``)."""
    return call_key("v2", sent[0].body["call"]["callId"])


def wait_recorded(console: ConsoleServer, callid: str, count: int, timeout: float = 5.0) -> None:
    """Until the console's store holds ``count`` callbacks of ``callid`` (recording is batched)."""
    query = "/callbacks?" + urllib.parse.urlencode({"callid": callid})
    wait_for(lambda: len(console.api(query)["callbacks"]) >= count, timeout=timeout,
             what=f"{count} callbacks of {callid} recorded")


# --- the live view ------------------------------------------------------------------------------------------


def test_the_live_view_shows_a_new_call_within_two_seconds(console, browser):
    browser.get(console.url("/"))
    wait_for(lambda: find(browser, "#stream-state").text.strip().lower() == "live", what="#stream-state 'live'")
    caller = caller_number()

    ice = console.callback(samples.ice(caller=caller.lstrip("+"), to="+46850009999"))
    assert ice.status == 200 and ice.answer["action"]["name"] == "connectPstn"
    row = wait_for(lambda: _row_with_caller(browser, "#latest-callbacks", caller), timeout=2.0,
                   what="the new ICE in #latest-callbacks")
    seen_after = time.time() - ice.answered_at
    assert seen_after < 2.0

    cells = {name: row.find_element(By.CSS_SELECTOR, f".cb-{name}").text for name in
             ("generation", "event", "caller", "callee", "status", "decision", "plugin")}
    assert cells["generation"] == "v1" and cells["event"] == "ice" and cells["status"] == "200"
    assert cells["caller"] == ice.body["cli"] and cells["callee"] == "+46850009999"      # as Sinch sent them
    assert cells["decision"] == "allowed"
    # The call is in progress (no DICE yet): it is in #live-calls; its DICE takes it out, without a reload.
    key = call_key("v1", ice.body["callid"])
    wait_for(lambda: find(browser, f'#live-calls tr[data-call-key="{key}"]'), timeout=2.0,
             what="the call in #live-calls")
    dice = console.callback(samples.dice(callid=ice.body["callid"], caller=caller.lstrip("+"), to="+46850009999"))
    assert dice.status == 200
    wait_for(lambda: find(browser, f'#live-calls tr[data-call-key="{key}"]') is None, timeout=2.0,
             what="the ended call leaving #live-calls")
    # The row links to the call's page.
    href = _row_with_caller(browser, "#latest-callbacks", caller).find_element(By.CSS_SELECTOR, "a.call-link")
    assert urllib.parse.unquote(href.get_attribute("href")).endswith("/console/calls/" + key)


def test_a_v2_call_stays_in_progress_until_each_of_its_legs_has_ended(console, browser):
    """The caller's leg hangs up first while the leg a dial made is still on: the call stays among the calls in
    progress, in the open page (the stream) and after a reload (the store), until that leg's hangup too."""
    browser.get(console.url("/"))
    wait_for(lambda: find(browser, "#stream-state").text.strip().lower() == "live", what="#stream-state 'live'")
    caller = caller_number()
    incoming = console.webhook(v2_samples.incoming(caller=caller, to="+46850009999"))
    callid, session = incoming.body["call"]["callId"], incoming.body["call"]["sessionId"]
    dialled = v2_samples.new_call_id()
    assert console.webhook(v2_samples.answered(dialled, session=session)).status == 200
    key = call_key("v2", callid)
    in_progress = f'#live-calls tr[data-call-key="{key}"]'
    wait_for(lambda: find(browser, in_progress), timeout=2.0, what="the call in #live-calls")
    assert console.webhook(v2_samples.hangup(callid, caller=caller, to="+46850009999", session=session)).status == 200
    wait_for(lambda: _row_with_caller(browser, "#latest-callbacks", caller) and
             browser.find_elements(By.CSS_SELECTOR, "#latest-callbacks .cb-event")[0].text == "call.hangup",
             timeout=2.0, what="the caller's hangup in #latest-callbacks")
    assert find(browser, in_progress) is not None                   # the dialled leg is still on
    browser.refresh()
    assert find(browser, in_progress) is not None
    wait_for(lambda: find(browser, "#stream-state").text.strip().lower() == "live", what="#stream-state 'live'")
    assert console.webhook(v2_samples.hangup(dialled, session=session, direction="OUTBOUND")).status == 200
    wait_for(lambda: find(browser, in_progress) is None, timeout=2.0, what="the ended call leaving #live-calls")
    browser.refresh()
    assert find(browser, in_progress) is None


@pytest.mark.parametrize("reload_between", [False, True])
def test_a_notice_after_a_legs_hangup_does_not_bring_the_leg_back(console, browser, reload_between):
    """A recording finishes after its leg hung up: the notice comes after that leg's hangup, and must not count the
    leg as on again, whether the page saw the hangup in its stream or listed the call after it (a reload)."""
    browser.get(console.url("/"))
    wait_for(lambda: find(browser, "#stream-state").text.strip().lower() == "live", what="#stream-state 'live'")
    incoming = console.webhook(v2_samples.incoming(caller=caller_number(), to="+46850009999"))
    callid, session = incoming.body["call"]["callId"], incoming.body["call"]["sessionId"]
    dialled = v2_samples.new_call_id()
    console.webhook(v2_samples.answered(dialled, session=session))
    console.webhook(v2_samples.hangup(dialled, session=session, direction="OUTBOUND"))
    in_progress = f'#live-calls tr[data-call-key="{call_key("v2", callid)}"]'
    wait_for(lambda: find(browser, in_progress), timeout=2.0, what="the call in #live-calls")
    if reload_between:
        time.sleep(0.5)                                   # the hangup is in the store when the page is read again
        browser.refresh()
        wait_for(lambda: find(browser, "#stream-state").text.strip().lower() == "live", what="#stream-state 'live'")
        assert find(browser, in_progress) is not None
    assert console.webhook(v2_samples.notice("call.recording.finished", dialled, session=session)).status == 200
    assert console.webhook(v2_samples.hangup(callid, session=session)).status == 200
    wait_for(lambda: find(browser, in_progress) is None, timeout=2.0, what="the ended call leaving #live-calls")


def _write_as_another_instance(console: ConsoleServer, callbacks: list[tuple[float, str, str, str]]) -> None:
    """Write ``(received_at, event, kind, callid)`` v1 callbacks of the caller +46701110000 into the server's store, as
    one more instance writing one batch (the server numbers its callbacks in the order batches are written)."""
    import asyncio

    import msgspec
    from callgate_console.record import Capture, Detail, Stored
    from callgate_console.store import ConsoleStore

    async def write() -> None:
        store = await ConsoleStore.open(f"sqlite:///{console.folder / 'console.db'}")
        try:
            await store.insert([Capture(Stored(at, "v1", event, kind, callid, callid, "46701110000", "+46850009999",
                                               200, "allowed" if kind == "incoming" else None, None, None, "recorded",
                                               msgspec.Raw(b"\x90")),
                                        Detail(None, 1.0, b"{}", b"{}"), b"[]")
                                for at, event, kind, callid in callbacks])
        finally:
            await store.close()
    asyncio.run(write())


def test_the_live_view_keeps_time_order_and_ends_a_call_whose_hangup_was_written_first(console, browser):
    """Another instance wrote a call's DICE before this one wrote its ICE: the stream brings the DICE first.  The
    call is not left among the calls in progress, and the latest callbacks stay newest first by time."""
    browser.get(console.url("/"))
    wait_for(lambda: find(browser, "#stream-state").text.strip().lower() == "live", what="#stream-state 'live'")
    callid, now = f"written-late-{time.time_ns()}", time.time()
    _write_as_another_instance(console, [(now - 1, "dice", "ended", callid)])
    _write_as_another_instance(console, [(now - 2, "ice", "incoming", callid)])
    rows = f'#latest-callbacks tr[data-call-key="{callid}"]'
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, rows)) == 2, timeout=2.0, what="both callbacks")
    assert [r.find_element(By.CSS_SELECTOR, ".cb-event").text for r in browser.find_elements(By.CSS_SELECTOR, rows)] \
        == ["dice", "ice"]
    time.sleep(0.5)                                               # whatever the script would still do with them
    assert find(browser, f'#live-calls tr[data-call-key="{callid}"]') is None
    browser.refresh()
    assert find(browser, f'#live-calls tr[data-call-key="{callid}"]') is None


def test_a_burst_the_stream_skips_a_hangup_in_is_caught_up_with_by_reading_the_calls_again(console, browser):
    """More callbacks at once than the stream sends per poll: it sends the newest and says ``skipped``, and the
    page reads its calls in progress again, so a call whose hangup was skipped does not stay listed."""
    from callgate_console.live import MAX_PER_POLL

    browser.get(console.url("/"))
    wait_for(lambda: find(browser, "#stream-state").text.strip().lower() == "live", what="#stream-state 'live'")
    callid, now = f"burst-{time.time_ns()}", time.time()
    _write_as_another_instance(console, [(now - 5, "ice", "incoming", callid)])
    in_progress = f'#live-calls tr[data-call-key="{callid}"]'
    wait_for(lambda: find(browser, in_progress), timeout=2.0, what="the call in #live-calls")
    _write_as_another_instance(console, [(now - 4, "dice", "ended", callid)] + [
        (now - 3, "dice", "ended", f"{callid}-other-{n}") for n in range(MAX_PER_POLL + 20)])
    wait_for(lambda: find(browser, in_progress) is None, timeout=5.0, what="the call read again and gone")


def _row_with_caller(browser: WebDriver, table: str, caller: str):
    """The newest row whose caller is ``caller`` (with or without its ``+``: v1 sends numbers without it)."""
    for row in browser.find_elements(By.CSS_SELECTOR, f"{table} tr[data-callback-id]"):
        if row.find_element(By.CSS_SELECTOR, ".cb-caller").text in (caller, caller.removeprefix("+")):
            return row
    return None


def test_both_generations_appear_in_the_live_view_newest_first(console, browser):
    browser.get(console.url("/"))
    wait_for(lambda: find(browser, "#stream-state").text.strip().lower() == "live", what="#stream-state 'live'")
    v1_caller, v2_caller = caller_number(), caller_number()
    v1 = console.callback(samples.ice(caller=v1_caller.lstrip("+")))
    v2 = console.webhook(v2_samples.incoming(caller=v2_caller))
    assert v1.status == v2.status == 200
    v1_row = wait_for(lambda: _row_with_caller(browser, "#latest-callbacks", v1_caller), timeout=2.0, what="the v1 row")
    v2_row = wait_for(lambda: _row_with_caller(browser, "#latest-callbacks", v2_caller), timeout=2.0, what="the v2 row")
    assert v1_row.find_element(By.CSS_SELECTOR, ".cb-generation").text == "v1"
    assert v2_row.find_element(By.CSS_SELECTOR, ".cb-generation").text == "v2"
    assert v2_row.find_element(By.CSS_SELECTOR, ".cb-event").text == "call.incoming"
    rows = browser.find_elements(By.CSS_SELECTOR, "#latest-callbacks tr[data-callback-id]")
    ids = [row.get_attribute("data-callback-id") for row in rows]
    assert ids.index(v2_row.get_attribute("data-callback-id")) < ids.index(v1_row.get_attribute("data-callback-id"))
    # The same rows after a reload (from the store, not only from the stream).
    browser.refresh()
    assert _row_with_caller(browser, "#latest-callbacks", v1_caller) is not None
    assert _row_with_caller(browser, "#latest-callbacks", v2_caller) is not None


# --- a call's page ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("generation", ["v1", "v2"])
def test_a_calls_page_shows_each_request_its_answer_and_the_plugin_trace(console, browser, generation):
    caller = caller_number()
    to = "+46850007777"
    sent = console.v1_call(caller, to) if generation == "v1" else console.v2_call(caller, to)
    assert [s.status for s in sent] == [200] * len(sent)
    key = v1_key(sent) if generation == "v1" else v2_key(sent)
    callid = sent[0].body["callid"] if generation == "v1" else sent[0].body["call"]["callId"]
    wait_recorded(console, callid, len(sent))

    open_call(browser, console, key)
    summary = {name: find(browser, f"#call-summary .call-{name}").text
               for name in ("caller", "callee", "generation", "decision", "plugin")}
    shown_caller = sent[0].body["cli"] if generation == "v1" else caller         # as Sinch sent it
    assert summary == {"caller": shown_caller, "callee": to, "generation": generation, "decision": "allowed",
                       "plugin": "router"}
    entries = browser.find_elements(By.CSS_SELECTOR, "#timeline .timeline-entry")
    assert [e.get_attribute("data-event") for e in entries] == [s.event for s in sent]
    for entry, request in zip(entries, sent):
        assert parsed_pre(entry.find_element(By.CSS_SELECTOR, "pre.request-json")) == request.body
        assert parsed_pre(entry.find_element(By.CSS_SELECTOR, "pre.answer-json")) == request.answer
        assert entry.find_element(By.CSS_SELECTOR, ".answer-status").text == str(request.status)
        headers = entry.find_element(By.CSS_SELECTOR, ".request-headers").get_attribute("textContent").lower()
        assert "content-type" in headers and "application/json" in headers and "x-timestamp" in headers
        assert "authorization" not in headers                  # the signature is never shown (nor stored)
    # The plugin trace of the incoming call: the allowlist allowed, the router routed, each with its time.
    first = entries[0]
    trace = {row.get_attribute("data-plugin"): row for row in
             first.find_elements(By.CSS_SELECTOR, "table.plugin-trace tr[data-plugin]")}
    assert {"allowlist", "router"} <= set(trace)
    for row in trace.values():
        assert row.find_element(By.CSS_SELECTOR, ".trace-status").text == "ok"
        assert float(row.find_element(By.CSS_SELECTOR, ".trace-ms").text.split()[0]) >= 0
    assert trace["allowlist"].find_element(By.CSS_SELECTOR, ".trace-verdict").text == "allow"
    assert "everything" in trace["router"].find_element(By.CSS_SELECTOR, ".trace-verdict").text   # the route's name
    # What the caller's leg was answered, as sent: v1 connectPstn to the callee; v2 a bridge to it.
    answer = sent[0].answer
    if generation == "v1":
        assert answer["action"]["name"] == "connectPstn" and answer["action"]["number"] == to
    else:
        assert answer["commands"][0]["command"] == "bridgeCall" and answer["commands"][1]["to"]["phone"]["number"] == to


def test_a_denied_calls_page_names_the_plugin_that_denied_it(console, browser):
    caller = caller_number(DENIED_PREFIX)
    sent = console.v2_call(caller)
    assert sent[0].status == 200 and DENY_PROMPT in json.dumps(sent[0].answer)
    wait_recorded(console, sent[0].body["call"]["callId"], len(sent))
    open_call(browser, console, v2_key(sent))
    assert find(browser, "#call-summary .call-decision").text == "denied"
    assert find(browser, "#call-summary .call-plugin").text == "allowlist"
    assert f"{DENIED_PREFIX}*" in find(browser, "#call-summary .call-reason").text     # the rule that matched
    first = browser.find_element(By.CSS_SELECTOR, '#timeline .timeline-entry[data-event="call.incoming"]')
    verdict = first.find_element(By.CSS_SELECTOR, 'table.plugin-trace tr[data-plugin="allowlist"] .trace-verdict').text
    assert "deny" in verdict.lower()
    assert parsed_pre(first.find_element(By.CSS_SELECTOR, "pre.answer-json")) == sent[0].answer


def test_an_unknown_call_is_a_404_page(console, browser):
    browser.get(console.url("/calls/" + urllib.parse.quote("v2:NOSUCHCALL00000000000000000", safe="")))
    assert find(browser, "#timeline") is None
    status, _, _ = console.get("/calls/" + urllib.parse.quote("v2:NOSUCHCALL00000000000000000", safe=""),
                               token=console.token)
    assert status == 404


# --- search ---------------------------------------------------------------------------------------------------


def _search(browser: WebDriver, console: ConsoleServer, **query: str) -> set[str]:
    browser.get(console.url("/search?" + urllib.parse.urlencode(query)))
    wait_for(lambda: find(browser, "#result-count"), what="#result-count")
    return {row.get_attribute("data-call-key") for row in browser.find_elements(By.CSS_SELECTOR, "#results tr[data-call-key]")}


def test_search_finds_calls_by_number_call_id_decision_plugin_and_time(console, browser):
    before = datetime.now(timezone.utc) - timedelta(seconds=2)
    allowed_caller, denied_caller = caller_number(), caller_number(DENIED_PREFIX)
    allowed = console.v1_call(allowed_caller)
    denied = console.v2_call(denied_caller)
    allowed_key, denied_key = v1_key(allowed), v2_key(denied)
    wait_recorded(console, denied[0].body["call"]["callId"], len(denied))
    wait_recorded(console, allowed[0].body["callid"], len(allowed))
    after = datetime.now(timezone.utc) + timedelta(seconds=2)

    # By number, through the form as an operator types it.
    browser.get(console.url("/search"))
    form = browser.find_element(By.CSS_SELECTOR, "form#search")
    form.find_element(By.NAME, "number").send_keys(allowed_caller)
    form.submit()
    wait_for(lambda: "number=" in browser.current_url and find(browser, "#result-count"), what="the search results")
    rows = browser.find_elements(By.CSS_SELECTOR, "#results tr[data-callback-id]")
    assert {row.get_attribute("data-call-key") for row in rows} == {allowed_key}
    assert [row.find_element(By.CSS_SELECTOR, ".cb-event").text for row in rows] == ["dice", "ice"]  # newest first
    assert find(browser, "#result-count").text.split()[0] == str(len(rows))
    link = browser.find_element(By.CSS_SELECTOR, f'#results tr[data-call-key="{allowed_key}"] a')
    link.click()
    wait_for(lambda: find(browser, "#call-summary"), what="the call page from a result")
    assert find(browser, "#call-summary .call-caller").text == allowed[0].body["cli"]

    assert _search(browser, console, number=denied_caller) == {denied_key}
    assert _search(browser, console, callid=denied[0].body["call"]["callId"]) == {denied_key}
    assert _search(browser, console, callid=allowed[0].body["callid"]) == {allowed_key}
    by_decision = _search(browser, console, decision="denied", since=before.isoformat())
    assert denied_key in by_decision and allowed_key not in by_decision
    by_decision = _search(browser, console, decision="allowed", since=before.isoformat())
    assert allowed_key in by_decision and denied_key not in by_decision
    by_plugin = _search(browser, console, plugin="allowlist", since=before.isoformat())
    assert denied_key in by_plugin and allowed_key not in by_plugin   # the router, not the allowlist, decided it
    both = _search(browser, console, since=before.isoformat(), until=after.isoformat())
    assert {allowed_key, denied_key} <= both
    long_ago = before - timedelta(hours=3)
    assert _search(browser, console, since=long_ago.isoformat(), until=(long_ago + timedelta(hours=1)).isoformat()) == set()
    assert _search(browser, console, number=allowed_caller, decision="denied") == set()


def test_search_by_error_finds_a_signed_request_that_was_refused(console, browser):
    since = (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat()
    fine = console.callback(samples.ice(caller=caller_number().lstrip("+")))
    broken = {"event": "ice", "callid": samples.new_callid(), "timestamp": samples.now(), "version": 1,
              "to": "+46850001234"}                      # `to` must be an object: answered 400
    sent = console.callback(broken)
    assert fine.status == 200 and sent.status == 400 and sent.answer["error"] == "invalid_field"

    def errors() -> list:
        _search(browser, console, decision="error", since=since)
        return browser.find_elements(By.CSS_SELECTOR, "#results tr[data-callback-id]")

    [row] = wait_for(errors, timeout=5, interval=0.3, what="the refused ICE in the search for errors")
    assert row.find_element(By.CSS_SELECTOR, ".cb-status").text == "400"
    assert row.find_element(By.CSS_SELECTOR, ".cb-decision").text == "error"
    assert row.get_attribute("data-call-key") == broken["callid"]      # its body still names its call


# --- escaping -------------------------------------------------------------------------------------------------


def test_a_hostile_caller_id_and_header_are_shown_as_text_and_nothing_runs(console, browser):
    browser.get(console.url("/"))
    wait_for(lambda: find(browser, "#stream-state").text.strip().lower() == "live", what="#stream-state 'live'")
    body = samples.ice(caller=HOSTILE_CALLER, to="+46850006666",
                       callHeaders=[{"key": "X-Note", "value": HOSTILE_HEADER}])
    sent = console.callback(body, headers={"X-Hostile": HOSTILE_HEADER})
    assert sent.status == 200, sent.answer
    callid = body["callid"]

    # In the live view, arriving through the stream.
    row = wait_for(lambda: _row_with_caller(browser, "#latest-callbacks", HOSTILE_CALLER), timeout=2.0,
                   what="the hostile caller id as text in #latest-callbacks")
    assert row.find_element(By.CSS_SELECTOR, ".cb-caller").text == HOSTILE_CALLER
    _nothing_ran(browser)
    # After a reload (rendered by the server), on the call's page and in the search results.
    browser.refresh()
    assert _row_with_caller(browser, "#latest-callbacks", HOSTILE_CALLER) is not None
    _nothing_ran(browser)
    wait_recorded(console, callid, 1)
    open_call(browser, console, call_key("v1", callid))
    assert HOSTILE_CALLER in find(browser, "#call-summary").text
    assert parsed_pre(find(browser, "pre.request-json")) == body
    assert HOSTILE_HEADER in find(browser, ".request-headers").get_attribute("textContent")
    _nothing_ran(browser)
    keys = _search(browser, console, callid=callid)
    assert keys == {call_key("v1", callid)}
    _nothing_ran(browser)
    # The JSON API gives the text back as it came, for a program to escape in its own page.
    api = console.api("/calls/" + urllib.parse.quote(call_key("v1", callid), safe=""))
    assert api["call"]["caller"] == HOSTILE_CALLER
    assert [HOSTILE_HEADER] == [value for name, value in api["timeline"][0]["headers"] if name == "X-Hostile"]


def _nothing_ran(browser: WebDriver) -> None:
    assert browser.title.endswith("callgate console") and "pwned" not in browser.title
    assert browser.execute_script("return window.__pwned === undefined")
    assert dialogs(browser) == []
    assert browser.find_elements(By.CSS_SELECTOR, "img[src=x], #live-calls script, #latest-callbacks script") == []


# --- access ------------------------------------------------------------------------------------------------------


def _console_urls(console: ConsoleServer) -> list[str]:
    """Every kind of console URL: pages, a call, search, stats, the stream, the API and each static asset the
    pages use (read with the token), except the login form's own stylesheet."""
    sent = console.v2_call(caller_number())
    key = urllib.parse.quote(v2_key(sent), safe="")
    wait_recorded(console, sent[0].body["call"]["callId"], len(sent))
    paths = ["/", f"/calls/{key}", "/search", "/search?decision=denied", "/stats", "/stream", "/api/callbacks",
             f"/api/calls/{key}"]
    statics: set[str] = set()
    for page in ("/", f"/calls/{key}", "/search", "/stats"):
        status, _, html = console.get(page, token=console.token)
        assert status == 200, page
        statics |= set(re.findall(r"""["'](/console/static/[^"'?#]+)""", html.decode()))
    _, _, login_html = console.get("/login")
    login_assets = set(re.findall(r"""["'](/console/static/[^"'?#]+)""", login_html.decode()))
    assert statics - login_assets, "the pages use assets of their own"
    return paths + sorted(p.removeprefix("/console") for p in statics - login_assets)


def test_no_page_stream_api_or_asset_answers_without_the_token(console):
    paths = _console_urls(console)
    for path in paths:
        assert console.get(path)[0] == 401, path
        assert console.get(path, token="x" * 32)[0] == 401, path
        assert console.get(path, cookie="forged-session")[0] == 401, path
        status, headers, _ = console.get(path, token=console.token)
        assert status == 200, path
        assert "Set-Cookie" not in headers, f"{path}: a Bearer token sets no cookie"
    # The HTML pages say where to log in.
    _, _, body = console.get("/")
    assert b"/console/login" in body
    # Read-only: nothing but the login accepts a POST (nor PUT/DELETE).
    for method in ("POST", "PUT", "DELETE"):
        for path in ("/", "/api/callbacks", "/search"):
            status, _, _ = http(method, console.url(path), data=b"{}",
                                headers={"Authorization": f"Bearer {console.token}"})
            assert status in (403, 404, 405), (method, path, status)


def test_a_browser_without_the_cookie_sees_no_page_and_logs_in_with_the_token(console, stranger):
    for path in ("/", "/search", "/stats"):
        stranger.get(console.url(path))
        assert find(stranger, "#latest-callbacks") is None and find(stranger, "#results") is None
        assert find(stranger, "#chart") is None
        assert find(stranger, 'a[href*="/console/login"]') is not None, path

    login(stranger, console, token="wrong-" + console.token)
    wait_for(lambda: find(stranger, "#login-error"), what="#login-error after a wrong token")
    assert stranger.get_cookies() == []
    status, _, _ = http("POST", console.url("/login"), data=b"token=wrong",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 401

    login(stranger, console)
    assert find(stranger, "#latest-callbacks") is not None
    [cookie] = [c for c in stranger.get_cookies() if c["name"] == COOKIE]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert COOKIE not in stranger.execute_script("return document.cookie")
    # The session cookie opens the pages over plain HTTP too, and the token is not the cookie.
    assert cookie["value"] != console.token
    assert console.get("/stats", cookie=cookie["value"])[0] == 200
    status, headers, _ = http("POST", console.url("/login"), data=f"token={console.token}".encode(),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303 and headers["Location"].endswith("/console/")
    set_cookie = headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "Path=/console" in set_cookie


def test_log_out_in_the_header_ends_the_browsers_session(console, stranger):
    login(stranger, console)
    stranger.find_element(By.CSS_SELECTOR, "form#logout button").click()
    wait_for(lambda: find(stranger, "form#login"), what="the login form after logging out")
    assert [c for c in stranger.get_cookies() if c["name"] == COOKIE] == []
    stranger.get(console.url("/"))
    assert find(stranger, "#latest-callbacks") is None and find(stranger, 'a[href*="/console/login"]') is not None


def test_the_console_is_not_on_the_callback_port(console):
    status, _, _ = http("GET", console.process.url + "/console/", headers={"Authorization": f"Bearer {console.token}"})
    assert status == 404


# --- stats ------------------------------------------------------------------------------------------------------


def test_the_stats_page_shows_the_chart_and_each_plugins_health(console, browser):
    browser.get(console.url("/stats"))
    before = _allowlist_calls(browser)
    for _ in range(3):
        console.v1_call(caller_number(), end=False)
    console.v2_call(caller_number(DENIED_PREFIX), end=False)

    def grown() -> bool:
        browser.refresh()
        return _allowlist_calls(browser) >= before + 4

    wait_for(grown, timeout=5, interval=0.3, what="the allowlist's 4 new calls in #plugin-health")
    assert _allowlist_calls(browser) == before + 4
    chart = browser.find_element(By.CSS_SELECTOR, "#chart")
    svg = chart if chart.tag_name == "svg" else chart.find_element(By.CSS_SELECTOR, "svg")
    assert svg.size["width"] > 200 and svg.size["height"] > 50
    assert svg.find_elements(By.CSS_SELECTOR, "rect, path, polyline, line")
    legend = chart.get_attribute("textContent").lower()
    assert "callbacks" in legend and "denials" in legend and "errors" in legend
    row = browser.find_element(By.CSS_SELECTOR, '#plugin-health tr[data-plugin="allowlist"]')
    for cell in (".ph-errors", ".ph-timeouts"):
        assert row.find_element(By.CSS_SELECTOR, cell).text.strip() == "0"
    for cell in (".ph-p50", ".ph-p95"):
        assert re.match(r"^\d+(\.\d+)?", row.find_element(By.CSS_SELECTOR, cell).text.strip())
    assert browser.find_elements(By.CSS_SELECTOR, '#plugin-health tr[data-plugin="router"]')


def _allowlist_calls(browser: WebDriver) -> int:
    cells = texts(browser, '#plugin-health tr[data-plugin="allowlist"] .ph-calls')
    return int(cells[0].replace(",", "")) if cells else 0


# --- masking ------------------------------------------------------------------------------------------------------


@pytest.fixture
def masked_console(console, tmp_path) -> Iterator[ConsoleServer]:
    """A second server, with ``mask_numbers = true`` (``console`` first: it skips when there is no browser)."""
    server = ConsoleServer(tmp_path / "masked", console={"mask_numbers": True}).start()
    yield server
    server.stop()


@pytest.fixture
def brief_console(console, tmp_path) -> Iterator[ConsoleServer]:
    """A server whose sessions last 4 seconds (``console`` first: it skips when there is no browser)."""
    server = ConsoleServer(tmp_path / "brief", console={"session_hours": 4 / 3600}).start()
    yield server
    server.stop()


def test_the_live_view_asks_for_a_login_as_soon_as_its_session_ends(brief_console, stranger):
    console, browser = brief_console, stranger
    login(browser, console)
    wait_for(lambda: find(browser, "#stream-state").text.strip().lower() == "live", what="#stream-state 'live'")
    logged_in = time.monotonic()
    wait_for(lambda: find(browser, "#login-link"), what="the login link once the session ended", timeout=8.0)
    assert time.monotonic() - logged_in < 6.0          # the session's 4 s and a reload, not a reconnection's wait
    assert find(browser, "#latest-callbacks") is None


def test_masked_numbers_never_reach_a_page_the_stream_or_the_api(masked_console, stranger):
    console, browser = masked_console, stranger
    login(browser, console)
    wait_for(lambda: find(browser, "#stream-state").text.strip().lower() == "live", what="#stream-state 'live'")
    caller, to = caller_number(), "+46850004321"
    masked_caller = caller[:5] + "*" * (len(caller) - 8) + caller[-3:]      # +4670****567: 4 digits, the last 3
    sent = console.v2_call(caller, to, end=False) + console.v1_call(caller, to)
    assert all(s.status == 200 for s in sent)

    row = wait_for(lambda: _row_with_caller(browser, "#latest-callbacks", masked_caller), timeout=2.0,
                   what="the masked caller in the live view (from the stream)")
    assert row.find_element(By.CSS_SELECTOR, ".cb-caller").text in (masked_caller, masked_caller.removeprefix("+"))
    assert caller not in browser.page_source and caller.lstrip("+") not in browser.page_source
    assert to not in browser.page_source
    v2 = v2_key(sent)
    wait_recorded(console, sent[0].body["call"]["callId"], 1)
    open_call(browser, console, v2)
    assert find(browser, ".call-caller").text == masked_caller
    assert caller not in browser.page_source and to not in browser.page_source
    # Search still finds the calls by the full number, and shows it masked.
    keys = _search(browser, console, number=caller)
    assert keys == {v2, v1_key(sent[1:])}
    results = find(browser, "#results").get_attribute("outerHTML")        # (the form shows what was typed)
    assert caller not in results and caller.lstrip("+") not in results and masked_caller in results
    status, _, body = console.get("/api/callbacks?" + urllib.parse.urlencode({"number": caller}), token=console.token)
    assert status == 200 and caller.encode() not in body and caller.lstrip("+").encode() not in body
    assert masked_caller.encode() in body


# --- several instances ----------------------------------------------------------------------------------------------


@pytest.fixture
async def shared_store(console) -> AsyncIterator[str]:
    """A PostgreSQL schema of its own, as the store two instances share (skipped without the server)."""
    dsn = os.environ.get(POSTGRES_DSN_ENV)
    if not dsn:
        pytest.skip(f"set {POSTGRES_DSN_ENV} (CI does) to run the console on PostgreSQL")
    async with postgres_schema(dsn) as url:
        yield url


@pytest.mark.postgres
def test_two_instances_sharing_postgresql_show_each_others_calls_live(shared_store, stranger, tmp_path):
    first = ConsoleServer(tmp_path / "first", console={"database_url": shared_store}).start()
    # One token for the deployment: a session of one instance is good on the other.
    second = ConsoleServer(tmp_path / "second", console={"database_url": shared_store}, token=first.token)
    try:
        second.start()
        login(stranger, first)
        wait_for(lambda: find(stranger, "#stream-state").text.strip().lower() == "live", what="#stream-state 'live'")
        caller = caller_number()
        sent = second.v2_call(caller)                   # answered by the other instance
        assert all(s.status == 200 for s in sent)
        wait_for(lambda: _row_with_caller(stranger, "#latest-callbacks", caller), timeout=3.0,
                 what="the other instance's call in the live view")
        stranger.get(second.url("/stats"))             # the same cookie opens the other instance's console
        assert find(stranger, "#chart") is not None
        open_call(stranger, first, v2_key(sent))
        entries = stranger.find_elements(By.CSS_SELECTOR, "#timeline .timeline-entry")
        assert [e.get_attribute("data-event") for e in entries] == [s.event for s in sent]
    finally:
        second.stop()
        first.stop()


def test_the_pages_load_nothing_from_elsewhere(console, browser):
    """No CDN: every script, stylesheet and request a page makes stays on the console's own origin."""
    sent = console.v1_call(caller_number())
    wait_recorded(console, sent[0].body["callid"], len(sent))
    origin = console.process.ops_url
    for path in ("/login", "/", "/calls/" + urllib.parse.quote(v1_key(sent), safe=""), "/search?decision=allowed",
                 "/stats"):
        browser.get(console.url(path))
        wait_for(lambda: browser.execute_script("return document.readyState") == "complete", what=f"{path} loaded")
        loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        linked = browser.execute_script(
            "return [...document.querySelectorAll('script[src], link[href], img[src]')].map(e => e.src || e.href)")
        assert loaded, f"{path} uses the console's own assets"
        for url in loaded + linked:
            assert url.startswith(origin + "/console/"), (path, url)
