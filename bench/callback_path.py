"""callgate's per-callback path in-process: microseconds, a cProfile breakdown, or instructions per callback.

Builds the app of ``bench/run.py``'s router-only configuration (the built-in router and caller_id,
JSON log lines at level info, written to /dev/null) and calls its handler on real aiohttp
``Request`` objects carrying the benchmark's signed bodies (``bench/run.py``'s rotation: 70 %
incoming, 10 % each answered, menu, end), one after the other on one event loop.  Everything
callgate does per callback is in it (signature check, decoding, pipeline, log line, metrics,
the answer's ``Response``) except aiohttp's HTTP parsing and writing, which is the reference
server's too.  Each request is built before it is measured (its body already read into its stream).

    .venv/bin/python bench/callback_path.py [--generation v1|v2] [--count 2000] [--rounds 5]   # us per callback
    .venv/bin/python bench/callback_path.py --profile [--generation v2]     # cProfile: top functions by own time
    .venv/bin/python bench/callback_path.py --callgrind [--generation v2]   # instructions per callback (valgrind)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import gc
import itertools
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import run as bench  # bench/run.py
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from callgate.app import create_app
from callgate.config import load_config
from callgate.handlers import callback, webhook
from callgate.logs import configure_logging

SECRET = base64.b64encode(b"bench-secret-0123456789abcdefghij").decode()
SIGNER = bench.Signer(bench.samples.APPLICATION_KEY, SECRET, bench.v2_samples.SERVICE_ID, SECRET)


def build_app(tmp: Path) -> web.Application:
    config_file = tmp / "router.toml"
    config_file.write_text(bench.SERVER_TOML + '\n[plugins]\nenabled = []\n\n' + bench.ROUTER_TOML)
    os.environ.update({"SINCH_APPLICATION_KEY": SIGNER.key, "SINCH_APPLICATION_SECRET": SIGNER.secret,
                       "SINCH_SERVICE_ID": SIGNER.service_id, "SINCH_SERVICE_SECRET": SIGNER.service_secret})
    config = load_config(str(config_file))
    sys.stdout = open(os.devnull, "w")   # the log lines, as callgate serve writes them, to nowhere
    configure_logging(config.server.log_format, config.server.log_level)
    return create_app(config)


class _Protocol:
    """The connection, as a request's body stream sees it: it only pauses and resumes reading (a no-op here;
    make_mocked_request's Mock would add its own cost to every callback)."""

    transport = None

    def pause_reading(self, **kwargs: object) -> None:
        pass

    def resume_reading(self, **kwargs: object) -> None:
        pass


def requests(app: web.Application, gen: bench.Generation, signed: list[tuple[bytes, dict[str, str]]]) -> list[web.Request]:
    """One aiohttp Request per signed body, its body already in its stream (as when it came with the headers)."""
    built = []
    protocol = _Protocol()
    for body, headers in signed:
        stream = StreamReader(protocol, 2 ** 16, loop=asyncio.get_running_loop())
        stream.feed_data(body)
        stream.feed_eof()
        built.append(make_mocked_request("POST", gen.path, CIMultiDict({
            "Host": "127.0.0.1:8080", "User-Agent": "wrk", "Content-Length": str(len(body)), **headers}),
            app=app, payload=stream))
    return built


async def run(gen_name: str, count: int, rounds: int, mode: str) -> None:
    gen = bench.GENERATIONS[gen_name]
    handler = callback if gen_name == "v1" else webhook
    with tempfile.TemporaryDirectory() as tmp:
        app = build_app(Path(tmp))
        runner = web.AppRunner(app)
        await runner.setup()            # the plugins' startup
        try:
            signed = bench.signed_requests(SIGNER, gen, count)
            for request in requests(app, gen, signed[:200]):     # warm the caches (routes, answers)
                response = await handler(request)
                assert response.status == 200, response.status
            if mode == "callgrind-loop":
                # Counted: only what runs inside itertools.starmap's iteration (--toggle-collect=starmap_next),
                # each handler's coroutine run to its end without suspending (nothing on this path waits).
                batch = requests(app, gen, signed)
                gc.freeze()
                list(itertools.starmap(_run_through, ((handler(request),) for request in batch)))
                return
            best = float("inf")
            profiler = cProfile.Profile() if mode == "profile" else None
            for _ in range(rounds):
                batch = requests(app, gen, signed)
                gc.freeze()
                if profiler:
                    profiler.enable()
                started = time.perf_counter()
                for request in batch:
                    await handler(request)
                best = min(best, time.perf_counter() - started)
                if profiler:
                    profiler.disable()
            print(f"{gen_name}: {best / count * 1e6:.2f} us per callback (best of {rounds} x {count})", file=sys.__stdout__)
            if profiler:
                stats = pstats.Stats(profiler, stream=sys.__stdout__)
                stats.sort_stats(os.environ.get("SORT", "tottime")).print_stats(int(os.environ.get("TOP", "35")))
                print("\n".join(breakdown(stats)), file=sys.__stdout__)
        finally:
            await runner.cleanup()


