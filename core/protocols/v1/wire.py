"""Sinch Voice v1 callback bodies (ICE, ACE, PIE, DICE, Notify) as msgspec Structs, decoded in C.

These types say what a *usual* body looks like, as Sinch sends it: the ``event`` name lower-case
(the tag of the union :data:`V1WireEvent`), ``callid`` spelt so, every field of its JSON type or
``null`` (absent), integers within 64 bits.  Field names are camelCase on the wire
(``rename="camel"``; DICE ``from`` is ``from_``); unknown fields are ignored (the decoder keeps the
whole decoded object as the event's ``raw``).

What a Struct cannot say is checked by :mod:`callgate.protocols.v1.decode`, which also looks again
at any body these types refuse, to accept what v1 leniently accepts (``"ICE"``, ``callId``,
``"version": "1"``) or to refuse it with the code and message v1 has always given:

* ``callid`` is optional here; ICE, ACE, PIE and DICE require it (or its ``callId`` spelling);
* ``menuResult`` is optional here; PIE requires it;
* :attr:`V1Money.amount` is any JSON value here: msgspec's ``Decimal`` would also take a string,
  which v1 refuses, so the decoder checks it is a number (a ``Decimal`` of the literal, or an integer);
* ``timestamp`` stays a string, parsed by :func:`callgate.protocols.timestamps.parse_timestamp`;
* identifiers (``callid``, ``applicationKey``, ``user``) may not hold a control character;
* case-insensitive values (``domain``, ``originationType``, ``to.type``, ``menuResult.type``,
  ``menuResult.inputMethod``, ``amd.status``) are stored lower-case, DICE ``reason``/``result``
  stripped: by the decoder, when it builds the neutral call.

The Structs are ``gc=False``: decoded from JSON and frozen, they cannot form a reference cycle, so the
garbage collector need not track the few each callback builds.

Nothing outside ``callgate.protocols.v1`` should import these types; every class is named ``V1...``.
"""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta, Struct, field

from ..errors import SECONDS_MAX

__all__ = [
    "Int64",
    "Seconds",
    "V1Ace",
    "V1Amd",
    "V1CallHeader",
    "V1Callee",
    "V1Dice",
    "V1EventBase",
    "V1Ice",
    "V1MenuResult",
    "V1Money",
    "V1Notify",
    "V1Pie",
    "V1WireEvent",
]

#: Integer fields hold 64-bit values: Sinch's are small, and a larger one would break every
#: consumer downstream (databases' bigint, orjson in the logs) instead of being refused here.
Int64 = Annotated[int, Meta(ge=-(2 ** 63), le=2 ** 63 - 1)]
#: A duration in seconds: at most :data:`~callgate.protocols.errors.SECONDS_MAX`.  A negative one is taken as 0 by
#: those who use it.
Seconds = Annotated[int, Meta(ge=-(2 ** 63), le=SECONDS_MAX)]


class V1Money(Struct, rename="camel", frozen=True, gc=False):
    """``userRate`` / ``debit``: ``amount`` is a JSON number (see the module docstring), ``currencyId`` ISO-4217."""

    currency_id: str | None = None
    amount: Any = None


class V1Callee(Struct, frozen=True, gc=False):
    """``to``: ``type`` (``did``, ``number``, ``username``, ``sip``, ``conference``, in any case) and ``endpoint``."""

    type: str | None = None
    endpoint: str | None = None


class V1CallHeader(Struct, frozen=True, gc=False):
    """One entry of ``callHeaders``: ``key`` is required, ``value`` may be absent."""

    key: str
    value: str | None = None


class V1Amd(Struct, frozen=True, gc=False):
    """``amd`` of an ACE or a Notify: answering-machine detection."""

    status: str | None = None
    reason: str | None = None
    duration: Seconds | None = None


class V1MenuResult(Struct, rename="camel", frozen=True, gc=False):
    """``menuResult`` of a PIE."""

    menu_id: str | None = None
    type: str | None = None
    value: str | None = None
    input_method: str | None = None


class V1EventBase(Struct, rename="camel", frozen=True, gc=False, tag_field="event"):
    """What every v1 event may carry."""

    version: Int64 | None = None
    custom: str | None = None
    application_key: str | None = None
    timestamp: str | None = None
    user: str | None = None
    callid: str | None = None


class V1Ice(V1EventBase, frozen=True, tag="ice"):
    """Incoming Call Event."""

    call_resource_url: str | None = None
    user_rate: V1Money | None = None
    cli: str | None = None
    to: V1Callee | None = None
    domain: str | None = None
    origination_type: str | None = None
    duration: Seconds | None = None
    rdnis: str | None = None
    call_headers: tuple[V1CallHeader, ...] | None = None


class V1Ace(V1EventBase, frozen=True, tag="ace"):
    """Answered Call Event."""

    amd: V1Amd | None = None
    conference_id: str | None = None


class V1Pie(V1EventBase, frozen=True, tag="pie"):
    """Prompt Input Event."""

    menu_result: V1MenuResult | None = None


class V1Dice(V1EventBase, frozen=True, tag="dice"):
    """Disconnected Call Event."""

    reason: str | None = None
    result: str | None = None
    debit: V1Money | None = None
    user_rate: V1Money | None = None
    to: V1Callee | None = None
    duration: Seconds | None = None
    from_: str | None = field(default=None, name="from")
    call_headers: tuple[V1CallHeader, ...] | None = None


class V1Notify(V1EventBase, frozen=True, tag="notify"):
    """Notification Event."""

    conference_id: str | None = None
    type: str | None = None
    destination: str | None = None
    amd: V1Amd | None = None
    error_code: Int64 | None = None
    error_msg: str | None = None


#: The union the decoder decodes a body into, tagged on ``event``.
V1WireEvent = V1Ice | V1Ace | V1Pie | V1Dice | V1Notify
