"""One rule: how it is written (:class:`RuleSpec`, the same in config.toml, TOML and CSV files)
and what it becomes (:class:`Rule`, compiled once, matched on every call).

A rule allows or denies the calls that meet *all* of its conditions; a condition
given as a list is met by *any* of its values; a condition left out is met by
every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

from callgate.calls import CALLEE_TYPES, DOMAINS, ORIGINATION_TYPES

from .facts import CallFacts
from .matchers import Matcher, MatcherError, NumberField, parse_matcher
from .users import parse_user_matcher

Action = Literal["allow", "deny"]
NUMBER_FIELDS = ("caller", "callee")
#: The in-app caller's Sinch user id (the ICE's ``user``): see :mod:`.users`.
USER_FIELD = "user"
#: The plain conditions: rule key -> the values Sinch sends (None: any string, compared lower-case).
PLAIN_FIELDS: dict[str, frozenset[str] | None] = {
    "callee_type": CALLEE_TYPES,
    "domain": DOMAINS,
    "origination_type": ORIGINATION_TYPES,
    "application_key": None,
}
#: Every key a rule may have, in the order rules are described (and CSV columns are listed).
RULE_KEYS = ("action", *NUMBER_FIELDS, USER_FIELD, *PLAIN_FIELDS, "name")

Values = str | list[str] | None
_ANY: frozenset[str] = frozenset()


class RuleSpec(BaseModel):
    """A rule as written: ``{ action = "deny", caller = "+1900*" }``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Action
    caller: Values = None
    callee: Values = None
    user: Values = None
    callee_type: Values = None
    domain: Values = None
    origination_type: Values = None
    application_key: Values = None
    name: str | None = None

    @field_validator("action", mode="before")
    @classmethod
    def _action(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(*NUMBER_FIELDS, USER_FIELD, *PLAIN_FIELDS, mode="before")
    @classmethod
    def _strings(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return value
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (int, float)) and not isinstance(item, bool) and info.field_name in NUMBER_FIELDS:
                raise ValueError(f'write numbers as strings: "+{item}", not {item} '
                                 f"(a TOML number has no + and loses leading zeros)")
            if not isinstance(item, str):
                raise ValueError(f"expected a string or a list of strings, got {item!r}")
        return value

    @model_validator(mode="after")
    def _values(self) -> RuleSpec:
        compile_rule(self, ordinal=0, source="")   # raises ValueError naming the key
        return self


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """A rule as explained to people: ``deny caller=+1900*`` written at ``blocked.csv:17``."""

    action: Action
    ordinal: int
    source: str
    text: str

    def describe(self) -> str:
        """``deny caller=+1900* (blocked.csv:17)`` for logs and ``callgate allowlist check``."""
        return f"{self.text} ({self.source})"


@dataclass(slots=True, eq=False)
class Rule:
    """A compiled rule.  ``ordinal`` orders rules (inline first, then the file, in file order);
    ``source`` says where it was written (``[plugins.allowlist] rules[2]``, ``blocked.csv:17``).

    Read-only by convention (not frozen: a big file builds 100,000 of them per reload).
    """

    action: Action
    ordinal: int
    source: str
    text: str
    caller: tuple[Matcher, ...] = ()
    callee: tuple[Matcher, ...] = ()
    user: tuple[Matcher, ...] = ()
    callee_types: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    origination_types: frozenset[str] = frozenset()
    application_keys: frozenset[str] = frozenset()
    name: str | None = None

    def matches(self, facts: CallFacts) -> bool:
        """Whether the call meets every condition of this rule."""
        if self.caller and not _any_matches(self.caller, facts.caller):
            return False
        if self.callee and not _any_matches(self.callee, facts.callee):
            return False
        if self.user and not _any_matches(self.user, facts.user):
            return False
        if self.callee_types and facts.callee_type not in self.callee_types:
            return False
        if self.domains and facts.domain not in self.domains:
            return False
        if self.origination_types and facts.origination_type not in self.origination_types:
            return False
        if self.application_keys and facts.application_key not in self.application_keys:
            return False
        return True

    @property
    def lookup_field(self) -> str | None:
        """The field the rule can be found by (exact values and prefixes only): caller, callee or user; or None."""
        if self.caller and all(m.indexable for m in self.caller):
            return "caller"
        if self.callee and all(m.indexable for m in self.callee):
            return "callee"
        if self.user and all(m.indexable for m in self.user):
            return USER_FIELD
        return None

    @property
    def lookup_matchers(self) -> tuple[Matcher, ...]:
        """The values of :attr:`lookup_field` (empty when the rule has none)."""
        return {"caller": self.caller, "callee": self.callee, USER_FIELD: self.user}.get(self.lookup_field or "", ())

    @property
    def is_lookup_only(self) -> bool:
        """True when finding the rule by its lookup field is the whole match (no other condition)."""
        field = self.lookup_field
        others = {"caller": self.caller, "callee": self.callee, USER_FIELD: self.user}
        others.pop(field or "", None)
        return (field is not None and not any(others.values())
                and not (self.callee_types or self.domains or self.origination_types or self.application_keys))

    def info(self) -> RuleInfo:
        return RuleInfo(self.action, self.ordinal, self.source, self.text)


def compile_rule(spec: RuleSpec | dict[str, Any], *, ordinal: int, source: str) -> Rule:
    """Turn a rule as written (a RuleSpec, or a dict of its keys) into a :class:`Rule`.

    Raises ValueError naming the bad key.  Only the keys present are looked at:
    this runs for each of 100,000 rows of a big file.
    """
    fields = spec if isinstance(spec, dict) else spec.__dict__
    action = fields["action"]
    numbers: dict[str, tuple[Matcher, ...]] = {}
    plain: dict[str, frozenset[str]] = {}
    parts = [action]
    name = None
    for key, value in fields.items():
        if value is None or key == "action":
            continue
        if key == "name":
            name = value
            continue
        values = [value] if isinstance(value, str) else _as_list(value, key)
        if key in NUMBER_FIELDS:
            try:
                matchers = tuple(parse_matcher(v, field=cast(NumberField, key)) for v in values)
            except MatcherError as exc:
                raise ValueError(f"{key}: {exc}") from None
            # A "*" anywhere makes the whole condition "anything".
            numbers[key] = () if None in matchers else tuple(m for m in matchers if m is not None)
        elif key == USER_FIELD:
            try:
                users = [parse_user_matcher(v) for v in values]
            except MatcherError as exc:
                raise ValueError(f"{key}: {exc}") from None
            numbers[key] = () if None in users else tuple(m for m in users if m is not None)
        elif key in PLAIN_FIELDS:
            plain[key] = _plain(values, key, PLAIN_FIELDS[key])
        else:
            raise ValueError(f"{key}: not a rule key; rule keys are {', '.join(RULE_KEYS)}")
        parts.append(f"{key}={values[0].strip() if len(values) == 1 else '|'.join(v.strip() for v in values)}")
    if name:
        parts.append(f"name={name!r}")
    return Rule(
        action=action, ordinal=ordinal, source=source, text=" ".join(parts),
        caller=numbers.get("caller", ()), callee=numbers.get("callee", ()), user=numbers.get(USER_FIELD, ()),
        callee_types=plain.get("callee_type", _ANY), domains=plain.get("domain", _ANY),
        origination_types=plain.get("origination_type", _ANY), application_keys=plain.get("application_key", _ANY),
        name=name,
    )


def _any_matches(matchers: tuple[Matcher, ...], key: str | None) -> bool:
    for matcher in matchers:
        if matcher.matches(key):
            return True
    return False


def _as_list(value: Values, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not value:
        raise ValueError(f"{key}: empty list (leave the condition out to match every call)")
    return list(value)


def _plain(values: list[str], key: str, known: frozenset[str] | None) -> frozenset[str]:
    cleaned = set()
    for item in values:
        text = item.strip().lower()
        if not text:
            raise ValueError(f"{key}: empty value (leave the condition out to match every call)")
        if text == "*":
            return _ANY
        if known is not None and text not in known:
            raise ValueError(f"{key}: {item!r} is not one of {', '.join(sorted(known))}")
        cleaned.add(text)
    return frozenset(cleaned)
