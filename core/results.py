"""What the core makes of the plugins' answers: each hook call's :class:`Outcome`, and the
:class:`Decision` on an incoming call handed to ``call_decided``.

What plugins return (``Allow``, ``Deny``, ``Route``, ``CallerId``, ...) is in :mod:`callgate.decisions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .calls import Generation
from .decisions import (
    Allow,
    CallerId,
    Conference,
    Deny,
    DigitMenu,
    EndCall,
    InAppUser,
    PhoneNumber,
    Proceed,
    Route,
    SipEndpoint,
    SvamlRoute,
)
from .drafts import positional_builder
from .plan import IncomingPlan, svaml_generation

Status = Literal["ok", "error", "timeout"]
#: Hooks that record an event (v1 DICE/Notify, v2 end states and notices): an implementation that returned
#: has recorded it.
RECORDING_HOOKS = frozenset({"on_disconnect", "on_notify"})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one plugin's hook did during one callback: its value, or how it failed, and how long it took."""

    plugin: str
    hook: str
    value: Any = None
    status: Status = "ok"
    error: str | None = None
    elapsed_ms: float = 0.0

    @property
    def verdict(self) -> str:
        """A short description for the log line and ``callgate simulate``."""
        if self.status != "ok":
            return f"{self.status}: {self.error}" if self.error else self.status
        if self.hook in RECORDING_HOOKS:
            return "recorded"
        return describe(self.value)

    def log_entry(self) -> dict[str, Any]:
        """The outcome on the ``callback`` log line: ``plugin``, ``hook``, ``status``, ``verdict`` and ``ms``.

        ``ms`` is rounded to the microsecond as ``round(ms * 1000) / 1000``: the value of ``round(ms, 3)`` (the
        closest double to the same three decimals) for any time not within a rounding error of a half-microsecond
        tie, at half the instructions (``round`` with digits goes through a decimal conversion)."""
        return {"plugin": self.plugin, "hook": self.hook, "status": self.status, "verdict": self.verdict,
                "ms": round(self.elapsed_ms * 1000) / 1000}


@dataclass(frozen=True, slots=True)
class Decision:
    """The final answer to an incoming call (v1 ICE, v2 ``call.incoming``), as handed to ``call_decided``.

    ``decided_by`` is the plugin whose Deny won, ``"default"`` when no plugin had an opinion, or the
    list of plugins that allowed.  ``route`` is the neutral :class:`~callgate.decisions.Route` the call
    takes (None when it was denied, nobody routed it, or a plugin routed it with generation-specific
    SVAML: then ``routed_by`` is set and ``route_name`` is that route's name, if any).  ``cli`` is the
    caller id the call is dialled with: ``set_cli``'s, else the route's own (None: Sinch's default, the caller's
    number), ``max_duration`` the longest the answer lets the call last.  ``svaml``
    is exactly what Sinch receives, rendered for the call's ``generation`` (a v1
    :class:`callgate.protocols.v1.svaml.Svaml` or a v2 ``V2Answer``); ``plan`` is what it was rendered from.
    """

    allowed: bool
    decided_by: str
    reason: str
    svaml: Any
    route: Route | None = None
    routed_by: str | None = None
    cli: str | None = None
    max_duration: int | None = None
    outcomes: tuple[Outcome, ...] = field(default=())
    generation: Generation = "v1"
    plan: IncomingPlan | None = None
    route_name: str | None = None


#: A route without a name, by what it goes to (a label for logs: never the number or address itself).
_UNNAMED_ROUTES: dict[type, str] = {PhoneNumber: "route to a number", SipEndpoint: "route to a SIP address",
                                    InAppUser: "route to an app user", Conference: "route to a conference",
                                    DigitMenu: "route to a menu", EndCall: "route: hang up"}


def describe(value: Any) -> str:
    """A plugin's answer in a few words."""
    if value is None:
        return "abstain"
    if isinstance(value, Route):           # the usual answer first (the types are unrelated: the order is free)
        return f"route {value.name}" if value.name else _UNNAMED_ROUTES.get(type(value.to), "route")
    if isinstance(value, Allow):
        return "allow" + (f" max {value.max_duration}s" if value.max_duration else "")
    if isinstance(value, Deny):
        return f"deny: {value.reason}"
    if isinstance(value, SvamlRoute):
        return f"route {value.name}" if value.name else describe(value.svaml)
    if isinstance(value, CallerId):
        return f"cli {value.number}"
    if isinstance(value, Proceed):
        return "proceed"
    if isinstance(value, EndCall):
        return "end call"
    if svaml_generation(value) is not None:      # a generation's own SVAML names itself (``svaml connectPstn``)
        summary: str = value.summary()
        return summary
    return type(value).__name__


#: ``Outcome`` and ``Decision`` as the dispatcher and the pipeline build them (every field given).
new_outcome = positional_builder(Outcome)
new_decision = positional_builder(Decision)
