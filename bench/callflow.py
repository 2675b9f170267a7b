"""Two callgate instances on one PostgreSQL database under realistic call flows (issue 17).

Run it from the repository root, with PostgreSQL reachable (nothing is installed)::

    .venv/bin/python bench/callflow.py                  # 140 calls/s for 90 s
    .venv/bin/python bench/callflow.py --short          # 60 calls/s for 15 s: a quick check
    .venv/bin/python bench/callflow.py --rate 100 --duration 30 --keep

What it does:

1. drops and creates the database ``--database`` (default ``callgate_bench_flow``) on ``--postgres``
   (default ``postgresql://postgres@127.0.0.1:5432``): never ``test`` or another one's;
2. writes one config.toml for both instances: ``allowlist`` (default deny, callers ``+4670*``
   allowed), ``credit_check`` and ``crm_export`` on that database (a webhook sink to
   ``bench/crm_receiver.py``), JSON log lines at level info to a file per instance;
3. seeds ``credit_check``: the rate table (``callgate credit rates import``), one account with
   ``callgate credit add`` / ``topup``, and the others (``--accounts``) copied from it in SQL
   (hundreds of CLI runs would take minutes): most with 1,000 EUR, a few with 0.40 EUR (their
   calls get a short maxDuration, or are refused while another call holds the credit), a few
   with nothing (refused);
4. starts two ``callgate serve`` processes (separate ports, no CPU pinning: they share the
   machine's cores with PostgreSQL, the receiver and this driver, as in production on one host);
5. drives calls arriving at random (Poisson) at ``--rate`` per second for ``--duration`` seconds,
   each a Sinch v1 call flow over real HTTP, every request signed when it is sent:
   ICE at a random instance; a caller the allowlist refuses or an account without credit gets
   a hangup; an allowed call is answered (ACE) or not (DICE ``NOANSWER``), some play a menu (PIE),
   and the call ends (DICE) at either instance with a duration up to the maxDuration the ICE
   answer granted; some DICEs go to both instances at once (Sinch's primary and fallback URL);
   a DICE answered with anything but 200 is sent again to the other instance, as Sinch does;
6. waits until every record is delivered (the outbox is empty), stops the instances, and checks:
   every account's balance is its start minus the sum of the charges this driver computed itself
   from each connected call's duration and the rate (nothing reserved, nothing negative); every
   ended call has exactly one record at the CRM, with the driver's duration and cost;
7. prints per event the answers' p50/p90/p99/max latency and the non-2xx and failed requests, and
   from the instances' logs the time each plugin hook took (p50/p99), then PASS/FAIL against
   the targets: DICE p99 < 100 ms, ICE p99 < 50 ms, no error, exact money and records.

Exit status: 0 every target met, 1 a target missed, 2 the benchmark could not run.
See bench/README.md ("Call flows on PostgreSQL").
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import profiling  # bench/profiling.py
import run  # bench/run.py: processes, ports, readiness

from callgate import samples
from callgate.protocols.v1.signing import signed_headers

HOST = run.HOST
PATH = run.CALLBACK_PATH
ALL_CPUS = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_DATABASE = "callgate_bench_flow"
CALLEE = "+46850001234"
#: The rate of every call (+46): 0.05 EUR a minute, 0.01 EUR to connect, billed 30 s then every 6 s.
PER_MINUTE, CONNECT_FEE, FIRST, NEXT = 50_000, 10_000, 30, 6      # micro-units, seconds
RATES_CSV = "prefix,currency,per_minute,connect_fee,increments,name\n+46,EUR,0.05,0.01,30/6,Sweden\n"
RICH, POOR = 1_000 * 10**6, 400_000                                  # micro-units: 1,000 EUR and 0.40 EUR
TARGETS_MS = {"dice": 100.0, "ice": 50.0}
#: A DICE not answered 200 is sent again, at most this many times in all (backing off up to 5 s: about three
#: minutes), so that every call ends and its charge is known even when the instances are overloaded.
DICE_ATTEMPTS = 40


def charge(duration: int) -> int:
    """What a connected call of ``duration`` seconds costs, in micro-units, computed here from the rate
    (credit_check's rules: rounded up to the increments, then up to a micro-unit; 0 s costs nothing)."""
    if duration <= 0:
        return 0
    billed = FIRST if duration <= FIRST else FIRST + -(-(duration - FIRST) // NEXT) * NEXT
    return -(-(CONNECT_FEE * 60 + PER_MINUTE * billed) // 60)


# ------------------------------------------------------------------------------------ setup

@dataclass(frozen=True)
class Accounts:
    """The callers (v1 ``cli``: digits without ``+``) and each one's starting balance in micro-units."""

    rich: list[str]
    poor: list[str]
    empty: list[str]
    #: Callers the allowlist refuses (no account).
    blocked: list[str]

    @property
    def start(self) -> dict[str, int]:
        return {**{c: RICH for c in self.rich}, **{c: POOR for c in self.poor}, **{c: 0 for c in self.empty}}


def make_accounts(count: int) -> Accounts:
    poor, empty = max(1, count // 50), max(1, count // 50)
    numbers = [f"4670{i:07d}" for i in range(count)]
    return Accounts(numbers[:count - poor - empty], numbers[count - poor - empty:count - empty],
                    numbers[count - empty:], [f"4480{i:07d}" for i in range(20)])


def config_toml(tmp: Path, database_url: str, crm_port: int) -> str:
    from callgate.testing import full_stack_config

    overrides = tomllib.loads(run.SERVER_TOML + run.ROUTER_TOML)
    overrides["plugins"].update({
        "allowlist": {"default": "deny", "rules": [{"action": "allow", "caller": "+4670*", "name": "customers"}],
                      "prompt": "This number cannot call."},
        "credit_check": {"database_url": {"env": "BENCH_DATABASE_URL"}, "account_by": "caller", "rates": "table",
                         "max_duration": 3600},
        "crm_export": {"database_url": {"env": "BENCH_DATABASE_URL"},
                       "sinks": [{"name": "crm", "type": "webhook", "url": f"http://{HOST}:{crm_port}/records",
                                  "secret": {"env": "BENCH_CRM_SECRET"}, "timeout_seconds": 5.0}]},
    })
    return full_stack_config(tmp, overrides=overrides)


async def recreate_database(server: str, name: str) -> str:
    if name in ("test", "postgres", "template0", "template1"):
        raise run.BenchError(f"refusing to drop database {name!r}: give the benchmark its own (--database)")
    conn = await asyncpg.connect(f"{server}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{server}/{name}"


async def seed_accounts(ctx: run.Context, config: Path, database_url: str, accounts: Accounts) -> None:
    """The rate table and the first account with callgate's own commands, the others copied from it in SQL."""
    rates = ctx.tmp / "rates.csv"
    rates.write_text(RATES_CSV)
    ctx.callgate("credit", "rates", "import", str(rates), "--config", str(config))
    first = accounts.rich[0]
    ctx.callgate("credit", "add", "+" + first, "--currency", "EUR", "--config", str(config))
    ctx.callgate("credit", "topup", "+" + first, str(RICH // 10**6), "--note", "benchmark", "--config", str(config))
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            template = await conn.fetchrow("SELECT * FROM credit_accounts WHERE id = $1", "+" + first)
            for caller, balance in accounts.start.items():
                if caller == first:
                    continue
                await conn.execute("INSERT INTO credit_accounts (id, currency, balance, reserved, created_at, "
                                   "updated_at) VALUES ($1, 'EUR', $2, 0, $3, $3)", "+" + caller, balance,
                                   template["created_at"])
                if balance:
                    await conn.execute("INSERT INTO credit_ledger (account_id, kind, amount, balance_after, "
                                       "reserved_after, callid, note, created_at) "
                                       "SELECT $1, kind, $2, $2, 0, NULL, note, created_at FROM credit_ledger "
                                       "WHERE account_id = $3 AND kind = 'topup'", "+" + caller, balance, "+" + first)
    finally:
        await conn.close()


# ------------------------------------------------------------------------------------ the load

@dataclass
class Stats:
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    status: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    failures: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    #: callid -> the expected charge (connected calls), 0 for the others; every call whose DICE got a 200.
    ended: dict[str, int] = field(default_factory=dict)
    durations: dict[str, int] = field(default_factory=dict)
    charges: dict[str, int] = field(default_factory=lambda: defaultdict(int))     # caller -> micro-units
    outcomes: Counter = field(default_factory=Counter)
    calls_started: int = 0
    in_flight: int = 0

    def problem(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)
        self.failures["unexpected answer"] += 1


class Driver:
    def __init__(self, args: argparse.Namespace, ports: list[int], signer: run.Signer, accounts: Accounts) -> None:
        self.args, self.ports, self.signer, self.accounts = args, ports, signer, accounts
        self.stats = Stats()
        self.random = random.Random(args.seed)
        self.session: aiohttp.ClientSession | None = None

    async def send(self, instance: int, event: str, body: dict) -> tuple[int, dict | None]:
        """POST one callback, signed now; (status, answer JSON); status 0 when the request failed."""
        data = json.dumps(body, separators=(",", ":")).encode()
        headers = signed_headers(self.signer.key, self.signer.secret, PATH, data)
        assert self.session is not None
        started = time.perf_counter()
        try:
            async with self.session.post(f"http://{HOST}:{self.ports[instance]}{PATH}", data=data,
                                         headers=headers) as response:
                raw = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.stats.failures[f"{event}: {type(exc).__name__}"] += 1
            return 0, None
        self.stats.latency[event].append((time.perf_counter() - started) * 1000)
        self.stats.status[event][status] += 1
        try:
            return status, json.loads(raw) if raw else {}
        except ValueError:
            return status, None

    async def end(self, instance: int, body: dict, callid: str) -> bool:
        """A DICE, sent again (to the other instance first: Sinch's fallback URL) until it is answered 200, for
        at most DICE_ATTEMPTS tries: then the call's charge is known (settled once, whichever try did it)."""
        for attempt in range(DICE_ATTEMPTS):
            status, _ = await self.send((instance + attempt) % 2, "dice", body)
            if status == 200:
                return True
            self.stats.outcomes["DICE sent again"] += 1
            await asyncio.sleep(min(0.2 * 2 ** attempt, 5.0))
        self.stats.problem(f"{callid}: DICE not answered 200 after {DICE_ATTEMPTS} tries")
        return False

    def pick_caller(self) -> tuple[str, str]:
        r = self.random.random()
        a = self.accounts
        if r < 0.05:
            return "blocked", self.random.choice(a.blocked)
        if r < 0.08:
            return "empty", self.random.choice(a.empty)
        if r < 0.13:
            return "poor", self.random.choice(a.poor)
        return "rich", self.random.choice(a.rich)

    async def call(self) -> None:
        rnd, stats = self.random, self.stats
        kind, caller = self.pick_caller()
        callid = samples.new_callid()
        here = rnd.randrange(2)
        stats.calls_started += 1
        stats.in_flight += 1
        try:
            status, answer = await self.send(here, "ice", samples.ice(caller=caller, to=CALLEE, callid=callid))
            action = (answer or {}).get("action") or {}
            connected = status == 200 and action.get("name") == "connectPstn"
            if status == 200 and kind in ("blocked", "empty") and connected:
                stats.problem(f"{callid}: a {kind} caller's ICE was connected: {answer}")
            if status == 200 and kind == "rich" and not connected:
                stats.problem(f"{callid}: a funded caller's ICE was not connected: {answer}")
            answered = connected and rnd.random() < 0.8
            duration = 0
            if not connected:
                stats.outcomes[f"refused ({kind})" if status == 200 else "ICE failed"] += 1
                await asyncio.sleep(rnd.uniform(0.05, 0.3))
                dice = samples.dice(callid=callid, caller=caller, to=CALLEE, result="FAILED", reason="CALLERHANGUP",
                                    duration=0, debit=0.0)
            elif not answered:
                stats.outcomes["not answered"] += 1
                await asyncio.sleep(rnd.uniform(1.0, 3.0))
                dice = samples.dice(callid=callid, caller=caller, to=CALLEE, result="NOANSWER",
                                    reason="CALLEEHANGUP", duration=0, debit=0.0)
            else:
                stats.outcomes["answered"] += 1
                await asyncio.sleep(rnd.uniform(0.2, 1.0))
                await self.expect_200(rnd.randrange(2), "ace", samples.ace(callid=callid), callid)
                if rnd.random() < 0.3:
                    await asyncio.sleep(rnd.uniform(0.2, 0.8))
                    await self.expect_200(rnd.randrange(2), "pie", samples.pie(callid=callid), callid)
                await asyncio.sleep(rnd.uniform(0.5, 3.0))
                longest = int(action.get("maxDuration") or 3600)
                duration = rnd.randint(1, min(longest, 1800))
                dice = samples.dice(callid=callid, caller=caller, to=CALLEE, duration=duration,
                                    debit=round(charge(duration) / 1e6, 6))
            there = rnd.randrange(2)
            if rnd.random() < self.args.duplicates:
                stats.outcomes["DICE sent to both instances"] += 1
                results = await asyncio.gather(self.end(there, dice, callid), self.end(1 - there, dice, callid))
                ok = any(results)
            else:
                ok = await self.end(there, dice, callid)
            if ok:
                cost = charge(duration) if answered else 0
                stats.ended[callid] = cost
                stats.durations[callid] = duration
                stats.charges[caller] += cost
        finally:
            stats.in_flight -= 1

    async def expect_200(self, instance: int, event: str, body: dict, callid: str) -> None:
        status, _ = await self.send(instance, event, body)
        if status != 200:
            self.stats.problem(f"{callid}: {event.upper()} answered {status}")

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
        timeout = aiohttp.ClientTimeout(total=15)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as self.session:
            tasks: set[asyncio.Task] = set()
            start = time.monotonic()
            next_at, last_report = start, start
            while next_at - start < self.args.duration:
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(self.call())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                next_at += self.random.expovariate(self.args.rate)
                now = time.monotonic()
                if now - last_report >= 10:
                    last_report = now
                    late = now - next_at
                    print(f"  {now - start:5.0f} s: {self.stats.calls_started} calls started, "
                          f"{self.stats.in_flight} in flight" + (f", driver {late:.2f} s behind" if late > 0.1 else ""),
                          flush=True)
            print(f"  all {self.stats.calls_started} calls started in {time.monotonic() - start:.1f} s; "
                  f"waiting for {len(tasks)} to end", flush=True)
            await asyncio.gather(*tasks)


# ------------------------------------------------------------------------------------ checks

async def wait_delivered(database_url: str, receiver_port: int, ended: set[str], timeout: float = 90.0) -> None:
    """Until the outbox has nothing left to deliver and the receiver has every ended call (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    conn = await asyncpg.connect(database_url)
    try:
        while time.monotonic() < deadline:
            waiting = await conn.fetchval("SELECT COUNT(*) FROM crm_deliveries WHERE state <> 'delivered'")
            if waiting == 0 and ended <= set(await receiver_records(receiver_port)):
                return
            await asyncio.sleep(1.0)
    finally:
        await conn.close()


async def receiver_records(port: int) -> dict[str, dict]:
    async with aiohttp.ClientSession() as session, session.get(f"http://{HOST}:{port}/records") as response:
        return await response.json()


@dataclass
class Usage:
    """CPU seconds (the two instances, this database's PostgreSQL sessions, the driver) and PostgreSQL's
    transaction counters for the database: per call, they compare runs far better than latency on a busy
    machine."""

    instances: float = 0.0
    postgres: float = 0.0
    driver: float = 0.0
    commits: int = 0
    rollbacks: int = 0
    #: The instances' system CPU seconds (in ``instances``) and their read/write system calls.
    system: float = 0.0
    syscalls: int = 0

    @classmethod
    async def now(cls, database_url: str, database: str, instance_pids: list[int]) -> Usage:
        conn = await asyncpg.connect(database_url)
        try:
            pids = [r["pid"] for r in await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database)]
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            row = await conn.fetchrow("SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = $1",
                                      database)
        finally:
            await conn.close()
        return cls(sum(map(run.cpu_seconds, instance_pids)), sum(map(run.cpu_seconds, pids)), time.process_time(),
                   row["xact_commit"], row["xact_rollback"], sum(map(system_seconds, instance_pids)),
                   sum(map(io_syscalls, instance_pids)))

    def per_call(self, before: Usage, calls: int) -> str:
        calls = max(calls, 1)
        return (f"per call: CPU {1000 * (self.instances - before.instances) / calls:.2f} ms in the two instances, "
                f"{1000 * (self.postgres - before.postgres) / calls:.2f} ms in their PostgreSQL sessions, "
                f"{1000 * (self.driver - before.driver) / calls:.2f} ms in the driver; the instances' "
                f"{1000 * (self.system - before.system) / calls:.2f} ms system time for "
                f"{(self.syscalls - before.syscalls) / calls:.0f} read/write system calls; "
                f"{(self.commits - before.commits) / calls:.1f} transactions committed, "
                f"{(self.rollbacks - before.rollbacks) / calls:.2f} rolled back")


def system_seconds(pid: int) -> float:
    """System CPU time of a process so far."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[12]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def io_syscalls(pid: int) -> int:
    """Read and write system calls of a process so far (``syscr`` + ``syscw`` of /proc/PID/io)."""
    try:
        fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
        return int(fields["syscr"]) + int(fields["syscw"])
    except (OSError, KeyError, ValueError):
        return 0


async def sample_sessions(database_url: str, database: str, counts: Counter, stop: asyncio.Event) -> None:
    """Every 0.5 s until ``stop``: what each PostgreSQL session of the database is doing (``pg_stat_activity``:
    state and wait event; ``ClientRead`` inside a transaction means PostgreSQL waits for callgate)."""
    conn = await asyncpg.connect(database_url)
    try:
        while not stop.is_set():
            rows = await conn.fetch(
                "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'", database)
            for r in rows:
                if r["state"] == "idle":
                    counts["idle"] += 1
                else:
                    counts[" ".join(str(v) for v in (r["state"], r["wait_event_type"], r["wait_event"]) if v)] += 1
            counts["(samples)"] += 1
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass
    finally:
        await conn.close()


def sessions_line(counts: Counter) -> str:
    samples = max(counts.pop("(samples)", 0), 1)
    busy = ", ".join(f"{what} {n / samples:.1f}" for what, n in counts.most_common() if what != "idle")
    return (f"PostgreSQL sessions of the database, average number in each state over {samples} samples: "
            f"{busy}; idle {counts.get('idle', 0) / samples:.1f}")


async def check_money(database_url: str, accounts: Accounts, stats: Stats) -> list[str]:
    """Each account: balance = start - the charges the driver computed, never negative; nothing still reserved
    (every call ended).  Returns what is wrong."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = {r["id"]: r for r in await conn.fetch("SELECT id, balance, reserved FROM credit_accounts")}
        states = dict(await conn.fetch("SELECT state, COUNT(*) FROM credit_calls GROUP BY state"))
    finally:
        await conn.close()
    wrong, held = [], []
    for caller, start in accounts.start.items():
        row = rows.get("+" + caller)
        expected = start - stats.charges.get(caller, 0)
        if row is None or row["balance"] != expected or row["balance"] < 0:
            wrong.append(f"+{caller}: balance {row and row['balance']}, expected {expected}")
        elif row["reserved"] != 0:
            held.append(f"+{caller}: {row['reserved']} still reserved")
    if held:
        wrong.append(f"balances exact, but {len(held)} accounts still hold a reservation, e.g. {held[0]}")
    charged = sum(stats.charges.values())
    print(f"money: {len(accounts.start)} accounts, {charged / 1e6:.6f} EUR charged for "
          f"{sum(1 for c in stats.ended.values() if c)} calls; credit_calls by state: {states}")
    return wrong


def check_records(records: dict[str, dict], stats: Stats) -> list[str]:
    """Every ended call: one record at the CRM (the newest version of it: a version that a newer one replaced before
    it was sent is never sent), with the driver's duration and cost; no record of a call that did not end."""
    wrong = []
    missing = set(stats.ended) - set(records)
    extra = set(records) - set(stats.ended)
    if missing:
        wrong.append(f"{len(missing)} ended calls have no record at the CRM, e.g. {sorted(missing)[:3]}")
    if extra:
        wrong.append(f"{len(extra)} records for calls that did not end, e.g. {sorted(extra)[:3]}")
    updated = duplicate_posts = 0
    for callid, cost in stats.ended.items():
        got = records.get(callid)
        if got is None:
            continue
        updated += max(got["versions"]) > 1
        duplicate_posts += got["posts"] > len(got["versions"])
        record = got["record"]
        amount = (record.get("cost") or {}).get("amount")
        if cost and (amount is None or round(float(amount) * 1e6) != cost):
            wrong.append(f"{callid}: record's cost {amount}, expected {cost / 1e6}")
        if stats.durations[callid] and record.get("duration_seconds") != stats.durations[callid]:
            wrong.append(f"{callid}: record's duration {record.get('duration_seconds')}, "
                         f"expected {stats.durations[callid]}")
    print(f"records: {len(records)} calls at the CRM for {len(stats.ended)} ended; {updated} in a version > 1 (facts "
          f"the other instance flushed after the DICE's record), {duplicate_posts} posted twice in one version (a "
          f"delivery whose outcome was not saved: the Idempotency-Key repeats)")
    return wrong[:20]


# ------------------------------------------------------------------------------------ report

def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def latency_table(stats: Stats) -> list[str]:
    lines = [f"{'event':6} {'answers':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}  statuses"]
    for event in ("ice", "ace", "pie", "dice"):
        values = stats.latency.get(event, [])
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(stats.status[event].items()))
        lines.append(f"{event.upper():6} {len(values):8} {percentile(values, .5):8.1f} {percentile(values, .9):8.1f} "
                     f"{percentile(values, .99):8.1f} {max(values, default=float('nan')):8.1f}  {statuses}")
    return lines


def hook_profile(logs: list[Path]) -> list[str]:
    """p50/p99 of each plugin hook's time per event, and of the whole callback, from the callback log lines."""
    hooks: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    levels: Counter = Counter()
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("level") in ("warning", "error", "critical"):
                levels[f"{entry['level']} {entry.get('event')}"] += 1
            if entry.get("event") != "callback":
                continue
            event = str(entry.get("sinch_event", "?"))
            hooks[(event, "(callback)", "")].append(float(entry.get("ms", 0)))
            for plugin in entry.get("plugins") or []:
                hooks[(event, plugin.get("plugin", "?"), plugin.get("hook", "?"))].append(float(plugin.get("ms", 0)))
    lines = [f"{'event':6} {'plugin':14} {'hook':16} {'calls':>7} {'p50 ms':>8} {'p99 ms':>8}"]
    for (event, plugin, hook), values in sorted(hooks.items()):
        lines.append(f"{event.upper():6} {plugin:14} {hook:16} {len(values):7} {statistics.median(values):8.2f} "
                     f"{percentile(values, .99):8.2f}")
    if levels:
        lines.append("log warnings/errors: " + ", ".join(f"{k} x{v}" for k, v in levels.most_common(8)))
    return lines


def start_profile(ctx: run.Context, pid: int, duration: float) -> subprocess.Popen:
    spy = profiling.py_spy()
    if spy is None:
        raise run.BenchError("--profile needs py-spy: .venv/bin/pip install py-spy")
    # --gil: only samples that hold the GIL (Python at work), not the loop waiting in epoll on a busy machine
    command = [*profiling.record_command(spy, pid, max(1, int(duration) - 2), ctx.tmp / "profile.txt"), "--gil"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def finish_profile(ctx: run.Context, spy: subprocess.Popen) -> list[str]:
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
    raw = ctx.tmp / "profile.txt"
    return profiling.top_functions(raw.read_text(), 30) if raw.exists() else ["(py-spy wrote nothing)"]


# ------------------------------------------------------------------------------------ main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=140.0, help="new calls per second (default 140)")
    parser.add_argument("--duration", type=float, default=90.0, help="seconds of new calls (default 90)")
    parser.add_argument("--short", action="store_true", help="60 calls/s for 15 s (a quick check)")
    parser.add_argument("--accounts", type=int, default=500, help="prepaid accounts (callers), default 500")
    parser.add_argument("--duplicates", type=float, default=0.1,
                        help="share of DICEs sent to both instances at once (default 0.1)")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help=f"server URL without database ({DEFAULT_POSTGRES})")
    parser.add_argument("--database", default=DEFAULT_DATABASE, help=f"dropped and created ({DEFAULT_DATABASE})")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the call mix")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (config, logs)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy on the first instance during the load: its top functions")
    args = parser.parse_args(argv)
    if args.short:
        args.rate, args.duration = 60.0, 15.0
    if not 0 < args.duration <= 540:
        parser.error("--duration must be in (0, 540]: requests are signed as they are sent, but keep runs short")
    return args


def percent_ok(stats: Stats) -> list[tuple[str, bool, str]]:
    verdicts = []
    for event, limit in TARGETS_MS.items():
        p99 = percentile(stats.latency.get(event, []), .99)
        verdicts.append((f"{event.upper()} p99 < {limit:.0f} ms", p99 < limit, f"{p99:.1f} ms"))
    bad = sum(n for counts in stats.status.values() for s, n in counts.items() if s != 200)
    failed = sum(stats.failures.values())
    verdicts.append(("every answer 200, no failed request", bad == 0 and failed == 0,
                     f"{bad} non-200, {failed} failed/unexpected"))
    return verdicts


async def main_async(args: argparse.Namespace, ctx: run.Context) -> int:
    database_url = await recreate_database(args.postgres, args.database)
    ctx.extra_env["BENCH_DATABASE_URL"] = database_url
    ctx.extra_env["BENCH_CRM_SECRET"] = base64.b64encode(os.urandom(24)).decode()
    receiver_port = run.free_port()
    receiver = ctx.procs.start("crm receiver", [sys.executable, str(run.BENCH / "crm_receiver.py"), "--port",
                                                str(receiver_port)], ALL_CPUS, ctx.tmp / "crm-receiver.log", ctx.env())
    run.wait_listening(receiver, receiver_port)
    config = ctx.tmp / "callflow.toml"
    config.write_text(config_toml(ctx.tmp, database_url, receiver_port))
    ctx.callgate("check-config", "--config", str(config))
    accounts = make_accounts(args.accounts)
    await seed_accounts(ctx, config, database_url, accounts)

    ports, logs, procs = [], [], []
    for n in range(2):
        port = run.free_port()
        log = ctx.tmp / f"callgate-{n}.log"
        proc = ctx.procs.start(f"callgate {n}", run.callgate_command(config, port, 1), ALL_CPUS, log, ctx.env())
        run.wait_listening(proc, port)
        run.wait_ready(proc, port)
        ports.append(port)
        logs.append(log)
        procs.append(proc)
    print(f"two instances on ports {ports[0]} and {ports[1]}, one database {database_url}; "
          f"{len(accounts.start)} accounts; {args.rate:g} calls/s for {args.duration:g} s "
          f"({args.duplicates:.0%} of DICEs to both instances)", flush=True)

    driver = Driver(args, ports, ctx.signer, accounts)
    pids = [proc.pid for proc in procs]
    before = await Usage.now(database_url, args.database, pids)
    spy = start_profile(ctx, procs[0].pid, args.duration) if args.profile else None
    started = time.monotonic()
    sessions: Counter = Counter()
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(sample_sessions(database_url, args.database, sessions, stop_sampling))
    await driver.run()
    stop_sampling.set()
    await sampler
    elapsed = time.monotonic() - started
    stats = driver.stats
    await wait_delivered(database_url, receiver_port, set(stats.ended))
    usage = await Usage.now(database_url, args.database, pids)     # deliveries included: they are part of a call
    for proc in procs:
        ctx.procs.stop(proc)
    records = await receiver_records(receiver_port)

    print(f"\n{stats.calls_started} calls in {elapsed:.1f} s ({stats.calls_started / args.duration:.1f} calls/s "
          f"started), outcomes: " + ", ".join(f"{k} {v}" for k, v in stats.outcomes.most_common()))
    print(usage.per_call(before, stats.calls_started))
    print(sessions_line(sessions))
    print("\nanswers, as the driver timed them (send to last byte):")
    print("\n".join(latency_table(stats)))
    if stats.failures:
        print("failures: " + ", ".join(f"{k} x{v}" for k, v in stats.failures.most_common()))
    for text in stats.problems:
        print("  " + text)
    print("\nwhere the time goes, from both instances' callback log lines:")
    print("\n".join(hook_profile(logs)))
    if spy is not None:
        print("\nthe first instance's CPU during the load (py-spy):")
        print("\n".join(finish_profile(ctx, spy)))
    print()
    money = await check_money(database_url, accounts, stats)
    recs = check_records(records, stats)
    verdicts = percent_ok(stats)
    verdicts.append(("money exact", not money, "; ".join(money[:5]) or "every balance as computed"))
    verdicts.append(("one record per ended call", not recs, "; ".join(recs[:5]) or "all delivered, costs match"))
    print()
    for name, ok, detail in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    return 0 if all(ok for _, ok, _ in verdicts) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, run._terminate)
    tmp = Path(tempfile.mkdtemp(prefix="callgate-callflow-"))
    secret = base64.b64encode(os.urandom(32)).decode()
    ctx = run.Context(args, tmp, run.Processes(), run.Signer(samples.APPLICATION_KEY, secret, "-", secret))
    try:
        return asyncio.run(main_async(args, ctx))
    except run.BenchError as exc:
        print(f"\ncallflow: {exc}", file=sys.stderr)
        return 2
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"\ncallflow: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ncallflow: interrupted", file=sys.stderr)
        return 130
    finally:
        ctx.close(args.keep)


if __name__ == "__main__":
    sys.exit(main())
