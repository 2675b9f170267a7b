"""The callgate benchmark: callgate against reference servers, driven by wrk, on v1 and v2.

Run it from the repository root (nothing is installed but uvloop and the Express reference's
node_modules, when those references are asked for; wrk and taskset must be there)::

    .venv/bin/python bench/run.py [--rounds 3] [--duration 10] [--config router|router-console|full|all]
                                  [--generation v1|v2|both] [--reference plain,uvloop,express|all]
                                  [--workers 1,2] [--event-loop asyncio,uvloop] [--requests 2000] [--warmup 2] [--retries 2]
                                  [--console-flush-ms N]
                                  [--profile] [--keep]

What it does, per configuration and API generation:

1. writes a config.toml in a temporary directory (``router``: the built-in router only;
   ``router-console``: the same with the console plugin recording every callback (SQLite), run side by
   side with a router-only callgate, ``router-only``, to measure what the console costs;
   ``full``: allowlist, credit_check and crm_export on SQLite, with a local CRM receiver);
2. starts the references (``plain``: ``bench/reference_server.py``, the same signature check,
   ``json.loads`` and a fixed answer on bare aiohttp; ``uvloop``: the same on uvloop with orjson;
   ``express``: ``bench/express/server.js``, Express 5 doing the same in Node) and ``callgate serve``
   once per ``--workers`` count (and ``--event-loop`` setting), every process pinned to CPU 0 with ``taskset -c 0``; callgate logs
   JSON lines at level info to a file;
3. checks that each answers one signed call (v1: ICE/ACE/PIE/DICE to /sinch/callback; v2:
   call.incoming/answered/menu/hangup, ``service``-signed, to /sinch/webhook) with 200, and in the
   router-only configuration with the same bytes, then warms them up;
4. for every round, runs ``wrk -t1 -c64 -d{duration}s --latency`` pinned to CPU 1 against each
   server (the order alternates each round), with requests signed right before the run (callgate
   refuses an x-timestamp older than its window, 600 s): ``--requests`` distinct requests, 70 %
   incoming calls, 10 % each answered, menu and end events, rotated by ``bench/requests.lua``.
   A run during which other processes took more than 5 % of CPU 0 is repeated (``--retries``);
5. prints, per server, the median over rounds of requests/s, p50 and p99 latency, the worst p99,
   the non-2xx responses and socket errors summed over rounds, the peak RSS (``VmHWM`` of the
   biggest process), the ratios callgate/reference for every callgate and reference, what each
   callgate's log says (every callback answered as configured: status 200, no plugin error or
   timeout, no denial, every incoming call routed by the benchmark's route), and PASS/FAIL against
   issue 17's targets: requests/s ratio to the plain reference >= 0.7 (router) / 0.63 (router-console) /
   0.35 (full), the full stack at least as fast as the Express reference (when it runs), the console
   >= 0.9 x router-only (router-console), worst p99 < 20 ms (router) / 50 ms (full), no non-2xx
   response and no socket error, peak RSS < 120 MB per process.

Everything it starts listens on 127.0.0.1 only and is stopped at the end, on Ctrl-C and on
errors.  Exit status: 0 every target met, 1 a target missed, 2 the benchmark could not run.
See bench/README.md for what the figures mean.
"""

from __future__ import annotations

import argparse
import base64
import collections
import ctypes
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import profiling  # bench/profiling.py

from callgate import samples, v2_samples
from callgate.protocols.v1.signing import signed_headers
from callgate.protocols.v2.signing import service_signed_headers

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV_BIN = Path(sys.executable).parent
LUA_SCRIPT = BENCH / "requests.lua"
HOST = "127.0.0.1"
CALLBACK_PATH = "/sinch/callback"
WEBHOOK_PATH = "/sinch/webhook"
SERVER_CPU, CLIENT_CPU = "0", "1"
CONNECTIONS = 64
WINDOW_SECONDS = 600          # callgate's default [signing] window_seconds, used by both servers
#: The event mix: groups of ten requests, the ICEs of seven new calls then the ACE, PIE and DICE of the first.
ICES_PER_GROUP = 7
CALLEE = "+46850001234"
CALLERS = tuple(f"4670123450{i}" for i in range(5))     # as Sinch sends v1's cli: without "+"
V2_CALLERS = tuple("+" + c for c in CALLERS)             # v2 endpoints are E.164
EXPRESS_DIR = BENCH / "express"
REFERENCES = ("plain", "uvloop", "express")
#: Issue 17's targets: requests/s as a share of the plain reference's, p99 at 64 connections (worst round), and the
#: full stack at least as fast as the Express reference with no plugins (checked when Express runs).
RATIO_TARGETS = {"router": 0.7, "router-console": 0.63, "full": 0.35}
P99_LIMITS_MS = {"router": 20.0, "router-console": 20.0, "full": 50.0}
EXPRESS_TARGETS = {"full": 1.0}
#: router-console: the console may cost at most 10 % of router-only's requests/s, measured side by side.
CONSOLE_COST_TARGET = 0.9
RSS_LIMIT_MB = 120.0
OTHERS_WARNING = 0.05         # warn when other processes took more than 5 % of the server's CPU
FULL_PLUGINS = ("allowlist", "credit_check", "crm_export")     # entry-point names = folders in plugins/
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


class Skip(Exception):
    """A configuration cannot run here (a plugin is missing, say); the message says why."""


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


# ------------------------------------------------------------------------------------ tools

def missing_tools() -> list[str]:
    """What is missing to run the benchmark, each with how to get it."""
    hints = {"wrk": "wrk: apt-get install -y wrk (Debian/Ubuntu package 'wrk')",
             "taskset": "taskset: part of util-linux (apt-get install -y util-linux)"}
    problems = [hint for tool, hint in hints.items() if shutil.which(tool) is None]
    if not {int(SERVER_CPU), int(CLIENT_CPU)} <= os.sched_getaffinity(0):
        problems.append(f"CPUs {SERVER_CPU} and {CLIENT_CPU}: the servers are pinned to one, wrk to the other")
    return problems


# ------------------------------------------------------------------------------------ processes

def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the benchmark dies (even by SIGKILL)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except OSError:
        pass


