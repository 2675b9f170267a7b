"""The built-in caller-id rules: which number the callee sees.

``[[plugins.caller_id.rules]]`` entries give a ``cli`` (a number, or ``private``)
for a ``route`` (by the route's name) or for a destination ``prefix``; numbers and
prefixes are read like every number people write (:mod:`callgate.phone`).  A rule
naming the chosen route wins; otherwise the rule with the longest prefix of the
number being dialled (the connectPstn ``number``, else the callee) wins.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from ..events import Ice
from ..hookspecs import hookimpl
from ..phone import PRIVATE, normalize, parse_number, parse_prefix
from ..results import CallerId, Route


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
    def set_cli(self, call: Ice, route: Route) -> CallerId | None:
        if not self.by_prefix and not self.by_route:
            return None
        if route.name in self.by_route:
            return CallerId(self.by_route[route.name])
        dialled = getattr(route.action, "number", None) or (call.to.endpoint if call.to else None)
        number = normalize(dialled) if dialled else None
        if number is None:
            return None
        for prefix, cli in self.by_prefix:
            if number.startswith(prefix):
                return CallerId(cli)
        return None
