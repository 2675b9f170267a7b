"""The HMAC signed-request algorithm shared by Sinch Voice v1 (``Application``) and v2 (``service``).

Both generations sign a request the same way and differ only in the
``Authorization`` scheme word and in what the key names (an application key in
v1, a service id in v2)::

    Authorization  = <scheme> " " <key> ":" <signature>
    signature      = Base64(HMAC-SHA256(key=Base64Decode(secret), msg=UTF-8(string_to_sign)))
    string_to_sign = METHOD + "\\n" + Content-MD5 + "\\n" + Content-Type + "\\n"
                     + "x-timestamp:" + x-timestamp + "\\n" + path
    Content-MD5    = Base64(MD5(raw body bytes)), "" for an empty body

This module holds the pieces: hashing and signing, reading headers, splitting
``Authorization``, comparing signatures in constant time, the ``x-timestamp``
window and :class:`SignatureError` with its reason codes.  The verifiers are
:class:`callgate.protocols.v1.signing.Verifier` (v1) and
:class:`callgate.protocols.v2.signing.ServiceVerifier` (v2).
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
from typing import ClassVar

from multidict import CIMultiDict, CIMultiDictProxy

from .timestamps import parse_timestamp

__all__ = [
    "SignatureError",
    "EMPTY_BODY_MD5",
    "folded_id",
    "content_md5",
    "string_to_sign",
    "signature",
    "authorization",
    "signed_request_headers",
    "now_timestamp",
    "decode_secret",
    "decode_secrets",
    "hmac_states",
    "check_window",
    "header_getter",
    "shown",
    "parse_authorization",
    "signature_matches",
    "check_freshness",
    "SchemeVerifier",
]


class SignatureError(ValueError):
    """A request is not correctly signed.

    ``reason`` is a short code: ``missing_authorization``, ``malformed_authorization``,
    ``unsupported_scheme``, ``unknown_key``, ``missing_timestamp``, ``invalid_timestamp``,
    ``bad_signature``, ``stale_timestamp``, ``future_timestamp`` or ``signer_mismatch``.  The message never
    contains a secret or the expected signature.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# --------------------------------------------------------------------------- signing

def _bytes(body: bytes | bytearray | memoryview | str) -> bytes | bytearray | memoryview:
    return body.encode("utf-8") if isinstance(body, str) else body


#: The Content-MD5 Sinch's SDKs sign an empty body with (Base64 of the MD5 of no bytes); :func:`content_md5` gives
#: ``""``, as v1's docs do.  A verifier accepts either.
EMPTY_BODY_MD5 = base64.b64encode(hashlib.md5(b"", usedforsecurity=False).digest()).decode("ascii")


def content_md5(body: bytes) -> str:
    """Base64 of the MD5 of the raw body bytes (a ``str`` is taken as UTF-8); ``""`` for an empty body."""
    data = _bytes(body)
    if not data:
        return ""
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")


def string_to_sign(method: str, content_md5: str, content_type: str, x_timestamp: str, path: str) -> str:
    """The five signed lines: METHOD, Content-MD5, Content-Type, ``x-timestamp:<value>``, path."""
    return f"{method.upper()}\n{content_md5}\n{content_type}\nx-timestamp:{x_timestamp}\n{path}"