class Processes:
    """Everything the benchmark starts; ``stop_all`` ends them (SIGTERM, then SIGKILL)."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen] = []

    def start(self, name: str, command: list[str], cpu: str, log: Path, env: dict[str, str]) -> subprocess.Popen:
        with open(log, "wb") as out:
            proc = subprocess.Popen(["taskset", "-c", cpu, *command], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        proc.bench_name = name            # type: ignore[attr-defined]
        proc.bench_log = log              # type: ignore[attr-defined]
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.running)):
            self.stop(proc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_listening(proc: subprocess.Popen, port: int, timeout: float = START_TIMEOUT_S) -> None:
    """Until ``port`` accepts connections; BenchError if the process exits or it takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{proc.bench_name} exited with status {proc.returncode} before listening:\n"
                             f"{tail(proc.bench_log)}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"{proc.bench_name} did not listen on {HOST}:{port} within {timeout:.0f} s:\n{tail(proc.bench_log)}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def memory_kb(pid: int) -> dict[str, int]:
    """VmHWM (peak resident set) and VmRSS of a process, in kB, from /proc/PID/status."""
    found = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                found[name] = int(value.split()[0])
    except OSError:
        pass
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_times(cpu: str) -> float:
    """Seconds CPU ``cpu`` spent running processes (user, nice, system) or stolen by the hypervisor."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            user, nice, system, _idle, _iowait, _irq, _softirq, steal = map(int, line.split()[1:9])
            return (user + nice + system + steal) / os.sysconf("SC_CLK_TCK")
    return 0.0


def wait_idle(pids: list[int], timeout: float = 30.0, busy_share: float = 0.05) -> None:
    """Until CPU 0 is nearly idle for half a second: the servers' background work (crm_export's deliveries,
    say) is done and, as far as can be waited for, other processes' too.  At most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ours, cpu = sum(map(cpu_seconds, pids)), cpu_times(SERVER_CPU)
        time.sleep(0.5)
        if sum(map(cpu_seconds, pids)) - ours < 0.5 * busy_share and cpu_times(SERVER_CPU) - cpu < 0.5 * busy_share:
            return


# ------------------------------------------------------------------------------------ requests

def call_group(caller: str) -> list[dict]:
    """Ten callbacks: the ICEs of seven new calls from ``caller``, then the ACE, PIE and DICE of the first."""
    calls = [samples.new_callid() for _ in range(ICES_PER_GROUP)]
    first = calls[0]
    return [*(samples.ice(caller=caller, to=CALLEE, callid=c) for c in calls),
            samples.ace(callid=first), samples.pie(callid=first),
            samples.dice(callid=first, caller=caller, to=CALLEE)]


def v2_call_group(caller: str) -> list[dict]:
    """v2's ten webhooks: the ``call.incoming`` of seven new calls from ``caller``, then the ``call.answered``,
    ``call.menu`` and ``call.hangup`` of the first (the mix and rotation of :func:`call_group`)."""
    calls = [v2_samples.new_call_id() for _ in range(ICES_PER_GROUP)]
    first = calls[0]
    return [*(v2_samples.incoming(caller=caller, to=CALLEE, callid=c) for c in calls),
            v2_samples.answered(callid=first), v2_samples.menu(callid=first, caller=caller, to=CALLEE),
            v2_samples.hangup(callid=first, caller=caller, to=CALLEE)]


@dataclass(frozen=True)
class Generation:
    """What differs between the v1 and the v2 load: the path, the bodies, the signature."""

    name: str
    path: str
    #: Ten bodies for one caller: seven incoming calls, then the first call's answered, menu and end events.
    group: Callable[[str], list[dict]]
    callers: tuple[str, ...]
    #: The load's event names, in the order of a group's first call (for the report).
    events: str


GENERATIONS = {
    "v1": Generation("v1", CALLBACK_PATH, call_group, CALLERS, "ICE/ACE/PIE/DICE"),
    "v2": Generation("v2", WEBHOOK_PATH, v2_call_group, V2_CALLERS,
                     "call.incoming/answered/menu/hangup"),
}


def event_bodies(gen: Generation, count: int) -> list[bytes]:
    """``count`` bodies (70 % incoming, 10 % each answered, menu, end), the caller rotating over the callers."""
    bodies: list[dict] = []
    while len(bodies) < count:
        bodies += gen.group(gen.callers[len(bodies) // 10 % len(gen.callers)])
    return [json.dumps(b, separators=(",", ":")).encode() for b in bodies[:count]]


@dataclass(frozen=True)
class Signer:
    """The benchmark's Sinch credentials: a v1 application and a v2 service (Base64 secrets)."""

    key: str
    secret: str
    service_id: str
    service_secret: str

    def headers(self, gen: Generation, body: bytes) -> dict[str, str]:
        """Content-Type, x-timestamp (now) and Authorization for ``body`` on ``gen``'s path."""
        if gen.name == "v1":
            return signed_headers(self.key, self.secret, gen.path, body)
        return service_signed_headers(self.service_id, self.service_secret, gen.path, body)


def signed_requests(signer: Signer, gen: Generation, count: int) -> list[tuple[bytes, dict[str, str]]]:
    """Bodies and their headers, signed now (x-timestamp = now)."""
    return [(body, signer.headers(gen, body)) for body in event_bodies(gen, count)]


def lua_string(text: str | bytes) -> str:
    """A Lua string literal for any bytes (printable ASCII as is, the rest as decimal escapes)."""
    data = text.encode() if isinstance(text, str) else text
    return '"' + "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:03d}" for b in data) + '"'


def write_lua_requests(path: Path, requests: list[tuple[bytes, dict[str, str]]]) -> None:
    """The data file bench/requests.lua loads: ``return { {body = ..., headers = {...}}, ... }``."""
    lines = ["return {"]
    for body, headers in requests:
        pairs = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items())
        lines.append(f"  {{body = {lua_string(body)}, headers = {{{pairs}}}}},")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")


