"""config.toml: loading, secrets from the environment, and validation.

Every error names the file and the TOML key (``[server].port``) and says what is
wrong, so that start-up fails with one readable message instead of a traceback.

Values written as ``{ env = "NAME" }`` anywhere in the file are read from the
environment variable NAME.  Application secrets (v1) and service secrets (v2) *must*
be written that way: a secret never lives in a file that may end up in a repository.

Relative paths in plugin tables are taken from the config file's folder, whatever the
working directory: the core validates a plugin's ``Config`` with that folder in pydantic's
validation context, and a plugin's fields typed :data:`ConfigPath` or :data:`DatabaseURL`
(or validated with :func:`resolve_config_path` / :func:`resolve_database_url`) use it.
With no config file (the built-in defaults) they stay relative to the working directory.
"""

from __future__ import annotations

import importlib
import os
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretBytes,
    SecretStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .decisions import MAX_PROMPT_CHARS
from .phone import check_region

#: A locale or a voice name as a configuration gives it: spaces around it dropped, not empty (nor only spaces: Sinch
#: would be sent nothing), at most 64 characters.
ShortName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


def check_speakable(text: str) -> None:
    """A prompt's text must be one Sinch speaks (v1 ``say``, v2 SAY; empty means no prompt): a ValueError (a pydantic
    validator's) saying how long it is otherwise."""
    if len(text) > MAX_PROMPT_CHARS:
        raise ValueError(f"is {len(text)} characters; Sinch speaks at most {MAX_PROMPT_CHARS} in one prompt")

ENV_KEY = "SINCH_APPLICATION_KEY"
ENV_SECRET = "SINCH_APPLICATION_SECRET"
#: The one Voice API v2 service, when config.toml has no ``[[services]]``.
ENV_SERVICE_ID = "SINCH_SERVICE_ID"
ENV_SERVICE_SECRET = "SINCH_SERVICE_SECRET"
ENV_CONFIG = "CALLGATE_CONFIG"
#: The key of pydantic's validation context under which the core gives a plugin's ``Config`` the folder of
#: the config file (a ``Path``; ``None`` when there is no file: the working directory).
CONFIG_DIR = "callgate_config_dir"
#: ... and the name of the plugin's distribution, for messages that say what to install.
PLUGIN_DISTRIBUTION = "callgate_plugin_distribution"
#: ``[server] event_loop`` (see :mod:`callgate.loops`).
EventLoopSetting = Literal["auto", "uvloop", "asyncio"]


#: The paths callgate serves itself (on the ops port, or on the callback port when ``ops_port`` is 0).
OPS_PATHS = ("/metrics", "/healthz", "/readyz")


