"""Neutral plans and answers rendered as Sinch Voice v1 SVAML (``{"instructions": [...], "action": {...}}``).

=================  ==========================================================================
neutral            v1 SVAML
=================  ==========================================================================
``Prompt``         ``say`` (``text``, the prompt's ``locale`` else ``[server] locale``), or
                   ``playFiles`` (``ids`` = the URL, the prompt's ``locale`` if it has one)
``PhoneNumber``    ``connectPstn`` ``number``, ``maxDuration``, ``dialTimeout``, ``cli``
``SipEndpoint``    ``connectSip`` ``destination`` {``sip``, the URI without ``sip:``},
                   ``maxDuration``, ``cli``, ``transport``, ``callHeaders``
``InAppUser``      ``connectMxp`` ``destination`` {``username``, the user}
``Conference``     ``connectConf`` ``conferenceId``
``DigitMenu``      ``runMenu`` with one menu (``maxDigits``, the prompt as ``mainPrompt`` and
                   ``repeatPrompt``, ``timeoutMills``, ``repeats``) and no options: the input
                   comes back as a PIE of type ``sequence``
``EndCall``        its prompts, then ``hangup``
``Proceed``        ``continue``
=================  ==========================================================================

An incoming call's prompts are preceded by ``answer`` when ``[server] answer_before_prompts`` is on
(a prompt to an unanswered call is not heard).  A plugin's v1 :class:`~callgate.protocols.v1.svaml.Svaml` is sent
as it is, after the allows' prompts, with the combined ``maxDuration`` and caller id applied to its
action where SVAML allows them; it is checked against the event's tables when the plugin answers
(:meth:`V1Renderer.refuses`, once per distinct answer) and again when it is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from msgspec.structs import replace

from ...caches import ClearingCache
from ...calls import Generation
from ...combine import smallest
from ...config import ServerConfig
from ...decisions import (
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
    SvamlRoute,
    Target,
)
from ...plan import IncomingPlan, Rendered, StepAnswer
from ...responses import ACK, not_recorded_body
from .svaml import (
    SAFE_ANSWERS,
    Action,
    Answer,
    CallHeader,
    ConnectConf,
    ConnectMxp,
    ConnectPstn,
    ConnectSip,
    Continue,
    Destination,
    Hangup,
    Instruction,
    Menu,
    PlayFiles,
    RunMenu,
    Say,
    Svaml,
)

__all__ = ["CHECKED_SVAML_SIZE", "V1_DIALLED_ACTIONS", "V1Renderer", "route_action", "with_answer_first"]

#: The v1 event each kind of answer is for.
EVENTS = {"incoming": "ice", "answered": "ace", "menu": "pie"}
PROMPT_NAMES = ("say", "playFiles")
#: Plugin answers a v1 call can carry besides v1 SVAML.
NEUTRAL = (Allow, Deny, Route, SvamlRoute, CallerId, Proceed, EndCall)
#: v1 actions whose caller id the core may set (``set_cli``) and whose duration it may limit.
V1_DIALLED_ACTIONS = frozenset({"connectPstn", "connectSip"})
#: How many plugins' SVAML answers that passed their event's check a renderer remembers (all dropped when full).
CHECKED_SVAML_SIZE = 256


def route_action(action: Action, *, max_duration: int | None, cli: str | None) -> Action:
    """A v1 action with the combined duration limit and caller id applied where SVAML allows them.

    ``msgspec.structs.replace`` checks the copy as construction does (a cheap check: the duration is the
    smaller of two validated limits and the caller id was validated by ``CallerId``).
    """
    update: dict[str, Any] = {}
    if "max_duration" in action.__struct_fields__:
        current = getattr(action, "max_duration")  # noqa: B009  (not every action has one)
        limit = smallest(current, max_duration)
        if limit != current:
            update["max_duration"] = limit
    if cli is not None and action.name in V1_DIALLED_ACTIONS:
        update["cli"] = cli
    return replace(action, **update) if update else action


def with_answer_first(instructions: Sequence[Instruction]) -> tuple[Instruction, ...]:
    """Prepend ``answer`` when a prompt would otherwise play to an unanswered inbound call."""
    instructions = tuple(instructions)
    if any(i.name in PROMPT_NAMES for i in instructions) and not any(i.name == "answer" for i in instructions):
        return (Answer(), *instructions)
    return instructions


class V1Renderer:
    """Renders plans and answers as v1 SVAML (:class:`callgate.plan.Renderer` for ``generation="v1"``).

    ``locale`` speaks prompts that name none (``[server] locale``); ``answer_before_prompts`` puts
    ``answer`` before the prompts of an incoming call.
    """

    generation: Generation = "v1"
    recorded = ACK

    def __init__(self, server: ServerConfig) -> None:
        self.locale = server.locale
        self.answer_before_prompts = server.answer_before_prompts
        #: ``(event, svaml)`` of the plugins' answers that passed their check (SVAML is a frozen, hashable value):
        #: a plugin's prebuilt answer costs a lookup (about 0.3 us) instead of a check (about 13 us) after the
        #: first time.
        self._answers_checked = ClearingCache(CHECKED_SVAML_SIZE)

    # --- the Renderer protocol -------------------------------------------------------------------

    def incoming(self, plan: IncomingPlan) -> Rendered:
        """The ICE answer.  Raises ``ValueError`` when the plan's parts make no valid SVAML together."""
        try:
            svaml = self._incoming(plan)
        except ValueError as exc:   # the parts are valid but not together (e.g. too much cookie data)
            raise ValueError(f"the plugins' contributions do not make a valid answer: {exc}") from None
        return self._checked(svaml, "ice")

    def answered(self, answer: StepAnswer) -> Rendered:
        """The ACE answer to ``on_answer``'s answer."""
        return self._checked(self.step_svaml(answer), "ace")

    def menu(self, answer: StepAnswer) -> Rendered:
        """The PIE answer to ``on_prompt_input``'s answer."""
        return self._checked(self.step_svaml(answer), "pie")

    def safe(self, kind: str) -> Rendered:
        svaml = SAFE_ANSWERS[EVENTS[kind]]
        return Rendered(svaml, svaml.to_json(), svaml.action.name)

    def refuses(self, value: Any, kind: str) -> str | None:
        """None for a neutral decision; for v1 SVAML, None once it passed the checks of ``kind``'s event (every field
        again, then the event's tables: ``SvamlError`` says why not); why not for anything else (v2 SVAML)."""
        if value.__class__ in NEUTRAL:
            return None
        if isinstance(value, Svaml):
            self._check_answer(value, EVENTS[kind])
            return None
        if isinstance(value, NEUTRAL):
            return None
        return (f"{type(value).__name__} cannot answer a v1 call: return a neutral decision (callgate.decisions) "
                f"or v1 SVAML (callgate.protocols.v1.svaml.Svaml)")

    def dials(self, svaml: Any) -> bool:
        """v1 SVAML whose action is ``connectPstn`` or ``connectSip``."""
        return isinstance(svaml, Svaml) and svaml.action.name in V1_DIALLED_ACTIONS

    def not_recorded(self, plugins: str | None) -> tuple[int, bytes]:
        return 503, not_recorded_body(plugins)

    def _check_answer(self, svaml: Svaml, event: str) -> None:
        """Raise ``SvamlError`` unless Sinch accepts a plugin's ``svaml`` in answer to ``event``; checked once per
        distinct answer (an unhashable one, a field holding a list or dict, every time; a failing one never
        remembered)."""
        key: tuple[str, Svaml] | None = (event, svaml)
        try:
            known = key in self._answers_checked
        except TypeError:       # a field holding a list or dict
            key, known = None, False
        if not known:
            svaml.validate_for(event)
            if key is not None:
                self._answers_checked.put(key, True)

    # --- building -------------------------------------------------------------------------------

    def _incoming(self, plan: IncomingPlan) -> Svaml:
        prompts = self.prompts(plan.prompts)
        route, specific = plan.route, plan.specific
        if route is not None:
            action, after = self.target(route.to, max_duration=plan.max_duration, cli=plan.cli,
                                        dial_timeout=route.dial_timeout)
            instructions = (*prompts, *after)
        elif specific is not None:
            if not isinstance(specific, Svaml):
                raise ValueError(f"{type(specific).__name__} is not v1 SVAML")
            instructions = (*prompts, *specific.instructions)
            action = route_action(specific.action, max_duration=plan.max_duration, cli=plan.cli)
        else:
            instructions, action = prompts, Hangup()
        if self.answer_before_prompts:
            instructions = with_answer_first(instructions)
        return Svaml(action=action, instructions=instructions)

    def step_svaml(self, answer: StepAnswer) -> Svaml:
        """The SVAML of an answer to an answered call or a menu (not yet checked against the event's tables)."""
        if isinstance(answer, Svaml):
            return answer
        if isinstance(answer, Proceed):
            return Svaml(action=Continue())
        if isinstance(answer, EndCall):
            return Svaml(action=Hangup(), instructions=self.prompts(answer.prompts))
        if isinstance(answer, Route):
            action, after = self.target(answer.to, max_duration=answer.max_duration, cli=answer.cli,
                                        dial_timeout=answer.dial_timeout)
            return Svaml(action=action, instructions=(*self.prompts(answer.prompts), *after))
        raise ValueError(f"{type(answer).__name__} is not an answer callgate can give a v1 call")

    def prompts(self, prompts: Sequence[Prompt]) -> tuple[Instruction, ...]:
        """Prompts as ``say`` / ``playFiles`` instructions."""
        return tuple(self.prompt(p) for p in prompts)

    def prompt(self, prompt: Prompt) -> Instruction:
        """One prompt as a ``say`` (spoken in its locale, else ``[server] locale``) or a ``playFiles``."""
        if prompt.text is not None:
            return Say(text=prompt.text, locale=self.locale if prompt.locale is None else prompt.locale)
        return PlayFiles(ids=prompt.urls, locale=prompt.locale)

    def target(self, to: Target, *, max_duration: int | None, cli: str | None,
               dial_timeout: int | None) -> tuple[Action, tuple[Instruction, ...]]:
        """The action that takes a call to ``to``, and the instructions that go before it (an EndCall's prompts)."""
        if isinstance(to, PhoneNumber):
            return ConnectPstn(number=to.number, max_duration=max_duration, dial_timeout=dial_timeout, cli=cli), ()
        if isinstance(to, SipEndpoint):
            uri = to.uri[4:] if to.uri[:4].lower() == "sip:" else to.uri
            headers = tuple(CallHeader(key=h.key, value=h.value) for h in to.headers) or None
            return ConnectSip(destination=Destination(type="sip", endpoint=uri), max_duration=max_duration, cli=cli,
                              transport=to.transport.upper() if to.transport else None, call_headers=headers), ()
        if isinstance(to, InAppUser):
            return ConnectMxp(destination=Destination(type="username", endpoint=to.user)), ()
        if isinstance(to, Conference):
            return ConnectConf(conference_id=to.conference_id), ()
        if isinstance(to, DigitMenu):
            return self.menu_action(to), ()
        if isinstance(to, EndCall):
            return Hangup(), self.prompts(to.prompts)
        raise ValueError(f"{type(to).__name__} is not a route target")

    def menu_action(self, menu: DigitMenu) -> RunMenu:
        """A ``runMenu`` of one menu collecting up to ``max_digits`` keys: the input comes back as a PIE ``sequence``."""
        prompt = menu.prompt
        locale = None
        if prompt.text is not None:
            spoken, locale = f"#tts[{prompt.text}]", self.locale if prompt.locale is None else prompt.locale
        else:
            spoken = ";".join(f"#href[{url}]" for url in prompt.urls)
        return RunMenu(locale=locale, main_menu=menu.menu_id,
                       menus=(Menu(id=menu.menu_id, main_prompt=spoken, repeat_prompt=spoken, repeats=menu.repeats,
                                   max_digits=menu.max_digits, timeout_mills=menu.timeout_seconds * 1000),))

    @staticmethod
    def _checked(svaml: Svaml, event: str) -> Rendered:
        """``svaml`` if Sinch accepts it in answer to ``event`` (its parts were validated when built; the per-event
        tables are what is left to check), else ``SvamlError`` (a ``ValueError``) saying why."""
        svaml.validate_for(event, recheck_fields=False)
        return Rendered(svaml, svaml.to_json(), svaml.action.name, getattr(svaml.action, "max_duration", None))
