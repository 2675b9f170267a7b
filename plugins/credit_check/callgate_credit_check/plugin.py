"""The ``credit_check`` plugin: prepaid credit for Sinch calls, the way prepaid billing engines do it.

It serves both API generations from one configuration: every hook receives a neutral call
(:mod:`callgate.calls`), and calls are kept by ``call.key`` (the v1 callid as it is, ``"v2:"`` + the
callid for v2), so a v1 and a v2 call never share a reservation.

* Incoming call (``authorize_call``: v1 ICE, v2 ``call.incoming``): find the paying account and the
  rate, compute the longest time the available credit pays for (at most ``max_duration``),
  reserve its cost atomically and ``Allow`` with that maximum duration (plus a
  low-balance prompt when it is short); ``Deny`` with a prompt when the credit
  does not cover the first billing increment.
* ``call_decided``: give the reservation back when the call was not connected
  (another plugin denied it, or nobody routed it), or the surplus when a
  smaller maximum duration won.
* Ended call (``on_disconnect``: v1 DICE, v2 ``call.hangup`` and the end states): settle once per
  key on the real duration with the plugin's own rate (v2 sends no total cost): debit the cost,
  release the reservation, record Sinch's own ``debit`` beside ours when Sinch sends one (v1).
  In v2 each leg ends with its own event: only the authorized (inbound) leg has a reservation; the
  dialled leg's end finds none and changes nothing.
* In the background: release reservations whose end event never came.
* Dry runs (``callgate simulate``): every hook takes ``dry_run`` and then computes its
  answer in a transaction that is rolled back; ``startup(dry_run=True)`` opens the store
  without creating or migrating it (a missing one is simulated as empty) and starts no
  expiry task.

A database failure raises: the core applies ``on_error`` (default ``"deny"``:
fail closed) to the incoming call, and answers the end event so that Sinch retries it on the
fallback URL.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import structlog

from callgate import hookimpl, leave_note
from callgate.calls import Ended, Incoming
from callgate.decisions import Allow, Deny, EndCall, Prompt
from callgate.results import Decision
from callgate.storage import DatabaseError

from . import cli
from .config import CreditCheckConfig
from .expiry import run_expiry
from .handle import StoreHandle
from .money import money_text
from .payer import linked_account, payer_key
from .prompts import low_balance, prompt
from .rate_sources import destination, rate_lookup
from .store import CreditCall, CreditStore, Reservation

log = structlog.get_logger("callgate.credit_check")
NAME = "credit_check"
#: What ``/readyz`` says while the credit database does not answer (the error itself is logged).
READY_PROBLEM = "credit database unreachable (see the log: credit_database_unreachable)"


class CreditCheck:
    """Prepaid credit: reserve when a call comes in, settle when it ends.  Configured by ``[plugins.credit_check]``."""

    Config = CreditCheckConfig
    default_on_error = "deny"

    def __init__(self, config: CreditCheckConfig) -> None:
        self.config = config
        self.handle = StoreHandle(config.database_url.get_secret_value(), retry_seconds=config.reconnect_seconds)
        #: call key -> seconds granted, for incoming calls whose ``call_decided`` has not run yet (this process only).
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
    async def authorize_call(self, call: Incoming, dry_run: bool = False) -> Allow | Deny | None:
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
        # call_decided still sees the key and releases it.
        self._awaiting_decision[call.key] = 0
        result = await store.reserve(call.key, account_id, destination(call), rate_lookup(store, call, self.config),
                                     cap=self.config.max_duration, unit=self.config.unit,
                                     grace=self.config.grace_seconds, dry_run=dry_run)
        if result.status == "reserved":
            self._awaiting_decision[call.key] = result.seconds
        else:
            self._awaiting_decision.pop(call.key, None)
        return self._answer(result)

    def _answer(self, result: Reservation) -> Allow | Deny | None:
        if result.status == "reserved":
            prompts: tuple[Prompt, ...] = ()
            # Only when the credit is what limits the call (not max_duration).
            if result.seconds < min(self.config.low_balance_seconds, self.config.max_duration):
                warning = low_balance(self.config.low_balance_prompt, result.seconds, self.config.locale)
                prompts = (warning,) if warning else ()
            return Allow(max_duration=result.seconds, prompts=prompts,
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
    async def call_decided(self, call: Incoming, decision: Decision, dry_run: bool = False) -> None:
        granted = self._awaiting_decision.pop(call.key, None)
        if granted is None:
            return
        not_connected = _not_connected(decision)
        if not_connected is not None:
            await (await self.handle.get()).release(call.key, reason=f"not connected: {not_connected}"[:500],
                                                    dry_run=dry_run)
        elif decision.max_duration is None:
            route = decision.route.label if decision.route is not None else None
            log.warning("credit_call_not_limited", callid=call.callid, key=call.key, route=route, granted=granted,
                        why="the answer carries no maximum duration, so Sinch will not end the call when the "
                            "reserved credit runs out")
        elif granted and decision.max_duration < granted:
            await (await self.handle.get()).limit(call.key, decision.max_duration, unit=self.config.unit,
                                                  grace=self.config.grace_seconds, dry_run=dry_run)

    # --- end of a call ----------------------------------------------------------------------------

    @hookimpl
    async def on_disconnect(self, call: Ended, dry_run: bool = False) -> None:
        store = await self.handle.get()
        # Unanswered calls (v1 BUSY/NOANSWER/FAILED, v2 call.busy/rejected/timeout/failed) cost nothing.
        duration = (call.duration or 0) if call.result is None or call.answered else 0
        debit = call.debit      # v1 only: v2 sends no total cost

        def priced(record: CreditCall) -> None:
            # For the other recording plugins (the CRM export puts our cost in its call record), which run at
            # the same time as this one: left as soon as the cost is known, before the settlement's commit.
            leave_note(call, NAME, {"account": record.account_id, "cost": money_text(record.cost or 0),
                                    "currency": record.currency, "billed_seconds": record.billed_seconds,
                                    "sinch_debit": record.sinch_debit})
        settled = await store.settle(call.key, duration, unit=self.config.unit,
                                     sinch_debit=debit.amount if debit else None,
                                     sinch_currency=debit.currency if debit else None, dry_run=dry_run,
                                     priced=priced)
        if settled is None:
            return   # not a call this plugin authorized (or a v2 call's dialled leg): no note
        record = settled.call
        if not settled.repeated and not dry_run and duration > record.max_duration:
            log.warning("credit_duration_over_granted", callid=call.callid, key=record.callid, duration=duration,
                        max_duration=record.max_duration,
                        why="the end event reports a longer call than the maxDuration granted (and reserved); "
                            "billed as maxDuration")
        if not settled.repeated and not dry_run:
            log.info("credit_settled", callid=call.callid, key=record.callid, account=record.account_id,
                     cost=money_text(record.cost or 0), currency=record.currency, billed_seconds=record.billed_seconds,
                     released=money_text(settled.released), sinch_debit=record.sinch_debit,
                     sinch_currency=record.sinch_currency)
        priced(record)      # what was settled (a repeated end event: the first one's cost)

    # --- operation ------------------------------------------------------------------------------

    @hookimpl
    async def check_ready(self) -> str | None:
        """Not ready while the credit database does not answer: in a few words on ``/readyz`` (which carries no
        exception's text, host or database name), with the error in the log."""
        try:
            store = await self.handle.get()
        except DatabaseError:
            return READY_PROBLEM                    # the handle logged it (credit_database_unreachable)
        try:
            await store.ping()
        except DatabaseError as exc:
            log.warning("credit_database_unreachable", error=str(exc))
            return READY_PROBLEM
        return None

    @hookimpl
    def register_commands(self, subparsers) -> None:
        cli.register(subparsers, self.config)


def _not_connected(decision: Decision) -> str | None:
    """Why the call will not be connected (its reservation is then released), or None when it may be.

    Not connected: denied, routed nowhere (hung up after the no-route prompt), or routed to
    :class:`~callgate.decisions.EndCall`.  An allowed call answered with a plugin's generation-specific
    SVAML (no neutral route, but a plugin routed it) keeps its reservation.
    """
    if not decision.allowed:
        return decision.reason
    route = decision.route
    if route is None:
        return None if decision.routed_by is not None else "nobody routed the call"
    if isinstance(route.to, EndCall):
        return f"answered with hangup (route {route.label})"
    return None
