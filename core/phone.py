"""Phone numbers as Sinch sends them, made comparable.

Sinch sends the caller's ``cli`` often without ``+`` (``46701234567``) and the
callee with it (``+46850001234``); people write numbers with spaces.  Every
comparison of numbers in callgate and its plugins goes through ``normalize``.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-().]")
_E164 = re.compile(r"\+[1-9][0-9]{0,14}")
_DIGITS = re.compile(r"^\+?[0-9]+$")
PRIVATE = "private"
PRIVATE_SPELLINGS = frozenset({"private", "anonymous", "unknown", "restricted", "withheld", ""})


def normalize(value: str | None) -> str | None:
    """``"46 70-123 45 67"`` / ``"+46701234567"`` -> ``"+46701234567"``; not a number -> None."""
    if value is None:
        return None
    if value.isascii():    # the usual shapes, "+46..." and "46...", without the regexes
        if value.isdigit():
            return "+" + value
        if value[:1] == "+" and value[1:].isdigit():
            return value
    compact = _SEPARATORS.sub("", value)
    if not _DIGITS.match(compact):
        return None
    return compact if compact.startswith("+") else "+" + compact


def normalize_caller(cli: str | None) -> str | None:
    """A caller id: a normalised number, ``"private"`` for a withheld one, None when absent or not a number."""
    if cli is None:
        return None
    if cli.strip().lower() in PRIVATE_SPELLINGS:
        return PRIVATE
    return normalize(cli)


def is_e164(value: str) -> bool:
    """``+`` then 1 to 15 ASCII digits, the first not 0: the form SVAML wants for numbers."""
    return isinstance(value, str) and _E164.fullmatch(value) is not None


def is_cli(value: str) -> bool:
    """A caller id SVAML accepts: E.164 or ``private``."""
    return value == PRIVATE or is_e164(value)
