"""Sinch Voice API v2 wire types: the webhook events Sinch sends and the SVAML v2 answers callgate sends back.

Everything here is a :class:`msgspec.Struct`: decoded from JSON in C, with the path of a wrong
field in the error (``$.call.callId``), camelCase on the wire (``rename="camel"``), tagged unions
where the wire has a discriminator (``event``, ``command``, ``type``), and ``omit_defaults`` on the
answer side so that no ``null`` and no unset optional field ever reaches SVAML.  The event side is
``gc=False``: decoded from JSON and frozen, its objects cannot form a reference cycle, so the garbage
collector need not track the six or so of them each callback builds.  Nothing outside
``callgate.protocols.v2`` should import these types: the neutral model is built from them there.
Every class here is named ``V2...`` (``V2Call``, ``V2SayMessage``, ``V2DialCommand``; the ``menu`` object
of ``call.menu`` is :class:`V2MenuSelection`), so none shares a name with v1's SVAML
(:mod:`callgate.protocols.v1.svaml`) or the neutral model (:mod:`callgate.calls`).

Events (decoded by :func:`callgate.protocols.v2.decode.decode_v2_event`) are lenient like v1's:

* unknown fields are ignored (the caller keeps the raw body);
* open enums (``callType``, ``direction``, ``callResult``, ``callReason``, ``originationType``,
  an endpoint's ``type``) are plain strings kept as sent (upper case in every source, so not
  folded as v1 folds its mixed-case values); the constants below list the values known today,
  for documentation and tests only;
* only ``event``, ``call`` and ``call.callId`` are required (``menu`` too in ``call.menu``).

SVAML answers are strict: :func:`encode_v2_answer` checks what it wrote against these types
(lengths, patterns, ranges from Sinch's reference) and :func:`decode_v2_answer` refuses unknown
fields, so SVAML returned by a plugin is validated before it is sent.

Decisions where the sources disagree (numbers refer to ``sinch-voice-v2.md`` (f)):

* Body shape: ``{"event", "call", "menu"?}`` as in every SDK and test mock, not "only the
  ``call`` object" of the request-format page (f3).  ``call`` is required (Python SDK, Node 1.7;
  f17): callgate identifies a leg by ``call.callId``.
* Required fields: the SDK requires eleven fields of ``call``; callgate requires only ``callId``,
  because Sinch's own signing example sends ``{"call": {"callId": ...}}`` and nothing else,
  and a missing rate or time must not drop a live call.  Consumers treat absent values as unknown
  (``callDurationSeconds`` absent means 0 for billing).
* Custom events: the wire name ``call.webhook.<name>`` is decoded (:class:`V2CustomEvent`), and
  ``call.customEvent.<name>`` (the Python/Java SDK's rewritten name, f4) is accepted as the same.
  The command is written ``{"command": "webhook", "webhookName": ...}`` as on the wire.
* Event names are matched case-insensitively after stripping (as v1's); a custom event keeps the
  ``<name>`` part as sent.
* Timestamps are timezone-aware UTC: ``Z``/offsets and up to 9 fractional digits parse (rounded
  to microseconds by msgspec), a zone-less value (SDK mock servers, f15) is taken as UTC.
* ``callRate.amount`` is a :class:`~decimal.Decimal`: the documented string (``"0.0030"``) and,
  leniently, a JSON number (decoded exactly, never through a float; the SDK refuses numbers);
  NaN and infinities are refused.
* ``from``/``to`` are one :class:`V2CallParty` with an open ``type`` and the detail object of each
  known type, so a new endpoint type is kept (the SDK turns it into a raw fallback) instead of
  refusing the call.
* Answers always carry ``commands`` (``[]`` for "nothing to do", never ``{}``: f5);
  ``callName``/``events`` are written only when set (they take effect in answers to
  ``call.incoming`` only).
* ``V2DialCommand.events``: ``None`` writes no ``events`` (Sinch sends the leg's webhooks), an empty
  :class:`V2CallEvents` writes ``"events": {}`` (no webhooks: v1's ``suppressCallbacks``).
* ``callId`` is the only spelling (v1 also took ``callid``): every v2 source writes ``callId``.
  Control characters are refused in ``callId``, ``sessionId``, ``projectId``, ``serviceId`` and
  ``callName`` (what records are keyed by), as v1 refuses them in ``callid``.
* An unknown ``call.*`` event raises :class:`~callgate.protocols.v2.decode.UnknownCallEvent`
  (a :class:`~callgate.protocols.errors.UnknownEvent`), so the webhook can answer it ``{"commands": []}``
  with a warning; any other unknown name is a plain ``UnknownEvent``.
* The SDK (``sinch`` 2.3) writes the ``webhook`` command with its wire name but its response
  model refuses that name when reading (its union picks the member before the model maps
  ``webhook`` to ``customEvent``); callgate follows the wire (Sinch's pages, the Node SDK and
  the Python SDK's own serialiser).
* Limits checked on answers are those of Sinch's reference: names 1-32 characters without
  whitespace (menus 1-16, ``webhookName`` 1-64), E.164 numbers, ``sip:``/``sips:`` URIs, 1-10
  messages, text up to 600 characters, menu ranges, at most 16 SIP headers of printable ASCII.
  Durations are only required to be non-negative (no documented maximum).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import Meta, Struct, field

from callgate.protocols.errors import CALLID_MAX, SECONDS_MAX
from callgate.protocols.wording import OWN_WORDS, validation_message

__all__ = [
    # known values (documentation and tests only)
    "EVENT_NAMES", "END_EVENT_NAMES", "CALL_TYPES", "CALL_DIRECTIONS", "CALL_RESULTS", "CALL_REASONS",
    "ORIGINATION_TYPES", "CUSTOM_EVENT_PREFIX", "SDK_CUSTOM_EVENT_PREFIX",
    # events
    "V2CallRate", "V2PartyPhone", "V2PartySip", "V2PartyStream", "V2CallParty", "V2SipHeader", "V2Call", "V2MenuSelection",
    "V2EventBase", "V2TaggedEvent", "V2EndEvent", "V2AmdEvent", "V2RecordingEvent",
    "V2CallIncoming", "V2CallAnswered", "V2CallMenu", "V2CallHangup", "V2CallBusy", "V2CallRejected", "V2CallTimeout",
    "V2CallFailed", "V2AmdHuman", "V2AmdMachine", "V2AmdBeep", "V2AmdUnknown", "V2MessageFinished",
    "V2RecordingFinished", "V2RecordingFailed", "V2CustomEvent", "V2KnownEvent", "V2Event", "KNOWN_EVENT_TYPES",
    # SVAML v2
    "V2PhoneDetails", "V2Phone", "V2SipDetails", "V2Sip", "V2SipFromDetails", "V2SipFrom", "V2StreamOptions",
    "V2StreamDetails", "V2Stream", "V2VoiceRelayDetails", "V2VoiceRelay", "V2DialDestination", "V2DialOrigin",
    "V2Say", "V2SayMessage", "V2Play", "V2PlayMessage", "V2Message", "V2MenuPrompt", "V2MenuItem",
    "V2TranscriptionOptions", "V2RecordingOptions",
    "V2CallEvents", "V2MessageEvents", "V2AmdEvents", "V2RecordingEvents", "V2IncomingCallEvents",
    "V2SipCallHeader", "V2AnswerCommand", "V2HangupCommand", "V2DialCommand", "V2BridgeCallCommand", "V2MessagesCommand",
    "V2StopMessagesCommand", "V2MenuCommand", "V2GotoMenuCommand", "V2PauseCommand", "V2AmdCommand", "V2StartRecordingCommand",
    "V2StopRecordingCommand", "V2WebhookCommand", "V2Command", "V2Answer",
    "InvalidV2Answer", "encode_v2_answer", "decode_v2_answer", "error_path",
]

# --------------------------------------------------------------------------- known values
# Documentation and tests only: decoding never rejects a value missing from these.

#: The ``event`` values callgate decodes into a type of its own (custom events come on top).
EVENT_NAMES = frozenset({
    "call.incoming", "call.answered", "call.menu", "call.hangup", "call.busy", "call.rejected", "call.timeout",
    "call.failed", "call.amd.human", "call.amd.machine", "call.amd.beep", "call.amd.unknown",
    "call.message.finished", "call.recording.finished", "call.recording.failed",
})
#: Events that report the end of a leg (v1: DICE).
END_EVENT_NAMES = frozenset({"call.hangup", "call.busy", "call.rejected", "call.timeout", "call.failed"})
#: ``call.webhook.<name>``: sent by a ``webhook`` command.
CUSTOM_EVENT_PREFIX = "call.webhook."
#: The Python and Java SDKs' rewrite of :data:`CUSTOM_EVENT_PREFIX`, accepted as the same.
SDK_CUSTOM_EVENT_PREFIX = "call.customEvent."
CALL_TYPES = frozenset({"PHONE", "SIP", "STREAM", "VOICE_RELAY"})
CALL_DIRECTIONS = frozenset({"INBOUND", "OUTBOUND"})
CALL_RESULTS = frozenset({"QUEUED", "INITIATED", "IN_PROGRESS", "COMPLETED", "REJECTED", "NO_ANSWER", "CANCEL",
                          "BUSY", "FAILED"})
CALL_REASONS = frozenset({"OK", "NOT_AVAILABLE", "CALLER_HANGUP", "CALLEE_HANGUP", "MANAGER_HANGUP",
                          "DID_NOT_FOUND", "INVALID_SCRIPT", "UNKNOWN_PRODUCT", "NO_MORE_ROUTES", "ERROR"})
ORIGINATION_TYPES = frozenset({"PHONE", "SIP", "SERVER"})

#: Integer fields hold 64-bit values, as in v1: a larger one would break every consumer downstream.
Int64 = Annotated[int, Meta(ge=-(2 ** 63), le=2 ** 63 - 1)]

_UTC = timezone.utc


#: The call's times: each field and its wire name.
_TIMES = (("start_time", "startTime"), ("update_time", "updateTime"), ("answer_time", "answerTime"),
          ("end_time", "endTime"))


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is _UTC:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=_UTC)
    return value.astimezone(_UTC)


# --------------------------------------------------------------------------- the call object (events)

class V2CallRate(Struct, rename="camel", frozen=True, gc=False, kw_only=True):
    """``callRate``: a per-minute rate.  ``amount`` is exact (a Decimal of the literal, never a float)."""

    currency_code: str | None = None
    amount: Decimal | None = None


class V2SipHeader(Struct, frozen=True, gc=False, kw_only=True):
    """One entry of a SIP/stream endpoint's ``callHeaders``."""

    key: str
    value: str | None = None


