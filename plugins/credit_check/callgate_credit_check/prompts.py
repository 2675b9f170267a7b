"""What the caller hears: the denial prompts and the low-balance warning."""

from __future__ import annotations

from callgate.decisions import Prompt


def spoken_time(seconds: int) -> str:
    """Granted time in words, never more than granted: ``185`` -> ``"3 minutes"``, ``45`` -> ``"45 seconds"``."""
    if seconds >= 60:
        minutes = seconds // 60
        return f"{minutes} minute" + ("" if minutes == 1 else "s")
    return f"{seconds} second" + ("" if seconds == 1 else "s")


def prompt(text: str, locale: str) -> Prompt | None:
    """Spoken text (in ``locale`` for v1; the ``[server]`` voice speaks it for v2), or None for an empty text
    (no prompt configured)."""
    return Prompt.say(text, locale) if text.strip() else None


def low_balance(template: str, seconds: int, locale: str) -> Prompt | None:
    """The low-balance warning for a call granted ``seconds`` (``{time}``, ``{seconds}`` filled in)."""
    return prompt(template.format(time=spoken_time(seconds), seconds=seconds), locale)
