"""py-spy for the benchmark: find it, and read its collapsed stacks into "top functions by own time".

``bench/run.py --profile`` records callgate under load with::

    py-spy record --pid PID --duration D --format raw --function --output FILE

(``raw`` is the collapsed-stack format: one ``frame;frame;...;frame COUNT`` line per stack,
which flamegraph.pl and https://www.speedscope.app read as they are).  A sample's last
frame is where the time was spent ("own" time); every frame of the stack has it in its
"total".  py-spy leaves out idle samples (the event loop waiting in epoll), so the
percentages are shares of the time callgate's event loop was busy.  Samples of other
threads (asyncio's default executor, which runs SQLite queries) are counted apart.
"""

from __future__ import annotations

import collections
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def py_spy() -> str | None:
    """The py-spy executable (the venv's first), or None."""
    found = Path(sys.executable).parent / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


def record_command(spy: str, pid: int, duration: int, output: Path) -> list[str]:
    return [spy, "record", "--rate", "500", "--pid", str(pid), "--duration", str(duration), "--format", "raw", "--function",
            "--output", str(output)]


def top_functions(collapsed: str, count: int = 20) -> list[str]:
    """Report lines: the ``count`` functions of the event-loop thread with the most samples on top of
    the stack (own time), own time by package, and a line on the other threads (e.g. SQLite's executor)."""
    loop, threads = parse(collapsed)
    samples = sum(loop.own.values())
    if not samples:
        return ["profile: no samples of the event loop"]
    lines = [(f"profile of callgate under load, event-loop thread: {samples} samples (busy time only), "
              f"top {count} by own time"),
             f"  {'own %':>6} {'total %':>8}  function (file)"]
    for frame, n in loop.own.most_common(count):
        lines.append(f"  {100 * n / samples:6.1f} {100 * loop.total[frame] / samples:8.1f}  {frame}")
    by_package: collections.Counter[str] = collections.Counter()
    for frame, n in loop.own.items():
        by_package[package(frame)] += n
    lines.append("  own time by package: " + ", ".join(
        f"{name} {100 * n / samples:.0f} %" for name, n in by_package.most_common(10)))
    other = sum(threads.own.values())
    if other:
        top = ", ".join(f"{frame} {n}" for frame, n in threads.own.most_common(3))
        lines.append(f"  other threads (thread pools, e.g. SQLite's; a thread waiting for work may count as "
                     f"busy): {other} samples; most: {top}")
    return lines


class Samples:
    def __init__(self) -> None:
        self.own: collections.Counter[str] = collections.Counter()
        self.total: collections.Counter[str] = collections.Counter()

    def add(self, frames: list[str], n: int) -> None:
        self.own[frames[-1]] += n
        for frame in set(frames):
            self.total[frame] += n


def parse(collapsed: str) -> tuple[Samples, Samples]:
    """py-spy's collapsed stacks, split into the main (event-loop) thread and the threads it started."""
    loop, threads = Samples(), Samples()
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = [short_frame(f) for f in stack.split(";")]
        (threads if frames[0].startswith("Thread._bootstrap ") else loop).add(frames, int(n))
    return loop, threads


def package(frame: str) -> str:
    """``_handle (core/handlers.py)`` -> ``core``; ``write (asyncio/selector_events.py)`` -> ``asyncio``."""
    match = re.search(r"\(([^/)]+)/", frame)
    if match:
        return match[1]
    match = re.search(r"\(([^)]+?)(?:\.py)?\)$", frame)
    return match[1] if match else frame


def short_frame(frame: str) -> str:
    """``handle (/x/.venv/lib/python3.11/site-packages/aiohttp/web_protocol.py:123)`` ->
    ``handle (aiohttp/web_protocol.py)``; the standard library as ``asyncio/events.py``, the repo relative."""
    match = re.match(r"^(.*) \((.*?)(?::\d+)?\)$", frame)
    if match is None:
        return frame
    function, path = match.groups()
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif re.search(r"/lib/python3\.\d+/", path):
        path = re.split(r"/lib/python3\.\d+/", path, maxsplit=1)[1]
    elif path.startswith(str(REPO) + "/"):
        path = path[len(str(REPO)) + 1:]
    return f"{function} ({path})"
