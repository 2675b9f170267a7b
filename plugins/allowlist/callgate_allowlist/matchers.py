"""How one value in a rule is written, and how call values are made comparable to it.

A rule's ``caller`` or ``callee`` value is one of:

* an exact number: ``+46701234567``, ``46701234567``, ``+46 70 123 45 67``,
  ``+46 (0)70 123 45 67``, ``0046701234567`` (all the same; with ``[server] default_region``
  also the national ``070 123 45 67``), read by :func:`callgate.phone.parse_number`;
* a prefix, written with a trailing ``*``: ``+4670*`` (every number starting with +4670),
  read by :func:`callgate.phone.parse_prefix`;
* a pattern, written ``re:`` and a regular expression matched against the whole
  normalised value: ``re:\\+4670\\d{7}``;
* ``private`` (also spelled ``anonymous``, ``withheld``, ...): a caller who withholds their number;
* ``*``: anything, the same as leaving the condition out.

A callee that is not a phone number (a username, a SIP address, a conference id)
is written and compared as it is.  Numbers from calls go through
:func:`callgate.phone.normalize` (:func:`value_key`), so ``46701234567`` from Sinch
matches ``+46 (0)70 123 45 67`` in a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from callgate.phone import (
    PRIVATE,
    PRIVATE_SPELLINGS,
    PhoneNumberError,
    looks_like_number,
    normalize,
    parse_number,
    parse_prefix,
)

PATTERN_PREFIX = "re:"
Kind = Literal["exact", "prefix", "pattern"]
#: The rule fields that hold numbers.
NumberField = Literal["caller", "callee"]
#: Spellings of a withheld caller id accepted in rules (``private`` is the canonical one).
PRIVATE_WORDS = frozenset(PRIVATE_SPELLINGS - {""})


class MatcherError(ValueError):
    """A rule value cannot be read; the message says what is wrong and how to write it."""


@dataclass(frozen=True, slots=True)
class Matcher:
    """One parsed rule value: ``kind`` is exact, prefix or pattern; ``value`` the normalised text."""

    kind: Kind
    value: str
    text: str
    regex: re.Pattern[str] | None = None

    def matches(self, key: str | None) -> bool:
        """Whether a call value (already through :func:`value_key`) matches."""
        if key is None:
            return False
        if self.kind == "exact":
            return key == self.value
        if self.kind == "prefix":
            return key.startswith(self.value)
        assert self.regex is not None, "a pattern matcher is built with its regex"
        return self.regex.fullmatch(key) is not None

    @property
    def indexable(self) -> bool:
        """Exact values and prefixes are found by dictionary lookups; patterns are tried one by one."""
        return self.kind != "pattern"


def value_key(value: str | None) -> str | None:
    """A number from a call normalised (``"0046 70-123 45 67"`` -> ``"+46701234567"``); anything else
    stripped, as it is."""
    if value is None:
        return None
    stripped = value.strip()
    return normalize(stripped) or stripped


def caller_key(cli: str | None, origination_type: str | None = None) -> str | None:
    """The caller as rules see it: a normalised number, ``private``, the raw id, or None.

    A withheld caller id (``private``, ``anonymous``, empty, ...) is ``private``;
    so is a PSTN call that carries no ``cli`` at all.  An in-app call (origination
    ``mxp``) without ``cli`` has no caller: only rules without a caller condition match it.
    """
    if cli is None:
        return None if origination_type == "mxp" else PRIVATE
    stripped = cli.strip()
    number = normalize(stripped)
    if number is not None:
        return number
    return PRIVATE if stripped.lower() in PRIVATE_SPELLINGS else stripped


def pattern_matcher(raw: str) -> Matcher:
    """A ``re:...`` value (``raw`` starts with :data:`PATTERN_PREFIX`) as a pattern matcher; MatcherError when
    the expression is empty or invalid."""
    source = raw[len(PATTERN_PREFIX):]
    if not source:
        raise MatcherError(f"empty pattern in {raw!r}: write re: followed by a regular expression")
    try:
        regex = re.compile(source)
    except re.error as exc:
        raise MatcherError(f"{raw!r} is not a valid regular expression: {exc}") from None
    return Matcher("pattern", source, raw, regex)


def parse_matcher(text: str, *, field: NumberField) -> Matcher | None:
    """Read one rule value; None means "anything" (``*``).  Raises :class:`MatcherError`."""
    if not isinstance(text, str):
        raise MatcherError(f"expected a string, got {type(text).__name__}")
    raw = text.strip()
    if raw[:1] == "+" and raw[1:].isdigit() and raw.isascii():
        return Matcher("exact", _number(raw, raw, field, prefix=False), raw)   # the usual case, first
    if not raw:
        raise MatcherError("empty value (leave the condition out, or write * for anything)")
    if raw == "*":
        return None
    if raw.startswith(PATTERN_PREFIX):
        return pattern_matcher(raw)
    if field == "caller" and raw.lower() in PRIVATE_WORDS:
        return Matcher("exact", PRIVATE, raw)
    kind: Kind = "exact"
    body = raw
    if raw.endswith("*"):
        kind, body = "prefix", raw[:-1].rstrip()
    if "*" in body:
        raise MatcherError(f"{raw!r}: * may only end a prefix (+4670*); use re:... for other patterns")
    if field == "caller" or looks_like_number(body):
        return Matcher(kind, _number(body, raw, field, prefix=kind == "prefix"), raw)
    return Matcher(kind, body, raw)     # a user name, a SIP address, a conference id


def _number(body: str, raw: str, field: str, *, prefix: bool) -> str:
    """A number or prefix as the core reads numbers people write; :class:`MatcherError` saying how to write it."""
    try:
        return parse_prefix(body) if prefix else parse_number(body)
    except PhoneNumberError as exc:
        raise MatcherError(
            f"{exc}; a rule value is a number (+46701234567), a prefix (+4670*), a pattern (re:\\+4670\\d+)"
            f"{', or private' if field == 'caller' else ''}") from None
