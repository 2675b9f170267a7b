"""Which account pays for a call (``account_by``), from the incoming call alone, in either API generation.

* ``caller``: the account is the caller's number, normalised (``+46701234567``).
* ``number_table``: the caller's number is looked up in the number-to-account
  table (``callgate credit link +46701234567 acme``).
* ``user``: the in-app caller's Sinch user id (the v1 ICE's ``user``, authenticated by
  Sinch) is looked up in the user-to-account table (``callgate credit link --user alice acme``).
  v2 has no in-app users: a v2 call names no account this way.
* ``custom``: the value of ``account_key`` in the v1 ICE's ``custom`` string, which
  may be a JSON object (``{"account": "acme"}``, what in-app SDKs send) or
  ``key=value`` pairs separated by ``&``, ``;`` or ``,`` (``account=acme;team=x``).  v2 sends no
  ``custom``: a v2 call names no account this way.
* ``header``: the value of the call header whose key is ``account_key`` (v1 ``callHeaders``,
  v2 SIP ``callHeaders``).
* ``application``: the call's ``application``: the v1 application key or the v2 service id.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from callgate.phone import PRIVATE, PhoneNumberError, normalize_caller, parse_number

from .config import CreditCheckConfig
from .store import CreditStore

_PAIR_SEPARATORS = re.compile(r"[&;,]")


@dataclass(frozen=True, slots=True)
class PayerKey:
    """How to find the paying account: its id, or a number or in-app user to look up in the link tables."""

    account: str | None = None
    number: str | None = None
    user: str | None = None

    def describe(self) -> str:
        if self.account is not None:
            return f"account {self.account}"
        if self.user is not None:
            return f"user {self.user}"
        return f"number {self.number}"


def payer_key(call: Any, config: CreditCheckConfig) -> PayerKey | None:
    """The paying account's key for an incoming (or an ended) call; None when the call names none."""
    mode = config.account_by
    if mode in ("caller", "number_table"):
        caller = normalize_caller(call.cli)
        if caller is None or caller == PRIVATE:
            return None
        return PayerKey(account=caller) if mode == "caller" else PayerKey(number=caller)
    if mode == "user":
        user = call.user.strip() if isinstance(call.user, str) else ""
        return PayerKey(user=user) if user else None
    if mode == "custom":
        value = value_in_custom(call.custom, config.account_key)
    elif mode == "header":
        value = next((h.value for h in call.headers if h.key == config.account_key), None)
    else:
        value = call.application
    value = value.strip() if isinstance(value, str) else None
    return PayerKey(account=value) if value else None


async def linked_account(store: CreditStore, key: PayerKey) -> str | None:
    """The account a number or an in-app user is linked to (``callgate credit link``); None when not linked."""
    if key.user is not None:
        return await store.account_for_user(key.user)
    if key.number is not None:
        return await store.account_for_number(key.number)
    return None


def value_in_custom(custom: str | None, key: str) -> str | None:
    """``key``'s value in a ``custom`` string: a JSON object, or ``k=v`` pairs; None when absent."""
    if not custom or not custom.strip():
        return None
    text = custom.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        value = data.get(key) if isinstance(data, dict) else None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            return None
        return str(value)
    for pair in _PAIR_SEPARATORS.split(text):
        name, sep, value = pair.partition("=")
        if sep and name.strip() == key:
            return value.strip()
    return None


def canonical_account_id(config: CreditCheckConfig, text: str) -> str:
    """An account id typed by an operator, as the plugin will look it up.

    With ``account_by = "caller"`` an account is a phone number, read like every number people
    write (:func:`callgate.phone.parse_number`), so ``46701234567``, ``+46 70 123 45 67`` and
    ``0046701234567`` all mean ``+46701234567``; :class:`~callgate.phone.PhoneNumberError` when not one.
    """
    text = text.strip()
    if not text:
        raise ValueError("an account id must not be empty")
    if config.account_by == "caller":
        try:
            return parse_number(text)
        except PhoneNumberError as exc:
            raise PhoneNumberError(f"{exc} (with account_by = \"caller\" an account is the caller's number)") from None
    return text


def canonical_user(text: str) -> str:
    """An in-app user id typed by an operator, as Sinch sends it in the v1 ICE's ``user`` (exact, case kept)."""
    user = text.strip()
    if not user:
        raise ValueError("a user id must not be empty")
    if not user.isprintable():
        raise ValueError(f"{text!r} is not a user id: it holds control characters")
    return user
