"""``callgate credit ...``: the operator's commands, on the database config.toml names.

::

    callgate credit add ACCOUNT --currency EUR        open an account
    callgate credit topup ACCOUNT 10.00 [--note ...]  add credit
    callgate credit adjust ACCOUNT -1.50 --note ...   correct a balance (either sign)
    callgate credit balance ACCOUNT [--json]          balance, reserved, available, open calls
    callgate credit ledger ACCOUNT [--limit N] [--json]
    callgate credit accounts [--json]
    callgate credit link NUMBER ACCOUNT               number-to-account table (account_by = "number_table")
    callgate credit link --user USER ACCOUNT          user-to-account table (account_by = "user")
    callgate credit unlink NUMBER | --user USER
    callgate credit rates import FILE.csv [--merge]   replace (or add to) the rate table
    callgate credit rates export                      print the rate table as CSV
    callgate credit quote NUMBER DURATION [--account ACCOUNT | --currency EUR] [--user-rate 0.01] [--json]

Exit status: 0 done, 1 refused (the message says why; nothing was changed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from callgate.calls import Money
from callgate.phone import PhoneNumberError, parse_number
from callgate.storage import DatabaseError, MissingDatabaseError

from .config import CreditCheckConfig
from .money import MoneyError, format_money, money_text, parse_amount, parse_currency, to_micros
from .payer import canonical_account_id, canonical_user
from .quote import Quote, make_quote, parse_duration
from .rate_csv import RateFileError, format_rates, read_rates
from .rate_sources import sinch_rate
from .rating import RatingError
from .store import CreditStore, NoRate, StoreError

Handler = Callable[[CreditStore, argparse.Namespace], Awaitable[int | None]]
#: A number argument that is not a number: printed as one line, exit status 2 (a usage error).
EXIT_USAGE = 2
#: Errors that mean "refused, nothing changed": printed as one line, exit status 1.
REFUSALS = (DatabaseError, StoreError, MoneyError, RateFileError, RatingError, ValueError, OSError)


class CreditCommands:
    """The handlers, bound to the plugin's configuration."""

    def __init__(self, config: CreditCheckConfig) -> None:
        self.config = config

    def account_id(self, text: str) -> str:
        return canonical_account_id(self.config, text)

    @asynccontextmanager
    async def store(self, *, create: bool = True):
        store = await CreditStore.open(self.config.database_url.get_secret_value(), create=create)
        try:
            yield store
        finally:
            await store.close()

    def run(self, handler: Handler, *, create: bool = True) -> Callable[[argparse.Namespace], Awaitable[int]]:
        """The command's handler on an open store; ``create=False`` (commands that only read): a SQLite database
        that does not exist is refused, not created."""
        async def command(args: argparse.Namespace) -> int:
            try:
                async with self.store(create=create) as store:
                    return int(await handler(store, args) or 0)
            except BrokenPipeError:
                raise           # the reader of our output went away: the callgate command ends quietly
            except MissingDatabaseError as exc:
                print(f"callgate credit: {exc}: check [plugins.credit_check] database_url (a relative path is "
                      f"taken from the config file's folder)", file=sys.stderr)
                return 1
            except PhoneNumberError as exc:
                print(f"callgate credit: {exc}", file=sys.stderr)
                return EXIT_USAGE
            except REFUSALS as exc:
                # A file that cannot be read: its name and why, not the errno and repr of OSError's text.
                why = f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) and exc.filename else exc
                print(f"callgate credit: {why}", file=sys.stderr)
                return 1
        return command

    # --- accounts ---------------------------------------------------------------------------

    async def add(self, store: CreditStore, args: argparse.Namespace) -> None:
        account = await store.add_account(self.account_id(args.account), args.currency)
        print(f"added account {account.id} ({account.currency})")

    async def topup(self, store: CreditStore, args: argparse.Namespace) -> None:
        await self._credit(store, args, "topup")

    async def adjust(self, store: CreditStore, args: argparse.Namespace) -> None:
        await self._credit(store, args, "adjust")

    async def _credit(self, store: CreditStore, args: argparse.Namespace, kind: Literal["topup", "adjust"]) -> None:
        amount = to_micros(args.amount, what="amount", allow_negative=kind == "adjust")
        entry = await store.credit(self.account_id(args.account), amount, kind=kind, note=args.note)
        print(f"{kind} {money_text(amount)}: account {entry.account_id} balance {money_text(entry.balance_after)}, "
              f"available {money_text(entry.balance_after - entry.reserved_after)}")

    async def balance(self, store: CreditStore, args: argparse.Namespace) -> int:
        account = await store.account(self.account_id(args.account))
        if account is None:
            raise StoreError(f"no account {args.account!r}")
        calls = await store.open_calls(account.id)
        numbers = await store.numbers(account.id)
        users = await store.users(account.id)
        if args.json:
            _json({"account": account.id, "currency": account.currency, "balance": money_text(account.balance),
                   "reserved": money_text(account.reserved), "available": money_text(account.available),
                   "numbers": numbers, "users": users,
                   "open_calls": [{"callid": c.callid, "reserved": money_text(c.reserved),
                                   "max_duration": c.max_duration, "since": c.created_at} for c in calls]})
            return 0
        print(f"account {account.id} ({account.currency})")
        print(f"  balance    {money_text(account.balance):>14}")
        print(f"  reserved   {money_text(account.reserved):>14}  ({len(calls)} call(s) in progress)")
        print(f"  available  {money_text(account.available):>14}")
        if numbers:
            print(f"  numbers    {', '.join(numbers)}")
        if users:
            print(f"  users      {', '.join(users)}")
        return 0

    async def ledger(self, store: CreditStore, args: argparse.Namespace) -> int:
        account_id = self.account_id(args.account)
        if await store.account(account_id) is None:
            raise StoreError(f"no account {args.account!r}")
        entries = await store.ledger(account_id, args.limit)
        if args.json:
            _json([{"id": e.id, "time": e.created_at, "kind": e.kind, "amount": money_text(e.amount),
                    "balance": money_text(e.balance_after), "reserved": money_text(e.reserved_after),
                    "callid": e.callid, "note": e.note} for e in entries])
            return 0
        print(f"{'id':>6}  {'time':<27} {'kind':<8} {'amount':>12} {'balance':>12} {'reserved':>12}  callid / note")
        for e in entries:
            detail = " ".join(x for x in (e.callid, e.note) if x)
            print(f"{e.id:>6}  {e.created_at:<27} {e.kind:<8} {money_text(e.amount):>12} "
                  f"{money_text(e.balance_after):>12} {money_text(e.reserved_after):>12}  {detail}")
        return 0

    async def accounts(self, store: CreditStore, args: argparse.Namespace) -> int:
        accounts = await store.accounts()
        if args.json:
            _json([{"account": a.id, "currency": a.currency, "balance": money_text(a.balance),
                    "reserved": money_text(a.reserved), "available": money_text(a.available)} for a in accounts])
            return 0
        for a in accounts:
            print(f"{a.id:<32} {format_money(a.available, a.currency):>20} available "
                  f"({money_text(a.reserved)} reserved)")
        return 0

    async def link(self, store: CreditStore, args: argparse.Namespace) -> None:
        account_id = self.account_id(args.account)
        if _linking_user(args):
            user = canonical_user(args.user)
            await store.link_user(user, account_id)
            print(f"calls from user {user} are paid by account {account_id}")
            return
        number = _number(args.number)
        await store.link_number(number, account_id)
        print(f"calls from {number} are paid by account {account_id}")

    async def unlink(self, store: CreditStore, args: argparse.Namespace) -> int:
        if _linking_user(args):
            user = canonical_user(args.user)
            if not await store.unlink_user(user):
                raise StoreError(f"user {user} is not linked to an account")
            print(f"user {user} is no longer linked to an account")
            return 0
        number = _number(args.number)
        if not await store.unlink_number(number):
            raise StoreError(f"{number} is not linked to an account")
        print(f"{number} is no longer linked to an account")
        return 0

    # --- rates ------------------------------------------------------------------------------

    async def rates_import(self, store: CreditStore, args: argparse.Namespace) -> None:
        path = Path(args.file)
        rates = read_rates(path)
        count = await store.import_rates(rates, replace=not args.merge)
        total = len(await store.rates())
        print(f"imported {count} rate(s) from {path} ({'merged' if args.merge else 'table replaced'}; "
              f"{total} in the table)")

    async def rates_export(self, store: CreditStore, args: argparse.Namespace) -> None:
        sys.stdout.write(format_rates(await store.rates()))

    async def quote(self, store: CreditStore, args: argparse.Namespace) -> int:
        number = _number(args.number)
        duration = parse_duration(args.duration)
        if args.user_rate is not None and self.config.rates != "sinch":
            raise ValueError(f'--user-rate prices with rates = "sinch", and rates is "{self.config.rates}": leave it '
                             f'out to price from the rate table')
        if args.account and args.currency:
            raise ValueError("give --account or --currency, not both: the account's currency is the one used")
        account = None
        if args.account:
            account = await store.account(self.account_id(args.account))
            if account is None:
                raise StoreError(f"no account {args.account!r}")
        currency = account.currency if account else (parse_currency(args.currency) if args.currency else None)
        if self.config.rates == "sinch":
            if args.user_rate is None:
                raise ValueError('rates = "sinch": give --user-rate, Sinch\'s price per minute for this destination')
            currency = currency or "EUR"
            rate = sinch_rate(Money(currency, parse_amount(args.user_rate, what="--user-rate")), currency, self.config)
        else:
            if currency is None:
                currencies = await store.currencies()
                if len(currencies) != 1:
                    raise StoreError("no rates imported yet (callgate credit rates import FILE.csv)" if not currencies
                                     else f"the rate table has {', '.join(currencies)}: give --currency or --account")
                currency = currencies[0]
            rate = await store.find_rate(None, currency, number)
        if isinstance(rate, NoRate):
            raise StoreError(rate.reason)
        result = make_quote(number, duration, rate, unit=self.config.unit, cap=self.config.max_duration,
                            account=account)
        if args.json:
            _json(_quote_json(result))
        else:
            _print_quote(result)
        return 0


