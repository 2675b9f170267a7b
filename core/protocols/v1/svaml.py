"""SVAML v1, the answer a Sinch Voice v1 callback server sends back: typed, self-validating, serialisable.

An SVAML answer is one *action* (what happens to the call next) preceded by
optional *instructions* (run in order first)::

    {"action": {"name": "hangup"}, "instructions": [{"name": "say", "text": "Hello"}]}

Every instruction and action is a frozen :class:`msgspec.Struct` with snake_case attributes and
Sinch's camelCase names on the wire (``rename="camel"``); actions and instructions are tagged
unions on ``name`` (``Say(text="Hi").name == "say"``, written first on the wire).  Each checks
the documented limits when it is built, by keyword or by decoding (``ConnectPstn(max_duration=14401)``
raises :class:`SvamlError`, a ``ValueError``, naming ``ConnectPstn.max_duration``), so a bad answer
fails in the code that made it, not on the phone.  The limits are ``msgspec.Meta`` constraints and
checks (:class:`_Check`) in each field's annotation; checks across fields are in ``_check_whole``.
A missing required argument or an unknown keyword is a ``TypeError``, as for any Python call.

* ``Svaml(action=..., instructions=(...))`` is a whole answer; ``to_dict()`` /
  ``to_json()`` give the wire form (camelCase, no nulls, ``name`` first, no ``instructions``
  when there are none); ``validate_for(event)`` checks it against the per-event tables
  (``ACTIONS_BY_EVENT`` / ``INSTRUCTIONS_BY_EVENT``, from the OpenAPI schemas
  ``svaml.action.{ice,ace,pie}``).
* ``parse_action`` / ``parse_instruction`` / ``parse_svaml`` read plain dicts as
  Sinch writes them (names matched case-insensitively, keys in camelCase or
  snake_case) and raise ``SvamlError`` naming where and what is wrong (``runMenu.menus[0].id: ...``).
* ``SAFE_ANSWERS`` holds the answer sent instead of one that turned out invalid.
* ``msgspec.structs.replace`` builds a changed copy, checked like any other; ``validate_for(event)`` re-checks
  every field all the same, for objects changed behind the checks' back (``msgspec.structs.force_setattr``).

Protocol reference: ``sinch-voice-v1.md`` sections (b) "SVAML response" and (d) "Limits".
"""

import operator
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import msgspec
from msgspec import Meta, Struct, field
from msgspec.structs import force_setattr

from ...phone import is_cli, is_e164

__all__ = [
    # answers and errors
    "Svaml", "SvamlError", "Action", "Instruction",
    # instructions
    "PlayFiles", "Say", "SendDtmf", "SetCookie", "Answer", "StartRecording", "StopRecording",
    # actions
    "Hangup", "Continue", "ConnectPstn", "ConnectMxp", "ConnectConf", "ConnectSip", "ConnectStream",
    "RunMenu", "Park",
    # nested objects
    "Menu", "MenuOption", "Destination", "CallHeader", "Amd", "ConferenceDtmfOptions", "StreamingOptions",
    "RecordingOptions", "TranscriptionOptions",
    # tables, parsing, fallbacks
    "ACTIONS_BY_EVENT", "INSTRUCTIONS_BY_EVENT", "SAFE_ANSWERS",
    "parse_action", "parse_instruction", "parse_svaml",
]

# Limits from the reference, section (d).
MAX_CALL_DURATION = 14400   # s, connectPstn / connectSip / connectStream maxDuration
MAX_PARK_DURATION = 600     # s, park maxDuration (old docs)
MAX_SAY_CHARS = 600         # say text (default; support can raise it)
MAX_COOKIE_BYTES = 1024     # key + value, UTF-8
MAX_HEADER_VALUE_BYTES = 1024
MAX_CONFERENCE_ID_CHARS = 64


class SvamlError(ValueError):
    """An SVAML answer (or a dict meant to become one) that Sinch would not accept."""


class _FieldError(SvamlError):
    """A field that failed its check when its object was built: ``ConnectPstn.max_duration: must be at most 14400``.

    ``wire`` is the field's name on the wire and ``subpath`` the place inside its value (``[0].value``), so
    a parse error can name the place as Sinch writes it (``connectPstn.maxDuration``).
    """

    def __init__(self, owner: type, attribute: str, wire: str, subpath: str, why: str) -> None:
        super().__init__(f"{owner.__name__}.{attribute}{subpath}: {why}")
        self.wire, self.subpath, self.why = wire, subpath, why


