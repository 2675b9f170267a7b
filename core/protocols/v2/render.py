"""Neutral plans and decisions rendered as SVAML v2: :class:`V2Renderer`, the v2 :class:`callgate.plan.Renderer`.

Every answer is a :class:`~callgate.protocols.v2.wire.V2Answer`, written by
:func:`~callgate.protocols.v2.wire.encode_v2_answer` (which checks it against the SVAML v2 types) and
returned as a :class:`~callgate.plan.Rendered`; ``action`` names what the answer does (``dial``,
``hangup``, ``menu``, ``bridgeCall``, ``none``, ...: the first command that is not ``answer``,
``messages``, ``pause`` or ``bridgeCall``, looking inside ``messages``' ``onFinish``; else
``bridgeCall`` if there is one; else the first command; ``none`` for ``[]``).

How each decision renders (``sinch-voice-v2.md`` (c), (e) and its fixtures):

* **Prompts** play before what follows them: ``messages`` (SAY in the renderer's ``voice``, or
  PLAY) with ``events.onFinish`` holding the rest, because ``messages`` does not block (``[messages,
  hangup]`` would cut the prompt off: (f) 6).  More than 10 prompts are chained, 10 per ``messages``.
  In answer to ``call.incoming`` the inbound leg is ``answer``-ed before prompts or a menu, as in the
  say-hangup fixture.
* **Hang up** (incoming without route, ``Deny``, ``EndCall``): ``hangup``, after the prompts.
* **PhoneNumber / SipEndpoint**: ``bridgeCall`` (the renderer's ``bridge``) for the current leg,
  then ``dial`` ``to`` PHONE / SIP (``transport`` upper-cased, ``callHeaders``), ``callName``
  ``callee``, ``maxCallDurationSeconds`` and ``dialTimeoutDurationSeconds`` when set, and **no
  ``events``**, so Sinch sends ``call.answered`` (answered with ``bridgeCall`` into the same bridge,
  which connects the two legs), ``call.busy``/... and ``call.hangup`` for the dialled leg: the
  dial-phone fixture.
* **DigitMenu**: ``menu`` with one item named ``menu_id``: prompt = the prompts + the menu's prompt
  (when they are 10 or fewer; otherwise the prompts play first), ``maximumInputLength`` =
  ``max_digits``, ``inputTimeoutDurationSeconds``, ``repeatCount``, ``terminatingSequence`` ``#``,
  and no ``matches``, so the input comes back as ``call.menu``.
* ``call.answered``: ``Proceed`` -> ``bridgeCall``; ``EndCall`` -> the prompts (to the answered leg),
  then ``hangup`` of the leg named ``caller`` and of the answered leg; a ``Route`` to a ``DigitMenu``
  (or an ``EndCall``) as above.  A route to a number or SIP URI is refused there.
* ``call.menu``: ``Proceed`` -> ``{"commands": []}``; ``EndCall`` and any ``Route`` as for
  ``call.incoming``, without ``callName`` and ``answer`` (the leg is answered already).
* A plugin's own :class:`V2Answer` is sent as it is (validated by encoding).  In answer to
  ``call.incoming`` the plan's prompts play first (its commands move into their ``onFinish``) and
  its top-level ``dial`` commands get the plan's ``max_duration`` (the smaller one) and ``cli``.
* Refused (:meth:`V2Renderer.refuses`): ``InAppUser`` (v2 has no in-app calls), ``Conference`` (v2
  bridges live within one session), an invalid ``V2Answer``, and anything that is neither a
  neutral decision nor a ``V2Answer`` (v1 SVAML included).

Choices where Sinch says nothing (each can change once live traffic says otherwise):

* **Leg names**: ``callName`` ``caller`` for the inbound leg (in every ``call.incoming`` answer that
  keeps the call going: dial and menu; ``callName`` takes effect only there, and a later hang-up of
  both legs needs it), ``callee`` for the dialled leg, as in the fixture.
* **No ``messagesName``**: Sinch wants it unique in the session, and nothing here stops or awaits a
  message sequence by name; the say-hangup fixture's ``"closed"`` is illustrative.
* **Prompt locale**: SVAML v2 has no locale, the voice implies the language, so
  :attr:`~callgate.decisions.Prompt.locale` does not pick a voice: every SAY uses ``voice``
  (``[server] voice``).  ``format`` is left out (TEXT).
* **Caller id**: an E.164 ``cli`` becomes ``from`` PHONE (also for a SIP target: Sinch converts
  a ``from`` whose type differs from ``to``).  ``private`` becomes ``from`` SIP
  ``sip:anonymous@anonymous.invalid`` with display name ``Anonymous`` (RFC 3261's anonymous From):
  SVAML v2 has no "withheld" flag, leaving ``from`` out lets Sinch pick (undocumented, likely the
  caller's number: the opposite of what was asked), and Sinch's reference says a ``from`` it cannot
  convert to the ``to`` type is sent anonymous.  No ``cli``: no ``from``.
* **Hang-up after ``call.answered``**: both legs, the caller by name first ((f) 8: whether one leg's
  end ends the other is undocumented), as v1's ACE ``hangup`` ends the whole call.
* **Safe answers**: ``call.incoming`` -> ``hangup``; ``call.answered`` -> ``bridgeCall`` (v1's safe
  ACE answer is ``continue``, which connects); ``call.menu`` -> ``hangup``.
* **Not recorded** (:meth:`V2Renderer.not_recorded`): ``424 Failed Dependency`` with
  ``{"commands": [], "error": "not_recorded", "message": ...}``.  A 5xx must never answer a v2
  webhook (a failed delivery drops a live call); a non-2xx makes Sinch resend the event to the
  ``fallbackUrl``, which is the point.  424 says that the request was fine but something it
  depended on (a plugin's store) failed.  The body is still valid SVAML v2 for the SDK's
  response model (``VoiceSinchEventResponse`` allows extra fields), in case a 4xx body is ever
  read as an answer.  Caveat (``sinch-voice-v2.md`` (a)): after several consecutive primary
  failures Sinch sends *everything* to the fallback for at least 60 s, and without a
  ``fallbackUrl`` a failed delivery may disconnect the call's other leg.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from callgate.calls import Generation
from callgate.decisions import (
    Allow,
    CallerId,
    Conference,
    Deny,
    DigitMenu,
    EndCall,
    InAppUser,
    PhoneNumber,
    Proceed,
    Prompt,
    Route,
    SipEndpoint,
)
from callgate.phone import PRIVATE
from callgate.plan import IncomingPlan, Rendered, StepAnswer
from callgate.protocols.wording import not_recorded_by

from .wire import (
    InvalidV2Answer,
    V2Answer,
    V2AnswerCommand,
    V2BridgeCallCommand,
    V2Command,
    V2DialCommand,
    V2DialDestination,
    V2DialOrigin,
    V2HangupCommand,
    V2MenuCommand,
    V2MenuItem,
    V2MenuPrompt,
    V2Message,
    V2MessageEvents,
    V2MessagesCommand,
    V2Phone,
    V2PhoneDetails,
    V2Play,
    V2PlayMessage,
    V2Say,
    V2SayMessage,
    V2Sip,
    V2SipCallHeader,
    V2SipDetails,
    V2SipFrom,
    V2SipFromDetails,
    encode_v2_answer,
)

__all__ = ["ANONYMOUS_ORIGIN", "CALLEE_LEG", "CALLER_LEG", "NOT_RECORDED_STATUS", "RECORDED", "V2Renderer"]

#: ``callName`` of the inbound leg (set in answers to ``call.incoming`` that keep the call going).
CALLER_LEG = "caller"
#: ``callName`` of the leg a route dials.
CALLEE_LEG = "callee"
#: The body of a 200 to an event that only records (end states, notices): nothing to do.
RECORDED = b'{"commands":[]}'
#: The status of a recording event that could not be recorded: not 2xx (Sinch resends to the fallback
#: URL), not 5xx (never for a v2 webhook).
NOT_RECORDED_STATUS = 424
#: ``dial.from`` for the caller id ``private`` (RFC 3261's anonymous From).
ANONYMOUS_ORIGIN = V2SipFrom(sip=V2SipFromDetails(endpoint="sip:anonymous@anonymous.invalid", display_name="Anonymous"))
#: At most this many messages in one ``messages`` command or menu prompt.
MAX_MESSAGES = 10

#: What a v2 call can be answered with besides a V2Answer (InAppUser and Conference are refused separately).
_NEUTRAL = (Allow, Deny, Route, CallerId, Proceed, EndCall, Prompt, PhoneNumber, SipEndpoint, DigitMenu)
#: Commands that do not say what an answer does (they prepare or accompany it).
_PREPARING = frozenset({"answer", "messages", "pause", "bridgeCall"})


def _action(commands: Sequence[V2Command]) -> str:
    """What an answer does, for the log line and metrics (see the module docstring)."""
    bridged = False
    pending = list(commands)
    while pending:
        command = pending.pop(0)
        name = command.command
        if name not in _PREPARING:
            return name
        bridged = bridged or name == "bridgeCall"
        if isinstance(command, V2MessagesCommand) and command.events is not None and command.events.on_finish:
            pending[:0] = command.events.on_finish
    if bridged:
        return "bridgeCall"
    return commands[0].command if commands else "none"


def _origin(cli: str | None) -> V2DialOrigin | None:
    if cli is None:
        return None
    if cli == PRIVATE:
        return ANONYMOUS_ORIGIN
    return V2Phone(phone=V2PhoneDetails(number=cli))


def _destination(target: PhoneNumber | SipEndpoint) -> V2DialDestination:
    if isinstance(target, PhoneNumber):
        return V2Phone(phone=V2PhoneDetails(number=target.number))
    headers = [V2SipCallHeader(key=h.key, value=h.value) for h in target.headers] or None
    transport = target.transport.upper() if target.transport else None
    return V2Sip(sip=V2SipDetails(endpoint=target.uri, transport=transport, call_headers=headers))


def _refusal(target: Any) -> str | None:
    if isinstance(target, InAppUser):
        return "Voice API v2 has no in-app calls: an InAppUser target cannot be carried out for a v2 call"
    if isinstance(target, Conference):
        return ("Voice API v2 bridges exist only within one session: a Conference target cannot be carried out "
                "for a v2 call")
    return None


class V2Renderer:
    """The SVAML v2 rendering of plans and answers (see the module docstring for the rules).

    ``voice`` is the TTS voice of every spoken prompt (``[server] voice``; ``Emma``, ``Sonia``, ...),
    ``bridge`` the ``bridgeName`` that connects a caller with the leg a route dials.
    """

    generation: Generation = "v2"
    recorded: bytes = RECORDED

    def __init__(self, voice: str = "Emma", bridge: str = "callgate") -> None:
        if not isinstance(voice, str) or not voice.strip():
            raise ValueError(f"voice must be a TTS voice name such as 'Emma', got {voice!r}")
        if not isinstance(bridge, str) or not bridge or any(c.isspace() for c in bridge):
            raise ValueError(f"bridge must be a name without whitespace, got {bridge!r}")
        self.voice = voice.strip()
        self.bridge = bridge
        self._bridge_call = V2BridgeCallCommand(bridge_name=bridge)
        self._safe = {
            "incoming": self._render(V2Answer(commands=[V2HangupCommand()])),
            "answered": self._render(V2Answer(commands=[self._bridge_call])),
            "menu": self._render(V2Answer(commands=[V2HangupCommand()])),
        }
        self._proceed_menu = self._render(V2Answer(commands=[]))

    def __repr__(self) -> str:
        return f"V2Renderer(voice={self.voice!r}, bridge={self.bridge!r})"

    # ----------------------------------------------------------------------- the Renderer protocol

    def incoming(self, plan: IncomingPlan) -> Rendered:
        """The answer to ``call.incoming``: hang up (after the prompts), or go where the route says, or the plugin's
        own :class:`V2Answer` (after the prompts, with the plan's limits)."""
        if plan.route is not None:
            route = plan.route
            return self._render(self._to_target(route.to, plan.prompts, max_duration=plan.max_duration, cli=plan.cli,
                                                dial_timeout=route.dial_timeout, incoming=True))
        if plan.specific is not None:
            return self._render(*self._specific(plan))
        return self._render(self._hang_up(plan.prompts, incoming=True))

    def answered(self, answer: StepAnswer) -> Rendered:
        """The answer to ``call.answered`` (of a dialled leg): ``Proceed`` connects it to the caller."""
        if isinstance(answer, Proceed):
            return self._render(V2Answer(commands=[self._bridge_call]))
        if isinstance(answer, EndCall):
            return self._render(self._hang_up(answer.prompts, incoming=False, both_legs=True))
        if isinstance(answer, Route) and isinstance(answer.to, EndCall):
            return self._render(self._hang_up((*answer.prompts, *answer.to.prompts), incoming=False, both_legs=True))
        if isinstance(answer, Route) and isinstance(answer.to, DigitMenu):
            return self._render(V2Answer(commands=self._menu(answer.to, answer.prompts)))
        if isinstance(answer, V2Answer):
            return self._render(answer)
        raise ValueError(self._cannot("call.answered", answer, "Proceed, EndCall, a Route to a DigitMenu or EndCall, "
                                                               "or a V2Answer"))

    def menu(self, answer: StepAnswer) -> Rendered:
        """The answer to ``call.menu``: ``Proceed`` does nothing more, an ``EndCall`` or a ``Route`` as for
        ``call.incoming``."""
        if isinstance(answer, Proceed):
            return self._proceed_menu
        if isinstance(answer, EndCall):
            return self._render(self._hang_up(answer.prompts, incoming=False))
        if isinstance(answer, Route):
            return self._render(self._to_target(answer.to, answer.prompts, max_duration=answer.max_duration,
                                                cli=answer.cli, dial_timeout=answer.dial_timeout, incoming=False))
        if isinstance(answer, V2Answer):
            return self._render(answer)
        raise ValueError(self._cannot("call.menu", answer, "Proceed, EndCall, a Route or a V2Answer"))

    def safe(self, kind: str) -> Rendered:
        """The answer sent instead of one that could not be rendered: ``incoming`` and ``menu`` hang up,
        ``answered`` connects the answered leg (``bridgeCall``)."""
        try:
            return self._safe[kind]
        except KeyError:
            raise ValueError(f"no safe v2 answer for {kind!r}: expected incoming, answered or menu") from None

    def refuses(self, value: Any, kind: str) -> str | None:
        """Why a v2 call cannot be answered with ``value`` (for any ``kind`` of event), or None when it can (see the
        module docstring)."""
        if isinstance(value, V2Answer):
            try:
                encode_v2_answer(value)
            except InvalidV2Answer as error:
                return f"the SVAML v2 answer is not valid: {error.message}"
            return None
        target = value.to if isinstance(value, Route) else value
        refusal = _refusal(target)
        if refusal is not None:
            return refusal
        if value is None or isinstance(value, _NEUTRAL):
            return None
        return (f"{type(value).__name__} cannot answer a v2 call: give a neutral decision (callgate.decisions) or "
                f"SVAML v2 (callgate.protocols.v2.wire.V2Answer); v1 SVAML is for v1 calls only")

    def dials(self, svaml: Any) -> bool:
        """Whether a plugin's own ``V2Answer`` dials at its top level: then ``set_cli`` runs, and the caller id it
        gives becomes that ``dial``'s ``from`` (as ``set_cli`` sets a v1 SVAML route's ``connectPstn`` ``cli``)."""
        return isinstance(svaml, V2Answer) and any(isinstance(c, V2DialCommand) for c in svaml.commands)

    def not_recorded(self, plugins: str | None) -> tuple[int, bytes]:
        """``424`` and a body that is still SVAML v2 (``commands`` ``[]``, plus ``error`` and ``message``): Sinch
        resends the event to the fallback URL; a 5xx is never sent to a v2 webhook (see the module docstring)."""
        message = (f"{not_recorded_by(plugins)} record this event (the reason is in callgate's log under its callId); answering "
                   f"{NOT_RECORDED_STATUS} so that Sinch's fallback URL receives it")
        return NOT_RECORDED_STATUS, json.dumps({"commands": [], "error": "not_recorded", "message": message}).encode()

    # ----------------------------------------------------------------------- building answers

    def _render(self, answer: V2Answer, max_duration: int | None = None) -> Rendered:
        return Rendered(svaml=answer, body=encode_v2_answer(answer), action=_action(answer.commands),
                        max_duration=max_duration)

    @staticmethod
    def _cannot(event: str, answer: Any, expected: str) -> str:
        refusal = _refusal(answer.to if isinstance(answer, Route) else answer)
        if refusal is not None:
            return refusal
        what = f"a Route to {type(answer.to).__name__}" if isinstance(answer, Route) else type(answer).__name__
        return f"{what} cannot answer {event}: expected {expected}"

    def _messages(self, prompts: Iterable[Prompt]) -> list[V2Message]:
        """SAY (in the renderer's voice) for spoken prompts, one PLAY per audio file."""
        messages: list[V2Message] = []
        for prompt in prompts:
            if prompt.text is None:
                messages.extend(V2PlayMessage(play=V2Play(url=url)) for url in prompt.urls)
            else:
                messages.append(V2SayMessage(say=V2Say(text=prompt.text.strip(), voice_name=self.voice)))
        return messages

    def _play_then(self, prompts: Iterable[Prompt], then: list[V2Command]) -> list[V2Command]:
        """``then``, after ``prompts`` have played: ``messages`` (10 at most each) whose ``onFinish`` holds the rest."""
        messages = self._messages(prompts)
        commands = then
        for start in reversed(range(0, len(messages), MAX_MESSAGES)):
            commands = [V2MessagesCommand(messages=messages[start:start + MAX_MESSAGES],
                                          events=V2MessageEvents(on_finish=commands))]
        return commands

    def _hang_up(self, prompts: Sequence[Prompt], *, incoming: bool, both_legs: bool = False) -> V2Answer:
        hangup: list[V2Command] = [V2HangupCommand(call_name=CALLER_LEG), V2HangupCommand()] if both_legs \
            else [V2HangupCommand()]
        if not prompts:
            return V2Answer(commands=hangup)
        answer: list[V2Command] = [V2AnswerCommand()] if incoming else []
        return V2Answer(commands=[*answer, *self._play_then(prompts, hangup)])

    def _dial(self, target: PhoneNumber | SipEndpoint, *, max_duration: int | None, cli: str | None,
              dial_timeout: int | None) -> list[V2Command]:
        dial = V2DialCommand(to=_destination(target), from_=_origin(cli), call_name=CALLEE_LEG,
                             dial_timeout_duration_seconds=dial_timeout, max_call_duration_seconds=max_duration)
        return [self._bridge_call, dial]

    def _menu(self, menu: DigitMenu, prompts: Sequence[Prompt]) -> list[V2Command]:
        """A ``menu`` without ``matches`` (the input comes back as ``call.menu``), after ``prompts``."""
        before, own = self._messages(prompts), self._messages([menu.prompt])
        together = len(before) + len(own) <= MAX_MESSAGES
        item = V2MenuItem(prompt=V2MenuPrompt(messages=before + own if together else own),
                          input_timeout_duration_seconds=menu.timeout_seconds, repeat_count=menu.repeats,
                          maximum_input_length=menu.max_digits, terminating_sequence="#")
        command: list[V2Command] = [V2MenuCommand(start_menu=menu.menu_id, menus={menu.menu_id: item})]
        return command if together else self._play_then(prompts, command)

    def _to_target(self, target: Any, prompts: Sequence[Prompt], *, max_duration: int | None, cli: str | None,
                   dial_timeout: int | None, incoming: bool) -> V2Answer:
        """Go to ``target`` after ``prompts``; ``incoming``: in answer to ``call.incoming`` (answer the leg, name it)."""
        refusal = _refusal(target)
        if refusal is not None:
            raise ValueError(refusal)
        if isinstance(target, EndCall):
            return self._hang_up((*prompts, *target.prompts), incoming=incoming)
        answer: list[V2Command] = [V2AnswerCommand()] if incoming else []
        if isinstance(target, DigitMenu):
            commands = [*answer, *self._menu(target, prompts)]
        elif isinstance(target, (PhoneNumber, SipEndpoint)):
            dial = self._dial(target, max_duration=max_duration, cli=cli, dial_timeout=dial_timeout)
            commands = [*answer, *self._play_then(prompts, dial)] if prompts else dial
        else:
            raise ValueError(f"a Route to {type(target).__name__} is not a target callgate knows")
        return V2Answer(commands=commands, call_name=CALLER_LEG if incoming else None)

    def _specific(self, plan: IncomingPlan) -> tuple[V2Answer, int | None]:
        """A plugin's own :class:`V2Answer` to ``call.incoming``, after the plan's prompts and with its limits; and
        the longest it lets the call last (the ``maxCallDurationSeconds`` of its first top-level ``dial``, the
        plan's limit applied), None when it sets none."""
        answer = plan.specific
        if not isinstance(answer, V2Answer):
            raise ValueError(f"{type(answer).__name__} cannot answer a v2 call: expected a V2Answer")
        commands: list[V2Command] = [self._limited(c, plan) for c in answer.commands]
        max_duration = next((c.max_call_duration_seconds for c in commands if isinstance(c, V2DialCommand)), None)
        if plan.prompts:
            rest: list[V2Command] = [c for c in commands if not isinstance(c, V2AnswerCommand)]
            commands = [V2AnswerCommand(), *self._play_then(plan.prompts, rest)]
        return msgspec.structs.replace(answer, commands=commands), max_duration

    @staticmethod
    def _limited(command: V2Command, plan: IncomingPlan) -> V2Command:
        """A top-level ``dial`` with the plan's caller id and (smaller) max duration; other commands as they are."""
        if not isinstance(command, V2DialCommand):
            return command
        changes: dict[str, Any] = {}
        if plan.max_duration is not None:
            current = command.max_call_duration_seconds
            changes["max_call_duration_seconds"] = plan.max_duration if current is None else min(current,
                                                                                                 plan.max_duration)
        if plan.cli is not None:
            changes["from_"] = _origin(plan.cli)
        return msgspec.structs.replace(command, **changes) if changes else command
