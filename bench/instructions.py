"""Instructions per request, counted by valgrind: the benchmark's ratio without the VM's noise.

On the project's VM the same wrk run varies by 15-30 % from one minute to the next, which
hides any change smaller than that.  Instruction counts do not vary: this script runs the
reference server and ``callgate serve`` (the same configurations as ``bench/run.py``) under
``valgrind --tool=callgrind``, loads each with wrk, and divides the instructions each server
executed during the load by the requests it answered.  Both run ~50 times slower under
valgrind, so the load uses few connections and the counts include no waiting.

    .venv/bin/python bench/instructions.py [--config router|full] [--generation v1|v2] [--duration 15]
                                           [--connections 4] [--event-loop asyncio,uvloop]

It prints instructions per request for each server and their ratio (reference / callgate: the
requests/s ratio the two would have if time were proportional to instructions; cache misses
make the real ratio somewhat lower).  Needs valgrind, wrk and taskset (``apt-get install -y
valgrind wrk``).  Compare a change by running it before and after: the counts repeat to within
a fraction of a percent.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import run as bench  # bench/run.py

START_TIMEOUT_S = 300.0      # python, aiohttp and the plugins import slowly under valgrind


def callgrind_total(out_file: Path) -> int:
    """The instruction total of a callgrind dump."""
    for line in out_file.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise bench.BenchError(f"no total in {out_file}")


def count(ctx: bench.Context, gen: bench.Generation, name: str, command: Callable[[int], tuple[list[str], dict[str, str]]],
          duration: int, connections: int) -> tuple[int, int, int]:
    """(requests answered, non-2xx, instructions executed) of one server (``command(port)``: its command and
    extra environment) under load on ``gen``'s path."""
    port = bench.free_port()
    file_name = name.replace("/", "-")
    out = ctx.tmp / f"callgrind-{file_name}"
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", "--dump-instr=no"]
    argv, extra_env = command(port)
    proc = ctx.procs.start(name, [*valgrind, *argv], bench.SERVER_CPU, ctx.tmp / f"{file_name}.log",
                           {**ctx.env(), **extra_env})
    try:
        bench.wait_listening(proc, port, timeout=START_TIMEOUT_S)
        server = bench.Server(name, port, proc, "reference" if name == "reference" else "callgate")
        print(f"   {name} answers {bench.smoke_check(server, ctx.signer, gen)}", flush=True)
        data = ctx.tmp / f"requests-{file_name}.lua"
        bench.write_lua_requests(data, bench.signed_requests(ctx.signer, gen, ctx.args.requests))
        env = {**os.environ, "CALLGATE_BENCH_REQUESTS": str(data)}
        subprocess.run(bench.wrk_command(port, gen.path, 5, connections), env=env, capture_output=True,
                       check=True)                                                      # warm-up, not counted
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], capture_output=True, check=True)
        done = subprocess.run(bench.wrk_command(port, gen.path, duration, connections), env=env, capture_output=True,
                              text=True, check=True)
        time.sleep(1)                                  # the last answers and log lines
        subprocess.run(["callgrind_control", "--dump", str(proc.pid)], capture_output=True, check=True)
        dumps = sorted(ctx.tmp.glob(f"callgrind-{file_name}.*.1"))
        deadline = time.monotonic() + 30
        while not dumps and time.monotonic() < deadline:
            time.sleep(0.5)
            dumps = sorted(ctx.tmp.glob(f"callgrind-{file_name}.*.1"))
        if not dumps:
            raise bench.BenchError(f"callgrind wrote no dump for {name}")
        result = bench.parse_wrk(done.stdout)
        return result.requests, result.non_2xx, callgrind_total(dumps[0])
    finally:
        ctx.procs.stop(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=("router", "router-console", "full"), default="router")
    parser.add_argument("--generation", choices=tuple(bench.GENERATIONS), default="v1",
                        help="v1 callbacks or v2 webhooks (default v1)")
    parser.add_argument("--duration", type=int, default=15, help="seconds of counted load per server (default 15)")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections (default 4)")
    parser.add_argument("--requests", type=int, default=2000, help="distinct pre-signed requests rotated")
    parser.add_argument("--console-flush-ms", type=int, default=None,
                        help="router-console: the console's flush_interval_ms (default: the console's 100).  Under "
                             "callgrind the server answers some 40 times fewer callbacks a second than under "
                             "bench/run.py, so its batches are that much smaller; 10000 makes them about as large "
                             "(count for --duration 30 or more, so that whole flushes are counted)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir with each server's callgrind dump, for callgrind_annotate")
    parser.add_argument("--event-loop", default="",
                        help="callgate's [server] event_loop: asyncio, uvloop, or both (asyncio,uvloop), each counted "
                             "(default: callgate's default)")
    args = parser.parse_args(argv)
    args.event_loops = [v for v in args.event_loop.split(",") if v] or [None]
    if not set(args.event_loops) <= {None, "asyncio", "uvloop", "auto"}:
        parser.error("--event-loop: asyncio, uvloop, auto, or a comma-separated list of them")
    missing = [tool for tool in ("valgrind", "callgrind_control", "wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        print(f"instructions: missing {', '.join(missing)} (apt-get install -y valgrind wrk)", file=sys.stderr)
        return 2
    ctx = bench.new_context(args, "callgate-instructions-")
    tmp = ctx.tmp
    gen = bench.GENERATIONS[args.generation]
    answers = tmp / "answers.json"
    try:
        setup = bench.CONFIGURATIONS[args.config][1](ctx)
        commands: dict[str, Callable[[int], tuple[list[str], dict[str, str]]]] = {
            "reference": lambda port: bench.reference_command("plain", port, answers)}
        for loop in args.event_loops:
            config = setup.config if loop is None else bench.with_event_loop(setup.config, loop)
            commands["callgate" + (f"/{loop}" if loop else "")] = (
                lambda port, config=config: (bench.callgate_command(config, port, 1), {}))
        if setup.baseline is not None:      # router-console: the same without the console, counted too
            commands["router-only"] = lambda port: (bench.callgate_command(setup.baseline, port, 1), {})
        print(f"instructions per request, {args.config}, {gen.name}: {args.duration} s of wrk -c{args.connections} "
              f"per server under callgrind (temp dir {tmp})", flush=True)
        rows = {name: count(ctx, gen, name, command, args.duration, args.connections)
                for name, command in commands.items()}
    except (bench.BenchError, bench.Skip, subprocess.CalledProcessError) as exc:
        print(f"instructions: {exc}", file=sys.stderr)
        return 2
    finally:
        ctx.close(args.keep)
    per_request = {}
    for name, (requests, non_2xx, instructions) in rows.items():
        per_request[name] = instructions / max(requests, 1)
        print(f"   {name:<16} {requests:6d} requests ({non_2xx} non-2xx)  {per_request[name]:10,.0f} instructions/request")
    for name in per_request:
        if name != "reference":
            print(f"   ratio {name:<10} {per_request['reference'] / per_request[name]:.2f}  "
                  f"(reference / callgate instructions; bench/run.py's target for {args.config}: "
                  f"{bench.RATIO_TARGETS[args.config]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
