"""A local stand-in for a CRM, for the full-stack benchmark: answers 200 to every POST.

crm_export's webhook sink delivers each ended call's record here.  The receiver
counts what it got (``GET /count`` -> ``{"posts": N, "records": M}``, M being distinct
Idempotency-Keys) so that ``bench/run.py`` can say whether the records arrived.  It
does not check the HMAC signature: it is a load sink, not a test.

    python bench/crm_receiver.py --port 8082
"""

from __future__ import annotations

import argparse

from aiohttp import web

POSTS = web.AppKey("posts", list)
KEYS = web.AppKey("keys", set)


async def receive(request: web.Request) -> web.Response:
    await request.read()
    request.app[POSTS][0] += 1
    request.app[KEYS].add(request.headers.get("Idempotency-Key", ""))
    return web.json_response({"ok": True})


async def count(request: web.Request) -> web.Response:
    return web.json_response({"posts": request.app[POSTS][0], "records": len(request.app[KEYS])})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app[POSTS] = [0]
    app[KEYS] = set()
    app.router.add_get("/count", count)
    app.router.add_post("/{tail:.*}", receive)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
