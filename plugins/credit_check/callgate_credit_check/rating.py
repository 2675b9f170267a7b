"""Rating: what a call of a given length costs, and how long a balance lets a call last.

Pure functions over integers (micro-units, seconds); no I/O.  The rules:

* **Billing increments** ``"a/b"``: the first ``a`` seconds are billed as a
  block, then every further started ``b`` seconds (``60/60`` per started
  minute, ``30/6``, ``1/1`` per second).  A call of 0 seconds (or not
  answered) is billed 0 seconds; any call longer than 0 is billed at least
  ``a``.  Time is always rounded **up** to the increments.
* **Cost** of ``s`` billed seconds: ``connect_fee + per_minute * s / 60``,
  rounded **up** to the cost unit (``10**-cost_decimals`` of the currency;
  ``cost_decimals = 6`` is one micro-unit, ``2`` is cents).  A call billed 0
  seconds costs 0: no connect fee for a call that never connected.
* **Affordable time**: the longest duration on the increment grid
  (``a``, ``a+b``, ``a+2b``, ...) whose cost is at most the available credit.
  Less than ``a`` means the call is refused; so does a negative balance,
  even for a free destination.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Upper bound for one increment, in seconds.
MAX_INCREMENT = 3600
_INCREMENTS = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class RatingError(ValueError):
    """A rate or billing increment that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Increments:
    """Billing increments: the first block of ``first`` seconds, then blocks of ``next`` seconds."""

    first: int
    next: int

    def __post_init__(self) -> None:
        for name, value in (("first", self.first), ("next", self.next)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_INCREMENT:
                raise RatingError(f"billing increment {name} must be 1..{MAX_INCREMENT} seconds, got {value!r}")

    @classmethod
    def parse(cls, text: str) -> Increments:
        """``"60/60"``, ``"30/6"``, ``"1/1"`` -> Increments."""
        match = _INCREMENTS.match(str(text))
        if match is None:
            raise RatingError(f"billing increments {text!r} must look like 60/60, 30/6 or 1/1 "
                              f"(first block / each further block, in seconds)")
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.first}/{self.next}"


@dataclass(frozen=True, slots=True)
class Rate:
    """A price: ``connect_fee`` and ``per_minute`` in micro-units of ``currency``, billed by ``increments``.

    ``prefix`` is the destination prefix it applies to (digits, no ``+``); ``""`` for a
    rate that did not come from the table (Sinch's ``userRate`` with a markup).
    """

    currency: str
    per_minute: int
    increments: Increments
    connect_fee: int = 0
    prefix: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        if self.per_minute < 0 or self.connect_fee < 0:
            raise RatingError("a rate must not be negative")


@dataclass(frozen=True, slots=True)
class Charge:
    """What a call costs: the seconds billed and the amount in micro-units."""

    billed_seconds: int
    cost: int


@dataclass(frozen=True, slots=True)
class Grant:
    """The answer to "may this account call?": ``seconds`` allowed (0: refused) and the credit to reserve."""

    seconds: int
    reserve: int

    @property
    def allowed(self) -> bool:
        return self.seconds > 0


def cost_unit(cost_decimals: int) -> int:
    """The smallest amount a cost is rounded to, in micro-units (6 -> 1, 2 -> 10_000)."""
    if not 0 <= cost_decimals <= 6:
        raise RatingError(f"cost_decimals must be 0..6, got {cost_decimals!r}")
    return 10 ** (6 - cost_decimals)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def billed_seconds(duration: int, increments: Increments) -> int:
    """Seconds billed for a call of ``duration`` seconds: rounded up to the increments (0 stays 0)."""
    if duration <= 0:
        return 0
    if duration <= increments.first:
        return increments.first
    return increments.first + _ceil_div(duration - increments.first, increments.next) * increments.next


def charge(rate: Rate, duration: int, unit: int = 1) -> Charge:
    """The cost of a call lasting ``duration`` seconds at ``rate``, rounded up to ``unit`` micro-units."""
    billed = billed_seconds(duration, rate.increments)
    if billed == 0:
        return Charge(0, 0)
    exact_times_60 = rate.connect_fee * 60 + rate.per_minute * billed
    return Charge(billed, _ceil_div(exact_times_60, 60 * unit) * unit)


def affordable_seconds(rate: Rate, available: int, unit: int = 1) -> int | None:
    """The longest duration on the increment grid that ``available`` micro-units pay for.

    0: not even the first increment.  None: unlimited (the rate is free per minute
    and the connect fee is affordable).
    """
    if available < 0:      # overdrawn (a call ran past its grant): nothing, not even free calls
        return 0
    budget = (available // unit) * unit
    first = rate.increments.first
    if charge(rate, first, unit).cost > budget:
        return 0
    if rate.per_minute == 0:
        return None
    # cost(s) <= budget  <=>  connect_fee*60 + per_minute*s <= 60*budget  (budget is a multiple of unit)
    most = (60 * budget - 60 * rate.connect_fee) // rate.per_minute
    step = rate.increments.next
    return first + ((most - first) // step) * step


def grant(rate: Rate, available: int, cap: int, unit: int = 1) -> Grant:
    """How long a call may last (at most ``cap`` seconds) and what to reserve for it."""
    affordable = affordable_seconds(rate, available, unit)
    if affordable == 0:
        return Grant(0, 0)
    seconds = cap if affordable is None else min(affordable, cap)
    return Grant(seconds, charge(rate, seconds, unit).cost)
