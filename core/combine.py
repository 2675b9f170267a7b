"""Pure functions that turn the plugins' answers into one decision, and the decision into SVAML.

Nothing here knows about pluggy, aiohttp or time: outcomes in, decision out.
The rules (the plugin contract in DESIGN.md):

* authorization: the first ``Deny`` in plugin order wins; otherwise every
  ``Allow`` contributes (smallest ``max_duration``, instructions in order);
  with no opinion at all the configured default applies;
* routing, caller id, ACE and PIE answers: the first non-``None`` in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .results import Allow, Deny, Outcome, Route
from .svaml import Answer, Hangup, Instruction, PlayFiles, Say, Svaml

PROMPTS = ("say", "playFiles")
#: Actions whose caller id the core may set (set_cli) and whose duration it may limit.
CLI_ACTIONS = frozenset({"connectPstn", "connectSip"})


@dataclass(frozen=True, slots=True)
class Authorization:
    """The combined answer of every ``authorize_call``."""

    allowed: bool
    decided_by: str
    reason: str
    prompt: Say | PlayFiles | None = None
    max_duration: int | None = None
    instructions: tuple[Instruction, ...] = ()


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
        instructions=tuple(ins for o in allows for ins in o.value.instructions),
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


def route_action(route: Route, *, max_duration: int | None, cli: str | None):
    """The route's action with the combined duration limit and caller id applied where SVAML allows them.

    ``model_copy`` does not validate, and need not: the duration is the smaller of two
    validated limits and the caller id was validated by ``CallerId``.
    """
    action = route.action
    update: dict[str, Any] = {}
    if "max_duration" in type(action).model_fields:
        current = getattr(action, "max_duration")  # noqa: B009  (not every action has one)
        limit = smallest(current, max_duration)
        if limit != current:
            update["max_duration"] = limit
    if cli is not None and action.name in CLI_ACTIONS:
        update["cli"] = cli
    return action.model_copy(update=update) if update else action


def with_answer_first(instructions: Sequence[Instruction]) -> tuple[Instruction, ...]:
    """Prepend ``answer`` when a prompt would otherwise play to an unanswered inbound call."""
    instructions = tuple(instructions)
    if any(i.name in PROMPTS for i in instructions) and not any(i.name == "answer" for i in instructions):
        return (Answer(), *instructions)
    return instructions


def ice_answer(auth: Authorization, route: Route | None, cli: str | None, *,
               answer_before_prompts: bool = True, no_route_prompt: Say | None = None) -> Svaml:
    """The SVAML answer to an ICE, from the combined authorization, route and caller id."""
    if not auth.allowed:
        instructions: tuple[Instruction, ...] = (auth.prompt,) if auth.prompt else ()
        action = Hangup()
    elif route is None:
        instructions = (no_route_prompt,) if no_route_prompt else ()
        action = Hangup()
    else:
        instructions = (*auth.instructions, *route.instructions)
        action = route_action(route, max_duration=auth.max_duration, cli=cli)
    if answer_before_prompts:
        instructions = with_answer_first(instructions)
    return Svaml(action=action, instructions=instructions)
