"""What a JSON decoder found wrong with a body, in callgate's own words.

An error answer says what was wrong with the request, never a library's message: the decoders'
(``json``'s, msgspec's) wording is theirs and changes with their versions.  These functions turn
their findings into callgate's sentences, v1 and v2 alike: where the JSON breaks (line and column),
and what a field should have been (``expected a string, got an integer``).
"""

from __future__ import annotations

import json
import re

__all__ = ["OWN_WORDS", "got", "kind", "not_json", "not_json_at", "not_recorded_by", "validation_message"]

#: A decoder's JSON type names (msgspec's and the JSON ones), as the messages say them.
_KINDS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean", "null": "null",
          "object": "an object", "array": "a list", "bytes": "base64 text", "datetime": "a date-time",
          "decimal": "a decimal number"}
_EXPECTED = re.compile(r"Expected `(?P<want>[^`]*)`(?:, got `(?P<got>[^`]*)`| (?P<limit>(?:of length )?[<>]=? ?-?[\d.]+)"
                       r"| matching regex .*)?$", re.DOTALL)
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `([^`]*)`")
_INVALID = {"Invalid RFC3339 encoded datetime": "expected an RFC 3339 date-time",
            "Invalid decimal string": "expected a decimal number"}
#: What a wire type's own validator (a ``__post_init__``) raises a ValueError with, to have its words kept as they
#: are: ``ValueError(OWN_WORDS + "startTime: ...")``.
OWN_WORDS = "callgate: "


def kind(name: str) -> str:
    """``"str"`` -> ``"a string"``; ``"str | null"`` -> ``"a string or null"``; an unknown name as it is."""
    return " or ".join(_KINDS.get(part, part) for part in name.split(" | "))


_GOT = re.compile(r"got `(\w+)`")


def got(decoder_message: str, otherwise: str) -> str:
    """What a msgspec validation message says it got, in these words (``... got `int` ...`` -> ``an integer``), or
    ``otherwise`` when it names nothing."""
    found = _GOT.search(decoder_message)
    return kind(found[1]) if found else otherwise


def validation_message(message: str) -> str:
    """A msgspec validation message (without its `` - at `$.path``` part) in callgate's words:
    ``Expected `int` >= 0`` -> ``expected an integer >= 0``; a wire type's own words (:data:`OWN_WORDS`) as they are;
    anything not recognised -> ``not a valid value``."""
    expected = _EXPECTED.fullmatch(message)
    if expected is not None:
        want = kind(expected["want"])
        if expected["got"] is not None:
            return f"expected {want}, got {kind(expected['got'])}"
        if expected["limit"] is not None:
            return f"expected {want} {expected['limit']}"
        return f"expected {want} in this field's format" if "matching regex" in message else f"expected {want}"
    unknown = _UNKNOWN_FIELD.fullmatch(message)
    if unknown is not None:
        return f"unknown field {unknown[1]!r}"
    if message.startswith("Invalid enum value"):
        return "not one of the values this field takes"
    if message.startswith(OWN_WORDS):
        return message.removeprefix(OWN_WORDS)
    return _INVALID.get(message, "not a valid value")


def not_json_at(text: bytes | str, position: int) -> str:
    """``body is not JSON: ...`` for a body a decoder stopped reading at ``position`` (a byte offset in ``bytes``, a
    character offset in ``str``): where, by line and column (in characters) from 1, or that the body is empty or ends too
    early."""
    if not text.strip():
        return "body is not JSON: it is empty (Sinch sends a JSON object)"
    if position >= len(text.rstrip()):
        return "body is not JSON: it ends before its JSON value does"
    before = text[:position]
    if isinstance(before, bytes):
        before = before.decode("utf-8", "replace")
    line = before.count("\n") + 1
    column = len(before) - before.rfind("\n")
    return f"body is not JSON: malformed at line {line} column {column}"


_BYTE = re.compile(r"\(byte (\d+)\)$")
#: A ``\uD800``-``\uDBFF`` escape not followed by a ``\uDC00``-``\uDFFF`` one, or the latter not after the former:
#: an unpaired UTF-16 surrogate (a JSON text can carry one only so).
_LONE_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
                                    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def not_utf8(body: bytes) -> str:
    """``body is not UTF-8: ...`` with the position of its first invalid byte (as v1 says it)."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"body is not UTF-8: invalid byte at position {error.start}"
    return "body is not JSON callgate accepts"


def not_json(body: bytes, decoder_message: str) -> str:
    """``body is not JSON: ...`` for a UTF-8 ``body`` msgspec refused with ``decoder_message``.

    msgspec's ``(byte N)`` is sometimes the byte after the one at fault, so the place is taken from the standard
    library's parser (only on this path: a body that is not JSON), as v1 gives it; from msgspec's message only when
    that parser takes the text (``NaN``, which msgspec refuses) or gives up on it (a very long integer, deep nesting).
    """
    try:
        json.loads(body)
    except json.JSONDecodeError as exc:
        return not_json_at(exc.doc, exc.pos)
    except (ValueError, RecursionError):
        pass
    else:       # the standard library takes a \uD800-style escape of an unpaired surrogate, which msgspec refuses
        if _LONE_SURROGATE_ESCAPE.search(body) is not None:
            return "body is not JSON callgate accepts: a \\u escape of an unpaired UTF-16 surrogate (not Unicode text)"
    at = _BYTE.search(decoder_message)
    return not_json_at(body, int(at[1]) if at is not None else len(body))


def not_recorded_by(plugins: str | None) -> str:
    """Who could not record an end event, as both generations' answers say it: ``plugins`` (their names,
    comma-separated), or (None) callgate itself."""
    if plugins is None:
        return "callgate could not"
    return f"the plugins {plugins} could not" if "," in plugins else f"the plugin {plugins} could not"
