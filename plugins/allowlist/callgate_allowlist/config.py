"""``[plugins.allowlist]``: the settings, validated when callgate starts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from callgate.calls import CALLEE_TYPES, DOMAINS, ORIGINATION_TYPES, known_words
from callgate.config import ConfigPath, ShortName
from callgate.decisions import MAX_PROMPT_CHARS, MAX_PROMPT_FILES, Prompt

from .facts import CallFacts
from .rules import RuleSpec


class Scope(BaseModel):
    """``[plugins.allowlist.scope]``: which calls the list applies to.  An empty list means every call.

    Calls outside the scope get no opinion from the allowlist (the other plugins
    and ``[server] default_decision`` decide them).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    domains: list[str] = []
    origination_types: list[str] = []
    callee_types: list[str] = []
    application_keys: list[str] = []

    @field_validator("domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        return known_words(v, DOMAINS)

    @field_validator("origination_types")
    @classmethod
    def _originations(cls, v: list[str]) -> list[str]:
        return known_words(v, ORIGINATION_TYPES)

    @field_validator("callee_types")
    @classmethod
    def _callee_types(cls, v: list[str]) -> list[str]:
        return known_words(v, CALLEE_TYPES)

    @field_validator("application_keys")
    @classmethod
    def _keys(cls, v: list[str]) -> list[str]:
        keys = [k.strip().lower() for k in v]
        if any(not k for k in keys):
            raise ValueError("empty key")
        return keys

    def contains(self, facts: CallFacts) -> bool:
        """Whether the allowlist has an opinion on this call."""
        return ((not self.domains or facts.domain in self.domains)
                and (not self.origination_types or facts.origination_type in self.origination_types)
                and (not self.callee_types or facts.callee_type in self.callee_types)
                and (not self.application_keys or facts.application_key in self.application_keys))


class AllowlistConfig(BaseModel):
    """``[plugins.allowlist]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: What a call inside the scope gets when no rule matches.  No default: say it.
    default: Literal["allow", "deny"]
    scope: Scope = Scope()
    #: Inline rules, ``[[plugins.allowlist.rules]]``.
    rules: list[RuleSpec] = []
    #: A CSV or TOML file of rules, re-read when it changes and on SIGHUP (relative: to the config file's folder).
    rules_file: ConfigPath | None = None
    #: How often to look for changes to rules_file, in seconds; 0: only on SIGHUP.
    reload_seconds: float = Field(2.0, ge=0, le=3600)
    #: Spoken (text-to-speech) to a denied caller before the hangup; empty: nothing.
    prompt: str = ""
    #: Or: one audio file (an http(s) URL) to play before the hangup.  A list for compatibility with 0.2,
    #: which took v1 ``playFiles`` ids: a denial now plays one prompt, in either generation.
    prompt_files: list[str] = []
    #: Locale of the spoken prompt.
    locale: ShortName = "en-US"

    @field_validator("default", mode="before")
    @classmethod
    def _default(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        value = value.strip()
        if len(value) > MAX_PROMPT_CHARS:
            raise ValueError(f"at most {MAX_PROMPT_CHARS} characters (Sinch's text-to-speech limit), got {len(value)}")
        return value

    @field_validator("prompt_files")
    @classmethod
    def _prompt_files(cls, value: list[str]) -> list[str]:
        files = [v.strip() for v in value]
        if any(not f for f in files):
            raise ValueError("empty file URL")
        if len(files) > MAX_PROMPT_FILES:
            raise ValueError(f"at most {MAX_PROMPT_FILES} files")
        for url in files:
            if not url.lower().startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL; for spoken text use prompt (#tts[...] ids are v1-only)")
        return files

    @model_validator(mode="after")
    def _consistent(self) -> AllowlistConfig:
        if self.prompt and self.prompt_files:
            raise ValueError("give prompt (spoken text) or prompt_files (recordings), not both")
        if self.rules_file is not None and self.rules_file.suffix.lower() not in (".csv", ".toml"):
            raise ValueError(f"rules_file must end in .csv or .toml, got {str(self.rules_file)!r}")
        try:
            self.deny_prompt()
        except ValueError as exc:
            raise ValueError(f"prompt: {exc}") from None
        return self

    def deny_prompt(self) -> Prompt | None:
        """What a denied caller hears before the hangup: spoken text, an audio file, or nothing."""
        if self.prompt:
            return Prompt.say(self.prompt, self.locale)
        if self.prompt_files:
            return Prompt.play(*self.prompt_files, locale=self.locale)
        return None