class ConfigError(Exception):
    """config.toml (or the environment it refers to) is wrong; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    """``[server]``: where callgate listens and how it answers."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    #: Where Sinch Voice API v1 callbacks (ICE, ACE, PIE, DICE, Notify) are POSTed: the app's Callback URL.
    callback_path: str = "/sinch/callback"
    #: The path Sinch signs, when a proxy rewrites the public path before callgate sees it.
    public_path: str | None = None
    #: Where Sinch Voice API v2 webhooks (``call.incoming``, ...) are POSTed: the service's webhook URL.
    webhook_path: str = "/sinch/webhook"
    #: ``public_path`` of the webhook path: the path Sinch signs, when a proxy rewrites it.
    public_webhook_path: str | None = None
    #: The text-to-speech voice of the prompts spoken on v2 calls (SVAML v2 ``say`` needs one; v1 uses ``locale``).
    voice: ShortName = "Emma"
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    #: The whole body must arrive within this after the request head, else 408 and the connection
    #: is closed (a slow sender cannot hold a connection); also how long the rest of a body that
    #: was refused unread (413, 415, ...) is read and discarded before the connection is closed.
    body_timeout_seconds: float = Field(5.0, gt=0, le=300)
    #: An idle keep-alive connection, or one that has not sent a whole request head this long
    #: after it opened (or after its previous answer), is closed.
    keepalive_timeout_seconds: float = Field(75.0, gt=0, le=3600)
    #: Longest request target (path and query) and longest header name or value; longer: 400,
    #: connection closed.
    max_header_bytes: int = Field(8190, ge=1024, le=65536)
    #: Most header lines in one request; more: 400, connection closed.
    max_headers: int = Field(128, ge=16, le=1000)
    #: Budget for a whole ICE/ACE/PIE callback, every plugin included.
    deadline_ms: int = Field(2000, ge=10, le=4500)
    #: Budget for DICE and Notify, whose plugins record the call durably.
    record_deadline_ms: int = Field(4000, ge=10, le=30000)
    #: Per-plugin timeout for plugins whose table sets no ``timeout_ms``.
    plugin_timeout_ms: int = Field(1000, ge=1, le=30000)
    #: The answer when no plugin has an opinion on ``authorize_call``.
    default_decision: Literal["allow", "deny"] = "allow"
    #: Prepend an ``answer`` instruction to ICE answers that play a prompt.
    answer_before_prompts: bool = True
    #: Spoken to the caller when a call is allowed but no route matches (empty: none).
    no_route_prompt: str = ""
    #: The locale of the prompts spoken on v1 calls (``say``) that name none.
    locale: ShortName = "en-US"
    #: Serve /metrics, /healthz and /readyz on this port instead of the callback port (0: same port).
    ops_port: int = Field(0, ge=0, le=65535)
    ops_host: str = "127.0.0.1"
    #: On SIGTERM, /readyz fails this long before the server stops accepting (for load balancers).
    drain_seconds: float = Field(0.0, ge=0, le=300)
    #: How long callbacks in flight may take to finish when the server stops.
    shutdown_timeout_seconds: float = Field(30.0, ge=0, le=600)
    #: The event loop ``callgate serve`` runs on: "asyncio", "uvloop", or "auto" (uvloop where installed).
    #: asyncio by default: uvloop answered about 10 % more callbacks per second but with a worse p99 (docs/performance.md).
    event_loop: EventLoopSetting = "asyncio"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: The country (ISO 3166 code, "SE") whose national formats (070 123 45 67) numbers written in the
    #: config, in plugins' files and on the command line may use; None: write every number with +CC or 00.
    default_region: str | None = None

    @field_validator("callback_path", "public_path", "webhook_path", "public_webhook_path")
    @classmethod
    def _absolute_path(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or "?" in value):
            raise ValueError("must be an absolute URL path like /sinch/callback, without a query string")
        return value

    @field_validator("callback_path", "webhook_path")
    @classmethod
    def _not_an_ops_path(cls, value: str, info: ValidationInfo) -> str:
        if value.rstrip("/") in OPS_PATHS:
            example = "/sinch/callback" if info.field_name == "callback_path" else "/sinch/webhook"
            raise ValueError(f"must not be {value!r}: {', '.join(OPS_PATHS)} are callgate's own (on the callback port "
                             f"when ops_port is 0); e.g. \"{example}\"")
        return value

    @field_validator("no_route_prompt")
    @classmethod
    def _sayable(cls, value: str) -> str:
        value = value.strip()                 # only spaces: no prompt, as empty
        check_speakable(value)
        return value

    @field_validator("host", "ops_host")
    @classmethod
    def _a_host(cls, value: str) -> str:
        if not value.strip():
            raise ValueError('must name an address: "127.0.0.1" (this machine only) or "0.0.0.0" (every interface)')
        return value

    @field_validator("webhook_path")
    @classmethod
    def _own_path(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("callback_path"):
            raise ValueError(f"must differ from callback_path ({value!r}): v1 callbacks and v2 webhooks are told "
                             f"apart by their path; e.g. callback_path = \"/sinch/callback\" and "
                             f"webhook_path = \"/sinch/webhook\"")
        return value

    @field_validator("port", "ops_port", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):          # pydantic would take true for port 1
            raise ValueError("must be a port number (0-65535), not true or false")
        return value

    @field_validator("ops_port")
    @classmethod
    def _own_port(cls, value: int, info: ValidationInfo) -> int:
        if value and value == info.data.get("port"):
            raise ValueError(f"must differ from port ({value}): the ops application listens on a port of its own "
                             f"(0: /metrics, /healthz and /readyz on the callback port)")
        return value

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return None if value is None else check_region(value)

    @property
    def signed_path(self) -> str:
        """The path that goes into the signature (the public one, when behind a rewriting proxy)."""
        return self.public_path or self.callback_path

    @property
    def signed_webhook_path(self) -> str:
        """The path that goes into a v2 webhook's signature (the public one, when behind a rewriting proxy)."""
        return self.public_webhook_path or self.webhook_path


class Application(_Strict):
    """``[[applications]]``: a Sinch application whose callbacks callgate accepts."""

    key: str = Field(min_length=1)
    #: One secret, or two while the secret is being rotated.
    secrets: tuple[SecretStr, ...] = Field(min_length=1, max_length=2)


class Service(_Strict):
    """``[[services]]``: a Sinch Voice API v2 service whose webhooks callgate accepts."""

    #: The ``serviceId`` (Sinch dashboard: Voice v2 > Services).
    id: str = Field(min_length=1)
    #: One secret, or two while the secret is being rotated.
    secrets: tuple[SecretStr, ...] = Field(min_length=1, max_length=2)


class SigningConfig(_Strict):
    """``[signing]``: how signed callbacks are checked."""

    #: Refuse a request whose x-timestamp is further than this from now, in either direction.
    window_seconds: int = Field(600, ge=1, le=86400)


class PluginsConfig(BaseModel):
    """``[plugins]``: which installed plugins run, in which order, with which settings."""

    model_config = ConfigDict(extra="allow", frozen=True)

    enabled: tuple[str, ...] = ()

    @field_validator("enabled")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        seen = [name for i, name in enumerate(value) if name in value[:i]]
        if seen:
            raise ValueError(f"{seen[0]!r} is listed twice")
        return value

    _directory: Path | None = PrivateAttr(None)
    #: ``[plugins.<name>]`` tables naming an environment variable that is not set: name -> the message.  Only
    #: building that plugin fails (``table``), so a command that uses another plugin does not need its secrets.
    _unresolved: dict[str, str] = PrivateAttr(default_factory=dict)
    #: The ``[plugins]`` tables as written in the file (``{ env = ... }`` not resolved): where a secret came from.
    _written: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def directory(self) -> Path | None:
        """The config file's folder, where relative paths in plugin tables start (None: the working directory)."""
        return self._directory

    def table(self, name: str) -> dict[str, Any]:
        """The ``[plugins.<name>]`` table (empty when absent); ConfigError if it names an unset variable."""
        if name in self._unresolved:
            raise ConfigError(self._unresolved[name])
        table = (self.model_extra or {}).get(name, {})
        return dict(table) if isinstance(table, Mapping) else table

    def written(self, name: str) -> Any:
        """The ``[plugins.<name>]`` table as written in the file, ``{ env = ... }`` tables kept (None when absent)."""
        return self._written.get(name)


class Config(_Strict):
    """The whole of config.toml."""

    server: ServerConfig = ServerConfig()
    signing: SigningConfig = SigningConfig()
    applications: tuple[Application, ...] = ()
    services: tuple[Service, ...] = ()
    plugins: PluginsConfig = Field(default_factory=PluginsConfig)
    #: Where the configuration came from, for messages ("<defaults>" when no file).
    source: str = "<defaults>"

    def application_secrets(self) -> dict[str, list[str]]:
        """Application key -> its Base64 secrets, for the signature verifier."""
        return {app.key: [s.get_secret_value() for s in app.secrets] for app in self.applications}

    def service_secrets(self) -> dict[str, list[str]]:
        """Service id -> its Base64 secrets, for the v2 signature verifier."""
        return {service.id: [s.get_secret_value() for s in service.secrets] for service in self.services}

    @field_validator("applications")
    @classmethod
    def _unique_keys(cls, value: tuple[Application, ...]) -> tuple[Application, ...]:
        _refuse_repeats([app.key for app in value], "application key")
        return value

    @field_validator("services")
    @classmethod
    def _unique_ids(cls, value: tuple[Service, ...]) -> tuple[Service, ...]:
        _refuse_repeats([service.id for service in value], "service id")
        return value


def _refuse_repeats(names: Sequence[str], what: str) -> None:
    repeated = [name for i, name in enumerate(names) if name in names[:i]]
    if repeated:
        raise ValueError(f"{what} {repeated[0]!r} is listed twice: give each one entry, with its secrets "
                         f"(two while rotating)")


def load_config(path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate config.toml.

    ``path`` None means: ``$CALLGATE_CONFIG``, else ``./config.toml`` if it exists,
    else the embedded defaults.  Raises ConfigError naming the file and the key.
    """
    environ = os.environ if environ is None else environ
    if path is None:
        path = environ.get(ENV_CONFIG) or ("config.toml" if Path("config.toml").is_file() else None)
    if path is None:
        return config_from_dict({}, environ=environ)
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (give --config PATH, or set {ENV_CONFIG})") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a file (give --config the path of a config.toml)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): a TOML file is UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return config_from_dict(data, source=str(path), environ=environ, directory=path.absolute().parent)


def config_from_dict(data: Mapping[str, Any], *, source: str = "<defaults>",
                     environ: Mapping[str, str] | None = None, directory: Path | None = None) -> Config:
    """Validate an already-parsed configuration (used by load_config and by tests).

    ``directory``: the config file's folder, where relative paths in plugin tables start (None: the
    working directory).
    """
    environ = os.environ if environ is None else environ
    data = dict(data)
    data.pop("source", None)
    _require_env_secrets(data.get("applications", ()), source, "applications", ENV_SECRET)
    _require_env_secrets(data.get("services", ()), source, "services", ENV_SERVICE_SECRET)
    written = data.pop("plugins", {})
    plugins, unresolved = _resolve_plugin_tables(written, environ, source)
    data = resolve_env(data, environ, source)
    if not data.get("applications") and _env_pair(environ, ENV_KEY, ENV_SECRET, "[[applications]]"):
        data = {**data, "applications": [{"key": environ[ENV_KEY], "secrets": [environ[ENV_SECRET]]}]}
    if not data.get("services") and _env_pair(environ, ENV_SERVICE_ID, ENV_SERVICE_SECRET, "[[services]]"):
        data = {**data, "services": [{"id": environ[ENV_SERVICE_ID], "secrets": [environ[ENV_SERVICE_SECRET]]}]}
    try:
        config = Config.model_validate({**data, "plugins": plugins, "source": source})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    config.plugins._unresolved.update(unresolved)
    config.plugins._written = dict(written) if isinstance(written, Mapping) else {}
    config.plugins._directory = directory
    return config


def _env_pair(environ: Mapping[str, str], name: str, secret: str, table: str) -> bool:
    """Whether the environment gives both halves of a credential (``name`` and its ``secret``); one without the
    other is a ConfigError naming the missing variable (every callback would otherwise be refused, 401)."""
    given = [variable for variable in (name, secret) if environ.get(variable)]
    if len(given) == 1:
        missing = secret if given == [name] else name
        raise ConfigError(f"{given[0]} is set but {missing} is not: set both (or write {table} in config.toml)")
    return len(given) == 2


def _resolve_plugin_tables(plugins: Any, environ: Mapping[str, str], source: str) -> tuple[Any, dict[str, str]]:
    """``[plugins]`` with ``{ env = ... }`` resolved table by table: a table naming an unset variable is kept
    as written and its error returned by name, to be raised when that plugin is built (not before)."""
    if not isinstance(plugins, Mapping):
        return plugins, {}
    resolved, unresolved = {}, {}
    for key, value in plugins.items():
        if key == "enabled":
            resolved[key] = resolve_env(value, environ, source, ("plugins", "enabled"))
            continue
        try:
            resolved[key] = resolve_env(value, environ, source, ("plugins", key))
        except ConfigError as exc:
            resolved[key], unresolved[key] = value, str(exc)
    return resolved, unresolved


def resolve_env(value: Any, environ: Mapping[str, str], source: str, loc: tuple[str | int, ...] = ()) -> Any:
    """Replace every ``{ env = "NAME" }`` table by the value of that environment variable; an unset one is a
    ConfigError naming the key as the file writes it (``[plugins.crm_export].sinks[0].secret``)."""
    if isinstance(value, Mapping):
        if set(value) == {"env"}:
            name = value["env"]
            if not isinstance(name, str) or name not in environ:
                raise ConfigError(f"{source}: {toml_key(loc) or '<root>'}: environment variable {name} is not set")
            return environ[name]
        return {k: resolve_env(v, environ, source, (*loc, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v, environ, source, (*loc, i)) for i, v in enumerate(value)]
    return value


def _require_env_secrets(entries: Any, source: str, table: str, variable: str) -> None:
    """Refuse a secret written in the file in ``[[applications]]`` / ``[[services]]`` (``table``); the message
    names the key and the fix, with ``variable`` as the example, and never repeats the secret."""
    if not isinstance(entries, list):
        return
    for i, entry in enumerate(entries):
        secrets = entry.get("secrets", []) if isinstance(entry, Mapping) else []
        for j, secret in enumerate(secrets if isinstance(secrets, list) else []):
            if isinstance(secret, str):
                raise ConfigError(
                    f"{source}: {table}[{i}].secrets[{j}]: a secret must not be written in the file; "
                    f'write secrets = [{{ env = "{variable}" }}] and set that variable')


def secrets_written_in_the_file(settings: BaseModel, written: Any) -> list[tuple[str | int, ...]]:
    """Where a plugin's validated ``settings`` hold a secret (a ``SecretStr`` or ``SecretBytes`` field, at any
    depth) that its table, as ``written`` in the file, gives as a plain value instead of ``{ env = "NAME" }``: the
    keys' paths.  A secret left at its default, or read from the environment, is not listed, and neither is a URL
    without a password (``sqlite:///var/x.sqlite3``, ``postgresql://db/callgate``: a database URL is typed as a
    secret for the password it may hold)."""
    found = []
    for path, secret in _secret_paths(settings, ()):
        if _url_without_password(secret):
            continue
        node = written
        for part in path:
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                node = None
                break
        if node is not None and not isinstance(node, Mapping):
            found.append(path)
    return found


def _url_without_password(secret: SecretStr | SecretBytes) -> bool:
    value = secret.get_secret_value()
    if not isinstance(value, str) or "://" not in value:
        return False
    try:
        return urlsplit(value).password is None
    except ValueError:          # not a URL after all (a port that is not a number, ...)
        return False


def _secret_paths(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], SecretStr | SecretBytes]]:
    """Every secret in ``value`` (a validated model and what it holds), with its path of keys and indexes."""
    if isinstance(value, (SecretStr, SecretBytes)):
        yield path, value
    elif isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            yield from _secret_paths(getattr(value, name), (*path, field.alias or name))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _secret_paths(item, (*path, index))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _secret_paths(item, (*path, key))


#: pydantic's words for the problems a TOML file has most, in a config file's words (by pydantic's error type).
_IN_TOML_WORDS = {
    "extra_forbidden": "unknown key: this table has no such setting (a typo?)",
    "missing": "required, and not given",
    "list_type": 'must be a list, like ["a", "b"]',
    "tuple_type": 'must be a list, like ["a", "b"]',
}


def format_validation_error(exc: ValidationError, source: str, prefix: Sequence[str | int] = ()) -> str:
    """One line per problem: ``config.toml: [server].port: Input should be ...``."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        key = toml_key([*prefix, *err["loc"]])
        if err["type"] == "string_too_short" and err.get("ctx", {}).get("min_length") == 1:
            message = "must not be empty"
        else:
            message = _IN_TOML_WORDS.get(err["type"]) or err["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {key}: {message}")
    return "\n".join(lines)


