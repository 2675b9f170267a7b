"""The console's browser harness: a real ``callgate serve`` with the console enabled, signed callbacks sent
to it over real HTTP, and headless Chromium (Debian's, through its own ChromeDriver) to look at the pages.

Used by test_console_browser.py and by scripts/console_screenshots.py (so the screenshots in docs/console/
show what the tests check).  Not a test module: nothing here asserts.

The server is started as a user starts it (the console's README): ``[plugins] enabled = [..., "console"]``,
``[server] ops_port``, the token in ``CALLGATE_CONSOLE_TOKEN``, the Sinch application and service secrets in
the environment (``callgate.testing.ServerProcess`` gives it the test ones).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from callgate import samples, v2_samples
from callgate.protocols.v1 import signing
from callgate.testing import (
    CALLBACK_PATH,
    TEST_APPLICATION_KEY,
    TEST_APPLICATION_SECRET,
    WEBHOOK_PATH,
    ServerProcess,
    free_port,
    webhook_headers,
)

#: Debian's packages (``apt-get install chromium chromium-driver``; .ci/run installs them): the driver is
#: given explicitly, so Selenium Manager never looks for (or downloads) another one.
CHROMIUM = os.environ.get("CALLGATE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CALLGATE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
TOKEN_ENV = "CALLGATE_CONSOLE_TOKEN"
COOKIE = "callgate_console"
#: Denied by the allowlist in :func:`console_config` (callers whose number starts so).
DENIED_PREFIX = "+4479"
#: The spoken prompt of a denial (so the tests can tell the denial's SVAML).
DENY_PROMPT = "Calls from this number are not accepted."

T = TypeVar("T")


def missing_browser() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    for path, package, variable in ((CHROMIUM, "chromium", "CALLGATE_TEST_CHROMIUM"),
                                    (CHROMEDRIVER, "chromium-driver", "CALLGATE_TEST_CHROMEDRIVER")):
        if not shutil.which(path):
            return f"{path} is missing: apt-get install {package} (.ci/run does), or set {variable} to another one"
    return None


def console_config(folder: Path, ops_port: int, *, console: Mapping[str, Any] | None = None) -> str:
    """config.toml text: the allowlist (callers ``+4479*`` denied, everyone else allowed), a catch-all route,
    and the console on ``ops_port`` with its SQLite store in ``folder`` (plus any ``[plugins.console]`` keys)."""
    console_keys = {"database_url": f"sqlite:///{folder / 'console.db'}", **(console or {})}
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in console_keys.items())
    return f"""
[server]
log_format = "json"
ops_port = {ops_port}

[plugins]
enabled = ["allowlist", "console"]

[plugins.allowlist]
default = "allow"
prompt = "{DENY_PROMPT}"

[[plugins.allowlist.rules]]
action = "deny"
caller = "{DENIED_PREFIX}*"

[[plugins.router.routes]]
name = "everything"
action = {{ name = "connectPstn", number = "{{to}}" }}

