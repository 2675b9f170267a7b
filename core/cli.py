"""The ``callgate`` command: serve, sign, simulate, plugins, check-config, and plugins' own subcommands."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import shlex
import sys
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import structlog

from . import __version__, samples, v2_samples
from .app import preflight
from .calls import ANSWERED_RESULTS, CALLEE_TYPES
from .config import ENV_KEY, ENV_SECRET, ENV_SERVICE_ID, ENV_SERVICE_SECRET, Config, ConfigError, load_config
from .endpoints import NO_COMMANDS, IgnoredEvent, decode_callback, decode_webhook
from .logs import configure_logging
from .loops import loop_factory
from .manager import BUILTINS, PluginError, Plugins, installed_plugins, load_plugins
from .phone import PRIVATE_SPELLINGS, PhoneNumberError, parse_number, set_default_region
from .pipeline import Pipeline
from .protocols.errors import EventError
from .protocols.signing_common import folded_id
from .protocols.signing_common import now_timestamp as signing_now
from .protocols.v1 import signing
from .protocols.v2.signing import service_signed_headers
from .responses import ACK
from .server import serve, supervise, worker_command

CORE_COMMANDS = ("serve", "sign", "simulate", "plugins", "check-config")
#: The events ``sign`` and ``simulate`` build: v1 callbacks, then v2 webhooks.
EVENT_CHOICES = (*sorted(samples.BUILDERS), *v2_samples.EVENTS)
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
    if command is None and {"-h", "--help"} & set(argv):
        _add_plugin_commands(known.config, subparsers)       # `callgate --help` lists the enabled plugins' too
    elif command is not None and command not in CORE_COMMANDS:
        # Maybe a plugin's command: only enabled plugins are imported, and only now.  A plugin that cannot be
        # configured (say, its secret is not in the environment) matters only if the command is its own.
        broken: dict[str, Exception] = {}
        try:
            config = load_config(known.config)
            plugins = _load(config, broken=broken)
            _register_commands(plugins, subparsers)
        except (ConfigError, PluginError) as exc:
            return _fail(exc)
        if command not in subparsers.choices and broken:
            return _fail(ConfigError(f"{command!r} is not a core command, and enabled plugins that may add it "
                                     f"could not be loaded:\n" + "\n".join(str(exc) for exc in broken.values())))
        disabled = sorted(set(installed_plugins()) - set(config.plugins.enabled) - set(BUILTINS))
        if command not in subparsers.choices and disabled:
            # A plugin's commands exist only while it is enabled: say so, rather than argparse's list of choices.
            return _fail(ConfigError(f"{command!r} is not a command of callgate or of an enabled plugin; installed but "
                                     f"not enabled in [plugins] enabled ({config.source}): {', '.join(disabled)}. "
                                     f"Enable the plugin that adds it, or see `callgate --help`"))
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


def _add_plugin_commands(config_path: str | None, subparsers: argparse._SubParsersAction) -> None:
    """The enabled plugins' commands, for the help: a config or a plugin that cannot be loaded adds none (the help
    of the core's commands is still printed; the command itself then says what is wrong)."""
    try:
        _register_commands(_load(load_config(config_path), broken={}), subparsers)
    except (ConfigError, PluginError):
        return


def _register_commands(plugins: Plugins, subparsers: argparse._SubParsersAction) -> None:
    """Each enabled plugin's ``register_commands``, in plugin order; PluginError naming the plugin that adds a command
    whose name is taken, and who took it first (callgate, or another plugin), where argparse would end in a
    traceback."""
    owners = dict.fromkeys(subparsers.choices, "callgate")
    for impl in plugins.impls("register_commands"):
        try:
            impl.function(subparsers) if impl.argnames else impl.function()
        except argparse.ArgumentError as exc:
            name = exc.message.rpartition(": ")[2]
            first = owners.get(name, "callgate")
            taken = "one of callgate's own" if first == "callgate" else f"plugin {first!r} added it first"
            raise PluginError(impl.plugin.name, f"register_commands added the command {name!r}, whose name is taken "
                                                f"({taken}): name your commands after your plugin") from None
        owners.update(dict.fromkeys(set(subparsers.choices) - set(owners), impl.plugin.name))


