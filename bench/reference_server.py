"""The benchmark's reference server: the least a Sinch callback server must do, on bare aiohttp.

For every POST to the callback path it checks the signature exactly as callgate does
(``callgate.protocols.v1.signing.Verifier``: same application key and secret, same timestamp
window), parses the body with ``json.loads``, dispatches on ``event`` and sends a
fixed JSON answer.  Nothing else: no logging, no plugins, no validation of the
event beyond ``event``.  It is the "100 %" that callgate's throughput is compared to.

    SINCH_APPLICATION_KEY=... SINCH_APPLICATION_SECRET=... \\
        python bench/reference_server.py --port 8081 [--path /sinch/callback] [--window 600]

``bench/run.py`` starts it (pinned to one core) and stops it with SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os

from aiohttp import web

from callgate.protocols.v1.signing import SignatureError, Verifier

JSON = "application/json"
#: The answers, serialised once, byte for byte what callgate answers in the router-only configuration.
ANSWERS = {
    "ice": b'{"action":{"name":"connectPstn","number":"+46850001234","maxDuration":3600,"cli":"+46850001234"}}',
    "ace": b'{"action":{"name":"continue"}}',
    "pie": b'{"action":{"name":"continue"}}',
    "dice": b"{}",
}
EMPTY = b"{}"


def make_handler(verifier: Verifier, path: str):
    async def callback(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verifier.verify("POST", path, request.headers, body)
        except SignatureError as exc:
            return web.Response(status=401, body=json.dumps({"error": "signature", "reason": exc.reason}),
                                content_type=JSON)
        try:
            event = json.loads(body).get("event")
        except (ValueError, AttributeError):
            return web.Response(status=400, body=b'{"error": "invalid_json"}', content_type=JSON)
        return web.Response(body=ANSWERS.get(event, EMPTY), content_type=JSON)
    return callback


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/sinch/callback")
    parser.add_argument("--window", type=float, default=600, help="x-timestamp window in seconds (callgate's default)")
    args = parser.parse_args()
    verifier = Verifier({os.environ["SINCH_APPLICATION_KEY"]: [os.environ["SINCH_APPLICATION_SECRET"]]},
                        window_seconds=args.window)
    app = web.Application()
    app.router.add_post(args.path, make_handler(verifier, args.path))
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