def _quote_json(q: Quote) -> dict[str, Any]:
    out: dict[str, Any] = {
        "destination": q.destination, "duration": q.duration, "currency": q.rate.currency,
        "prefix": f"+{q.rate.prefix}" if q.rate.prefix else None, "name": q.rate.name or None,
        "per_minute": money_text(q.rate.per_minute), "connect_fee": money_text(q.rate.connect_fee),
        "increments": str(q.rate.increments), "billed_seconds": q.charge.billed_seconds,
        "cost": money_text(q.charge.cost)}
    if q.account is not None and q.grant is not None:
        out.update({"account": q.account.id, "available": money_text(q.account.available),
                    "max_duration": q.grant.seconds, "reserve": money_text(q.grant.reserve)})
    return out


def _print_quote(q: Quote) -> None:
    r = q.rate
    source = f"prefix +{r.prefix}" + (f" ({r.name})" if r.name else "") if r.prefix else "Sinch userRate with markup"
    print(f"{q.destination}, {q.duration} s: {format_money(q.charge.cost, r.currency)} "
          f"(billed {q.charge.billed_seconds} s)")
    print(f"  rate: {source}: {money_text(r.per_minute)} {r.currency}/min, connect fee {money_text(r.connect_fee)}, "
          f"increments {r.increments}")
    if q.account is not None and q.grant is not None:
        if q.grant.allowed:
            print(f"  account {q.account.id}: {format_money(q.account.available, r.currency)} available; a call now "
                  f"may last {q.grant.seconds} s (reserving {money_text(q.grant.reserve)})")
        else:
            print(f"  account {q.account.id}: {format_money(q.account.available, r.currency)} available; not enough "
                  f"for the first {r.increments.first} s: a call now is denied")


