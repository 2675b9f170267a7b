"""Running one hook over the enabled plugins: in order, each under its own timeout,
all inside one deadline, every outcome attributed to its plugin.  The recording hooks
(``on_disconnect``, ``on_notify``: nothing to combine) run at the same time instead
(:func:`run_together`), so their durable writes wait together rather than one after another.

Pluggy's own call loop is not used on the answer path: it cannot await async
implementations, stops at the first exception and loses attribution.  Hooks are
still pluggy hookspecs (validated at registration); only the calling is ours.

Deadlines are on :func:`time.monotonic`'s clock, and so are the times an outcome reports.  That is asyncio's
own loop clock, and the base of uvloop's, whose ``loop.time()`` counts whole milliseconds: read through it, a
hook of a fraction of a millisecond would take 0 or 1 ms.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from time import monotonic
from typing import Any, cast

import structlog

from .decisions import Allow, CallerId, Deny, EndCall, Proceed, Route, SvamlRoute
from .manager import HookImpl, HookPlan, Plugins, cancelled_from_outside
from .plan import svaml_generation
from .results import Outcome, Status, new_outcome

log = structlog.get_logger("callgate.dispatch")

#: Why the call's generation cannot carry out a hook's answer to an event of a kind (``incoming``,
#: ``answered``, ``menu``), or None (``Renderer.refuses``).
Refuses = Callable[[Any, str], str | None]

#: What each decision hook may return besides None, of the neutral decisions; anything else counts as the plugin
#: failing.  These and :data:`SVAML_HOOKS` are the hookspecs' return annotations (tests/test_contract.py fails
#: when they disagree); whether a hook stops at the first answer is read from its spec (``firstresult``) by
#: ``Plugins.calls``.
EXPECTED: dict[str, tuple[type, ...]] = {
    "authorize_call": (Allow, Deny),
    "route_call": (Route, SvamlRoute),
    "set_cli": (CallerId,),
    "on_answer": (Proceed, EndCall, Route),
    "on_prompt_input": (Proceed, EndCall, Route),
}
#: The hooks that may also return a generation's own SVAML (:func:`callgate.plan.svaml_generation`), and the kind
#: of event the call's renderer checks it for.
SVAML_HOOKS = {"route_call": "incoming", "on_answer": "answered", "on_prompt_input": "menu"}
#: The generations' SVAML types, as the hookspecs and the wrong-type message name them (the adapters define them).
SVAML_NAMES = ("Svaml", "V2Answer")
#: Hooks whose failure is subject to the plugin's on_error policy (the others only record).
DECISION_HOOKS = frozenset(EXPECTED)
#: Hooks whose failure under ``on_error = "deny"`` ends the call (hung up) rather than denying it.
STEP_HOOKS = frozenset({"on_answer", "on_prompt_input"})
#: Results that are never awaitable, by exact class (the common case needs no ``inspect.isawaitable``,
#: which is slow; SVAML is recognised by its class's ``svaml_generation``).
_RESULTS = frozenset(t for types in EXPECTED.values() for t in types)
_END_CALL = EndCall()


def call_one(impl: HookImpl, hook: str, kwargs: dict[str, Any], deadline: float,
             refuses: Refuses | None = None) -> Outcome | Coroutine[Any, Any, Outcome]:
    """Call one implementation with the hook's arguments by name; never raises.  A plain function's answer is
    its Outcome at once; an implementation whose answer must be awaited gives a coroutine of it (awaited under
    the timeout).  An answer ``refuses`` gives a reason for counts as the implementation failing."""
    try:
        args = tuple(map(kwargs.__getitem__, impl.argnames))
    except KeyError as exc:          # called without an argument this implementation takes: its error
        return _raised(impl, hook, exc, monotonic())
    return _call(impl, hook, args, deadline, refuses)


def _call(impl: HookImpl, hook: str, args: tuple[Any, ...], deadline: float,
          refuses: Refuses | None) -> Outcome | Coroutine[Any, Any, Outcome]:
    """:func:`call_one` with the implementation's own arguments, in its order."""
    start = monotonic()
    end = start + impl.plugin.timeout_s
    if deadline < end:
        end = deadline
    if start >= end:
        return _timed_out(impl, hook, start, end)
    try:
        value = impl.function(*args)
    except Exception as exc:
        return _raised(impl, hook, exc, start)
    if impl.is_async or (value is not None and value.__class__ not in _RESULTS and svaml_generation(value) is None
                         and inspect.isawaitable(value)):
        return _awaited(impl, hook, value, start, end, refuses)
    outcome = _answered_with(impl, hook, value, start, refuses)
    if start + outcome.elapsed_ms / 1000 > end:
        # A plain def cannot be stopped while it runs (it holds the event loop): past its time, its answer is
        # dropped and it counts as timed out, so that its on_error policy decides, as for an async one.
        return _failed(impl, hook, "timeout", f"answered after {round(outcome.elapsed_ms)} ms, past the "
                                              f"{round((end - start) * 1000)} ms it had: a plain def cannot be stopped "
                                              f"while it runs (make it async, or faster)", start)
    return outcome