class V2PartyPhone(Struct, frozen=True, gc=False, kw_only=True):
    """``{"number": "+46..."}`` of a ``PHONE`` party."""

    number: str | None = None


class V2PartySip(Struct, rename="camel", frozen=True, gc=False, kw_only=True):
    """``sip`` of a ``SIP`` party: the URI, and the display name (origin) or transport and headers (destination)."""

    endpoint: str | None = None
    display_name: str | None = None
    transport: str | None = None
    call_headers: tuple[V2SipHeader, ...] | None = None


class V2PartyStream(Struct, rename="camel", frozen=True, gc=False, kw_only=True):
    """``stream`` / ``voiceRelay`` of a ``STREAM`` / ``VOICE_RELAY`` destination: its WebSocket URL."""

    endpoint: str | None = None


class V2CallParty(Struct, rename="camel", frozen=True, gc=False, kw_only=True):
    """``call.from`` / ``call.to``: ``type`` as sent (``PHONE``, ``SIP``, ``STREAM``, ``VOICE_RELAY``, or a newer
    one) and the detail object of that type."""

    type: str | None = None
    phone: V2PartyPhone | None = None
    sip: V2PartySip | None = None
    stream: V2PartyStream | None = None
    voice_relay: V2PartyStream | None = None

    @property
    def endpoint(self) -> str | None:
        """The number (``PHONE``) or URI (``SIP``, ``STREAM``, ``VOICE_RELAY``) of this party; None when unknown."""
        kind = self.type
        if kind != "PHONE":  # Sinch writes it so; only another type, or another spelling, needs folding
            kind = (kind or "").strip().upper()
        if kind == "PHONE":
            return self.phone.number if self.phone is not None else None
        detail = (self.sip if kind == "SIP" else self.stream if kind == "STREAM"
                  else self.voice_relay if kind == "VOICE_RELAY" else None)
        return detail.endpoint if detail is not None else None