def _core_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(prog="callgate", description="A plugin-based callback server for Sinch Voice.")
    parser.add_argument("--version", action="version", version=f"callgate {__version__}")
    parser.add_argument("--config", metavar="PATH",
                        help="config.toml to use, before or after the command "
                             "(default: $CALLGATE_CONFIG, else ./config.toml, else the built-in defaults)")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the callback server")
    serve.add_argument("--host", help="address to listen on (default: [server] host)")
    serve.add_argument("--port", type=_port, help="port to listen on, 0-65535 (default: [server] port)")
    serve.add_argument("--workers", type=_positive, default=1, metavar="N",
                       help="run N worker processes on one port (state is shared through the plugins' stores)")
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)   # set on workers
    serve.set_defaults(handler=cmd_serve)

    sign = sub.add_parser("sign",
                          help="print a correctly signed curl command for a v1 callback or a v2 webhook, for "
                               "manual testing")
    sign.add_argument("event", choices=EVENT_CHOICES,
                      help="which event to send: v1 (ice, ...) signed by the application, v2 (call.incoming, ...) by "
                           "the service")
    sign.add_argument("--url", default=None, help="URL (default: http://[server] host:port/callback_path for v1, "
                                                  "/webhook_path for v2)")
    sign.add_argument("--body", metavar="FILE", help="send this file's bytes as the body ('-' for stdin) instead of a sample")
    _event_options(sign)
    sign.set_defaults(handler=cmd_sign)

    simulate = sub.add_parser("simulate",
                              help="run the real decision pipeline on an event, without network, and explain it")
    simulate.add_argument("event", choices=EVENT_CHOICES)
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


def _port(text: str) -> int:
    """``--port``: a TCP port number, 0 (any free port) to 65535."""
    port = _integer(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give 0 to 65535")
    return port


def _positive(text: str) -> int:
    """``--workers``: 1 or more."""
    count = _integer(text)
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give 1 or more")
    return count


#: The longest call a sample may say it lasted (a day; Sinch's ``maxDuration`` is at most 4 hours).
MAX_SAMPLE_DURATION = 86400


def _duration_seconds(text: str) -> int:
    """``--duration``: 0 to :data:`MAX_SAMPLE_DURATION` seconds."""
    seconds = _integer(text)
    if not 0 <= seconds <= MAX_SAMPLE_DURATION:
        raise argparse.ArgumentTypeError(f"{text!r}: give 0 to {MAX_SAMPLE_DURATION} seconds")
    return seconds


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _event_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="caller", default=None,
                        help="caller number (ICE cli / DICE from; v2 call.from), written as in config.toml, or "
                             "private; v2: or a sip: URI")
    parser.add_argument("--to", default=None,
                        help="callee (ICE/DICE to.endpoint; v2 call.to): a number when --to-type is number or did, "
                             "else as it is; v2: a number or a sip: URI")
    parser.add_argument("--to-type", default="number", type=str.lower, choices=sorted(CALLEE_TYPES),
                        help="ICE to.type: number, did, username, sip, conference")
    parser.add_argument("--callid", default=None, help="callid (v1) / call.callId (v2)")
    parser.add_argument("--session", default=None, help="v2 call.sessionId (the legs of one call share it)")
    parser.add_argument("--menu", default="main", help="PIE menuId / v2 menu.menuName")
    parser.add_argument("--type", default=None, help="PIE menuResult.type / Notify type")
    parser.add_argument("--value", default="1", help="PIE menuResult.value")
    parser.add_argument("--input", default="1#", help="v2 call.menu menu.input (with its terminating #)")
    parser.add_argument("--duration", type=_duration_seconds, default=None,
                        help=f"DICE duration / v2 callDurationSeconds, 0 to {MAX_SAMPLE_DURATION} seconds (default: 60 "
                             f"for an answered call, 0 for one that was not: busy, no answer, failed)")
    parser.add_argument("--result", default=None,
                        help="DICE result (default ANSWERED) / v2 callResult of an end event (default: the event's)")
    parser.add_argument("--reason", default=None, help="DICE reason / v2 callReason of an end event")


def _is_v2(args: argparse.Namespace) -> bool:
    return args.event.startswith("call.")


