"""Pricing a call without making it (``callgate credit quote +46701234567 300s``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .rating import Charge, Grant, Rate, charge, grant
from .store import Account

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$")


def parse_duration(text: str) -> int:
    """``"300"``, ``"300s"``, ``"5m"``, ``"2m30s"``, ``"1h"`` -> seconds."""
    compact = str(text).strip().lower().replace(" ", "")
    match = _DURATION.match(compact)
    if not compact or match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration: write seconds (300 or 300s), or 5m, 2m30s, 1h")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


@dataclass(frozen=True, slots=True)
class Quote:
    """What a call to ``destination`` lasting ``duration`` seconds costs, and what ``account`` could afford."""

    destination: str
    duration: int
    rate: Rate
    charge: Charge
    account: Account | None = None
    grant: Grant | None = None


def make_quote(destination: str, duration: int, rate: Rate, *, unit: int, cap: int,
               account: Account | None = None) -> Quote:
    affordable = grant(rate, account.available, cap, unit) if account is not None else None
    return Quote(destination, duration, rate, charge(rate, duration, unit), account, affordable)
