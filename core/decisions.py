"""What call hooks return: neutral decisions, rendered by each protocol adapter for its generation.

Every decision validates itself when it is created, so a plugin that builds a bad answer fails in
its own code, with its own name in the traceback, and never in the combine step or on the wire.

* :class:`Prompt`: something the caller hears (spoken text, or an audio file).
* :class:`Allow` / :class:`Deny`: ``authorize_call``.
* :class:`Route`: ``route_call`` (and ``on_prompt_input``): where the call goes, one of the targets
  :class:`PhoneNumber`, :class:`SipEndpoint`, :class:`InAppUser`, :class:`Conference`,
  :class:`DigitMenu`, :class:`EndCall`, with a max duration, a caller id and prompts.
* :class:`CallerId`: ``set_cli``.
* :class:`Proceed` / :class:`EndCall`: ``on_answer`` and ``on_prompt_input``.

How each renders (docs/plugins.md has the whole table):

=================  ===========================================  ==============================================
decision           v1 SVAML                                     v2 SVAML
=================  ===========================================  ==============================================
``PhoneNumber``    ``connectPstn`` ``number``, ``cli``,          ``bridgeCall`` + ``dial`` ``to`` PHONE, ``from``,
                   ``maxDuration``, ``dialTimeout``              ``maxCallDurationSeconds``,
                                                                 ``dialTimeoutDurationSeconds``
``SipEndpoint``    ``connectSip``                               ``bridgeCall`` + ``dial`` ``to`` SIP
``InAppUser``      ``connectMxp``                               none (v2 has no in-app calls)
``Conference``     ``connectConf``                              none (v2 bridges live within one session)
``DigitMenu``      ``runMenu`` (one menu, ``maxDigits``)         ``menu`` without ``matches``: input comes back
                                                                 as ``call.menu``
``EndCall``        ``hangup``                                   ``hangup`` (after the prompts have played)
``Proceed``        ``continue``                                 ACE: ``bridgeCall`` (joins the answered leg
                                                                 to the caller); otherwise ``[]``
``Prompt``         ``say`` (``locale``) / ``playFiles``          ``messages`` SAY (``[server] voice``) / PLAY
=================  ===========================================  ==============================================

A plugin may also return generation-specific SVAML for what has no neutral form: a v1
:class:`callgate.protocols.v1.svaml.Svaml`, or a v2 :class:`callgate.protocols.v2.wire.V2Answer` (its commands).
It is checked for that generation and event; returned for a call of the other generation it
counts as the plugin failing (its ``on_error`` policy applies).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .calls import Header
from .phone import is_cli, is_e164

__all__ = [
    "MAX_DURATION_LIMIT",
    "MAX_PROMPT_CHARS",
    "Allow",
    "CallerId",
    "Conference",
    "Deny",
    "DigitMenu",
    "EndCall",
    "InAppUser",
    "PhoneNumber",
    "Proceed",
    "Prompt",
    "Route",
    "SipEndpoint",
    "SvamlRoute",
    "Target",
]

#: The longest call, in seconds, either generation lets an answer ask for (v1 ``maxDuration``).
MAX_DURATION_LIMIT = 14400
#: The longest spoken prompt (v1 ``say``, v2 SAY ``text``).
MAX_PROMPT_CHARS = 600
#: The longest ring time a route may set (v1 ``dialTimeout``; v2 ``dialTimeoutDurationSeconds``).
MAX_DIAL_TIMEOUT = 600
MAX_CONFERENCE_ID_CHARS = 64
#: The most audio files one prompt plays (a v2 ``messages`` command holds at most 10 messages).
MAX_PROMPT_FILES = 10
MAX_SIP_HEADERS = 16


def _whole(value: Any) -> bool:
    """An int that is not a bool (``True`` is not a number of seconds)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _seconds(owner: str, value: Any, limit: int) -> None:
    if value is not None and not (_whole(value) and 0 < value <= limit):
        raise ValueError(f"{owner} must be 1..{limit} seconds, got {value!r}")


