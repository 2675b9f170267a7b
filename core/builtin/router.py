"""The built-in router: the routing table in config.toml.

ICE: the callee (``to.endpoint``) is matched against ``[[plugins.router.routes]]``:
an exact ``number`` beats the longest ``prefix``, which beats the first
matching ``pattern`` (a regular expression over the whole callee), which beats
a catch-all route (no number, prefix or pattern).  A route may also require a
``to_type`` (did, number, username, sip, conference), a ``domain`` (pstn, mxp)
and a time window (``hours = "08:00-18:00"``, ``days``, ``timezone``); a route
whose conditions do not hold is passed over.

Menu input (v1 PIE, v2 ``call.menu``): ``[[plugins.router.menu_answers]]`` are
tried in file order (``menu``, ``type``, ``value``; an absent condition matches
anything); when none matches, ``pie_default`` is the answer.

Action and instruction tables are SVAML as Sinch spells it (camelCase), checked
at start-up.  In their strings, ``{to}`` is replaced by the callee and
``{caller}`` by the caller's number (E.164, or ``private``), e.g.
``conferenceId = "{to}"`` confirms an SDK conference call.  A route whose
templates give no valid SVAML for a call (``cli = "{caller}"`` for an in-app
caller who has no number) does not match that call: the next best route does,
and one ``route_skipped`` warning says why.

Both API generations are served from the one table.  A rule becomes a neutral
:class:`~callgate.decisions.Route` when that route, rendered for v1, is exactly the
rule's SVAML: ``connectPstn`` (``number``, ``cli``, ``maxDuration``, ``dialTimeout``)
is a ``PhoneNumber``, ``connectSip`` a ``SipEndpoint``, ``connectMxp`` (with a
destination) an ``InAppUser``, ``connectConf`` a ``Conference``, ``hangup`` an
``EndCall``, a ``runMenu`` written as callgate renders a ``DigitMenu`` (one menu, no
``options``, ``repeatPrompt`` = ``mainPrompt``, ``repeats``, ``maxDigits``,
``timeoutMills`` in whole seconds, ``locale`` and ``mainMenu`` given) a ``DigitMenu``,
and ``say`` (with a ``locale``) and ``playFiles`` (one URL) instructions
are prompts.  Any other rule is v1 SVAML (a :class:`~callgate.decisions.SvamlRoute`),
and so are rules that would not render the same: they answer v1 calls only.  For a
v2 call they, and routes to an ``InAppUser`` or a ``Conference`` (which v2 has not),
do not match, like a route whose conditions do not hold.  Menu answers likewise:
``continue`` is ``Proceed``, ``hangup`` ``EndCall``, others as routes.

A route's ``number`` and ``prefix`` are read like every number people write
(:func:`callgate.phone.parse_number`, :func:`~callgate.phone.parse_prefix`):
``+46 (0)8 500 012 34``, ``0046850001234`` and, with ``[server] default_region``,
``08-500 012 34`` are one number.  A value with letters (a user name, a
conference id) is compared as it is written.

This plugin's configuration syntax is v1 SVAML, so it reads, builds and compares its tables
with the v1 adapter's types and parser (:mod:`callgate.protocols.v1.svaml`, ``...v1.render``):
the one place outside the adapters that imports a wire type, by design (the core, the
dispatcher and the other plugins work on neutral decisions; tests/test_no_wire_imports.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, time, timezone
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..caches import ClearingCache
from ..calls import CALLEE_TYPES, DOMAINS, MENU_RESULT_TYPES, Header, Incoming, MenuInput, known_words
from ..config import ServerConfig
from ..decisions import (
    V1_ONLY_TYPES,
    Conference,
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
from ..hookspecs import hookimpl
from ..phone import looks_like_number, normalize, normalize_caller, parse_number, parse_prefix
from ..protocols.v1.render import V1Renderer
from ..protocols.v1.svaml import (
    ConnectConf,
    ConnectMxp,
    ConnectPstn,
    ConnectSip,
    Continue,
    Hangup,
    PlayFiles,
    RunMenu,
    Say,
    Svaml,
    SvamlError,
    parse_action,
    parse_instruction,
)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TEMPLATE = re.compile(r"\{(to|caller)\}")
#: How many routes built from templates each rule keeps (all dropped when full).
BUILT_CACHE_SIZE = 1024
_HOURS = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$")
log = structlog.get_logger("callgate.router")
#: Renders a candidate neutral route to compare it with the rule's SVAML (the prompts it accepts name their locale,
#: so ``[server] locale`` plays no part).
_V1 = V1Renderer(ServerConfig())
#: Why a v2 call passes over a route (the ``route_skipped`` warning's reason).
V1_ONLY_ROUTE = "its SVAML has no Voice API v2 form (README, \"Voice API v2 calls\"): it answers v1 calls only"
#: A rule's answer: a neutral decision when one renders exactly as the rule's v1 SVAML, else that SVAML.
RouteAnswer = Route | SvamlRoute
MenuReply = Proceed | EndCall | Route | Svaml


def neutral_route(svaml: Svaml, name: str | None) -> Route | None:
    """The neutral Route that renders for v1 as exactly ``svaml`` (same JSON), or None when there is none."""
    prompts = []
    for instruction in svaml.instructions:
        if isinstance(instruction, Say) and instruction.locale is not None:
            prompts.append(Prompt(text=instruction.text, locale=instruction.locale))
        elif isinstance(instruction, PlayFiles) and all(i.lower().startswith(("http://", "https://"))
                                                        for i in instruction.ids):
            prompts.append(Prompt(urls=instruction.ids, locale=instruction.locale))
        else:
            return None
    action = svaml.action
    to: Target
    limits: dict[str, Any] = {}
    if isinstance(action, ConnectPstn) and action.number is not None:
        to = PhoneNumber(action.number)
        limits = {"max_duration": action.max_duration, "cli": action.cli, "dial_timeout": action.dial_timeout}
    elif isinstance(action, ConnectSip):
        headers = tuple(Header(h.key, h.value) for h in action.call_headers or ())
        endpoint = action.destination.endpoint
        uri = endpoint if endpoint.lower().startswith(("sip:", "sips:")) else f"sip:{endpoint}"
        to = SipEndpoint(uri, headers=headers, transport=action.transport)
        limits = {"max_duration": action.max_duration, "cli": action.cli}
    elif isinstance(action, ConnectMxp) and action.destination is not None:
        to = InAppUser(action.destination.endpoint)
    elif isinstance(action, ConnectConf):
        to = Conference(action.conference_id)
    elif isinstance(action, Hangup):
        to = EndCall()
    elif isinstance(action, RunMenu):
        menu = _digit_menu(action)
        if menu is None:
            return None
        to = menu
    else:
        return None
    route = Route(to, name=name, prompts=tuple(prompts), **limits)
    return route if _V1.step_svaml(route).to_json() == svaml.to_json() else None


_MENU_PROMPT = re.compile(r"^#(tts|href)\[(.+)\]$", re.DOTALL)


def _digit_menu(action: RunMenu) -> DigitMenu | None:
    """The DigitMenu a ``runMenu`` of one menu without options may be (the caller's exact-render check decides)."""
    menu = action.menus[0]
    if len(action.menus) != 1 or menu.options or menu.main_prompt is None:
        return None
    spoken = _MENU_PROMPT.match(menu.main_prompt)
    if spoken is None or menu.timeout_mills is None or menu.timeout_mills % 1000:
        return None
    kind, value = spoken.groups()
    prompt = Prompt(text=value, locale=action.locale) if kind == "tts" else Prompt(urls=(value,))
    return DigitMenu(prompt, menu_id=menu.id, max_digits=menu.max_digits or 1,
                     timeout_seconds=menu.timeout_mills // 1000, repeats=2 if menu.repeats is None else menu.repeats)


def route_answer(svaml: Svaml, name: str | None) -> RouteAnswer:
    """A rule's SVAML as a neutral Route when one renders the same for v1, else as v1 SVAML."""
    try:
        route = neutral_route(svaml, name)
    except ValueError:      # stricter neutral limits (a maxDuration of 0, a SIP URI too long): v1 SVAML then
        route = None
    return route if route is not None else SvamlRoute(svaml, name)


def menu_reply(svaml: Svaml) -> MenuReply:
    """A menu answer: ``continue`` is Proceed, ``hangup`` EndCall (after its prompts), others as routes."""
    if isinstance(svaml.action, Continue):
        return Proceed() if not svaml.instructions else svaml
    answer = route_answer(svaml, None)
    if isinstance(answer, SvamlRoute):
        return svaml
    if isinstance(answer.to, EndCall):
        return EndCall(prompts=answer.prompts)
    return answer


def serves(answer: Any, generation: str) -> bool:
    """Whether a rule's answer can answer a call of ``generation``: v1 everything; v2 neutral answers to targets
    v2 has."""
    if generation == "v1":
        return True
    if isinstance(answer, Route):
        return not isinstance(answer.to, V1_ONLY_TYPES)
    return isinstance(answer, (Proceed, EndCall))


def _svaml_parts(action: dict[str, Any], instructions: list[dict[str, Any]], event: str) -> None:
    """Check an action and its instructions as SVAML for ``event`` (templates filled with a sample)."""
    sample = json.loads(_TEMPLATE.sub("+10000000000", json.dumps([action, instructions])))
    try:
        Svaml(action=parse_action(sample[0]), instructions=tuple(parse_instruction(i) for i in sample[1])).validate_for(event)
    except SvamlError as exc:
        raise ValueError(str(exc)) from None


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: dict[str, Any]
    instructions: list[dict[str, Any]] = Field(default_factory=list)

    @cached_property
    def _source(self) -> str:
        return json.dumps([self.action, self.instructions])

    @cached_property
    def _static(self) -> tuple[Any, tuple[Any, ...]] | None:
        """The parsed parts, once, when they contain no template."""
        return None if _TEMPLATE.search(self._source) else self._parse(self._source)

    def build(self, values: dict[str, str]) -> tuple[Any, tuple[Any, ...]]:
        """The parsed action and instructions, with ``{to}``/``{caller}`` filled in."""
        if self._static is not None:
            return self._static
        return self._parse(_TEMPLATE.sub(lambda m: json.dumps(values.get(m.group(1), ""))[1:-1], self._source))

    @staticmethod
    def _parse(source: str) -> tuple[Any, tuple[Any, ...]]:
        action, instructions = json.loads(source)
        return parse_action(action), tuple(parse_instruction(i) for i in instructions)


class RouteRule(_Rule):
    """One ``[[plugins.router.routes]]`` entry."""

    name: str | None = None
    number: str | None = None
    prefix: str | None = None
    pattern: str | None = None
    to_type: str | None = None
    domain: str | None = None
    hours: str | None = None
    days: tuple[str, ...] = ()
    timezone: str = "UTC"

    @field_validator("number")
    @classmethod
    def _number(cls, value: str | None) -> str | None:
        return parse_number(value) if value is not None and looks_like_number(value) else value

    @field_validator("to_type")
    @classmethod
    def _to_type(cls, value: str | None) -> str | None:
        return None if value is None else known_words([value], CALLEE_TYPES)[0]

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        return None if value is None else known_words([value], DOMAINS)[0]

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        return parse_prefix(value) if value is not None and looks_like_number(value) else value

    @model_validator(mode="after")
    def _check(self) -> RouteRule:
        if sum(x is not None for x in (self.number, self.prefix, self.pattern)) > 1:
            raise ValueError("give at most one of number, prefix, pattern")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
        if self.hours is not None and not _HOURS.match(self.hours):
            raise ValueError('hours must look like "08:00-18:00"')
        if any(d not in DAYS for d in self.days):
            raise ValueError(f"days must be among {', '.join(DAYS)}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {self.timezone!r}") from None
        _svaml_parts(self.action, self.instructions, "ice")
        return self

    def route(self, to: str, call: Incoming) -> RouteAnswer | None:
        """This rule's route for a call whose ``{to}`` is ``to`` (built once when the rule has no template); None, with
        a ``route_skipped`` warning, when the templates filled for this call give no valid SVAML."""
        if self._static_route is not None:
            return self._static_route
        values = {"to": to if "{to}" in self._source else "",
                  "caller": (normalize_caller(call.cli) or "") if "{caller}" in self._source else ""}
        key = (values["to"], values["caller"])
        built = self._built.get(key)
        if built is None:
            built = self._built.put(key, self._try_build(values))
        if isinstance(built, str):
            log.warning("route_skipped", route=self.name, reason=built)
            return None
        return built

    def _try_build(self, values: dict[str, str]) -> RouteAnswer | str:
        """The route for these template values, or why there is none (the SVAML they make is not valid)."""
        try:
            action, instructions = self.build(values)
            return route_answer(Svaml(action=action, instructions=instructions), self.name)
        except (SvamlError, ValueError) as exc:
            filled = ", ".join(f"{{{name}}} = {value!r}" for name, value in values.items()
                               if f"{{{name}}}" in self._source)
            return f"its templates give no valid SVAML for this call ({filled}): {exc}"

    @cached_property
    def _built(self) -> ClearingCache:
        """Routes already built from the templates, by the values filled in (a Route is immutable, so it is
        shared: a DID or a conference routed again skips the parse and validation); for values that give
        no valid SVAML, the reason."""
        return ClearingCache(BUILT_CACHE_SIZE)

    @cached_property
    def _static_route(self) -> RouteAnswer | None:
        if self._static is None:
            return None
        return route_answer(Svaml(action=self._static[0], instructions=self._static[1]), self.name)

    @cached_property
    def key(self) -> str | None:
        """The number or prefix as compared with the callee (already normalised when it is a number)."""
        return self.number if self.number is not None else self.prefix

    @cached_property
    def regex(self) -> re.Pattern[str] | None:
        return re.compile(self.pattern) if self.pattern is not None else None

    def is_open(self, now: datetime) -> bool:
        """Whether the route's time window (if any) contains ``now``."""
        local = now.astimezone(ZoneInfo(self.timezone))
        if self.days and DAYS[local.weekday()] not in self.days:
            return False
        if self.hours is None:
            return True
        start, end = (_parse_time(part) for part in self.hours.split("-"))
        current = local.time()
        return start <= current < end if start <= end else (current >= start or current < end)


class MenuAnswer(_Rule):
    """One ``[[plugins.router.menu_answers]]`` entry: the answer to a PIE."""

    menu: str | None = None
    type: str | None = None
    value: str | None = None

    @field_validator("type")
    @classmethod
    def _type(cls, value: str | None) -> str | None:
        return None if value is None else known_words([value], MENU_RESULT_TYPES)[0]

    @model_validator(mode="after")
    def _check(self) -> MenuAnswer:
        _svaml_parts(self.action, self.instructions, "pie")
        return self

    @cached_property
    def reply(self) -> MenuReply:
        """This answer (its templates filled with nothing: a menu answer has no callee)."""
        action, instructions = self.build({"to": "", "caller": ""})
        return menu_reply(Svaml(action=action, instructions=instructions))

    def matches(self, call: MenuInput) -> bool:
        result = call.menu_result
        return ((self.menu is None or self.menu == result.menu_id)
                and (self.type is None or self.type == result.type)
                and (self.value is None or self.value == result.value))


class RouterConfig(BaseModel):
    """``[plugins.router]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: tuple[RouteRule, ...] = ()
    menu_answers: tuple[MenuAnswer, ...] = ()
    pie_default: dict[str, Any] = Field(default_factory=lambda: {"name": "continue"})

    @field_validator("pie_default")
    @classmethod
    def _pie_default(cls, value: dict[str, Any]) -> dict[str, Any]:
        _svaml_parts(value, [], "pie")
        return value


class Router:
    """The routing table from config.toml, as a plugin that routes incoming calls and answers menu input."""

    Config = RouterConfig
    default_on_error = "skip"

    def __init__(self, config: RouterConfig, clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self._pie_default = menu_reply(Svaml(action=parse_action(config.pie_default)))

    @hookimpl
    def route_call(self, call: Incoming) -> RouteAnswer | None:
        callee = _callee(call)
        if callee is None:
            return None
        generation = call.generation
        for rule in self.candidates(callee, call):
            route = rule.route(_to_value(call, callee, rule), call)
            if route is None:
                continue                            # its templates did not fit this call (logged by rule.route)
            if generation == "v1" or serves(route, generation):
                return route
            log.warning("route_skipped", route=rule.name, reason=V1_ONLY_ROUTE)
        return None

    def select(self, callee: str, call: Incoming) -> RouteRule | None:
        """The route for this callee: exact number, else longest prefix, else first pattern, else catch-all."""
        return next(iter(self.candidates(callee, call)), None)

    def candidates(self, callee: str, call: Incoming) -> list[RouteRule]:
        """Every route whose conditions hold for this call, best first (see :meth:`select`)."""
        now = None
        candidates = []
        for index, rule in enumerate(self.config.routes):
            rank = _rank(rule, callee)
            if rank is None:
                continue
            if rule.to_type and rule.to_type != (call.to.type if call.to else None):      # both lower-case
                continue
            if rule.domain and rule.domain != call.domain:
                continue
            if rule.hours or rule.days:
                now = now or self.clock()
                if not rule.is_open(now):
                    continue
            candidates.append((rank, index, rule))
        if len(candidates) > 1:
            candidates.sort()          # by rank, then table order (indexes differ: rules are never compared)
        return [rule for _, _, rule in candidates]

    @hookimpl
    def on_prompt_input(self, call: MenuInput) -> MenuReply | None:
        generation = call.generation
        for index, answer in enumerate(self.config.menu_answers):
            if answer.matches(call):
                if generation == "v1" or serves(answer.reply, generation):
                    return answer.reply
                log.warning("menu_answer_skipped", menu_answer=index, reason=V1_ONLY_ROUTE)
        default = self._pie_default
        if generation == "v1" or serves(default, generation):
            return default
        log.warning("menu_answer_skipped", menu_answer="pie_default", reason=V1_ONLY_ROUTE)
        return None


#: The callee types whose endpoint is a phone number: ``{to}`` is it in E.164.
_NUMBER_CALLEES = frozenset({"number", "did", None})


def _callee(call: Incoming) -> str | None:
    """The callee as routes are matched against it: read as a number when it is one (a user name of digits too, so
    that ``number``/``prefix`` routes written as numbers match it), else as sent."""
    if call.to is None or not call.to.endpoint:
        return None
    return normalize(call.to.endpoint) or call.to.endpoint


def _to_value(call: Incoming, callee: str, rule: RouteRule) -> str:
    """What ``{to}`` is filled with for ``rule``: the callee as matched when it is a phone number, or when the rule
    took it for one (it matched by ``number`` or ``prefix``); any other callee (a conference id, a user name, a SIP
    address) as sent, digits or not: conference ``1234`` is ``1234``, not ``+1234``."""
    assert call.to is not None and call.to.endpoint
    if call.to.type in _NUMBER_CALLEES or rule.number is not None or rule.prefix is not None:
        return callee
    return call.to.endpoint


def _rank(rule: RouteRule, callee: str) -> tuple[int, int] | None:
    """How well a rule matches (smaller is better), or None when it does not."""
    key = rule.key or ""
    if rule.number is not None:
        return (0, 0) if key == callee else None
    if rule.prefix is not None:
        return (1, -len(key)) if callee.startswith(key) else None
    if rule.regex is not None:
        return (2, 0) if rule.regex.fullmatch(callee) else None
    return (3, 0)


def _parse_time(text: str) -> time:
    hours, minutes = map(int, text.split(":"))
    return time.max if hours == 24 else time(hours, minutes)