class V2Call(Struct, rename="camel", frozen=True, gc=False, kw_only=True):
    """The ``call`` object: the state of this leg when the event fired.

    ``call_id`` identifies the leg, ``session_id`` groups all legs of one interaction; ``call_name``
    is the name given by the answer or ``dial``.  Times are aware UTC datetimes; ``call_rate`` is
    per minute; ``call_duration_seconds`` counts from answer to end.  Enum-like fields are strings
    as sent (see ``CALL_TYPES``, ``CALL_RESULTS``, ... of this module).
    """

    call_id: Annotated[str, Meta(min_length=1, max_length=CALLID_MAX)]
    project_id: str | None = None
    service_id: str | None = None
    session_id: Annotated[str, Meta(min_length=1, max_length=CALLID_MAX)] | None = None
    call_name: str | None = None
    bridge_name: str | None = None
    batch_id: str | None = None
    from_: V2CallParty | None = field(default=None, name="from")
    to: V2CallParty | None = None
    start_time: datetime | None = None
    update_time: datetime | None = None
    answer_time: datetime | None = None
    end_time: datetime | None = None
    call_type: str | None = None
    direction: str | None = None
    call_duration_seconds: Annotated[int, Meta(ge=-(2 ** 63), le=SECONDS_MAX)] | None = None
    call_result: str | None = None
    call_reason: str | None = None
    origination_type: str | None = None
    call_rate: V2CallRate | None = None
    call_resource_url: str | None = None

    def __post_init__(self) -> None:
        # msgspec decodes Sinch's "...Z" as timezone.utc already: only an offset or a zone-less time (rare) is
        # converted.  The four tested in one expression first: about 1.4k instructions less per call than the loop.
        start, update, answer, end = self.start_time, self.update_time, self.answer_time, self.end_time
        if ((start is None or start.tzinfo is _UTC) and (update is None or update.tzinfo is _UTC)
                and (answer is None or answer.tzinfo is _UTC) and (end is None or end.tzinfo is _UTC)):
            return
        for name, wire_name in _TIMES:
            value = getattr(self, name)
            if value is not None and value.tzinfo is not _UTC:
                try:
                    msgspec.structs.force_setattr(self, name, _utc(value))
                except OverflowError:            # a ValueError is what msgspec turns into a ValidationError
                    raise ValueError(f"{OWN_WORDS}{wire_name}: a date-time out of range once converted to UTC (years "
                                     f"1 to 9999)") from None


