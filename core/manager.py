"""Finding, enabling, configuring and registering plugins.

Installed is not enabled: only the plugins named in ``[plugins] enabled`` are
imported, in that order, which is also the order their hooks run in.  The
built-in ``router`` and ``caller_id`` plugins are always enabled and run last.

A plugin is a class, found through the entry-point group ``callgate.plugins``
(the entry-point name is the plugin's one name: config key, log label, CLI).
If the class has a ``Config`` attribute (a pydantic model), its
``[plugins.<name>]`` table is validated against it and the class is built with
the result: ``cls(config)``; otherwise the table must be empty and it is built
with ``cls()``.  Anything that goes wrong stops start-up with a ``PluginError``
naming the plugin, the package, the key and the fix.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Literal

import pluggy
import structlog
from pydantic import AliasChoices, AliasPath, BaseModel, ValidationError

from . import hookspecs
from .config import (
    CONFIG_DIR,
    PLUGIN_DISTRIBUTION,
    ConfigError,
    PluginsConfig,
    format_validation_error,
    secrets_written_in_the_file,
    toml_key,
)
from .phone import set_default_region

log = structlog.get_logger("callgate")
ENTRY_POINT_GROUP = "callgate.plugins"
#: How long one plugin's ``shutdown()`` may take before callgate stops waiting for it.
SHUTDOWN_SECONDS = 30.0
#: A ``startup()`` that takes longer is logged once (``plugin_startup_slow``); it is still waited for.
SLOW_STARTUP_SECONDS = 10.0
#: Built-in plugins: always enabled, always last, configured like any other plugin.
BUILTINS = {
    "router": "callgate.builtin.router:Router",
    "caller_id": "callgate.builtin.caller_id:CallerIdRules",
}
HOOK_NAMES = tuple(name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
                   if hasattr(getattr(hookspecs, name), f"{hookspecs.PROJECT}_spec"))
OnError = Literal["deny", "skip"]
#: The opt-in argument of every call hook (and of ``startup``): true under ``callgate simulate``.
DRY_RUN = "dry_run"
#: The hooks that receive ``dry_run`` (derived from the hookspecs, so the two cannot drift).
DRY_RUN_HOOKS = tuple(name for name in HOOK_NAMES if DRY_RUN in inspect.signature(getattr(hookspecs, name)).parameters)


class PluginError(Exception):
    """A plugin cannot be loaded, configured or started; the message says which and how to fix it."""

    def __init__(self, plugin: str, message: str) -> None:
        super().__init__(f"plugin {plugin!r}: {message}")
        self.plugin = plugin
        #: What is wrong, without the plugin's name.
        self.message = message


@dataclass(slots=True)
class LoadedPlugin:
    """An enabled plugin: its instance and the core's settings for it."""

    name: str
    instance: Any
    distribution: str | None = None
    version: str | None = None
    timeout_s: float = 1.0
    on_error: OnError = "deny"
    builtin: bool = False


@dataclass(frozen=True, slots=True)
class HookImpl:
    """One plugin's implementation of one hook, resolved once at start-up."""

    plugin: LoadedPlugin
    function: Callable[..., Any]
    argnames: tuple[str, ...]
    #: ``async def``: its result is awaited under the plugin's timeout.
    is_async: bool = False
    #: Where its arguments are among the hook call's (:attr:`HookPlan.args`), or None when it takes them all, in
    #: that order (the usual case: the call's arguments are passed to it as they are).
    picks: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class HookPlan:
    """One hook as the dispatcher calls it, worked out once when the plugins are loaded: nothing about the
    implementations is looked up or derived from pluggy's hook caller per callback."""

    hook: str
    #: The enabled implementations, in plugin order.
    impls: tuple[HookImpl, ...]
    #: The hookspec's ``firstresult``: the first answer other than None ends the call.
    firstresult: bool
    #: The hook call's arguments, in the hookspec's order (``dry_run``, bound at load, left out).
    args: tuple[str, ...]


