"""The benchmark's reference server: the least a Sinch callback server must do, on bare aiohttp.

For every POST to the v1 callback path it checks the ``Application`` signature exactly as
callgate does (``callgate.protocols.v1.signing.Verifier``: same application key and secret,
same timestamp window), and for every POST to the v2 webhook path the ``service`` signature
(``callgate.protocols.v2.signing.ServiceVerifier``, same service id and secret); then it parses
the body with ``json.loads``, dispatches on ``event`` and sends a fixed JSON answer.  Nothing
else: no logging, no plugins, no validation of the event beyond ``event``.  It is the "100 %"
that callgate's throughput is compared to.

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
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from callgate.protocols.signing_common import SchemeVerifier, SignatureError
from callgate.protocols.v1.signing import Verifier
from callgate.protocols.v2.signing import ServiceVerifier

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


def make_handler(verifier: SchemeVerifier, path: str, generation: str, loads: Callable[[bytes], Any]) -> Handler:
    """The handler of one path: signature check, parse, fixed answer by ``event``."""
    answers, other = ANSWERS[generation], OTHER[generation]

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verifier.verify("POST", path, request.headers, body)
        except SignatureError as exc:
            return web.Response(status=401, body=json.dumps({"error": "signature", "reason": exc.reason}),
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
    v1 = Verifier({os.environ["SINCH_APPLICATION_KEY"]: [os.environ["SINCH_APPLICATION_SECRET"]]},
                  window_seconds=args.window)
    v2 = ServiceVerifier({os.environ["SINCH_SERVICE_ID"]: [os.environ["SINCH_SERVICE_SECRET"]]},
                         window_seconds=args.window)
    app = web.Application()
    app.router.add_post(args.path, make_handler(v1, args.path, "v1", loads))
    app.router.add_post(args.webhook_path, make_handler(v2, args.webhook_path, "v2", loads))
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None, loop=loop_factory and loop_factory())


if __name__ == "__main__":
    main()