def post(port: int, path: str, body: bytes, headers: dict[str, str], timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def smoke_check(server: Server, signer: Signer, gen: Generation) -> list[bytes]:
    """One signed call (incoming, answered, menu, end); BenchError unless every answer is 200.  Returns the
    answers."""
    group = event_bodies(gen, 10)
    answers = []
    for body in [group[0], *group[7:]]:
        status, answer = post(server.port, gen.path, body, signer.headers(gen, body))
        if status != 200:
            event = json.loads(body)["event"]
            raise BenchError(f"{server.name} answered {event} with {status}: {answer[:300]!r}\n"
                             f"{tail(server.proc.bench_log)}")
        answers.append(answer)
    return answers


# ------------------------------------------------------------------------------------ wrk

@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    #: Share of the server's CPU used by processes other than ours (or stolen) during the run.
    other_cpu: float = 0.0


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_wrk(output: str) -> WrkResult:
    """The figures of wrk's ``--latency`` report; BenchError if one is missing."""
    def find(pattern: str) -> re.Match:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise BenchError(f"wrk's output has no {pattern!r}:\n{output}")
        return match

    p50 = find(r"^\s+50%\s+([\d.]+)(us|ms|s|m|h)\s*$")
    p99 = find(r"^\s+99%\s+([\d.]+)(us|ms|s|m|h)\s*$")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkResult(
        rps=float(find(r"^Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=_ms(*p50.groups()),
        p99_ms=_ms(*p99.groups()),
        requests=int(find(r"^\s+(\d+) requests in").group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(map(int, sockets.groups())) if sockets else 0,
    )


def wrk_command(port: int, path: str, duration: int, connections: int = CONNECTIONS) -> list[str]:
    """wrk on the client's CPU, rotating through the requests file named by CALLGATE_BENCH_REQUESTS."""
    return ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
            "-s", str(LUA_SCRIPT), f"http://{HOST}:{port}{path}"]


def run_wrk(port: int, path: str, duration: int, requests_file: Path, log: Path) -> WrkResult:
    command = wrk_command(port, path, duration)
    env = {**os.environ, "CALLGATE_BENCH_REQUESTS": str(requests_file)}
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=duration + 60, check=False)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {duration + 60} s") from None
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise BenchError(f"wrk failed (status {done.returncode}):\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


# ------------------------------------------------------------------------------------ servers

def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (callgate's workers under the supervisor), from /proc/PID/task/*/children."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(c) for c in children.read_text().split()]
            except (OSError, ValueError):
                pass
    return found


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen
    #: "reference", "callgate", or "baseline" (a callgate without the plugin under measurement, side by side).
    role: str
    workers: int = 1
    runs: list[WrkResult] = field(default_factory=list)
    #: The largest VmHWM seen of any one process of the server (a worker's, with --workers), in kB.
    peak_kb: int = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pids(self) -> list[int]:
        """The server's processes: the one process, or the supervisor and its workers."""
        return process_tree(self.pid)

    def note_memory(self) -> None:
        """Keep the peak resident set of the server's biggest process (read while they run)."""
        for pid in self.pids():
            self.peak_kb = max(self.peak_kb, memory_kb(pid).get("VmHWM", 0))

    def peak_rss_mb(self) -> float:
        self.note_memory()
        return self.peak_kb / 1024


def all_pids(servers: list[Server]) -> list[int]:
    return [pid for server in servers for pid in server.pids()]


@dataclass
class Context:
    """What every configuration shares: the options, the temp dir, the processes, the Sinch credentials."""

    args: argparse.Namespace
    tmp: Path
    procs: Processes
    signer: Signer
    #: More environment for every process started (e.g. a secret the full-stack config reads).
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        s = self.signer
        return {**os.environ, "SINCH_APPLICATION_KEY": s.key, "SINCH_APPLICATION_SECRET": s.secret,
                "SINCH_SERVICE_ID": s.service_id, "SINCH_SERVICE_SECRET": s.service_secret, **self.extra_env}

    def callgate(self, *args: str, timeout: float = 60) -> str:
        """Run a ``callgate`` command to completion; BenchError with its output if it fails."""
        command = [str(VENV_BIN / "callgate"), *args]
        try:
            done = subprocess.run(command, env=self.env(), capture_output=True, text=True, timeout=timeout,
                                  cwd=self.tmp, check=False)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{' '.join(args[:3])} did not finish within {timeout:.0f} s") from None
        if done.returncode != 0:
            raise BenchError(f"callgate {' '.join(args)} failed (status {done.returncode}):\n"
                             f"{(done.stderr or done.stdout).strip()}")
        return done.stdout

    def close(self, keep: bool) -> None:
        """Stop every process started, then remove the temp dir, or say where it is kept (``--keep``)."""
        self.procs.stop_all()
        if keep:
            print(f"\nkept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def new_context(args: argparse.Namespace, prefix: str) -> Context:
    """A Context in a new temp dir (``prefix``...), with fresh random Sinch secrets for this run.  ``args``: the
    calling script's options; each of bench/run.py's options it lacks has run.py's default (the setups and
    ``start_callgate`` read them from the context, e.g. ``one_sqlite_file``, ``turns``)."""
    def secret() -> str:
        return base64.b64encode(os.urandom(32)).decode()
    options = parse_args([])
    options.__dict__.update(vars(args))
    return Context(options, Path(tempfile.mkdtemp(prefix=prefix)), Processes(),
                   Signer(samples.APPLICATION_KEY, secret(), v2_samples.SERVICE_ID, secret()))


def reference_command(kind: str, port: int, answers: Path) -> tuple[list[str], dict[str, str]]:
    """The command of reference ``kind`` (plain, uvloop, express) and its extra environment."""
    if kind == "express":
        env = {"PORT": str(port), "HOST": HOST, "ANSWERS_FILE": str(answers), "CALLBACK_PATH": CALLBACK_PATH,
               "WEBHOOK_PATH": WEBHOOK_PATH, "WINDOW_SECONDS": str(WINDOW_SECONDS), "NODE_ENV": "production"}
        return ["node", str(EXPRESS_DIR / "server.js")], env
    command = [sys.executable, str(BENCH / "reference_server.py"), "--port", str(port), "--path", CALLBACK_PATH,
               "--webhook-path", WEBHOOK_PATH, "--window", str(WINDOW_SECONDS)]
    return command + (["--uvloop"] if kind == "uvloop" else []), {}


def prepare_references(kinds: list[str]) -> list[str]:
    """Install what the chosen references need and is missing (uvloop into this venv, Express with npm);
    BenchError when that is not possible.  Returns what was done."""
    done = []
    if "uvloop" in kinds:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "uvloop"]
            if subprocess.run(pip, check=False).returncode != 0:
                raise BenchError("the uvloop reference needs uvloop: pip install uvloop failed") from None
            done.append("installed uvloop")
    if "express" in kinds:
        if shutil.which("node") is None or shutil.which("npm") is None:
            raise BenchError("the Express reference needs Node.js and npm (apt-get install -y nodejs npm)")
        if not (EXPRESS_DIR / "node_modules" / "express").is_dir():
            npm = ["npm", "install", "--no-audit", "--no-fund", "--omit=dev"]
            result = subprocess.run(npm, cwd=EXPRESS_DIR, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise BenchError(f"npm install in {EXPRESS_DIR} failed:\n{result.stdout}{result.stderr}")
            done.append(f"ran npm install in {EXPRESS_DIR.relative_to(REPO)}")
    return done


def callgate_command(config: Path, port: int, workers: int) -> list[str]:
    command = [str(VENV_BIN / "callgate"), "serve", "--config", str(config), "--host", HOST, "--port", str(port)]
    return command + (["--workers", str(workers)] if workers > 1 else [])


def start_reference(ctx: Context, kind: str) -> Server:
    port = free_port()
    answers = ctx.tmp / "answers.json"
    if not answers.exists():
        subprocess.run([sys.executable, str(BENCH / "reference_server.py"), "--answers", str(answers)], check=True)
    command, env = reference_command(kind, port, answers)
    proc = ctx.procs.start(kind, command, SERVER_CPU, ctx.tmp / f"reference-{kind}.log", {**ctx.env(), **env})
    wait_listening(proc, port)
    return Server(kind, port, proc, "reference")


def with_event_loop(config: Path, event_loop: str) -> Path:
    """A copy of ``config`` with ``[server] event_loop`` set."""
    text = config.read_text()
    if "[server]\n" not in text:
        raise BenchError(f"{config}: no [server] table to set event_loop in")
    copy = config.with_name(f"{config.stem}-{event_loop}{config.suffix}")
    copy.write_text(text.replace("[server]\n", f'[server]\nevent_loop = "{event_loop}"\n', 1))
    return copy


def start_callgate(ctx: Context, config: Path, workers: int, event_loop: str | None = None,
                   name: str | None = None, role: str = "callgate") -> Server:
    port = free_port()
    name = name or ("callgate" + (f"/{event_loop}" if event_loop else "") + (f"/{workers}w" if workers > 1 else ""))
    if event_loop:
        config = with_event_loop(config, event_loop)
    env = ctx.env()
    if ctx.args.turns:      # bench/turns/sitecustomize.py counts the loop's turns in this server
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH / "turns"), env.get("PYTHONPATH")]))
        env["CALLGATE_BENCH_TURNS"] = str(turns_file(ctx, name))
    proc = ctx.procs.start(name, callgate_command(config, port, workers), SERVER_CPU,
                           ctx.tmp / f"{name.replace('/', '-')}.log", env)
    wait_listening(proc, port)
    ops_port = tomllib.loads(config.read_text()).get("server", {}).get("ops_port")
    wait_ready(proc, ops_port or port)             # /readyz is on the ops port when there is one
    if workers > 1:
        wait_workers(proc, workers)
    return Server(name, port, proc, role, workers)


def turns_file(ctx: Context, name: str) -> Path:
    return ctx.tmp / f"turns-{name.replace('/', '-')}.json"


def turns_report(ctx: Context, server: Server) -> list[str]:
    """``--turns``: what bench/turns/sitecustomize.py counted in ``server`` (warm-up and every run included)."""
    path = turns_file(ctx, server.name)
    if not path.exists():
        return [f"turns of {server.name}: nothing counted (a worker started by --workers is not)"]
    lines = [f"turns of the event loop in {server.name} (p50 / p90 / p99; the probe's cost is in this run's figures):"]
    for name, q in json.loads(path.read_text()).items():
        unit = " ms" if name == "turn_ms" else " turns"
        label = "a turn's work (turns with any)" if name == "turn_ms" else name
        lines.append(f"  {label:<44} {q['p50']:8.2f} {q['p90']:8.2f} {q['p99']:8.2f}{unit}  (n {q['n']})")
    return lines


def wait_workers(proc: subprocess.Popen, workers: int, timeout: float = START_TIMEOUT_S) -> None:
    """Until every worker says it listens (the supervisor's first worker may answer /readyz alone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if proc.bench_log.read_bytes().count(b'"event":"listening"') >= workers:     # type: ignore[attr-defined]
            return
        time.sleep(0.2)
    raise BenchError(f"callgate's {workers} workers did not all start:\n{tail(proc.bench_log)}")


def wait_ready(proc: subprocess.Popen, port: int, timeout: float = START_TIMEOUT_S) -> None:
    """Until callgate's /readyz says 200 (every plugin ready)."""
    deadline = time.monotonic() + timeout
    answer = b""
    while time.monotonic() < deadline and proc.poll() is None:
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        try:
            conn.request("GET", "/readyz")
            response = conn.getresponse()
            answer = response.read()
            if response.status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.2)
    raise BenchError(f"callgate is not ready: {answer[:300]!r}\n{tail(proc.bench_log)}")