class _Invalid(ValueError):
    """Raised by a field check: ``why`` the value is wrong, ``subpath`` where inside it (``[2]``, ``.value``)."""

    def __init__(self, why: str, subpath: str = "") -> None:
        super().__init__(why)
        self.why, self.subpath = why, subpath


# --- field types: msgspec's Meta for ranges and lengths, _Check and _Coerce for the rest --------------------

class _Check:
    """Annotation metadata: ``test(value)`` must hold, else the field is invalid because ``why`` (``{value!r}``
    filled in).  msgspec ignores it; the object's ``__post_init__`` runs it (on construction and on decoding)."""

    __slots__ = ("test", "why")

    def __init__(self, test: Callable[[Any], bool], why: str) -> None:
        self.test, self.why = test, why


class _Coerce:
    """Annotation metadata: ``convert`` turns a value given at construction into the one stored (``"tls"`` into
    ``"TLS"``), before the checks."""

    __slots__ = ("convert",)

    def __init__(self, convert: Callable[[Any], Any]) -> None:
        self.convert = convert


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


_DTMF = re.compile(r"[0-9#w]+")
_MENU_KEY = re.compile(r"[0-9*#]")
_MENU_ACTION = re.compile(r"(menu|return)\((.+)\)", re.DOTALL)
_TTS = re.compile(r"#(tts|ssml)\[", re.IGNORECASE)
_TRANSPORTS = ("UDP", "TCP", "TLS")

Text = Annotated[str, Meta(min_length=1)]
E164 = Annotated[str, _Check(is_e164, "{value!r} is not an E.164 number ('+' then 1-15 digits, the first 1-9)")]
Cli = Annotated[str, _Check(is_cli, "{value!r} is neither an E.164 number ('+' then 1-15 digits) nor 'private'")]
DtmfTones = Annotated[str, _Check(lambda v: _DTMF.fullmatch(v) is not None,
                                  "{value!r} may only contain 0-9, '#' and 'w' (a 500 ms pause)")]
# Numbers and flags are strict: True is not 1 second, "60" is not 60, "yes" is not true.
Count = Annotated[int, Meta(ge=0)]
Positive = Annotated[int, Meta(ge=1)]
CallDuration = Annotated[int, Meta(ge=0, le=MAX_CALL_DURATION)]
Transport = Annotated[str, _Coerce(lambda v: v.upper() if isinstance(v, str) else v),
                      _Check(lambda v: v in _TRANSPORTS, "{value!r} is not one of UDP, TCP, TLS (any case)")]
MusicOnHold = Literal["ring", "music1", "music2", "music3"]
Indication = Literal["at", "au", "bg", "br", "be", "ch", "cl", "cn", "cz", "de", "dk", "ee", "es", "fi", "fr",
                     "gr", "hu", "il", "in", "it", "lt", "jp", "mx", "my", "nl", "no", "nz", "ph", "pl", "pt",
                     "ru", "se", "sg", "th", "uk", "us", "tw", "ve", "za"]


class _Wire(Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True, forbid_unknown_fields=True):
    """Frozen, strict about unknown keys, snake_case in Python and camelCase on the wire; checks its fields
    (their annotations' ``Meta``, ``_Check`` and types) and then itself (``_check_whole``) when built."""

    def __post_init__(self) -> None:
        owner = type(self)
        for attribute, wire, optional, check in _FIELD_CHECKS[owner]:
            value = getattr(self, attribute)
            if value is None and optional:
                continue
            try:
                checked = check(value)
            except _Invalid as exc:
                raise _FieldError(owner, attribute, wire, exc.subpath, exc.why) from None
            if checked is not value:
                force_setattr(self, attribute, checked)
        self._check_whole()

    def _check_whole(self) -> None:
        """Checks across fields (raise ``SvamlError``); the fields themselves are valid when this runs."""


class _Tagged(_Wire, frozen=True, tag_field="name"):
    """An action or an instruction: ``name`` (a class attribute, the tag) is written first on the wire."""

    name: ClassVar[str]


class _Instruction(_Tagged, frozen=True):
    """Base of the instructions."""


class _Action(_Tagged, frozen=True):
    """Base of the actions."""


# --- nested objects --------------------------------------------------------------------------

class Destination(_Wire, frozen=True, kw_only=True):
    """Where connectMxp (``username``), connectSip (``sip``) or connectStream (``Websocket``) connects."""

    type: Text
    endpoint: Text