def _text(owner: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{owner} must be a non-empty string, got {value!r}")
    return value.strip()


# --------------------------------------------------------------------------- prompts

@dataclass(frozen=True, slots=True)
class Prompt:
    """Something the caller hears: ``text`` spoken (in ``locale``, v1; in ``[server] voice``, v2) or the audio
    files at ``urls``, played in order (v1 ``playFiles``, which also takes ``locale``; v2 one PLAY message
    each).  Give ``text`` or ``urls``, not both; :meth:`say` and :meth:`play` say which."""

    text: str | None = None
    urls: tuple[str, ...] = ()
    locale: str | None = None

    def __post_init__(self) -> None:
        urls = tuple(self.urls)
        if (self.text is None) == (not urls):
            raise ValueError("Prompt needs text (spoken) or urls (audio files), not both")
        if self.text is not None:
            text = _text("Prompt.text", self.text)
            if len(text) > MAX_PROMPT_CHARS:
                raise ValueError(f"Prompt.text is {len(text)} characters long; Sinch speaks at most {MAX_PROMPT_CHARS}")
        for url in urls:
            if not _text("Prompt.urls", url).lower().startswith(("http://", "https://")):
                raise ValueError(f"Prompt.urls must hold http(s) URLs, got {url!r}")
        if len(urls) > MAX_PROMPT_FILES:
            raise ValueError(f"Prompt.urls holds {len(urls)} files; one prompt plays at most {MAX_PROMPT_FILES}")
        object.__setattr__(self, "urls", urls)
        if self.locale is not None:
            _text("Prompt.locale", self.locale)

    @classmethod
    def say(cls, text: str, locale: str | None = None) -> Prompt:
        """Spoken text."""
        return cls(text=text, locale=locale)

    @classmethod
    def play(cls, *urls: str, locale: str | None = None) -> Prompt:
        """Audio files (http or https), played in order."""
        return cls(urls=urls, locale=locale)


def _prompts(owner: str, prompts: Any) -> tuple[Prompt, ...]:
    prompts = tuple(prompts)
    for prompt in prompts:
        if not isinstance(prompt, Prompt):
            raise ValueError(f"{owner} must hold Prompt objects, got {prompt!r}")
    return prompts


# --------------------------------------------------------------------------- targets

@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """Connect the call to a phone number (E.164, ``+46...``)."""

    number: str

    def __post_init__(self) -> None:
        if not is_e164(self.number):
            raise ValueError(f"PhoneNumber.number must be E.164 like +46701234567, got {self.number!r}")


@dataclass(frozen=True, slots=True)
class SipEndpoint:
    """Connect the call to a SIP URI (``sip:`` or ``sips:``), with optional call headers and transport
    (``udp``, ``tcp``, ``tls``)."""

    uri: str
    headers: tuple[Header, ...] = ()
    transport: str | None = None

    def __post_init__(self) -> None:
        uri = _text("SipEndpoint.uri", self.uri)
        if not uri.lower().startswith(("sip:", "sips:")) or len(uri) > 256:
            raise ValueError(f"SipEndpoint.uri must be a sip: or sips: URI of at most 256 characters, got {self.uri!r}")
        headers = tuple(self.headers)
        if len(headers) > MAX_SIP_HEADERS or not all(isinstance(h, Header) for h in headers):
            raise ValueError(f"SipEndpoint.headers must be at most {MAX_SIP_HEADERS} callgate.calls.Header objects")
        object.__setattr__(self, "headers", headers)
        if self.transport is not None:
            transport = str(self.transport).lower()
            if transport not in ("udp", "tcp", "tls"):
                raise ValueError(f"SipEndpoint.transport must be udp, tcp or tls, got {self.transport!r}")
            object.__setattr__(self, "transport", transport)


@dataclass(frozen=True, slots=True)
class InAppUser:
    """Connect the call to an in-app (SDK) user.  v1 only: a v2 call has no in-app destination."""

    user: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "user", _text("InAppUser.user", self.user))


@dataclass(frozen=True, slots=True)
class Conference:
    """Put the call into a conference.  v1 only: v2 bridges exist only within one session."""

    conference_id: str

    def __post_init__(self) -> None:
        conference_id = _text("Conference.conference_id", self.conference_id)
        if len(conference_id) > MAX_CONFERENCE_ID_CHARS:
            raise ValueError(f"Conference.conference_id is longer than {MAX_CONFERENCE_ID_CHARS} characters")


@dataclass(frozen=True, slots=True)
class DigitMenu:
    """Play ``prompt`` and collect up to ``max_digits`` keys (ended by ``#``); the input comes back to
    ``on_prompt_input`` (v1 PIE, v2 ``call.menu``) with ``menu_result.menu_id`` = ``menu_id``.

    ``timeout_seconds``: how long to wait for input; ``repeats``: how often the prompt is repeated
    when nothing is entered.
    """

    prompt: Prompt
    menu_id: str = "main"
    max_digits: int = 1
    timeout_seconds: int = 5
    repeats: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, Prompt):
            raise ValueError(f"DigitMenu.prompt must be a Prompt, got {self.prompt!r}")
        menu_id = _text("DigitMenu.menu_id", self.menu_id)
        if len(menu_id) > 16 or any(c.isspace() for c in menu_id):
            raise ValueError(f"DigitMenu.menu_id must be 1-16 characters without spaces, got {self.menu_id!r}")
        for name, value, low, high in (("max_digits", self.max_digits, 1, 20), ("timeout_seconds", self.timeout_seconds, 1, 60),
                                       ("repeats", self.repeats, 0, 10)):
            if not _whole(value) or not low <= value <= high:
                raise ValueError(f"DigitMenu.{name} must be {low}..{high}, got {value!r}")


