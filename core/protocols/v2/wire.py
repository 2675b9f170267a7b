"""Sinch Voice API v2 wire types: the webhook events Sinch sends and the SVAML v2 answers callgate sends back.

Everything here is a :class:`msgspec.Struct`: decoded from JSON in C, with the path of a wrong
field in the error (``$.call.callId``), camelCase on the wire (``rename="camel"``), tagged unions
where the wire has a discriminator (``event``, ``command``, ``type``), and ``omit_defaults`` on the
answer side so that no ``null`` and no unset optional field ever reaches SVAML.  Nothing outside
``callgate.protocols.v2`` should import these types: the neutral model is built from them there.

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
* Custom events: the wire name ``call.webhook.<name>`` is decoded (:class:`CustomEvent`), and
  ``call.customEvent.<name>`` (the Python/Java SDK's rewritten name, f4) is accepted as the same.
  The command is written ``{"command": "webhook", "webhookName": ...}`` as on the wire.
* Event names are matched case-insensitively after stripping (as v1's); a custom event keeps the
  ``<name>`` part as sent.
* Timestamps are timezone-aware UTC: ``Z``/offsets and up to 9 fractional digits parse (rounded
  to microseconds by msgspec), a zone-less value (SDK mock servers, f15) is taken as UTC.
* ``callRate.amount`` is a :class:`~decimal.Decimal`: the documented string (``"0.0030"``) and,
  leniently, a JSON number (decoded exactly, never through a float; the SDK refuses numbers);
  NaN and infinities are refused.
* ``from``/``to`` are one :class:`CallParty` with an open ``type`` and the detail object of each
  known type, so a new endpoint type is kept (the SDK turns it into a raw fallback) instead of
  refusing the call.
* Answers always carry ``commands`` (``[]`` for "nothing to do", never ``{}``: f5);
  ``callName``/``events`` are written only when set (they take effect in answers to
  ``call.incoming`` only).
* ``DialCommand.events``: ``None`` writes no ``events`` (Sinch sends the leg's webhooks), an empty
  :class:`CallEvents` writes ``"events": {}`` (no webhooks: v1's ``suppressCallbacks``).
* ``callId`` is the only spelling (v1 also took ``callid``): every v2 source writes ``callId``.
  Control characters are refused in ``callId``, ``sessionId``, ``projectId``, ``serviceId`` and
  ``callName`` (what records are keyed by), as v1 refuses them in ``callid``.
* An unknown ``call.*`` event raises :class:`~callgate.protocols.v2.decode.UnknownCallEvent`
  (a :class:`~callgate.events.UnknownEvent`), so the webhook can answer it ``{"commands": []}``
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
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct, field

__all__ = [
    # known values (documentation and tests only)
    "EVENT_NAMES", "END_EVENT_NAMES", "CALL_TYPES", "CALL_DIRECTIONS", "CALL_RESULTS", "CALL_REASONS",
    "ORIGINATION_TYPES", "CUSTOM_EVENT_PREFIX", "SDK_CUSTOM_EVENT_PREFIX",
    # events
    "CallRate", "PartyPhone", "PartySip", "PartyStream", "CallParty", "SipHeader", "Call", "MenuInput",
    "V2EventBase", "TaggedEvent", "EndEvent", "AmdEvent", "RecordingEvent",
    "CallIncoming", "CallAnswered", "CallMenu", "CallHangup", "CallBusy", "CallRejected", "CallTimeout",
    "CallFailed", "AmdHuman", "AmdMachine", "AmdBeep", "AmdUnknown", "MessageFinished",
    "RecordingFinished", "RecordingFailed", "CustomEvent", "KnownEvent", "V2Event", "KNOWN_EVENT_TYPES",
    # SVAML v2
    "PhoneDetails", "Phone", "SipDetails", "Sip", "SipFromDetails", "SipFrom", "StreamOptions",
    "StreamDetails", "Stream", "VoiceRelayDetails", "VoiceRelay", "DialDestination", "DialOrigin",
    "Say", "SayMessage", "Play", "PlayMessage", "Message", "MenuPrompt", "MenuItem",
    "TranscriptionOptions", "RecordingOptions",
    "CallEvents", "MessageEvents", "AmdEvents", "RecordingEvents", "IncomingCallEvents",
    "SipCallHeader", "AnswerCommand", "HangupCommand", "DialCommand", "BridgeCallCommand", "MessagesCommand",
    "StopMessagesCommand", "MenuCommand", "GotoMenuCommand", "PauseCommand", "AmdCommand", "StartRecordingCommand",
    "StopRecordingCommand", "WebhookCommand", "Command", "V2Answer",
    "InvalidAnswer", "encode_v2_answer", "decode_v2_answer", "error_path",
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


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is _UTC:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=_UTC)
    return value.astimezone(_UTC)


# --------------------------------------------------------------------------- the call object (events)

class CallRate(Struct, rename="camel", frozen=True, kw_only=True):
    """``callRate``: a per-minute rate.  ``amount`` is exact (a Decimal of the literal, never a float)."""

    currency_code: str | None = None
    amount: Decimal | None = None


class SipHeader(Struct, frozen=True, kw_only=True):
    """One entry of a SIP/stream endpoint's ``callHeaders``."""

    key: str
    value: str | None = None


