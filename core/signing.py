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

The algorithm's pieces (hashing, header parsing, constant-time comparison, the
window, :class:`SignatureError`) live in :mod:`callgate.protocols.signing_common`,
shared with the v2 ``service`` scheme (:mod:`callgate.protocols.v2.signing`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from .protocols import signing_common as common
from .protocols.signing_common import (
    SignatureError,
    check_freshness,
    check_window,
    content_md5,
    decode_secrets,
    header_getter,
    parse_authorization,
    shown,
    signature,
    signature_matches,
    string_to_sign,
)

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
_FORM = "Application <key>:<signature>"


# --------------------------------------------------------------------------- signing

def authorization(key: str, secret_b64: str, method: str, path: str, body: bytes,
                  content_type: str, x_timestamp: str) -> str:
    """The ``Authorization`` header value: ``Application <key>:<signature>``."""
    return common.authorization(SCHEME, key, secret_b64, method, path, body, content_type, x_timestamp)


def signed_headers(key: str, secret_b64: str, path: str, body: bytes, *, method: str = "POST",
                   content_type: str = "application/json", timestamp: str | None = None) -> dict[str, str]:
    """Headers for a signed request: ``Content-Type``, ``x-timestamp`` (default: now, UTC, ``...Z``)
    and ``Authorization``.  Send ``body`` byte for byte as given; ``path`` without a query string."""
    return common.signed_request_headers(SCHEME, key, secret_b64, path, body, method=method,
                                         content_type=content_type, timestamp=timestamp)


# --------------------------------------------------------------------------- verifying

class Verifier:
    """Checks the ``Authorization`` of Sinch callbacks against known applications.

    ``applications`` maps an application key to its Base64 secrets (one, or two while
    rotating; either is accepted).  A request whose ``x-timestamp`` is more than
    ``window_seconds`` older or newer than ``clock()`` is refused.
    """

    __slots__ = ("_clock", "_keys", "_window")

    def __init__(self, applications: Mapping[str, Sequence[str]], window_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:
        window = check_window(window_seconds)
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
            keys[app_key] = decode_secrets(f"application {app_key!r}", secrets)
        if not keys:
            raise ValueError("no application: at least one application key and secret is needed")
        self._keys = keys
        self._window = window
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
        get = header_getter(headers)
        app_key, sig = parse_authorization(get("authorization"), SCHEME, _FORM)
        secrets = self._keys.get(app_key)
        if secrets is None:
            raise SignatureError("unknown_key", f"unknown application key {shown(app_key)}")
        x_timestamp = get("x-timestamp")
        if x_timestamp is None:
            raise SignatureError("missing_timestamp", "no x-timestamp header")

        content_type = get("content-type") or ""
        sts = string_to_sign(method, content_md5(body), content_type, x_timestamp, path)
        if not signature_matches(secrets, sts, sig):
            raise SignatureError("bad_signature",
                                 f"signature does not match for application {shown(app_key)} (signed: {method.upper()} "
                                 f"{shown(path)}, Content-Type {shown(content_type)}, "
                                 f"x-timestamp {shown(x_timestamp)}, {len(body)} body bytes)")
        check_freshness(x_timestamp, self._clock(), self._window)
        return app_key
