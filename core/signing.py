"""Sinch "Application" signed requests: signing (clients, tests, ``callgate sign``) and verifying callbacks.

The algorithm (Sinch Voice v1; the same for callbacks Sinch sends and for REST
requests an application sends)::

    Authorization: Application <application key>:<signature>
    signature      = Base64(HMAC-SHA256(key=Base64Decode(secret), msg=UTF-8(string_to_sign)))
    string_to_sign = METHOD + "\\n" + Content-MD5 + "\\n" + Content-Type + "\\n"
                     + "x-timestamp:" + x-timestamp + "\\n" + path
    Content-MD5    = Base64(MD5(raw body bytes)), "" for an empty body

Content-Type and x-timestamp are used exactly as sent (``; charset=utf-8`` and
seven fractional digits included), the body is hashed as received (never
re-serialised), and ``path`` is the URL path only -- no scheme, host or query
string; it is signed verbatim, so a path given with ``?query`` does not verify.

:class:`Verifier` checks every callback: a fixed set of application keys, one or
two secrets per key (two while a secret is rotated), constant-time comparison,
and a freshness window on ``x-timestamp`` checked *after* the signature (a forged
request is ``bad_signature``, a correctly signed replay is ``stale_timestamp``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone

from multidict import CIMultiDict, CIMultiDictProxy

from .events import parse_timestamp

__all__ = [
    "SCHEME",
    "SignatureError",
    "Verifier",
    "authorization",
    "content_md5",
    "signature",
    "signed_headers",
    "string_to_sign",
]

#: The Authorization scheme (compared case-insensitively when verifying).
SCHEME = "Application"
_SCHEME_LOWER = SCHEME.lower()


class SignatureError(ValueError):
    """A callback is not correctly signed.

    ``reason`` is a short code: ``missing_authorization``, ``malformed_authorization``,
    ``unsupported_scheme``, ``unknown_key``, ``missing_timestamp``, ``invalid_timestamp``,
    ``bad_signature``, ``stale_timestamp`` or ``future_timestamp``.  The message never
    contains a secret or the expected signature.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# --------------------------------------------------------------------------- signing

def _bytes(body: bytes | bytearray | memoryview | str) -> bytes | bytearray | memoryview:
    return body.encode("utf-8") if isinstance(body, str) else body


def content_md5(body: bytes) -> str:
    """Base64 of the MD5 of the raw body bytes (a ``str`` is taken as UTF-8); ``""`` for an empty body."""
    data = _bytes(body)
    if not data:
        return ""
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")


def string_to_sign(method: str, content_md5: str, content_type: str, x_timestamp: str, path: str) -> str:
    """The five signed lines: METHOD, Content-MD5, Content-Type, ``x-timestamp:<value>``, path."""
    return f"{method.upper()}\n{content_md5}\n{content_type}\nx-timestamp:{x_timestamp}\n{path}"


