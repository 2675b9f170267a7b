"""How much the allowlist costs per call with 100,000 rules, and how long a reload takes.

Run:  python plugins/allowlist/bench/bench_allowlist.py [--rules 100000] [--calls 200000]

Builds a CSV rules file (exact callers, exact callees, prefixes of several
lengths, a few patterns), loads it through the plugin as callgate does, then
times the ICE hook (``authorize_call``, from the decoded event to the Allow/Deny
answer) for calls that hit an exact rule, a prefix rule, and no rule at all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import structlog

from callgate import samples
from callgate.protocols.v1.decode import decode_event
from callgate_allowlist import Allowlist


def write_rules(path: Path, total: int, patterns: int, rng: random.Random) -> dict[str, list[str]]:
    """A CSV with ``total`` rules: ``patterns`` patterns, and of the rest 85% denied callers,
    10% allowed callees and 5% denied prefixes."""
    if not 0 <= patterns < total // 2:
        raise SystemExit(f"--patterns must be between 0 and {total // 2 - 1} for {total} rules")
    rest = total - patterns
    callers = [f"+4670{rng.randrange(10**7):07d}" for _ in range(rest * 85 // 100)]
    callees = [f"+1555{rng.randrange(10**7):07d}" for _ in range(rest * 10 // 100)]
    others = rest - len(callers) - len(callees)
    prefixes = [f"+{rng.randrange(1, 999)}{rng.randrange(10**4)}" for _ in range(others)]
    lines = ["action,caller,callee,callee_type,name"]
    lines += [f"deny,{n},,,spam" for n in callers]
    lines += [f"allow,,{n},number,customer" for n in callees]
    lines += [f"deny,{p}*,,,range" for p in prefixes]
    lines += [f"deny,re:\\+999{i:03d}\\d+,,,pattern" for i in range(patterns)]
    path.write_text("\n".join(lines) + "\n")
    return {"callers": callers, "callees": callees, "prefixes": prefixes}


def time_calls(plugin: Allowlist, events: list, rounds: int) -> list[float]:
    """Microseconds of CPU per call, one figure per round over the whole list of events.

    CPU time (``process_time``) rather than wall time, so that other processes on a busy
    machine do not count; on an idle machine the two are the same.
    """
    hook = plugin.authorize_call
    figures = []
    for _ in range(rounds):
        start = time.process_time()
        for event in events:
            hook(event)
        figures.append((time.process_time() - start) / len(events) * 1e6)
    return figures


async def answers_during_reload(plugin: Allowlist, event, path: Path) -> tuple[float, list[float]]:
    """Reload the file in the background (as on an edit) while answering a call every millisecond.

    Returns the reload's duration (ms) and the delay of each answer (ms): the time from when the
    answer was due to when the hook had returned, i.e. how long the event loop was held up.
    """
    os.utime(path)                                  # "the file changed"
    loop = asyncio.get_running_loop()
    start = loop.time()
    reload = asyncio.ensure_future(plugin.rules.reload())
    delays = []
    while not reload.done():
        due = loop.time() + 0.001
        await asyncio.sleep(0.001)
        plugin.authorize_call(event)
        delays.append((loop.time() - due) * 1000)
    assert (await reload).status == "reloaded"
    return (loop.time() - start) * 1000, delays


def ice(caller: str, callee: str):
    return decode_event(json.dumps(samples.ice(caller=caller.lstrip("+"), to=callee)))


def measure(size: int, patterns: int, calls: int, rounds: int, tmp: Path) -> dict:
    """Load a file of ``size`` rules and time each kind of call; returns the figures."""
    rng = random.Random(7)
    path = tmp / f"rules-{size}.csv"
    written = write_rules(path, size, patterns, rng)
    start = time.perf_counter()
    plugin = Allowlist(Allowlist.Config(default="deny", rules_file=path, reload_seconds=0, prompt="Not allowed."))
    load_ms = (time.perf_counter() - start) * 1000
    def unlisted(prefix: str) -> str:
        return f"{prefix}{rng.randrange(10**8):08d}"

    cases = {
        "caller on the deny list (exact)": (
            "deny", [ice(rng.choice(written["callers"]), "+15550000000") for _ in range(calls)]),
        "callee on the allow list (exact)": (
            "allow", [ice(unlisted("4471"), rng.choice(written["callees"])) for _ in range(calls)]),
        "caller in a denied range (prefix)": (
            "deny", [ice(rng.choice(written["prefixes"]) + "5555", "+15550000000") for _ in range(calls)]),
        "no rule matches (the default)": (
            "deny", [ice(unlisted("4471"), unlisted("+4420")) for _ in range(calls)]),
    }
    timings = {}
    for label, (expected, events) in cases.items():
        verdict = type(plugin.authorize_call(events[0])).__name__.lower()
        assert verdict == expected, (label, verdict)
        figures = time_calls(plugin, events, rounds)
        timings[label] = (statistics.median(figures), min(figures))
    reload_ms, delays = asyncio.run(answers_during_reload(plugin, cases["no rule matches (the default)"][1][0], path))
    return {"plugin": plugin, "path": path, "load_ms": load_ms, "timings": timings,
            "reload_ms": reload_ms, "delays": sorted(delays)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=100_000)
    parser.add_argument("--patterns", type=int, default=10, help="how many of the rules are re: patterns")
    parser.add_argument("--calls", type=int, default=20_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    with tempfile.TemporaryDirectory() as tmp:
        sizes = (1_000, args.rules)
        results = [measure(size, args.patterns, args.calls, args.rounds, Path(tmp)) for size in sizes]
        big = results[-1]
        counts = big["plugin"].rules.current.counts
        print(f"rules: {counts['deny'] + counts['allow']} ({counts['deny']} deny, {counts['allow']} allow, "
              f"{args.patterns} of them patterns), CSV file of {big['path'].stat().st_size / 1e6:.1f} MB")
        print(f"start-up load (read, check, compile, index): {big['load_ms']:.0f} ms")
        print(f"CPU per call, authorize_call on a decoded ICE "
              f"(median of {args.rounds} rounds of {args.calls} calls; best):")
        print(f"  {'':<36}" + "".join(f"{size:>10,} rules   " for size in sizes))
        for label in big["timings"]:
            row = "".join(f"{r['timings'][label][0]:8.2f} us ({r['timings'][label][1]:5.2f})" for r in results)
            print(f"  {label:<36}{row}")
        delays = big["delays"]
        print(f"reload after an edit, in the background: {big['reload_ms']:.0f} ms; calls answered meanwhile: "
              f"{len(delays)}, held up by median {statistics.median(delays):.1f} ms, "
              f"p99 {delays[int(len(delays) * 0.99)]:.1f} ms, max {delays[-1]:.1f} ms")


if __name__ == "__main__":
    main()
