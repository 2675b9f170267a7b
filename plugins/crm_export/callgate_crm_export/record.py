"""The call record: the versioned JSON document every sink receives, and how it is built from a call's facts.

``CallRecord`` is the schema (``call-record.schema.json`` beside this module is generated from it,
and a test keeps the two equal).  ``schema_version`` changes only when a field changes meaning or
disappears; new optional fields may be added within a schema version, so receivers should ignore
fields they do not know.

``version`` is the record's own revision: 1 when the call ended, +1 each time something about the
same call is learnt later (a recording location, ICE facts that reached the database after the
DICE).  Receivers keep the highest ``version`` per ``key`` (the same as ``callid`` for v1 calls).

Both API generations produce the same record (schema version 1; ``generation``, ``key`` and
``session_id`` are optional fields added in 0.3).  A v2 call is one record per *leg*: the inbound
leg and each dialled leg end with their own event and each gets its own record, tied together by
``session_id``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from callgate.phone import PRIVATE, normalize, normalize_caller
from callgate.protocols.timestamps import parse_timestamp

from .facts import Facts, decimal_or_none

SCHEMA_VERSION: Literal[1] = 1
SCHEMA_ID = "urn:callgate:crm-export:call-record:1"
Direction = Literal["inbound", "outbound"]
#: ``to.type`` values whose endpoint is a phone number.
NUMBER_TYPES = frozenset({"did", "number"})


class _RecordModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Party(_RecordModel):
    """One end of the call."""

    number: str | None = Field(None, description="E.164 (+46701234567) when this end is a phone number, else null")
    raw: str | None = Field(None, description="The value exactly as Sinch sent it (a number without +, a user id, a SIP URI)")
    type: str | None = Field(None, description="caller: number, private or user; callee: the call's to.type "
                                                "(did, number, username, sip, conference; v2 also stream, "
                                                "voice_relay)")
    user: str | None = Field(default=None, description="The Sinch user id when this end is an in-app (SDK) user "
                                                        "(caller type user, callee type username), else null")


class Amount(_RecordModel):
    """Money, exact: the amount is a decimal string (never a float)."""

    amount: Decimal | None = Field(None, description="Decimal amount, serialised as a string")
    currency: str | None = Field(None, description="ISO-4217 currency code")


class OurCost(_RecordModel):
    """What callgate's credit_check charged for the call."""

    source: str = Field("credit_check", description="The plugin that priced the call")
    account: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    billed_seconds: int | None = None
    sinch_debit: Decimal | None = Field(None, description="Sinch's debit as credit_check saw it")


class RecordHeader(_RecordModel):
    key: str
    value: str


class Verdict(_RecordModel):
    """One plugin's answer to one hook during the ICE."""

    plugin: str
    hook: str
    verdict: str = Field(description="e.g. allow, deny: <reason>, route <name>, cli <number>, abstain")
    status: str = Field(description="ok, error or timeout")


class DecisionInfo(_RecordModel):
    """How the ICE was answered, and which plugin decided what."""

    allowed: bool
    decided_by: str = Field(description="The plugin whose Deny won, 'default', or the plugins that allowed")
    reason: str
    action: str | None = Field(None, description="The SVAML action sent to Sinch (v1 connectPstn, runMenu, hangup, "
                                                 "...; v2 dial, menu, hangup); null for a plugin's own SVAML")
    route: str | None = None
    routed_by: str | None = None
    cli: str | None = None
    max_duration: int | None = None
    outcomes: list[Verdict] = []


class Location(_RecordModel):
    """Where Sinch stored a recording or transcription (as a Notify reported it)."""

    location: str = Field(description="s3://..., azure://... or https://...")
    notified_at: datetime
    type: str = Field(description="The Notify type that reported it")


class CallRecord(_RecordModel):
    """One finished call, as exported to CRMs."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="callgate call record",
                              json_schema_extra={"$id": SCHEMA_ID})

    schema_version: Literal[1] = Field(SCHEMA_VERSION, description="The version of this schema")
    callid: str = Field(description="Sinch's call id (v2: this leg's callId)")
    version: int = Field(ge=1, description="Revision of this call's record: 1 at DICE, +1 per later update")
    key: str | None = Field(None, description="The record's key and the base of every delivery's idempotency key: "
                                              "the callid for v1, 'v2:' + the callid for v2")
    generation: Literal["v1", "v2"] = Field("v1", description="The Sinch Voice API generation of the call")
    session_id: str | None = Field(None, description="v2: the session grouping the legs of one interaction; "
                                                     "null for v1")
    application_key: str | None = Field(None, description="v1: the application key; v2: the service id")
    caller: Party
    callee: Party
    direction: Direction | None = Field(None, description="inbound: someone called the app's number (to.type did); "
                                                          "outbound: the app called a phone number or SIP "
                                                          "(to.type number, sip); null: in-app, conference, unknown")
    domain: str | None = Field(None, description="ICE domain: pstn, mxp, conference")
    origination_type: str | None = Field(None, description="ICE originationType: pstn or mxp")
    started_at: datetime | None = Field(None, description="ICE time; null when callgate saw no ICE for the call")
    answered_at: datetime | None = Field(None, description="ACE time (v2: the leg's answerTime, else "
                                                            "call.answered's time); null when not answered")
    ended_at: datetime = Field(description="DICE time (v2: the leg's endTime)")
    duration_seconds: int | None = Field(None, description="Sinch's duration (answered calls)")
    result: str | None = Field(None, description="The result as sent: v1 ANSWERED, BUSY, NOANSWER, FAILED, N/A; "
                                                 "v2 COMPLETED, BUSY, REJECTED, NO_ANSWER, CANCEL, FAILED")
    reason: str | None = Field(None, description="The reason as sent: v1 CALLERHANGUP, CALLEEHANGUP, TIMEOUT, ...; "
                                                 "v2 CALLER_HANGUP, CALLEE_HANGUP, ...")
    debit: Amount | None = Field(None, description="What Sinch charged for the call (v1 only; null for v2)")
    rate: Amount | None = Field(None, description="Sinch's per-minute rate")
    cost: OurCost | None = Field(None, description="Our price, when credit_check priced the call")
    custom: str | None = None
    call_headers: list[RecordHeader] = []
    decision: DecisionInfo | None = Field(None, description="The ICE decision; null when callgate saw no ICE")
    recording: Location | None = None
    transcription: Location | None = None
    updated_at: datetime = Field(description="When this version of the record was made")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the record (what ``call-record.schema.json`` holds)."""
    schema = CallRecord.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


