"""router-only and router-console loaded at the same time on one core: a steady figure of what the console costs.

bench/run.py measures each server alone, one after the other, which is what a deployment sees; but the machine
drifts between two runs seconds apart: on 2026-12-07 runs of the same code gave medians from 0.86 to 0.95
against router-only. Here both servers run on CPU 0 at the same time, each loaded by its own wrk on CPU 1 with
its own pre-signed requests: whatever else the machine does, it does to both, and five runs of the same code
gave medians within about 0.01 of each other (0.847-0.858).

The price is a bias: the two servers take turns on one core and its caches, which costs the console's larger
footprint more, so this ratio reads about 0.02 below bench/run.py's (v1 on 2026-12-07: 0.85 here, 0.86-0.88
there). Use it to compare variants (of the console, or of the core with the console) run one after the other;
bench/run.py's figure is the one the target is measured by.

    .venv/bin/python bench/together.py [--generation v1|v2] [--rounds 5] [--duration 8] [--console-flush-ms N]

Needs what bench/run.py needs (two CPUs, wrk, taskset, the console plugin installed).  Exit status 0 when it ran,
2 when it could not.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading

import run as bench  # bench/run.py


def load_together(ctx: bench.Context, gen: bench.Generation, servers: list[bench.Server],
                  duration: int) -> dict[str, bench.WrkResult]:
    """One wrk per server, all started at once; each server's result."""
    results: dict[str, bench.WrkResult] = {}
    errors: list[BaseException] = []

    def load(server: bench.Server) -> None:
        try:
            requests = ctx.tmp / f"requests-{server.name}.lua"
            results[server.name] = bench.run_wrk(server.port, gen.path, duration, requests,
                                                 ctx.tmp / f"wrk-{server.name}.log")
        except BaseException as exc:     # re-raised below, on the main thread
            errors.append(exc)

    for server in servers:                # signed right before the run: callgate refuses old x-timestamps
        bench.write_lua_requests(ctx.tmp / f"requests-{server.name}.lua",
                                 bench.signed_requests(ctx.signer, gen, ctx.args.requests))
    bench.wait_idle(bench.all_pids(servers))
    threads = [threading.Thread(target=load, args=(server,)) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def measure(ctx: bench.Context, gen: bench.Generation, rounds: int, duration: int) -> list[float]:
    """The console's requests/s against router-only's in each round (after one unmeasured warm-up round)."""
    setup = bench.setup_router_console(ctx)
    assert setup.baseline is not None
    console = bench.start_callgate(ctx, setup.config, 1, name="router-console")
    baseline = bench.start_callgate(ctx, setup.baseline, 1, name="router-only", role="baseline")
    servers = [console, baseline]
    answers = {server.name: bench.smoke_check(server, ctx.signer, gen) for server in servers}
    if answers[console.name] != answers[baseline.name]:
        raise bench.BenchError(f"the two servers answered differently: {answers}")
    load_together(ctx, gen, servers, min(duration, 3))
    ratios = []
    for n in range(1, rounds + 1):
        results = load_together(ctx, gen, servers, duration)
        with_console, without = results[console.name], results[baseline.name]
        if with_console.non_2xx or without.non_2xx:
            raise bench.BenchError(f"non-2xx answers: {with_console.non_2xx} with the console, {without.non_2xx} "
                                   f"without")
        ratios.append(with_console.rps / without.rps)
        print(f"  round {n}: router-console {with_console.rps:8.1f} req/s   router-only {without.rps:8.1f} req/s   "
              f"ratio {ratios[-1]:.3f}", flush=True)
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generation", choices=tuple(bench.GENERATIONS), default="v1")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (default 5), after one warm-up")
    parser.add_argument("--duration", type=int, default=8, help="seconds per round (default 8)")
    parser.add_argument("--console-flush-ms", type=int, default=None,
                        help="the console's flush_interval_ms (default: the console's default, 100)")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 50 or not 1 <= args.duration <= bench.WINDOW_SECONDS - 60:
        parser.error(f"--rounds must be 1 to 50 and --duration 1 to {bench.WINDOW_SECONDS - 60} s")
    problems = bench.missing_tools()
    if problems:
        print("together: cannot run, missing:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    run_args = bench.parse_args(["--config", "router-console", "--generation", args.generation]
                                + (["--console-flush-ms", str(args.console_flush_ms)] if args.console_flush_ms else []))
    ctx = bench.new_context(run_args, "callgate-together-")
    gen = bench.GENERATIONS[args.generation]
    print(f"router-console and router-only at the same time on CPU {bench.SERVER_CPU}, {gen.name}: "
          f"{args.rounds} rounds x {args.duration} s, {bench.CONNECTIONS} connections each", flush=True)
    try:
        ratios = measure(ctx, gen, args.rounds, args.duration)
    except (bench.BenchError, bench.Skip) as exc:
        print(f"together: {exc}", file=sys.stderr)
        return 2
    finally:
        ctx.close(False)
    print(f"router-console / router-only: median {statistics.median(ratios):.3f} "
          f"(rounds {min(ratios):.3f}-{max(ratios):.3f}); bench/run.py's target (>= 0.9) is measured one server at a "
          f"time, where this figure reads about 0.02 higher")
    return 0


if __name__ == "__main__":
    sys.exit(main())
