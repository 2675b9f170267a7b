"""From a typed event to the answer Sinch receives: run the event's hooks, combine, validate.

Used by the HTTP handler and by ``callgate simulate``, so what ``simulate``
prints is what a real callback would get.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import structlog

from . import combine, dispatch
from .caches import ClearingCache
from .config import ServerConfig
from .events import Ace, Dice, Event, Ice, Notify, Pie
from .manager import Plugins
from .responses import ACK, not_recorded_body
from .results import CallerId, Decision, Deny, Outcome, Route, new_decision
from .svaml import SAFE_ANSWERS, Continue, Hangup, Say, Svaml, SvamlError

log = structlog.get_logger("callgate.pipeline")

CONTINUE = Svaml(action=Continue())
HANGUP = Svaml(action=Hangup())
#: How many ICE answers a pipeline keeps by their parts (all dropped when full).
ICE_ANSWER_CACHE_SIZE = 4096
#: How many ACE/PIE answers a pipeline keeps by the SVAML object's identity (all dropped when full).
SVAML_ANSWER_CACHE_SIZE = 1024


@dataclass(slots=True)
class Answer:
    """What to send back for one callback, and how it was reached."""

    status: int
    body: bytes
    action: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    decision: Decision | None = None
    svaml: Svaml | None = None
    problem: str | None = None

    def trace(self) -> list[dict[str, Any]]:
        return [o.log_entry() for o in self.outcomes]

    @property
    def summary(self) -> str:
        """The decision in a few words, for the log line."""
        if self.decision is not None:
            d = self.decision
            if not d.allowed:
                return f"denied by {d.decided_by}: {d.reason} -> {self.action}"
            route = f"route {d.route.name or d.route.action.name} from {d.routed_by}" if d.route else "no route"
            return f"allowed by {d.decided_by}, {route} -> {self.action}"
        if self.action is not None:
            return self.action
        return "recorded" if self.status == 200 else "not recorded"


def _is_deny(outcome: Outcome) -> bool:
    return isinstance(outcome.value, Deny)


class Pipeline:
    """The decision path for every event, over one set of enabled plugins."""

    def __init__(self, plugins: Plugins, server: ServerConfig) -> None:
        self.plugins = plugins
        self.server = server
        self._no_route_prompt = Say(text=server.no_route_prompt, locale=server.locale) if server.no_route_prompt else None
        #: The authorization when no plugin implements authorize_call (combine is pure: computed once).
        self._no_opinion = combine.combine_authorization([], server.default_decision)
        #: (id(svaml), event) -> (svaml, its answer); (authorization, id(route), cli) -> (route, its answer).
        self._svaml_answers = ClearingCache(SVAML_ANSWER_CACHE_SIZE)
        self._ice_answers = ClearingCache(ICE_ANSWER_CACHE_SIZE)

    async def answer(self, event: Event) -> Answer:
        loop = asyncio.get_running_loop()
        if isinstance(event, (Dice, Notify)):
            hook = "on_disconnect" if isinstance(event, Dice) else "on_notify"
            return await self._record(hook, event, loop.time() + self.server.record_deadline_ms / 1000)
        deadline = loop.time() + self.server.deadline_ms / 1000
        if isinstance(event, Ice):
            return await self._ice(event, deadline)
        if isinstance(event, Ace):
            return await self._first_svaml("on_answer", event, deadline, "ace", CONTINUE)
        if isinstance(event, Pie):
            return await self._first_svaml("on_prompt_input", event, deadline, "pie", SAFE_ANSWERS["pie"])
        raise TypeError(f"not an event: {event!r}")

    async def _ice(self, call: Ice, deadline: float) -> Answer:
        plugins = self.plugins
        if plugins.impls("authorize_call"):
            outcomes = await dispatch.collect(plugins, "authorize_call", deadline, call=call, stop=_is_deny)
            auth = combine.combine_authorization(outcomes, self.server.default_decision)
        else:
            outcomes, auth = [], self._no_opinion
        route = routed_by = cli = None
        if auth.allowed:
            routing = await dispatch.collect(plugins, "route_call", deadline, call=call)
            outcomes += routing
            answered = combine.first_answer(routing)
            if answered and isinstance(answered.value, Deny):   # a router failed and its policy is deny
                auth = combine.Authorization(False, answered.plugin, answered.value.reason)
            elif answered:
                route, routed_by = answered.value, answered.plugin
        if route is not None and route.action.name in combine.CLI_ACTIONS:
            cli_outcomes = await dispatch.collect(plugins, "set_cli", deadline, call=call, route=route)
            outcomes += cli_outcomes
            answered = combine.first_answer(cli_outcomes)
            if answered and isinstance(answered.value, CallerId):
                cli = answered.value.number
        svaml, body, problem = self._ice_svaml(auth, route, cli)
        max_duration = getattr(svaml.action, "max_duration", None)
        decision = new_decision(auth.allowed and problem is None, auth.decided_by, problem or auth.reason, svaml,
                                route, routed_by, cli, max_duration, tuple(outcomes))
        # call_decided gets its own short budget: a plugin that held something must be told even
        # when the authorization used up the callback's deadline.
        if plugins.impls("call_decided"):
            loop = asyncio.get_running_loop()
            outcomes += await dispatch.collect(plugins, "call_decided", loop.time() + self.server.deadline_ms / 4000,
                                               call=call, decision=decision)
        return Answer(200, body, svaml.action.name, outcomes, decision, svaml, problem)

    def _ice_svaml(self, auth: combine.Authorization, route: Route | None,
                   cli: str | None) -> tuple[Svaml, bytes, str | None]:
        """The ICE answer, its JSON and what was wrong with it (None), from the combined parts.

        The same parts give the same answer, so answers are kept by their parts: a route the router
        built once, or the same one again from a plugin, skips building, checking and serialising.
        The key holds the route object by identity (and the entry keeps it alive, so that identity
        is never reused while the entry exists); an equal route built anew is simply a new entry.
        Parts that make no valid answer are kept too, with their problem: every such callback
        still logs the problem on its ``callback`` line, the ``invalid_svaml_replaced`` error only
        the first time.
        """
        key: tuple[combine.Authorization, int, str | None] | None = (auth, id(route), cli)
        try:
            known = self._ice_answers.get(key)
        except TypeError:     # an unhashable part (no SVAML model has one today): build it every time
            key, known = None, None
        if known is not None and known[0] is route:
            return known[1]
        problem: str | None
        try:
            svaml = combine.ice_answer(auth, route, cli, answer_before_prompts=self.server.answer_before_prompts,
                                       no_route_prompt=self._no_route_prompt)
        except ValueError as exc:   # the parts are valid but not together (e.g. too much cookie data)
            svaml, problem = self._safe("ice", f"the plugins' contributions do not make a valid answer: {exc}")
        else:
            svaml, problem = self._valid_or_safe(svaml, "ice")
        result = (svaml, svaml.to_json(), problem)
        if key is not None:
            self._ice_answers.put(key, (route, result))
        return result

    async def _first_svaml(self, hook: str, call: Ace | Pie, deadline: float, event: str, default: Svaml) -> Answer:
        outcomes = await dispatch.collect(self.plugins, hook, deadline, call=call)
        answered = combine.first_answer(outcomes)
        if answered is None:
            svaml = default
        elif isinstance(answered.value, Deny):   # the plugin failed and its policy is deny
            svaml = HANGUP
        else:
            svaml = answered.value
        svaml, body, problem = self._checked(svaml, event)
        return Answer(200, body, svaml.action.name, outcomes, svaml=svaml, problem=problem)

    def _checked(self, svaml: Svaml, event: str) -> tuple[Svaml, bytes, str | None]:
        """The ACE/PIE answer to send for ``svaml``, its JSON and what was wrong with it (None).

        SVAML models are frozen, so the result is kept by the object's identity (the entry keeps
        the object alive, so its id is not reused meanwhile): the defaults and a plugin's
        prebuilt answers are checked and serialised once.
        """
        key = (id(svaml), event)
        known = self._svaml_answers.get(key)
        if known is not None:
            return known[1]
        checked, problem = self._valid_or_safe(svaml, event)
        result = (checked, checked.to_json(), problem)
        self._svaml_answers.put(key, (svaml, result))
        return result

    async def _record(self, hook: str, call: Dice | Notify, deadline: float) -> Answer:
        outcomes = await dispatch.collect(self.plugins, hook, deadline, call=call)
        failed = [o for o in outcomes if o.status != "ok"]
        if failed:
            # The log line says how each plugin failed (its exception's text); the answer only which
            # plugins did: exception text and paths are internal, plugin names are not.
            verdicts = ", ".join(f"{o.plugin} ({o.verdict})" for o in failed)
            problem = f"not recorded by {verdicts}; answering 503 so Sinch's fallback URL receives it"
            return Answer(503, not_recorded_body(", ".join(o.plugin for o in failed)), None, outcomes,
                          problem=problem)
        return Answer(200, ACK, None, outcomes)

    @staticmethod
    def _valid_or_safe(svaml: Svaml, event: str) -> tuple[Svaml, str | None]:
        """The answer if it is valid for the event; otherwise the safe answer, and why.

        Every part was validated when it was built (plugins' SVAML answers field by field
        in the dispatcher; routes, allows and caller ids by their own types; the duration
        and caller id the combine step sets are those validated values), so the per-event
        tables are what is left to check here.
        """
        try:
            svaml.validate_for(event, recheck_fields=False)
        except SvamlError as exc:
            return Pipeline._safe(event, str(exc))
        return svaml, None

    @staticmethod
    def _safe(event: str, why: str) -> tuple[Svaml, str]:
        """The event's safe answer instead of an invalid one, logged as the programming error it is."""
        safe = SAFE_ANSWERS[event]
        log.error("invalid_svaml_replaced", sinch_event=event, error=why, replaced_by=safe.action.name)
        return safe, f"invalid SVAML replaced by a safe answer: {why}"
