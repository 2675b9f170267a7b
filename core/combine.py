"""Pure functions that turn the plugins' answers into one plan for the call.

Nothing here knows about pluggy, aiohttp, time or a wire format: outcomes in, a
:class:`~callgate.plan.IncomingPlan` out (the adapter of the call's generation renders it).
The rules (the plugin contract in DESIGN.md):

* authorization: the first ``Deny`` in plugin order wins; otherwise every
  ``Allow`` contributes (smallest ``max_duration``, prompts in order);
  with no opinion at all the configured default applies;
* routing, caller id, answers to answered calls and menus: the first non-``None`` in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .decisions import DIALLED_TYPES, Allow, Deny, Prompt, Route, SvamlRoute
from .plan import IncomingPlan, new_plan
from .results import Outcome


@dataclass(frozen=True, slots=True)
class Authorization:
    """The combined answer of every ``authorize_call``."""

    allowed: bool
    decided_by: str
    reason: str
    prompt: Prompt | None = None
    max_duration: int | None = None
    prompts: tuple[Prompt, ...] = ()


def combine_authorization(outcomes: Sequence[Outcome], default: Literal["allow", "deny"]) -> Authorization:
    """Any deny wins (the first in plugin order names the reason); else allows combine; else the default."""
    for outcome in outcomes:
        if isinstance(outcome.value, Deny):
            return Authorization(False, outcome.plugin, outcome.value.reason, outcome.value.prompt)
    allows = [o for o in outcomes if isinstance(o.value, Allow)]
    if not allows:
        return Authorization(default == "allow", "default", f"no plugin had an opinion; default_decision is {default}")
    limits = [o.value.max_duration for o in allows if o.value.max_duration is not None]
    return Authorization(
        allowed=True,
        decided_by=",".join(o.plugin for o in allows),
        reason="; ".join(o.value.reason for o in allows if o.value.reason) or "allowed",
        max_duration=min(limits, default=None),
        prompts=tuple(prompt for o in allows for prompt in o.value.prompts),
    )


def first_answer(outcomes: Sequence[Outcome]) -> Outcome | None:
    """The first outcome that answered something (first-non-None semantics)."""
    for outcome in outcomes:
        if outcome.value is not None:
            return outcome
    return None


def smallest(*limits: int | None) -> int | None:
    """The most restrictive of several optional limits."""
    present = [limit for limit in limits if limit is not None]
    return min(present, default=None)


def is_dialled(route: Route | SvamlRoute, dials: Callable[[Any], bool]) -> bool:
    """Whether ``set_cli`` runs for this route: its target is dialled (``PhoneNumber``, ``SipEndpoint``), or it is a
    plugin's own SVAML that ``dials`` (the call's ``Renderer.dials``: v1 ``connectPstn`` or ``connectSip``)."""
    if isinstance(route, Route):
        return isinstance(route.to, DIALLED_TYPES)
    return dials(route.svaml)


def incoming_plan(auth: Authorization, route: Route | SvamlRoute | None, cli: str | None,
                  no_route_prompt: Prompt | None) -> IncomingPlan:
    """The plan for an incoming call, from the combined authorization, the route and ``set_cli``'s caller id.

    * denied: hang up after the denial's prompt;
    * allowed, no route: hang up after ``no_route_prompt``;
    * a :class:`Route`: every allow's prompts then the route's, then its target; a dialled target
      gets the smallest of the route's and the allows' ``max_duration`` and ``cli`` (else the route's);
    * a :class:`SvamlRoute`: the allows' prompts, then its SVAML, with the allows' ``max_duration``
      and ``cli`` for the renderer to apply to its dialled action.
    """
    if not auth.allowed:
        return new_plan(False, (auth.prompt,) if auth.prompt else (), None, None, None, None)
    if route is None:
        return new_plan(True, (no_route_prompt,) if no_route_prompt else (), None, None, None, None)
    if isinstance(route, SvamlRoute):
        return new_plan(True, auth.prompts, None, route.svaml, auth.max_duration, cli)
    prompts = (*auth.prompts, *route.prompts) if auth.prompts else route.prompts
    if isinstance(route.to, DIALLED_TYPES):
        limit = route.max_duration if auth.max_duration is None else smallest(route.max_duration, auth.max_duration)
        return new_plan(True, prompts, route, None, limit, cli if cli is not None else route.cli)
    return new_plan(True, prompts, route, None, None, None)
