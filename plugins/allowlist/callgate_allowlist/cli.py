"""``callgate allowlist check`` and ``callgate allowlist validate``.

``check`` runs the plugin's own decision (:meth:`Allowlist.evaluate`, the code
the ICE hook runs) on a pair of numbers and says which rule decides.
Exit status: 0 allowed, 1 denied, 3 outside the scope (no opinion), 2 when CALLER or
CALLEE (with ``--to-type`` number or did) is not a phone number.
``validate`` checks a rules file before you put it in place: 0 valid, 1 not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from callgate.calls import CALLEE_TYPES, DOMAINS, ORIGINATION_TYPES
from callgate.phone import PRIVATE_SPELLINGS, PhoneNumberError, parse_number

from .facts import CallFacts
from .index import RuleSet
from .live import read_rules
from .rulefile import RulesFileError

if TYPE_CHECKING:
    from .plugin import Allowlist

EXIT_ALLOWED, EXIT_DENIED, EXIT_INVALID, EXIT_USAGE, EXIT_NO_OPINION = 0, 1, 1, 2, 3
#: ``to.type`` values whose endpoint is a phone number.
NUMBER_TYPES = ("number", "did")


def register(subparsers: argparse._SubParsersAction, plugin: Allowlist) -> None:
    parser = subparsers.add_parser("allowlist", help="explain and check the allowlist's rules")
    commands = parser.add_subparsers(title="allowlist commands", metavar="COMMAND", required=True)

    check = commands.add_parser(
        "check", help="say which rule decides a call from CALLER to CALLEE (exit 0 allowed, 1 denied, 3 no opinion)")
    check.add_argument("caller",
                       help="the caller's number, written as in a rule (+46 70 123 45 67, 0046701234567), or private")
    check.add_argument("callee", help="the number (or user, SIP address, conference id) called")
    check.add_argument("--to-type", default="number", type=str.lower, choices=sorted(CALLEE_TYPES),
                       help="to.type of the call (default: number)")
    check.add_argument("--domain", default="pstn", type=str.lower, choices=sorted(DOMAINS),
                       help="domain of the call (default: pstn)")
    check.add_argument("--origination", default="pstn", type=str.lower, choices=sorted(ORIGINATION_TYPES),
                       help="originationType of the call (default: pstn)")
    check.add_argument("--application-key", default=None, help="the Sinch application key (v1) or service id (v2) of the call")
    check.add_argument("--user", default=None,
                       help="the in-app caller's Sinch user id (the ICE's user; such calls come with caller private)")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(handler=lambda args: cmd_check(plugin, args))

    validate = commands.add_parser("validate", help="check a rules file (default: the configured rules_file)")
    validate.add_argument("file", nargs="?", type=Path, help="a .csv or .toml rules file")
    validate.set_defaults(handler=lambda args: cmd_validate(plugin, args))


def cmd_check(plugin: Allowlist, args: argparse.Namespace) -> int:
    try:
        caller = args.caller if args.caller.strip().lower() in PRIVATE_SPELLINGS else parse_number(args.caller)
        callee = parse_number(args.callee) if args.to_type in NUMBER_TYPES else args.callee
    except PhoneNumberError as exc:
        print(f"callgate allowlist check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    facts = CallFacts.of(cli=caller, to=callee, to_type=args.to_type, domain=args.domain,
                         origination_type=args.origination, application_key=args.application_key, user=args.user)
    result = plugin.evaluate(facts)
    rules = plugin.rules.current
    if args.json:
        print(json.dumps({
            "call": {"caller": facts.caller, "callee": facts.callee, "callee_type": facts.callee_type,
                     "domain": facts.domain, "origination_type": facts.origination_type,
                     "application_key": facts.application_key, "user": facts.user},
            "verdict": result.verdict,
            "rule": None if result.rule is None else {"rule": result.rule.text, "source": result.rule.source},
            "reason": result.reason,
            "rules": rules.counts,
        }, indent=2))
    else:
        print(f"call:     {facts.describe()}")
        print(f"rules:    {_summary(rules)}")
        if result.verdict == "none":
            print(f"rule:     -  ({_scope(plugin)})")
            print("verdict:  no opinion: outside the scope; other plugins and [server] default_decision decide")
        elif result.rule is None:
            print(f"rule:     none matches; default = {plugin.config.default}")
            print(f"verdict:  {_verdict(plugin, result.verdict, by_default=True)}")
        else:
            print(f"rule:     {result.rule.text}")
            print(f"source:   {result.rule.source}")
            print(f"verdict:  {_verdict(plugin, result.verdict)}")
    return {"allow": EXIT_ALLOWED, "deny": EXIT_DENIED}.get(result.verdict, EXIT_NO_OPINION)


def cmd_validate(plugin: Allowlist, args: argparse.Namespace) -> int:
    path = args.file or plugin.rules.path
    if path is None:
        print("callgate allowlist: no file given and no rules_file configured", file=sys.stderr)
        return EXIT_INVALID
    try:
        rules, _ = read_rules((), Path(path))
    except RulesFileError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    counts = rules.counts
    print(f"{path}: ok, {counts['deny'] + counts['allow']} rules ({counts['deny']} deny, {counts['allow']} allow)")
    return 0


def _summary(rules: RuleSet) -> str:
    counts = rules.counts
    where = f", from {' and '.join(rules.sources)}" if rules.sources else ""
    return f"{counts['deny']} deny, {counts['allow']} allow{where}"


def _scope(plugin: Allowlist) -> str:
    scope = plugin.config.scope
    parts = [f"{key}={value}" for key, value in scope.model_dump().items() if value]
    return "scope: " + ", ".join(parts)


def _verdict(plugin: Allowlist, verdict: str, *, by_default: bool = False) -> str:
    said = f"{verdict}{' by default' if by_default else ''}"
    if verdict == "allow":
        return f"{said} (the call goes on to the other plugins and the router)"
    heard = "the caller hears the prompt, then " if plugin.prompt is not None else ""
    return f"{said} ({heard}the call is hung up)"
