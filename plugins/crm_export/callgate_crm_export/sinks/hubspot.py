"""HubSpot: one call engagement per call, through the CRM v3 calls API.

Properties sent (HubSpot's names and units):

=========================  ===================================================================
``hs_timestamp``           call start, Unix milliseconds (ICE time; else end minus duration)
``hs_call_duration``       duration in milliseconds
``hs_call_from_number``    caller, E.164 (left out when the caller is not a phone number)
``hs_call_to_number``      callee, E.164 (idem)
``hs_call_status``         COMPLETED, BUSY, NO_ANSWER, FAILED or CANCELED (see :func:`call_status`)
``hs_call_direction``      INBOUND or OUTBOUND (left out when unknown)
``hs_call_title``          e.g. "Inbound call from +46701234567 to +46850001234" ("from user alice": in-app)
``hs_call_body``           result, reason, Sinch debit and rate, our cost, who decided, callid
``hs_call_recording_url``  the recording, when its location is an https:// URL (HubSpot's rule);
                           any other location (s3://, azure://) is written in the body instead
``hs_call_disposition``    the GUID configured for the DICE result in ``dispositions``, if any
``hubspot_owner_id``       ``owner_id``, if configured
=========================  ===================================================================

Idempotency: HubSpot has no idempotency key for creating engagements.  With ``callid_property``
(a call property you create once with unique values, e.g. ``sinch_callid``), every delivery is
``POST /crm/v3/objects/calls/batch/upsert`` keyed by that property (the record's ``key``: the callid
for v1, ``v2:`` + the callid for a v2 leg): a retried or repeated request updates the same call.
Without it, the first version is ``POST /crm/v3/objects/calls``, HubSpot's id is kept, and later
versions ``PATCH /crm/v3/objects/calls/{id}``; a create whose response was lost (a timeout after
HubSpot stored it) can then leave a duplicate.  The Idempotency-Key header is sent on every request
regardless.
"""

from __future__ import annotations

import html
import json
from typing import Any

import aiohttp

from ..config import HubSpotSink
from ..outbox import Claim
from ..record import CallRecord, start_of
from ..retry import AttemptResult
from .base import http_request

CALLS_PATH = "/crm/v3/objects/calls"
#: DICE result -> hs_call_status.
STATUS_BY_RESULT = {"ANSWERED": "COMPLETED", "BUSY": "BUSY", "NOANSWER": "NO_ANSWER", "FAILED": "FAILED"}
#: For results that say nothing (N/A, missing): DICE reason -> hs_call_status.
STATUS_BY_REASON = {"CANCEL": "CANCELED", "CALLERHANGUP": "CANCELED", "TIMEOUT": "NO_ANSWER", "BLOCKED": "FAILED",
                    "NOCREDITPARTNER": "FAILED", "GENERALERROR": "FAILED", "CALLBACKERROR": "FAILED",
                    "USERNOTFOUND": "FAILED", "CONGESTION": "BUSY"}


def call_status(result: str | None, reason: str | None, duration: int | None) -> str:
    """hs_call_status for a DICE result/reason."""
    status = STATUS_BY_RESULT.get((result or "").upper())
    if status:
        return status
    status = STATUS_BY_REASON.get((reason or "").upper())
    if status:
        return status
    return "COMPLETED" if duration else "FAILED"


def _ms(seconds: float) -> str:
    return str(round(seconds * 1000))


def _amount_text(amount: Any) -> str:
    return "" if amount is None or amount.amount is None else f"{amount.amount} {amount.currency or ''}".strip()


def title(record: CallRecord) -> str:
    who = (f"user {record.caller.user}" if record.caller.user else None) or record.caller.number \
        or record.caller.raw or "unknown caller"
    whom = record.callee.number or record.callee.raw or "unknown callee"
    kind = {"inbound": "Inbound call", "outbound": "Outbound call"}.get(record.direction or "", "Call")
    return f"{kind} from {who} to {whom}"