class V2MenuSelection(Struct, rename="camel", frozen=True, gc=False, kw_only=True):
    """``menu`` of ``call.menu`` (and of custom events fired inside a menu): the menu's name and the input
    collected, terminating sequence included.  Both are None when Sinch leaves them out."""

    menu_name: str | None = None
    input: str | None = None


# --------------------------------------------------------------------------- events

class V2EventBase(Struct, rename="camel", frozen=True, gc=False, kw_only=True):
    """What every v2 webhook event carries: the ``call`` (this leg's state)."""

    call: V2Call


class V2TaggedEvent(V2EventBase, frozen=True, tag_field="event"):
    """An event with a fixed name, decoded through the tagged union on ``event``."""

    @property
    def event(self) -> str:
        """The event name as callgate stores it (``call.incoming``, ...)."""
        # From a table: msgspec builds a new StructConfig on every __struct_config__ (about 1k instructions).
        return _EVENT_NAMES.get(type(self)) or str(self.__struct_config__.tag)


class V2CallIncoming(V2TaggedEvent, frozen=True, tag="call.incoming"):
    """An inbound call reached a service whose behaviour is ``WEBHOOK`` (v1: ICE).  Answer with commands."""


class V2CallAnswered(V2TaggedEvent, frozen=True, tag="call.answered"):
    """A leg dialled without ``events`` was answered (v1: ACE); ``call`` is the answered leg."""


class V2CallMenu(V2TaggedEvent, frozen=True, tag="call.menu"):
    """A ``menu`` item collected input that matched nothing and has no ``onFailure`` (v1: PIE)."""

    menu: V2MenuSelection


class V2EndEvent(V2TaggedEvent, frozen=True):
    """A leg ended (v1: DICE): ``call.call_result``, ``call_reason``, ``call_duration_seconds``, ``call_rate``."""


class V2CallHangup(V2EndEvent, frozen=True, tag="call.hangup"):
    """A leg was disconnected."""


class V2CallBusy(V2EndEvent, frozen=True, tag="call.busy"):
    """A dialled callee was busy."""


class V2CallRejected(V2EndEvent, frozen=True, tag="call.rejected"):
    """A dialled callee rejected the call."""


class V2CallTimeout(V2EndEvent, frozen=True, tag="call.timeout"):
    """A dialled callee did not answer within ``dialTimeoutDurationSeconds``."""


class V2CallFailed(V2EndEvent, frozen=True, tag="call.failed"):
    """A dialled call could not be set up."""


class V2AmdEvent(V2TaggedEvent, frozen=True):
    """An ``amd`` command without ``events`` reported its result; the result is the event name."""


class V2AmdHuman(V2AmdEvent, frozen=True, tag="call.amd.human"):
    """AMD detected a person."""


class V2AmdMachine(V2AmdEvent, frozen=True, tag="call.amd.machine"):
    """AMD detected an answering machine."""


class V2AmdBeep(V2AmdEvent, frozen=True, tag="call.amd.beep"):
    """AMD detected a voicemail beep."""


class V2AmdUnknown(V2AmdEvent, frozen=True, tag="call.amd.unknown"):
    """AMD could not decide."""


