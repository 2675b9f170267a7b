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

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

import pluggy
from pydantic import BaseModel, ValidationError

from . import hookspecs
from .caches import ClearingCache
from .config import PluginsConfig, format_validation_error
from .phone import set_default_region

ENTRY_POINT_GROUP = "callgate.plugins"
#: Built-in plugins: always enabled, always last, configured like any other plugin.
BUILTINS = {
    "router": "callgate.builtin.router:Router",
    "caller_id": "callgate.builtin.caller_id:CallerIdRules",
}
HOOK_NAMES = tuple(name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
                   if hasattr(getattr(hookspecs, name), f"{hookspecs.PROJECT}_spec"))
OnError = Literal["deny", "skip"]


class PluginError(Exception):
    """A plugin cannot be loaded, configured or started; the message says which and how to fix it."""

    def __init__(self, plugin: str, message: str) -> None:
        super().__init__(f"plugin {plugin!r}: {message}")
        self.plugin = plugin


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


#: How many checked SVAML answers each implementation remembers (all dropped when full).
CHECKED_SVAML_SIZE = 256


@dataclass(frozen=True, slots=True)
class HookImpl:
    """One plugin's implementation of one hook, resolved once at start-up."""

    plugin: LoadedPlugin
    function: Callable[..., Any]
    argnames: tuple[str, ...]
    #: ``async def``: its result is awaited under the plugin's timeout.
    is_async: bool = False
    #: SVAML answers (frozen) this implementation returned that passed their check, by identity: a plugin's
    #: prebuilt answer is checked once (the dict keeps each object alive, so its id is not reused meanwhile).
    checked: ClearingCache = field(default_factory=lambda: ClearingCache(CHECKED_SVAML_SIZE), compare=False,
                                   repr=False)


