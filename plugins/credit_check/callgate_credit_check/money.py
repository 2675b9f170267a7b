"""Money as exact numbers: Decimal at the edges, integer micro-units inside.

Every amount the plugin stores or compares is an ``int`` of micro-units
(1 micro-unit = 0.000001 of the currency unit), so a balance check and a
reservation are integer arithmetic inside one database transaction, identical
on SQLite and PostgreSQL.  Amounts enter as text or ``Decimal`` (never
``float``) and leave as ``Decimal``.

An amount that needs more than 6 decimal places is refused, never silently
rounded: ``0.0000001`` is an error, not zero.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

#: Micro-units per currency unit.
MICROS = 1_000_000
#: Decimal places a micro-unit amount has.
DECIMALS = 6
#: The largest amount accepted (well inside a 64-bit integer of micro-units).
MAX_AMOUNT = 10**12
_MICRO = Decimal(1).scaleb(-DECIMALS)
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class MoneyError(ValueError):
    """An amount or currency that cannot be used; the message says why."""


def parse_amount(text: str | Decimal | int, *, what: str = "amount", allow_negative: bool = False) -> Decimal:
    """``"1.50"`` -> ``Decimal("1.50")``; refuses floats, NaN, infinities, negatives and > 6 decimals."""
    if isinstance(text, float) or isinstance(text, bool):
        raise MoneyError(f"{what}: give money as text or Decimal, not {type(text).__name__} ({text!r})")
    shown = f"'{str(text).strip()}'"
    try:
        value = text if isinstance(text, Decimal) else Decimal(str(text).strip())
    except InvalidOperation:
        raise MoneyError(f"{what}: {shown} is not a number") from None
    if not value.is_finite():
        raise MoneyError(f"{what}: {shown} is not a finite number")
    if value < 0 and not allow_negative:
        raise MoneyError(f"{what}: {shown} must not be negative")
    if abs(value) > MAX_AMOUNT:
        raise MoneyError(f"{what}: {shown} is larger than {MAX_AMOUNT:,}")
    if value != value.quantize(_MICRO, rounding=ROUND_CEILING):
        raise MoneyError(f"{what}: {shown} has more than {DECIMALS} decimal places")
    return value


def to_micros(amount: str | Decimal | int, *, what: str = "amount", allow_negative: bool = False) -> int:
    """An exact amount -> integer micro-units (``Decimal("0.0083")`` -> ``8300``)."""
    return int(parse_amount(amount, what=what, allow_negative=allow_negative).scaleb(DECIMALS))


def micros_ceil(amount: Decimal) -> int:
    """Any non-negative Decimal -> micro-units, rounded up (used for prices derived by a markup)."""
    return int((amount * MICROS).to_integral_value(rounding=ROUND_CEILING))


def money_text(micros: int) -> str:
    """Integer micro-units as plain decimal text: at least two decimals, no needless trailing zeros.

    ``8300`` -> ``"0.0083"``, ``1_500_000`` -> ``"1.50"``, ``-250_000`` -> ``"-0.25"``.
    """
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(int(micros)), MICROS)
    return f"{sign}{whole}.{str(frac).rjust(DECIMALS, '0').rstrip('0').ljust(2, '0')}"


def from_micros(micros: int) -> Decimal:
    """Integer micro-units -> the exact Decimal (``8300`` -> ``Decimal("0.0083")``)."""
    return Decimal(money_text(micros))


def format_money(micros: int, currency: str | None = None) -> str:
    """For people: ``money_text`` followed by the currency (``"1.50 EUR"``)."""
    text = money_text(micros)
    return f"{text} {currency}" if currency else text


def parse_currency(text: str, *, what: str = "currency") -> str:
    """An ISO-4217 code: three letters, returned upper-case (``"eur"`` -> ``"EUR"``)."""
    code = str(text).strip().upper()
    if not _CURRENCY.match(code):
        raise MoneyError(f"{what}: {text!r} is not a three-letter ISO-4217 currency code like EUR or USD")
    return code