@dataclass
class Plugins:
    """The enabled plugins, in evaluation order, with every hook's implementations resolved."""

    pm: pluggy.PluginManager
    loaded: list[LoadedPlugin]
    #: True for ``callgate simulate``: hooks and ``startup`` that accept ``dry_run`` get True.  Bound into each
    #: implementation here, once, so that the answer path passes nothing more per call.
    dry_run: bool = False
    _impls: dict[str, tuple[HookImpl, ...]] = field(default_factory=dict)
    _plans: dict[str, HookPlan] = field(default_factory=dict)

    def __post_init__(self) -> None:
        order = {p.name: i for i, p in enumerate(self.loaded)}
        by_name = {p.name: p for p in self.loaded}
        for hook in HOOK_NAMES:
            caller = getattr(self.pm.hook, hook)
            args = tuple(name for name in caller.spec.argnames if name != DRY_RUN)
            ordered = sorted(caller.get_hookimpls(), key=lambda impl: order[impl.plugin_name])
            self._impls[hook] = tuple(_resolve(i, by_name[i.plugin_name], args, self.dry_run) for i in ordered)
            self._plans[hook] = HookPlan(hook, self._impls[hook], bool(caller.spec.opts["firstresult"]), args)

    def impls(self, hook: str) -> tuple[HookImpl, ...]:
        return self._impls[hook]

    def plan(self, hook: str) -> HookPlan:
        """How the dispatcher calls ``hook``: its implementations in order, whether it stops at the first
        answer, and the arguments of its call."""
        return self._plans[hook]

    def hooks_of(self, name: str) -> list[str]:
        return [hook for hook, impls in self._impls.items() if any(i.plugin.name == name for i in impls)]

    def not_dry_run_safe(self) -> list[str]:
        """What of the enabled (not built-in) plugins does not accept ``dry_run``: ``"<plugin>.<hook>"`` for each
        call hook and ``startup`` that does not.  A dry run cannot promise that those changed nothing."""
        unsafe = []
        for plugin in self.loaded:
            if plugin.builtin:
                continue
            for hook in DRY_RUN_HOOKS:
                for impl in getattr(self.pm.hook, hook).get_hookimpls():
                    if impl.plugin_name == plugin.name and not _accepts_dry_run(impl.function):
                        unsafe.append(f"{plugin.name}.{hook}")
            startup = getattr(plugin.instance, "startup", None)
            if startup is not None and not _accepts_dry_run(startup):
                unsafe.append(f"{plugin.name}.startup")
        return unsafe

    async def startup(self) -> None:
        """Run every plugin's optional ``async startup()``, in order (with ``dry_run`` if it accepts it).

        If one fails, or the start-up is cancelled (``callgate serve`` stopped by a signal meanwhile), the plugins
        already started are shut down before the error is raised.  A ``startup()`` still running after
        :data:`SLOW_STARTUP_SECONDS` is logged once (``plugin_startup_slow``), naming the plugin waited for.
        """
        started: list[LoadedPlugin] = []
        for plugin in self.loaded:
            fn = getattr(plugin.instance, "startup", None)
            try:
                if fn is not None:
                    await _noting_slow(plugin.name, fn(dry_run=self.dry_run) if _accepts_dry_run(fn) else fn())
            except asyncio.CancelledError as exc:
                if not cancelled_from_outside():       # the plugin let out the cancellation of something it awaited
                    await _shutdown(reversed(started))
                    raise PluginError(plugin.name, "startup() failed: CancelledError (something it awaited was "
                                                   "cancelled)") from exc
                log.warning("plugin_startup_cancelled", plugin=plugin.name)
                await _shutdown(reversed(started))
                raise
            except Exception as exc:
                errors = await _shutdown(reversed(started))
                cleanup = f" (and while stopping the others: {'; '.join(errors)})" if errors else ""
                # A plugin's own PluginError says what is wrong in its words; it is not repeated with its name.
                why = exc.message if isinstance(exc, PluginError) and exc.plugin == plugin.name else \
                    f"{type(exc).__name__}: {exc}"
                raise PluginError(plugin.name, f"startup() failed: {why}{cleanup}") from exc
            started.append(plugin)

    async def shutdown(self) -> None:
        """Run every plugin's optional ``async shutdown()``, in reverse order.  One that raises or takes longer than
        :data:`SHUTDOWN_SECONDS` is logged (``plugin_shutdown_failed``) and left behind; the others still run."""
        await _shutdown(reversed(self.loaded))