def decode_secret(secret_b64: str, what: str = "application secret") -> bytes:
    """The HMAC key: the Base64-decoded secret.  Raises ValueError (without echoing the secret).

    ``what`` names the secret in the message (``application secret``, ``service secret``).
    """
    if not isinstance(secret_b64, str):
        raise ValueError(f"expected the Base64 secret as a string, got {type(secret_b64).__name__}")
    try:
        key = base64.b64decode(secret_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the {what} is not valid Base64 (copy it from the Sinch dashboard as is)") from None
    if not key:
        raise ValueError(f"the {what} is empty")
    return key


def decode_secrets(owner: str, secrets: Sequence[str], what: str = "application secret") -> tuple[bytes, ...]:
    """Each Base64 secret decoded; a bad one is named by its position and ``owner``, never shown."""
    decoded = []
    for i, secret in enumerate(secrets):
        try:
            decoded.append(decode_secret(secret, what))
        except ValueError as exc:
            which = f"secret #{i + 1}" if len(secrets) > 1 else "secret"
            raise ValueError(f"{owner}: {which}: {exc}") from None
    return tuple(decoded)


def hmac_states(secrets: Sequence[bytes]) -> tuple[hmac.HMAC, ...]:
    """An HMAC-SHA256 state keyed with each decoded secret, to ``copy()`` per message.

    Keying (padding the key, hashing the inner and outer pads, looking up SHA-256) is
    half of the work of signing a callback; done once per secret, a check copies the
    keyed state instead.  The states' repr does not show the secret.
    """
    return tuple(hmac.new(secret, digestmod=hashlib.sha256) for secret in secrets)


def _sign(key: bytes, string_to_sign: str) -> bytes:
    return base64.b64encode(hmac.digest(key, string_to_sign.encode("utf-8"), "sha256"))


def signature(secret_b64: str, string_to_sign: str) -> str:
    """Base64(HMAC-SHA256(Base64Decode(secret_b64), UTF-8(string_to_sign)))."""
    return _sign(decode_secret(secret_b64), string_to_sign).decode("ascii")


def authorization(scheme: str, key: str, secret_b64: str, method: str, path: str, body: bytes,
                  content_type: str, x_timestamp: str) -> str:
    """The ``Authorization`` header value: ``<scheme> <key>:<signature>``."""
    sts = string_to_sign(method, content_md5(body), content_type, x_timestamp, path)
    return f"{scheme} {key}:{signature(secret_b64, sts)}"


def now_timestamp() -> str:
    """The current time as an ``x-timestamp``: UTC, milliseconds, ``...Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def signed_request_headers(scheme: str, key: str, secret_b64: str, path: str, body: bytes, *, method: str,
                           content_type: str, timestamp: str | None) -> dict[str, str]:
    """``Content-Type``, ``x-timestamp`` (``None``: now) and ``Authorization`` for a signed request."""
    x_timestamp = now_timestamp() if timestamp is None else timestamp
    return {
        "Content-Type": content_type,
        "x-timestamp": x_timestamp,
        "Authorization": authorization(scheme, key, secret_b64, method, path, body, content_type, x_timestamp),
    }


# --------------------------------------------------------------------------- verifying

def check_window(window_seconds: float) -> float:
    """The ``x-timestamp`` window as a float; ValueError unless a positive, finite number of seconds."""
    if isinstance(window_seconds, bool) or not isinstance(window_seconds, (int, float)) \
            or not math.isfinite(window_seconds) or window_seconds <= 0:
        raise ValueError(f"window_seconds must be a positive number of seconds, got {window_seconds!r}")
    return float(window_seconds)


def header_getter(headers: Mapping[str, str]) -> Callable[[str], str | None]:
    """Case-insensitive lookup by lower-case name; the first value of a repeated header wins."""
    if isinstance(headers, (CIMultiDictProxy, CIMultiDict)):
        return headers.get
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        lowered.setdefault(name.lower(), value)
    return lowered.get


def shown(value: str, limit: int = 64) -> str:
    """A client-supplied value, safe to put in a message (repr, clipped)."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def parse_authorization(header: str | None, scheme: str, form: str) -> tuple[str, str]:
    """Split ``<scheme> <key>:<signature>`` into key and signature, or raise :class:`SignatureError`.

    ``scheme`` is compared case-insensitively; exactly one space separates it from the
    credentials, which are split at the first ``:``.  ``form`` is the expected shape,
    quoted in messages (``Application <key>:<signature>``).
    """
    if header is None or not header.strip():
        raise SignatureError("missing_authorization", "no Authorization header: the request is not signed")
    parts = header.split(" ")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise SignatureError("malformed_authorization", f"Authorization must be '{form}' with exactly one space")
    given_scheme, credentials = parts
    if given_scheme.lower() != scheme.lower():
        raise SignatureError("unsupported_scheme",
                             f"Authorization scheme {shown(given_scheme)} is not supported: expected '{scheme}'")
    key, colon, sig = credentials.partition(":")
    if not colon or not key or not sig:
        raise SignatureError("malformed_authorization",
                             f"Authorization must be '{form}' (key and signature separated by ':')")
    return key, sig


def signature_matches(states: Sequence[hmac.HMAC], string_to_sign: str, given: str) -> bool:
    """Whether ``given`` is the signature of ``string_to_sign`` under any of the secrets.

    ``states`` are the secrets' keyed HMAC states (:func:`hmac_states`), copied, never
    updated.  Compared in constant time, and every secret is tried (no early exit), so
    the time taken tells neither the signature nor which secret matched.
    """
    message = string_to_sign.encode("utf-8", "surrogatepass")
    given_bytes = given.encode("utf-8", "surrogatepass")
    matched = False
    for state in states:
        mac = state.copy()
        mac.update(message)
        matched |= hmac.compare_digest(base64.b64encode(mac.digest()), given_bytes)
    return matched


def check_freshness(x_timestamp: str, now: float, window: float) -> datetime:
    """``x_timestamp`` parsed (aware, UTC); raise :class:`SignatureError` unless it is within ``window`` seconds
    of ``now``.

    Reasons: ``invalid_timestamp`` (not an ISO-8601 date-time), ``stale_timestamp`` (older),
    ``future_timestamp`` (newer).  Verifiers call it *after* the signature matched.
    """
    when = parse_timestamp(x_timestamp)
    if when is None:
        raise SignatureError("invalid_timestamp", f"x-timestamp {shown(x_timestamp)} is not an ISO-8601 date-time")
    age = now - when.timestamp()
    if age > window:
        raise SignatureError("stale_timestamp", f"x-timestamp {shown(x_timestamp)} is {age:.0f}s old "
                                                f"(window {window:g}s): a replay, or a wrong clock")
    if age < -window:
        raise SignatureError("future_timestamp", f"x-timestamp {shown(x_timestamp)} is {-age:.0f}s in the "
                                                 f"future (window {window:g}s): check the server clock")
    return when


def folded_id(key: str) -> str:
    """An application key or service id as the plugins compare them (the allowlist's scopes): any case, spaces around
    ignored."""
    return key.strip().casefold()


class SchemeVerifier:
    """Checks ``Authorization: <scheme> <id>:<signature>`` against known ids and their Base64 secrets.

    The one verifier of both generations: v1's :class:`callgate.protocols.v1.signing.Verifier` (``Application``,
    application keys) and v2's :class:`callgate.protocols.v2.signing.ServiceVerifier` (``service``,
    service ids) only name their scheme and words.  A request whose ``x-timestamp`` is more than
    ``window_seconds`` older or newer than ``clock()`` is refused; the window is checked after the
    signature (a forged request is ``bad_signature``, a correctly signed replay ``stale_timestamp``).
    """

    __slots__ = ("_clock", "_folded", "_keys", "_window")

    #: The Authorization scheme (compared case-insensitively) and how its header is written, for messages.
    scheme: ClassVar[str]
    form: ClassVar[str]
    #: What signs ("application", "service"), its id ("application key", "service id"), its secret's name.
    signer: ClassVar[str]
    id_name: ClassVar[str]
    secret_name: ClassVar[str]
    #: At most this many secrets per id (None: no limit), and how to say so.
    max_secrets: ClassVar[int | None] = None
    secrets_expected: ClassVar[str] = "at least one secret"

    def __init__(self, credentials: Mapping[str, Sequence[str]], window_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:
        window = check_window(window_seconds)
        keys: dict[str, tuple[hmac.HMAC, ...]] = {}
        for key, secrets in credentials.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"{self.id_name} must be a non-empty string, got {key!r}")
            secrets = (secrets,) if isinstance(secrets, str) else tuple(secrets)
            if not secrets or (self.max_secrets is not None and len(secrets) > self.max_secrets):
                raise ValueError(f"{self.signer} {key!r}: expected {self.secrets_expected}, got {len(secrets)}")
            keys[key] = hmac_states(decode_secrets(f"{self.signer} {key!r}", secrets, self.secret_name))
        if not keys:
            raise ValueError(f"no {self.signer}: at least one {self.id_name} and secret is needed")
        self._keys = keys
        #: The ids as the plugins compare them (allowlist scopes: any case, spaces around ignored), for check_named.
        self._folded = frozenset(folded_id(key) for key in keys)
        self._window = window
        self._clock = clock

    @property
    def window_seconds(self) -> float:
        return self._window

    def verify(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> str:
        """Return the id that signed this request, or raise :class:`SignatureError`.

        ``path`` is the URL path Sinch called (the public one behind a rewriting proxy),
        without a query string; ``body`` the raw request bytes; ``headers`` an aiohttp
        ``CIMultiDictProxy`` or any mapping (names are matched case-insensitively).
        """
        return self.verify_timed(method, path, headers, body)[0]

    def check_named(self, signer: str, named: str) -> None:
        """Raise :class:`SignatureError` (``signer_mismatch``) when a body signed by ``signer`` names another of the ids
        this verifier knows (v1 ``applicationKey``, v2 ``call.serviceId``): one application's secret may not speak for
        another's calls (their allowlist scopes, paying accounts, CRM records).  Ids are compared as the plugins
        compare them, in any case and without spaces around.  An id it does not know is the body's own business
        (samples and tests name one of their own)."""
        folded = folded_id(named)
        if folded != folded_id(signer) and folded in self._folded:   # as the plugins match ids: "B", " b " are b
            raise SignatureError("signer_mismatch", f"the body names {self.signer} {shown(named)}, but the request is "
                                                    f"signed by {self.signer} {shown(signer)}: one {self.signer}'s "
                                                    f"secret may not speak for another's calls")

    def verify_timed(self, method: str, path: str, headers: Mapping[str, str],
                     body: bytes) -> tuple[str, datetime]:
        """:meth:`verify`, and the request's ``x-timestamp`` as the window check parsed it (aware, UTC): the
        time of a v2 webhook, whose body has none."""
        get = header_getter(headers)
        key, sig = parse_authorization(get("authorization"), self.scheme, self.form)
        states = self._keys.get(key)
        if states is None:
            raise SignatureError("unknown_key", f"unknown {self.id_name} {shown(key)}")
        x_timestamp = get("x-timestamp")
        if x_timestamp is None:
            raise SignatureError("missing_timestamp", "no x-timestamp header")

        content_type = get("content-type") or ""
        sts = string_to_sign(method, content_md5(body), content_type, x_timestamp, path)
        matched = signature_matches(states, sts, sig)
        if not matched and not body:  # v1's docs hash an empty body to "", Sinch's SDKs to the MD5 of no bytes
            matched = signature_matches(states, string_to_sign(method, EMPTY_BODY_MD5, content_type, x_timestamp, path),
                                        sig)
        if not matched:
            raise SignatureError("bad_signature",
                                 f"signature does not match for {self.signer} {shown(key)} (checked as a signature of: "
                                 f"{method.upper()} "
                                 f"{shown(path)}, Content-Type {shown(content_type)}, "
                                 f"x-timestamp {shown(x_timestamp)}, {len(body)} body bytes)")
        return key, check_freshness(x_timestamp, self._clock(), self._window)