class V2MessageFinished(V2TaggedEvent, frozen=True, tag="call.message.finished"):
    """All messages of a ``messages`` command without ``events`` were played."""


class V2RecordingEvent(V2TaggedEvent, frozen=True):
    """A ``startRecording`` without ``events`` reported on its recording."""


class V2RecordingFinished(V2RecordingEvent, frozen=True, tag="call.recording.finished"):
    """The recording stopped (the file may not be delivered yet)."""


class V2RecordingFailed(V2RecordingEvent, frozen=True, tag="call.recording.failed"):
    """The recording could not start."""


class V2CustomEvent(V2EventBase, frozen=True):
    """``call.webhook.<name>``: a ``webhook`` command ran.  ``event`` is the name as sent; ``menu`` is set when the
    command ran inside a menu.  Answer with the commands that continue the flow."""

    event: str
    menu: V2MenuSelection | None = None

    @property
    def webhook_name(self) -> str:
        """The ``<name>`` of ``call.webhook.<name>`` (the command's ``webhookName``), as sent."""
        for prefix in (CUSTOM_EVENT_PREFIX, SDK_CUSTOM_EVENT_PREFIX):
            if self.event[:len(prefix)].lower() == prefix.lower():
                return self.event[len(prefix):]
        return self.event


V2KnownEvent = (V2CallIncoming | V2CallAnswered | V2CallMenu | V2CallHangup | V2CallBusy | V2CallRejected | V2CallTimeout
                | V2CallFailed | V2AmdHuman | V2AmdMachine | V2AmdBeep | V2AmdUnknown | V2MessageFinished
                | V2RecordingFinished | V2RecordingFailed)
V2Event = V2KnownEvent | V2CustomEvent

#: Event name -> its type, for the events with a fixed name.
KNOWN_EVENT_TYPES: dict[str, type[V2TaggedEvent]] = {
    str(cls.__struct_config__.tag): cls
    for cls in (V2CallIncoming, V2CallAnswered, V2CallMenu, V2CallHangup, V2CallBusy, V2CallRejected, V2CallTimeout,
                V2CallFailed, V2AmdHuman, V2AmdMachine, V2AmdBeep, V2AmdUnknown, V2MessageFinished, V2RecordingFinished,
                V2RecordingFailed)
}
#: Type -> its event name (:attr:`V2TaggedEvent.event`).
_EVENT_NAMES: dict[type, str] = {cls: name for name, cls in KNOWN_EVENT_TYPES.items()}


# --------------------------------------------------------------------------- SVAML v2: limits

_NO_SPACE = r"^\S+$"
#: ``callName``, ``messagesName``, ``recordingName``: 1-32 characters, no whitespace.
Name = Annotated[str, Meta(min_length=1, max_length=32, pattern=_NO_SPACE)]
#: A menu's name (``startMenu``, ``gotoMenu.menuName``, keys of ``menus``): 1-16 characters.
MenuName = Annotated[str, Meta(min_length=1, max_length=16, pattern=_NO_SPACE)]
#: ``bridgeName``: no documented limit besides being a name; non-empty, no whitespace.
BridgeName = Annotated[str, Meta(min_length=1, pattern=_NO_SPACE)]
E164 = Annotated[str, Meta(pattern=r"^\+[1-9][0-9]{1,14}$")]
NonEmpty = Annotated[str, Meta(min_length=1)]
Seconds = Annotated[int, Meta(ge=0, le=2 ** 31 - 1)]
_HEADER_TEXT = r"^[\x20-\x7e\t]*$"


class _Svaml(Struct, rename="camel", omit_defaults=True, forbid_unknown_fields=True, kw_only=True):
    """Base of the SVAML v2 types: camelCase, unset optional fields left out, unknown fields refused on decode."""


# --------------------------------------------------------------------------- SVAML v2: endpoints

class V2SipCallHeader(_Svaml):
    """A SIP header sent with a ``dial`` to SIP or a stream: printable ASCII, key 1-255, value at most 255."""

    key: Annotated[str, Meta(min_length=1, max_length=255, pattern=_HEADER_TEXT)]
    value: Annotated[str, Meta(max_length=255, pattern=_HEADER_TEXT)] | None = None


_Headers = Annotated[list[V2SipCallHeader], Meta(max_length=16)]


class V2PhoneDetails(_Svaml):
    """``{"number": "+46..."}``: an E.164 number."""

    number: E164


class V2Phone(_Svaml, tag_field="type", tag="PHONE"):
    """``{"type": "PHONE", "phone": {...}}``: a PSTN number, as ``dial.to`` or ``dial.from``."""

    phone: V2PhoneDetails


