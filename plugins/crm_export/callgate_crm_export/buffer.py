"""Facts learnt on the answer path (ICE, ACE), held in memory until the background flush writes them.

``call_decided`` and ``on_answer`` must answer in microseconds, so they only add to this
buffer; a background task writes it to the outbox every ``facts_flush_interval_seconds``, in
one transaction.  ``on_disconnect`` at the same instance takes the call's buffered facts
directly, so its record is complete even before a flush.  What a crash loses is at most one
flush interval of ICE/ACE details (who decided, answer time) -- never a DICE, never a record.
"""

from __future__ import annotations

from .facts import Facts, merge_facts


class FactBuffer:
    """Call facts waiting to be written, by callid (bounded: the oldest are dropped beyond ``max_calls``)."""

    def __init__(self, max_calls: int = 50_000) -> None:
        self.max_calls = max_calls
        self.dropped = 0
        self._pending: dict[str, Facts] = {}
        self._flushing: dict[str, Facts] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, callid: str, facts: Facts) -> None:
        current = self._pending.get(callid)
        self._pending[callid] = facts if current is None else merge_facts(current, facts)[0]
        if len(self._pending) > self.max_calls:
            del self._pending[next(iter(self._pending))]
            self.dropped += 1

    def take(self, callid: str) -> Facts:
        """Everything known in memory about a call (pending, or being flushed right now); pending is removed."""
        facts = dict(self._flushing.get(callid) or {})
        pending = self._pending.pop(callid, None)
        if pending:
            facts = merge_facts(facts, pending)[0]
        return facts

    def start_flush(self) -> list[tuple[str, Facts]]:
        """Move every pending call to the flushing set and return them."""
        self._flushing = self._pending
        self._pending = {}
        return list(self._flushing.items())

    def end_flush(self, written: bool) -> None:
        """The flush committed (``written``), or failed: then its facts go back to pending for the next one."""
        flushing, self._flushing = self._flushing, {}
        if not written:
            for callid, facts in flushing.items():
                self.add(callid, facts)
