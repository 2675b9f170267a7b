"""The ``credit_check`` plugin: prepaid credit for Sinch calls, the way prepaid billing engines do it.

* ICE (``authorize_call``): find the paying account and the rate, compute the
  longest time the available credit pays for (at most ``max_duration``),
  reserve its cost atomically and ``Allow`` with that ``maxDuration`` (plus a
  low-balance prompt when it is short); ``Deny`` with a prompt when the credit
  does not cover the first billing increment.
* ``call_decided``: give the reservation back when the call was not connected
  (another plugin denied it, or nobody routed it), or the surplus when a
  smaller ``maxDuration`` won.
* DICE (``on_disconnect``): settle once per callid on the real duration: debit
  the cost, release the reservation, record Sinch's own ``debit`` beside ours.
* In the background: release reservations whose DICE never came.
* Dry runs (``callgate simulate``): every hook takes ``dry_run`` and then computes its
  answer in a transaction that is rolled back; ``startup(dry_run=True)`` opens the store
  without creating or migrating it (a missing one is simulated as empty) and starts no
  expiry task.

A database failure raises: the core applies ``on_error`` (default ``"deny"``:
fail closed) to the ICE, and answers the DICE 503 so Sinch retries it on the
fallback URL.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import structlog

from callgate import Allow, Deny, hookimpl
from callgate.results import Decision
from callgate.storage import DatabaseError
from callgate.svaml import Say

from . import cli
from .config import CreditCheckConfig
from .expiry import run_expiry
from .handle import StoreHandle
from .money import money_text
from .payer import linked_account, payer_key
from .prompts import low_balance, prompt
from .rate_sources import destination, rate_lookup
from .store import CreditStore, Reservation

log = structlog.get_logger("callgate.credit_check")
NAME = "credit_check"


class CreditCheck:
    """Prepaid credit: reserve on ICE, settle on DICE.  Configured by ``[plugins.credit_check]``."""

    Config = CreditCheckConfig
    default_on_error = "deny"

    def __init__(self, config: CreditCheckConfig) -> None:
        self.config = config
        self.handle = StoreHandle(config.database_url.get_secret_value(), retry_seconds=config.reconnect_seconds)
        #: callid -> seconds granted, for ICEs whose ``call_decided`` has not run yet (this process only).
        self._awaiting_decision: dict[str, int] = {}
        self._expiry: asyncio.Task | None = None
        self._deny_prompt = prompt(config.deny_prompt, config.locale)
        self._no_account_prompt = prompt(config.no_account_prompt, config.locale)
        self._no_rate_prompt = prompt(config.no_rate_prompt, config.locale)

    # --- lifecycle ----------------------------------------------------------------------------

    async def startup(self, dry_run: bool = False) -> None:
        """Open the database (a SQLite file that cannot be opened stops start-up) and start the expiry task.

        ``dry_run``: open the store as it is (see ``CreditStore.open_dry_run``) and start no expiry task,
        which would release overdue reservations.
        """
        if dry_run:
            self.handle = StoreHandle(self.config.database_url.get_secret_value(),
                                      retry_seconds=self.config.reconnect_seconds, opener=CreditStore.open_dry_run)
        try:
            await self.handle.get()
        except DatabaseError:
            if urlsplit(self.config.database_url.get_secret_value()).scheme == "sqlite":
                raise
            # PostgreSQL unreachable: logged by the handle; calls get on_error until it answers.
        if dry_run:
            return
        self._expiry = asyncio.get_running_loop().create_task(
            run_expiry(self.handle, self.config.expiry_interval_seconds), name="credit_check expiry")

    async def shutdown(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            try:
                await self._expiry
            except asyncio.CancelledError:
                pass
            self._expiry = None
        await self.handle.close()

    # --- ICE ------------------------------------------------------------------------------------

    @hookimpl
    async def authorize_call(self, call, dry_run: bool = False) -> Allow | Deny | None:
        to_type = call.to.type if call.to is not None else None
        if to_type not in self.config.destination_types:
            return None
        key = payer_key(call, self.config)
        if key is None:
            return self._unknown_account(f"the call names no account (account_by = {self.config.account_by})")
        store = await self.handle.get()
        account_id = key.account
        if account_id is None:
            account_id = await linked_account(store, key)
            if account_id is None:
                return self._unknown_account(f"{key.describe()} is linked to no account")
        # Registered before reserving: if this hook is cancelled after the reservation committed,
        # call_decided still sees the callid and releases it.
        self._awaiting_decision[call.callid] = 0
        result = await store.reserve(call.callid, account_id, destination(call), rate_lookup(store, call, self.config),
                                     cap=self.config.max_duration, unit=self.config.unit,
                                     grace=self.config.grace_seconds, dry_run=dry_run)
        if result.status == "reserved":
            self._awaiting_decision[call.callid] = result.seconds
        else:
            self._awaiting_decision.pop(call.callid, None)
        return self._answer(result)

    def _answer(self, result: Reservation) -> Allow | Deny | None:
        if result.status == "reserved":
            instructions: tuple[Say, ...] = ()
            # Only when the credit is what limits the call (not max_duration).
            if result.seconds < min(self.config.low_balance_seconds, self.config.max_duration):
                warning = low_balance(self.config.low_balance_prompt, result.seconds, self.config.locale)
                instructions = (warning,) if warning else ()
            return Allow(max_duration=result.seconds, instructions=instructions,
                         reason=f"account {result.account_id}: {result.seconds} s, "
                                f"{money_text(result.reserved)} {result.currency} reserved")
        if result.status == "denied":
            return Deny(f"insufficient credit on account {result.account_id} "
                        f"({money_text(result.available)} {result.currency} available)", prompt=self._deny_prompt)
        if result.status == "no_rate":
            return Deny(f"no rate: {result.reason}", prompt=self._no_rate_prompt)
        return self._unknown_account(result.reason)

    def _unknown_account(self, reason: str) -> Deny | None:
        if self.config.unknown_account == "abstain":
            return None
        return Deny(f"no prepaid account: {reason}", prompt=self._no_account_prompt)

    @hookimpl
    async def call_decided(self, call, decision: Decision, dry_run: bool = False) -> None:
        granted = self._awaiting_decision.pop(call.callid, None)
        if granted is None:
            return
        action = decision.svaml.action.name
        if not decision.allowed or action == "hangup":
            reason = decision.reason if not decision.allowed else "answered with hangup"
            await (await self.handle.get()).release(call.callid, reason=f"not connected: {reason}"[:500],
                                                    dry_run=dry_run)
        elif decision.max_duration is None:
            log.warning("credit_call_not_limited", callid=call.callid, action=action, granted=granted,
                        why="the answer's action carries no maxDuration, so Sinch will not end the call when the "
                            "reserved credit runs out")
        elif granted and decision.max_duration < granted:
            await (await self.handle.get()).limit(call.callid, decision.max_duration, unit=self.config.unit,
                                                  grace=self.config.grace_seconds, dry_run=dry_run)

    # --- DICE -----------------------------------------------------------------------------------

    @hookimpl
    async def on_disconnect(self, call, dry_run: bool = False) -> None:
        store = await self.handle.get()
        duration = (call.duration or 0) if call.result in (None, "ANSWERED") else 0
        debit = call.debit
        settled = await store.settle(call.callid, duration, unit=self.config.unit,
                                     sinch_debit=debit.amount if debit else None,
                                     sinch_currency=debit.currency_id if debit else None, dry_run=dry_run)
        if settled is None:
            return   # not a call this plugin authorized
        record = settled.call
        if not settled.repeated and not dry_run:
            log.info("credit_settled", callid=record.callid, account=record.account_id, cost=money_text(record.cost or 0),
                     currency=record.currency, billed_seconds=record.billed_seconds, released=money_text(settled.released),
                     sinch_debit=record.sinch_debit, sinch_currency=record.sinch_currency)
        # For the plugins after this one (the CRM export puts our cost in its call record).
        call.notes[NAME] = {"account": record.account_id, "cost": money_text(record.cost or 0),
                            "currency": record.currency, "billed_seconds": record.billed_seconds,
                            "sinch_debit": record.sinch_debit}

    # --- operation ------------------------------------------------------------------------------

    @hookimpl
    async def check_ready(self) -> str | None:
        try:
            store = await self.handle.get()
            await store.ping()
        except DatabaseError as exc:
            return f"credit database unreachable: {exc}"
        return None

    @hookimpl
    def register_commands(self, subparsers) -> None:
        cli.register(subparsers, self.config)
