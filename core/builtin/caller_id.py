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
from ..manager import PluginError, Plugins
from ..phone import PRIVATE, normalize, parse_number, parse_prefix
from .router import Router


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
        #: The caller id of each route a rule names.
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


def check_rule_routes(plugins: Plugins) -> None:
    """A caller-id rule naming a route the built-in router does not have: PluginError, when that router is the only
    plugin that routes calls (a rule may name a route of another plugin's).  Such a rule would never apply, without a
    word: a typo, or a route renamed.  Asked with :func:`callgate.app.check_ops_pages`, by ``serve`` and
    ``check-config``."""
    routers = [impl.plugin.instance for impl in plugins.impls("route_call")]
    rules = next((p.instance for p in plugins.loaded if isinstance(p.instance, CallerIdRules)), None)
    if rules is None or len(routers) != 1 or not isinstance(routers[0], Router):
        return
    named = [rule.name for rule in routers[0].config.routes if rule.name]
    for route in rules.by_route:
        if route not in named:
            known = f"its named routes are {', '.join(named)}" if named else "none of its routes has a name"
            raise PluginError("caller_id", f"rules: route {route!r} is not a route of [plugins.router] ({known}), so "
                                           f"the rule would never apply")