def _destination_of(kind: str) -> _Check:
    return _Check(lambda d: d.type.lower() == kind,
                  f"destination type must be {kind!r} (any case) for this action, got {{value.type!r}}")


class CallHeader(_Wire, frozen=True, kw_only=True):
    """A key/value header passed to the callee (SDK client, SIP private header or WebSocket server)."""

    key: Text
    value: Annotated[str, _Check(lambda v: _utf8_len(v) <= MAX_HEADER_VALUE_BYTES,
                                 f"call header value is longer than {MAX_HEADER_VALUE_BYTES} bytes (UTF-8)")]


class Amd(_Wire, frozen=True, kw_only=True):
    """Answering-machine detection on connectPstn: the result arrives in the ACE (sync) or a Notify (async)."""

    enabled: bool | None = None
    async_: bool | None = field(default=None, name="async")


class ConferenceDtmfOptions(_Wire, frozen=True, kw_only=True):
    """What a conference does with a participant's keypresses; ``detect`` sends them to you as PIEs."""

    mode: Literal["ignore", "forward", "detect"] | None = None
    max_digits: Positive | None = None
    timeout_mills: Count | None = None


class StreamingOptions(_Wire, frozen=True, kw_only=True):
    """Audio format of a connectStream WebSocket."""

    version: Positive | None = None
    sample_rate: Positive | None = None


class TranscriptionOptions(_Wire, frozen=True, kw_only=True):
    """Whether Sinch also transcribes a recording, and in which language."""

    enabled: bool | None = None
    locale: str | None = None


class RecordingOptions(_Wire, frozen=True, kw_only=True):
    """Where Sinch uploads a recording (S3 or Azure Blob; S3 credentials as ``ACCESS_KEY:SECRET:region``)."""

    destination_url: Text
    credentials: Text
    format: str | None = None
    notification_events: bool | None = None
    transcription_options: TranscriptionOptions | None = None


class MenuOption(_Wire, frozen=True, kw_only=True):
    """A key of a menu: ``menu(<id>)`` goes to another menu, ``return(<value>)`` ends the menu with a PIE.

    ``dtmf`` given as a number (``1``, as Sinch's examples sometimes write it) is stored as a string."""

    dtmf: Annotated[str, _Coerce(lambda v: str(v) if type(v) is int else v),
                    _Check(lambda v: _MENU_KEY.fullmatch(v) is not None, "{value!r} is not a single key 0-9, * or #")]
    action: Annotated[str, _Check(lambda v: _MENU_ACTION.fullmatch(v) is not None,
                                  "{value!r} is neither 'menu(<menu id>)' nor 'return(<value>)'")]

    @property
    def target_menu(self) -> str | None:
        """The menu id of a ``menu(<id>)`` option, else ``None``."""
        match = _MENU_ACTION.fullmatch(self.action)
        assert match is not None, "validated when the option was built"
        kind, argument = match.groups()
        return argument if kind == "menu" else None


class Menu(_Wire, frozen=True, kw_only=True):
    """One menu of a runMenu: prompts, how many digits to collect, and the keys' options."""

    id: Text
    main_prompt: str | None = None
    repeat_prompt: str | None = None
    repeats: Count | None = None
    max_digits: Positive | None = None
    timeout_mills: Count | None = None
    max_timeout_mills: Count | None = None
    options: tuple[MenuOption, ...] | None = None

    def _check_whole(self) -> None:
        keys = [option.dtmf for option in self.options or ()]
        if len(keys) != len(set(keys)):
            twice = sorted({k for k in keys if keys.count(k) > 1})
            raise SvamlError(f"menu {self.id!r}: options give key(s) {', '.join(twice)} more than once")


# --- instructions ----------------------------------------------------------------------------

class PlayFiles(_Instruction, frozen=True, kw_only=True, tag="playFiles"):
    """Plays prompts (media URLs, ``#tts[...]``, ``#ssml[...]``) to the caller's side."""

    ids: Annotated[tuple[Text, ...], Meta(min_length=1)]
    locale: str | None = None

    def _check_whole(self) -> None:
        if self.locale is None and any(_TTS.match(i) for i in self.ids):
            raise SvamlError("locale is required when ids contain #tts[...] or #ssml[...]")


class Say(_Instruction, frozen=True, kw_only=True, tag="say"):
    """Speaks ``text`` with text-to-speech (``locale`` picks the language or voice)."""

    text: Annotated[str, Meta(max_length=MAX_SAY_CHARS), _Check(lambda v: v.strip() != "", "text must not be empty")]
    locale: str | None = None


