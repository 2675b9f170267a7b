"""Realistic callback bodies, shaped as Sinch sends them (``cli`` without ``+``, ``to`` as an object, ...).

Used by ``callgate sign`` and ``callgate simulate`` to build requests, and by
``callgate.testing`` as event factories.  Every function returns a plain dict;
keyword arguments not named are added to the body as they are (``**extra``), so
a test can send any field, including unknown ones.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

APPLICATION_KEY = "7f3c9e21-5b4a-4d8e-a1c2-93e0b7d4f615"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_callid() -> str:
    return str(uuid.uuid4())


def _base(event: str, callid: str | None, extra: dict[str, Any]) -> dict[str, Any]:
    body = {"event": event, "callid": callid or new_callid(), "timestamp": now(), "version": 1}
    if event != "notify":
        body["applicationKey"] = APPLICATION_KEY
    body.update(extra)
    return body


def ice(caller: str | None = "46701234567", to: str = "+46850001234", *, to_type: str = "number",
        domain: str = "pstn", origination: str = "PSTN", callid: str | None = None, **extra: Any) -> dict[str, Any]:
    """An Incoming Call Event: ``caller`` calls ``to``."""
    body = _base("ice", callid, {})
    body.update({
        "callResourceUrl": f"https://calling-euc1.api.sinch.com/calling/v1/calls/id/{body['callid']}",
        "userRate": {"currencyId": "EUR", "amount": 0.0},
        "to": {"type": to_type, "endpoint": to},
        "domain": domain,
        "originationType": origination,
        "rdnis": "",
    })
    if caller is not None:
        body["cli"] = caller
    body.update(extra)
    return body


def ace(callid: str | None = None, **extra: Any) -> dict[str, Any]:
    """An Answered Call Event."""
    return _base("ace", callid, extra)


def pie(callid: str | None = None, *, menu: str = "main", type: str = "sequence", value: str = "1",
        input_method: str = "dtmf", **extra: Any) -> dict[str, Any]:
    """A Prompt Input Event: menu ``menu`` produced ``type``/``value``."""
    menu_result = {"menuId": menu, "type": type, "value": value, "inputMethod": input_method}
    return _base("pie", callid, {"menuResult": menu_result, **extra})


def dice(callid: str | None = None, *, caller: str = "46701234567", to: str = "+46850001234",
         result: str = "ANSWERED", reason: str = "CALLERHANGUP", duration: int | None = 60,
         debit: float = 0.0083, rate: float = 0.0083, currency: str = "EUR", **extra: Any) -> dict[str, Any]:
    """A Disconnected Call Event: the call lasted ``duration`` seconds."""
    body = _base("dice", callid, {})
    body.update({
        "reason": reason, "result": result,
        "debit": {"currencyId": currency, "amount": debit},
        "userRate": {"currencyId": currency, "amount": rate},
        "to": {"type": "number", "endpoint": to},
        "from": caller,
    })
    if duration is not None:
        body["duration"] = duration
    body.update(extra)
    return body


def notify(callid: str | None = None, *, type: str = "recording_available",
           destination: str | None = "s3://recordings/call.mp3", **extra: Any) -> dict[str, Any]:
    """A Notify event (recording available by default)."""
    body = _base("notify", callid, {"type": type})
    body.pop("timestamp")
    if destination is not None:
        body["destination"] = destination
    body.update(extra)
    return body


BUILDERS = {"ice": ice, "ace": ace, "pie": pie, "dice": dice, "notify": notify}