def _call_planned(impl: HookImpl, hook: str, args: tuple[Any, ...], deadline: float,
                  refuses: Refuses | None) -> Outcome | Coroutine[Any, Any, Outcome]:
    """:func:`_call` with the hook's arguments in its plan's order (``args``), picked for this implementation
    (``impl.picks``; None: it takes them all, in that order)."""
    picks = impl.picks
    return _call(impl, hook, args if picks is None else tuple(map(args.__getitem__, picks)), deadline, refuses)


async def _awaited(impl: HookImpl, hook: str, awaitable: Any, start: float, end: float, refuses: Refuses | None) -> Outcome:
    try:
        async with asyncio.timeout_at(end):
            value = await awaitable
    except TimeoutError:
        return _timed_out(impl, hook, start, end)
    except Exception as exc:
        return _raised(impl, hook, exc, start)
    except asyncio.CancelledError:
        if cancelled_from_outside():
            raise
        # The plugin's own: it awaited something that was cancelled (``task.cancel(); await task``).  Its error, not
        # the end of the callback.
        return _failed(impl, hook, "error", "CancelledError: something the plugin awaited was cancelled", start)
    return _answered_with(impl, hook, value, start, refuses)


def _answered_with(impl: HookImpl, hook: str, value: Any, start: float,
                   refuses: Refuses | None) -> Outcome:
    """The outcome of an implementation that returned ``value``: an answer of the wrong kind, or one the call's
    generation cannot carry out, is its error."""
    if value is not None:
        try:
            _check_result(hook, value, refuses)
        except Exception as exc:
            return _raised(impl, hook, exc, start)
    return new_outcome(impl.plugin.name, hook, value, "ok", None, (monotonic() - start) * 1000)


def _raised(impl: HookImpl, hook: str, exc: Exception, start: float) -> Outcome:
    return _failed(impl, hook, "error", f"{type(exc).__name__}: {exc}", start)


def _timed_out(impl: HookImpl, hook: str, start: float, end: float) -> Outcome:
    if end <= start:                     # never called: the hooks before it used up the callback's time
        return _failed(impl, hook, "timeout", "not called: the callback's time ([server] deadline_ms or "
                                              "record_deadline_ms) had run out before its turn", start)
    return _failed(impl, hook, "timeout", f"no answer within {round((end - start) * 1000)} ms", start)


def _failed(impl: HookImpl, hook: str, status: Status, error: str, start: float) -> Outcome:
    """The outcome of an implementation that raised or timed out (logged here), after its on_error policy."""
    plugin = impl.plugin
    log.warning("plugin_failed", plugin=plugin.name, hook=hook, status=status, error=error,
                exc_info=status == "error")
    value: Deny | EndCall | None = None
    if hook in DECISION_HOOKS and plugin.on_error == "deny":
        value = _END_CALL if hook in STEP_HOOKS else \
            Deny(f"plugin {plugin.name} failed in {hook} ({status}); its on_error policy is deny")
    return new_outcome(plugin.name, hook, value, status, error, (monotonic() - start) * 1000)


async def collect(plugins: Plugins, hook: str, deadline: float, *, stop: Callable[[Outcome], bool] | None = None,
                  refuses: Refuses | None = None, **kwargs: Any) -> list[Outcome]:
    """The hook's implementations in plugin order, one Outcome each, the hook's arguments given by name.

    A hook whose spec says ``firstresult=True`` ends at the first answer other than None (the last
    outcome is that answer); ``stop(outcome)`` ends any hook early (``authorize_call``: the first Deny).
    ``refuses`` (the renderer's of the call's generation) says why an answer cannot be carried out for
    this call: such an answer counts as the plugin failing (status ``error``, its ``on_error`` policy).
    """
    plan = plugins.plan(hook)
    outcomes = []
    for impl in plan.impls:
        outcome = call_one(impl, hook, kwargs, deadline, refuses)
        if not isinstance(outcome, Outcome):
            outcome = await outcome
        outcomes.append(outcome)
        if plan.firstresult and outcome.value is not None:
            break
        if stop is not None and stop(outcome):
            break
    return outcomes


