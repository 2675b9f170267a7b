"""The JSON bodies callgate answers with when it refuses or cannot record a request."""

from __future__ import annotations

import json

from aiohttp import web

ACK = b"{}"


def error_body(code: str, message: str, **extra: object) -> bytes:
    """``{"error": code, "message": message, ...}``: a stable code for programs, a sentence for people."""
    return json.dumps({"error": code, "message": message, **extra}).encode()


def error_response(status: int, code: str, message: str, *, headers: dict[str, str] | None = None,
                   **extra: object) -> web.Response:
    return web.Response(status=status, body=error_body(code, message, **extra), content_type="application/json",
                        headers=headers)
