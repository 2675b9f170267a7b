"""The facts about a call that rules look at, taken from an incoming call (either API generation) or from
the command line."""

from __future__ import annotations

from dataclasses import dataclass

from callgate.calls import Incoming

from .matchers import caller_key, value_key
from .users import user_key


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the rules compare, already normalised (numbers as ``+46...``, names lower-case, the in-app
    caller's user id as Sinch sends it).

    ``application_key`` is the call's ``application``: the v1 application key or the v2 service id
    (the rule key keeps its v1 name).  ``user`` is None for every v2 call (v2 has no in-app users).
    """

    caller: str | None
    callee: str | None
    callee_type: str | None = None
    domain: str | None = None
    origination_type: str | None = None
    application_key: str | None = None
    user: str | None = None

    @classmethod
    def of(cls, *, cli: str | None, to: str | None, to_type: str | None = None, domain: str | None = None,
           origination_type: str | None = None, application_key: str | None = None,
           user: str | None = None) -> CallFacts:
        """Facts from raw values as Sinch sends them (any case, numbers with or without ``+``)."""
        origination = _lower(origination_type)
        return cls(
            caller=caller_key(cli, origination),
            callee=value_key(to) or None,
            callee_type=_lower(to_type),
            domain=_lower(domain),
            origination_type=origination,
            application_key=_lower(application_key),
            user=user_key(user),
        )

    @classmethod
    def from_call(cls, call: Incoming) -> CallFacts:
        """Facts from an incoming call of either generation."""
        to = call.to
        return cls.of(cli=call.cli, to=to.endpoint if to else None, to_type=to.type if to else None,
                      domain=call.domain, origination_type=call.origination_type,
                      application_key=call.application, user=call.user)

    def describe(self) -> str:
        """``+46701234567 -> +15551234567 (number, pstn, origination pstn)`` for people."""
        details = ", ".join(x for x in (self.callee_type, self.domain,
                                        f"origination {self.origination_type}" if self.origination_type else None,
                                        f"application {self.application_key}" if self.application_key else None,
                                        f"user {self.user}" if self.user else None) if x)
        call = f"{self.caller or '(no caller)'} -> {self.callee or '(no callee)'}"
        return f"{call} ({details})" if details else call


def _lower(value: str | None) -> str | None:
    if value is None:
        return None
    stripped = value.strip().lower()
    return stripped or None
