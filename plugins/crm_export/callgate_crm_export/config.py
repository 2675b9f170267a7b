"""``[plugins.crm_export]``: where the outbox lives, which sinks receive the call records, how they are retried.

Every key has a default except the sinks themselves; secrets (``token``, ``secret``,
``headers`` values) are ``SecretStr`` and are written ``{ env = "NAME" }`` in config.toml.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from callgate.calls import END_RESULTS
from callgate.config import SecretDatabaseURL, resolve_config_path

_SINK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class _StrictTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeliverySettings(_StrictTable):
    """How one sink is retried: shared by every sink type."""

    name: str
    #: Requests in flight at once for this sink (an asyncio.Semaphore per sink).
    concurrency: int = Field(4, ge=1, le=64)
    #: Whole-request timeout; a request that takes longer counts as a failed attempt.
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    #: Attempts before a record goes to the dead-letter state (``callgate crm retry`` brings it back).
    max_attempts: int = Field(20, ge=1, le=1000)
    #: Backoff before attempt n+1: a random delay in [0, min(backoff_max, backoff_initial * 2**(n-1))] (full jitter).
    backoff_initial_seconds: float = Field(1.0, gt=0, le=3600)
    backoff_max_seconds: float = Field(900.0, gt=0, le=86400)
    #: A server's Retry-After is honoured up to this many seconds.
    max_retry_after_seconds: float = Field(3600.0, ge=0, le=86400)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _SINK_NAME.match(value):
            raise ValueError("a sink name is 1-63 characters: lower-case letters, digits, '_' and '-' "
                             "(it names the sink's queue in the database and in `callgate crm status`)")
        return value

    @model_validator(mode="after")
    def _backoff(self):
        if self.backoff_max_seconds < self.backoff_initial_seconds:
            raise ValueError("backoff_max_seconds must be at least backoff_initial_seconds")
        return self

    @property
    def lease_seconds(self) -> float:
        """How long a claimed record is reserved for the instance delivering it: one request and a margin."""
        return self.timeout_seconds + 5.0


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


class WebhookSink(DeliverySettings):
    """``type = "webhook"``: POST the record as JSON, HMAC-signed, to ``url``."""

    type: Literal["webhook"]
    url: str
    #: The HMAC-SHA256 key; the receiver verifies X-Callgate-Signature with it.
    secret: SecretStr
    #: Extra request headers (e.g. an Authorization header the receiver wants); values are secrets.
    headers: dict[str, SecretStr] = {}

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("the webhook secret must be at least 16 characters")
        return value


class HubSpotSink(DeliverySettings):
    """``type = "hubspot"``: one HubSpot call engagement per call (CRM v3 calls API)."""

    type: Literal["hubspot"]
    #: A private-app access token (scope crm.objects.contacts.write, which covers calls).
    token: SecretStr
    base_url: str = "https://api.hubapi.com"
    #: A HubSpot call property with unique values (create it once, e.g. ``sinch_callid``).  When set, every
    #: delivery is an upsert keyed by the callid, so a retried request can never create a second call.
    callid_property: str | None = None
    #: ``hubspot_owner_id`` set on every call.
    owner_id: str | None = None
    #: DICE result (``ANSWERED``, ``BUSY``, ...) -> a HubSpot call-disposition GUID (``hs_call_disposition``).
    dispositions: dict[str, str] = {}

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("dispositions")
    @classmethod
    def _results(cls, value: dict[str, str]) -> dict[str, str]:
        mapped: dict[str, str] = {}
        for key, guid in value.items():
            result = key.strip().upper()
            if result not in END_RESULTS:       # a typo would never match a call's result
                raise ValueError(f"{key!r} is not a call result; the results are {', '.join(sorted(END_RESULTS))}")
            if result in mapped:
                raise ValueError(f"{key!r} is the result {result} again (keys are read in capitals): give it once")
            mapped[result] = guid
        return mapped


class FileSink(DeliverySettings):
    """``type = "file"``: append each record as one JSON line to a local file (for bulk imports)."""

    type: Literal["file"]
    #: ``{date}`` in the path is replaced by the record's end date (YYYY-MM-DD, UTC): one file per day.
    #: A relative path is taken from the config file's folder.
    path: str
    #: fsync after every line, so a line written is a line kept (a record is marked delivered after it).
    fsync: bool = True
    concurrency: int = Field(1, ge=1, le=1)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str, info: ValidationInfo) -> str:
        return str(resolve_config_path(value, info))


SinkConfig = Annotated[WebhookSink | HubSpotSink | FileSink, Field(discriminator="type")]


class CrmExportConfig(_StrictTable):
    """The whole ``[plugins.crm_export]`` table."""

    #: The outbox: a SQLite file (one instance; a relative path is taken from the config file's folder) or
    #: ``postgresql://...`` (several instances share one queue).  A secret for the password it may hold: write
    #: ``{ env = "CRM_DATABASE_URL" }`` then (a password written in the file is refused).
    database_url: SecretDatabaseURL = Field(SecretStr("sqlite:///var/callgate/crm.sqlite3"), validate_default=True)
    sinks: list[SinkConfig] = Field(min_length=1)
    #: How often each instance looks for due records (records written by this instance are sent at once).
    poll_interval_seconds: float = Field(1.0, gt=0, le=60)
    #: ICE/ACE facts (who decided what, answer time) are written in the background this often.
    facts_flush_interval_seconds: float = Field(0.2, gt=0, le=10)
    #: PostgreSQL unreachable at start-up: how often opening the outbox is tried again (DICEs get 503 meanwhile).
    reconnect_seconds: float = Field(5.0, gt=0, le=300)
    #: At shutdown, in-flight requests get this long to finish; the rest are abandoned (and sent again later).
    shutdown_grace_seconds: float = Field(5.0, ge=0, le=60)
    #: Records delivered to every sink, and facts of calls that never ended, are removed after this many
    #: days (0: keep forever).  Pending and dead-letter records are never removed.
    retention_days: int = Field(30, ge=0)

    @field_validator("sinks")
    @classmethod
    def _unique(cls, sinks: list) -> list:
        names = [s.name for s in sinks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"sink name {twice[0]!r} is used twice; every sink needs its own name")
        return sinks

    def sink(self, name: str) -> WebhookSink | HubSpotSink | FileSink | None:
        return next((s for s in self.sinks if s.name == name), None)
