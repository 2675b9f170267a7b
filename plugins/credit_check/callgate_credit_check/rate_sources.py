"""Where a call's price comes from: the imported rate table, or Sinch's own ``userRate`` with a markup."""

from __future__ import annotations

from typing import Any

from callgate.phone import normalize
from callgate.storage import Connection

from .config import CreditCheckConfig
from .money import micros_ceil, to_micros
from .rating import Rate
from .store import CreditStore, NoRate, RateLookup


def sinch_rate(user_rate: Any, account_currency: str, config: CreditCheckConfig) -> Rate | NoRate:
    """The ICE's ``userRate`` (per minute) times ``sinch_markup``, rounded up to a micro-unit.

    A ``userRate`` without a currency is taken to be in the account's currency; one in
    another currency cannot be used (callgate does not convert currencies).
    """
    if user_rate is None or user_rate.amount is None:
        return NoRate("the ICE has no userRate")
    currency = (user_rate.currency_id or account_currency).upper()
    if currency != account_currency:
        return NoRate(f"Sinch's userRate is in {currency} but the account is in {account_currency}")
    if user_rate.amount < 0:
        return NoRate(f"Sinch's userRate {user_rate.amount} is negative")
    return Rate(currency=currency, per_minute=micros_ceil(user_rate.amount * config.sinch_markup),
                increments=config.sinch_rate_increments,
                connect_fee=to_micros(config.sinch_connect_fee, what="sinch_connect_fee"))


def rate_lookup(store: CreditStore, call: Any, config: CreditCheckConfig) -> RateLookup:
    """The function ``CreditStore.reserve`` calls, inside its transaction, once it knows the account's currency."""
    if config.rates == "sinch":
        async def from_sinch(tx: Connection, currency: str) -> Rate | NoRate:
            return sinch_rate(call.user_rate, currency, config)
        return from_sinch

    number = normalize(destination(call))

    async def from_table(tx: Connection, currency: str) -> Rate | NoRate:
        if number is None:
            return NoRate(f"the destination {destination(call)!r} is not a phone number")
        return await store.find_rate(tx, currency, number)
    return from_table


def destination(call: Any) -> str | None:
    """Who the caller dialled (``to.endpoint``), the number calls are rated by."""
    return call.to.endpoint if call.to is not None else None
