"""Finding the rules that match a call without looking at every rule.

Each rule is filed once, under the first of its conditions that can be looked
up: the caller's exact numbers and prefixes, else the callee's, else the in-app
user's exact ids and prefixes.  A call then costs one dictionary lookup per
field for exact values, one lookup per distinct prefix length for prefixes (at
most 16 for E.164 numbers), and a scan
of the few rules that cannot be filed (patterns, rules with only plain
conditions).  Patterns are the one linear cost: keep them few.

Deny rules and allow rules have separate indexes, so "does any deny rule match"
is answered first and on its own: a deny always wins.

Big lists are mostly rules whose one condition is a number or a prefix
(``deny,+46701234567``).  Those are kept as plain ``str -> ordinal`` entries and
their explanations as strings, not as objects: a 100,000-rule list is then a
handful of containers the garbage collector does not have to walk, so loading
one in the background does not stall the calls being answered meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .facts import CallFacts
from .rules import Action, Rule, RuleInfo


@dataclass(slots=True)
class _FieldIndex:
    """The rules filed under one field (caller, callee or user)."""

    #: Rules whose whole condition is this value: key -> the lowest ordinal.
    simple_exact: dict[str, int] = field(default_factory=dict)
    simple_prefix: dict[str, int] = field(default_factory=dict)
    #: Rules with further conditions, checked after the lookup.
    exact: dict[str, list[Rule]] = field(default_factory=dict)
    prefix: dict[str, list[Rule]] = field(default_factory=dict)
    prefix_lengths: tuple[int, ...] = ()

    def add(self, rule: Rule, simple: bool) -> None:
        for matcher in rule.lookup_matchers:
            if simple:
                ordinals = self.simple_exact if matcher.kind == "exact" else self.simple_prefix
                ordinals.setdefault(matcher.value, rule.ordinal)   # rules arrive in order: the first stays
            else:
                rules = self.exact if matcher.kind == "exact" else self.prefix
                rules.setdefault(matcher.value, []).append(rule)

    def freeze(self) -> None:
        self.prefix_lengths = tuple(sorted({len(p) for p in (*self.simple_prefix, *self.prefix)}, reverse=True))

    def best(self, key: str | None, facts: CallFacts, best: int | None) -> int | None:
        """The lowest ordinal among ``best`` and this field's matching rules."""
        if key is None:
            return best
        found = self.simple_exact.get(key)
        if found is not None and (best is None or found < best):
            best = found
        if self.exact:
            best = _best_of(self.exact.get(key), facts, best)
        if self.prefix_lengths:
            size, simple, full = len(key), self.simple_prefix, self.prefix
            for length in self.prefix_lengths:
                if length <= size:
                    part = key[:length]
                    found = simple.get(part)
                    if found is not None and (best is None or found < best):
                        best = found
                    if full:
                        best = _best_of(full.get(part), facts, best)
        return best


def _best_of(rules: list[Rule] | None, facts: CallFacts, best: int | None) -> int | None:
    if rules:
        for rule in rules:
            if (best is None or rule.ordinal < best) and rule.matches(facts):
                best = rule.ordinal
    return best


class RuleIndex:
    """The rules of one action (allow or deny), filed for fast lookup."""

    __slots__ = ("callee", "caller", "scan", "size", "user")

    def __init__(self) -> None:
        self.caller = _FieldIndex()
        self.callee = _FieldIndex()
        self.user = _FieldIndex()
        self.scan: list[Rule] = []   # in ordinal order
        self.size = 0

    def add(self, rule: Rule) -> None:
        self.size += 1
        field_name = rule.lookup_field
        if field_name is None:
            self.scan.append(rule)
        else:
            {"caller": self.caller, "callee": self.callee, "user": self.user}[field_name].add(rule, rule.is_lookup_only)

    def freeze(self) -> None:
        self.caller.freeze()
        self.callee.freeze()
        self.user.freeze()

    def first_match(self, facts: CallFacts) -> int | None:
        """The ordinal of the matching rule written first, or None."""
        best = self.caller.best(facts.caller, facts, None)
        best = self.callee.best(facts.callee, facts, best)
        best = self.user.best(facts.user, facts, best)
        for rule in self.scan:
            if best is not None and rule.ordinal > best:
                break   # the scan list is in ordinal order: nothing later can come first
            if rule.matches(facts):
                return rule.ordinal
        return best


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Every rule in force, compiled and indexed; replaced as a whole when the rule file changes."""

    deny: RuleIndex
    allow: RuleIndex
    #: Per ordinal: the action, the rule as written, and where.
    actions: list[Action]
    texts: list[str]
    places: list[str]
    sources: tuple[str, ...] = ()

    @classmethod
    def build(cls, rules: Iterable[Rule], sources: Iterable[str] = ()) -> RuleSet:
        """Index rules given in ordinal order 0, 1, 2, ... (a generator is consumed as it goes)."""
        deny, allow = RuleIndex(), RuleIndex()
        actions: list[Action] = []
        texts: list[str] = []
        places: list[str] = []
        for rule in rules:
            if rule.ordinal != len(actions):
                raise ValueError(f"rules must be numbered 0, 1, 2, ... in order; got {rule.ordinal} at {len(actions)}")
            actions.append(rule.action)
            texts.append(rule.text)
            places.append(rule.source)
            (deny if rule.action == "deny" else allow).add(rule)
        deny.freeze()
        allow.freeze()
        return cls(deny, allow, actions, texts, places, tuple(sources))

    @property
    def counts(self) -> dict[str, int]:
        return {"deny": self.deny.size, "allow": self.allow.size}

    def match(self, facts: CallFacts) -> RuleInfo | None:
        """The deciding rule: the first matching deny rule, else the first matching allow rule, else None."""
        ordinal = self.deny.first_match(facts)
        if ordinal is None:
            ordinal = self.allow.first_match(facts)
            if ordinal is None:
                return None
        return RuleInfo(self.actions[ordinal], ordinal, self.places[ordinal], self.texts[ordinal])