[plugins.console]
{lines}
"""


@dataclass
class Sent:
    """One signed request sent to the server and what it answered: the body exactly as sent, the status and
    the decoded answer the HTTP client received, and when."""

    generation: str
    event: str
    body: dict[str, Any]
    status: int
    answer: Any
    answered_at: float


class ConsoleServer:
    """A real ``callgate serve`` with the console enabled, and the signed senders of both generations."""

    def __init__(self, folder: Path, *, console: Mapping[str, Any] | None = None, token: str | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.token = token or secrets.token_urlsafe(24)
        self.ops_port = free_port()
        config = folder / "config.toml"
        config.write_text(console_config(folder, self.ops_port, console=console))
        self.process = ServerProcess(config, env={TOKEN_ENV: self.token}, ops_port=self.ops_port)

    def start(self) -> ConsoleServer:
        self.process.start()
        return self

    def stop(self) -> None:
        self.process.stop()

    @property
    def console_url(self) -> str:
        """The console's root, on the ops port."""
        return f"{self.process.ops_url}/console"

    def url(self, path: str) -> str:
        """``url("/calls/v2:...")`` -> the console URL of that page."""
        return self.console_url + path

    # --- sending, as Sinch does ------------------------------------------------------------------------------

    def callback(self, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Sent:
        """A v1 callback signed by the test application; ``headers`` are sent beside the signature."""
        raw = json.dumps(body).encode()
        signed = signing.signed_headers(TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, CALLBACK_PATH, raw)
        status, answer = self.process.post(CALLBACK_PATH, raw, {**signed, **(headers or {})})
        return Sent("v1", body["event"], body, status, answer, time.time())

    def webhook(self, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Sent:
        """A v2 webhook signed by the test service; ``headers`` are sent beside the signature."""
        raw = json.dumps(body).encode()
        status, answer = self.process.post(WEBHOOK_PATH, raw, {**webhook_headers(raw), **(headers or {})})
        return Sent("v2", body["event"], body, status, answer, time.time())

    def v1_call(self, caller: str, to: str = "+46850001234", *, end: bool = True) -> list[Sent]:
        """A v1 call: ICE, then (when allowed) ACE, PIE, and DICE unless ``end`` is false."""
        ice = self.callback(samples.ice(caller=caller.lstrip("+"), to=to))
        callid = ice.body["callid"]
        sent = [ice]
        if end and ice.answer["action"]["name"] != "hangup":
            sent.append(self.callback(samples.ace(callid=callid)))
            sent.append(self.callback(samples.pie(callid=callid, value="2")))
        if end:
            sent.append(self.callback(samples.dice(callid=callid, caller=caller.lstrip("+"), to=to, duration=42)))
        return sent

    def v2_call(self, caller: str, to: str = "+46850001234", *, end: bool = True) -> list[Sent]:
        """A v2 call: ``call.incoming``, then (when allowed) ``call.answered`` and ``call.menu``, and
        ``call.hangup`` unless ``end`` is false; one ``callId`` throughout."""
        incoming = self.webhook(v2_samples.incoming(caller=caller, to=to))
        callid = incoming.body["call"]["callId"]
        session = incoming.body["call"]["sessionId"]
        sent = [incoming]
        bridged = any(command.get("command") == "bridgeCall" for command in incoming.answer.get("commands", []))
        if end and bridged:
            sent.append(self.webhook(v2_samples.answered(callid, caller=caller, to=to, session=session)))
            sent.append(self.webhook(v2_samples.menu(callid, caller=caller, to=to, session=session, input="3#")))
        if end:
            sent.append(self.webhook(v2_samples.hangup(callid, caller=caller, to=to, session=session, duration=42)))
        return sent

    # --- reading the console without a browser ----------------------------------------------------------------

    def get(self, path: str, *, token: str | None = None, cookie: str | None = None,
            headers: Mapping[str, str] | None = None, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
        """GET a console URL over HTTP; ``(status, headers, body)``.  For the stream, only its first bytes."""
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        if cookie is not None:
            all_headers["Cookie"] = f"{COOKIE}={cookie}"
        return http("GET", self.url(path), headers=all_headers, timeout=timeout)

    def api(self, path: str) -> Any:
        """The JSON of ``/console/api...`` read with the token."""
        status, _, body = self.get("/api" + path, token=self.token)
        if status != 200:
            raise AssertionError(f"/console/api{path} answered {status}: {body[:300]!r}")
        return json.loads(body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def http(method: str, url: str, *, data: bytes | None = None, headers: Mapping[str, str] | None = None,
         timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request, redirects not followed; ``(status, headers, body)`` (the first 64 KiB of it, so a
    stream that never ends is read as far as it has come)."""
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}), method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), _read_some(response)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def _read_some(response: Any) -> bytes:
    if response.headers.get("Content-Type", "").startswith("text/event-stream"):
        return response.read1(65536)
    return response.read()


# --- the browser ----------------------------------------------------------------------------------------------

#: Runs before every page's own scripts: records alert/confirm/prompt calls instead of showing them, so a test
#: can tell that nothing tried to run (an open alert would also block the driver).
_WATCH_DIALOGS = """
window.__dialogs = [];
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = (message) => { window.__dialogs.push(name + ":" + message); return null; };
}
"""


def chromium(width: int = 1280, height: int = 900) -> WebDriver:
    """Headless Chromium driven through Debian's ChromeDriver, at a fixed window size."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", f"--window-size={width},{height}", "--disable-dev-shm-usage",
                     "--disable-gpu", "--lang=en-US", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")   # Chromium refuses to start its sandbox as root (CI runs as root)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _WATCH_DIALOGS})
    return driver


def login(driver: WebDriver, server: ConsoleServer, token: str | None = None) -> None:
    """Log in through the login form, as an operator does; returns once the live view is shown (with another
    ``token``: as soon as the form is sent)."""
    driver.get(server.url("/login"))
    field_ = driver.find_element(By.CSS_SELECTOR, "form#login input[name=token]")
    field_.clear()
    field_.send_keys(token if token is not None else server.token)
    driver.find_element(By.CSS_SELECTOR, "button#login-submit").click()
    if token is None or token == server.token:
        wait_for(lambda: driver.current_url.rstrip("/") == server.console_url and find(driver, "#latest-callbacks"),
                 what="the live view after login")


def wait_for(check: Callable[[], T | None], *, timeout: float = 10.0, interval: float = 0.05,
             what: str = "the condition") -> T:
    """Call ``check`` until it returns something true (returned); a vanished element counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (NoSuchElementException, StaleElementReferenceException):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout} s")
        time.sleep(interval)


def find(driver: WebDriver | WebElement, css: str) -> WebElement | None:
    """The first element matching ``css``, or None."""
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0] if found else None


def texts(driver: WebDriver | WebElement, css: str) -> list[str]:
    """The visible text of every element matching ``css``."""
    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, css)]


def dialogs(driver: WebDriver) -> list[str]:
    """alert/confirm/prompt calls the page made since it loaded."""
    return list(driver.execute_script("return window.__dialogs || []"))


def screenshot(driver: WebDriver, path: Path, *, width: int = 1280, max_height: int = 2400) -> None:
    """A PNG of the whole page (up to ``max_height`` pixels tall) at ``width``: the viewport is set to the
    page's size (a window's size includes the browser's frame, a viewport's does not)."""
    def viewport(height: int) -> None:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    viewport(600)                 # measured from a short viewport: a page is never shorter than it
    height = driver.execute_script("return document.documentElement.scrollHeight")
    viewport(min(max(int(height), 600), max_height))
    time.sleep(0.2)
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