def _linking_user(args: argparse.Namespace) -> bool:
    """Whether ``link`` / ``unlink`` name an in-app user (``--user``) rather than a number; exactly one is given."""
    if args.user is not None and args.number is not None:
        raise ValueError("give a NUMBER or --user USER, not both")
    if args.user is None and args.number is None:
        raise ValueError("give the NUMBER (or --user USER) to link")
    return args.user is not None


def _number(text: str) -> str:
    """A number argument as people write it (``[server] default_region`` applies); PhoneNumberError if not one."""
    return parse_number(text)


def _json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=lambda o: str(o) if isinstance(o, Decimal) else repr(o)))


def _usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """The handler of a command given without its subcommand: print its help, exit 2."""
    def usage(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2
    return usage


def register(subparsers: argparse._SubParsersAction, config: CreditCheckConfig) -> None:
    """Add ``callgate credit`` and its subcommands."""
    commands = CreditCommands(config)
    credit = subparsers.add_parser("credit", help="prepaid accounts, credit, rates and quotes (credit_check plugin)",
                                   description=__doc__.split("\n\n")[0])
    sub = credit.add_subparsers(title="credit commands", metavar="COMMAND")
    credit.set_defaults(handler=_usage(credit))

    def command(name: str, handler: Handler, help: str, *, on: argparse._SubParsersAction = sub,
                reads_only: bool = False):
        parser = on.add_parser(name, help=help, description=help)
        parser.set_defaults(handler=commands.run(handler, create=not reads_only))
        return parser

    p = command("add", commands.add, "open an account")
    p.add_argument("account", help="account id (with account_by = \"caller\": the phone number)")
    p.add_argument("--currency", required=True, help="ISO-4217 code, e.g. EUR; calls are rated in it")

    p = command("topup", commands.topup, "add credit to an account")
    p.add_argument("account")
    p.add_argument("amount", help="e.g. 10.00 (at most 6 decimals)")
    p.add_argument("--note", default="", help="kept in the ledger")

    p = command("adjust", commands.adjust, "correct a balance by a positive or negative amount")
    p.add_argument("account")
    p.add_argument("amount", help="e.g. -1.50")
    p.add_argument("--note", required=True, help="why (kept in the ledger)")

    p = command("balance", commands.balance, "show an account's balance, reserved and available credit",
                reads_only=True)
    p.add_argument("account")
    p.add_argument("--json", action="store_true")

    p = command("ledger", commands.ledger, "show an account's ledger (top-ups, reservations, releases, debits)",
                reads_only=True)
    p.add_argument("account")
    p.add_argument("--limit", type=int, default=50, help="newest N entries (default 50)")
    p.add_argument("--json", action="store_true")

    p = command("accounts", commands.accounts, "list accounts", reads_only=True)
    p.add_argument("--json", action="store_true")

    p = command("link", commands.link, "let an account pay for calls from a number (account_by = \"number_table\") "
                                       "or from an in-app user (--user, account_by = \"user\")")
    p.add_argument("number", nargs="?", help="the caller's number (leave out with --user)")
    p.add_argument("account")
    p.add_argument("--user", help="the Sinch user id of an in-app caller, as the ICE's user field holds it")

    p = command("unlink", commands.unlink, "remove a number (or, with --user, a user) from its account")
    p.add_argument("number", nargs="?")
    p.add_argument("--user", help="the Sinch user id to unlink")

    rates = sub.add_parser("rates", help="import or export the rate table")
    rates_sub = rates.add_subparsers(title="rates commands", metavar="COMMAND")
    rates.set_defaults(handler=_usage(rates))
    p = command("import", commands.rates_import, "load rates from CSV (prefix,currency,per_minute,connect_fee,"
                                                 "increments,name); the whole file or nothing", on=rates_sub)
    p.add_argument("file")
    p.add_argument("--merge", action="store_true", help="add to / update the table instead of replacing it")
    command("export", commands.rates_export, "print the rate table as CSV", on=rates_sub, reads_only=True)

    p = command("quote", commands.quote, "price a call: callgate credit quote +46701234567 300s", reads_only=True)
    p.add_argument("number", help="the destination")
    p.add_argument("duration", help="300, 300s, 5m, 2m30s, 1h")
    p.add_argument("--account", help="also show what this account can afford (and use its currency)")
    p.add_argument("--currency", help="the rate table's currency to use")
    p.add_argument("--user-rate", help='with rates = "sinch": Sinch\'s price per minute')
    p.add_argument("--json", action="store_true")
