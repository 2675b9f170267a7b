"""The rules in force, and keeping them in step with the rules file.

:class:`LiveRules` holds the current :class:`RuleSet` in one attribute.  A
reload reads and checks the whole file in a worker thread (off the event loop),
builds a complete new rule set, and only then replaces the old one with one
attribute assignment, so a call never sees half a list.  A file that is
missing, unreadable or broken leaves the old rules in force and is logged once
with every problem it has.

Reloads happen when the file's modification time, size or inode changes
(polled every ``reload_seconds``), and on SIGHUP (``kill -HUP <pid>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog

from .index import RuleSet
from .rulefile import RulesFileError, iter_rules_file
from .rules import Rule

Signature = tuple[int, int, int]
#: Where inline rules are written, in explanations.
INLINE_LABEL = "[plugins.allowlist] rules"


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What one look at the rules file did."""

    status: Literal["unchanged", "reloaded", "failed"]
    error: str | None = None


def file_signature(path: Path) -> Signature | None:
    """(modification time in ns, size, inode), or None when the file cannot be found."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def read_rules(inline: Sequence[Rule], path: Path | None) -> tuple[RuleSet, Signature | None]:
    """A complete rule set: the inline rules, then the file's.  Raises :class:`RulesFileError`."""
    inline_source = (INLINE_LABEL,) if inline else ()
    if path is None:
        return RuleSet.build(inline, inline_source), None
    try:
        before = file_signature(path)
        if before is None:
            raise RulesFileError(path, ["the file does not exist (create it, or remove rules_file from the config)"])
        data = path.read_bytes()
    except OSError as exc:
        raise RulesFileError(path, [f"cannot be read: {exc.strerror or exc}"]) from None
    if file_signature(path) != before:
        raise _ChangedWhileReading(path, ["the file changed while it was being read; trying again"])
    rules = iter_rules_file(data, path, first_ordinal=len(inline))
    return RuleSet.build(itertools.chain(inline, rules), (*inline_source, str(path))), before


class _ChangedWhileReading(RulesFileError):
    """A writer was busy with the file: not an error, read it again at the next look."""


class LiveRules:
    """The current rule set, reloaded from ``path`` when it changes; ``current`` is what calls use."""

    def __init__(self, inline: Sequence[Rule], path: Path | None, *, reload_seconds: float = 2.0,
                 logger: Any = None) -> None:
        self.inline = tuple(inline)
        self.log = logger or structlog.get_logger("callgate.allowlist")
        self.path = path
        self.reload_seconds = reload_seconds
        self.current, self.signature = self._read_settled()
        self.last_error: str | None = None
        self._failed: Signature | None = None
        self._lock = asyncio.Lock()
        self._poller: asyncio.Task | None = None
        self._pending: set[asyncio.Task] = set()
        self._sighup_loop: asyncio.AbstractEventLoop | None = None

    def _read_settled(self, attempts: int = 5) -> tuple[RuleSet, Signature | None]:
        """The first load: retried briefly while a writer is still busy with the file."""
        for attempt in range(attempts):
            try:
                return read_rules(self.inline, self.path)
            except _ChangedWhileReading:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.05)
        raise AssertionError("unreachable")

    # --- reloading ---------------------------------------------------------------------------

    async def reload(self, *, force: bool = False, trigger: str = "poll") -> ReloadResult:
        """Look at the file; when it changed (or ``force``), read it and swap the rules in if it is valid."""
        if self.path is None:
            return ReloadResult("unchanged")
        async with self._lock:
            return await self._reload(force, trigger)

    async def _reload(self, force: bool, trigger: str) -> ReloadResult:
        path = self.path
        assert path is not None, "reload() returns at once without a rules file"
        try:
            signature = await asyncio.to_thread(file_signature, path)
        except OSError:
            signature = None   # unreadable: read_rules below says why
        if not force:
            if signature == self.signature:
                self._failed = self.last_error = None   # back to the version in force
                return ReloadResult("unchanged")
            if self.last_error is not None and signature == self._failed:
                return ReloadResult("failed", self.last_error)   # already logged; wait for the next edit
        started = time.perf_counter()
        try:
            rules, signature = await asyncio.to_thread(read_rules, self.inline, path)
        except _ChangedWhileReading:
            return ReloadResult("unchanged")
        except RulesFileError as exc:
            error = str(exc)
            if force or (signature, error) != (self._failed, self.last_error):
                self.log.error("allowlist_reload_failed", path=str(path), trigger=trigger, error=error,
                               kept_rules=self.current.counts)
            self._failed, self.last_error = signature, error
            return ReloadResult("failed", error)
        self.current = rules   # the swap: calls see the old set or the new one, never a mix
        self.signature = signature
        self._failed = self.last_error = None
        self.log.info("allowlist_rules_loaded", path=str(path), trigger=trigger, rules=rules.counts,
                      ms=round((time.perf_counter() - started) * 1000, 1))
        return ReloadResult("reloaded")

    # --- the background look-out and SIGHUP ---------------------------------------------------

    def start(self) -> None:
        """Start polling the file and listening for SIGHUP (in the main thread only)."""
        if self.path is None:
            return
        loop = asyncio.get_running_loop()
        if self.reload_seconds > 0 and self._poller is None:
            self._poller = loop.create_task(self._poll(), name="allowlist-rules-poll")
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
                self._sighup_loop = loop

    async def stop(self) -> None:
        """Stop polling, forget SIGHUP, and wait for a reload in progress to finish or be cancelled."""
        if self._sighup_loop is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._sighup_loop.remove_signal_handler(signal.SIGHUP)
            self._sighup_loop = None
        tasks = [t for t in (self._poller, *self._pending) if t is not None]
        self._poller = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_sighup(self) -> None:
        self.log.info("allowlist_sighup", path=str(self.path))
        task = asyncio.get_running_loop().create_task(self._guarded(force=True, trigger="sighup"))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.reload_seconds)
            await self._guarded(force=False, trigger="poll")

    async def _guarded(self, *, force: bool, trigger: str) -> None:
        """A reload that never ends the watcher: an unexpected error is logged and the old rules stay."""
        try:
            await self.reload(force=force, trigger=trigger)
        except Exception:
            self.log.exception("allowlist_reload_crashed", path=str(self.path), trigger=trigger)