def _resolve(impl: pluggy.HookImpl, plugin: LoadedPlugin, args: tuple[str, ...], dry_run: bool) -> HookImpl:
    """``impl`` as the dispatcher calls it: ``dry_run`` bound, and where its arguments are among the hook's."""
    function, argnames = _bind_dry_run(impl, dry_run)
    picks = tuple(args.index(name) for name in argnames)
    return HookImpl(plugin, function, argnames, inspect.iscoroutinefunction(impl.function),
                    None if picks == tuple(range(len(args))) else picks)


def _accepts_dry_run(fn: Callable[..., Any]) -> bool:
    try:
        return DRY_RUN in inspect.signature(fn).parameters
    except (TypeError, ValueError):      # no signature to read (a builtin): it cannot take it
        return False


def _bind_dry_run(impl: pluggy.HookImpl, dry_run: bool) -> tuple[Callable[..., Any], tuple[str, ...]]:
    """The function to call for ``impl`` and the arguments it takes from the hook call, ``dry_run`` bound.

    ``dry_run`` is the same for every call of a ``Plugins``, so it is bound here rather than passed on
    each call.  A ``dry_run`` with a default of ``False`` is left alone on the server path (no cost).
    """
    function, names = impl.function, tuple(impl.argnames)
    if DRY_RUN in names:
        rest = tuple(n for n in names if n != DRY_RUN)
        if names[-1] == DRY_RUN:       # the usual place: the others are passed by position, before it
            return functools.partial(function, dry_run=dry_run), rest
        return _by_name(function, rest, dry_run), rest
    parameter = inspect.signature(function).parameters.get(DRY_RUN)
    if parameter is None or parameter.default is dry_run:     # not taken, or its default is the value
        return function, names
    # With a default, or keyword-only: pluggy leaves it out of argnames; pass it by name.
    return functools.partial(function, dry_run=dry_run), names


def _by_name(function: Callable[..., Any], names: tuple[str, ...], dry_run: bool) -> Callable[..., Any]:
    """``function`` called with ``names`` by keyword (for a ``dry_run`` declared before other arguments)."""
    def call(*values: Any) -> Any:
        return function(dry_run=dry_run, **dict(zip(names, values)))
    return call


async def _shutdown(plugins: Iterable[LoadedPlugin]) -> list[str]:
    """Each plugin's ``shutdown()``, each within :data:`SHUTDOWN_SECONDS`; what failed, logged and returned."""
    errors = []
    for plugin in plugins:
        fn = getattr(plugin.instance, "shutdown", None)
        if fn is None:
            continue
        try:
            async with asyncio.timeout(SHUTDOWN_SECONDS):
                await _maybe_await(fn())
        except TimeoutError:
            why = f"shutdown() did not return within {SHUTDOWN_SECONDS:g} s: left behind"
        except Exception as exc:
            why = f"shutdown() failed: {type(exc).__name__}: {exc}"
        except asyncio.CancelledError:
            if cancelled_from_outside():
                raise
            why = "shutdown() failed: CancelledError (something it awaited was cancelled)"
        else:
            continue
        log.error("plugin_shutdown_failed", plugin=plugin.name, error=why)
        errors.append(f"{plugin.name}: {why}")
    return errors


