"""Sinch Voice v1 "Application" signed requests: signing (clients, tests, ``callgate sign``) and verifying callbacks.

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

from .. import signing_common as common
from ..signing_common import (
    SchemeVerifier,
    SignatureError,
    content_md5,
    signature,
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

class Verifier(SchemeVerifier):
    """Checks the ``Authorization`` of Sinch callbacks against known applications.

    ``applications`` maps an application key to its Base64 secrets (one, or two while
    rotating; either is accepted).  A request whose ``x-timestamp`` is more than
    ``window_seconds`` older or newer than ``clock()`` is refused.  :meth:`verify`
    returns the application key that signed.
    """

    __slots__ = ()
    scheme = SCHEME
    form = _FORM
    signer = "application"
    id_name = "application key"
    secret_name = "application secret"
    max_secrets = 2
    secrets_expected = "one or two secrets (two while rotating)"

    @property
    def application_keys(self) -> frozenset[str]:
        """The application keys this verifier accepts."""
        return frozenset(self._keys)

    def __repr__(self) -> str:
        return f"Verifier(applications={sorted(self._keys)!r}, window_seconds={self._window:g})"
