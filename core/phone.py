"""Phone numbers: the ones Sinch sends, and the ones people write.

Two kinds of input, two functions, one result (E.164, ``+46701234567``):

* :func:`normalize` reads numbers **Sinch sends** (the caller's ``cli``, often
  without ``+``: ``46701234567``; the callee with it: ``+46850001234``).  It is
  on the answer path of every callback, so the usual shapes take a fast path
  without any library; a ``00`` international prefix is read as ``+``; what is
  not an international number (a national ``0701234567``, more than 15 digits)
  is None.
* :func:`parse_number` and :func:`parse_prefix` read numbers **people write**
  (config.toml, rule files, command-line arguments).  They use the
  ``phonenumbers`` library (Google's libphonenumber metadata): ``+46 (0)70 123 45 67``
  and ``0046 70 123 45 67`` are ``+46701234567``; a number whose length no number
  of its country has is refused; a national format (``070 123 45 67``) is read
  with ``[server] default_region`` and refused without it.  Errors are
  :class:`PhoneNumberError`, whose message says what is wrong and how to write it.

``[server] default_region`` is one setting for the whole process: callgate sets
it (:func:`set_default_region`) when it loads its plugins, before their
configuration is validated, so plugins read numbers with :func:`parse_number`
and get the same answer as the core.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, ValidationResult

_SEPARATORS = re.compile(r"[\s\-().]")
_E164 = re.compile(r"\+[1-9][0-9]{0,14}")
_DIGITS = re.compile(r"^\+?[0-9]+$")
#: What people may write in a number besides digits and a leading + (spaces, dashes, dots, slashes, brackets).
_WRITTEN = re.compile(r"^\+?[0-9\s\-./()]+$")
_PUNCTUATION = re.compile(r"[\s\-./()]")
MAX_DIGITS = 15
PRIVATE = "private"
PRIVATE_SPELLINGS = frozenset({"private", "anonymous", "unknown", "restricted", "withheld", ""})
HOW_TO_WRITE = "write it like +46701234567"

_default_region: str | None = None


class PhoneNumberError(ValueError):
    """A number or prefix written by a person cannot be read; the message says why and how to write it."""


def normalize(value: str | None) -> str | None:
    """A number as Sinch sends it -> E.164: ``"46701234567"``, ``"0046701234567"`` -> ``"+46701234567"``.

    Not an international number (a national ``0701234567``, letters, over 15 digits) -> None.
    Unusual shapes (``+46 (0)70 123 45 67``) are read by ``phonenumbers``, without a default region.
    """
    if value is None:
        return None
    if value.isascii():    # the usual shapes, "+46..." and "46...", without the regexes
        if value.isdigit():
            if value[0] != "0":
                return "+" + value if len(value) <= MAX_DIGITS else None
            return _international("+" + value[2:]) if value[1:2] == "0" else None   # 0046...; 070... is national
        if value[:1] == "+" and value[1:].isdigit():
            return value if len(value) <= MAX_DIGITS + 1 and value[1] != "0" else None
    compact = _SEPARATORS.sub("", value)
    if not _DIGITS.match(compact):
        return None
    try:
        number = _read(value, None)
    except PhoneNumberError:
        return None
    return _international(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _international(value: str) -> str | None:
    """``value`` (``+`` and ASCII digits) when it is E.164: 1 to 15 digits, the first not 0 (no regex: hot path)."""
    return value if 2 <= len(value) <= MAX_DIGITS + 1 and value[1] != "0" else None


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


# --- numbers people write ----------------------------------------------------------------------------------------

def looks_like_number(text: str) -> bool:
    """Whether ``text`` is meant as a number, so that it must be a valid one: it starts with ``+``, or it
    has digits and nothing but digits, spaces and - . / ( ).  A user name or a conference id is not."""
    stripped = text.strip()
    return stripped[:1] == "+" or (_WRITTEN.match(stripped) is not None and any(c.isdigit() for c in stripped))


def check_region(region: str) -> str:
    """A region code as ``phonenumbers`` knows it (``"se"`` -> ``"SE"``); ValueError for an unknown one."""
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{region!r} is not a region code; write a two-letter ISO 3166 code like \"SE\" or \"US\"")
    return code


def set_default_region(region: str | None) -> None:
    """Set the region national formats are read in (``[server] default_region``; None: refuse them)."""
    global _default_region
    _default_region = None if region is None else check_region(region)


def default_region() -> str | None:
    """The region national formats are read in, or None (they are refused)."""
    return _default_region


_NOT_ZERO = frozenset("123456789")


def parse_number(text: str, region: str | None = None) -> str:
    """A whole number written by a person -> E.164; :class:`PhoneNumberError` saying why not.

    ``+46 70 123 45 67``, ``+46 (0)70 123 45 67``, ``0046701234567`` and (with the region ``SE``)
    ``070 123 45 67`` are all ``+46701234567``.  Without ``+`` or ``00``, a number is read in
    ``region`` (default: :func:`default_region`); with no region, digits not starting with 0 are
    read as an international number without its ``+`` (the way Sinch writes caller ids), and a
    number starting with 0 is refused.  A length no number of that country has is refused.
    """
    if not isinstance(text, str):
        raise PhoneNumberError(f"{text!r} is not a phone number: expected a string; {HOW_TO_WRITE}")
    region = region or _default_region
    try:
        number = _read(text, region)
        _check_possible(text.strip(), number)
    except PhoneNumberError as exc:
        if region is None and _PUNCTUATION.sub("", text.strip())[:1] in _NOT_ZERO:
            # Read as international without its + ("4155550123" as +41...): it may have been a national number.
            raise PhoneNumberError(f"{exc} (digits without + or 00 are read as an international number: for a "
                                   f"national number, set [server] default_region to its country)") from None
        raise
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _read(text: str, region: str | None) -> PhoneNumber:
    """The number in ``text`` (national formats read in ``region``), not yet checked for its length."""
    raw = text.strip()
    if not raw:
        raise PhoneNumberError(f"empty phone number; {HOW_TO_WRITE}")
    if not _WRITTEN.match(raw):
        raise PhoneNumberError(f"{raw!r} is not a phone number: only digits, a leading + and spaces or - . / ( ) "
                               f"may be written; {HOW_TO_WRITE}")
    compact = _PUNCTUATION.sub("", raw)
    if compact.startswith("00"):                    # the international call prefix of most of the world
        raw, compact = "+" + _after_two_zeros(raw), "+" + compact[2:]
    written = text.strip()
    if not compact.startswith("+"):
        if region is not None:
            return _parse(raw, region, written)
        if compact.startswith("0"):
            raise PhoneNumberError(
                f"{text.strip()!r} is a national number: write it in international form (+46701234567, or "
                f"0046701234567), or set [server] default_region to the country it belongs to")
        raw, compact = "+" + raw, "+" + compact
    if "(" not in raw and ")" not in raw:
        return _fast(compact, written)              # "+46 70-123 45 67": only punctuation to drop, no text to parse
    return _parse(raw, None, written)


def parse_prefix(text: str) -> str:
    """A number prefix written by a person -> ``+`` and digits: ``"+46 70"``, ``"0046 70"``, ``"4670"`` -> ``"+4670"``;
    ``"+"`` alone is every number.

    A prefix is part of a number, so only its form is checked (digits, at most 15, a country code
    that exists), not its length; it is always international (a leading 0 is refused), whatever
    the default region.  Raises :class:`PhoneNumberError`.
    """
    if not isinstance(text, str):
        raise PhoneNumberError(f"{text!r} is not a number prefix: expected a string; write it like +4670")
    raw = text.strip()
    if raw == "+":
        return "+"                                  # every international number
    compact = _PUNCTUATION.sub("", raw)
    if not raw or not _WRITTEN.match(raw) or "+" in compact[1:] or "(" in raw or ")" in raw:
        raise PhoneNumberError(f"{raw!r} is not a number prefix: write + and the first digits (no letters or "
                               f"brackets), like +4670")
    digits = compact[2:] if compact.startswith("00") else compact.removeprefix("+")
    if not digits or digits[0] == "0":
        raise PhoneNumberError(f"{raw!r} is not an international prefix: write + and the country code first, "
                               f"like +4670 (prefixes are never read in [server] default_region)")
    if len(digits) > MAX_DIGITS:
        raise PhoneNumberError(f"{raw!r} is too long for a prefix: a phone number has at most {MAX_DIGITS} digits")
    if _country_code(digits) is None and len(digits) >= 3:
        raise PhoneNumberError(f"{raw!r}: no country has a calling code that begins this prefix; "
                               f"write + and the country code first, like +4670")
    return "+" + digits


def _after_two_zeros(raw: str) -> str:
    """``"00 46 70"`` -> ``" 46 70"``: the text after its first two digits (both 0)."""
    seen = 0
    for index, char in enumerate(raw):
        if char.isdigit():
            seen += 1
            if seen == 2:
                return raw[index + 1:]
    return ""


def _country_code(digits: str) -> int | None:
    for length in (1, 2, 3):
        if len(digits) >= length and int(digits[:length]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return int(digits[:length])
    return None


def _fast(compact: str, written: str) -> PhoneNumber:
    digits = compact[1:]
    if len(digits) > MAX_DIGITS:
        raise PhoneNumberError(f"{written!r} is not a phone number: {len(digits)} digits, and a phone number has at "
                               f"most {MAX_DIGITS}; {HOW_TO_WRITE}")
    code = _country_code(digits)
    national = digits[len(str(code)):] if code is not None else ""
    if not national or national[0] == "0":          # let phonenumbers say what is wrong, or drop a written (0)
        return _parse(compact, None, written)
    return PhoneNumber(country_code=code, national_number=int(national))


def _parse(raw: str, region: str | None, written: str) -> PhoneNumber:
    try:
        return phonenumbers.parse(raw, region)
    except NumberParseException as exc:
        why = {
            NumberParseException.INVALID_COUNTRY_CODE: "no country has that calling code",
            NumberParseException.TOO_SHORT_NSN: "too few digits",
            NumberParseException.TOO_SHORT_AFTER_IDD: "too few digits",
            NumberParseException.TOO_LONG: f"too many digits (a phone number has at most {MAX_DIGITS})",
        }.get(exc.error_type, "not a number")
        raise PhoneNumberError(f"{written!r} is not a phone number: {why}; {HOW_TO_WRITE}") from None


def _check_possible(raw: str, number: PhoneNumber) -> None:
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason == ValidationResult.IS_POSSIBLE:
        return
    country = f"+{number.country_code}"
    why = {
        ValidationResult.INVALID_COUNTRY_CODE: f"no country has the calling code {country}",
        ValidationResult.TOO_SHORT: f"too few digits for a {country} number",
        ValidationResult.TOO_LONG: f"too many digits for a {country} number",
        ValidationResult.IS_POSSIBLE_LOCAL_ONLY: f"the area code is missing ({country} numbers need it)",
    }.get(reason, f"no {country} number has that many digits")
    raise PhoneNumberError(f"{raw!r} is not a phone number: {why}; {HOW_TO_WRITE}")
