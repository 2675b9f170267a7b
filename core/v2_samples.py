"""Realistic Voice API v2 webhook bodies, shaped as Sinch sends them to a service's webhook URL.

The v2 counterpart of :mod:`callgate.samples`: used by ``callgate sign`` and ``callgate simulate``
for ``call.*`` events, and by ``callgate.testing`` (the ``callgate_v2_events`` fixture).  Every
function returns a plain dict ``{"event": ..., "call": {...}, "menu": {...}?}`` that loads in the
official Python SDK's ``VoiceSinchEventRequest``.  Keyword arguments not named are added to the
``call`` object as they are, by their wire names (``**{"bridgeName": "main"}``), so that a test can
send any field, including unknown ones.

Numbers are E.164 (``+46701234567``); a caller or callee starting with ``sip:`` / ``sips:`` is a
SIP endpoint.  ``callid`` defaults to a fresh ULID-shaped id, ``session`` (``sessionId``, which
groups the legs of one interaction) to another; pass the ``call.incoming``'s to the events that
follow.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["END_EVENTS", "EVENTS", "NOTICE_EVENTS", "PROJECT_ID", "SERVICE_ID", "answered", "custom", "endpoint",
           "ended", "hangup", "incoming", "menu", "new_call_id", "notice", "now"]

#: The project and service of the samples (made up; ``callgate sign`` and the test client give their own
#: service id, the one that signs).
PROJECT_ID = "5f2c9a41-7d3e-4b8a-9c61-2e8f0d4b7a13"
SERVICE_ID = "b7e4c2d9-3a5f-4e61-8d2c-9f0a1b3c5e77"
#: The events that end a leg, and their usual ``callResult`` / ``callReason``.
END_EVENTS = {
    "call.hangup": ("COMPLETED", "CALLER_HANGUP"),
    "call.busy": ("BUSY", "NOT_AVAILABLE"),
    "call.rejected": ("REJECTED", "NOT_AVAILABLE"),
    "call.timeout": ("NO_ANSWER", "NOT_AVAILABLE"),
    "call.failed": ("FAILED", "ERROR"),
}
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def now(seconds_ago: float = 0) -> str:
    """The current time (less ``seconds_ago``) as Sinch writes it in a ``call``: RFC 3339, UTC, seconds, ``Z``."""
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_call_id() -> str:
    """A fresh id shaped as Sinch's (a 26-character ULID: Crockford Base32)."""
    return "".join(_CROCKFORD[b % 32] for b in os.urandom(26))


def endpoint(value: str) -> dict[str, Any]:
    """``+4670...`` -> a ``PHONE`` endpoint; ``sip:...`` / ``sips:...`` -> a ``SIP`` one."""
    if value.lower().startswith(("sip:", "sips:")):
        return {"type": "SIP", "sip": {"endpoint": value}}
    return {"type": "PHONE", "phone": {"number": value}}


def _call(callid: str | None, session: str | None, service_id: str, *, caller: str | None, to: str | None,
          direction: str, result: str, origination: str, rate: str, currency: str,
          fields: dict[str, Any]) -> dict[str, Any]:
    callid = callid or new_call_id()
    call: dict[str, Any] = {"callId": callid, "projectId": PROJECT_ID, "serviceId": service_id,
                            "sessionId": session or new_call_id()}
    if caller is not None:
        call["from"] = endpoint(caller)
    if to is not None:
        call["to"] = endpoint(to)
    call_type = "SIP" if to is not None and to.lower().startswith(("sip:", "sips:")) else "PHONE"
    call.update({
        "startTime": now(), "callType": call_type, "direction": direction, "callResult": result,
        "originationType": origination, "callRate": {"currencyCode": currency, "amount": rate},
        "callResourceUrl": f"https://voice.api.sinch.com/v2/projects/{PROJECT_ID}/calls/{callid}",
    })
    call.update(fields)
    return call


def incoming(caller: str | None = "+46701234567", to: str = "+46850001234", *, callid: str | None = None,
             session: str | None = None, service_id: str = SERVICE_ID, rate: str = "0.0030",
             currency: str = "EUR", **fields: Any) -> dict[str, Any]:
    """``call.incoming``: ``caller`` calls ``to`` (a number of the service); ``caller`` None: no ``from``."""
    call = _call(callid, session, service_id, caller=caller, to=to, direction="INBOUND", result="INITIATED",
                 origination="SIP" if caller and caller.lower().startswith(("sip:", "sips:")) else "PHONE",
                 rate=rate, currency=currency, fields=fields)
    return {"event": "call.incoming", "call": call}


def _answered_now(call_name: str | None) -> dict[str, Any]:
    """The fields of a leg answered just now (``updateTime``, ``answerTime``), named ``call_name`` if given."""
    stamp = now()
    fields: dict[str, Any] = {"updateTime": stamp, "answerTime": stamp}
    if call_name is not None:
        fields["callName"] = call_name
    return fields