class V2SipDetails(_Svaml):
    """A SIP destination: ``sip:``/``sips:`` URI (at most 256), transport (``UDP``, ``TCP``, ``TLS``), headers."""

    endpoint: Annotated[str, Meta(max_length=256, pattern=r"^sips?:")]
    transport: str | None = None
    call_headers: _Headers | None = None


class V2Sip(_Svaml, tag_field="type", tag="SIP"):
    """``{"type": "SIP", "sip": {...}}`` as ``dial.to``."""

    sip: V2SipDetails


class V2SipFromDetails(_Svaml):
    """A SIP origin: URI (at most 192) and the display name shown to the callee (at most 64)."""

    endpoint: Annotated[str, Meta(max_length=192, pattern=r"^sips?:")]
    display_name: Annotated[str, Meta(max_length=64)] | None = None


class V2SipFrom(_Svaml, tag_field="type", tag="SIP"):
    """``{"type": "SIP", "sip": {...}}`` as ``dial.from``."""

    sip: V2SipFromDetails


class V2StreamOptions(_Svaml):
    """Audio format of a stream (protocol version, ``PCM``, sample rate in Hz)."""

    version: int | None = None
    codec: str | None = None
    sample_rate: int | None = None


class V2StreamDetails(_Svaml):
    """A WebSocket (``ws://``/``wss://``) audio stream."""

    endpoint: NonEmpty
    stream_options: V2StreamOptions | None = None
    call_headers: _Headers | None = None


class V2Stream(_Svaml, tag_field="type", tag="STREAM"):
    """``{"type": "STREAM", "stream": {...}}`` as ``dial.to``."""

    stream: V2StreamDetails


class V2VoiceRelayDetails(_Svaml):
    """Speech-to-text and text-to-speech over a WebSocket."""

    endpoint: NonEmpty
    tts_voice: NonEmpty
    stt_language: NonEmpty
    enable_interruptions: bool | None = None
    call_headers: _Headers | None = None


class V2VoiceRelay(_Svaml, tag_field="type", tag="VOICE_RELAY"):
    """``{"type": "VOICE_RELAY", "voiceRelay": {...}}`` as ``dial.to``."""

    voice_relay: V2VoiceRelayDetails


V2DialDestination = V2Phone | V2Sip | V2Stream | V2VoiceRelay
V2DialOrigin = V2Phone | V2SipFrom


# --------------------------------------------------------------------------- SVAML v2: messages, menus, recordings

class V2Say(_Svaml):
    """Text to speech: at most 600 characters, in a voice (``Emma``, ...; the voice implies the language);
    ``format`` ``TEXT`` (default) or ``SSML``."""

    text: Annotated[str, Meta(min_length=1, max_length=600)]
    voice_name: NonEmpty
    format: str | None = None


class V2SayMessage(_Svaml, tag_field="type", tag="SAY"):
    """``{"type": "SAY", "say": {...}}``."""

    say: V2Say


class V2Play(_Svaml):
    """An audio file to play."""

    url: NonEmpty


class V2PlayMessage(_Svaml, tag_field="type", tag="PLAY"):
    """``{"type": "PLAY", "play": {...}}``."""

    play: V2Play


V2Message = V2SayMessage | V2PlayMessage
_MessageList = Annotated[list[V2Message], Meta(min_length=1, max_length=10)]


class V2MenuPrompt(_Svaml):
    """What a menu item plays: 1-10 messages; barge-in allowed by default."""

    messages: _MessageList
    allow_barge_in: bool | None = None


class V2MenuItem(_Svaml):
    """One menu: prompt, input limits, ``matches`` (input or regex -> commands) and ``onFailure``."""

    prompt: V2MenuPrompt | None = None
    repeat_prompt: V2MenuPrompt | None = None
    input_timeout_duration_seconds: Annotated[int, Meta(ge=1, le=60)] | None = None
    repeat_count: Annotated[int, Meta(ge=0, le=10)] | None = None
    minimum_input_length: Annotated[int, Meta(ge=1, le=100)] | None = None
    maximum_input_length: Annotated[int, Meta(ge=1, le=100)] | None = None
    terminating_sequence: Annotated[str, Meta(max_length=10, pattern=r"^[0-9*#]+$")] | None = None
    input_methods: list[str] | None = None
    matches: Annotated[dict[Annotated[str, Meta(min_length=1, max_length=256)], list[V2Command]],
                       Meta(max_length=50)] | None = None
    on_failure: list[V2Command] | None = None


class V2TranscriptionOptions(_Svaml):
    """Transcription of a recording (``locale`` BCP-47, default ``en-US``)."""

    is_enabled: bool
    locale: str | None = None


