"""The aiohttp application: state on the app (AppKeys), routes, and the plugins' lifecycle."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from .builtin.caller_id import check_rule_routes
from .config import Config, ConfigError
from .endpoints import build_service_verifier, build_verifier, callback_endpoint, webhook_endpoint
from .handlers import callback, healthz, metrics, not_found, ops_not_found, plugin_page_errors, readyz, webhook
from .manager import PluginError, Plugins, load_plugins
from .metrics import Metrics
from .pipeline import Pipeline
from .state import CALLBACK, CONFIG, LIFECYCLE, METRICS, PIPELINE, PLUGINS, WEBHOOK, Lifecycle

__all__ = ["build_service_verifier", "build_verifier", "check_ops_pages", "create_app", "create_ops_app", "preflight"]

#: The state an ops app shares with the callback app it reports on.
_SHARED = (CONFIG, PLUGINS, CALLBACK, WEBHOOK, METRICS, LIFECYCLE)


def create_app(config: Config, *, plugins: Plugins | None = None,
               plugin_classes: Mapping[str, type] | None = None) -> web.Application:
    """Build the server for one configuration.  Plugins are loaded here unless given."""
    if plugins is None:
        plugins = _load(config, plugin_classes)
    pipeline = _checked_pipeline(config, plugins)
    app = web.Application(client_max_size=config.server.max_body_bytes)
    app[CONFIG] = config
    app[PLUGINS] = plugins
    app[PIPELINE] = pipeline
    app[CALLBACK] = callback_endpoint(config)
    app[WEBHOOK] = webhook_endpoint(config)
    app[METRICS] = Metrics()
    app[LIFECYCLE] = Lifecycle()
    app.router.add_route("*", config.server.callback_path, callback)
    app.router.add_route("*", config.server.webhook_path, webhook)
    if not config.server.ops_port:
        _add_ops_routes(app)
    app.router.add_route("*", "/{path:.*}", not_found)      # last: every other path, a JSON 404
    app.cleanup_ctx.append(_plugin_lifecycle)
    return app


def check_ops_pages(config: Config, plugins: Plugins) -> None:
    """A plugin that adds pages to the ops application (``register_ops_routes``) needs one: PluginError naming the
    first such plugin when ``[server] ops_port`` is 0, where its pages would be served nowhere.  Asked by
    ``create_app`` (``callgate serve``) and by ``callgate check-config``, so that both refuse the same file."""
    if config.server.ops_port:
        return
    for impl in plugins.impls("register_ops_routes"):
        raise PluginError(impl.plugin.name, "its pages are served on the ops port only, and [server] ops_port is 0: "
                                            "set [server] ops_port (e.g. 9091; ops_host defaults to 127.0.0.1)")


def preflight(config: Config, *, plugin_classes: Mapping[str, type] | None = None) -> Plugins:
    """What ``callgate check-config`` checks, and ``callgate serve`` refuses to start without: the applications' and
    services' secrets, every enabled plugin imported (or taken from ``plugin_classes``), configured and built, the
    caller-id rules' routes (:func:`~callgate.builtin.caller_id.check_rule_routes`), the
    ops port for plugins with pages (:func:`check_ops_pages`) and the routes they add (``register_ops_routes`` run
    on a scratch application: a route outside the plugin's prefix, or an exception).  No plugin's ``startup()``
    runs.  Raises ConfigError or PluginError; returns the plugins."""
    build_verifier(config)
    build_service_verifier(config)
    plugins = _load(config, plugin_classes)
    _checked_pipeline(config, plugins)
    if config.server.ops_port:            # each plugin's pages added to an ops application of their own, as serve will
        for impl in plugins.impls("register_ops_routes"):
            _register_plugin_routes(web.Application(), impl.plugin.name, impl.function, impl.argnames)
    return plugins


def _load(config: Config, plugin_classes: Mapping[str, type] | None) -> Plugins:
    return load_plugins(config.plugins, server_timeout_ms=config.server.plugin_timeout_ms, source=config.source,
                        classes=plugin_classes, default_region=config.server.default_region)


def _checked_pipeline(config: Config, plugins: Plugins) -> Pipeline:
    """What ``serve`` and ``check-config`` both check of the plugins together (:func:`check_ops_pages`,
    :func:`~callgate.builtin.caller_id.check_rule_routes`), then the decision pipeline: a ``[server]`` value it
    cannot use (a prompt Sinch cannot speak) is a ConfigError, not a traceback (the keys' own checks should have
    refused it first)."""
    check_ops_pages(config, plugins)
    check_rule_routes(plugins)
    try:
        return Pipeline(plugins, config.server)
    except ValueError as exc:
        raise ConfigError(f"{config.source}: [server]: {exc}") from None


def create_ops_app(app: web.Application) -> web.Application:
    """/metrics, /healthz and /readyz of ``app``, for a port that need not be public, and the routes plugins add
    with ``register_ops_routes`` (each under its own ``/<plugin name>`` prefix)."""
    ops = web.Application(middlewares=[plugin_page_errors])
    for key in _SHARED:
        ops[key] = app[key]  # type: ignore[misc]  # each key with its own value type
    _add_ops_routes(ops)
    for impl in app[PLUGINS].impls("register_ops_routes"):
        _register_plugin_routes(ops, impl.plugin.name, impl.function, impl.argnames)
    ops.router.add_route("*", "/{path:.*}", ops_not_found)
    return ops


def _register_plugin_routes(ops: web.Application, name: str, register: Callable[..., Any],
                            argnames: tuple[str, ...]) -> None:
    """One plugin's ``register_ops_routes``; PluginError (start-up stops) when it raises or adds a route outside
    ``/<name>``."""
    before = len(ops.router.resources())
    try:
        register(ops) if argnames else register()
    except Exception as exc:
        raise PluginError(name, f"register_ops_routes failed: {type(exc).__name__}: {exc}") from exc
    prefix = f"/{name}"
    for resource in list(ops.router.resources())[before:]:
        path = resource.canonical
        if path != prefix and not path.startswith(prefix + "/"):
            raise PluginError(name, f"register_ops_routes added the route {path!r}, outside the plugin's own "
                                    f"prefix {prefix}/: a plugin's ops routes must start with {prefix}/")


def _add_ops_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


async def _plugin_lifecycle(app: web.Application):
    plugins = app[PLUGINS]
    await plugins.startup()
    yield
    await plugins.shutdown()
