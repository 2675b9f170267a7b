"""The decision, as a pure function: scope, then deny rules, then allow rules, then the default.

The ICE hook and ``callgate allowlist check`` both call :func:`evaluate`, so
what the command explains is what a call gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .config import Scope
from .facts import CallFacts
from .index import RuleSet
from .rules import RuleInfo

Verdict = Literal["allow", "deny", "none"]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What the allowlist says about one call, and why."""

    verdict: Verdict
    rule: RuleInfo | None
    reason: str

    @property
    def in_scope(self) -> bool:
        return self.verdict != "none"


def evaluate(facts: CallFacts, rules: RuleSet, *, scope: Scope, default: Literal["allow", "deny"]) -> Evaluation:
    """Outside the scope: no opinion.  Inside: a matching deny rule, else a matching allow rule, else the default."""
    if not scope.contains(facts):
        return Evaluation("none", None, "outside the allowlist's scope")
    rule = rules.match(facts)
    if rule is not None:
        return Evaluation(rule.action, rule, f"rule {rule.describe()}")
    return Evaluation(default, None, f"no rule matches; the default is {default}")
