"""Shared by the crm_export tests: configuration builders and a way to reach the running plugin."""

from __future__ import annotations

import asyncio
import os
import re
import time
from decimal import Decimal
from typing import Any

from callgate import hookimpl
from callgate.state import PLUGINS

WEBHOOK_SECRET = "test-webhook-secret-0123456789"
ROUTES = [{"name": "sweden", "prefix": "+46", "action": {"name": "connectPstn", "number": "{to}",
                                                         "maxDuration": 3600}}]
#: Short timings so retries happen in milliseconds.
FAST = {"timeout_seconds": 0.5, "backoff_initial_seconds": 0.02, "backoff_max_seconds": 0.2}


def from_env(variable: str, value: str) -> dict[str, str]:
    """``{ env = variable }`` for a config, with ``value`` set in this process's environment (and so in the servers
    the tests start): callgate refuses a secret written in the config as it is."""
    variable = re.sub(r"\W", "_", variable).upper()
    os.environ[variable] = value
    return {"env": variable}


def webhook_sink(url: str, name: str = "hook", secret: str = WEBHOOK_SECRET, **overrides: Any) -> dict[str, Any]:
    return {"name": name, "type": "webhook", "url": url + "/hook", "secret": from_env(f"crm_test_secret_{name}", secret),
            **FAST, **overrides}


def hubspot_sink(url: str, name: str = "hubspot", token: str = "test-token", **overrides: Any) -> dict[str, Any]:
    return {"name": name, "type": "hubspot", "token": from_env(f"crm_test_token_{name}", token), "base_url": url,
            **FAST, **overrides}


def crm_config(database_url: str | dict[str, str], *sinks: dict[str, Any], enabled: tuple[str, ...] = (),
               **settings: Any) -> dict:
    """A whole callgate config (dict) with crm_export enabled, last among ``enabled``."""
    table = {"database_url": database_url, "sinks": list(sinks), "poll_interval_seconds": 0.05,
             "facts_flush_interval_seconds": 0.05, **settings}
    return {"plugins": {"enabled": [*enabled, "crm_export"], "crm_export": table, "router": {"routes": ROUTES}}}


def plugin_of(client: Any, name: str = "crm_export") -> Any:
    return next(p.instance for p in client.app[PLUGINS].loaded if p.name == name)


async def eventually(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class PricesCalls:
    """Stands in for credit_check (written by another team): in on_disconnect it leaves the note its
    contract documents, ``call.notes["credit_check"]``, for the plugins enabled after it."""

    @hookimpl
    def on_disconnect(self, call):
        call.notes["credit_check"] = {"account": "acme", "cost": Decimal("0.0600"), "currency": "EUR",
                                      "billed_seconds": 180, "sinch_debit": call.debit.amount if call.debit else None}
