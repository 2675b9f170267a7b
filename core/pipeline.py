"""From a neutral call to the answer Sinch receives: run the event's hooks, combine, render.

The call's generation picks the renderer (:class:`callgate.plan.Renderer`) that turns the combined
decision into that generation's SVAML.  Used by the HTTP handler and by ``callgate simulate``, so
what ``simulate`` prints is what a real callback would get.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

import structlog

from . import combine, dispatch, notes
from .caches import ClearingCache
from .calls import Answered, CallEvent, Ended, Incoming, MenuInput, Notice
from .config import ServerConfig
from .decisions import CallerId, Deny, EndCall, Proceed, Prompt, Route, SvamlRoute
from .manager import Plugins
from .plan import IncomingPlan, Rendered, Renderer
from .protocols.v1.render import V1Renderer
from .protocols.v2.render import V2Renderer
from .results import Decision, Outcome, new_decision

log = structlog.get_logger("callgate.pipeline")

#: How many rendered answers a pipeline keeps by what they were rendered from (all dropped when full).
ANSWER_CACHE_SIZE = 4096
#: The Renderer method (and ``safe`` kind) for each event that is answered with SVAML.
KINDS: dict[type, str] = {Incoming: "incoming", Answered: "answered", MenuInput: "menu"}
PROCEED = Proceed()
END_CALL = EndCall()


def default_renderers(server: ServerConfig) -> dict[str, Renderer]:
    """One renderer per API generation, configured from ``[server]`` (v2 speaks prompts in ``voice``)."""
    return {"v1": V1Renderer(server), "v2": V2Renderer(voice=server.voice)}


@dataclass(slots=True)
class Reply:
    """What to send back for one callback, and how it was reached."""

    status: int
    body: bytes
    action: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    decision: Decision | None = None
    svaml: Any = None
    problem: str | None = None

    def trace(self) -> list[dict[str, Any]]:
        """Each outcome as on the ``callback`` log line (:meth:`Outcome.log_entry`)."""
        return [o.log_entry() for o in self.outcomes]

    @property
    def summary(self) -> str:
        """The decision in a few words, for the log line."""
        if self.decision is not None:
            d = self.decision
            if not d.allowed:
                return f"denied by {d.decided_by}: {d.reason} -> {self.action}"
            route = f"route {d.route_name or self.action} from {d.routed_by}" if d.routed_by else "no route"
            return f"allowed by {d.decided_by}, {route} -> {self.action}"
        if self.action is not None:
            return self.action
        return "recorded" if self.status == 200 else "not recorded"


def _is_deny(outcome: Outcome) -> bool:
    return isinstance(outcome.value, Deny)


class Pipeline:
    """The decision path for every event, over one set of enabled plugins.

    ``renderers`` maps a generation (``"v1"``, ``"v2"``) to its renderer; by default
    :func:`default_renderers`.
    """

    def __init__(self, plugins: Plugins, server: ServerConfig,
                 renderers: Mapping[str, Renderer] | None = None) -> None:
        self.plugins = plugins
        self.server = server
        self.renderers = dict(default_renderers(server) if renderers is None else renderers)
        self._no_route_prompt = (Prompt.say(server.no_route_prompt, server.locale or None)
                                 if server.no_route_prompt else None)
        #: The authorization when no plugin implements authorize_call (combine is pure: computed once).
        self._no_opinion = combine.combine_authorization([], server.default_decision)
        #: (generation, kind, plan or answer) -> (its Rendered, its problem or None).
        self._rendered = ClearingCache(ANSWER_CACHE_SIZE)
        #: (generation, authorization, route, caller id) -> (the incoming plan, its Rendered, its problem or None).
        self._planned = ClearingCache(ANSWER_CACHE_SIZE)
        #: How each hook of the answer path is called (worked out once, when the plugins were loaded).
        self._authorize, self._route, self._set_cli, self._decided = (
            plugins.plan(hook) for hook in ("authorize_call", "route_call", "set_cli", "call_decided"))
        self._steps = {"on_answer": plugins.plan("on_answer"), "on_prompt_input": plugins.plan("on_prompt_input")}
        self._records = {"on_disconnect": plugins.plan("on_disconnect"), "on_notify": plugins.plan("on_notify")}
        #: The recording plugins whose notes another may await (:mod:`callgate.notes`), per hook: none when
        #: fewer than two plugins record or none of them is ``async def`` (each then runs to its end in order).
        self._noted = {hook: tuple(impl.plugin.name for impl in plan.impls)
                       if len(plan.impls) > 1 and any(impl.is_async for impl in plan.impls) else ()
                       for hook, plan in self._records.items()}

    async def answer(self, event: CallEvent) -> Reply:
        renderer = self.renderers[event.generation]
        now = monotonic()
        if isinstance(event, (Ended, Notice)):
            hook = "on_disconnect" if isinstance(event, Ended) else "on_notify"
            return await self._record(hook, event, renderer, now + self.server.record_deadline_ms / 1000)
        deadline = now + self.server.deadline_ms / 1000
        if isinstance(event, Incoming):
            return await self._incoming(event, renderer, deadline)
        if isinstance(event, Answered):
            return await self._step("on_answer", event, renderer, deadline, "answered", PROCEED)
        if isinstance(event, MenuInput):
            return await self._step("on_prompt_input", event, renderer, deadline, "menu", END_CALL)
        raise TypeError(f"not a call event: {event!r}")

    def failed(self, event: CallEvent, problem: str) -> Reply:
        """The answer when the pipeline itself failed on ``event`` (a bug in callgate): the event's safe answer,
        or for an event that records, the generation's "not recorded" answer."""
        renderer = self.renderers[event.generation]
        kind = next((name for cls, name in KINDS.items() if isinstance(event, cls)), None)
        if kind is not None:
            safe = renderer.safe(kind)
            return Reply(200, safe.body, safe.action, svaml=safe.svaml, problem=problem)
        status, body = renderer.not_recorded(None)
        return Reply(status, body, None, problem=problem)

    async def _incoming(self, call: Incoming, renderer: Renderer, deadline: float) -> Reply:
        args = (call,)
        if self._authorize.impls:
            outcomes = dispatch.run(self._authorize, args, deadline, stop=_is_deny)
            if not isinstance(outcomes, list):
                outcomes = await outcomes
            auth = combine.combine_authorization(outcomes, self.server.default_decision)
        else:
            outcomes, auth = [], self._no_opinion
        route: Route | SvamlRoute | None = None
        routed_by = cli = None
        if auth.allowed:
            routing = dispatch.run(self._route, args, deadline, refuses=renderer.refuses)
            if not isinstance(routing, list):
                routing = await routing
            outcomes += routing
            answered = combine.first_answer(routing)
            if answered and isinstance(answered.value, Deny):   # a router failed and its policy is deny
                auth = combine.Authorization(False, answered.plugin, answered.value.reason)
            elif answered:
                value = answered.value
                route = value if isinstance(value, (Route, SvamlRoute)) else SvamlRoute(value)
                routed_by = answered.plugin
        if route is not None and combine.is_dialled(route, renderer.dials):
            cli_outcomes = dispatch.run(self._set_cli, (call, route), deadline)
            if not isinstance(cli_outcomes, list):
                cli_outcomes = await cli_outcomes
            outcomes += cli_outcomes
            answered = combine.first_answer(cli_outcomes)
            if answered and isinstance(answered.value, Deny):   # a caller-id plugin failed and its policy is deny
                auth = combine.Authorization(False, answered.plugin, answered.value.reason)
                route = routed_by = None
            elif answered and isinstance(answered.value, CallerId):
                cli = answered.value.number
        plan, rendered, problem = self._plan(renderer, auth, route, cli, call.event)
        if problem is not None:
            max_duration = dialled_cli = None
        else:
            max_duration = plan.max_duration if plan.specific is None else rendered.max_duration
            dialled_cli = plan.cli                              # set_cli's, else the route's own
        decision = new_decision(auth.allowed and problem is None, auth.decided_by, problem or auth.reason,
                                rendered.svaml, route if isinstance(route, Route) else None, routed_by, dialled_cli,
                                max_duration, tuple(outcomes), call.generation, plan,
                                route.name if route is not None else None)
        # call_decided gets its own short budget: a plugin that held something must be told even
        # when the authorization used up the callback's deadline.
        if self._decided.impls:
            told = dispatch.run(self._decided, (call, decision), monotonic() + self.server.deadline_ms / 4000)
            outcomes += told if isinstance(told, list) else await told
        return Reply(200, rendered.body, rendered.action, outcomes, decision, rendered.svaml, problem)

    async def _step(self, hook: str, call: CallEvent, renderer: Renderer, deadline: float, kind: str,
                    default: Proceed | EndCall) -> Reply:
        """An answered call or a menu's input: the first plugin's answer (or ``default``), rendered."""
        outcomes = dispatch.run(self._steps[hook], (call,), deadline, refuses=renderer.refuses)
        if not isinstance(outcomes, list):
            outcomes = await outcomes
        answered = combine.first_answer(outcomes)
        rendered, problem = self._render(renderer, kind, default if answered is None else answered.value, call.event)
        return Reply(200, rendered.body, rendered.action, outcomes, svaml=rendered.svaml, problem=problem)

    def _plan(self, renderer: Renderer, auth: combine.Authorization, route: Route | SvamlRoute | None, cli: str | None,
              event: str) -> tuple[IncomingPlan, Rendered, str | None]:
        """The incoming call's plan (:func:`combine.incoming_plan`), rendered (:meth:`_render`).

        Both are pure: the same authorization, route and caller id give an equal plan and the same answer.
        They are kept by those (frozen values): a route the router built once, with the same authorization,
        skips building the plan and looking its answer up by the plan (hashing the plan hashes the route
        again, and compares two plans).
        """
        def build() -> tuple[IncomingPlan, Rendered, str | None]:
            plan = combine.incoming_plan(auth, route, cli, self._no_route_prompt)
            return (plan, *self._render(renderer, "incoming", plan, event))
        return self._planned.through((renderer.generation, auth, route, cli), build)

    def _render(self, renderer: Renderer, kind: str, value: Any, event: str) -> tuple[Rendered, str | None]:
        """``value`` (a plan, or a step's answer) rendered, and what was wrong with it (None).

        The same value gives the same answer, so answers are kept by what they were rendered from
        (decisions and plans are frozen values): a route the router built once, or the same plan
        again, skips building, checking and serialising.  Values that render no valid answer are
        kept too, with their problem: every such callback still logs the problem on its
        ``callback`` line, the ``invalid_svaml_replaced`` error only the first time.
        """
        def build() -> tuple[Rendered, str | None]:
            try:
                return getattr(renderer, kind)(value), None
            except ValueError as exc:
                rendered = renderer.safe(kind)
                log.error("invalid_svaml_replaced", sinch_event=event, error=str(exc), replaced_by=rendered.action)
                return rendered, f"invalid SVAML replaced by a safe answer: {exc}"
        return self._rendered.through((renderer.generation, kind, value), build)

    async def _record(self, hook: str, call: CallEvent, renderer: Renderer, deadline: float) -> Reply:
        """The recording plugins at the same time (:func:`dispatch.run_together`); answered once all have."""
        noted = self._noted[hook]
        ended = notes.expect_notes(call, noted) if noted else None
        try:
            outcomes = dispatch.run_together(self._records[hook], (call,), deadline, ended)
            if not isinstance(outcomes, list):
                outcomes = await outcomes
        finally:
            if noted:
                notes.forget_waiting(call)
        failed = [o for o in outcomes if o.status != "ok"]
        if failed:
            # The log line says how each plugin failed (its exception's text); the answer only which
            # plugins did: exception text and paths are internal, plugin names are not.
            status, body = renderer.not_recorded(", ".join(o.plugin for o in failed))
            verdicts = ", ".join(f"{o.plugin} ({o.verdict})" for o in failed)
            problem = f"not recorded by {verdicts}; answering {status} so Sinch's fallback URL receives it"
            return Reply(status, body, None, outcomes, problem=problem)
        return Reply(200, renderer.recorded, None, outcomes)
