"""SVAML, the answer a Sinch Voice callback server sends back: typed, self-validating, serialisable.

An SVAML answer is one *action* (what happens to the call next) preceded by
optional *instructions* (run in order first)::

    {"instructions": [{"name": "say", "text": "Hello"}], "action": {"name": "hangup"}}

Every instruction and action is a frozen pydantic model with snake_case
attributes and Sinch's camelCase names on the wire.  Each checks the documented
limits when it is built (``ConnectPstn(max_duration=14401)`` raises a
``ValidationError``, which is a ``ValueError``), so a bad answer fails in the
code that made it, not on the phone.

* ``Svaml(action=..., instructions=(...))`` is a whole answer; ``to_dict()`` /
  ``to_json()`` give the wire form (camelCase, no nulls, ``name`` first);
  ``validate_for(event)`` checks it against the per-event tables
  (``ACTIONS_BY_EVENT`` / ``INSTRUCTIONS_BY_EVENT``, from the OpenAPI schemas
  ``svaml.action.{ice,ace,pie}``).
* ``parse_action`` / ``parse_instruction`` / ``parse_svaml`` read plain dicts as
  Sinch writes them (names matched case-insensitively, keys in camelCase or
  snake_case) and raise ``SvamlError`` naming what is wrong.
* ``SAFE_ANSWERS`` holds the answer sent instead of one that turned out invalid.

Protocol reference: ``sinch-voice-v1.md`` sections (b) "SVAML response" and (d) "Limits".
"""

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from .phone import is_cli, is_e164

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


# --- field types: each carries its own check and says what is wrong --------------------------

def _checked(test: Callable[[Any], bool], why: str) -> AfterValidator:
    """A validator raising ``ValueError(why)`` (``{value!r}`` filled in) when ``test`` fails."""
    def check(value: Any) -> Any:
        if not test(value):
            raise ValueError(why.format(value=value))
        return value
    return AfterValidator(check)


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


_DTMF = re.compile(r"[0-9#w]+")
_MENU_KEY = re.compile(r"[0-9*#]")
_MENU_ACTION = re.compile(r"(menu|return)\((.+)\)", re.DOTALL)
_TTS = re.compile(r"#(tts|ssml)\[", re.IGNORECASE)

Text = Annotated[str, Field(min_length=1)]
E164 = Annotated[str, _checked(is_e164,
                               "{value!r} is not an E.164 number ('+' then 1-15 digits, the first 1-9)")]
Cli = Annotated[str, _checked(is_cli,
                              "{value!r} is neither an E.164 number ('+' then 1-15 digits) nor 'private'")]
DtmfTones = Annotated[str, _checked(lambda v: _DTMF.fullmatch(v) is not None,
                                    "{value!r} may only contain 0-9, '#' and 'w' (a 500 ms pause)")]
# Numbers and flags are strict: True is not 1 second, "60" is not 60, "yes" is not true.
Flag = Annotated[bool, Field(strict=True)]
Count = Annotated[int, Field(strict=True, ge=0)]
Positive = Annotated[int, Field(strict=True, ge=1)]
CallDuration = Annotated[int, Field(strict=True, ge=0, le=MAX_CALL_DURATION)]
Transport = Annotated[Literal["UDP", "TCP", "TLS"], BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v)]
MusicOnHold = Literal["ring", "music1", "music2", "music3"]
Indication = Literal["at", "au", "bg", "br", "be", "ch", "cl", "cn", "cz", "de", "dk", "ee", "es", "fi", "fr",
                     "gr", "hu", "il", "in", "it", "lt", "jp", "mx", "my", "nl", "no", "nz", "ph", "pl", "pt",
                     "ru", "se", "sg", "th", "uk", "us", "tw", "ve", "za"]


class _Model(BaseModel):
    """Frozen, strict about unknown keys, snake_case in Python and camelCase on the wire."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


# --- nested objects --------------------------------------------------------------------------

class Destination(_Model):
    """Where connectMxp (``username``), connectSip (``sip``) or connectStream (``Websocket``) connects."""

    type: Text
    endpoint: Text


def _destination_of(kind: str) -> AfterValidator:
    return _checked(lambda d: d.type.lower() == kind,
                    f"destination type must be {kind!r} (any case) for this action, got {{value.type!r}}")


class CallHeader(_Model):
    """A key/value header passed to the callee (SDK client, SIP private header or WebSocket server)."""

    key: Text
    value: Annotated[str, _checked(lambda v: _utf8_len(v) <= MAX_HEADER_VALUE_BYTES,
                                   f"call header value is longer than {MAX_HEADER_VALUE_BYTES} bytes (UTF-8)")]


class Amd(_Model):
    """Answering-machine detection on connectPstn: the result arrives in the ACE (sync) or a Notify (async)."""

    enabled: Flag | None = None
    async_: Flag | None = Field(default=None, alias="async")


class ConferenceDtmfOptions(_Model):
    """What a conference does with a participant's keypresses; ``detect`` sends them to you as PIEs."""

    mode: Literal["ignore", "forward", "detect"] | None = None
    max_digits: Positive | None = None
    timeout_mills: Count | None = None


