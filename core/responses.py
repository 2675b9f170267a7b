"""The JSON bodies callgate answers with when it refuses or cannot record a request.

A body says what was wrong with the request, or what could not be done, in callgate's own words:
never an exception's text or an internal path (those are logged, with the callid).
"""

from __future__ import annotations

import json

from aiohttp import web

from .protocols.wording import not_recorded_by

ACK = b"{}"


def error_body(code: str, message: str, **extra: object) -> bytes:
    """``{"error": code, "message": message, ...}``: a stable code for programs, a sentence for people."""
    return json.dumps({"error": code, "message": message, **extra}).encode()


def not_recorded_body(plugins: str | None) -> bytes:
    """The 503 body of a DICE or Notify that was not recorded: by ``plugins`` (their names, comma-separated),
    or (None) because of an error in callgate itself."""
    return error_body("not_recorded", f"{not_recorded_by(plugins)} record this event (the reason is in callgate's log under its "
                                      f"callid); answering 503 so that Sinch's fallback URL receives it")


def error_response(status: int, code: str, message: str, *, headers: dict[str, str] | None = None,
                   **extra: object) -> web.Response:
    return web.Response(status=status, body=error_body(code, message, **extra), content_type="application/json",
                        headers=headers)