# ------------------------------------------------------------------------------------ configurations

SERVER_TOML = f"""\
[server]
host = "{HOST}"
callback_path = "{CALLBACK_PATH}"
webhook_path = "{WEBHOOK_PATH}"
log_format = "json"         # one JSON line per callback, to a file (stdout is redirected)
log_level = "info"

[signing]
window_seconds = {WINDOW_SECONDS}
"""

ROUTER_TOML = f"""\
[plugins.router]
pie_default = {{ name = "continue" }}

[[plugins.router.routes]]
name = "sweden"
prefix = "+46"
action = {{ name = "connectPstn", number = "{{to}}", cli = "{CALLEE}", maxDuration = 3600 }}
"""


@dataclass
class Setup:
    """A configuration ready to run: its config file, notes for the report, a check to run at the end."""

    config: Path
    notes: list[str] = field(default_factory=list)
    finish: Callable[[], list[str]] = list
    #: A configuration run side by side as the "router-only" baseline (router-console), or None.
    baseline: Path | None = None
    #: ``own_stores(n)``: the configuration for the n-th callgate server run side by side (n >= 1) with stores of
    #: its own, or None when the configuration has no store.  Servers sharing SQLite files would write to each
    #: other's stores while one is measured (the idle one's CRM delivery worker delivers what the measured one
    #: records) and make it take turns at the write lock: a p99 of 105-118 ms instead of 52 ms for one worker
    #: measured beside two (``--workers 1,2``).
    own_stores: Callable[[int], Path] | None = None


def setup_router(ctx: Context) -> Setup:
    config = ctx.tmp / "router.toml"
    config.write_text(SERVER_TOML + '\n[plugins]\nenabled = []\n\n' + ROUTER_TOML)
    ctx.callgate("check-config", "--config", str(config))
    return Setup(config, ["plugins: the built-in router (and caller_id, no rules) only"])


def setup_router_console(ctx: Context) -> Setup:
    """router-only plus the console (SQLite store, the default flush and queue), and router-only beside it."""
    if "console" not in installed_plugins(ctx):
        raise Skip("plugin console not installed (.venv/bin/pip install -e ./plugins/console)")
    baseline = setup_router(ctx).config
    ctx.extra_env["CALLGATE_CONSOLE_TOKEN"] = base64.b64encode(os.urandom(24)).decode()
    config = ctx.tmp / "router-console.toml"
    server = SERVER_TOML.replace("[server]\n", f"[server]\nops_port = {free_port()}\n", 1)
    flush_ms = ctx.args.console_flush_ms          # bench/run.py's and bench/instructions.py's option
    config.write_text(server + '\n[plugins]\nenabled = ["console"]\n\n[plugins.console]\n'
                      f'database_url = "sqlite:///{ctx.tmp}/console.sqlite3"\n'
                      + (f"flush_interval_ms = {flush_ms}\n" if flush_ms else "") + "\n" + ROUTER_TOML)
    ctx.callgate("check-config", "--config", str(config))
    return Setup(config, ["plugins: the console (recording every callback to SQLite), then the built-in router; "
                          "router-only: the same without the console, side by side"], baseline=baseline)