def _decode_secret(secret_b64: str) -> bytes:
    """The HMAC key: the Base64-decoded secret.  Raises ValueError (without echoing the secret)."""
    if not isinstance(secret_b64, str):
        raise ValueError(f"expected the Base64 secret as a string, got {type(secret_b64).__name__}")
    try:
        key = base64.b64decode(secret_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the application secret is not valid Base64 (copy it from the Sinch dashboard as is)") from None
    if not key:
        raise ValueError("the application secret is empty")
    return key


def _sign(key: bytes, string_to_sign: str) -> bytes:
    return base64.b64encode(hmac.digest(key, string_to_sign.encode("utf-8"), "sha256"))


def signature(secret_b64: str, string_to_sign: str) -> str:
    """Base64(HMAC-SHA256(Base64Decode(secret_b64), UTF-8(string_to_sign)))."""
    return _sign(_decode_secret(secret_b64), string_to_sign).decode("ascii")


def authorization(key: str, secret_b64: str, method: str, path: str, body: bytes,
                  content_type: str, x_timestamp: str) -> str:
    """The ``Authorization`` header value: ``Application <key>:<signature>``."""
    sts = string_to_sign(method, content_md5(body), content_type, x_timestamp, path)
    return f"{SCHEME} {key}:{signature(secret_b64, sts)}"


def _now_timestamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def signed_headers(key: str, secret_b64: str, path: str, body: bytes, *, method: str = "POST",
                   content_type: str = "application/json", timestamp: str | None = None) -> dict[str, str]:
    """Headers for a signed request: ``Content-Type``, ``x-timestamp`` (default: now, UTC, ``...Z``)
    and ``Authorization``.  Send ``body`` byte for byte as given; ``path`` without a query string."""
    x_timestamp = _now_timestamp() if timestamp is None else timestamp
    return {
        "Content-Type": content_type,
        "x-timestamp": x_timestamp,
        "Authorization": authorization(key, secret_b64, method, path, body, content_type, x_timestamp),
    }


# --------------------------------------------------------------------------- verifying

def _header_getter(headers: Mapping[str, str]) -> Callable[[str], str | None]:
    """Case-insensitive lookup by lower-case name; the first value of a repeated header wins."""
    if isinstance(headers, (CIMultiDictProxy, CIMultiDict)):
        return headers.get
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        lowered.setdefault(name.lower(), value)
    return lowered.get


def _shown(value: str, limit: int = 64) -> str:
    """A client-supplied value, safe to put in a message (repr, clipped)."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


class Verifier:
    """Checks the ``Authorization`` of Sinch callbacks against known applications.

    ``applications`` maps an application key to its Base64 secrets (one, or two while
    rotating; either is accepted).  A request whose ``x-timestamp`` is more than
    ``window_seconds`` older or newer than ``clock()`` is refused.
    """

    __slots__ = ("_clock", "_keys", "_window")

    def __init__(self, applications: Mapping[str, Sequence[str]], window_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:
        if isinstance(window_seconds, bool) or not isinstance(window_seconds, (int, float)) \
                or not math.isfinite(window_seconds) or window_seconds <= 0:
            raise ValueError(f"window_seconds must be a positive number of seconds, got {window_seconds!r}")
        keys: dict[str, tuple[bytes, ...]] = {}
        for app_key, secrets in applications.items():
            if not isinstance(app_key, str) or not app_key:
                raise ValueError(f"application key must be a non-empty string, got {app_key!r}")
            if isinstance(secrets, str):
                secrets = (secrets,)
            secrets = tuple(secrets)
            if not 1 <= len(secrets) <= 2:
                raise ValueError(f"application {app_key!r}: expected one or two secrets "
                                 f"(two while rotating), got {len(secrets)}")
            decoded = []
            for i, secret in enumerate(secrets):
                try:
                    decoded.append(_decode_secret(secret))
                except ValueError as exc:
                    which = f"secret #{i + 1}" if len(secrets) > 1 else "secret"
                    raise ValueError(f"application {app_key!r}: {which}: {exc}") from None
            keys[app_key] = tuple(decoded)
        if not keys:
            raise ValueError("no application: at least one application key and secret is needed")
        self._keys = keys
        self._window = float(window_seconds)
        self._clock = clock

    @property
    def application_keys(self) -> frozenset[str]:
        """The application keys this verifier accepts."""
        return frozenset(self._keys)

    @property
    def window_seconds(self) -> float:
        return self._window

    def __repr__(self) -> str:
        return f"Verifier(applications={sorted(self._keys)!r}, window_seconds={self._window:g})"

    def verify(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> str:
        """Return the application key that signed this request, or raise :class:`SignatureError`.

        ``path`` is the URL path Sinch called (the public one behind a rewriting proxy),
        without a query string; ``body`` the raw request bytes; ``headers`` an aiohttp
        ``CIMultiDictProxy`` or any mapping (names are matched case-insensitively).
        """
        get = _header_getter(headers)
        header = get("authorization")
        if header is None or not header.strip():
            raise SignatureError("missing_authorization", "no Authorization header: the request is not signed")
        parts = header.split(" ")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise SignatureError("malformed_authorization",
                                 "Authorization must be 'Application <key>:<signature>' with exactly one space")
        scheme, credentials = parts
        if scheme.lower() != _SCHEME_LOWER:
            raise SignatureError("unsupported_scheme",
                                 f"Authorization scheme {_shown(scheme)} is not supported: expected 'Application'")
        app_key, colon, sig = credentials.partition(":")
        if not colon or not app_key or not sig:
            raise SignatureError("malformed_authorization",
                                 "Authorization must be 'Application <key>:<signature>' (key and signature "
                                 "separated by ':')")
        secrets = self._keys.get(app_key)
        if secrets is None:
            raise SignatureError("unknown_key", f"unknown application key {_shown(app_key)}")
        x_timestamp = get("x-timestamp")
        if x_timestamp is None:
            raise SignatureError("missing_timestamp", "no x-timestamp header")

        sts = string_to_sign(method, content_md5(body), get("content-type") or "", x_timestamp, path)
        message = sts.encode("utf-8", "surrogatepass")
        given = sig.encode("utf-8", "surrogatepass")
        matched = False
        for secret in secrets:  # no early exit: the time taken doesn't tell which secret matched
            expected = base64.b64encode(hmac.digest(secret, message, "sha256"))
            matched |= hmac.compare_digest(expected, given)
        if not matched:
            raise SignatureError("bad_signature",
                                 f"signature does not match for application {_shown(app_key)} (signed: {method.upper()} "
                                 f"{_shown(path)}, Content-Type {_shown(get('content-type') or '')}, "
                                 f"x-timestamp {_shown(x_timestamp)}, {len(body)} body bytes)")

        when = parse_timestamp(x_timestamp)
        if when is None:
            raise SignatureError("invalid_timestamp", f"x-timestamp {_shown(x_timestamp)} is not an ISO-8601 date-time")
        age = self._clock() - when.timestamp()
        if age > self._window:
            raise SignatureError("stale_timestamp", f"x-timestamp {_shown(x_timestamp)} is {age:.0f}s old "
                                                    f"(window {self._window:g}s): a replay, or a wrong clock")
        if age < -self._window:
            raise SignatureError("future_timestamp", f"x-timestamp {_shown(x_timestamp)} is {-age:.0f}s in the "
                                                     f"future (window {self._window:g}s): check the server clock")
        return app_key
