"""The benchmark's reference server: the least a Sinch callback server must do, on bare aiohttp.

For every POST to the v1 callback path it checks the ``Application`` signature, and for every
POST to the v2 webhook path the ``service`` signature: the same signed string, key, secret and
timestamp window as callgate, checked by :class:`SignatureCheck`, this file's own plain
implementation (``hashlib``, ``hmac``, ``base64``, ``datetime.fromisoformat``), not callgate's
``Verifier``: the reference is "plain aiohttp + the same signature check + a fixed answer"
(issue 17), and a change to callgate's verifier must not move the yardstick it is measured
with.  Then it parses the body with ``json.loads``, dispatches on ``event`` and sends a fixed
JSON answer.  Nothing else: no logging, no plugins, no validation of the event beyond
``event``.  It is the "100 %" that callgate's throughput is compared to.

``--uvloop`` runs the same handlers on uvloop's event loop and parses with ``orjson.loads``
(the answers are fixed bytes either way): the fastest this shape of server gets in Python.

    SINCH_APPLICATION_KEY=... SINCH_APPLICATION_SECRET=... SINCH_SERVICE_ID=... SINCH_SERVICE_SECRET=... \\
        python bench/reference_server.py --port 8081 [--path /sinch/callback] [--webhook-path /sinch/webhook]
                                         [--window 600] [--uvloop]

``bench/run.py`` starts it (pinned to one core) and stops it with SIGTERM.  ``--answers FILE``
writes :data:`ANSWERS` as JSON and exits: the Express reference (``bench/express/server.js``)
reads that file, so all references answer the same bytes.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

JSON = "application/json"
#: The answers per generation and event, serialised once, byte for byte what callgate answers in the
#: benchmark's router-only configuration (bench/run.py checks it before measuring).
ANSWERS: dict[str, dict[str, bytes]] = {
    "v1": {
        "ice": b'{"action":{"name":"connectPstn","number":"+46850001234","maxDuration":3600,"cli":"+46850001234"}}',
        "ace": b'{"action":{"name":"continue"}}',
        "pie": b'{"action":{"name":"continue"}}',
        "dice": b"{}",
    },
    "v2": {
        "call.incoming": b'{"commands":[{"command":"bridgeCall","bridgeName":"callgate"},{"command":"dial",'
                         b'"to":{"type":"PHONE","phone":{"number":"+46850001234"}},'
                         b'"from":{"type":"PHONE","phone":{"number":"+46850001234"}},'
                         b'"callName":"callee","maxCallDurationSeconds":3600}],"callName":"caller"}',
        "call.answered": b'{"commands":[{"command":"bridgeCall","bridgeName":"callgate"}]}',
        "call.menu": b'{"commands":[]}',
        "call.hangup": b'{"commands":[]}',
    },
}
#: The answer to any other event of each generation.
OTHER = {"v1": b"{}", "v2": b'{"commands":[]}'}

Handler = Callable[[web.Request], Awaitable[web.Response]]


class SignatureCheck:
    """Sinch's signed-request check (v1 ``Application``, v2 ``service``) for one key and secret, written plainly::

        Authorization  = <scheme> " " <key> ":" Base64(HMAC-SHA256(Base64Decode(secret), string_to_sign))
        string_to_sign = "POST\n" + Base64(MD5(body)) + "\n" + Content-Type + "\n"
                         + "x-timestamp:" + x-timestamp + "\n" + path

    and ``x-timestamp`` within ``window`` seconds of now.  Calling it returns None when the request is
    correctly signed, else the reason (callgate's reason codes).
    """

    def __init__(self, scheme: str, key: str, secret_b64: str, path: str, window: float) -> None:
        self.scheme = scheme.lower()
        self.key = key
        self.secret = base64.b64decode(secret_b64)
        self.path = path
        self.window = window

    def __call__(self, headers: Mapping[str, str], body: bytes) -> str | None:
        authorization = headers.get("Authorization")
        if not authorization:
            return "missing_authorization"
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != self.scheme:
            return "unsupported_scheme"
        key, _, given = credentials.partition(":")
        if key != self.key:
            return "unknown_key"
        x_timestamp = headers.get("x-timestamp")
        if x_timestamp is None:
            return "missing_timestamp"
        content_md5 = base64.b64encode(hashlib.md5(body).digest()).decode() if body else ""
        string_to_sign = f"POST\n{content_md5}\n{headers.get('Content-Type', '')}\nx-timestamp:{x_timestamp}\n{self.path}"
        expected = base64.b64encode(hmac.new(self.secret, string_to_sign.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, given.encode()):
            return "bad_signature"
        try:
            signed_at = datetime.fromisoformat(x_timestamp)
        except ValueError:
            return "invalid_timestamp"
        if signed_at.tzinfo is None:
            signed_at = signed_at.replace(tzinfo=timezone.utc)
        if abs(time.time() - signed_at.timestamp()) > self.window:
            return "stale_timestamp"
        return None


def make_handler(check: SignatureCheck, generation: str, loads: Callable[[bytes], Any]) -> Handler:
    """The handler of one path: signature check, parse, fixed answer by ``event``."""
    answers, other = ANSWERS[generation], OTHER[generation]

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        refused = check(request.headers, body)
        if refused is not None:
            return web.Response(status=401, body=json.dumps({"error": "signature", "reason": refused}),
                                content_type=JSON)
        try:
            event = loads(body).get("event")
        except (ValueError, AttributeError):
            return web.Response(status=400, body=b'{"error": "invalid_json"}', content_type=JSON)
        return web.Response(body=answers.get(event, other), content_type=JSON)
    return handle


def write_answers(path: str) -> None:
    """ANSWERS and OTHER as JSON text (``{"v1": {"ice": "..."}, ..., "other": {...}}``) for the Express reference."""
    data: dict[str, dict[str, str]] = {g: {e: a.decode() for e, a in by_event.items()} for g, by_event in ANSWERS.items()}
    data["other"] = {g: a.decode() for g, a in OTHER.items()}
    with open(path, "w", encoding="utf-8") as out:
        json.dump(data, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--path", default="/sinch/callback", help="the v1 callback path")
    parser.add_argument("--webhook-path", default="/sinch/webhook", help="the v2 webhook path")
    parser.add_argument("--window", type=float, default=600, help="x-timestamp window in seconds (callgate's default)")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop and parse with orjson")
    parser.add_argument("--answers", metavar="FILE", help="write the fixed answers as JSON to FILE and exit")
    args = parser.parse_args()
    if args.answers:
        write_answers(args.answers)
        return
    if args.port is None:
        parser.error("--port is required")
    loads: Callable[[bytes], Any] = json.loads
    loop_factory = None
    if args.uvloop:
        import orjson
        import uvloop
        loads, loop_factory = orjson.loads, uvloop.new_event_loop
    v1 = SignatureCheck("Application", os.environ["SINCH_APPLICATION_KEY"], os.environ["SINCH_APPLICATION_SECRET"],
                        args.path, args.window)
    v2 = SignatureCheck("service", os.environ["SINCH_SERVICE_ID"], os.environ["SINCH_SERVICE_SECRET"],
                        args.webhook_path, args.window)
    app = web.Application()
    app.router.add_post(args.path, make_handler(v1, "v1", loads))
    app.router.add_post(args.webhook_path, make_handler(v2, "v2", loads))
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None, loop=loop_factory and loop_factory())


if __name__ == "__main__":
    main()
