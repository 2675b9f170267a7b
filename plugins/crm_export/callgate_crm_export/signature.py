"""The webhook signature: how callgate signs a record, and how a receiver verifies it.

Every webhook request carries::

    X-Callgate-Timestamp: 1741944581                       (Unix seconds when it was sent)
    X-Callgate-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

A receiver verifies it over the raw request bytes, before parsing them::

    from callgate_crm_export.signature import verify, SignatureMismatch

    try:
        verify(secret, body, request.headers["X-Callgate-Timestamp"], request.headers["X-Callgate-Signature"])
    except SignatureMismatch:
        return 401

Without this package: recompute ``hmac.new(secret.encode(), f"{ts}.".encode() + body, "sha256").hexdigest()``,
compare it with the value after ``v1=`` using a constant-time comparison, and refuse timestamps more
than a few minutes away from your clock (a replayed request has an old timestamp).  A retried
delivery is signed again with a new timestamp; its body and ``Idempotency-Key`` are unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Callgate-Timestamp"
SIGNATURE_HEADER = "X-Callgate-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureMismatch(ValueError):
    """The request was not signed with this secret, was altered, or is too old (``reason`` says which)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _digest(secret: str | bytes, timestamp: str, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The two signature headers for ``body``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: f"{SCHEME}={_digest(secret, ts, body)}"}


def verify(secret: str | bytes, body: bytes, timestamp: str | None, signature: str | None, *,
           tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> None:
    """Raise :class:`SignatureMismatch` unless ``signature`` is ``body``'s, signed with ``secret`` at ``timestamp``,
    and ``timestamp`` is within ``tolerance_seconds`` of ``now``.

    ``signature`` may list several comma-separated ``v1=`` values (a receiver rotating secrets can
    call verify once per secret instead).
    """
    if not timestamp or not signature:
        raise SignatureMismatch("missing", f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    if not timestamp.strip().isdigit():
        raise SignatureMismatch("bad_timestamp", f"{TIMESTAMP_HEADER} must be Unix seconds, got {timestamp[:32]!r}")
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > tolerance_seconds:
        raise SignatureMismatch("stale", f"{TIMESTAMP_HEADER} is {age:.0f} s from now "
                                         f"(more than {tolerance_seconds:.0f} s): refusing a possible replay")
    expected = _digest(secret, timestamp.strip(), body)
    offered = [part.strip()[len(SCHEME) + 1:] for part in signature.split(",")
               if part.strip().startswith(SCHEME + "=")]
    if not any(hmac.compare_digest(expected, value) for value in offered):
        raise SignatureMismatch("bad_signature", "the signature does not match the body and the secret")