class V2RecordingOptions(_Svaml):
    """Where a recording goes: ``destination`` ``AWS``/``GCP``/``AZURE``, its URL and credentials;
    ``format`` ``MP3``/``WAV``; ``recordingType`` ``COMBINED``/``INBOUND``/``OUTBOUND``."""

    destination: NonEmpty
    destination_url: NonEmpty
    credentials: str
    format: str | None = None
    recording_type: str | None = None
    transcription_options: V2TranscriptionOptions | None = None


# --------------------------------------------------------------------------- SVAML v2: event handlers

class V2CallEvents(_Svaml):
    """``dial.events``: commands for the dialled leg's outcomes.  An empty one suppresses the leg's webhooks."""

    on_answer: list[V2Command] | None = None
    on_busy: list[V2Command] | None = None
    on_reject: list[V2Command] | None = None
    on_timeout: list[V2Command] | None = None
    on_hangup: list[V2Command] | None = None
    on_failure: list[V2Command] | None = None


class V2MessageEvents(_Svaml):
    """``messages.events``: commands when all messages were played."""

    on_finish: list[V2Command] | None = None


class V2AmdEvents(_Svaml):
    """``amd.events``: commands per AMD result."""

    on_human: list[V2Command] | None = None
    on_machine: list[V2Command] | None = None
    on_beep: list[V2Command] | None = None
    on_unknown: list[V2Command] | None = None


class V2RecordingEvents(_Svaml):
    """``startRecording.events``: commands when the recording stopped or could not start."""

    on_finish: list[V2Command] | None = None
    on_failure: list[V2Command] | None = None


class V2IncomingCallEvents(_Svaml):
    """An answer's ``events`` (answers to ``call.incoming`` only): commands when the inbound leg hangs up."""

    on_hangup: list[V2Command] | None = None


# --------------------------------------------------------------------------- SVAML v2: commands

class _Command(_Svaml, tag_field="command"):
    """A SVAML v2 command: ``{"command": "<tag>", ...}``."""

    @property
    def command(self) -> str:
        """The command's wire name."""
        return str(self.__struct_config__.tag)


class V2AnswerCommand(_Command, tag="answer"):
    """Answer the inbound leg."""


class V2HangupCommand(_Command, tag="hangup"):
    """Hang up the leg named ``call_name`` (default: the current leg)."""

    call_name: Name | None = None


class V2DialCommand(_Command, tag="dial"):
    """Start a new leg to ``to`` (PSTN, SIP, stream, voice relay) from ``from_``, ringing at most
    ``dial_timeout_duration_seconds`` and lasting at most ``max_call_duration_seconds``."""

    to: V2DialDestination
    from_: V2DialOrigin | None = field(default=None, name="from")
    call_name: Name | None = None
    dial_timeout_duration_seconds: Seconds | None = None
    max_call_duration_seconds: Seconds | None = None
    events: V2CallEvents | None = None


class V2BridgeCallCommand(_Command, tag="bridgeCall"):
    """Join the current leg to the bridge ``bridge_name`` (created on first use, within the session)."""

    bridge_name: BridgeName


class V2MessagesCommand(_Command, tag="messages"):
    """Play 1-10 messages (say or play) on the current leg."""

    messages: _MessageList
    messages_name: Name | None = None
    events: V2MessageEvents | None = None


class V2StopMessagesCommand(_Command, tag="stopMessages"):
    """Stop the messages named ``messages_name``."""

    messages_name: Name


class V2MenuCommand(_Command, tag="menu"):
    """Collect DTMF input: start with menu ``start_menu`` of ``menus``."""

    start_menu: MenuName
    menus: dict[MenuName, V2MenuItem]


class V2GotoMenuCommand(_Command, tag="gotoMenu"):
    """Go to another menu (only inside a menu item's ``matches``/``onFailure``)."""

    menu_name: MenuName


class V2PauseCommand(_Command, tag="pause"):
    """Wait ``duration_milliseconds`` before the next command."""

    duration_milliseconds: Annotated[int, Meta(ge=0, le=2 ** 31 - 1)]


class V2AmdCommand(_Command, tag="amd"):
    """Answering-machine detection; without ``events`` the result comes as ``call.amd.*`` webhooks."""

    events: V2AmdEvents | None = None


class V2StartRecordingCommand(_Command, tag="startRecording"):
    """Record the call to ``recording_options.destination_url``."""

    recording_options: V2RecordingOptions
    recording_name: Name | None = None
    events: V2RecordingEvents | None = None


