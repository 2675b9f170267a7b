"""Where a call's price comes from: the imported rate table, or Sinch's own rate (v1 ``userRate``, v2 ``callRate``)
with a markup."""

from __future__ import annotations

from callgate.calls import Incoming, Money
from callgate.phone import normalize
from callgate.storage import Connection

from .config import CreditCheckConfig
from .money import micros_ceil, to_micros
from .rating import Rate
from .store import CreditStore, NoRate, RateLookup


def sinch_rate(rate: Money | None, account_currency: str, config: CreditCheckConfig) -> Rate | NoRate:
    """The call's per-minute rate (v1 ``userRate``, v2 ``callRate``) times ``sinch_markup``, rounded up to a
    micro-unit.

    A rate without a currency is taken to be in the account's currency; one in
    another currency cannot be used (callgate does not convert currencies).
    """
    if rate is None or rate.amount is None:
        return NoRate("the call has no rate from Sinch (v1 userRate, v2 callRate)")
    currency = (rate.currency or account_currency).upper()
    if currency != account_currency:
        return NoRate(f"Sinch's rate is in {currency} but the account is in {account_currency}")
    if rate.amount < 0:
        return NoRate(f"Sinch's rate {rate.amount} is negative")
    return Rate(currency=currency, per_minute=micros_ceil(rate.amount * config.sinch_markup),
                increments=config.sinch_rate_increments,
                connect_fee=to_micros(config.sinch_connect_fee, what="sinch_connect_fee"))


def rate_lookup(store: CreditStore, call: Incoming, config: CreditCheckConfig) -> RateLookup:
    """The function ``CreditStore.reserve`` calls, inside its transaction, once it knows the account's currency."""
    if config.rates == "sinch":
        async def from_sinch(tx: Connection, currency: str) -> Rate | NoRate:
            return sinch_rate(call.rate, currency, config)
        return from_sinch

    number = normalize(destination(call))

    async def from_table(tx: Connection, currency: str) -> Rate | NoRate:
        if number is None:
            return NoRate(f"the destination {destination(call)!r} is not a phone number")
        return await store.find_rate(tx, currency, number)
    return from_table


def destination(call: Incoming) -> str | None:
    """Who the caller dialled (``to.endpoint``: for a v2 inbound call, your Sinch number), the number calls are
    rated by."""
    return call.to.endpoint if call.to is not None else None