class StreamingOptions(_Model):
    """Audio format of a connectStream WebSocket."""

    version: Positive | None = None
    sample_rate: Positive | None = None


class TranscriptionOptions(_Model):
    """Whether Sinch also transcribes a recording, and in which language."""

    enabled: Flag | None = None
    locale: str | None = None


class RecordingOptions(_Model):
    """Where Sinch uploads a recording (S3 or Azure Blob; S3 credentials as ``ACCESS_KEY:SECRET:region``)."""

    destination_url: Text
    credentials: Text
    format: str | None = None
    notification_events: Flag | None = None
    transcription_options: TranscriptionOptions | None = None


class MenuOption(_Model):
    """A key of a menu: ``menu(<id>)`` goes to another menu, ``return(<value>)`` ends the menu with a PIE."""

    dtmf: Annotated[str,
                    BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v),
                    _checked(lambda v: _MENU_KEY.fullmatch(v) is not None, "{value!r} is not a single key 0-9, * or #")]
    action: Annotated[str, _checked(lambda v: _MENU_ACTION.fullmatch(v) is not None,
                                    "{value!r} is neither 'menu(<menu id>)' nor 'return(<value>)'")]

    @property
    def target_menu(self) -> str | None:
        """The menu id of a ``menu(<id>)`` option, else ``None``."""
        match = _MENU_ACTION.fullmatch(self.action)
        assert match is not None, "validated when the option was built"
        kind, argument = match.groups()
        return argument if kind == "menu" else None


class Menu(_Model):
    """One menu of a runMenu: prompts, how many digits to collect, and the keys' options."""

    id: Text
    main_prompt: str | None = None
    repeat_prompt: str | None = None
    repeats: Count | None = None
    max_digits: Positive | None = None
    timeout_mills: Count | None = None
    max_timeout_mills: Count | None = None
    options: tuple[MenuOption, ...] | None = None

    @model_validator(mode="after")
    def _one_option_per_key(self) -> "Menu":
        keys = [option.dtmf for option in self.options or ()]
        if len(keys) != len(set(keys)):
            twice = sorted({k for k in keys if keys.count(k) > 1})
            raise ValueError(f"menu {self.id!r}: options give key(s) {', '.join(twice)} more than once")
        return self


# --- instructions ----------------------------------------------------------------------------

class PlayFiles(_Model):
    """Plays prompts (media URLs, ``#tts[...]``, ``#ssml[...]``) to the caller's side."""

    name: Literal["playFiles"] = "playFiles"
    ids: Annotated[tuple[Text, ...], Field(min_length=1)]
    locale: str | None = None

    @model_validator(mode="after")
    def _locale_for_speech(self) -> "PlayFiles":
        if self.locale is None and any(_TTS.match(i) for i in self.ids):
            raise ValueError("locale is required when ids contain #tts[...] or #ssml[...]")
        return self


class Say(_Model):
    """Speaks ``text`` with text-to-speech (``locale`` picks the language or voice)."""

    name: Literal["say"] = "say"
    text: Annotated[str, Field(max_length=MAX_SAY_CHARS),
                    _checked(lambda v: v.strip() != "", "text must not be empty")]
    locale: str | None = None


class SendDtmf(_Model):
    """Plays DTMF tones into the call (``w`` is a 500 ms pause)."""

    name: Literal["sendDtmf"] = "sendDtmf"
    value: DtmfTones


class SetCookie(_Model):
    """Stores a key/value for the rest of the call; Sinch sends it along in the call's later events."""

    name: Literal["setCookie"] = "setCookie"
    key: Text
    value: str

    @model_validator(mode="after")
    def _size(self) -> "SetCookie":
        size = _utf8_len(self.key) + _utf8_len(self.value)
        if size > MAX_COOKIE_BYTES:
            raise ValueError(f"cookie {self.key[:40]!r}: key and value are {size} bytes (UTF-8); "
                             f"Sinch allows {MAX_COOKIE_BYTES}")
        return self


class Answer(_Model):
    """Answers the incoming call now (billing starts, media flows), e.g. before prompts."""

    name: Literal["answer"] = "answer"


class StartRecording(_Model):
    """Starts recording the call and uploads it to ``options.destination_url``."""

    name: Literal["startRecording"] = "startRecording"
    options: RecordingOptions


