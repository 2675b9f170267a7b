"""The combined decision for one callback, before a protocol adapter renders it.

The pipeline runs the hooks and the pure combine step turns their answers into one of these; the
adapter of the call's generation (:class:`Renderer`) turns it into that generation's SVAML.  The
plan holds neutral decisions (:mod:`callgate.decisions`) or, where a plugin returned
generation-specific SVAML, that SVAML (already checked to be of the call's generation).

Only the adapters (``callgate.protocols.v1``, ``...v2``) know their SVAML types.  The core recognises a
generation's own SVAML by a class attribute, ``svaml_generation`` (``"v1"`` on
:class:`callgate.protocols.v1.svaml.Svaml`, ``"v2"`` on ``callgate.protocols.v2.wire.V2Answer``:
:func:`svaml_generation`), and names it in a few words with its ``summary()``; everything else about
it (is it this call's generation, does Sinch accept it for the event, does it dial) it asks the
call's :class:`Renderer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .calls import Generation
from .decisions import EndCall, Proceed, Prompt, Route
from .drafts import positional_builder

__all__ = ["KINDS", "IncomingPlan", "Renderer", "Rendered", "StepAnswer", "new_plan", "svaml_generation"]

#: What a renderer answers: an incoming call, an answered call, a menu's input.
KINDS = ("incoming", "answered", "menu")


def svaml_generation(value: Any) -> Generation | None:
    """The generation whose own SVAML ``value`` is (its class's ``svaml_generation``), None for anything else."""
    generation: Generation | None = getattr(value.__class__, "svaml_generation", None)
    return generation


@dataclass(frozen=True, slots=True)
class IncomingPlan:
    """What to answer an incoming call (ICE, ``call.incoming``).

    * ``route`` None: hang up after ``prompts`` (a denial's prompt, or the no-route prompt).
    * ``route`` a :class:`Route`: play ``prompts`` (every ``Allow``'s, then the route's: the renderer
      plays ``prompts``, never ``route.prompts`` again), then go to ``route.to`` (an ``EndCall``
      target plays its own prompts before hanging up); a dialled target gets ``max_duration`` (the
      smallest of the route's and the allows') and ``cli`` (``set_cli``'s, else the route's); other
      targets have neither (both None).
    * ``specific`` set (``route`` None): a plugin's generation-specific SVAML answer; ``prompts``
      (the allows') play before it, ``max_duration`` and ``cli`` apply to its dialled action where
      the generation allows.
    """

    allowed: bool
    prompts: tuple[Prompt, ...] = ()
    route: Route | None = None
    specific: Any = None
    max_duration: int | None = None
    cli: str | None = None


#: ``IncomingPlan`` as :func:`callgate.combine.incoming_plan` builds one per incoming call (every field given,
#: in order; through its draft class, :mod:`callgate.drafts`).
new_plan = positional_builder(IncomingPlan)


#: What ``on_answer`` / ``on_prompt_input`` decided (the first non-None answer, or the default): a neutral
#: decision, or generation-specific SVAML of the call's generation.
StepAnswer = Proceed | EndCall | Route | Any


@dataclass(frozen=True, slots=True)
class Rendered:
    """An answer as it goes on the wire: the SVAML object (for ``call_decided`` and the logs), its JSON, the
    name of what it does (``connectPstn``, ``dial``, ``hangup``, ... for the log line and metrics) and the
    longest it lets the call last (``Decision.max_duration`` of a plugin's generation-specific route)."""

    svaml: Any
    body: bytes
    action: str
    #: The longest the answer lets the call last (its dialled action's maximum), None when it sets none.
    max_duration: int | None = None


class Renderer(Protocol):
    """One generation's rendering of plans and answers (``callgate.protocols.v1.render``, ``...v2.render``).

    Every method returns valid SVAML for its event or raises ``ValueError`` saying why it cannot
    (the pipeline then sends :meth:`safe` and logs the problem).
    """

    generation: Generation
    #: The body of a 200 to an event that only records (DICE/Notify; v2 end states and notices).
    recorded: bytes

    def incoming(self, plan: IncomingPlan) -> Rendered: ...

    def answered(self, answer: StepAnswer) -> Rendered: ...

    def menu(self, answer: StepAnswer) -> Rendered: ...

    def safe(self, kind: str) -> Rendered:
        """The answer sent instead of one that could not be rendered: ``kind`` is ``incoming``, ``answered``
        or ``menu``."""
        ...

    def refuses(self, value: Any, kind: str) -> str | None:
        """Why this generation cannot carry out ``value`` (a plugin's answer to an event of ``kind``:
        ``incoming``, ``answered`` or ``menu``), or None when it can.

        v1 refuses v2 SVAML, and checks its own SVAML against the event's tables (raising
        ``SvamlError``, a ``ValueError``, when Sinch would not accept it; each distinct answer is checked
        once); v2 refuses v1 SVAML, an invalid ``V2Answer``, :class:`~callgate.decisions.InAppUser` and
        :class:`~callgate.decisions.Conference`.  The dispatcher treats a refused answer as the plugin
        failing (its ``on_error`` policy applies)."""
        ...

    def dials(self, svaml: Any) -> bool:
        """Whether a plugin's own SVAML route (``SvamlRoute.svaml``) dials a number or SIP address whose caller id
        ``set_cli`` may set: v1 ``connectPstn`` and ``connectSip``."""
        ...

    def not_recorded(self, plugins: str | None) -> tuple[int, bytes]:
        """Status and body when a recording event could not be recorded by ``plugins`` (None: by the core), so
        that Sinch resends it to the fallback URL: v1 ``503``; v2 a 4xx (a v2 answer is never a 5xx)."""
        ...