def run(plan: HookPlan, args: tuple[Any, ...], deadline: float, *,
        stop: Callable[[Outcome], bool] | None = None,
        refuses: Refuses | None = None) -> list[Outcome] | Coroutine[Any, Any, list[Outcome]]:
    """:func:`collect` for the answer path: the hook's arguments in its plan's order (``plan.args``).

    The outcomes at once when every implementation answered at once (plain functions: the usual case), without
    a coroutine per hook; a coroutine of them as soon as one implementation's answer must be awaited.
    """
    outcomes: list[Outcome] = []
    hook = plan.hook
    for index, impl in enumerate(plan.impls):
        outcome = _call_planned(impl, hook, args, deadline, refuses)
        if not isinstance(outcome, Outcome):
            return _run_on(plan, args, deadline, stop, refuses, outcomes, index, outcome)
        outcomes.append(outcome)
        if (plan.firstresult and outcome.value is not None) or (stop is not None and stop(outcome)):
            break
    return outcomes


async def _run_on(plan: HookPlan, args: tuple[Any, ...], deadline: float,
                  stop: Callable[[Outcome], bool] | None, refuses: Refuses | None, outcomes: list[Outcome],
                  index: int, pending: Coroutine[Any, Any, Outcome]) -> list[Outcome]:
    """:func:`run` from the ``index``-th implementation on, whose answer ``pending`` is awaited first."""
    outcome = await pending
    while True:
        outcomes.append(outcome)
        index += 1
        if (plan.firstresult and outcome.value is not None) or (stop is not None and stop(outcome)) \
                or index == len(plan.impls):
            return outcomes
        impl = plan.impls[index]
        now = _call_planned(impl, plan.hook, args, deadline, refuses)
        outcome = now if isinstance(now, Outcome) else await now


def run_together(plan: HookPlan, args: tuple[Any, ...], deadline: float,
                 on_done: Callable[[str], None] | None = None) -> list[Outcome] | Coroutine[Any, Any, list[Outcome]]:
    """Every implementation of a hook whose answers are not combined (the recording hooks), at the same time.

    Each is called in plugin order (a plain function runs to its end then; an ``async def`` gives the coroutine
    that is then started, in that order), each under its own timeout inside ``deadline``; those
    whose answer must be awaited are awaited together, so the callback waits as long as the slowest, not the
    sum.  The outcomes are in plugin order, as :func:`run` gives them.  ``on_done(plugin)`` is called when
    each implementation has answered (see :mod:`callgate.notes`).  The outcomes at once when every
    implementation answered at once.
    """
    outcomes: list[Outcome | None] = []
    pending: list[tuple[int, Coroutine[Any, Any, Outcome]]] = []
    hook = plan.hook
    for impl in plan.impls:
        outcome = _call_planned(impl, hook, args, deadline, None)
        if isinstance(outcome, Outcome):
            if on_done is not None:
                on_done(impl.plugin.name)
            outcomes.append(outcome)
        else:
            pending.append((len(outcomes), outcome))
            outcomes.append(None)
    if not pending:
        return cast(list[Outcome], outcomes)      # no None left
    return _together(outcomes, pending, on_done)


async def _together(outcomes: list[Outcome | None], pending: list[tuple[int, Coroutine[Any, Any, Outcome]]],
                    on_done: Callable[[str], None] | None) -> list[Outcome]:
    """:func:`run_together`'s awaited answers, each put in its plugin's place."""
    async def one(index: int, awaiting: Coroutine[Any, Any, Outcome]) -> None:
        outcome = outcomes[index] = await awaiting
        if on_done is not None:
            on_done(outcome.plugin)
    # The first runs in this task and the others in tasks of their own, started on the loop's next turn in plugin
    # order, then awaited one by one (each outcome is there once its task has ended): asyncio.gather would cost
    # each callback two more turns of a busy loop, one to start the first and one to pass on the result.
    others = [asyncio.ensure_future(one(index, awaiting)) for index, awaiting in pending[1:]]
    try:
        await one(*pending[0])
        for task in others:
            await task
    except asyncio.CancelledError:
        for task in others:
            task.cancel()
        raise
    return cast(list[Outcome], outcomes)      # every None replaced


def _check_result(hook: str, value: Any, refuses: Refuses | None) -> None:
    expected = EXPECTED.get(hook)
    if expected is None:
        return
    kind = SVAML_HOOKS.get(hook)
    if not isinstance(value, expected) and (kind is None or svaml_generation(value) is None):
        names = " or ".join((*(t.__name__ for t in expected), *(SVAML_NAMES if kind is not None else ())))
        raise TypeError(f"{hook} returned {type(value).__name__}, expected {names} or None")
    if refuses is not None and kind is not None:
        why = refuses(value.svaml if isinstance(value, SvamlRoute) else value, kind)
        if why is not None:
            raise ValueError(why)