class StopRecording(_Model):
    """Stops the ongoing recording."""

    name: Literal["stopRecording"] = "stopRecording"


# --- actions ---------------------------------------------------------------------------------

class Hangup(_Model):
    """Ends the call."""

    name: Literal["hangup"] = "hangup"


class Continue(_Model):
    """ACE/PIE: carries on setting up the call (the neutral ACE answer)."""

    name: Literal["continue"] = "continue"


class ConnectPstn(_Model):
    """Connects the call to a phone number (default: the number originally dialled)."""

    name: Literal["connectPstn"] = "connectPstn"
    number: E164 | None = None
    locale: str | None = None
    max_duration: CallDuration | None = None
    dial_timeout: Count | None = None
    cli: Cli | None = None
    suppress_callbacks: Flag | None = None
    dtmf: DtmfTones | None = None
    indications: Indication | None = None
    amd: Amd | None = None


class ConnectMxp(_Model):
    """Connects an app-to-app call to an in-app (SDK) user."""

    name: Literal["connectMxp"] = "connectMxp"
    destination: Annotated[Destination, _destination_of("username")] | None = None
    call_headers: tuple[CallHeader, ...] | None = None


class ConnectConf(_Model):
    """Puts the call into a conference room, creating the room if it is new."""

    name: Literal["connectConf"] = "connectConf"
    conference_id: Annotated[str, Field(min_length=1, max_length=MAX_CONFERENCE_ID_CHARS)]
    conference_dtmf_options: ConferenceDtmfOptions | None = None
    moh: MusicOnHold | None = None


class ConnectSip(_Model):
    """Connects the call to a SIP endpoint (``user@host``)."""

    name: Literal["connectSip"] = "connectSip"
    destination: Annotated[Destination, _destination_of("sip")]
    max_duration: CallDuration | None = None
    cli: Cli | None = None
    transport: Transport | None = None
    suppress_callbacks: Flag | None = None
    call_headers: tuple[CallHeader, ...] | None = None
    moh: MusicOnHold | None = None


class ConnectStream(_Model):
    """Streams the call's audio to a WebSocket server (closed beta, ICE only)."""

    name: Literal["connectStream"] = "connectStream"
    destination: Annotated[Destination, _destination_of("websocket")]
    streaming_options: StreamingOptions | None = None
    max_duration: CallDuration | None = None
    call_headers: tuple[CallHeader, ...] | None = None