def installed_plugins(ctx: Context) -> set[str]:
    listing = json.loads(ctx.callgate("plugins", "--json"))
    return {p["name"] for p in listing["plugins"]}


def full_toml(ctx: Context, crm_port: int, stores: Path) -> str:
    """The full stack: callgate.testing's builder for the three plugins, with this benchmark's server, routes
    and plugin settings (see plugins/<name>/README.md for the keys); the SQLite stores in the folder ``stores``."""
    from callgate.testing import full_stack_config  # the dev venv's callgate (bench runs with .venv/bin/python)

    tmp = ctx.tmp
    config = tomllib.loads(SERVER_TOML + ROUTER_TOML)
    config["plugins"].update({
        "allowlist": {"rules_file": str(tmp / "allowlist.csv"), "reload_seconds": 2.0,
                      "prompt": "This number cannot be called.",
                      "rules": [{"action": "allow", "callee": "+46*", "name": "sweden"},
                                {"action": "deny", "caller": "+1900*", "name": "premium callers"}]},
        # "did": v2's calls are inbound PHONE calls (to.type "did"); without it credit_check abstains on every one
        # of them and the v2 full stack would bill nothing.
        "credit_check": {"account_by": "caller", "rates": "table", "max_duration": 3600,
                         "destination_types": ["number", "did"]},
        "crm_export": {"sinks": [{"name": "crm", "type": "webhook", "url": f"http://{HOST}:{crm_port}/records",
                                  "secret": {"env": "BENCH_CRM_SECRET"}, "timeout_seconds": 5.0}]},
    })
    if ctx.args.one_sqlite_file:     # both plugins on credit_check's file: their writes share group commits
        config["plugins"]["crm_export"]["database_url"] = f"sqlite:///{stores / 'credit.sqlite3'}"
    return full_stack_config(stores, overrides=config)


def write_allowlist_file(path: Path, rules: int = 1000) -> None:
    """A blocklist of ``rules`` callers (none of them the benchmark's callers)."""
    rows = ["action,caller,name"] + [f"deny,+1555{i:07d},blocked {i}" for i in range(rules)]
    path.write_text("\n".join(rows) + "\n")


def seed_credit(ctx: Context, config: Path) -> None:
    """A rate for +46 and an account with plenty of credit for every caller of the requests."""
    rates = ctx.tmp / "rates.csv"
    rates.write_text("prefix,currency,per_minute,connect_fee,increments,name\n+46,EUR,0.01,0,60/60,Sweden\n")
    ctx.callgate("credit", "rates", "import", str(rates), "--config", str(config))
    for caller in CALLERS:
        ctx.callgate("credit", "add", "+" + caller, "--currency", "EUR", "--config", str(config))
        ctx.callgate("credit", "topup", "+" + caller, "1000000", "--note", "benchmark", "--config", str(config))


def start_crm_receiver(ctx: Context) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = ctx.procs.start("crm receiver", [sys.executable, str(BENCH / "crm_receiver.py"), "--port", str(port)],
                           CLIENT_CPU, ctx.tmp / "crm-receiver.log", ctx.env())
    wait_listening(proc, port)
    return proc, port


def crm_count(port: int) -> dict[str, int]:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", "/count")
        return json.loads(conn.getresponse().read())
    except (OSError, ValueError):
        return {}
    finally:
        conn.close()


FULL_STACK_NOTE = ("plugins: allowlist (1,002 rules, default deny), credit_check (SQLite, 5 accounts), "
                   "crm_export (SQLite outbox, webhook to a local receiver on CPU 1), then the router")
REPEATS_NOTE = ("every request of the rotation is re-sent once the rotation wraps: repeated ICEs are answered from "
                "their first reservation, repeated DICEs are settled and exported once (idempotent)")


def setup_full(ctx: Context) -> Setup:
    installed = installed_plugins(ctx)
    for name in FULL_PLUGINS:
        if name not in installed:
            raise Skip(f"plugin {name} not installed (.venv/bin/pip install -e ./plugins/{name})")
    ctx.extra_env["BENCH_CRM_SECRET"] = base64.b64encode(os.urandom(24)).decode()
    write_allowlist_file(ctx.tmp / "allowlist.csv")
    _, crm_port = start_crm_receiver(ctx)

    def configured(name: str, stores: Path) -> Path:
        config = ctx.tmp / name
        config.write_text(full_toml(ctx, crm_port, stores))
        try:
            ctx.callgate("check-config", "--config", str(config))
        except BenchError as exc:
            raise Skip(f"the full-stack configuration is not accepted by the installed plugins "
                       f"(their config keys may have changed; see bench/run.py full_toml):\n{exc}") from None
        seed_credit(ctx, config)
        return config

    def own_stores(index: int) -> Path:
        stores = ctx.tmp / f"stores-{index}"
        stores.mkdir()
        return configured(f"full-{index}.toml", stores)

    def finish() -> list[str]:
        got = crm_count(crm_port)
        return [f"CRM receiver: {got.get('posts', '?')} deliveries, {got.get('records', '?')} distinct records"]

    return Setup(configured("full.toml", ctx.tmp), [FULL_STACK_NOTE, REPEATS_NOTE], finish, own_stores=own_stores)


CONFIGURATIONS: dict[str, tuple[str, Callable[[Context], Setup]]] = {
    "router": ("router-only", setup_router),
    "router-console": ("router-only with the console", setup_router_console),
    "full": ("full stack", setup_full),
}


# ------------------------------------------------------------------------------------ rounds

def measure(ctx: Context, gen: Generation, server: Server, duration: int, label: str, pids: list[int]) -> WrkResult:
    """One wrk run against ``server`` with freshly signed requests, once the servers are idle.
    Also measures how much of the servers' CPU other processes took meanwhile."""
    wait_idle(pids)
    data = ctx.tmp / f"requests-{label}.lua"
    write_lua_requests(data, signed_requests(ctx.signer, gen, ctx.args.requests))
    started, busy, ours = time.monotonic(), cpu_times(SERVER_CPU), sum(map(cpu_seconds, pids))
    result = run_wrk(server.port, gen.path, duration, data, ctx.tmp / f"wrk-{label}.txt")
    data.unlink()
    theirs = (cpu_times(SERVER_CPU) - busy) - (sum(map(cpu_seconds, pids)) - ours)
    result.other_cpu = max(0.0, theirs) / (time.monotonic() - started)
    server.note_memory()
    return result


