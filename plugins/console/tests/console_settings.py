"""The console tests' token and configuration, in a module of their own: a test module cannot import them from
conftest.py, whose name every plugin's tests share (the whole suite imports another plugin's conftest)."""

from __future__ import annotations

from typing import Any

TOKEN = "test-console-token-0123456789"
ROUTE_ALL = {"name": "all", "prefix": "+", "action": {"name": "connectPstn", "number": "{to}", "maxDuration": 600}}


def console_config(database_url: str, **settings: Any) -> dict[str, Any]:
    return {"server": {"ops_port": 9}, "plugins": {"enabled": ["console"], "console": {
        "database_url": database_url, **settings}, "router": {"routes": [ROUTE_ALL]}}}