def _sample(args: argparse.Namespace, signer: str) -> dict:
    """The sample body of ``args.event``, naming ``signer`` as Sinch does: a v1 callback's ``applicationKey`` (the
    application that signs it), a v2 webhook's service id."""
    if _is_v2(args):
        return _v2_sample(args, signer)
    caller = "+46701234567" if args.caller is None else args.caller
    to = "+46850001234" if args.to is None else args.to
    kind = args.event
    if kind == "ice":
        return samples.ice(caller, to, to_type=args.to_type, callid=args.callid, applicationKey=signer)
    if kind == "pie":
        return samples.pie(args.callid, menu=args.menu, type=args.type or "sequence", value=args.value,
                           applicationKey=signer)
    if kind == "dice":
        result = args.result or "ANSWERED"
        duration = _duration(args, result)
        return samples.dice(args.callid, caller=caller, to=to, duration=duration, result=result,
                            reason=args.reason or "CALLERHANGUP", debit=0.0083 if duration else 0.0,
                            applicationKey=signer)
    if kind == "notify":
        return samples.notify(args.callid, type=args.type or "recording_available")     # names no application
    return samples.ace(args.callid, applicationKey=signer)


def _duration(args: argparse.Namespace, result: str) -> int:
    """``--duration``, else what a call that ended with ``result`` lasted in a sample: 60 s when it was answered,
    0 when it was not (busy, no answer, failed)."""
    if args.duration is not None:
        return int(args.duration)
    return 60 if result.upper() in ANSWERED_RESULTS else 0


def _v2_sample(args: argparse.Namespace, service_id: str) -> dict:
    """The v2 webhook body of ``args.event``, from the service ``service_id`` (the one that signs it)."""
    kind, caller, to = args.event, args.caller, args.to
    common = {"callid": args.callid, "session": args.session, "service_id": service_id}
    if kind == "call.incoming":
        private = caller is not None and caller.strip().lower() in PRIVATE_SPELLINGS
        return v2_samples.incoming(None if private else (caller or "+46701234567"), to or "+46850001234", **common)
    numbers = {"caller": caller, "to": to}
    numbers = {k: v for k, v in numbers.items() if v is not None}
    if kind == "call.answered":
        return v2_samples.answered(**common, **numbers)
    if kind == "call.menu":
        return v2_samples.menu(**common, **numbers, menu=args.menu, input=args.input)
    if kind in v2_samples.NOTICE_EVENTS:
        return v2_samples.notice(kind, **common, **numbers)
    result = args.result or v2_samples.END_EVENTS.get(kind, ("COMPLETED", "OK"))[0]
    return v2_samples.ended(kind, **common, **numbers, duration=_duration(args, result), result=result,
                            reason=args.reason)


def _read_numbers(args: argparse.Namespace) -> str | None:
    """``--from``/``--to`` as people write them, made E.164 in place (with ``[server] default_region``);
    the problem, naming the option, when one is not a number."""
    if args.body:
        return None
    try:
        if args.caller is not None and args.caller.strip().lower() not in PRIVATE_SPELLINGS \
                and not _is_sip(args.caller):
            args.caller = parse_number(args.caller)
    except PhoneNumberError as exc:
        return f"--from: {exc}"
    try:
        if args.to is not None and args.to_type.lower() in ("number", "did") and not (_is_v2(args) and _is_sip(args.to)):
            args.to = parse_number(args.to)
    except PhoneNumberError as exc:
        return f"--to: {exc}"
    return None


def _is_sip(value: str) -> bool:
    return value.strip().lower().startswith(("sip:", "sips:"))


def _body(args: argparse.Namespace, signer: str) -> bytes:
    """The body to send or simulate: ``--body``'s bytes, else the sample naming ``signer`` (:func:`_sample`)."""
    if args.body == "-":
        body = sys.stdin.buffer.read()
    elif args.body:
        try:
            with open(args.body, "rb") as f:
                body = f.read()
        except OSError as exc:
            raise ConfigError(f"--body {args.body}: cannot be read: {exc.strerror}") from None
    else:
        return json.dumps(_sample(args, signer)).encode()
    _note_other_event(args, body)
    return body


def _note_other_event(args: argparse.Namespace, body: bytes) -> None:
    """A note on stderr when a ``--body`` names another event than the command's EVENT: the body is what is sent
    (or simulated), and EVENT only says which generation's path and signature it gets."""
    try:
        named = json.loads(body).get("event")
    except (ValueError, AttributeError):        # not JSON, or not an object: the server's refusal will say so
        return
    if isinstance(named, str) and named.strip().lower() != args.event:
        print(f"callgate: note: --body names the event {named[:64]!r}, not {args.event}: the body is used as it is, "
              f"as a {'v2 webhook' if _is_v2(args) else 'v1 callback'}", file=sys.stderr)


