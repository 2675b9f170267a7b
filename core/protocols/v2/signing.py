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
  A verifier accepts an empty body signed either way, so that it is refused for what it
  is (``400``, not JSON) rather than as a forgery.
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

from .. import signing_common as common
from ..signing_common import SchemeVerifier, SignatureError

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


class ServiceVerifier(SchemeVerifier):
    """Checks the ``Authorization`` of Voice v2 webhooks against known services.

    ``services`` maps a service id to its Base64 secrets: one, or several while a
    secret is rotated (any of them is accepted).  A request whose ``x-timestamp`` is
    more than ``window_seconds`` older or newer than ``clock()`` is refused.
    """

    __slots__ = ()
    scheme = SCHEME
    form = _FORM
    signer = "service"
    id_name = "service id"
    secret_name = _SECRET

    @property
    def service_ids(self) -> frozenset[str]:
        """The service ids this verifier accepts."""
        return frozenset(self._keys)

    def __repr__(self) -> str:
        return f"ServiceVerifier(services={sorted(self._keys)!r}, window_seconds={self._window:g})"