def body(record: CallRecord) -> str:
    """The engagement's notes: what a person reading the CRM timeline wants to know (HTML lines)."""
    lines = [f"Result: {record.result or 'unknown'}" + (f" ({record.reason})" if record.reason else "")
             + (f", {record.duration_seconds} s" if record.duration_seconds is not None else "")]
    if record.debit is not None:
        lines.append(f"Sinch debit: {_amount_text(record.debit)}"
                     + (f" at {_amount_text(record.rate)}/min" if record.rate and record.rate.amount is not None else ""))
    if record.cost is not None:
        lines.append(f"Our cost: {_amount_text(record.cost)}" + (f" (account {record.cost.account})" if record.cost.account
                                                           else ""))
    if record.decision is not None:
        d = record.decision
        lines.append(f"Decided by: {d.decided_by} ({'allowed' if d.allowed else 'denied'}: {d.reason})"
                     + (f"; route {d.route}" if d.route else ""))
    if record.recording is not None and not record.recording.location.startswith("https://"):
        lines.append(f"Recording: {record.recording.location}")
    if record.transcription is not None:
        lines.append(f"Transcription: {record.transcription.location}")
    lines.append(f"Sinch callid: {record.callid}" + (f" (v2 session {record.session_id})" if record.session_id else ""))
    return "<br>".join(html.escape(line) for line in lines)


def properties(record: CallRecord, config: HubSpotSink) -> dict[str, str]:
    """The HubSpot call properties for a record (pure)."""
    props = {
        "hs_timestamp": _ms(start_of(record).timestamp()),
        "hs_call_duration": _ms(record.duration_seconds or 0),
        "hs_call_status": call_status(record.result, record.reason, record.duration_seconds),
        "hs_call_title": title(record),
        "hs_call_body": body(record),
    }
    if record.direction:
        props["hs_call_direction"] = record.direction.upper()
    if record.caller.number:
        props["hs_call_from_number"] = record.caller.number
    if record.callee.number:
        props["hs_call_to_number"] = record.callee.number
    if record.recording is not None and record.recording.location.startswith("https://"):
        props["hs_call_recording_url"] = record.recording.location
    disposition = config.dispositions.get((record.result or "").upper())
    if disposition:
        props["hs_call_disposition"] = disposition
    if config.owner_id:
        props["hubspot_owner_id"] = config.owner_id
    if config.callid_property:
        props[config.callid_property] = unique_id(record)
    return props


def unique_id(record: CallRecord) -> str:
    """What ``callid_property`` holds: the record's key (v1: the callid; v2: ``v2:`` + the leg's callid)."""
    return record.key or record.callid


class HubSpotSender:
    def __init__(self, config: HubSpotSink, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.session = session

    def _headers(self, claim: Claim) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.token.get_secret_value()}",
                "Content-Type": "application/json", "Idempotency-Key": claim.idempotency_key}

    async def send(self, claim: Claim) -> AttemptResult:
        record = CallRecord.model_validate_json(claim.record_json)
        props = properties(record, self.config)
        base = self.config.base_url + CALLS_PATH
        if self.config.callid_property:
            method, url = "POST", base + "/batch/upsert"
            payload: dict[str, Any] = {"inputs": [{"idProperty": self.config.callid_property, "id": unique_id(record),
                                                   "properties": props}]}
        elif claim.remote_id:
            method, url, payload = "PATCH", f"{base}/{claim.remote_id}", {"properties": props}
        else:
            method, url, payload = "POST", base, {"properties": props}
        result, answer = await http_request(self.session, method, url, body=json.dumps(payload).encode(),
                                            headers=self._headers(claim), timeout=self.config.timeout_seconds)
        if result.kind != "delivered":
            return result
        return self._created(result, answer)

    @staticmethod
    def _created(result: AttemptResult, answer: Any) -> AttemptResult:
        """HubSpot's id of the call; a batch answer listing errors (207) is not a delivery."""
        if isinstance(answer, dict) and answer.get("errors"):
            errors = "; ".join(str(e.get("message", e)) for e in answer["errors"] if isinstance(e, dict))
            return AttemptResult("permanent", result.status, f"HubSpot refused the call: {errors[:300]}")
        remote_id = None
        if isinstance(answer, dict):
            item = answer["results"][0] if isinstance(answer.get("results"), list) and answer["results"] else answer
            remote_id = str(item["id"]) if isinstance(item, dict) and item.get("id") is not None else None
        return AttemptResult.delivered(result.status, remote_id)

    async def close(self) -> None:
        """The session belongs to the plugin."""