def answered(callid: str | None = None, *, caller: str = "+46850001234", to: str = "+46731112233",
             session: str | None = None, service_id: str = SERVICE_ID, call_name: str | None = "callee",
             rate: str = "0.0095", currency: str = "EUR", **fields: Any) -> dict[str, Any]:
    """``call.answered``: the leg a ``dial`` created (named ``call_name``) was answered by ``to``."""
    extra = _answered_now(call_name)
    call = _call(callid, session, service_id, caller=caller, to=to, direction="OUTBOUND", result="IN_PROGRESS",
                 origination="SERVER", rate=rate, currency=currency, fields={**extra, **fields})
    return {"event": "call.answered", "call": call}


def menu(callid: str | None = None, *, menu: str = "main", input: str = "1#", caller: str = "+46701234567",
         to: str = "+46850001234", session: str | None = None, service_id: str = SERVICE_ID,
         call_name: str | None = "caller", rate: str = "0.0030", currency: str = "EUR",
         **fields: Any) -> dict[str, Any]:
    """``call.menu``: the menu ``menu`` collected ``input`` (with its terminating ``#``) on the inbound leg."""
    extra = _answered_now(call_name)
    call = _call(callid, session, service_id, caller=caller, to=to, direction="INBOUND", result="IN_PROGRESS",
                 origination="PHONE", rate=rate, currency=currency, fields={**extra, **fields})
    return {"event": "call.menu", "call": call, "menu": {"menuName": menu, "input": input}}


def ended(event: str = "call.hangup", callid: str | None = None, *, caller: str = "+46701234567",
          to: str = "+46850001234", duration: int | None = 60, result: str | None = None,
          reason: str | None = None, direction: str = "INBOUND", session: str | None = None,
          service_id: str = SERVICE_ID, call_name: str | None = "caller", rate: str = "0.0030",
          currency: str = "EUR", **fields: Any) -> dict[str, Any]:
    """An event that ends a leg (``call.hangup``, ``call.busy``, ``call.rejected``, ``call.timeout``,
    ``call.failed``), after ``duration`` seconds of talk; ``result`` / ``reason`` default to the event's
    usual ones (:data:`END_EVENTS`).  ``duration`` None: no ``callDurationSeconds``."""
    usual_result, usual_reason = END_EVENTS.get(event, ("COMPLETED", "OK"))
    stamp = now()
    # Answered ``duration`` seconds before it ended, and started then (ringing left out): the times agree with it.
    extra: dict[str, Any] = {"startTime": now(duration or 0), "updateTime": stamp, "endTime": stamp,
                             "callReason": reason or usual_reason}
    if duration is not None:
        extra["callDurationSeconds"] = duration
        if duration > 0:
            extra["answerTime"] = extra["startTime"]
    if call_name is not None:
        extra["callName"] = call_name
    call = _call(callid, session, service_id, caller=caller, to=to, direction=direction,
                 result=result or usual_result, origination="PHONE" if direction == "INBOUND" else "SERVER",
                 rate=rate, currency=currency, fields={**extra, **fields})
    return {"event": event, "call": call}


def hangup(callid: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """``call.hangup``: the leg ended (by default the inbound leg, after 60 s, ``COMPLETED``/``CALLER_HANGUP``)."""
    return ended("call.hangup", callid, **kwargs)


def custom(name: str = "custom", callid: str | None = None, *, caller: str = "+46701234567",
           to: str = "+46850001234", session: str | None = None, service_id: str = SERVICE_ID,
           **fields: Any) -> dict[str, Any]:
    """``call.webhook.<name>``: a ``webhook`` SVAML command ran (callgate answers it ``{"commands": []}``)."""
    call = _call(callid, session, service_id, caller=caller, to=to, direction="INBOUND", result="IN_PROGRESS",
                 origination="PHONE", rate="0.0030", currency="EUR", fields=fields)
    return {"event": f"call.webhook.{name}", "call": call}


#: The notices: what an ``amd``, ``messages`` or ``startRecording`` command without ``events`` reports
#: (:func:`notice`; callgate answers them ``{"commands": []}``).
NOTICE_EVENTS = ("call.amd.human", "call.amd.machine", "call.amd.beep", "call.amd.unknown", "call.message.finished",
                 "call.recording.finished", "call.recording.failed")


def notice(event: str, callid: str | None = None, *, caller: str = "+46850001234", to: str = "+46731112233",
           session: str | None = None, service_id: str = SERVICE_ID, **fields: Any) -> dict[str, Any]:
    """One of :data:`NOTICE_EVENTS` on a leg in progress, by default the dialled leg :func:`answered` describes: the
    event's name is its whole news (``call.amd.machine``); the call is the leg as it is."""
    return {**answered(callid, caller=caller, to=to, session=session, service_id=service_id, **fields), "event": event}


#: The events ``callgate sign`` / ``simulate`` build (``call.webhook.<name>``: :func:`custom`).
EVENTS = ("call.incoming", "call.answered", "call.menu", *END_EVENTS, *NOTICE_EVENTS)
