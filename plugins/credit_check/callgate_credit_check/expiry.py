"""Releasing reservations whose DICE never came (maxDuration + grace after the ICE).

Runs in every instance; safe with several: each reservation is released by one
transaction that only acts on a call still ``reserved``, so two instances
racing for the same call release it once.  A DICE arriving later still settles
the call (it is charged for the time Sinch reports).
"""

from __future__ import annotations

import asyncio

import structlog

from callgate.storage import DatabaseError

from .handle import StoreHandle
from .money import money_text
from .store import CreditCall, CreditStore

log = structlog.get_logger("callgate.credit_check")
REASON = "no DICE within maxDuration + grace"


async def expire_overdue(store: CreditStore, now: float | None = None) -> list[CreditCall]:
    """Release every overdue reservation; returns the calls this pass released (each logged)."""
    released = []
    for callid in await store.overdue(now):
        call = await store.release(callid, state="expired", reason=REASON)
        if call is None:      # settled or released meanwhile (a DICE, another instance)
            continue
        log.warning("credit_reservation_expired", callid=call.callid, account=call.account_id,
                    released=money_text(call.reserved), currency=call.currency, max_duration=call.max_duration,
                    reserved_at=call.created_at)
        released.append(call)
    return released


async def run_expiry(handle: StoreHandle, interval: float) -> None:
    """Forever: a pass now, then one every ``interval`` seconds.  An unreachable database is logged and waited out."""
    while True:
        try:
            await expire_overdue(await handle.get())
        except DatabaseError as exc:
            log.warning("credit_expiry_skipped", error=str(exc))
        except Exception:  # a bug must not end the loop: reservations would never be released
            log.exception("credit_expiry_failed")
        await asyncio.sleep(interval)
