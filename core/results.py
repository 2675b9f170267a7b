"""What plugins return, and what the core makes of it.

Every result validates itself when it is created, so a plugin that builds a bad
answer fails in its own code, with its own name in the traceback, and never in
the combine step or on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .drafts import positional_builder
from .phone import is_cli
from .svaml import ACTIONS_BY_EVENT, INSTRUCTIONS_BY_EVENT, MAX_CALL_DURATION, Action, Instruction, PlayFiles, Say, Svaml

MAX_DURATION_LIMIT = MAX_CALL_DURATION


def _check_instructions(instructions: Any, owner: str) -> tuple[Instruction, ...]:
    instructions = tuple(instructions)
    for ins in instructions:
        name = getattr(ins, "name", None)
        if name not in INSTRUCTIONS_BY_EVENT["ice"]:
            raise ValueError(f"{owner}: {ins!r} is not an SVAML instruction allowed in an ICE answer")
    return instructions


@dataclass(frozen=True, slots=True)
class Allow:
    """``authorize_call`` has no objection, and may contribute to the answer.

    ``max_duration``: the most seconds this plugin lets the call last (the
    smallest of all plugins' wins).  ``instructions``: SVAML instructions to run
    before the action (e.g. a ``Say`` telling the caller their balance), kept in
    plugin order.  ``reason`` is logged.
    """

    max_duration: int | None = None
    instructions: tuple[Instruction, ...] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        if self.max_duration is not None and not (
                isinstance(self.max_duration, int) and 0 < self.max_duration <= MAX_DURATION_LIMIT):
            raise ValueError(f"Allow.max_duration must be 1..{MAX_DURATION_LIMIT} seconds, got {self.max_duration!r}")
        object.__setattr__(self, "instructions", _check_instructions(self.instructions, "Allow.instructions"))


@dataclass(frozen=True, slots=True)
class Deny:
    """``authorize_call`` vetoes the call: it is hung up.

    ``reason`` is logged and handed to ``call_decided``; ``prompt`` (a ``Say``
    or ``PlayFiles``) is played to the caller before the hangup.
    """

    reason: str
    prompt: Say | PlayFiles | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise ValueError("Deny.reason must be a non-empty string")
        object.__setattr__(self, "reason", self.reason.strip())
        if self.prompt is not None and not isinstance(self.prompt, (Say, PlayFiles)):
            raise ValueError(f"Deny.prompt must be a Say or PlayFiles instruction, got {self.prompt!r}")


@dataclass(frozen=True, slots=True)
class Route:
    """``route_call`` says where the call goes: an SVAML action allowed in ICE.

    ``instructions`` run before the action; ``name`` labels the route in logs
    and lets caller-id rules match it.
    """

    action: Action
    instructions: tuple[Instruction, ...] = ()
    name: str | None = None

    def __post_init__(self) -> None:
        if getattr(self.action, "name", None) not in ACTIONS_BY_EVENT["ice"]:
            raise ValueError(f"Route.action must be an SVAML action allowed in an ICE answer, got {self.action!r}")
        object.__setattr__(self, "instructions", _check_instructions(self.instructions, "Route.instructions"))


@dataclass(frozen=True, slots=True)
class CallerId:
    """``set_cli`` chooses the caller id shown to the callee: E.164 (``+46...``) or ``private``."""

    number: str

    def __post_init__(self) -> None:
        if not is_cli(self.number):
            raise ValueError(f"CallerId must be an E.164 number like +46701234567 or 'private', got {self.number!r}")


Status = Literal["ok", "error", "timeout"]
#: Hooks that record an event (DICE, Notify): an implementation that returned has recorded it.
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
        return {"plugin": self.plugin, "hook": self.hook, "verdict": self.verdict, "ms": round(self.elapsed_ms, 3)}


@dataclass(frozen=True, slots=True)
class Decision:
    """The final answer to an ICE, as handed to ``call_decided``.

    ``decided_by`` is the plugin whose Deny won, ``"default"`` when no plugin had
    an opinion, or the list of plugins that allowed.  ``svaml`` is exactly what
    Sinch receives.
    """

    allowed: bool
    decided_by: str
    reason: str
    svaml: Svaml
    route: Route | None = None
    routed_by: str | None = None
    cli: str | None = None
    max_duration: int | None = None
    outcomes: tuple[Outcome, ...] = field(default=())


def describe(value: Any) -> str:
    """A plugin's answer in a few words."""
    if value is None:
        return "abstain"
    if isinstance(value, Allow):
        return "allow" + (f" max {value.max_duration}s" if value.max_duration else "")
    if isinstance(value, Deny):
        return f"deny: {value.reason}"
    if isinstance(value, Route):
        return f"route {value.name or value.action.name}"
    if isinstance(value, CallerId):
        return f"cli {value.number}"
    if isinstance(value, Svaml):
        return f"svaml {value.action.name}"
    return type(value).__name__


#: ``Outcome`` and ``Decision`` as the dispatcher and the pipeline build them (every field given).
new_outcome = positional_builder(Outcome)
new_decision = positional_builder(Decision)
