"""What every sink is, and the one HTTP request helper the HTTP sinks share."""

from __future__ import annotations

import json
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp

from ..outbox import Claim
from ..retry import AttemptResult, classify

#: At most this much of a response body is read, and this much of it kept in an error message.
MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_CHARS = 300


class Sender(Protocol):
    """Delivers one claimed record; never raises for a failed delivery (it returns the AttemptResult)."""

    async def send(self, claim: Claim) -> AttemptResult: ...

    async def close(self) -> None: ...


def public_url(url: str) -> str:
    """A URL fit for logs and stored errors: no query string, no user info (they may hold tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


async def http_request(session: aiohttp.ClientSession, method: str, url: str, *, body: bytes,
                       headers: dict[str, str], timeout: float) -> tuple[AttemptResult, Any]:
    """Send one request; returns its AttemptResult and, for a 2xx, the decoded JSON body (None if not JSON).

    A timeout or a connection error is a ``retry``; messages never contain the URL's query or credentials.
    """
    try:
        async with session.request(method, url, data=body, headers=headers,
                                   timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False) as response:
            raw = await response.content.read(MAX_RESPONSE_BYTES)
            text = raw.decode("utf-8", errors="replace")
            result = classify(response.status, response.headers, " ".join(text.split())[:EXCERPT_CHARS])
            payload = None
            if result.kind == "delivered" and text.strip():
                try:
                    payload = json.loads(text)
                except ValueError:
                    payload = None
            return result, payload
    except TimeoutError:
        return AttemptResult("retry", None, f"{method} {public_url(url)}: no response within {timeout:g} s"), None
    except aiohttp.ClientError as exc:
        message = str(exc).replace(url, public_url(url))
        return AttemptResult("retry", None, f"{method} {public_url(url)}: {type(exc).__name__}: {message}"), None