class PartyPhone(Struct, frozen=True, kw_only=True):
    """``{"number": "+46..."}`` of a ``PHONE`` party."""

    number: str | None = None


class PartySip(Struct, rename="camel", frozen=True, kw_only=True):
    """``sip`` of a ``SIP`` party: the URI, and the display name (origin) or transport and headers (destination)."""

    endpoint: str | None = None
    display_name: str | None = None
    transport: str | None = None
    call_headers: tuple[SipHeader, ...] | None = None


class PartyStream(Struct, rename="camel", frozen=True, kw_only=True):
    """``stream`` / ``voiceRelay`` of a ``STREAM`` / ``VOICE_RELAY`` destination: its WebSocket URL."""

    endpoint: str | None = None


class CallParty(Struct, rename="camel", frozen=True, kw_only=True):
    """``call.from`` / ``call.to``: ``type`` as sent (``PHONE``, ``SIP``, ``STREAM``, ``VOICE_RELAY``, or a newer
    one) and the detail object of that type."""

    type: str | None = None
    phone: PartyPhone | None = None
    sip: PartySip | None = None
    stream: PartyStream | None = None
    voice_relay: PartyStream | None = None

    @property
    def endpoint(self) -> str | None:
        """The number (``PHONE``) or URI (``SIP``, ``STREAM``, ``VOICE_RELAY``) of this party; None when unknown."""
        kind = (self.type or "").strip().upper()
        if kind == "PHONE":
            return self.phone.number if self.phone is not None else None
        detail = {"SIP": self.sip, "STREAM": self.stream, "VOICE_RELAY": self.voice_relay}.get(kind)
        return detail.endpoint if detail is not None else None