@dataclass(frozen=True, slots=True)
class EndCall:
    """Hang up, after playing ``prompts`` (if any)."""

    prompts: tuple[Prompt, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", _prompts("EndCall.prompts", self.prompts))


#: Where a :class:`Route` may send a call.
Target = PhoneNumber | SipEndpoint | InAppUser | Conference | DigitMenu | EndCall
TARGET_TYPES = (PhoneNumber, SipEndpoint, InAppUser, Conference, DigitMenu, EndCall)
#: Targets that are dialled: a caller id and a max duration apply to them.
DIALLED_TYPES = (PhoneNumber, SipEndpoint)
#: Targets a v2 call cannot have.
V1_ONLY_TYPES = (InAppUser, Conference)


# --------------------------------------------------------------------------- hook results

@dataclass(frozen=True, slots=True)
class Allow:
    """``authorize_call`` has no objection, and may contribute to the answer.

    ``max_duration``: the most seconds this plugin lets the call last (the smallest of all plugins'
    wins).  ``prompts``: what the caller hears before being connected (e.g. their balance), kept in
    plugin order.  ``reason`` is logged.
    """

    max_duration: int | None = None
    prompts: tuple[Prompt, ...] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        _seconds("Allow.max_duration", self.max_duration, MAX_DURATION_LIMIT)
        object.__setattr__(self, "prompts", _prompts("Allow.prompts", self.prompts))


@dataclass(frozen=True, slots=True)
class Deny:
    """``authorize_call`` vetoes the call: it is hung up after ``prompt`` (if any) has played.

    ``reason`` is logged and handed to ``call_decided``.
    """

    reason: str
    prompt: Prompt | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", _text("Deny.reason", self.reason))
        if self.prompt is not None and not isinstance(self.prompt, Prompt):
            raise ValueError(f"Deny.prompt must be a Prompt, got {self.prompt!r}")


@dataclass(frozen=True, slots=True)
class Route:
    """Where the call goes: ``to`` one target, after ``prompts``.

    ``max_duration`` limits a dialled call (``PhoneNumber``, ``SipEndpoint``; the smallest of this and
    every ``Allow``'s wins); ``cli`` is the caller id the callee sees (``set_cli`` may replace it);
    ``dial_timeout`` how long it may ring.  ``name`` labels the route in logs and lets caller-id
    rules match it.
    """

    to: Target
    name: str | None = None
    max_duration: int | None = None
    cli: str | None = None
    dial_timeout: int | None = None
    prompts: tuple[Prompt, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.to, TARGET_TYPES):
            raise ValueError(f"Route.to must be one of {', '.join(t.__name__ for t in TARGET_TYPES)}, got {self.to!r}")
        _seconds("Route.max_duration", self.max_duration, MAX_DURATION_LIMIT)
        _seconds("Route.dial_timeout", self.dial_timeout, MAX_DIAL_TIMEOUT)
        if self.cli is not None and not is_cli(self.cli):
            raise ValueError(f"Route.cli must be an E.164 number like +46701234567 or 'private', got {self.cli!r}")
        object.__setattr__(self, "prompts", _prompts("Route.prompts", self.prompts))

    @property
    def label(self) -> str:
        """``name``, or the kind of target: for logs."""
        return self.name or type(self.to).__name__


@dataclass(frozen=True, slots=True)
class SvamlRoute:
    """A route given as one generation's own SVAML, for what no :class:`Route` expresses (a v1
    :class:`callgate.protocols.v1.svaml.Svaml` such as ``runMenu`` with several menus, or a v2
    ``callgate.protocols.v2.wire.V2Answer``), with the ``name`` that labels it in logs and lets
    caller-id rules match it, as :attr:`Route.name` does.

    ``route_call`` may return the SVAML itself when it needs no name.  It answers calls of its own
    generation only: for a call of the other one it counts as the plugin failing.
    """

    svaml: Any
    name: str | None = None

    def __post_init__(self) -> None:
        if self.svaml is None or isinstance(self.svaml, (Route, SvamlRoute, *TARGET_TYPES)):
            raise ValueError(f"SvamlRoute.svaml must be a generation's SVAML answer, got {self.svaml!r}")


@dataclass(frozen=True, slots=True)
class CallerId:
    """``set_cli`` chooses the caller id shown to the callee: E.164 (``+46...``) or ``private``."""

    number: str

    def __post_init__(self) -> None:
        if not is_cli(self.number):
            raise ValueError(f"CallerId must be an E.164 number like +46701234567 or 'private', got {self.number!r}")


@dataclass(frozen=True, slots=True)
class Proceed:
    """``on_answer`` / ``on_prompt_input``: carry on.  The answered leg is connected to the caller (v1
    ``continue``; v2 ``bridgeCall`` in answer to ``call.answered``), a menu's call goes on as it was."""
