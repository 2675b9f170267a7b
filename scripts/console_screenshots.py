#!/usr/bin/env python3
"""Take the screenshots of the operator console in docs/console/*.png (docs/console.md shows them).

    python3 scripts/dev.py lint                            # once: sets up ./.venv with the test tools
    python3 scripts/console_screenshots.py [--out docs/console] [--minutes 3]

Starts a real ``callgate serve`` with the console enabled (the harness of the browser tests,
plugins/console/tests/console_browser.py), sends it signed calls of both generations (allowed, denied, a
broken request, calls still in progress), spread over ``--minutes`` minutes so the chart has some history,
then opens each page in headless Chromium and saves it: login, live, call, search, stats.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
if Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve() and VENV_PYTHON.exists():
    os.execv(VENV_PYTHON, [str(VENV_PYTHON), *sys.argv])      # run where callgate and selenium are installed
sys.path.insert(0, str(ROOT / "plugins" / "console" / "tests"))

from console_browser import (  # noqa: E402  (after the harness's folder is on the path)
    DENIED_PREFIX,
    ConsoleServer,
    chromium,
    find,
    login,
    missing_browser,
    screenshot,
    wait_for,
)
from selenium.webdriver.common.by import By  # noqa: E402

from callgate import samples  # noqa: E402

CALLERS = ["+46701234567", "+46709876543", "+46731112233", "+4915112345678", "+12025550143", "+33612345678"]
CALLEES = ["+46850001234", "+46850001235"]


def send_traffic(server: ConsoleServer, minutes: int) -> str:
    """Calls of both generations, some denied, one broken; the key of a complete v2 call to show."""
    shown = ""
    for minute in range(minutes + 1):
        for i, caller in enumerate(CALLERS[: 3 + minute % 3]):
            to = CALLEES[i % 2]
            calls = server.v2_call(caller, to) if (i + minute) % 2 else server.v1_call(caller, to)
            if calls[0].generation == "v2" and len(calls) == 4:
                shown = "v2:" + calls[0].body["call"]["callId"]
        server.v1_call(f"{DENIED_PREFIX}00{minute}1234", CALLEES[0])
        if minute % 2 == 0:
            server.v2_call(f"{DENIED_PREFIX}01{minute}5678", CALLEES[1])
        server.callback({"event": "ice", "callid": samples.new_callid(), "timestamp": samples.now(), "version": 1,
                         "to": "+46850001234"})   # a broken ICE (`to` is not an object): answered 400
        if minute < minutes:
            print(f"sent minute {minute + 1} of {minutes + 1}; waiting for the next", flush=True)
            time.sleep(60)
    # Calls still in progress when the pictures are taken.
    server.v2_call("+46702223344", CALLEES[0], end=False)
    server.v1_call("+46705556677", CALLEES[1], end=False)
    return shown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    parser.add_argument("--minutes", type=int, default=3, help="spread the calls over this many minutes (chart)")
    args = parser.parse_args()
    reason = missing_browser()
    if reason:
        sys.exit(reason)
    with tempfile.TemporaryDirectory() as folder:
        server = ConsoleServer(Path(folder)).start()
        driver = chromium()
        try:
            shown = send_traffic(server, args.minutes)
            time.sleep(1)                                   # the recorder writes in batches

            driver.get(server.url("/login"))
            wait_for(lambda: find(driver, "form#login"), what="the login form")
            screenshot(driver, args.out / "login.png")

            login(driver, server)
            wait_for(lambda: find(driver, "#stream-state").text.strip().lower() == "live", what="the stream")
            server.v2_call("+46708889900", CALLEES[1], end=False)      # arrives through the stream
            wait_for(lambda: "+46708889900" in find(driver, "#latest-callbacks").text, what="the streamed call")
            screenshot(driver, args.out / "live.png")

            driver.get(server.url("/calls/" + urllib.parse.quote(shown, safe="")))
            wait_for(lambda: find(driver, "#timeline"), what="the call page")
            screenshot(driver, args.out / "call.png")

            driver.get(server.url("/search?" + urllib.parse.urlencode({"decision": "denied"})))
            wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#results tr[data-call-key]"), what="results")
            screenshot(driver, args.out / "search.png")

            driver.get(server.url("/stats"))
            wait_for(lambda: find(driver, "#chart"), what="the chart")
            screenshot(driver, args.out / "stats.png")
        finally:
            driver.quit()
            server.stop()
    for name in ("login", "live", "call", "search", "stats"):
        print(args.out / f"{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