def toml_key(loc: Sequence[str | int]) -> str:
    """``("server", "port")`` -> ``[server].port``; ``("plugins", "x", "rules", 0)`` -> ``[plugins.x].rules[0]``."""
    loc = list(loc)
    table_len = 2 if loc[:1] == ["plugins"] and len(loc) > 2 else 1
    if len(loc) <= table_len:
        return ".".join(map(str, loc))
    table = ".".join(map(str, loc[:table_len]))
    key = table if isinstance(loc[table_len], int) else f"[{table}]"  # arrays of tables: applications[0].key
    for part in loc[table_len:]:
        key += f"[{part}]" if isinstance(part, int) else f".{part}"
    return key


# --- paths in plugin tables -------------------------------------------------------------------

def config_dir(info: ValidationInfo) -> Path | None:
    """The config file's folder, in a plugin ``Config`` validator (None: no file, the working directory)."""
    return (info.context or {}).get(CONFIG_DIR)


def resolve_config_path(path: str | Path, info: ValidationInfo) -> Path:
    """A path written in config.toml: ``~`` expanded, and a relative path taken from the config file's folder
    (from the working directory when there is no config file).  For a plugin ``Config`` validator."""
    path = Path(path).expanduser()
    base = config_dir(info)
    return path if path.is_absolute() or base is None else base / path