# --- building -------------------------------------------------------------------------------

def _time(value: str | None) -> datetime | None:
    return parse_timestamp(value) if value else None


def _amount(value: dict[str, Any] | None) -> Amount | None:
    if not value:
        return None
    return Amount(amount=decimal_or_none(value.get("amount")), currency=value.get("currency"))


def caller_party(raw: str | None, user: str | None = None) -> Party:
    """The caller: a number (E.164), ``private``, or an in-app user.

    A Sinch SDK client calls with its user id in ``user`` and ``cli`` ``"private"`` (or the
    caller id the app presents): it is a ``user``, with the number when ``cli`` is one.  In a
    DICE alone, an in-app caller's user id is its ``from``.
    """
    normalised = normalize_caller(raw)
    user = user.strip() if user and user.strip() else None
    if user is not None:
        return Party(number=normalised if normalised != PRIVATE else None, raw=raw, type="user", user=user)
    if normalised == PRIVATE:
        return Party(number=None, raw=raw, type="private")
    if normalised is not None:
        return Party(number=normalised, raw=raw, type="number")
    if raw:
        return Party(number=None, raw=raw, type="user", user=raw)
    return Party()


def callee_party(to_type: str | None, endpoint: str | None) -> Party:
    """The callee: its number (E.164) when Sinch says it is one (did/number), else the endpoint as sent;
    an in-app user (``username``) also as ``user``."""
    number = normalize(endpoint) if endpoint and (to_type in NUMBER_TYPES or to_type is None) else None
    return Party(number=number, raw=endpoint, type=to_type, user=endpoint if to_type == "username" else None)


def direction_of(to_type: str | None, leg: str | None = None) -> Direction | None:
    """inbound when the app's own number (a DID) was called; outbound when the app called a phone number or
    a SIP endpoint; None for in-app (username) and conference calls, and when unknown.  ``leg`` is a v2 leg's
    own ``direction`` (``inbound``/``outbound``), which decides when given."""
    if leg in ("inbound", "outbound"):
        return "inbound" if leg == "inbound" else "outbound"
    if to_type == "did":
        return "inbound"
    if to_type in ("number", "sip"):
        return "outbound"
    return None


def build_record(key: str, facts: Facts, version: int, now: datetime) -> CallRecord:
    """The record for the call kept under ``key`` whose facts include its end (pure: same facts, same record).

    Facts written before 0.3 have no ``call`` section: they are a v1 call's, whose key is its callid.
    """
    call = facts.get("call") or {}
    dice = facts["dice"]
    ice = facts.get("ice") or {}
    decision = facts.get("decision")
    answer = facts.get("answer") or {}
    cost = facts.get("cost")
    to_type = ice.get("to_type") or dice.get("to_type")
    to_endpoint = ice.get("to_endpoint") or dice.get("to_endpoint")
    ended_at = _time(dice.get("timestamp")) or _time(dice.get("received_at")) or now
    headers = dice.get("call_headers") or ice.get("call_headers") or []
    return CallRecord(
        callid=call.get("callid") or key,
        version=version,
        key=key,
        generation=call.get("generation") or "v1",
        session_id=call.get("session_id"),
        application_key=dice.get("application_key") or ice.get("application_key"),
        caller=caller_party(ice["cli"] if ice.get("cli") is not None else dice.get("from"),
                            ice.get("user") or dice.get("user")),
        callee=callee_party(to_type, to_endpoint),
        direction=direction_of(to_type, dice.get("direction")),
        domain=ice.get("domain"),
        origination_type=ice.get("origination_type"),
        started_at=_time(ice.get("timestamp")),
        answered_at=_time(dice.get("answered_at")) or _time(answer.get("answered_at")),
        ended_at=ended_at,
        duration_seconds=dice.get("duration"),
        result=dice.get("result"),
        reason=dice.get("reason"),
        debit=_amount(dice.get("debit")),
        rate=_amount(dice.get("rate") or ice.get("rate")),
        cost=OurCost(**{**cost, "amount": decimal_or_none(cost.get("amount")),
                        "sinch_debit": decimal_or_none(cost.get("sinch_debit"))}) if cost else None,
        custom=dice.get("custom") if dice.get("custom") is not None else ice.get("custom"),
        call_headers=[RecordHeader(key=k, value=v) for k, v in headers],
        decision=DecisionInfo(**decision) if decision else None,
        recording=Location(**facts["recording"]) if facts.get("recording") else None,
        transcription=Location(**facts["transcription"]) if facts.get("transcription") else None,
        updated_at=now,
    )


def start_of(record: CallRecord) -> datetime:
    """When the call began, as well as it is known: ICE time, else end minus duration, else the end."""
    if record.started_at is not None:
        return record.started_at
    if record.duration_seconds:
        return record.ended_at - timedelta(seconds=record.duration_seconds)
    return record.ended_at
