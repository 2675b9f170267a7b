"""Notes between the recording hooks of one callback, which run at the same time.

``call.notes`` carries what a plugin found to the plugins after it, under the writer's name
(``call.notes["credit_check"]``).  The decision hooks run one after another, so a later plugin reads a
note as it is.  The recording hooks (``on_disconnect``, ``on_notify``) run at the same time (their
durable writes then wait together): a note an ``async`` recording hook writes is not there yet when the
plugins after it start.  So a recording hook that needs another plugin's note
awaits it (:func:`wait_for_note`), and the writer, when it can, leaves it as soon as it knows it
(:func:`leave_note`); a note written as ``call.notes[name] = ...`` is given to the waiters when the
writer's hook returns.  A waiter never waits longer than the writer's hook runs: a writer that leaves no
note, fails or times out gives its waiters None when its hook ends, and a plugin that does not record
this callback (not enabled, no such hook) gives None at once.

Wait only for a plugin before yours in ``[plugins] enabled``: two plugins waiting for each other wait
until their timeouts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from .calls import CallEvent

#: The key under which the pipeline keeps, while the recording hooks run, one future per recording plugin
#: (resolved when it leaves its note or its hook ends).  Reserved: no plugin writes under it.
WAITING = "callgate.recording"


def expect_notes(call: CallEvent, plugins: Iterable[str]) -> Callable[[str], None]:
    """Before the recording hooks of ``plugins`` start: their notes may be awaited.  Returns the function
    the dispatcher calls with each plugin's name when its hook has ended (see :func:`dispatch.run_together`)."""
    loop = asyncio.get_running_loop()
    waiting: dict[str, asyncio.Future[None]] = {name: loop.create_future() for name in plugins}
    call.notes[WAITING] = waiting

    def ended(plugin: str) -> None:
        future = waiting.get(plugin)
        if future is not None and not future.done():
            future.set_result(None)
    return ended


def forget_waiting(call: CallEvent) -> None:
    """After the recording hooks: the futures are gone from the notes (every one of them is resolved)."""
    call.notes.pop(WAITING, None)


def leave_note(call: CallEvent, plugin: str, note: Any) -> None:
    """``call.notes[plugin] = note``, and the plugins waiting for it get it now rather than when ``plugin``'s
    hook ends (a plugin may leave its note before its own durable write is done, e.g. a cost it computed)."""
    call.notes[plugin] = note
    future = call.notes.get(WAITING, {}).get(plugin)
    if future is not None and not future.done():
        future.set_result(None)


async def wait_for_note(call: CallEvent, plugin: str) -> Any:
    """``plugin``'s note on this callback, once it left it or its recording hook ended (None: it left none)."""
    note = call.notes.get(plugin)
    if note is not None:
        return note
    future = call.notes.get(WAITING, {}).get(plugin)
    if future is not None:
        await asyncio.shield(future)
    return call.notes.get(plugin)
