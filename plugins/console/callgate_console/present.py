"""Stored rows as the pages, the JSON API and the stream show them: times in UTC, JSON formatted,
numbers masked when ``mask_numbers`` is on.  Pure functions; escaping is the templates' (Jinja2
autoescaping) and the browser's (``textContent``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import orjson

from .masking import Mask


def utc(ts: float) -> str:
    """``2026-12-06 21:03:51.123`` (UTC)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def call_url(key: str) -> str:
    return "/console/calls/" + quote(key, safe="")


def _masked(value: str | None, mask: Mask) -> str | None:
    return None if value is None else mask(value)


def summary(row: Mapping[str, Any], mask: Mask) -> dict[str, Any]:
    """One callback in a few fields: a row of the live view and of search results, an event of the stream."""
    key = row["call_key"]
    return {
        "id": row["id"],
        "time": utc(row["received_at"]),
        "received_at": row["received_at"],
        "generation": row["generation"],
        "event": row["event"],
        "kind": row["kind"],
        "call_key": key,
        "callid": row["callid"],
        "session": row["session"],
        "caller": _masked(row["caller"], mask),
        "callee": _masked(row["callee"], mask),
        "status": row["status"],
        "decision": row["decision"],
        "plugin": row["deciding_plugin"],
        "reason": _masked(row["reason"], mask),
        "summary": mask(row["summary"]),
        "url": call_url(key) if key else None,
    }


def pretty(text: str) -> str:
    """A JSON text indented (2 spaces, keys in the order sent); anything else as it is."""
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return text


def entry(row: Mapping[str, Any], mask: Mask) -> dict[str, Any]:
    """One callback of a call's timeline: its summary, request headers and body, answer and plugin trace."""
    trace = [{**step, "verdict": mask(step["verdict"])} for step in row["trace"]]
    return {
        **summary(row, mask),
        "problem": _masked(row["problem"], mask),
        "ms": row["ms"],
        "headers": [[name, mask(value)] for name, value in row["headers"]],
        "request": mask(pretty(row["body"])),
        "answer": mask(pretty(row["answer"])),
        "trace": trace,
    }


def call_summary(key: str, rows: Sequence[Mapping[str, Any]], mask: Mask) -> dict[str, Any]:
    """The call ``key`` at a glance, from its callbacks (a v2 call's: those of every leg of its session): who called
    whom, its generation, decision and deciding plugin (the incoming callback's, when it was recorded), when it
    ended (once each of its legs has: the last leg's end; None while one is still on) and its legs (call key and
    page) in the order they first appear."""
    first = next((r for r in rows if r["kind"] == "incoming"), rows[0])
    caller = next((r["caller"] for r in rows if r["caller"]), None)
    callee = next((r["callee"] for r in rows if r["callee"]), None)
    legs = dict.fromkeys(r["call_key"] for r in rows if r["call_key"])
    ended_legs = {r["call_key"] for r in rows if r["kind"] == "ended"}
    # Ended once every leg seen has: when the last of them did (a leg still on keeps the call in progress).
    ended = next((r for r in reversed(rows) if r["kind"] == "ended"), None) if legs.keys() <= ended_legs else None
    return {
        "call_key": key,
        "callid": next((r["callid"] for r in rows if r["call_key"] == key), first["callid"]),
        "generation": first["generation"],
        "caller": _masked(caller, mask),
        "callee": _masked(callee, mask),
        "decision": first["decision"],
        "plugin": first["deciding_plugin"],
        "reason": _masked(first["reason"], mask),
        "started": utc(rows[0]["received_at"]),
        "ended": utc(ended["received_at"]) if ended else None,
        "callbacks": len(rows),
        "legs": [{"call_key": leg, "url": call_url(leg)} for leg in legs],
    }
