"""The event loop ``callgate serve`` runs on: ``[server] event_loop``.

``"asyncio"`` (the default) is the standard library's own loop, ``"uvloop"`` uvloop's (libuv,
compiled; a dependency on Linux and macOS, not available on Windows), and ``"auto"`` uvloop where it
is installed, else asyncio's.  Nothing else in callgate depends on which loop runs it.  The default
is asyncio because uvloop, though it answered about 10 % more callbacks per second in most runs, did so
with a worse p99 (docs/performance.md, 2026-12-06 and the fifth session of 2026-12-07).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .config import ConfigError, EventLoopSetting

__all__ = ["EventLoopSetting", "loop_factory", "loop_name"]


def loop_factory(setting: EventLoopSetting) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What ``asyncio.Runner(loop_factory=...)`` needs for ``setting``: uvloop's ``new_event_loop``, or None
    (asyncio's default loop).  ConfigError when ``"uvloop"`` is asked for and is not installed."""
    if setting == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if setting == "uvloop":
            raise ConfigError('[server] event_loop = "uvloop", but uvloop is not installed (pip install uvloop; '
                              'it does not exist for Windows): install it, or set event_loop = "auto" or '
                              '"asyncio"') from None
        return None
    return uvloop.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``"uvloop"`` or ``"asyncio"``: which loop ``loop`` is, for the ``listening`` log line."""
    return "uvloop" if type(loop).__module__.partition(".")[0] == "uvloop" else "asyncio"
