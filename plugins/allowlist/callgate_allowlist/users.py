"""How an in-app caller is written in a rule's ``user`` condition, and how the ICE's user is compared.

A call from a Sinch SDK client carries the client's user id in the ICE's ``user``
(``"alice"``), authenticated by Sinch; its ``cli`` is ``"private"``.  A ``user`` value is one of:

* an exact user id: ``alice``, compared exactly as Sinch sends it (case kept);
* a prefix, written with a trailing ``*``: ``guest-*`` (every user id starting with ``guest-``);
* a pattern, written ``re:`` and a regular expression matched against the whole user id:
  ``re:agent-\\d+``;
* ``*``: anything, the same as leaving the condition out.

User ids are not phone numbers: nothing is normalised but the spaces around them.
"""

from __future__ import annotations

from .matchers import PATTERN_PREFIX, Kind, Matcher, MatcherError, pattern_matcher


def user_key(user: str | None) -> str | None:
    """The ICE's ``user`` as rules see it: without surrounding spaces; None when absent or empty."""
    if user is None:
        return None
    return user.strip() or None


def parse_user_matcher(text: str) -> Matcher | None:
    """Read one ``user`` value; None means "anything" (``*``).  Raises :class:`MatcherError`."""
    if not isinstance(text, str):
        raise MatcherError(f"expected a string, got {type(text).__name__}")
    raw = text.strip()
    if not raw:
        raise MatcherError("empty value (leave the condition out, or write * for anything)")
    if raw == "*":
        return None
    if raw.startswith(PATTERN_PREFIX):
        return pattern_matcher(raw)
    kind: Kind = "exact"
    body = raw
    if raw.endswith("*"):
        kind, body = "prefix", raw[:-1].rstrip()
    if "*" in body:
        raise MatcherError(f"{raw!r}: * may only end a prefix (guest-*); use re:... for other patterns")
    return Matcher(kind, body, raw)