class V2StopRecordingCommand(_Command, tag="stopRecording"):
    """Stop the recording named ``recording_name``."""

    recording_name: Name


class V2WebhookCommand(_Command, tag="webhook"):
    """Send ``call.webhook.<webhook_name>`` to ``url`` and continue with its answer (the SDK calls it ``customEvent``)."""

    webhook_name: Annotated[str, Meta(min_length=1, max_length=64, pattern=_NO_SPACE)]
    url: NonEmpty
    fallback_url: str | None = None


V2Command = (V2AnswerCommand | V2HangupCommand | V2DialCommand | V2BridgeCallCommand | V2MessagesCommand
             | V2StopMessagesCommand | V2MenuCommand | V2GotoMenuCommand | V2PauseCommand | V2AmdCommand
             | V2StartRecordingCommand | V2StopRecordingCommand | V2WebhookCommand)


class V2Answer(_Svaml):
    """The answer to a v2 webhook: ``{"commands": [...]}``, plus ``callName`` and ``events`` (which take effect
    in answers to ``call.incoming`` only).  ``commands`` is always written, ``[]`` when there is nothing to do."""

    #: Marks v2's own SVAML for the protocol-neutral core (:func:`callgate.plan.svaml_generation`).
    svaml_generation: ClassVar[str] = "v2"

    commands: list[V2Command]
    call_name: Name | None = None
    events: V2IncomingCallEvents | None = None

    def summary(self) -> str:
        """This answer in a few words (a plugin's verdict in the log line): its type's name."""
        return type(self).__name__


# --------------------------------------------------------------------------- encoding

class InvalidV2Answer(ValueError):
    """An answer that is not valid SVAML v2 (a name too long, a number not E.164, ...).  ``message`` names the
    field path (``commands[1].to.phone.number``) and never holds the value."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_ENCODER = msgspec.json.Encoder()
_ANSWER_DECODER = msgspec.json.Decoder(V2Answer)
_MISSING = re.compile(r"Object missing required field `([^`]*)`")
_AT = re.compile(r"^(?P<message>.*?)(?: - at `(?P<path>[^`]*)`(?: in `(?P<container>[^`]*)`)?)?$", re.DOTALL)


def error_path(exc: msgspec.ValidationError) -> tuple[str, str]:
    """``(path, message)`` of a msgspec validation error: ``("call.callId", "expected a string, got an integer")``.

    The path is dotted without msgspec's leading ``$.`` (``""`` for the document itself); a
    dictionary key that failed is named ``menus (a key)``; a missing required field is
    ``("call.callId", "missing")``.  The message is callgate's own (:func:`~callgate.protocols.wording.validation_message`):
    the types and limits, never the offending value.
    """
    match = _AT.match(str(exc))
    assert match is not None  # the pattern matches any text
    message = match["message"]
    path = match["path"] or ""
    if path.startswith("$"):
        path = path[1:].lstrip(".")
    elif path:
        container = (match["container"] or "$")[1:].lstrip(".")
        path = f"{container} (a {path})" if container else f"({path})"
    missing = _MISSING.fullmatch(message)
    if missing is not None:  # named like v1's "callid: missing"
        return (f"{path}.{missing[1]}" if path else missing[1]), "missing"
    return path, validation_message(message)


def _svaml_error(exc: msgspec.ValidationError) -> InvalidV2Answer:
    path, message = error_path(exc)
    return InvalidV2Answer(f"{path or 'answer'}: {message}")


def encode_v2_answer(answer: V2Answer) -> bytes:
    """The JSON body of ``answer``: camelCase, unset optional fields left out, ``commands`` always present.

    The bytes are checked against the SVAML v2 types before they are returned (a decode, a few
    microseconds): an answer built in code with, say, a 40-character ``callName`` raises
    :class:`InvalidV2Answer` instead of reaching Sinch, which would drop the call.
    """
    body = _ENCODER.encode(answer)
    try:
        _ANSWER_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise _svaml_error(exc) from None
    return body


def decode_v2_answer(body: bytes | str | Any) -> V2Answer:
    """A SVAML v2 answer from JSON text (``bytes``/``str``) or from built-in objects (a plugin's ``dict``).

    Unknown fields and commands are refused; raises :class:`InvalidV2Answer` naming the field path.
    """
    try:
        if isinstance(body, (bytes, bytearray, memoryview, str)):
            return _ANSWER_DECODER.decode(body)
        return msgspec.convert(body, V2Answer)
    except msgspec.ValidationError as exc:  # a subclass of DecodeError: first
        raise _svaml_error(exc) from None
    except msgspec.DecodeError:
        raise InvalidV2Answer("answer: not JSON") from None