@dataclass
class Plugins:
    """The enabled plugins, in evaluation order, with every hook's implementations resolved."""

    pm: pluggy.PluginManager
    loaded: list[LoadedPlugin]
    _impls: dict[str, tuple[HookImpl, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        order = {p.name: i for i, p in enumerate(self.loaded)}
        by_name = {p.name: p for p in self.loaded}
        for hook in HOOK_NAMES:
            impls = getattr(self.pm.hook, hook).get_hookimpls()
            ordered = sorted(impls, key=lambda impl: order[impl.plugin_name])
            self._impls[hook] = tuple(
                HookImpl(by_name[i.plugin_name], i.function, tuple(i.argnames),
                         inspect.iscoroutinefunction(i.function)) for i in ordered)

    def impls(self, hook: str) -> tuple[HookImpl, ...]:
        return self._impls[hook]

    def hooks_of(self, name: str) -> list[str]:
        return [hook for hook, impls in self._impls.items() if any(i.plugin.name == name for i in impls)]

    async def startup(self) -> None:
        """Run every plugin's optional ``async startup()``, in order.

        If one fails, the plugins already started are shut down before the error is raised.
        """
        started = []
        for plugin in self.loaded:
            fn = getattr(plugin.instance, "startup", None)
            try:
                if fn is not None:
                    await _maybe_await(fn())
            except Exception as exc:
                errors = await _shutdown(reversed(started))
                cleanup = f" (and while stopping the others: {'; '.join(errors)})" if errors else ""
                raise PluginError(plugin.name, f"startup() failed: {type(exc).__name__}: {exc}{cleanup}") from exc
            started.append(plugin)

    async def shutdown(self) -> None:
        """Run every plugin's optional ``async shutdown()``, in reverse order; one failing does not stop the others."""
        errors = await _shutdown(reversed(self.loaded))
        if errors:
            raise RuntimeError("plugin shutdown failed: " + "; ".join(errors))


async def _shutdown(plugins: Iterable[LoadedPlugin]) -> list[str]:
    errors = []
    for plugin in plugins:
        fn = getattr(plugin.instance, "shutdown", None)
        if fn is not None:
            try:
                await _maybe_await(fn())
            except Exception as exc:
                errors.append(f"{plugin.name}: {type(exc).__name__}: {exc}")
    return errors


def installed_plugins() -> dict[str, EntryPoint]:
    """Every plugin installed in this environment, by name, without importing any of them."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_plugins(config: PluginsConfig, *, server_timeout_ms: int = 1000, source: str = "config.toml",
                 classes: Mapping[str, type] | None = None, default_region: str | None = None) -> Plugins:
    """Import, configure, build and register the enabled plugins, then the built-ins.

    ``classes`` maps plugin names to classes to use instead of entry points
    (``callgate.testing`` uses it to test a plugin that is not installed).
    ``default_region`` (``[server] default_region``) is set for the process first
    (:func:`callgate.phone.set_default_region`): plugins read the numbers in their settings with it.
    """
    set_default_region(default_region)
    classes = dict(classes or {})
    installed = None
    for name in config.enabled:
        if name in BUILTINS:
            raise PluginError(name, f"is built in and always enabled, last; remove it from [plugins] enabled in {source}")
    unknown = [k for k in (config.model_extra or {}) if k not in config.enabled and k not in BUILTINS]
    if unknown:
        raise PluginError(unknown[0], f"{source} has a [plugins.{unknown[0]}] table but {unknown[0]!r} is not in "
                                      f"[plugins] enabled; add it to enabled, or remove the table")

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    loaded = []
    for name in (*config.enabled, *BUILTINS):
        dist = version = None
        if name in classes:
            cls = classes[name]
        elif name in BUILTINS:
            cls = _import(name, BUILTINS[name], "callgate")
        else:
            installed = installed_plugins() if installed is None else installed
            ep = installed.get(name)
            if ep is None:
                raise PluginError(name, f"is enabled in {source} but not installed (no entry point {name!r} in group "
                                        f"{ENTRY_POINT_GROUP}). Fix: pip install {guess_distribution(name)}, or "
                                        f"remove {name!r} from [plugins] enabled")
            dist, version = (ep.dist.name, ep.dist.version) if ep.dist else (None, None)
            cls = _import(name, ep.value, dist or guess_distribution(name))
        plugin = build_plugin(name, cls, config.table(name), server_timeout_ms=server_timeout_ms, source=source)
        plugin.distribution, plugin.version, plugin.builtin = dist, version, name in BUILTINS and name not in classes
        try:
            pm.register(plugin.instance, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise PluginError(name, f"does not fit the hook contract: {exc}") from None
        loaded.append(plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(pm.get_name(exc.plugin) or repr(exc.plugin),
                          f"implements a hook callgate does not have: {exc}") from None
    return Plugins(pm, loaded)


def build_plugin(name: str, cls: Any, table: Mapping[str, Any], *, server_timeout_ms: int = 1000,
                 source: str = "config.toml") -> LoadedPlugin:
    """Validate ``[plugins.<name>]`` against the plugin's ``Config`` model and build the instance."""
    if not isinstance(table, Mapping):
        raise PluginError(name, f"[plugins.{name}] in {source} must be a table")
    table = dict(table)
    timeout_ms = table.pop("timeout_ms", getattr(cls, "default_timeout_ms", server_timeout_ms))
    on_error = table.pop("on_error", getattr(cls, "default_on_error", "deny"))
    if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or not 1 <= timeout_ms <= 30000:
        raise PluginError(name, f"{source}: [plugins.{name}].timeout_ms must be a whole number of milliseconds "
                                f"from 1 to 30000, got {timeout_ms!r}")
    if on_error not in ("deny", "skip"):
        raise PluginError(name, f'{source}: [plugins.{name}].on_error must be "deny" or "skip", got {on_error!r}')
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
                settings = model.model_validate(table)
            except ValidationError as exc:
                raise PluginError(name, "invalid configuration:\n" + format_validation_error(
                    exc, source, ("plugins", name))) from None
            instance = cls(settings)
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(name, f"could not be built: {type(exc).__name__}: {exc}") from exc
    return LoadedPlugin(name, instance, timeout_s=timeout_ms / 1000, on_error=on_error)


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
