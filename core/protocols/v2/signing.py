"""Sinch Voice API v2 ``service`` signed webhooks: verifying them, and signing them for tests and tools.

Sinch signs every webhook it sends to a service's URL with the service's id and
secret (``serviceId`` / ``serviceSecret`` from the Services API or the dashboard)::

    Authorization: service <serviceId>:<signature>
    signature      = Base64(HMAC-SHA256(key=Base64Decode(serviceSecret), msg=UTF-8(string_to_sign)))
    string_to_sign = METHOD + "\\n" + Content-MD5 + "\\n" + Content-Type + "\\n"
                     + "x-timestamp:" + x-timestamp + "\\n" + path

This is the v1 ``Application`` algorithm with another scheme word (the Java SDK
says so and reuses its Application signer), so the pieces come from
:mod:`callgate.protocols.signing_common`.  Decisions where the sources differ
(see ``sinch-voice-v2.md`` (d) and (f) 14; tested in ``tests/test_v2_signing.py``):

* **Content-MD5 as in v1**: Base64(MD5(raw body bytes)) as received, never
  re-serialised, and ``""`` for an empty body.  The Node (``SinchEvents``) and Java
  (``SinchEventsService`` via ``ApplicationAuthManager``) v2 validators sign ``""``
  for an empty body; the Python SDK (2.3.0) hashes it (``1B2M2Y8AsgTpgAmY7PhCfg==``).
  Sinch's webhooks always carry a JSON body, where all three agree (both vectors of
  ``signing-vector.json`` verify), so only an empty body is concerned -- and v2
  has no empty-bodied webhook to verify; we keep the one algorithm for both generations.
* **Content-Type as in v1**: the header value verbatim (``; charset=utf-8`` included),
  and ``""`` when the header is missing, as the Java and Node validators do.  The
  Python SDK refuses a request without Content-Type; here such a request is refused
  as ``bad_signature`` unless it was signed with an empty Content-Type.  No new
  refusal reason is needed.
* **Path** as in v1: the URL path Sinch called, verbatim, no query string (pass
  ``request.path``; the Java SDK strips a query, the Python one signs what it is given).
* **The timestamp window**: no SDK checks ``x-timestamp`` freshness and no page gives a
  window; the v1 window applies, checked after the signature (a forged request is
  ``bad_signature``, a correctly signed replay ``stale_timestamp``).
* **Refusal reasons** are v1's (:class:`~callgate.protocols.signing_common.SignatureError`):
  an unknown service id is ``unknown_key``; any scheme but ``service`` (compared
  case-insensitively) is ``unsupported_scheme`` -- the v1 ``Application`` scheme and
  ``Bearer`` included.  There is no v2-only reason.
* The service id is compared exactly (case-sensitive), the credentials split at the
  first ``:`` (service ids are UUIDs and signatures Base64: neither has one).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from .. import signing_common as common
from ..signing_common import (
    SignatureError,
    check_freshness,
    check_window,
    content_md5,
    decode_secrets,
    header_getter,
    parse_authorization,
    shown,
    signature_matches,
    string_to_sign,
)

__all__ = [
    "SCHEME",
    "ServiceVerifier",
    "SignatureError",
    "service_authorization",
    "service_signed_headers",
]

#: The Authorization scheme of Voice v2 webhooks (compared case-insensitively when verifying).
SCHEME = "service"
_FORM = "service <serviceId>:<signature>"
_SECRET = "service secret"


def service_authorization(service_id: str, secret_b64: str, method: str, path: str, body: bytes,
                          content_type: str, x_timestamp: str) -> str:
    """The ``Authorization`` header value: ``service <serviceId>:<signature>``."""
    return common.authorization(SCHEME, service_id, secret_b64, method, path, body, content_type, x_timestamp)


def service_signed_headers(service_id: str, secret: str, path: str, body: bytes, *, method: str = "POST",
                           content_type: str = "application/json", timestamp: str | None = None) -> dict[str, str]:
    """Headers for a v2 webhook signed by the service: ``Content-Type``, ``x-timestamp``
    (default: now, UTC, ``...Z``) and ``Authorization``.

    ``secret`` is the Base64 service secret.  Send ``body`` byte for byte as given;
    ``path`` without a query string.  For tests and ``callgate sign``.
    """
    return common.signed_request_headers(SCHEME, service_id, secret, path, body, method=method,
                                         content_type=content_type, timestamp=timestamp)


class ServiceVerifier:
    """Checks the ``Authorization`` of Voice v2 webhooks against known services.

    ``services`` maps a service id to its Base64 secrets: one, or several while a
    secret is rotated (any of them is accepted).  A request whose ``x-timestamp`` is
    more than ``window_seconds`` older or newer than ``clock()`` is refused.
    """

    __slots__ = ("_clock", "_services", "_window")

    def __init__(self, services: Mapping[str, Sequence[str]], window_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:
        window = check_window(window_seconds)
        decoded: dict[str, tuple[bytes, ...]] = {}
        for service_id, secrets in services.items():
            if not isinstance(service_id, str) or not service_id:
                raise ValueError(f"service id must be a non-empty string, got {service_id!r}")
            if isinstance(secrets, str):
                secrets = (secrets,)
            secrets = tuple(secrets)
            if not secrets:
                raise ValueError(f"service {service_id!r}: expected at least one secret")
            decoded[service_id] = decode_secrets(f"service {service_id!r}", secrets, _SECRET)
        if not decoded:
            raise ValueError("no service: at least one service id and secret is needed")
        self._services = decoded
        self._window = window
        self._clock = clock

    @property
    def service_ids(self) -> frozenset[str]:
        """The service ids this verifier accepts."""
        return frozenset(self._services)

    @property
    def window_seconds(self) -> float:
        return self._window

    def __repr__(self) -> str:
        return f"ServiceVerifier(services={sorted(self._services)!r}, window_seconds={self._window:g})"

    def verify(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> str:
        """Return the service id that signed this request, or raise :class:`SignatureError`.

        ``path`` is the URL path Sinch called (the public one behind a rewriting proxy),
        without a query string; ``body`` the raw request bytes; ``headers`` an aiohttp
        ``CIMultiDictProxy`` or any mapping (names are matched case-insensitively).
        """
        get = header_getter(headers)
        service_id, sig = parse_authorization(get("authorization"), SCHEME, _FORM)
        secrets = self._services.get(service_id)
        if secrets is None:
            raise SignatureError("unknown_key", f"unknown service id {shown(service_id)}")
        x_timestamp = get("x-timestamp")
        if x_timestamp is None:
            raise SignatureError("missing_timestamp", "no x-timestamp header")

        content_type = get("content-type") or ""
        sts = string_to_sign(method, content_md5(body), content_type, x_timestamp, path)
        if not signature_matches(secrets, sts, sig):
            raise SignatureError("bad_signature",
                                 f"signature does not match for service {shown(service_id)} (signed: {method.upper()} "
                                 f"{shown(path)}, Content-Type {shown(content_type)}, "
                                 f"x-timestamp {shown(x_timestamp)}, {len(body)} body bytes)")
        check_freshness(x_timestamp, self._clock(), self._window)
        return service_id