class SendDtmf(_Instruction, frozen=True, kw_only=True, tag="sendDtmf"):
    """Plays DTMF tones into the call (``w`` is a 500 ms pause)."""

    value: DtmfTones


class SetCookie(_Instruction, frozen=True, kw_only=True, tag="setCookie"):
    """Stores a key/value for the rest of the call; Sinch sends it along in the call's later events."""

    key: Text
    value: str

    def _check_whole(self) -> None:
        size = _utf8_len(self.key) + _utf8_len(self.value)
        if size > MAX_COOKIE_BYTES:
            raise SvamlError(f"cookie {self.key[:40]!r}: key and value are {size} bytes (UTF-8); "
                             f"Sinch allows {MAX_COOKIE_BYTES}")


class Answer(_Instruction, frozen=True, kw_only=True, tag="answer"):
    """Answers the incoming call now (billing starts, media flows), e.g. before prompts."""


class StartRecording(_Instruction, frozen=True, kw_only=True, tag="startRecording"):
    """Starts recording the call and uploads it to ``options.destination_url``."""

    options: RecordingOptions


class StopRecording(_Instruction, frozen=True, kw_only=True, tag="stopRecording"):
    """Stops the ongoing recording."""


# --- actions ---------------------------------------------------------------------------------

class Hangup(_Action, frozen=True, kw_only=True, tag="hangup"):
    """Ends the call."""


class Continue(_Action, frozen=True, kw_only=True, tag="continue"):
    """ACE/PIE: carries on setting up the call (the neutral ACE answer)."""


class ConnectPstn(_Action, frozen=True, kw_only=True, tag="connectPstn"):
    """Connects the call to a phone number (default: the number originally dialled)."""

    number: E164 | None = None
    locale: str | None = None
    max_duration: CallDuration | None = None
    dial_timeout: Count | None = None
    cli: Cli | None = None
    suppress_callbacks: bool | None = None
    dtmf: DtmfTones | None = None
    indications: Indication | None = None
    amd: Amd | None = None


class ConnectMxp(_Action, frozen=True, kw_only=True, tag="connectMxp"):
    """Connects an app-to-app call to an in-app (SDK) user."""

    destination: Annotated[Destination, _destination_of("username")] | None = None
    call_headers: tuple[CallHeader, ...] | None = None


class ConnectConf(_Action, frozen=True, kw_only=True, tag="connectConf"):
    """Puts the call into a conference room, creating the room if it is new."""

    conference_id: Annotated[str, Meta(min_length=1, max_length=MAX_CONFERENCE_ID_CHARS)]
    conference_dtmf_options: ConferenceDtmfOptions | None = None
    moh: MusicOnHold | None = None


class ConnectSip(_Action, frozen=True, kw_only=True, tag="connectSip"):
    """Connects the call to a SIP endpoint (``user@host``)."""

    destination: Annotated[Destination, _destination_of("sip")]
    max_duration: CallDuration | None = None
    cli: Cli | None = None
    transport: Transport | None = None
    suppress_callbacks: bool | None = None
    call_headers: tuple[CallHeader, ...] | None = None
    moh: MusicOnHold | None = None


class ConnectStream(_Action, frozen=True, kw_only=True, tag="connectStream"):
    """Streams the call's audio to a WebSocket server (closed beta, ICE only)."""

    destination: Annotated[Destination, _destination_of("websocket")]
    streaming_options: StreamingOptions | None = None
    max_duration: CallDuration | None = None
    call_headers: tuple[CallHeader, ...] | None = None


class RunMenu(_Action, frozen=True, kw_only=True, tag="runMenu"):
    """Plays an IVR menu tree; the caller's input comes back as a PIE."""

    barge: bool | None = None
    locale: str | None = None
    main_menu: str | None = None
    enable_voice: bool | None = None
    menus: Annotated[tuple[Menu, ...], Meta(min_length=1)]

    def _check_whole(self) -> None:
        ids = [menu.id for menu in self.menus]
        known = ", ".join(repr(i) for i in ids)
        if len(ids) != len(set(ids)):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise SvamlError(f"menus: menu id(s) {', '.join(map(repr, twice))} used more than once")
        if self.main_menu is not None and self.main_menu not in ids:
            raise SvamlError(f"mainMenu {self.main_menu!r} names no menu in menus (ids: {known})")
        if self.main_menu is None and "main" not in ids:
            raise SvamlError(f"menus: no menu has id 'main' and mainMenu is not set (ids: {known})")
        for menu in self.menus:
            for option in menu.options or ():
                if option.target_menu is not None and option.target_menu not in ids:
                    raise SvamlError(f"menu {menu.id!r}, key {option.dtmf}: {option.action!r} points to no menu "
                                     f"of this runMenu (ids: {known})")
        if self.enable_voice and not self.locale:
            raise SvamlError("locale is required when enableVoice is true")


