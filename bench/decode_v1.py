"""In-process timing of the v1 decoder: ``decode_event`` over the fixture bodies and ``callgate.samples``.

    .venv/bin/python bench/decode_v1.py [--loops 2000] [--rounds 7]

Prints, per event (ice, ace, pie, dice, notify) and for all bodies together, the best of
``--rounds`` timings of ``--loops`` passes over the bodies, in microseconds per body.  The best
round is the least disturbed by other processes; on a shared VM, compare two versions by running
this for each, twice, alternately.  Run with another checkout's interpreter (``/path/.venv/bin/python
bench/decode_v1.py``) to time that checkout's decoder.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from callgate import samples
from callgate.protocols.v1.decode import decode_event

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
EVENTS = ("ice", "ace", "pie", "dice", "notify")


def bodies() -> dict[str, list[bytes]]:
    """The request bodies per event: every fixture example and one ``callgate.samples`` body."""
    found: dict[str, list[bytes]] = {}
    for event in EVENTS:
        data = json.loads((FIXTURES / f"{event}.json").read_text(encoding="utf-8"))
        found[event] = [json.dumps(example["body"]).encode() for example in data["examples"]]
        found[event].append(json.dumps(samples.BUILDERS[event](callid="bench-call")).encode())
    return found


def best_us(decode: Callable[[bytes], object], items: list[bytes], loops: int, rounds: int) -> float:
    """The best round's time per body, in microseconds."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(loops):
            for body in items:
                decode(body)
        best = min(best, time.perf_counter() - start)
    return best / loops / len(items) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loops", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    per_event = bodies()
    everything = [body for items in per_event.values() for body in items]
    for event, items in per_event.items():
        print(f"{event:7} {best_us(decode_event, items, args.loops, args.rounds):6.2f} us/body  ({len(items)} bodies)")
    print(f"{'all':7} {best_us(decode_event, everything, args.loops, args.rounds):6.2f} us/body  ({len(everything)} bodies)")


if __name__ == "__main__":
    main()