def _load(config: Config, *, dry_run: bool = False, broken: dict[str, Exception] | None = None) -> Plugins:
    return load_plugins(config.plugins, server_timeout_ms=config.server.plugin_timeout_ms, source=config.source,
                        default_region=config.server.default_region, dry_run=dry_run, broken=broken)


def _fail(exc: Exception | str) -> int:
    print(f"callgate: {exc}", file=sys.stderr)
    return EXIT_CONFIG


def cmd_serve(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure_logging(config.server.log_format, config.server.log_level)
    new_loop = loop_factory(config.server.event_loop)     # uvloop asked for and not installed: fails here, once
    host = args.host or config.server.host
    port = config.server.port if args.port is None else args.port
    if not config.applications and not config.services:
        structlog.get_logger("callgate").warning(
            "no_application_configured",
            message=f"every callback and webhook will be refused (401): set {ENV_KEY} and {ENV_SECRET}, or "
                    f"[[applications]] (v1), or {ENV_SERVICE_ID} and {ENV_SERVICE_SECRET}, or [[services]] (v2)")
    if args.workers > 1:
        if port == 0:
            raise ConfigError("--workers needs a fixed port (workers share it), not port 0")
        preflight(config)      # a broken config or plugin fails here, once, not in every worker
        return supervise(worker_command(args.config, host, port), args.workers)
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(serve(config, host, port, reuse_port=args.reuse_port))
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    set_default_region(config.server.default_region)
    problem = _read_numbers(args)
    if problem is not None:
        return _fail(problem)
    # Signed as Sinch signs it: the path of --url, else the path Sinch is told ([server] public_path or
    # public_webhook_path, behind a proxy that rewrites it), sent to the server's own path, as that proxy would.
    server = config.server
    if _is_v2(args):
        service_id, secret = _service_credentials(config)
        url = args.url or f"http://{server.host}:{server.port}{server.webhook_path}"
        signed = (urlsplit(args.url).path or "/") if args.url else server.signed_webhook_path
        body = _body(args, service_id)
        if args.body:
            service_id, secret = _body_signer(config, body, service_id, secret, v2=True)
        headers = {**service_signed_headers(service_id, secret, signed, body), **_cloudevent_headers(service_id)}
    else:
        key, secret = _signing_credentials(config)
        url = args.url or f"http://{server.host}:{server.port}{server.callback_path}"
        signed = (urlsplit(args.url).path or "/") if args.url else server.signed_path
        body = _body(args, key)
        if args.body:
            key, secret = _body_signer(config, body, key, secret, v2=False)
        headers = signing.signed_headers(key, secret, signed, body)
    data = _curl_data(body, args.body)
    if data is None:
        return _fail("the body from stdin is not UTF-8 text without NUL bytes, which a command line cannot carry: "
                     "give it as a file (--body FILE), and curl will send that file's bytes")
    parts = ["curl", "-sS", "-X", "POST", url]
    for name, value in headers.items():
        parts += ["-H", f"{name}: {value}"]
    parts += ["--data-binary", data]
    print(" ".join(shlex.quote(p) for p in parts))
    return 0


def _curl_data(body: bytes, source: str | None) -> str | None:
    """curl's ``--data-binary`` argument that sends exactly ``body``: the text itself when a command line can carry
    it (UTF-8, no NUL), else ``@file`` for a body read from a file; None for such a body read from stdin."""
    if b"\0" not in body:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if source and source != "-":
        return "@" + os.path.abspath(source)
    return None


def _signing_credentials(config: Config) -> tuple[str, str]:
    if config.applications:
        app = config.applications[0]
        return app.key, app.secrets[0].get_secret_value()
    key, secret = os.environ.get(ENV_KEY), os.environ.get(ENV_SECRET)
    if not (key and secret):
        raise ConfigError(f"no application to sign for: set {ENV_KEY} and {ENV_SECRET}, or [[applications]] in config.toml")
    return key, secret


def _body_signer(config: Config, body: bytes, key: str, secret: str, *, v2: bool) -> tuple[str, str]:
    """The application (v1 ``applicationKey``) or service (v2 ``call.serviceId``) a ``--body`` names, and its first
    secret, as Sinch signs with that one's secret, when it is one of ``[[applications]]`` / ``[[services]]``; else
    ``key`` and ``secret`` (the first one's), with a note on stderr when the body names one that is not configured."""
    field = "call.serviceId" if v2 else "applicationKey"
    try:
        top = json.loads(body)
        named = top.get("call", {}).get("serviceId") if v2 else top.get("applicationKey")
    except (ValueError, AttributeError):         # not JSON, or not an object: it names none
        return key, secret
    if not isinstance(named, str) or folded_id(named) == folded_id(key):
        return key, secret
    # Matched as the server matches the body's id to the signer's (signer_mismatch): in any case, spaces ignored.
    signers = {folded_id(s.id): (s.id, s.secrets) for s in config.services} if v2 else \
        {folded_id(a.key): (a.key, a.secrets) for a in config.applications}
    found = signers.get(folded_id(named))
    if found is not None:
        return found[0], found[1][0].get_secret_value()
    print(f"callgate: note: the body names {field} {named!r}, which is not configured: signed by {key!r}, the first "
          f"configured {'service' if v2 else 'application'}", file=sys.stderr)
    return key, secret


def _service_credentials(config: Config) -> tuple[str, str]:
    """The first configured v2 service (``[[services]]``, else the environment) and its first secret."""
    if config.services:
        service = config.services[0]
        return service.id, service.secrets[0].get_secret_value()
    raise ConfigError(f"no Voice v2 service to sign for: set {ENV_SERVICE_ID} and {ENV_SERVICE_SECRET}, or "
                      f"[[services]] in config.toml")


def _cloudevent_headers(service_id: str) -> dict[str, str]:
    """The CloudEvents headers Sinch sends beside the signature (not signed; callgate logs ``ce-id``)."""
    return {"ce-id": str(uuid.uuid4()), "ce-specversion": "1.0",
            "ce-source": f"projects/{v2_samples.PROJECT_ID}/services/{service_id}", "ce-time": signing_now()}


async def cmd_simulate(args: argparse.Namespace) -> int:
    """A dry run: the plugins' hooks and startup get ``dry_run=True`` and must change nothing that persists;
    plugins that do not accept it are named in a warning (stderr, and ``warnings`` in ``--json``)."""
    config = load_config(args.config)
    plugins = _load(config, dry_run=True)
    problem = _read_numbers(args)
    if problem is not None:
        return _fail(problem)
    if _is_v2(args):
        decode, signer = decode_webhook, config.services[0].id if config.services else v2_samples.SERVICE_ID
    else:
        decode, signer = decode_callback, config.applications[0].key if config.applications else samples.APPLICATION_KEY
    try:
        event = decode(_body(args, signer), None)
    except IgnoredEvent as exc:
        ignored = (NO_COMMANDS if _is_v2(args) else ACK).decode()
        print(f"{exc.event}: not a call event plugins decide on; the server answers HTTP 200 {ignored}")
        return 0
    except EventError as exc:
        what = f"--body {args.body}" if args.body else "the event these options make"
        return _fail(f"{what}: the server would refuse it (400 {exc.code}): {exc}")
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
    broken: dict[str, Exception] = {}
    try:
        config = load_config(args.config)
        enabled, source = config.plugins.enabled, config.source
        loaded = _load(config, broken=broken)         # one plugin that cannot be built does not hide the others' hooks
        hooks = {p.name: loaded.hooks_of(p.name) for p in loaded.loaded}
    except (ConfigError, PluginError) as exc:
        print(f"callgate: warning: {exc}", file=sys.stderr)
    for problem in broken.values():
        print(f"callgate: warning: {problem}", file=sys.stderr)
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
        width = max([16, *(len(name) for name in [*(r["name"] for r in rows), *missing])])
        for r in rows:
            state = "built in" if r["builtin"] else (f"enabled #{r['order']}" if r["enabled"] else "installed, not enabled")
            hook_list = ", ".join(r["hooks"]) if r["hooks"] is not None else "(not imported)"
            print(f"{r['name']:<{width}} {r['distribution'] or '-'} {r['version'] or ''}  [{state}]  hooks: {hook_list}")
        for name in missing:
            print(f"{name:<{width}} NOT INSTALLED but enabled in {source}")
    return EXIT_CONFIG if missing else 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    plugins = preflight(config)
    _register_commands(plugins, _core_parser()[1])      # their commands' names, as any command would find them
    names = ", ".join(p.name for p in plugins.loaded)
    print(f"{config.source}: ok ({len(config.applications)} application(s), {len(config.services)} service(s); "
          f"plugins in order: {names})")
    return 0
