"""Who may see the console: the token from ``CALLGATE_CONSOLE_TOKEN``, exchanged once for a session cookie.

The cookie is stateless, ``<expiry>.<HMAC-SHA256 of the expiry>``, keyed by a key derived from the
token: any worker and any instance with the same token accepts it, and changing the token ends
every session.  Every comparison is constant-time (``hmac.compare_digest``).  Neither the token nor
a cookie is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from aiohttp import web

#: The session cookie's name; it is sent for paths under /console only.
COOKIE = "callgate_console"
COOKIE_PATH = "/console"
_KEY_LABEL = b"callgate-console-session-v1"


class Access:
    """Checks the token and the session cookies made from it."""

    def __init__(self, token: str, session_seconds: float) -> None:
        self._token = token.encode()
        self._key = hmac.new(self._token, _KEY_LABEL, hashlib.sha256).digest()
        self.session_seconds = session_seconds

    def token_ok(self, candidate: str) -> bool:
        """Whether ``candidate`` is the token.  A header's bytes that are not UTF-8 reach here as aiohttp decodes
        them (surrogate escapes), and are compared as those bytes: a wrong token, not an error."""
        return hmac.compare_digest(candidate.encode("utf-8", "surrogateescape"), self._token)

    def _signature(self, expires: str) -> str:
        return hmac.new(self._key, expires.encode(), hashlib.sha256).hexdigest()

    def new_session(self, now: float | None = None) -> str:
        """A cookie value valid for ``session_seconds``."""
        expires = str(int((time.time() if now is None else now) + self.session_seconds))
        return f"{expires}.{self._signature(expires)}"

    def session_end(self, value: str, now: float | None = None) -> int | None:
        """When the session of the cookie ``value`` ends (unix seconds), or None when it is not a valid session."""
        expires, _, signature = value.partition(".")
        if not expires.isascii() or not expires.isdigit() or not hmac.compare_digest(
                signature.encode("utf-8", "surrogateescape"), self._signature(expires).encode()):
            return None
        end = int(expires)
        return end if end > (time.time() if now is None else now) else None

    def session_ok(self, value: str, now: float | None = None) -> bool:
        return self.session_end(value, now) is not None

    def allowed(self, request: web.Request) -> bool:
        """A valid session cookie, or ``Authorization: Bearer <token>`` (for curl; it sets no cookie)."""
        cookie = request.cookies.get(COOKIE)
        if cookie is not None and self.session_ok(cookie):
            return True
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.token_ok(credentials.strip())

    def set_cookie(self, request: web.Request, response: web.StreamResponse) -> None:
        """A new session on ``response``; ``Secure`` when ``request`` came over HTTPS (:func:`over_https`)."""
        response.set_cookie(COOKIE, self.new_session(), max_age=int(self.session_seconds), path=COOKIE_PATH,
                            httponly=True, samesite="Strict", secure=over_https(request) or None)

    @staticmethod
    def clear_cookie(response: web.StreamResponse) -> None:
        """Log out: the browser drops its cookie.  The cookie holds no state on the server, so a copy of it kept
        elsewhere stays valid until it expires; changing the token ends every session at once."""
        response.del_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="Strict")


def over_https(request: web.Request) -> bool:
    """Whether the browser reached the console over HTTPS: directly, or through a TLS proxy that says so
    (``X-Forwarded-Proto: https``, or ``proto=https`` in the first ``Forwarded`` element).  The header is trusted
    whoever sent it, because all it can do is make the cookie ``Secure``: a browser that sent it over plain HTTP
    would only lose its own session."""
    if request.secure:
        return True
    forwarded = request.forwarded
    proto = forwarded[0].get("proto") if forwarded else request.headers.get("X-Forwarded-Proto", "").split(",")[0]
    return (proto or "").strip().lower() == "https"
