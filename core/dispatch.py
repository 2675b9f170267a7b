"""Running one hook over the enabled plugins: in order, each under its own timeout,
all inside one deadline, every outcome attributed to its plugin.

Pluggy's own call loop is not used on the answer path: it cannot await async
implementations, stops at the first exception and loses attribution.  Hooks are
still pluggy hookspecs (validated at registration); only the calling is ours.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import structlog

from .manager import HookImpl, Plugins
from .results import Allow, CallerId, Deny, Outcome, Route, Status
from .svaml import Svaml

log = structlog.get_logger("callgate.dispatch")

#: What each decision hook may return besides None; anything else counts as the plugin failing.
EXPECTED: dict[str, tuple[type, ...]] = {
    "authorize_call": (Allow, Deny),
    "route_call": (Route,),
    "set_cli": (CallerId,),
    "on_answer": (Svaml,),
    "on_prompt_input": (Svaml,),
}
#: Hooks whose failure is subject to the plugin's on_error policy (the others only record).
DECISION_HOOKS = frozenset(EXPECTED)
#: Results that are never awaitable (the common case needs no ``inspect.isawaitable``, which is slow).
_RESULTS = tuple({t for types in EXPECTED.values() for t in types})
_SVAML_EVENT = {"on_answer": "ace", "on_prompt_input": "pie"}


async def call_one(impl: HookImpl, hook: str, kwargs: dict[str, Any], deadline: float) -> Outcome:
    """Call one implementation; never raises (except cancellation of the caller)."""
    loop = asyncio.get_running_loop()
    plugin = impl.plugin
    start = loop.time()
    end = start + plugin.timeout_s
    if deadline < end:
        end = deadline
    try:
        if start >= end:
            raise TimeoutError
        value = impl.function(*map(kwargs.__getitem__, impl.argnames))
        if impl.is_async or (value is not None and not isinstance(value, _RESULTS) and inspect.isawaitable(value)):
            async with asyncio.timeout_at(end):
                value = await value
        if value is not None:
            _check_result(hook, value)
    except TimeoutError:
        return _failed(impl, hook, "timeout", f"no answer within {round((end - start) * 1000)} ms", start, loop)
    except Exception as exc:
        return _failed(impl, hook, "error", f"{type(exc).__name__}: {exc}", start, loop)
    return Outcome(plugin.name, hook, value, "ok", None, (loop.time() - start) * 1000)


def _failed(impl: HookImpl, hook: str, status: Status, error: str, start: float,
            loop: asyncio.AbstractEventLoop) -> Outcome:
    """The outcome of an implementation that raised or timed out (logged here), after its on_error policy."""
    plugin = impl.plugin
    log.warning("plugin_failed", plugin=plugin.name, hook=hook, status=status, error=error,
                exc_info=status == "error")
    value = None
    if hook in DECISION_HOOKS and plugin.on_error == "deny":
        value = Deny(f"plugin {plugin.name} failed in {hook} ({status}); its on_error policy is deny")
    return Outcome(plugin.name, hook, value, status, error, (loop.time() - start) * 1000)


async def collect(plugins: Plugins, hook: str, deadline: float, *,
                  stop: Callable[[Outcome], bool] | None = None, **kwargs: Any) -> list[Outcome]:
    """Every plugin in order (or until ``stop(outcome)`` is true); one Outcome each."""
    outcomes = []
    for impl in plugins.impls(hook):
        outcome = await call_one(impl, hook, kwargs, deadline)
        outcomes.append(outcome)
        if stop is not None and stop(outcome):
            break
    return outcomes


async def first(plugins: Plugins, hook: str, deadline: float, **kwargs: Any) -> list[Outcome]:
    """Plugins in order until one answers something other than None; the last outcome is that answer."""
    return await collect(plugins, hook, deadline, stop=_answered, **kwargs)


def _answered(outcome: Outcome) -> bool:
    return outcome.value is not None


def _check_result(hook: str, value: Any) -> None:
    expected = EXPECTED.get(hook)
    if expected is None:
        return
    if not isinstance(value, expected):
        names = " or ".join(t.__name__ for t in expected)
        raise TypeError(f"{hook} returned {type(value).__name__}, expected {names} or None")
    if hook in _SVAML_EVENT:
        value.validate_for(_SVAML_EVENT[hook])

