"""When to try again: the outcome of one delivery attempt, backoff with full jitter, Retry-After.

All pure functions (the random source and the clock are parameters), so the policy is tested
without waiting.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Literal

Kind = Literal["delivered", "retry", "permanent"]

#: Statuses worth trying again: the receiver may accept the same request later.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Statuses that ask the client to slow down: the whole sink pauses, not only this record.
THROTTLE_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one delivery attempt came to.

    ``retry_after``: seconds the receiver asked us to wait (429/503 with Retry-After), else None.
    ``throttled``: the receiver is rate limiting the sink as a whole.  ``remote_id``: the id the
    receiver gave the record (HubSpot's call id), kept to update the same object later.
    """

    kind: Kind
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    throttled: bool = False
    remote_id: str | None = None

    @classmethod
    def delivered(cls, status: int | None = None, remote_id: str | None = None) -> AttemptResult:
        return cls("delivered", status, remote_id=remote_id)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - (now or datetime.now(timezone.utc))).total_seconds())


def classify(status: int, headers: Mapping[str, str], body_excerpt: str = "",
             now: datetime | None = None) -> AttemptResult:
    """An HTTP response -> delivered (2xx), retry (408/425/429/5xx) or permanent (any other status)."""
    if 200 <= status < 300:
        return AttemptResult.delivered(status)
    detail = f"HTTP {status}" + (f": {body_excerpt}" if body_excerpt else "")
    if status in RETRYABLE_STATUSES or status >= 500:
        return AttemptResult("retry", status, detail,
                             retry_after=parse_retry_after(headers.get("Retry-After"), now),
                             throttled=status in THROTTLE_STATUSES)
    return AttemptResult("permanent", status, detail)


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): full jitter, capped.

    A uniform draw from ``[0, min(maximum, initial * 2**(attempt-1))]``, so instances that failed
    together do not retry together.
    """
    ceiling = min(maximum, initial * 2 ** min(max(attempt - 1, 0), 60))
    return (rng or random).uniform(0.0, ceiling)


def next_delay(result: AttemptResult, attempt: int, *, initial: float, maximum: float, max_retry_after: float,
               rng: random.Random | None = None) -> float:
    """How long to wait before the next attempt: the backoff, but never less than the receiver's Retry-After."""
    delay = backoff_delay(attempt, initial, maximum, rng)
    if result.retry_after is not None:
        delay = max(delay, min(result.retry_after, max_retry_after))
    return delay