class Park(_Action, frozen=True, kw_only=True, tag="park"):
    """Puts the caller on hold with a looping prompt until unparked (PATCH) or ``max_duration``."""

    locale: str | None = None
    intro_prompt: str | None = None
    hold_prompt: str | None = None
    max_duration: Annotated[int, Meta(ge=0, le=MAX_PARK_DURATION)] | None = None


Instruction = PlayFiles | Say | SendDtmf | SetCookie | Answer | StartRecording | StopRecording
Action = Hangup | Continue | ConnectPstn | ConnectMxp | ConnectConf | ConnectSip | ConnectStream | RunMenu | Park


def _tag(cls: type[_Tagged]) -> str:
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


for _cls in (*get_args(Instruction), *get_args(Action)):
    _cls.name = _tag(_cls)

# canonical name -> class, in the order of the unions above
_INSTRUCTION_TYPES: dict[str, type[_Tagged]] = {c.name: c for c in get_args(Instruction)}
_ACTION_TYPES: dict[str, type[_Tagged]] = {c.name: c for c in get_args(Action)}

# From the OAS schemas svaml.action.{ice,ace,pie} / svaml.instruction.{ice,ace,pie} (reference, section b).
# DICE and Notify take no SVAML: they are acknowledged with {}.
ACTIONS_BY_EVENT: dict[str, frozenset[str]] = {
    "ice": frozenset({"hangup", "connectPstn", "connectMxp", "connectConf", "connectSip", "connectStream",
                      "runMenu", "park"}),
    "ace": frozenset({"hangup", "continue", "connectConf", "runMenu"}),
    "pie": frozenset({"hangup", "continue", "connectPstn", "connectConf", "connectSip", "runMenu"}),
    "dice": frozenset(),
    "notify": frozenset(),
}
INSTRUCTIONS_BY_EVENT: dict[str, frozenset[str]] = {
    "ice": frozenset({"playFiles", "say", "sendDtmf", "setCookie", "answer", "startRecording", "stopRecording"}),
    "ace": frozenset({"playFiles", "say", "setCookie", "startRecording", "stopRecording"}),
    "pie": frozenset({"playFiles", "say", "sendDtmf", "setCookie", "startRecording", "stopRecording"}),
    "dice": frozenset(),
    "notify": frozenset(),
}


# --- the whole answer ------------------------------------------------------------------------