def run_rounds(ctx: Context, gen: Generation, name: str, servers: list[Server]) -> None:
    args = ctx.args
    pids = all_pids(servers)
    if args.warmup:
        for server in servers:
            measure(ctx, gen, server, args.warmup, f"{name}-{_file(server.name)}-warmup", pids)
    for round_no in range(1, args.rounds + 1):
        order = servers if round_no % 2 else list(reversed(servers))
        for server in order:
            server.runs.append(measure_quiet(ctx, gen, server, f"{name}-{_file(server.name)}-{round_no}", pids,
                                             round_no))


def _file(name: str) -> str:
    return name.replace("/", "-")


def measure_quiet(ctx: Context, gen: Generation, server: Server, label: str, pids: list[int],
                  round_no: int) -> WrkResult:
    """A measured run, repeated (at most ``--retries`` times) while other processes take more than
    OTHERS_WARNING of the server's CPU; the quietest attempt counts."""
    attempts = []
    for attempt in range(ctx.args.retries + 1):
        result = measure(ctx, gen, server, ctx.args.duration, f"{label}-{attempt}", pids)
        attempts.append(result)
        print_run(round_no, server.name, result, repeated=attempt > 0)
        if result.other_cpu <= OTHERS_WARNING:
            break
    return min(attempts, key=lambda r: r.other_cpu)


def print_run(round_no: int, name: str, r: WrkResult, repeated: bool) -> None:
    print(f"  round {round_no} {name:<16} {r.rps:9.1f} req/s  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms  "
          f"non-2xx {r.non_2xx}  socket errors {r.socket_errors}  CPU {SERVER_CPU} used by others "
          f"{100 * r.other_cpu:.0f} %{'  (again: the machine was busy)' if repeated else ''}", flush=True)


def profile(ctx: Context, gen: Generation, name: str, server: Server, pids: list[int]) -> list[str]:
    """One more run (not counted) with py-spy sampling callgate; the top functions by own time."""
    spy = profiling.py_spy()
    if spy is None:
        return ["profile: py-spy not found (.venv/bin/pip install py-spy)"]
    raw = ctx.tmp / f"profile-{name}.txt"
    duration = ctx.args.duration
    command = profiling.record_command(spy, server.pid, duration + 2, raw)
    spy_proc = ctx.procs.start("py-spy", command, CLIENT_CPU, ctx.tmp / f"py-spy-{name}.log", dict(os.environ))
    try:
        measure(ctx, gen, server, duration, f"{name}-callgate-profile", pids)
        spy_proc.wait(30)
    except subprocess.TimeoutExpired:
        pass
    finally:
        ctx.procs.stop(spy_proc)
    if not raw.exists():
        return [f"profile: py-spy wrote nothing:\n{tail(spy_proc.bench_log)}"]
    if ctx.args.profile_dir:
        Path(ctx.args.profile_dir).mkdir(parents=True, exist_ok=True)
        shutil.copy(raw, Path(ctx.args.profile_dir) / raw.name)
    return profiling.top_functions(raw.read_text())


# ------------------------------------------------------------------------------------ report

@dataclass
class LogStats:
    """What callgate's log says about every callback it answered (all runs: warm-up, repeats and profile too)."""

    lines: int = 0
    megabytes: float = 0.0
    callbacks: int = 0
    #: Callbacks not answered as configured: a plugin error or timeout, a denied ICE, a non-200 answer, an incoming
    #: call (ICE, ``call.incoming``) not routed by the benchmark's route.
    wrong: int = 0
    problems: collections.Counter[str] = field(default_factory=collections.Counter)


#: Log lines to look at closely (json or orjson spacing): a plugin error or timeout, a denial, a warning or worse.
_SUSPECT = re.compile(rb'"verdict": ?"(?:error|timeout)|"decision": ?"denied|"level": ?"(?:warning|error|critical)"')
_CALLBACK = re.compile(rb'"event": ?"callback"')
_STATUS_200 = re.compile(rb'"status": ?200[,}]')
_INCOMING = re.compile(rb'"sinch_event": ?"(?:ice|call\.incoming)"')
#: How every incoming call of the load must be decided (the router's one route, after the plugins allowed it).
_ROUTED = re.compile(rb'"decision": ?"[^"]*route sweden from router')


def analyse_log(path: Path) -> LogStats:
    stats = LogStats(megabytes=path.stat().st_size / 2**20)
    for raw in path.read_bytes().splitlines():
        stats.lines += 1
        is_callback = _CALLBACK.search(raw) is not None
        stats.callbacks += is_callback
        if (not is_callback or (_STATUS_200.search(raw) and (_ROUTED.search(raw) or not _INCOMING.search(raw)))) \
                and not _SUSPECT.search(raw):
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            stats.problems["a line that is not JSON"] += 1
            continue
        if is_callback:
            stats.wrong += 1
            stats.problems[f"{entry.get('status')} to {str(entry.get('sinch_event')).upper()}: "
                           f"{_why(entry)}"] += 1
        else:
            stats.problems[f"{entry.get('level')}: {entry.get('event')}"] += 1
    return stats


def _why(entry: dict) -> str:
    """The first failing plugin's verdict, else the problem, else the decision."""
    for plugin in entry.get("plugins") or ():
        verdict = str(plugin.get("verdict", ""))
        if verdict.startswith(("error", "timeout")):
            return f"{plugin.get('plugin')}.{plugin.get('hook')}: {verdict}"[:160]
    return str(entry.get("problem") or entry.get("decision"))[:160]


def log_lines(stats: LogStats) -> list[str]:
    head = (f"callgate logging: ON (json lines, level info, to a file): {stats.lines} lines, "
            f"{stats.megabytes:.1f} MB; {stats.callbacks} callbacks logged over all runs (warm-up, repeats and "
            f"profile included), {stats.wrong} not answered as configured (status 200, no plugin error "
            f"or timeout, no denial, every incoming call routed by route 'sweden')")
    return [head, *(f"  {n} x {what}" for what, n in stats.problems.most_common(6))]