def _run_through(coroutine: Coroutine[Any, Any, web.StreamResponse]) -> web.StreamResponse:
    """A handler's coroutine run to its end in one step; RuntimeError if it waited for something."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        response: web.StreamResponse = done.value
        return response
    coroutine.close()
    raise RuntimeError("the handler waited for something: it cannot be counted in one step")


#: The parts of a callback, as (file name ending, function name) whose cumulative time they are.
PARTS = {
    "signature check": [("protocols/signing_common.py", "verify_timed")],
    "body read (aiohttp)": [("aiohttp/web_request.py", "read")],
    "decoding": [("core/endpoints.py", "decode_callback"), ("core/endpoints.py", "decode_webhook")],
    "pipeline (plugins, combine, render)": [("core/pipeline.py", "answer")],
    "log line (fields, trace, write)": [("core/logs.py", "info"), ("core/pipeline.py", "trace"),
                                        ("core/pipeline.py", "summary")],
    "metrics": [("core/metrics.py", "answered")],
    "the Response object (aiohttp)": [("aiohttp/web_response.py", "__init__")],
}


def breakdown(stats: pstats.Stats) -> list[str]:
    """The share of each part in the handlers' cumulative time (``_serve``); the rest is the handler's own work."""
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    cumulative: dict[tuple[str, str], float] = {}
    for (filename, _line, function), (_cc, _nc, _tt, ct, _callers) in raw.items():
        key = (filename.replace("\\", "/"), function)
        cumulative[key] = max(cumulative.get(key, 0.0), ct)     # Response.__init__ over StreamResponse's

    def total(ending: str, function: str) -> float:
        return sum(ct for (filename, name), ct in cumulative.items() if name == function and filename.endswith(ending))

    whole = total("core/handlers.py", "_serve")
    lines = [f"breakdown of the handler's time (cProfile, cumulative; whole = _serve, {whole:.3f} s):"]
    rest = whole
    for part, functions in PARTS.items():
        spent = sum(total(ending, function) for ending, function in functions)
        rest -= spent
        lines.append(f"   {part:38} {spent / whole:6.1%}")
    lines.append(f"   {'the handler itself (checks, context, ...)':38} {rest / whole:6.1%}")
    return lines


def callgrind(gen_name: str, count: int, out_dir: str | None) -> None:
    """Instructions per callback: ``count`` callbacks under callgrind, counting only the handlers' own run (not
    building the requests, not the log lines' write, which happens once per event-loop iteration)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(out_dir or tmp) / f"callgrind.callback_path.{gen_name}"
        subprocess.run(["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=starmap_next",
                        f"--callgrind-out-file={out}", sys.executable, __file__, "--generation", gen_name,
                        "--count", str(count), "--loop"], check=True, capture_output=True)
        total = next(int(line.split()[1]) for line in out.read_text(errors="replace").splitlines()
                     if line.startswith(("summary:", "totals:")))
    print(f"{gen_name}: {total / count:,.0f} instructions per callback (callgrind, {count} callbacks)"
          + (f"; profile in {out} (callgrind_annotate)" if out_dir else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--generation", choices=tuple(bench.GENERATIONS), default="v1")
    parser.add_argument("--count", type=int, default=2000, help="callbacks per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (the best is shown)")
    parser.add_argument("--profile", action="store_true", help="cProfile the rounds: top functions by own time")
    parser.add_argument("--callgrind", action="store_true", help="instructions per callback (needs valgrind)")
    parser.add_argument("--keep", metavar="DIR", help="with --callgrind: keep callgrind's output in DIR")
    parser.add_argument("--loop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.callgrind:
        callgrind(args.generation, args.count, args.keep)
        return
    mode = "callgrind-loop" if args.loop else "profile" if args.profile else "time"
    asyncio.run(run(args.generation, args.count, args.rounds, mode))


if __name__ == "__main__":
    main()
