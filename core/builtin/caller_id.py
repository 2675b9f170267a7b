"""The built-in caller-id rules: which number the callee sees.

``[[plugins.caller_id.rules]]`` entries give a ``cli`` (a number, or ``private``)
for a ``route`` (by the route's name) or for a destination ``prefix``; numbers and
prefixes are read like every number people write (:mod:`callgate.phone`).  A rule
naming the chosen route wins; otherwise the rule with the longest prefix of the
number being dialled (a ``PhoneNumber`` route's number, a v1 connectPstn ``number``,
else the callee) wins.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from ..calls import Incoming
from ..decisions import CallerId, PhoneNumber, Route, SvamlRoute
from ..hookspecs import hookimpl
from ..phone import PRIVATE, normalize, parse_number, parse_prefix


class CliRule(BaseModel):
    """One ``[[plugins.caller_id.rules]]`` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cli: str
    route: str | None = None
    prefix: str | None = None

    @field_validator("cli")
    @classmethod
    def _cli(cls, value: str) -> str:
        return PRIVATE if value.strip().lower() == PRIVATE else parse_number(value)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        return None if value is None else parse_prefix(value)

    @model_validator(mode="after")
    def _check(self) -> CliRule:
        if (self.route is None) == (self.prefix is None):
            raise ValueError("give exactly one of route, prefix")
        CallerId(self.cli)
        return self


class CallerIdConfig(BaseModel):
    """``[plugins.caller_id]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[CliRule, ...] = ()


class CallerIdRules:
    """Caller id per route or per destination prefix."""

    Config = CallerIdConfig
    default_on_error = "skip"

    def __init__(self, config: CallerIdConfig) -> None:
        self.by_route = {r.route: r.cli for r in config.rules if r.route is not None}
        prefixes = [(r.prefix, r.cli) for r in config.rules if r.prefix is not None]
        self.by_prefix = sorted(prefixes, key=lambda p: -len(p[0]))

    @hookimpl
    def set_cli(self, call: Incoming, route: Route | SvamlRoute) -> CallerId | None:
        if not self.by_prefix and not self.by_route:
            return None
        if route.name in self.by_route:
            return CallerId(self.by_route[route.name])
        dialled = _dialled_number(route) or (call.to.endpoint if call.to else None)
        number = normalize(dialled) if dialled else None
        if number is None:
            return None
        for prefix, cli in self.by_prefix:
            if number.startswith(prefix):
                return CallerId(cli)
        return None


def _dialled_number(route: Route | SvamlRoute) -> str | None:
    """The number a route dials, when it names one: a PhoneNumber's, or a v1 connectPstn's ``number``."""
    if isinstance(route, Route):
        return route.to.number if isinstance(route.to, PhoneNumber) else None
    action = getattr(route.svaml, "action", None)     # v1 SVAML (a v2 answer has commands)
    return getattr(action, "number", None)