def summary_row(server: Server) -> dict[str, float]:
    runs = server.runs
    return {
        "rps": statistics.median(r.rps for r in runs),
        "p50": statistics.median(r.p50_ms for r in runs),
        "p99": statistics.median(r.p99_ms for r in runs),
        "p99_max": max(r.p99_ms for r in runs),
        "non_2xx": sum(r.non_2xx for r in runs),
        "errors": sum(r.socket_errors for r in runs),
        "requests": sum(r.requests for r in runs),
        "rss": server.peak_rss_mb(),
        "other": max(r.other_cpu for r in runs),
    }


def verdicts(kind: str, cg: dict[str, float], ratio: float | None, express: float | None,
             log: LogStats) -> list[tuple[str, bool, str]]:
    """The targets; the requests/s ratios are against the plain and the Express reference (None: it did not run,
    not checked)."""
    target, p99_limit = RATIO_TARGETS[kind], P99_LIMITS_MS[kind]
    checks = [
        ("every callback answered as configured (log)", log.wrong == 0, f"{log.wrong} of {log.callbacks} were not"),
        (f"p99 < {p99_limit:g} ms (worst round)", cg["p99_max"] < p99_limit, f"{cg['p99_max']:.1f} ms"),
        ("no non-2xx response, no socket error", cg["non_2xx"] == 0 and cg["errors"] == 0,
         f"{cg['non_2xx']:.0f} non-2xx, {cg['errors']:.0f} socket errors"),
        (f"peak RSS < {RSS_LIMIT_MB:g} MB per process", cg["rss"] < RSS_LIMIT_MB, f"{cg['rss']:.1f} MB"),
    ]
    if ratio is not None:
        checks.insert(1, (f"requests/s >= {target} x plain reference", ratio >= target, f"{ratio:.2f}"))
    if express is not None and kind in EXPRESS_TARGETS:
        checks.insert(2, (f"requests/s >= {EXPRESS_TARGETS[kind]:g} x Express reference", express >= EXPRESS_TARGETS[kind],
                          f"{express:.2f}"))
    return checks


def report(kind: str, title: str, servers: list[Server], notes: list[str], logs: dict[str, LogStats]) -> bool:
    rows = {server.name: summary_row(server) for server in servers}
    refs = [s for s in servers if s.role == "reference"]
    gates = [s for s in servers if s.role == "callgate"]
    print(f"\n== {title}: medians over {len(servers[0].runs)} rounds ==")
    for note in notes:
        print(f"   {note}")
    print(f"   {'':<16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99 max':>8} {'non-2xx':>8} {'sock err':>8} "
          f"{'requests':>9} {'peak RSS MB':>11} {'others %':>8}")
    for name, r in rows.items():
        print(f"   {name:<16} {r['rps']:9.1f} {r['p50']:8.2f} {r['p99']:8.2f} {r['p99_max']:8.2f} {r['non_2xx']:8.0f} "
              f"{r['errors']:8.0f} {r['requests']:9.0f} {r['rss']:11.1f} {100 * r['other']:8.0f}")
    print("   ratios (callgate / reference: req/s of the medians, p99; per round in brackets)")
    for cg in gates:
        for ref in refs:
            c, r = rows[cg.name], rows[ref.name]
            print(f"   {cg.name:<16} / {ref.name:<8} {_ratio(c['rps'], r['rps']):>6}  p99 {_ratio(c['p99'], r['p99']):>6}"
                  f"  ({' '.join(_ratio(a.rps, b.rps) for a, b in zip(cg.runs, ref.runs))})")
    if len(gates) > 1:
        base = rows[gates[0].name]
        for cg in gates[1:]:
            print(f"   {cg.name} / {gates[0].name}: {_ratio(rows[cg.name]['rps'], base['rps'])} "
                  f"(both with every process on CPU {SERVER_CPU})")
    busiest = max(r["other"] for r in rows.values())
    if busiest > OTHERS_WARNING:
        print(f"   WARNING: other processes took up to {100 * busiest:.0f} % of CPU {SERVER_CPU} during a run "
              f"(column 'others %', the worst run): the figures are not reliable; rerun on a quiet machine")
    plain, express = rows.get("plain"), rows.get("express")
    passed = True
    for base in (s for s in servers if s.role == "baseline"):
        for cg in gates:
            ratio = rows[cg.name]["rps"] / rows[base.name]["rps"] if rows[base.name]["rps"] else 0.0
            ok = ratio >= CONSOLE_COST_TARGET
            passed &= ok
            print(f"   {'PASS' if ok else 'FAIL'}  {cg.name} / {base.name} requests/s >= {CONSOLE_COST_TARGET}: "
                  f"{ratio:.2f} (per round: {' '.join(_ratio(a.rps, b.rps) for a, b in zip(cg.runs, base.runs))})")
    for cg in gates:
        print(f"   {cg.name}:")
        for line in log_lines(logs[cg.name]):
            print(f"     {line}")
        ratio = rows[cg.name]["rps"] / plain["rps"] if plain and plain["rps"] else None
        to_express = rows[cg.name]["rps"] / express["rps"] if express and express["rps"] else None
        for what, ok, value in verdicts(kind, rows[cg.name], ratio, to_express, logs[cg.name]):
            passed &= ok
            print(f"     {'PASS' if ok else 'FAIL'}  {what}: {value}")
    return passed


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


# ------------------------------------------------------------------------------------ main

def check_answers(kind: str, servers: list[Server], answers: dict[str, list[bytes]]) -> None:
    """Print each server's answers to one call; in the router-only configuration they must be the same bytes
    as the references' (a WARNING says when not: the references' ANSWERS are out of date)."""
    for server in servers:
        shown = " | ".join(a.decode(errors="replace")[:120] for a in answers[server.name])
        print(f"   {server.name} answers {shown}")
    if kind not in ("router", "router-console"):
        return
    first = answers[servers[0].name]
    for server in servers[1:]:
        if answers[server.name] != first:
            print(f"   WARNING: {server.name} does not answer the same bytes as {servers[0].name} "
                  f"(update ANSWERS in bench/reference_server.py)")