class Svaml(_Wire, frozen=True, kw_only=True):
    """A complete SVAML answer: ``instructions`` run in order, then the one ``action``."""

    #: Marks v1's own SVAML for the protocol-neutral core (:func:`callgate.plan.svaml_generation`).
    svaml_generation: ClassVar[str] = "v1"

    action: Action
    instructions: tuple[Instruction, ...] = ()

    def summary(self) -> str:
        """This answer in a few words (a plugin's verdict in the log line): ``svaml connectPstn``."""
        return f"svaml {self.action.name}"

    def _check_whole(self) -> None:
        names = {i.name for i in self.instructions}
        if "setCookie" in names:
            cookies = {i.key: i.value for i in self.instructions if isinstance(i, SetCookie)}   # the last one counts
            size = sum(_utf8_len(key) + _utf8_len(value) for key, value in cookies.items())
            if size > MAX_COOKIE_BYTES:
                raise SvamlError(f"instructions: the setCookie instructions hold {size} bytes of cookie data "
                                 f"(keys and values, UTF-8); Sinch allows {MAX_COOKIE_BYTES} in all")
        if "startRecording" in names and self.action.name == "connectMxp":
            raise SvamlError("instructions: startRecording is not supported together with connectMxp")

    def to_dict(self) -> dict[str, Any]:
        """The wire form: camelCase keys, no nulls, no ``instructions`` when there are none, ``name`` first."""
        wire: dict[str, Any] = msgspec.json.decode(_ENCODER.encode(self))
        return wire

    def to_json(self) -> bytes:
        """``to_dict()`` as compact UTF-8 JSON."""
        return _ENCODER.encode(self)

    def validate_for(self, event: str, *, recheck_fields: bool = True) -> None:
        """Raise ``SvamlError`` unless Sinch accepts this answer to ``event`` (``ice``, ``ace`` or ``pie``).

        Besides the per-event tables this re-checks every field, so an answer changed after it was built
        (``msgspec.structs.force_setattr`` skips the checks) cannot slip an out-of-range value past it.
        ``recheck_fields=False`` checks the tables only: for answers whose parts were all validated
        when they were built.
        """
        actions, instructions = ACTIONS_BY_EVENT.get(event), INSTRUCTIONS_BY_EVENT.get(event)
        if actions is None or instructions is None:
            raise SvamlError(f"unknown event {event!r}; SVAML answers exist for ice, ace and pie")
        label = event.upper()
        if not actions:
            given = f"action {self.action.name!r}"
            if self.instructions:
                given += f" and instruction(s) {', '.join(repr(i.name) for i in self.instructions)}"
            raise SvamlError(f"{label} takes no SVAML (acknowledge it with {{}}), but an answer with {given} "
                             f"was given: none is allowed")
        problems = []
        if self.action.name not in actions:
            problems.append(f"action {self.action.name!r} is not allowed in answer to {label} "
                            f"(allowed: {', '.join(sorted(actions))})")
        for index, instruction in enumerate(self.instructions):
            if instruction.name not in instructions:
                problems.append(f"instruction {instruction.name!r} (instructions[{index}]) is not allowed in "
                                f"answer to {label} (allowed: {', '.join(sorted(instructions))})")
        if problems:
            raise SvamlError(f"invalid SVAML for {label}: " + "; ".join(problems))
        if not recheck_fields:
            return
        try:
            msgspec.convert(msgspec.to_builtins(self), Svaml)
        except (msgspec.ValidationError, TypeError) as exc:
            raise SvamlError(f"invalid SVAML for {label}: {_describe(exc, 'svaml')}") from None


_ENCODER = msgspec.json.Encoder()


# --- the field checks run by __post_init__ ---------------------------------------------------

FieldCheck = Callable[[Any], Any]


def _type_name(value: Any) -> str:
    return type(value).__name__