class RunMenu(_Model):
    """Plays an IVR menu tree; the caller's input comes back as a PIE."""

    name: Literal["runMenu"] = "runMenu"
    barge: Flag | None = None
    locale: str | None = None
    main_menu: str | None = None
    enable_voice: Flag | None = None
    menus: Annotated[tuple[Menu, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _menus_connect(self) -> "RunMenu":
        ids = [menu.id for menu in self.menus]
        known = ", ".join(repr(i) for i in ids)
        if len(ids) != len(set(ids)):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"menus: menu id(s) {', '.join(map(repr, twice))} used more than once")
        if self.main_menu is not None and self.main_menu not in ids:
            raise ValueError(f"mainMenu {self.main_menu!r} names no menu in menus (ids: {known})")
        if self.main_menu is None and "main" not in ids:
            raise ValueError(f"menus: no menu has id 'main' and mainMenu is not set (ids: {known})")
        for menu in self.menus:
            for option in menu.options or ():
                if option.target_menu is not None and option.target_menu not in ids:
                    raise ValueError(f"menu {menu.id!r}, key {option.dtmf}: {option.action!r} points to no menu "
                                     f"of this runMenu (ids: {known})")
        if self.enable_voice and not self.locale:
            raise ValueError("locale is required when enableVoice is true")
        return self


class Park(_Model):
    """Puts the caller on hold with a looping prompt until unparked (PATCH) or ``max_duration``."""

    name: Literal["park"] = "park"
    locale: str | None = None
    intro_prompt: str | None = None
    hold_prompt: str | None = None
    max_duration: Annotated[int, Field(strict=True, ge=0, le=MAX_PARK_DURATION)] | None = None


Instruction = PlayFiles | Say | SendDtmf | SetCookie | Answer | StartRecording | StopRecording
Action = Hangup | Continue | ConnectPstn | ConnectMxp | ConnectConf | ConnectSip | ConnectStream | RunMenu | Park

# canonical name -> class, in the order of the unions above
_INSTRUCTION_TYPES: dict[str, type[BaseModel]] = {c.model_fields["name"].default: c for c in get_args(Instruction)}
_ACTION_TYPES: dict[str, type[BaseModel]] = {c.model_fields["name"].default: c for c in get_args(Action)}

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

class Svaml(_Model):
    """A complete SVAML answer: ``instructions`` run in order, then the one ``action``."""

    action: Annotated[Action, Field(discriminator="name")]
    instructions: tuple[Annotated[Instruction, Field(discriminator="name")], ...] = ()

    @model_validator(mode="after")
    def _whole_answer(self) -> "Svaml":
        cookies = {i.key: i.value for i in self.instructions if isinstance(i, SetCookie)}   # the last one counts
        size = sum(_utf8_len(key) + _utf8_len(value) for key, value in cookies.items())
        if size > MAX_COOKIE_BYTES:
            raise ValueError(f"instructions: the setCookie instructions hold {size} bytes of cookie data "
                             f"(keys and values, UTF-8); Sinch allows {MAX_COOKIE_BYTES} in all")
        if self.action.name == "connectMxp" and any(i.name == "startRecording" for i in self.instructions):
            raise ValueError("instructions: startRecording is not supported together with connectMxp")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The wire form: camelCase keys, no nulls, no ``instructions`` when there are none, ``name`` first."""
        if self.instructions:
            return self.__pydantic_serializer__.to_python(self, mode="json", by_alias=True, exclude_none=True)
        return {"action": self.action.__pydantic_serializer__.to_python(
            self.action, mode="json", by_alias=True, exclude_none=True)}

    def to_json(self) -> bytes:
        """``to_dict()`` as compact UTF-8 JSON."""
        return self.__pydantic_serializer__.to_json(
            self, by_alias=True, exclude_none=True, exclude=None if self.instructions else {"instructions"})

    def validate_for(self, event: str, *, recheck_fields: bool = True) -> None:
        """Raise ``SvamlError`` unless Sinch accepts this answer to ``event`` (``ice``, ``ace`` or ``pie``).

        Besides the per-event tables this re-checks every field, so an answer
        assembled with ``model_copy(update=...)`` or ``model_construct`` (which
        skip validation) cannot slip an out-of-range value past it.
        ``recheck_fields=False`` checks the tables only: for answers whose parts
        were all validated when they were built.
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
            type(self).model_validate(self.model_dump(by_alias=True, warnings=False))
        except (ValueError, TypeError, AttributeError) as exc:
            raise SvamlError(f"invalid SVAML for {label}: {_describe(exc, 'svaml')}") from None


SAFE_ANSWERS: dict[str, Svaml] = {
    "ice": Svaml(action=Hangup()),
    "ace": Svaml(action=Continue()),
    "pie": Svaml(action=Hangup()),
}


# --- parsing plain dicts ---------------------------------------------------------------------

def _describe(exc: Exception, where: str) -> str:
    """``where.field[0].sub: why`` for each problem pydantic found (locations use Sinch's names)."""
    if not isinstance(exc, ValidationError):
        return f"{where}: {exc}"
    parts = []
    for error in exc.errors(include_url=False):
        path = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{path}: {message}")
    return "; ".join(parts)


def _parse(data: Any, kind: str, types: dict[str, type[BaseModel]], others: dict[str, type[BaseModel]],
           where: str) -> Any:
    if not isinstance(data, Mapping):
        raise SvamlError(f"{where}: an SVAML {kind} must be an object with a 'name', got {type(data).__name__}")
    name = data.get("name")
    if not isinstance(name, str):
        raise SvamlError(f"{where}: an SVAML {kind} needs a 'name' string, got {name!r}")
    cls = next((t for canonical, t in types.items() if canonical.lower() == name.lower()), None)
    if cls is None:
        other = "action" if kind == "instruction" else "instruction"
        hint = f" ({name!r} is an {other}, not an {kind})" if any(n.lower() == name.lower() for n in others) else ""
        raise SvamlError(f"{where}: unknown SVAML {kind} {name!r}{hint}; valid {kind}s: {', '.join(types)}")
    canonical = cls.model_fields["name"].default
    try:
        return cls.model_validate({**data, "name": canonical})
    except ValidationError as exc:
        raise SvamlError(_describe(exc, canonical if where == kind else f"{where}.{canonical}")) from None


def parse_action(data: Mapping[str, Any]) -> Action:
    """An action from a dict as Sinch writes it (``{"name": "ConnectPSTN", "maxDuration": 60}``)."""
    return _parse(data, "action", _ACTION_TYPES, _INSTRUCTION_TYPES, "action")


def parse_instruction(data: Mapping[str, Any]) -> Instruction:
    """An instruction from a dict as Sinch writes it (``{"name": "Say", "text": "Hi"}``)."""
    return _parse(data, "instruction", _INSTRUCTION_TYPES, _ACTION_TYPES, "instruction")


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
    except ValidationError as exc:
        raise SvamlError(_describe(exc, "svaml")) from None
