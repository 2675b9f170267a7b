"""``mask_numbers``: phone numbers shown as ``+4670****567`` (a prefix and the last 3 digits kept)."""

from __future__ import annotations

import re
from collections.abc import Callable

#: A run of 6 to 15 digits, with an optional leading +, not part of a longer word, number or decimal.
_NUMBER = re.compile(r"(?<![\w.+])\+?\d{6,15}(?![\w.])")
KEEP_END = 3


def mask_number(number: str) -> str:
    """``+46701234567`` -> ``+4670****567``; ``46701234567`` -> ``4670****567``; short ones keep only their end."""
    plus = "+" if number.startswith("+") else ""
    digits = number[len(plus):]
    if not digits.isdigit():
        return mask_text(number)
    keep_start = 4 if len(digits) >= 10 else max(0, len(digits) - KEEP_END - 4)
    hidden = len(digits) - keep_start - KEEP_END
    return plus + digits[:keep_start] + "*" * hidden + digits[-KEEP_END:]


def mask_text(text: str) -> str:
    """Every phone-number-like run of digits in ``text`` masked (request bodies, answers, headers, verdicts)."""
    return _NUMBER.sub(lambda m: mask_number(m.group(0)), text)


Mask = Callable[[str], str]


def masker(enabled: bool) -> Mask:
    """The function the views apply to every value that may hold a number: ``mask_text``, or leave as is."""
    return mask_text if enabled else _same


def _same(text: str) -> str:
    return text