def bench_configuration(ctx: Context, kind: str, gen: Generation) -> bool | None:
    """Run one configuration on one API generation; True/False: targets met or not; None: skipped."""
    title, setup = CONFIGURATIONS[kind]
    title = f"{title}, {gen.name}"
    print(f"\n### {title}", flush=True)
    ctx = replace(ctx, tmp=ctx.tmp / f"{kind}-{gen.name}", extra_env=dict(ctx.extra_env))
    ctx.tmp.mkdir()
    try:
        prepared = setup(ctx)
    except Skip as exc:
        print(f"   SKIPPED: {exc}")
        return None
    servers: list[Server] = []
    extra: list[str] = []
    try:
        for ref_kind in ctx.args.references:
            servers.append(start_reference(ctx, ref_kind))
        for index, (event_loop, workers) in enumerate(itertools.product(ctx.args.event_loops, ctx.args.workers)):
            config = prepared.config if index == 0 or prepared.own_stores is None else prepared.own_stores(index)
            servers.append(start_callgate(ctx, config, workers, event_loop))
        if prepared.baseline is not None:
            servers.append(start_callgate(ctx, prepared.baseline, ctx.args.workers[0], name="router-only",
                                          role="baseline"))
        check_answers(kind, servers, {server.name: smoke_check(server, ctx.signer, gen) for server in servers})
        run_rounds(ctx, gen, f"{kind}-{gen.name}", servers)
        gates = [s for s in servers if s.role == "callgate"]
        if ctx.args.turns:
            extra = [line for gate in gates for line in turns_report(ctx, gate)]
        if ctx.args.profile:
            extra += profile(ctx, gen, f"{kind}-{gen.name}", gates[0], all_pids(servers))
        workers_note = ", ".join(f"{s.name}: {s.workers} worker{'s' * (s.workers > 1)}" for s in gates)
        notes = [*prepared.notes, (f"{ctx.args.requests} distinct pre-signed requests rotated (70/10/10/10 "
                                   f"{gen.events} to {gen.path}), {CONNECTIONS} connections, "
                                   f"{ctx.args.duration} s per run, every server process on CPU {SERVER_CPU} "
                                   f"({workers_note}), wrk on CPU {CLIENT_CPU}")]
        logs = {s.name: analyse_log(s.proc.bench_log) for s in gates}      # type: ignore[attr-defined]
        passed = report(kind, title, servers, notes, logs)
    finally:
        for server in reversed(servers):
            ctx.procs.stop(server.proc)
    for line in [*prepared.finish(), *extra]:
        print(f"   {line}")
    return passed


def _choices(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    chosen = list(allowed) if value == "all" else [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"{what}: {', '.join(allowed)}, a comma-separated list of them, or all")
    return list(dict.fromkeys(chosen))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark callgate against reference servers with wrk.")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs every server (default 3)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--config", choices=("router", "router-console", "full", "all"), default="all",
                        help="which configuration (default all: router and full)")
    parser.add_argument("--generation", choices=("v1", "v2", "both"), default="both",
                        help="v1 callbacks to /sinch/callback, v2 webhooks to /sinch/webhook, or both (default)")
    parser.add_argument("--reference", default="plain",
                        help="reference server(s) beside callgate: plain, uvloop, express, a comma-separated list, "
                             "or all (default plain)")
    parser.add_argument("--workers", default="1",
                        help="callgate's worker processes: N, or a comma-separated list (1,2) run side by side "
                             "(default 1)")
    parser.add_argument("--event-loop", default="",
                        help="callgate's [server] event_loop: asyncio, uvloop, auto, or a comma-separated list run "
                             "side by side (default: callgate's default)")
    parser.add_argument("--requests", type=int, default=2000, help="distinct pre-signed requests rotated (default 2000)")
    parser.add_argument("--console-flush-ms", type=int, default=None,
                        help="router-console: the console's flush_interval_ms (default: the console's default, 100)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load per server first (default 2)")
    parser.add_argument("--retries", type=int, default=2,
                        help="run again (at most N times) when other processes took over 5 %% of the server's CPU; "
                             "the quietest attempt counts (default 2)")
    parser.add_argument("--profile", action="store_true",
                        help="after the rounds, one more callgate run under py-spy; prints the top functions")
    parser.add_argument("--profile-dir", help="with --profile: keep py-spy's collapsed stacks there")
    parser.add_argument("--turns", action="store_true",
                        help="count the event loop's turns each callback and async plugin hook waits for, in every "
                             "callgate (bench/turns/sitecustomize.py; it costs a little throughput)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs, wrk output)")
    parser.add_argument("--one-sqlite-file", action="store_true",
                        help="full stack: credit_check and crm_export on one SQLite file (default: a file each)")
    args = parser.parse_args(argv)
    try:
        args.references = _choices(args.reference, REFERENCES, "--reference")
        args.workers = [int(w) for w in args.workers.split(",")]
        args.event_loops = (_choices(args.event_loop, ("asyncio", "uvloop", "auto"), "--event-loop")
                            if args.event_loop else [None])
    except (argparse.ArgumentTypeError, ValueError) as exc:
        parser.error(str(exc) if isinstance(exc, argparse.ArgumentTypeError) else "--workers: N or N,M,...")
    if not all(1 <= w <= 16 for w in args.workers) or len(set(args.workers)) != len(args.workers):
        parser.error("--workers: distinct counts from 1 to 16")
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds must be 1 to 50")
    if not 1 <= args.duration <= WINDOW_SECONDS - 60:
        parser.error(f"--duration must be 1 to {WINDOW_SECONDS - 60} s: requests are signed before each run and "
                     f"callgate refuses them {WINDOW_SECONDS} s later")
    if not 10 <= args.requests <= 200_000:
        parser.error("--requests must be 10 to 200000")
    if not 0 <= args.retries <= 10:
        parser.error("--retries must be 0 to 10")
    if not 0 <= args.warmup <= 60:
        parser.error("--warmup must be 0 to 60 s")
    return args


def _terminate(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problems = missing_tools()
    if problems:
        print("bench: cannot run, missing:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    try:
        for line in prepare_references(args.references):
            print(f"bench: {line}")
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM):    # SIGINT too: a background job may have it ignored
        signal.signal(signum, _terminate)
    ctx = new_context(args, "callgate-bench-")
    kinds = ["router", "full"] if args.config == "all" else [args.config]
    gens = ["v1", "v2"] if args.generation == "both" else [args.generation]
    print(f"callgate benchmark: {', '.join(kinds)} on {', '.join(gens)}; references {', '.join(args.references)}; "
          f"callgate with {', '.join(map(str, args.workers))} worker(s); {args.rounds} rounds x {args.duration} s; "
          f"temp dir {ctx.tmp}")
    results: dict[str, bool | None] = {}
    try:
        for kind in kinds:
            for gen in gens:
                results[f"{kind} {gen}"] = bench_configuration(ctx, kind, GENERATIONS[gen])
    except BenchError as exc:
        print(f"\nbench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nbench: interrupted", file=sys.stderr)
        return 130
    finally:
        ctx.close(args.keep)
    print("\n" + "; ".join(f"{k}: {'SKIPPED' if v is None else 'PASS' if v else 'FAIL'}" for k, v in results.items()))
    return 0 if all(v is not False for v in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
