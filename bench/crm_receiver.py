"""A local stand-in for a CRM, for the benchmarks: answers 200 to every POST.

crm_export's webhook sink delivers each ended call's record here.  The receiver
counts what it got (``GET /count`` -> ``{"posts": N, "records": M}``, M being distinct
Idempotency-Keys) so that ``bench/run.py`` can say whether the records arrived, and keeps
the newest version of each call's record (``GET /records`` -> ``{callid: {"posts": P,
"versions": [1, 2, ...], "record": {...}}}``) so that ``bench/callflow.py`` can check that
every ended call arrived, once, with the right cost.  It does not check the HMAC signature:
it is a load sink, not a test.

    python bench/crm_receiver.py --port 8082
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web

POSTS = web.AppKey("posts", list)
KEYS = web.AppKey("keys", set)
CALLS = web.AppKey("calls", dict)


async def receive(request: web.Request) -> web.Response:
    body = await request.read()
    request.app[POSTS][0] += 1
    request.app[KEYS].add(request.headers.get("Idempotency-Key", ""))
    try:
        record = json.loads(body)
        callid, version = record["callid"], int(record["version"])
    except (ValueError, KeyError, TypeError):
        return web.json_response({"ok": True})
    call = request.app[CALLS].setdefault(callid, {"posts": 0, "versions": [], "record": None})
    call["posts"] += 1
    if version not in call["versions"]:
        call["versions"].append(version)
    if call["record"] is None or version >= call["record"]["version"]:
        call["record"] = record
    return web.json_response({"ok": True})


async def count(request: web.Request) -> web.Response:
    return web.json_response({"posts": request.app[POSTS][0], "records": len(request.app[KEYS])})


async def records(request: web.Request) -> web.Response:
    return web.json_response(request.app[CALLS])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[POSTS] = [0]
    app[KEYS] = set()
    app[CALLS] = {}
    app.router.add_get("/count", count)
    app.router.add_get("/records", records)
    app.router.add_post("/{tail:.*}", receive)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
