"""The ``allowlist`` plugin: allow or deny calls by caller, callee, domain and application, for both API generations."""

from __future__ import annotations

import argparse

from callgate import hookimpl
from callgate.calls import Incoming
from callgate.decisions import Allow, Deny

from . import cli
from .config import AllowlistConfig
from .facts import CallFacts
from .live import INLINE_LABEL, LiveRules
from .policy import Evaluation, evaluate
from .rules import Rule, compile_rule


class Allowlist:
    """Rules that allow or deny calls; deny rules win, and a stated default decides the rest.

    Calls outside ``scope`` get no opinion (``None``).  Rules come from
    ``[[plugins.allowlist.rules]]`` and from ``rules_file`` (CSV or TOML), which
    is re-read when it changes and on SIGHUP.

    Dry runs (``callgate simulate``): the plugin only reads (config, rule file), so a dry run
    answers exactly as the server would; ``startup(dry_run=True)`` just does not watch the file.
    """

    Config = AllowlistConfig

    def __init__(self, config: AllowlistConfig) -> None:
        self.config = config
        inline = inline_rules(config)
        path = config.rules_file.expanduser().absolute() if config.rules_file else None
        self.rules = LiveRules(inline, path, reload_seconds=config.reload_seconds)
        self.prompt = config.deny_prompt()

    async def startup(self, dry_run: bool = False) -> None:
        if not dry_run:         # one event, no reloads to watch for
            self.rules.start()

    async def shutdown(self) -> None:
        await self.rules.stop()

    def evaluate(self, facts: CallFacts) -> Evaluation:
        """What the allowlist says about a call: the one decision path of the hook and the CLI."""
        return evaluate(facts, self.rules.current, scope=self.config.scope, default=self.config.default)

    @hookimpl
    def authorize_call(self, call: Incoming, dry_run: bool = False) -> Allow | Deny | None:
        # dry_run: nothing to do differently, this plugin writes nothing.
        result = self.evaluate(CallFacts.from_call(call))
        if result.verdict == "none":
            return None
        if result.verdict == "allow":
            return Allow(reason=result.reason)
        return Deny(result.reason, prompt=self.prompt)

    @hookimpl
    def register_commands(self, subparsers: argparse._SubParsersAction) -> None:
        cli.register(subparsers, self)


def inline_rules(config: AllowlistConfig) -> list[Rule]:
    """The rules written in config.toml, compiled, in the order written."""
    return [compile_rule(spec, ordinal=i, source=f"{INLINE_LABEL}[{i}]") for i, spec in enumerate(config.rules)]