class Call(Struct, rename="camel", frozen=True, kw_only=True):
    """The ``call`` object: the state of this leg when the event fired.

    ``call_id`` identifies the leg, ``session_id`` groups all legs of one interaction; ``call_name``
    is the name given by the answer or ``dial``.  Times are aware UTC datetimes; ``call_rate`` is
    per minute; ``call_duration_seconds`` counts from answer to end.  Enum-like fields are strings
    as sent (see ``CALL_TYPES``, ``CALL_RESULTS``, ... of this module).
    """

    call_id: str
    project_id: str | None = None
    service_id: str | None = None
    session_id: str | None = None
    call_name: str | None = None
    bridge_name: str | None = None
    batch_id: str | None = None
    from_: CallParty | None = field(default=None, name="from")
    to: CallParty | None = None
    start_time: datetime | None = None
    update_time: datetime | None = None
    answer_time: datetime | None = None
    end_time: datetime | None = None
    call_type: str | None = None
    direction: str | None = None
    call_duration_seconds: Int64 | None = None
    call_result: str | None = None
    call_reason: str | None = None
    origination_type: str | None = None
    call_rate: CallRate | None = None
    call_resource_url: str | None = None

    def __post_init__(self) -> None:
        for name in ("start_time", "update_time", "answer_time", "end_time"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is not _UTC:
                msgspec.structs.force_setattr(self, name, _utc(value))


class MenuInput(Struct, rename="camel", frozen=True, kw_only=True):
    """``menu`` of ``call.menu`` (and of custom events fired inside a menu): the menu's name and the input
    collected, terminating sequence included.  Both are None when Sinch leaves them out."""

    menu_name: str | None = None
    input: str | None = None


# --------------------------------------------------------------------------- events

class V2EventBase(Struct, rename="camel", frozen=True, kw_only=True):
    """What every v2 webhook event carries: the ``call`` (this leg's state)."""

    call: Call


class TaggedEvent(V2EventBase, frozen=True, tag_field="event"):
    """An event with a fixed name, decoded through the tagged union on ``event``."""

    @property
    def event(self) -> str:
        """The event name as callgate stores it (``call.incoming``, ...)."""
        return str(self.__struct_config__.tag)


class CallIncoming(TaggedEvent, frozen=True, tag="call.incoming"):
    """An inbound call reached a service whose behaviour is ``WEBHOOK`` (v1: ICE).  Answer with commands."""


class CallAnswered(TaggedEvent, frozen=True, tag="call.answered"):
    """A leg dialled without ``events`` was answered (v1: ACE); ``call`` is the answered leg."""


class CallMenu(TaggedEvent, frozen=True, tag="call.menu"):
    """A ``menu`` item collected input that matched nothing and has no ``onFailure`` (v1: PIE)."""

    menu: MenuInput


class EndEvent(TaggedEvent, frozen=True):
    """A leg ended (v1: DICE): ``call.call_result``, ``call_reason``, ``call_duration_seconds``, ``call_rate``."""


class CallHangup(EndEvent, frozen=True, tag="call.hangup"):
    """A leg was disconnected."""


class CallBusy(EndEvent, frozen=True, tag="call.busy"):
    """A dialled callee was busy."""


class CallRejected(EndEvent, frozen=True, tag="call.rejected"):
    """A dialled callee rejected the call."""


class CallTimeout(EndEvent, frozen=True, tag="call.timeout"):
    """A dialled callee did not answer within ``dialTimeoutDurationSeconds``."""


class CallFailed(EndEvent, frozen=True, tag="call.failed"):
    """A dialled call could not be set up."""


class AmdEvent(TaggedEvent, frozen=True):
    """An ``amd`` command without ``events`` reported its result; the result is the event name."""


class AmdHuman(AmdEvent, frozen=True, tag="call.amd.human"):
    """AMD detected a person."""


class AmdMachine(AmdEvent, frozen=True, tag="call.amd.machine"):
    """AMD detected an answering machine."""


class AmdBeep(AmdEvent, frozen=True, tag="call.amd.beep"):
    """AMD detected a voicemail beep."""


class AmdUnknown(AmdEvent, frozen=True, tag="call.amd.unknown"):
    """AMD could not decide."""


class MessageFinished(TaggedEvent, frozen=True, tag="call.message.finished"):
    """All messages of a ``messages`` command without ``events`` were played."""


class RecordingEvent(TaggedEvent, frozen=True):
    """A ``startRecording`` without ``events`` reported on its recording."""


class RecordingFinished(RecordingEvent, frozen=True, tag="call.recording.finished"):
    """The recording stopped (the file may not be delivered yet)."""


class RecordingFailed(RecordingEvent, frozen=True, tag="call.recording.failed"):
    """The recording could not start."""


class CustomEvent(V2EventBase, frozen=True):
    """``call.webhook.<name>``: a ``webhook`` command ran.  ``event`` is the name as sent; ``menu`` is set when the
    command ran inside a menu.  Answer with the commands that continue the flow."""

    event: str
    menu: MenuInput | None = None

    @property
    def webhook_name(self) -> str:
        """The ``<name>`` of ``call.webhook.<name>`` (the command's ``webhookName``), as sent."""
        for prefix in (CUSTOM_EVENT_PREFIX, SDK_CUSTOM_EVENT_PREFIX):
            if self.event[:len(prefix)].lower() == prefix.lower():
                return self.event[len(prefix):]
        return self.event


KnownEvent = (CallIncoming | CallAnswered | CallMenu | CallHangup | CallBusy | CallRejected | CallTimeout | CallFailed
              | AmdHuman | AmdMachine | AmdBeep | AmdUnknown | MessageFinished | RecordingFinished | RecordingFailed)
V2Event = KnownEvent | CustomEvent

#: Event name -> its type, for the events with a fixed name.
KNOWN_EVENT_TYPES: dict[str, type[TaggedEvent]] = {
    str(cls.__struct_config__.tag): cls
    for cls in (CallIncoming, CallAnswered, CallMenu, CallHangup, CallBusy, CallRejected, CallTimeout, CallFailed,
                AmdHuman, AmdMachine, AmdBeep, AmdUnknown, MessageFinished, RecordingFinished, RecordingFailed)
}


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

class SipCallHeader(_Svaml):
    """A SIP header sent with a ``dial`` to SIP or a stream: printable ASCII, key 1-255, value at most 255."""

    key: Annotated[str, Meta(min_length=1, max_length=255, pattern=_HEADER_TEXT)]
    value: Annotated[str, Meta(max_length=255, pattern=_HEADER_TEXT)] | None = None


_Headers = Annotated[list[SipCallHeader], Meta(max_length=16)]


class PhoneDetails(_Svaml):
    """``{"number": "+46..."}``: an E.164 number."""

    number: E164


class Phone(_Svaml, tag_field="type", tag="PHONE"):
    """``{"type": "PHONE", "phone": {...}}``: a PSTN number, as ``dial.to`` or ``dial.from``."""

    phone: PhoneDetails


class SipDetails(_Svaml):
    """A SIP destination: ``sip:``/``sips:`` URI (at most 256), transport (``UDP``, ``TCP``, ``TLS``), headers."""

    endpoint: Annotated[str, Meta(max_length=256, pattern=r"^sips?:")]
    transport: str | None = None
    call_headers: _Headers | None = None


class Sip(_Svaml, tag_field="type", tag="SIP"):
    """``{"type": "SIP", "sip": {...}}`` as ``dial.to``."""

    sip: SipDetails


class SipFromDetails(_Svaml):
    """A SIP origin: URI (at most 192) and the display name shown to the callee (at most 64)."""

    endpoint: Annotated[str, Meta(max_length=192, pattern=r"^sips?:")]
    display_name: Annotated[str, Meta(max_length=64)] | None = None


class SipFrom(_Svaml, tag_field="type", tag="SIP"):
    """``{"type": "SIP", "sip": {...}}`` as ``dial.from``."""

    sip: SipFromDetails


class StreamOptions(_Svaml):
    """Audio format of a stream (protocol version, ``PCM``, sample rate in Hz)."""

    version: int | None = None
    codec: str | None = None
    sample_rate: int | None = None


class StreamDetails(_Svaml):
    """A WebSocket (``ws://``/``wss://``) audio stream."""

    endpoint: NonEmpty
    stream_options: StreamOptions | None = None
    call_headers: _Headers | None = None


class Stream(_Svaml, tag_field="type", tag="STREAM"):
    """``{"type": "STREAM", "stream": {...}}`` as ``dial.to``."""

    stream: StreamDetails


class VoiceRelayDetails(_Svaml):
    """Speech-to-text and text-to-speech over a WebSocket."""

    endpoint: NonEmpty
    tts_voice: NonEmpty
    stt_language: NonEmpty
    enable_interruptions: bool | None = None
    call_headers: _Headers | None = None


class VoiceRelay(_Svaml, tag_field="type", tag="VOICE_RELAY"):
    """``{"type": "VOICE_RELAY", "voiceRelay": {...}}`` as ``dial.to``."""

    voice_relay: VoiceRelayDetails


DialDestination = Phone | Sip | Stream | VoiceRelay
DialOrigin = Phone | SipFrom


# --------------------------------------------------------------------------- SVAML v2: messages, menus, recordings

class Say(_Svaml):
    """Text to speech: at most 600 characters, in a voice (``Emma``, ...; the voice implies the language);
    ``format`` ``TEXT`` (default) or ``SSML``."""

    text: Annotated[str, Meta(min_length=1, max_length=600)]
    voice_name: NonEmpty
    format: str | None = None


class SayMessage(_Svaml, tag_field="type", tag="SAY"):
    """``{"type": "SAY", "say": {...}}``."""

    say: Say


class Play(_Svaml):
    """An audio file to play."""

    url: NonEmpty


class PlayMessage(_Svaml, tag_field="type", tag="PLAY"):
    """``{"type": "PLAY", "play": {...}}``."""

    play: Play


Message = SayMessage | PlayMessage
_MessageList = Annotated[list[Message], Meta(min_length=1, max_length=10)]


class MenuPrompt(_Svaml):
    """What a menu item plays: 1-10 messages; barge-in allowed by default."""

    messages: _MessageList
    allow_barge_in: bool | None = None


class MenuItem(_Svaml):
    """One menu: prompt, input limits, ``matches`` (input or regex -> commands) and ``onFailure``."""

    prompt: MenuPrompt | None = None
    repeat_prompt: MenuPrompt | None = None
    input_timeout_duration_seconds: Annotated[int, Meta(ge=1, le=60)] | None = None
    repeat_count: Annotated[int, Meta(ge=0, le=10)] | None = None
    minimum_input_length: Annotated[int, Meta(ge=1, le=100)] | None = None
    maximum_input_length: Annotated[int, Meta(ge=1, le=100)] | None = None
    terminating_sequence: Annotated[str, Meta(max_length=10, pattern=r"^[0-9*#]+$")] | None = None
    input_methods: list[str] | None = None
    matches: Annotated[dict[Annotated[str, Meta(min_length=1, max_length=256)], list[Command]],
                       Meta(max_length=50)] | None = None
    on_failure: list[Command] | None = None


class TranscriptionOptions(_Svaml):
    """Transcription of a recording (``locale`` BCP-47, default ``en-US``)."""

    is_enabled: bool
    locale: str | None = None


class RecordingOptions(_Svaml):
    """Where a recording goes: ``destination`` ``AWS``/``GCP``/``AZURE``, its URL and credentials;
    ``format`` ``MP3``/``WAV``; ``recordingType`` ``COMBINED``/``INBOUND``/``OUTBOUND``."""

    destination: NonEmpty
    destination_url: NonEmpty
    credentials: str
    format: str | None = None
    recording_type: str | None = None
    transcription_options: TranscriptionOptions | None = None


# --------------------------------------------------------------------------- SVAML v2: event handlers

class CallEvents(_Svaml):
    """``dial.events``: commands for the dialled leg's outcomes.  An empty one suppresses the leg's webhooks."""

    on_answer: list[Command] | None = None
    on_busy: list[Command] | None = None
    on_reject: list[Command] | None = None
    on_timeout: list[Command] | None = None
    on_hangup: list[Command] | None = None
    on_failure: list[Command] | None = None


class MessageEvents(_Svaml):
    """``messages.events``: commands when all messages were played."""

    on_finish: list[Command] | None = None


class AmdEvents(_Svaml):
    """``amd.events``: commands per AMD result."""

    on_human: list[Command] | None = None
    on_machine: list[Command] | None = None
    on_beep: list[Command] | None = None
    on_unknown: list[Command] | None = None


class RecordingEvents(_Svaml):
    """``startRecording.events``: commands when the recording stopped or could not start."""

    on_finish: list[Command] | None = None
    on_failure: list[Command] | None = None


class IncomingCallEvents(_Svaml):
    """An answer's ``events`` (answers to ``call.incoming`` only): commands when the inbound leg hangs up."""

    on_hangup: list[Command] | None = None


# --------------------------------------------------------------------------- SVAML v2: commands

class _Command(_Svaml, tag_field="command"):
    """A SVAML v2 command: ``{"command": "<tag>", ...}``."""

    @property
    def command(self) -> str:
        """The command's wire name."""
        return str(self.__struct_config__.tag)


class AnswerCommand(_Command, tag="answer"):
    """Answer the inbound leg."""


class HangupCommand(_Command, tag="hangup"):
    """Hang up the leg named ``call_name`` (default: the current leg)."""

    call_name: Name | None = None


class DialCommand(_Command, tag="dial"):
    """Start a new leg to ``to`` (PSTN, SIP, stream, voice relay) from ``from_``, ringing at most
    ``dial_timeout_duration_seconds`` and lasting at most ``max_call_duration_seconds``."""

    to: DialDestination
    from_: DialOrigin | None = field(default=None, name="from")
    call_name: Name | None = None
    dial_timeout_duration_seconds: Seconds | None = None
    max_call_duration_seconds: Seconds | None = None
    events: CallEvents | None = None


class BridgeCallCommand(_Command, tag="bridgeCall"):
    """Join the current leg to the bridge ``bridge_name`` (created on first use, within the session)."""

    bridge_name: BridgeName


class MessagesCommand(_Command, tag="messages"):
    """Play 1-10 messages (say or play) on the current leg."""

    messages: _MessageList
    messages_name: Name | None = None
    events: MessageEvents | None = None


class StopMessagesCommand(_Command, tag="stopMessages"):
    """Stop the messages named ``messages_name``."""

    messages_name: Name


class MenuCommand(_Command, tag="menu"):
    """Collect DTMF input: start with menu ``start_menu`` of ``menus``."""

    start_menu: MenuName
    menus: dict[MenuName, MenuItem]


class GotoMenuCommand(_Command, tag="gotoMenu"):
    """Go to another menu (only inside a menu item's ``matches``/``onFailure``)."""

    menu_name: MenuName


class PauseCommand(_Command, tag="pause"):
    """Wait ``duration_milliseconds`` before the next command."""

    duration_milliseconds: Annotated[int, Meta(ge=0, le=2 ** 31 - 1)]


class AmdCommand(_Command, tag="amd"):
    """Answering-machine detection; without ``events`` the result comes as ``call.amd.*`` webhooks."""

    events: AmdEvents | None = None


class StartRecordingCommand(_Command, tag="startRecording"):
    """Record the call to ``recording_options.destination_url``."""

    recording_options: RecordingOptions
    recording_name: Name | None = None
    events: RecordingEvents | None = None


class StopRecordingCommand(_Command, tag="stopRecording"):
    """Stop the recording named ``recording_name``."""

    recording_name: Name


class WebhookCommand(_Command, tag="webhook"):
    """Send ``call.webhook.<webhook_name>`` to ``url`` and continue with its answer (the SDK calls it ``customEvent``)."""

    webhook_name: Annotated[str, Meta(min_length=1, max_length=64, pattern=_NO_SPACE)]
    url: NonEmpty
    fallback_url: str | None = None


Command = (AnswerCommand | HangupCommand | DialCommand | BridgeCallCommand | MessagesCommand | StopMessagesCommand
           | MenuCommand | GotoMenuCommand | PauseCommand | AmdCommand | StartRecordingCommand | StopRecordingCommand
           | WebhookCommand)


class V2Answer(_Svaml):
    """The answer to a v2 webhook: ``{"commands": [...]}``, plus ``callName`` and ``events`` (which take effect
    in answers to ``call.incoming`` only).  ``commands`` is always written, ``[]`` when there is nothing to do."""

    commands: list[Command]
    call_name: Name | None = None
    events: IncomingCallEvents | None = None


# --------------------------------------------------------------------------- encoding

class InvalidAnswer(ValueError):
    """An answer that is not valid SVAML v2 (a name too long, a number not E.164, ...).  ``message`` names the
    field path (``commands[1].to.phone.number``) and never holds the value."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_ENCODER = msgspec.json.Encoder()
_ANSWER_DECODER = msgspec.json.Decoder(V2Answer)
_MISSING = re.compile(r"object missing required field `([^`]*)`")
_AT = re.compile(r"^(?P<message>.*?)(?: - at `(?P<path>[^`]*)`(?: in `(?P<container>[^`]*)`)?)?$", re.DOTALL)


def error_path(exc: msgspec.ValidationError) -> tuple[str, str]:
    """``(path, message)`` of a msgspec validation error: ``("call.callId", "expected `str`, got `int`")``.

    The path is dotted without msgspec's leading ``$.`` (``""`` for the document itself); a
    dictionary key that failed is named ``menus (a key)``; a missing required field is
    ``("call.callId", "missing")``.  msgspec's messages name types and
    limits, never the offending value.
    """
    match = _AT.match(str(exc))
    assert match is not None  # the pattern matches any text
    message = match["message"]
    message = message[:1].lower() + message[1:]
    path = match["path"] or ""
    if path.startswith("$"):
        path = path[1:].lstrip(".")
    elif path:
        container = (match["container"] or "$")[1:].lstrip(".")
        path = f"{container} (a {path})" if container else f"({path})"
    missing = _MISSING.fullmatch(message)
    if missing is not None:  # named like v1's "callid: missing"
        return (f"{path}.{missing[1]}" if path else missing[1]), "missing"
    return path, message


def _svaml_error(exc: msgspec.ValidationError) -> InvalidAnswer:
    path, message = error_path(exc)
    return InvalidAnswer(f"{path or 'answer'}: {message}")


def encode_v2_answer(answer: V2Answer) -> bytes:
    """The JSON body of ``answer``: camelCase, unset optional fields left out, ``commands`` always present.

    The bytes are checked against the SVAML v2 types before they are returned (a decode, a few
    microseconds): an answer built in code with, say, a 40-character ``callName`` raises
    :class:`InvalidAnswer` instead of reaching Sinch, which would drop the call.
    """
    body = _ENCODER.encode(answer)
    try:
        _ANSWER_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise _svaml_error(exc) from None
    return body


def decode_v2_answer(body: bytes | str | Any) -> V2Answer:
    """A SVAML v2 answer from JSON text (``bytes``/``str``) or from built-in objects (a plugin's ``dict``).

    Unknown fields and commands are refused; raises :class:`InvalidAnswer` naming the field path.
    """
    try:
        if isinstance(body, (bytes, bytearray, memoryview, str)):
            return _ANSWER_DECODER.decode(body)
        return msgspec.convert(body, V2Answer)
    except msgspec.ValidationError as exc:  # a subclass of DecodeError: first
        raise _svaml_error(exc) from None
    except msgspec.DecodeError:
        raise InvalidAnswer("answer: not JSON") from None
