"""The ``callgate`` command: serve, sign, simulate, plugins, check-config, and plugins' own subcommands."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import shlex
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import structlog

from . import __version__, samples
from .app import build_verifier
from .config import ENV_KEY, ENV_SECRET, Config, ConfigError, load_config
from .logs import configure_logging
from .manager import BUILTINS, PluginError, Plugins, installed_plugins, load_plugins
from .phone import PRIVATE_SPELLINGS, PhoneNumberError, parse_number, set_default_region
from .pipeline import Pipeline
from .protocols.v1 import signing
from .protocols.v1.decode import decode_event
from .server import serve, supervise, worker_command

CORE_COMMANDS = ("serve", "sign", "simulate", "plugins", "check-config")
EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    """The ``callgate`` command; returns the exit status."""
    try:
        status = _main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``callgate ... | head``): stop quietly.  As Python's documentation advises
        # (signal module, "Note on SIGPIPE"), stdout goes to devnull so the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return status


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --config may stand anywhere, before or after any command (plugins' commands included).
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, argv = pre.parse_known_args(argv)
    parser, subparsers = _core_parser()
    command = next((a for a in argv if not a.startswith("-")), None)
    if command is not None and command not in CORE_COMMANDS:
        # Maybe a plugin's command: only enabled plugins are imported, and only now.  A plugin that cannot be
        # configured (say, its secret is not in the environment) matters only if the command is its own.
        broken: dict[str, Exception] = {}
        try:
            config = load_config(known.config)
            plugins = _load(config, broken=broken)
        except (ConfigError, PluginError) as exc:
            return _fail(exc)
        plugins.pm.hook.register_commands(subparsers=subparsers)
        if command not in subparsers.choices and broken:
            return _fail(ConfigError(f"{command!r} is not a core command, and enabled plugins that may add it "
                                     f"could not be loaded:\n" + "\n".join(str(exc) for exc in broken.values())))
    args = parser.parse_args(argv)
    args.config = known.config
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_CONFIG
    if args.handler is not cmd_serve:
        # Commands print their results on stdout; whatever plugins log goes to stderr.
        configure_logging("console", "warning", stream=sys.stderr)
    try:
        status = args.handler(args)
        if inspect.iscoroutine(status):
            status = asyncio.run(status)
    except (ConfigError, PluginError) as exc:
        return _fail(exc)
    return int(status or 0)


def _core_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(prog="callgate", description="A plugin-based callback server for Sinch Voice.")
    parser.add_argument("--version", action="version", version=f"callgate {__version__}")
    parser.add_argument("--config", metavar="PATH",
                        help="config.toml to use, before or after the command "
                             "(default: $CALLGATE_CONFIG, else ./config.toml, else the built-in defaults)")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the callback server")
    serve.add_argument("--host", help="address to listen on (default: [server] host)")
    serve.add_argument("--port", type=int, help="port to listen on (default: [server] port)")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="run N worker processes on one port (state is shared through the plugins' stores)")
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)   # set on workers
    serve.set_defaults(handler=cmd_serve)

    sign = sub.add_parser("sign",
                          help="print a correctly signed curl command for a callback, for manual testing")
    sign.add_argument("event", choices=sorted(samples.BUILDERS), help="which event to send")
    sign.add_argument("--url", default=None, help="callback URL (default: http://[server] host:port/callback_path)")
    sign.add_argument("--body", metavar="FILE", help="send this file's bytes as the body ('-' for stdin) instead of a sample")
    _event_options(sign)
    sign.set_defaults(handler=cmd_sign)

    simulate = sub.add_parser("simulate",
                              help="run the real decision pipeline on an event, without network, and explain it")
    simulate.add_argument("event", choices=sorted(samples.BUILDERS))
    simulate.add_argument("--body", metavar="FILE", help="use this JSON file as the event instead of a sample")
    simulate.add_argument("--json", action="store_true", help="print the result as JSON")
    _event_options(simulate)
    simulate.set_defaults(handler=cmd_simulate)

    plugins = sub.add_parser("plugins", help="list installed plugins")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(handler=cmd_plugins)

    check = sub.add_parser("check-config",
                           help="validate a config file and the plugins it enables; exit 2 if anything is wrong")
    check.set_defaults(handler=cmd_check_config)
    return parser, sub


def _event_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="caller", default="+46701234567",
                        help="caller number (ICE cli / DICE from), written as in config.toml, or private")
    parser.add_argument("--to", default="+46850001234",
                        help="callee (ICE/DICE to.endpoint): a number when --to-type is number or did, else as it is")
    parser.add_argument("--to-type", default="number", help="ICE to.type: number, did, username, sip, conference")
    parser.add_argument("--callid", default=None)
    parser.add_argument("--menu", default="main", help="PIE menuId")
    parser.add_argument("--type", default=None, help="PIE menuResult.type / Notify type")
    parser.add_argument("--value", default="1", help="PIE menuResult.value")
    parser.add_argument("--duration", type=int, default=60, help="DICE duration in seconds")
    parser.add_argument("--result", default="ANSWERED", help="DICE result")


def _sample(args: argparse.Namespace) -> dict:
    kind = args.event
    if kind == "ice":
        return samples.ice(args.caller, args.to, to_type=args.to_type, callid=args.callid)
    if kind == "pie":
        return samples.pie(args.callid, menu=args.menu, type=args.type or "sequence", value=args.value)
    if kind == "dice":
        return samples.dice(args.callid, caller=args.caller, to=args.to, duration=args.duration, result=args.result)
    if kind == "notify":
        return samples.notify(args.callid, type=args.type or "recording_available")
    return samples.ace(args.callid)


def _read_numbers(args: argparse.Namespace) -> str | None:
    """``--from``/``--to`` as people write them, made E.164 in place (with ``[server] default_region``);
    the problem, naming the option, when one is not a number."""
    if args.body:
        return None
    try:
        if args.caller.strip().lower() not in PRIVATE_SPELLINGS:
            args.caller = parse_number(args.caller)
    except PhoneNumberError as exc:
        return f"--from: {exc}"
    try:
        if args.to_type.lower() in ("number", "did"):
            args.to = parse_number(args.to)
    except PhoneNumberError as exc:
        return f"--to: {exc}"
    return None


def _body(args: argparse.Namespace) -> bytes:
    if args.body == "-":
        return sys.stdin.buffer.read()
    if args.body:
        with open(args.body, "rb") as f:
            return f.read()
    return json.dumps(_sample(args)).encode()


def _load(config: Config, *, dry_run: bool = False, broken: dict[str, Exception] | None = None) -> Plugins:
    return load_plugins(config.plugins, server_timeout_ms=config.server.plugin_timeout_ms, source=config.source,
                        default_region=config.server.default_region, dry_run=dry_run, broken=broken)


def _fail(exc: Exception | str) -> int:
    print(f"callgate: {exc}", file=sys.stderr)
    return EXIT_CONFIG


def cmd_serve(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure_logging(config.server.log_format, config.server.log_level)
    host = args.host or config.server.host
    port = config.server.port if args.port is None else args.port
    if not config.applications:
        structlog.get_logger("callgate").warning(
            "no_application_configured",
            message=f"every callback will be refused (401): set {ENV_KEY} and {ENV_SECRET}, or [[applications]]")
    if args.workers > 1:
        if port == 0:
            raise ConfigError("--workers needs a fixed port (workers share it), not port 0")
        _load(config)      # a broken config or plugin fails here, once, not in every worker
        return supervise(worker_command(args.config, host, port), args.workers)
    asyncio.run(serve(config, host, port, reuse_port=args.reuse_port))
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    set_default_region(config.server.default_region)
    problem = _read_numbers(args)
    if problem is not None:
        return _fail(problem)
    key, secret = _signing_credentials(config)
    url = args.url or f"http://{config.server.host}:{config.server.port}{config.server.callback_path}"
    body = _body(args)
    headers = signing.signed_headers(key, secret, urlsplit(url).path or "/", body)
    parts = ["curl", "-sS", "-X", "POST", url]
    for name, value in headers.items():
        parts += ["-H", f"{name}: {value}"]
    parts += ["--data-binary", body.decode("utf-8", "replace")]
    print(" ".join(shlex.quote(p) for p in parts))
    return 0


def _signing_credentials(config: Config) -> tuple[str, str]:
    if config.applications:
        app = config.applications[0]
        return app.key, app.secrets[0].get_secret_value()
    key, secret = os.environ.get(ENV_KEY), os.environ.get(ENV_SECRET)
    if not (key and secret):
        raise ConfigError(f"no application to sign for: set {ENV_KEY} and {ENV_SECRET}, or [[applications]] in config.toml")
    return key, secret


async def cmd_simulate(args: argparse.Namespace) -> int:
    """A dry run: the plugins' hooks and startup get ``dry_run=True`` and must change nothing that persists;
    plugins that do not accept it are named in a warning (stderr, and ``warnings`` in ``--json``)."""
    config = load_config(args.config)
    plugins = _load(config, dry_run=True)
    problem = _read_numbers(args)
    if problem is not None:
        return _fail(problem)
    event = decode_event(_body(args))
    warnings = []
    unsafe = plugins.not_dry_run_safe()
    if unsafe:
        warnings.append(f"not a dry run for {', '.join(unsafe)}: these do not accept dry_run, so callgate cannot "
                        f"promise that they changed nothing (their stores, files, outboxes)")
    for warning in warnings:
        print(f"callgate: warning: {warning}", file=sys.stderr)
    await plugins.startup()
    try:
        answer = await Pipeline(plugins, config.server).answer(event)
    finally:
        await plugins.shutdown()
    body = json.loads(answer.body)
    if args.json:
        print(json.dumps({"status": answer.status, "answer": body, "problem": answer.problem,
                          "decision": _decision_summary(answer), "plugins": answer.trace(),
                          "warnings": warnings}, indent=2))
        return 0
    print(f"{event.event.upper()} {event.callid}  ->  HTTP {answer.status}")
    if answer.decision is not None:
        d = answer.decision
        print(f"decision: {'allowed' if d.allowed else 'DENIED'} by {d.decided_by}: {d.reason}")
        if d.routed_by is not None:
            print(f"route:    {d.route_name or answer.action} (from {d.routed_by})")
    if answer.problem:
        print(f"problem:  {answer.problem}")
    print("plugins:")
    for entry in answer.trace() or [{"plugin": "-", "hook": "-", "verdict": "no plugin implements this event's hooks", "ms": 0}]:
        print(f"  {entry['plugin']:<16} {entry['hook']:<16} {entry['verdict']:<50} {entry['ms']:.3f} ms")
    print("answer:")
    print(json.dumps(body, indent=2))
    return 0


def _decision_summary(answer) -> dict | None:
    d = answer.decision
    if d is None:
        return None
    return {"allowed": d.allowed, "decided_by": d.decided_by, "reason": d.reason,
            "route": d.route_name, "routed_by": d.routed_by, "cli": d.cli,
            "max_duration": d.max_duration}


def cmd_plugins(args: argparse.Namespace) -> int:
    """List installed plugins from entry-point metadata; only enabled ones are imported (for their hooks)."""
    hooks: dict[str, list[str]] = {}
    enabled: tuple[str, ...] = ()
    source = args.config or "config.toml"
    try:
        config = load_config(args.config)
        enabled, source = config.plugins.enabled, config.source
        loaded = _load(config)
        hooks = {p.name: loaded.hooks_of(p.name) for p in loaded.loaded}
    except (ConfigError, PluginError) as exc:
        print(f"callgate: warning: {exc}", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    for name, ep in sorted(installed_plugins().items()):
        is_builtin = name in BUILTINS
        rows.append({
            "name": name,
            "distribution": ep.dist.name if ep.dist else None,
            "version": ep.dist.version if ep.dist else None,
            "enabled": is_builtin or name in enabled,
            "builtin": is_builtin,
            "order": (list(enabled).index(name) + 1) if name in enabled else None,
            "hooks": hooks.get(name),
            "entry_point": ep.value,
        })
    missing = [n for n in enabled if n not in {r["name"] for r in rows}]
    if args.json:
        print(json.dumps({"plugin_api": 1, "plugins": rows, "enabled_but_not_installed": missing}, indent=2))
    else:
        for r in rows:
            state = "built in" if r["builtin"] else (f"enabled #{r['order']}" if r["enabled"] else "installed, not enabled")
            hook_list = ", ".join(r["hooks"]) if r["hooks"] is not None else "(not imported)"
            print(f"{r['name']:<16} {r['distribution'] or '-'} {r['version'] or ''}  [{state}]  hooks: {hook_list}")
        for name in missing:
            print(f"{name:<16} NOT INSTALLED but enabled in {source}")
    return EXIT_CONFIG if missing else 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    build_verifier(config)
    plugins = _load(config)
    names = ", ".join(p.name for p in plugins.loaded)
    print(f"{config.source}: ok ({len(config.applications)} application(s); plugins in order: {names})")
    return 0