def cancelled_from_outside() -> bool:
    """In an ``except CancelledError``: whether the running task itself is being cancelled (the callback's request
    ended, the server stops), rather than a plugin's code letting out the cancellation of something it awaited."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


async def _noting_slow(name: str, result: Any) -> None:
    """Await ``result`` (a ``startup()``'s), logging once if it takes longer than :data:`SLOW_STARTUP_SECONDS`."""
    if not inspect.isawaitable(result):
        return
    task = asyncio.ensure_future(result)
    try:
        done, _ = await asyncio.wait({task}, timeout=SLOW_STARTUP_SECONDS)
        if not done:
            log.warning("plugin_startup_slow", plugin=name, seconds=SLOW_STARTUP_SECONDS,
                        message="still waiting for this plugin's startup(); callgate listens once it returns")
        await task
    finally:
        task.cancel()                       # cancelled from outside (a signal): the plugin's startup() too


def installed_plugins() -> dict[str, EntryPoint]:
    """Every plugin installed in this environment, by name, without importing any of them."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_plugins(config: PluginsConfig, *, server_timeout_ms: int = 1000, source: str = "config.toml",
                 classes: Mapping[str, type] | None = None, dry_run: bool = False,
                 broken: dict[str, Exception] | None = None, default_region: str | None = None) -> Plugins:
    """Import, configure, build and register the enabled plugins, then the built-ins.

    ``classes`` maps plugin names to classes to use instead of entry points
    (``callgate.testing`` uses it to test a plugin that is not installed).
    ``broken``: a plugin that cannot be imported or configured is left out and its error put in this dict,
    instead of stopping the whole load (the CLI uses it so that one plugin's commands do not need
    another plugin's settings or secrets).
    ``dry_run``: for ``callgate simulate`` (see :attr:`Plugins.dry_run`).
    ``default_region`` (``[server] default_region``) is set for the process first
    (:func:`callgate.phone.set_default_region`): plugins read the numbers in their settings with it.
    """
    set_default_region(default_region)
    classes = dict(classes or {})
    installed = None
    for name in config.enabled:
        if name in BUILTINS:
            raise PluginError(name, f"is built in and always enabled, last; remove it from [plugins] enabled in {source}")
    extra = config.model_extra or {}
    unknown = [k for k in extra if k not in config.enabled and k not in BUILTINS]
    if unknown and not isinstance(extra[unknown[0]], Mapping):      # `enable = [...]`: not a plugin's table
        raise ConfigError(f"{source}: [plugins].{unknown[0]}: unknown key: [plugins] holds `enabled` (the list of "
                          f"plugins) and one [plugins.<name>] table per plugin")
    if unknown:
        raise PluginError(unknown[0], f"{source} has a [plugins.{unknown[0]}] table but {unknown[0]!r} is not in "
                                      f"[plugins] enabled; add it to enabled, or remove the table")

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    loaded = []
    for name in (*config.enabled, *BUILTINS):
        dist = version = None
        try:
            if name in classes:
                cls = classes[name]
            elif name in BUILTINS:
                cls = _import(name, BUILTINS[name], "callgate")
            else:
                installed = installed_plugins() if installed is None else installed
                ep = installed.get(name)
                if ep is None:
                    raise PluginError(name, f"is enabled in {source} but not installed (no entry point {name!r} in "
                                            f"group {ENTRY_POINT_GROUP}). Fix: pip install {guess_distribution(name)}, "
                                            f"or remove {name!r} from [plugins] enabled")
                dist, version = (ep.dist.name, ep.dist.version) if ep.dist else (None, None)
                cls = _import(name, ep.value, dist or guess_distribution(name))
            plugin = build_plugin(name, cls, config.table(name), server_timeout_ms=server_timeout_ms, source=source,
                                  directory=config.directory, written=config.written(name),
                                  distribution=dist or ("callgate" if name in BUILTINS else guess_distribution(name)))
        except (PluginError, ConfigError) as exc:
            if broken is None:
                raise
            broken[name] = exc
            continue
        plugin.distribution, plugin.version, plugin.builtin = dist, version, name in BUILTINS and name not in classes
        check_hookimpls(pm, name, plugin.instance, source=source)
        try:
            pm.register(plugin.instance, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise PluginError(name, f"does not fit the hook contract: {exc}") from None
        loaded.append(plugin)
    return Plugins(pm, loaded, dry_run=dry_run)


#: pluggy's hookimpl options that callgate's dispatcher does not honour, and why.  callgate calls every
#: implementation itself (core/dispatch.py): one after another in ``[plugins] enabled`` order, each under
#: its own timeout.  ``specname`` is honoured (pluggy maps the method to the hook), and ``optionalhook``
#: changes nothing on a callgate hook (and any other name is refused below).
UNHONOURED_OPTIONS = ("wrapper", "hookwrapper", "tryfirst", "trylast")
#: Hooks called synchronously, outside the dispatcher, and why: an ``async def`` implementation is refused.
SYNC_HOOKS = {"callback_answered": "it runs on the answer path and must return at once: queue the work and do it "
                                   "in a background task",
              "register_ops_routes": "it only adds routes, when the ops application is built; the routes' own "
                                     "handlers may be async"}


def check_hookimpls(pm: pluggy.PluginManager, name: str, instance: Any, *, source: str = "config.toml") -> None:
    """Refuse, before registering, what pluggy would accept but callgate would silently not honour:
    an implementation of a name that is not a callgate hook (``optionalhook=True`` included), and the
    ``wrapper``, ``hookwrapper``, ``tryfirst`` and ``trylast`` options."""
    for attr in dir(instance):
        opts = pm.parse_hookimpl_opts(instance, attr)
        if opts is None:
            if attr in HOOK_NAMES and callable(getattr(instance, attr, None)):
                raise PluginError(name, f"{attr}() is named like the hook {attr} but is not marked @hookimpl, so "
                                        f"callgate would never call it. Fix: put @hookimpl (from callgate import "
                                        f"hookimpl) above it, or rename it")
            continue
        hook = opts.get("specname") or attr
        if hook not in HOOK_NAMES:
            named = f"{attr} (specname={hook!r})" if hook != attr else attr
            raise PluginError(name, f"implements a hook callgate does not have: {named} is not a callgate hook "
                                    f"(optionalhook=True does not change that). The hooks are "
                                    f"{', '.join(HOOK_NAMES)}; fix the name or remove @hookimpl")
        given_names = getattr(pm.hook, hook).spec.argnames
        unknown = _arguments_not_given(getattr(instance, attr), given_names)
        if unknown:
            given = ", ".join(given_names) or "none"
            raise PluginError(name, f"{attr}() takes {', '.join(unknown)}, which the hook {hook} does not give (its "
                                    f"arguments: {given}). Fix: take only those, by those names (any of them, in any "
                                    f"order)")
        if hook in SYNC_HOOKS and inspect.iscoroutinefunction(getattr(instance, attr)):
            raise PluginError(name, f"{attr}() implements {hook}, which must be a plain def ({SYNC_HOOKS[hook]}); "
                                    f"it is async def")
        for option in UNHONOURED_OPTIONS:
            if opts.get(option):
                raise PluginError(name, f"{attr}() is marked @hookimpl({option}=True) for hook {hook}, which "
                                        f"callgate does not honour: {_instead(option, name, source)}")


def _arguments_not_given(function: Any, given: Sequence[str]) -> list[str]:
    """The arguments of a hook implementation (a bound method) that must be passed and are not among ``given`` (the
    hook's): pluggy would refuse them in a message of several lines; one with a default is never asked for."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):        # no signature to read (a builtin): pluggy's own check then decides
        return []
    return [p.name for p in parameters if p.default is p.empty and p.name not in given
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _instead(option: str, name: str, source: str) -> str:
    """Why callgate does not honour a pluggy hookimpl option, and what to do instead."""
    order = ("callgate calls each plugin's implementation itself, one after another in the order of "
             "[plugins] enabled, each under its own timeout_ms")
    if option in ("wrapper", "hookwrapper"):
        return (f"{order}; there are no wrappers (a wrapper's code would never run). Fix: remove {option}=True "
                f"and write a plain hook (def or async def) that does its own work; to act before or after "
                f"another plugin, list {name!r} before or after it in [plugins] enabled in {source}")
    where = "front" if option == "tryfirst" else "end"
    return (f"the order is [plugins] enabled (the built-in router and caller_id always come last). "
            f"Fix: remove {option}=True and move {name!r} to the {where} of [plugins] enabled in {source}")


def build_plugin(name: str, cls: Any, table: Mapping[str, Any], *, server_timeout_ms: int = 1000,
                 source: str = "config.toml", directory: Path | None = None,
                 distribution: str | None = None, written: Any = None) -> LoadedPlugin:
    """Validate ``[plugins.<name>]`` against the plugin's ``Config`` model and build the instance.

    ``written``: the table as written in the file (``{ env = ... }`` kept), when there is a file: a secret of the
    model (a ``SecretStr`` field) written there as a plain value stops start-up (secrets come from the environment).

    The model is validated with ``context={CONFIG_DIR: directory, PLUGIN_DISTRIBUTION: distribution}``: the
    config file's folder, where relative paths start (``callgate.config.ConfigPath``, ``DatabaseURL``), and the
    plugin's package, named in what-to-install messages (default: ``callgate-<name>``).
    """
    if not isinstance(table, Mapping):
        raise PluginError(name, f"[plugins.{name}] in {source} must be a table")
    if not isinstance(cls, type):
        raise PluginError(name, f"its entry point names {cls!r:.60}, not a class: in the plugin's "
                                f"pyproject.toml, [project.entry-points.\"callgate.plugins\"] {name} = "
                                f"\"module:ClassName\"")
    table = dict(table)
    # Where a bad timeout_ms or on_error comes from: the table, or the plugin class's own default.
    timeout_where = f"{source}: [plugins.{name}].timeout_ms" if "timeout_ms" in table else \
        f"the plugin's default_timeout_ms (its class, not {source})"
    error_where = f"{source}: [plugins.{name}].on_error" if "on_error" in table else \
        f"the plugin's default_on_error (its class, not {source})"
    timeout_ms = table.pop("timeout_ms", getattr(cls, "default_timeout_ms", server_timeout_ms))
    on_error = table.pop("on_error", getattr(cls, "default_on_error", "deny"))
    if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or not 1 <= timeout_ms <= 30000:
        raise PluginError(name, f"{timeout_where} must be a whole number of milliseconds from 1 to 30000, "
                                f"got {timeout_ms!r}")
    if on_error not in ("deny", "skip"):
        raise PluginError(name, f'{error_where} must be "deny" or "skip", got {on_error!r}')
    model = getattr(cls, "Config", None)
    try:
        if model is None:
            if table:
                raise PluginError(name, f"{source}: [plugins.{name}] has settings ({', '.join(sorted(table))}) but "
                                        f"this plugin takes none; remove them")
            instance = cls()
        else:
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise PluginError(name, "its Config attribute must be a pydantic BaseModel subclass")
            try:
                settings = model.model_validate(table, context={
                    CONFIG_DIR: directory, PLUGIN_DISTRIBUTION: distribution or guess_distribution(name)})
            except ValidationError as exc:
                raise PluginError(name, "invalid configuration:\n" + format_validation_error(
                    exc, source, ("plugins", name))) from None
            unknown = _unknown_keys(model, table)
            if unknown:
                raise PluginError(name, "invalid configuration:\n" + "\n".join(
                    f"{source}: {toml_key(('plugins', name, key))}: unknown key: this table has no such setting "
                    f"(a typo?)" for key in unknown))
            if written is not None:
                _refuse_secrets_in_the_file(name, settings, written, source)
            instance = cls(settings)
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(name, f"could not be built: {type(exc).__name__}: {exc}") from exc
    return LoadedPlugin(name, instance, timeout_s=timeout_ms / 1000, on_error=on_error)


def _unknown_keys(model: type[BaseModel], table: Mapping[str, Any]) -> list[str]:
    """The keys of ``table`` that are none of ``model``'s settings, when the model does not say what to do with
    them (pydantic would ignore them: a typo would leave a setting at its default without a word); none when it
    does (``extra="forbid"`` has refused them already, ``"allow"`` or ``"ignore"`` is the plugin's choice)."""
    if "extra" in model.model_config:
        return []
    by_name = model.model_config.get("populate_by_name") or model.model_config.get("validate_by_name")
    known: set[str] = set()
    for field_name, info in model.model_fields.items():
        if by_name or (info.alias is None and info.validation_alias is None):
            known.add(field_name)
        choices = info.validation_alias.choices if isinstance(info.validation_alias, AliasChoices) else \
            [info.validation_alias]
        for alias in (info.alias, *choices):
            if isinstance(alias, AliasPath):            # the first key of a path into a nested table
                alias = alias.path[0]
            if isinstance(alias, str):
                known.add(alias)
    return [key for key in table if key not in known]


def _refuse_secrets_in_the_file(name: str, settings: BaseModel, written: Any, source: str) -> None:
    """PluginError naming every secret of the plugin written in the file as a plain value (never the value)."""
    found = secrets_written_in_the_file(settings, written)
    if found:
        keys = ", ".join(toml_key(("plugins", name, *path)) for path in found)
        raise PluginError(name, f"{source}: {keys}: a secret must not be written in the file; write "
                                f'{{ env = "NAME" }} instead and set that environment variable')


def guess_distribution(name: str) -> str:
    """The package name a plugin is expected to have: ``credit_check`` -> ``callgate-credit-check``."""
    return "callgate-" + name.replace("_", "-")


def _import(name: str, target: str, package: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
    except Exception as exc:
        raise PluginError(name, f"failed to import {target} from package {package}: {type(exc).__name__}: {exc}. "
                                f"Fix: pip install -U {package}, or remove {name!r} from [plugins] enabled") from exc
    return obj


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
