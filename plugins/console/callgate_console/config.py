"""``[plugins.console]``: every setting, its default and what it means (the README has the table).

The access token is not a setting: it comes from the environment variable ``CALLGATE_CONSOLE_TOKEN``
(:data:`TOKEN_ENV`), read when the plugin is built, so it is never written in config.toml.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from callgate.config import SecretDatabaseURL

DEFAULT_DATABASE_URL = "sqlite:///var/callgate/console.sqlite3"
#: The environment variable holding the console's access token.
TOKEN_ENV = "CALLGATE_CONSOLE_TOKEN"
#: The shortest token accepted (a guessable token would open every recorded call).
MIN_TOKEN_CHARS = 16


class ConsoleConfig(BaseModel):
    """Validated ``[plugins.console]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The store: ``sqlite:///relative/path.sqlite3`` (default; relative to the config file's folder), or
    #: ``postgresql://...`` so that several instances (and ``--workers``) show one history.
    #: Write ``database_url = { env = "CONSOLE_DATABASE_URL" }`` when it holds a password.
    database_url: SecretDatabaseURL = Field(SecretStr(DEFAULT_DATABASE_URL), validate_default=True)
    #: Callbacks older than this many hours are removed (oldest first).
    retention_hours: float = Field(168, gt=0, le=24 * 3650)
    #: At most this many callbacks are kept (the oldest are removed first).
    max_callbacks: int = Field(100_000, ge=100, le=100_000_000)
    #: Show phone numbers as ``+4670****567`` (a prefix and the last 3 digits) on every page, in the JSON
    #: API and in the live stream; search still finds them by the full number.
    mask_numbers: bool = False
    #: Recorded callbacks are written in one transaction this often (milliseconds).  Every 100 ms rather than
    #: 250: the same throughput under bench/run.py's load, a p99 2-3 ms lower (a smaller batch holds the
    #: event loop for less while it is handed over, packed and freed), and the live view sooner.
    flush_interval_ms: int = Field(100, ge=10, le=60_000)
    #: Callbacks waiting to be written; beyond it a new one is dropped and counted (an answer never waits).
    queue_limit: int = Field(10_000, ge=10, le=1_000_000)
    #: How long a session cookie stays valid after the login (hours).
    session_hours: float = Field(12, gt=0, le=24 * 30)