def _compile(annotation: Any) -> FieldCheck:
    """A function that returns a valid value of ``annotation`` (the value itself, or a converted one: a list
    into a tuple, a dict into its Struct) or raises ``_Invalid``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *metadata = get_args(annotation)
        return _annotated(_compile(base), metadata)
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if all(isinstance(m, type) and issubclass(m, _Tagged) for m in members):
            return _struct_check(tuple(members), annotation)
        assert len(members) == 1, f"unsupported union {annotation!r}"
        inner = _compile(members[0])
        return lambda value: None if value is None else inner(value)
    if origin is Literal:
        allowed = get_args(annotation)
        listed = ", ".join(allowed)

        def literal(value: Any) -> Any:
            if not isinstance(value, str) or value not in allowed:
                raise _Invalid(f"{value!r} is not one of {listed}")
            return value
        return literal
    if origin is tuple:
        item_type, _ = get_args(annotation)
        return _tuple_check(_compile(item_type))
    if isinstance(annotation, type) and issubclass(annotation, Struct):
        return _struct_check((annotation,), annotation)
    return _scalar_check(annotation)


def _scalar_check(annotation: type) -> FieldCheck:
    if annotation is bool:
        def flag(value: Any) -> Any:
            if type(value) is not bool:
                raise _Invalid(f"must be true or false, got {_type_name(value)}")
            return value
        return flag
    if annotation is int:
        def integer(value: Any) -> Any:
            if type(value) is not int:
                raise _Invalid(f"must be an integer, got {_type_name(value)}")
            return value
        return integer
    if annotation is str:
        def string(value: Any) -> Any:
            if not isinstance(value, str):
                raise _Invalid(f"must be a string, got {_type_name(value)}")
            return value
        return string
    raise AssertionError(f"no check for {annotation!r}")


def _tuple_check(item: FieldCheck) -> FieldCheck:
    """A tuple of valid items (a list is accepted and stored as a tuple)."""
    def sequence(value: Any) -> Any:
        if not isinstance(value, tuple | list):
            raise _Invalid(f"must be a list, got {_type_name(value)}")
        try:
            checked = [item(element) for element in value]
        except _Invalid:
            for index, element in enumerate(value):   # again, to say which one
                try:
                    item(element)
                except _Invalid as exc:
                    raise _Invalid(exc.why, f"[{index}]{exc.subpath}") from None
            raise
        if type(value) is tuple and all(map(operator.is_, checked, value)):
            return value
        return tuple(checked)
    return sequence


def _struct_check(classes: tuple[type, ...], annotation: Any) -> FieldCheck:
    """An instance of one of ``classes``; a mapping (camelCase or snake_case keys) is decoded into one."""
    wanted = " or ".join(c.__name__ for c in classes)

    def struct(value: Any) -> Any:
        if isinstance(value, classes):
            return value
        if isinstance(value, Mapping):
            try:
                return msgspec.convert(_wire_keys(value), annotation)
            except msgspec.ValidationError as exc:
                path, why = _place(exc)
                raise _Invalid(why, path) from None
        raise _Invalid(f"must be a {wanted}, got {_type_name(value)}")
    return struct


def _annotated(base: FieldCheck, metadata: list[Any]) -> FieldCheck:
    """``base``, with the value converted first (``_Coerce``) and checked after (``Meta``, then ``_Check``)."""
    steps = [base]
    steps[:0] = (m.convert for m in metadata if isinstance(m, _Coerce))
    steps.extend(_bounds(m) for m in metadata if isinstance(m, Meta))
    steps.extend(_test(m) for m in metadata if isinstance(m, _Check))
    if len(steps) == 1:
        return base

    def annotated(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value
    return annotated


def _test(check: _Check) -> FieldCheck:
    test, why = check.test, check.why

    def tested(value: Any) -> Any:
        if not test(value):
            raise _Invalid(why.format(value=value))
        return value
    return tested


def _bounds(meta: Meta) -> FieldCheck:
    """The limits of ``meta`` (those msgspec checks when decoding), checked on a value given by keyword."""
    low, high = meta.ge, meta.le
    shortest, longest = meta.min_length, meta.max_length

    def within(value: Any) -> Any:
        if low is not None and value < low:
            raise _Invalid(f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise _Invalid(f"must be at most {high}, got {value}")
        if shortest is not None and len(value) < shortest:
            raise _Invalid("must not be empty" if shortest == 1 else f"needs at least {shortest} {_unit(value)}")
        if longest is not None and len(value) > longest:
            raise _Invalid(f"must have at most {longest} {_unit(value)}, got {len(value)}")
        return value
    return within


def _unit(value: Any) -> str:
    return "characters" if isinstance(value, str) else "items"


def _field_checks(cls: type[_Wire]) -> tuple[tuple[str, str, bool, FieldCheck], ...]:
    """``(attribute, wire name, may be None, check)`` of each field of ``cls``."""
    hints = typing.get_type_hints(cls, include_extras=True)
    checks = []
    for attribute, wire in zip(cls.__struct_fields__, cls.__struct_encode_fields__, strict=True):
        annotation = hints[attribute]
        optional = get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(annotation)
        checks.append((attribute, wire, optional, _compile(annotation)))
    return tuple(checks)


_FIELD_CHECKS: dict[type, tuple[tuple[str, str, bool, FieldCheck], ...]] = {
    cls: _field_checks(cls)
    for cls in (Destination, CallHeader, Amd, ConferenceDtmfOptions, StreamingOptions, TranscriptionOptions,
                RecordingOptions, MenuOption, Menu, *get_args(Instruction), *get_args(Action), Svaml)
}

SAFE_ANSWERS: dict[str, Svaml] = {
    "ice": Svaml(action=Hangup()),
    "ace": Svaml(action=Continue()),
    "pie": Svaml(action=Hangup()),
}


# --- parsing plain dicts ---------------------------------------------------------------------

_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_FIELD_NAMED = re.compile(r"Object (?P<what>contains unknown|missing required) field `(?P<field>[^`]*)`")


def _place(exc: msgspec.ValidationError) -> tuple[str, str]:
    """``(".menus[0].options[0].dtmf", why)`` of a decoding error, with Sinch's names."""
    cause = exc.__cause__
    match = _AT.match(str(exc))
    assert match is not None  # the pattern matches any text
    path, message = match["path"] or "", match["message"]
    if isinstance(cause, _FieldError):
        return f"{path}.{cause.wire}{cause.subpath}", cause.why
    if isinstance(cause, SvamlError):
        return path, str(cause)
    named = _FIELD_NAMED.fullmatch(message)
    if named is not None:
        what = "unknown field" if named["what"] == "contains unknown" else "required field missing"
        return f"{path}.{named['field']}", what
    return path, message


