"""``callgate crm status | retry | deliver-now | replay``: look at and act on the outbox (the running server delivers).

These commands only change delivery states in the outbox database named by
``[plugins.crm_export] database_url``; every running instance picks the change up within
``poll_interval_seconds``.  No command ever deletes a record.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import datetime, timezone

from callgate.protocols.timestamps import parse_timestamp
from callgate.storage import DatabaseError, MissingDatabaseError

from .config import CrmExportConfig
from .outbox import Outbox, SinkStatus

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DATE = re.compile(r"^\d{4}-\d\d-\d\d$")


def parse_moment(text: str, now: float) -> float:
    """``--since``/``--until``: ``30m``, ``2h``, ``7d`` (ago), a date ``2025-03-14`` (00:00 UTC) or an ISO
    date-time (``2025-03-14T09:00:00Z``; no zone means UTC) -> Unix seconds.  Raises ValueError."""
    match = _RELATIVE.match(text)
    if match:
        return now - float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    text = text.strip()
    if _DATE.match(text):
        text += "T00:00:00Z"
    moment = parse_timestamp(text)
    if moment is None:
        raise ValueError(f"{text!r} is not a time: use e.g. 2h, 7d, 2025-03-14 or 2025-03-14T09:00:00Z")
    return moment.timestamp()


def _moment(now: float):
    def convert(text: str) -> float:
        try:
            return parse_moment(text, now)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


#: ``--callid``: calls are kept by their key.
CALL_HELP = "only this call, by its key: the callid; v2:CALLID for a v2 leg (repeatable)"


def register(subparsers: argparse._SubParsersAction, config: CrmExportConfig) -> None:
    now = time.time()
    crm = subparsers.add_parser("crm", help="the CRM export outbox: status, retry dead letters, deliver pending "
                                       "records now, replay")
    sub = crm.add_subparsers(title="crm commands", metavar="COMMAND")

    status = sub.add_parser("status", help="queue depth, oldest pending record and dead letters per sink")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=lambda args: _run(config, _status, args))

    retry = sub.add_parser("retry", help="move dead letters back to pending (attempts start again from zero)")
    retry.add_argument("--sink", action="append", default=[], help="only this sink (repeatable; default: all)")
    retry.add_argument("--callid", action="append", default=[], help=CALL_HELP)
    retry.set_defaults(handler=lambda args: _run(config, _retry, args))

    deliver_now = sub.add_parser("deliver-now", help="make every pending record due now (after a receiver's "
                                                     "outage: instead of waiting for its backoff)")
    deliver_now.add_argument("--sink", action="append", default=[], help="only this sink (repeatable; default: all)")
    deliver_now.add_argument("--callid", action="append", default=[], help=CALL_HELP)
    deliver_now.set_defaults(handler=lambda args: _run(config, _deliver_now, args))

    replay = sub.add_parser("replay", help="deliver again the records of calls that ended in a time range "
                                           "(nothing is deleted; receivers see the same idempotency keys)")
    replay.add_argument("--since", required=True, type=_moment(now),
                        help="calls that ended at or after: 2h, 7d, 2025-03-14 or 2025-03-14T09:00:00Z")
    replay.add_argument("--until", type=_moment(now), help="calls that ended before (default: now)")
    replay.add_argument("--sink", action="append", default=[],
                        help="only this sink (repeatable; default: every configured sink, including new ones)")
    replay.add_argument("--callid", action="append", default=[], help=CALL_HELP)
    replay.add_argument("--dry-run", action="store_true", help="only count what would be queued")
    replay.set_defaults(handler=lambda args: _run(config, _replay, args))
    crm.set_defaults(handler=lambda args: (crm.print_help(), 2)[1])


async def _run(config: CrmExportConfig, command, args: argparse.Namespace) -> int:
    try:
        # The running server creates the outbox; a command on one that does not exist would act on nothing.
        outbox = await Outbox.open(config.database_url.get_secret_value(), [s.name for s in config.sinks], create=False)
    except MissingDatabaseError as exc:
        print(f"callgate crm: {exc}: check [plugins.crm_export] database_url (a relative path is taken from the "
              f"config file's folder)", file=sys.stderr)
        return 1
    except DatabaseError as exc:
        print(f"callgate crm: cannot open the outbox ([plugins.crm_export] database_url): {exc}", file=sys.stderr)
        return 1
    try:
        return await command(outbox, config, args)
    except DatabaseError as exc:
        print(f"callgate crm: the outbox database failed: {exc}", file=sys.stderr)
        return 1
    finally:
        await outbox.close()


def _unknown_sinks(config: CrmExportConfig, names: list[str]) -> int | None:
    unknown = [n for n in names if config.sink(n) is None]
    if unknown:
        known = ", ".join(s.name for s in config.sinks)
        print(f"callgate crm: unknown sink {unknown[0]!r} (configured sinks: {known})")
        return 2
    return None


async def _status(outbox: Outbox, config: CrmExportConfig, args: argparse.Namespace) -> int:
    now = time.time()
    statuses = await outbox.status(now)
    if args.json:
        print(json.dumps({"sinks": [_status_dict(s, config, now) for s in statuses]}, indent=2))
        return 0
    print(format_status(statuses, config, now))
    return 0


def _status_dict(s: SinkStatus, config: CrmExportConfig, now: float) -> dict:
    sink = config.sink(s.sink)
    return {
        "sink": s.sink, "type": sink.type if sink else None, "configured": sink is not None,
        "pending": s.pending, "in_flight": s.in_flight, "dead": s.dead, "delivered": s.delivered,
        "oldest_pending": _iso(s.oldest_pending),
        "oldest_pending_age_seconds": None if s.oldest_pending is None else round(now - s.oldest_pending, 3),
        "last_dead_letter": {"callid": s.last_error_callid, "error": s.last_error} if s.last_error_callid else None,
    }


def format_status(statuses: list[SinkStatus], config: CrmExportConfig, now: float) -> str:
    """The status table people read."""
    lines = [f"{'sink':<20} {'type':<8} {'pending':>8} {'in flight':>9} {'dead':>6} {'delivered':>10}  oldest pending"]
    for s in statuses:
        sink = config.sink(s.sink)
        oldest = "-" if s.oldest_pending is None else f"{_iso(s.oldest_pending)} ({_age(now - s.oldest_pending)} ago)"
        lines.append(f"{s.sink:<20} {(sink.type if sink else '?'):<8} {s.pending:>8} {s.in_flight:>9} {s.dead:>6} "
                     f"{s.delivered:>10}  {oldest}")
        if sink is None:
            lines.append("    not in config.toml any more: its records are not being delivered")
        if s.last_error_callid:
            lines.append(f"    last dead letter: {s.last_error_callid}: {s.last_error}")
    return "\n".join(lines)


async def _retry(outbox: Outbox, config: CrmExportConfig, args: argparse.Namespace) -> int:
    problem = _unknown_sinks(config, args.sink)
    if problem:
        return problem
    moved = await outbox.retry_dead(time.time(), sinks=args.sink, callids=args.callid)
    print(f"{moved} dead letter(s) moved back to pending; the running server delivers them within "
          f"{config.poll_interval_seconds:g} s")
    return 0


async def _deliver_now(outbox: Outbox, config: CrmExportConfig, args: argparse.Namespace) -> int:
    problem = _unknown_sinks(config, args.sink)
    if problem:
        return problem
    due = await outbox.deliver_now(time.time(), sinks=args.sink, callids=args.callid)
    print(f"{due} pending record(s) due now; the running server sends them within "
          f"{config.poll_interval_seconds:g} s")
    return 0


async def _replay(outbox: Outbox, config: CrmExportConfig, args: argparse.Namespace) -> int:
    problem = _unknown_sinks(config, args.sink)
    if problem:
        return problem
    sinks = args.sink or [s.name for s in config.sinks]
    span = f"calls that ended from {_iso(args.since)}" + (f" until {_iso(args.until)}" if args.until else "")
    if args.dry_run:
        count = await outbox.count_records(args.since, args.until, args.callid)
        print(f"{count} record(s) of {span} would be queued for {', '.join(sinks)}")
        return 0
    queued = await outbox.replay(time.time(), args.since, args.until, sinks=sinks, callids=args.callid)
    print(f"{queued} delivery(ies) of {span} queued for {', '.join(sinks)}")
    return 0


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