def resolve_database_url(url: str, info: ValidationInfo) -> str:
    """A database URL written in config.toml: a relative SQLite path (``sqlite:///data/x.sqlite3``) is taken from
    the config file's folder, as :func:`resolve_config_path` does; other URLs are returned as they are.

    A URL of any other scheme than ``sqlite``, ``postgresql`` and ``postgres`` is a ValueError saying what to
    write.  A PostgreSQL URL needs the asyncpg driver: when it cannot be imported, a ValueError says what to
    install (the plugin distribution's ``postgres`` extra), so ``check-config`` and ``serve`` fail at once.
    """
    scheme = urlsplit(url).scheme
    if scheme not in ("sqlite", "postgresql", "postgres"):
        raise ValueError("must be sqlite:///path/to/file.sqlite3 or postgresql://user@host/database")
    if scheme in ("postgresql", "postgres"):
        try:
            importlib.import_module("asyncpg")
        except ImportError as exc:
            distribution = (info.context or {}).get(PLUGIN_DISTRIBUTION) or "callgate"
            raise ValueError(f"a PostgreSQL database needs the asyncpg driver, which cannot be imported ({exc}): "
                             f"pip install '{distribution}[postgres]'") from None
        return url
    prefix = "sqlite:///"
    rest = url[len(prefix):]
    if not url.startswith(prefix) or rest.startswith("/") or rest in ("", ":memory:"):
        return url
    return prefix + str(resolve_config_path(rest, info))


#: A plugin ``Config`` field holding a path: relative to the config file's folder (see resolve_config_path).
ConfigPath = Annotated[Path, AfterValidator(resolve_config_path)]
#: A plugin ``Config`` field holding a database URL (see resolve_database_url).  Give it a default with
#: ``Field("sqlite:///...", validate_default=True)`` so that the default is resolved too.
DatabaseURL = Annotated[str, AfterValidator(resolve_database_url)]


def _resolve_secret_database_url(url: SecretStr, info: ValidationInfo) -> SecretStr:
    return SecretStr(resolve_database_url(url.get_secret_value(), info))


#: A :data:`DatabaseURL` that may hold a password: a ``SecretStr`` (never shown in a repr, a log or an error), so
#: the file must give it as ``{ env = "NAME" }`` when it holds one.  Default: ``Field(SecretStr("sqlite:///..."),
#: validate_default=True)``.
SecretDatabaseURL = Annotated[SecretStr, AfterValidator(_resolve_secret_database_url)]