def _describe(exc: Exception, where: str) -> str:
    """``where.field[0].sub: why`` for the problem msgspec or a check found (places use Sinch's names)."""
    if not isinstance(exc, msgspec.ValidationError):
        return f"{where}: {exc}"
    path, why = _place(exc)
    return f"{where}{path}: {why}"


def _camel(key: str) -> str:
    if key == "async_":
        return "async"
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _wire_keys(data: Any) -> Any:
    """``data`` with snake_case keys renamed to camelCase at every level (a key given in both spellings is
    left as it is, so that it is refused as unknown), and a menu option's numeric ``dtmf`` as a string."""
    if isinstance(data, Mapping):
        renamed: dict[Any, Any] = {}
        for key, value in data.items():
            wire = _camel(key) if isinstance(key, str) and "_" in key else key
            renamed[key if wire in data or wire in renamed else wire] = _wire_keys(value)
        dtmf = renamed.get("dtmf")
        if type(dtmf) is int and "action" in renamed:
            renamed["dtmf"] = str(dtmf)
        return renamed
    if isinstance(data, list | tuple):
        return [_wire_keys(item) for item in data]
    return data


def _parse(data: Any, kind: str, types_: dict[str, type[_Tagged]], others: dict[str, type[_Tagged]],
           where: str) -> Any:
    if not isinstance(data, Mapping):
        raise SvamlError(f"{where}: an SVAML {kind} must be an object with a 'name', got {type(data).__name__}")
    name = data.get("name")
    if not isinstance(name, str):
        raise SvamlError(f"{where}: an SVAML {kind} needs a 'name' string, got {name!r}")
    cls = next((t for canonical, t in types_.items() if canonical.lower() == name.lower()), None)
    if cls is None:
        other = "action" if kind == "instruction" else "instruction"
        hint = f" ({name!r} is an {other}, not an {kind})" if any(n.lower() == name.lower() for n in others) else ""
        raise SvamlError(f"{where}: unknown SVAML {kind} {name!r}{hint}; valid {kind}s: {', '.join(types_)}")
    canonical = cls.name
    try:
        return msgspec.convert({**_wire_keys(data), "name": canonical}, cls)
    except msgspec.ValidationError as exc:
        raise SvamlError(_describe(exc, canonical if where == kind else f"{where}.{canonical}")) from None


def parse_action(data: Mapping[str, Any]) -> Action:
    """An action from a dict as Sinch writes it (``{"name": "ConnectPSTN", "maxDuration": 60}``)."""
    action: Action = _parse(data, "action", _ACTION_TYPES, _INSTRUCTION_TYPES, "action")
    return action


def parse_instruction(data: Mapping[str, Any]) -> Instruction:
    """An instruction from a dict as Sinch writes it (``{"name": "Say", "text": "Hi"}``)."""
    instruction: Instruction = _parse(data, "instruction", _INSTRUCTION_TYPES, _ACTION_TYPES, "instruction")
    return instruction


def parse_svaml(data: Mapping[str, Any]) -> Svaml:
    """A whole answer from ``{"action": {...}, "instructions": [...]}``."""
    if not isinstance(data, Mapping):
        raise SvamlError(f"SVAML must be an object with an 'action', got {type(data).__name__}")
    unknown = sorted(set(data) - {"action", "instructions"})
    if unknown:
        raise SvamlError(f"SVAML has unknown key(s) {', '.join(map(repr, unknown))}; only 'action' and "
                         f"'instructions' are allowed")
    if data.get("action") is None:
        raise SvamlError("SVAML needs exactly one 'action'")
    raw_instructions = data.get("instructions") or []
    if not isinstance(raw_instructions, list | tuple):
        raise SvamlError(f"SVAML 'instructions' must be a list, got {type(raw_instructions).__name__}")
    action = _parse(data["action"], "action", _ACTION_TYPES, _INSTRUCTION_TYPES, "action")
    instructions = tuple(_parse(item, "instruction", _INSTRUCTION_TYPES, _ACTION_TYPES, f"instructions[{index}]")
                         for index, item in enumerate(raw_instructions))
    try:
        return Svaml(action=action, instructions=instructions)
    except SvamlError as exc:
        raise SvamlError(f"svaml: {exc}") from None
