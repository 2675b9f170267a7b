"""``[plugins.credit_check]``: every setting, its default and what it means (the README has the table)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from callgate.calls import CALLEE_TYPES, known_words
from callgate.config import SecretDatabaseURL, ShortName, check_speakable
from callgate.decisions import MAX_DURATION_LIMIT

from . import prompts
from .money import MoneyError, parse_amount
from .rating import Increments, RatingError, cost_unit

DEFAULT_DATABASE_URL = "sqlite:///var/callgate/credit.sqlite3"
AccountBy = Literal["caller", "number_table", "user", "custom", "header", "application"]


class CreditCheckConfig(BaseModel):
    """Validated ``[plugins.credit_check]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``sqlite:///relative/path.sqlite3`` (default; relative to the config file's folder),
    #: ``sqlite:////absolute/path`` or ``postgresql://...``.
    #: Write ``database_url = { env = "CREDIT_DATABASE_URL" }`` when it holds a password.
    database_url: SecretDatabaseURL = Field(SecretStr(DEFAULT_DATABASE_URL), validate_default=True)
    #: Which account pays for a call.
    account_by: AccountBy = "caller"
    #: The key in ``custom`` (account_by = "custom") or in ``callHeaders`` (account_by = "header").
    account_key: str = ""
    #: A call whose account cannot be found: "deny" it, or "abstain" (no opinion; other plugins decide).
    unknown_account: Literal["deny", "abstain"] = "deny"
    #: ``to.type`` values this plugin charges for; calls to other destination types are not its business.
    #: A v2 inbound PHONE call is ``did``, a v2 SIP call ``sip`` (add them to charge v2 calls).
    destination_types: tuple[str, ...] = ("number",)
    #: Where prices come from: the imported "table" (by prefix), or "sinch": the call's rate (v1 userRate,
    #: v2 callRate) times sinch_markup.
    rates: Literal["table", "sinch"] = "table"
    sinch_markup: Decimal = Field(Decimal(1), gt=0)
    sinch_connect_fee: Decimal = Decimal(0)
    sinch_increments: str = "60/60"
    #: Costs are rounded up to this many decimal places of the currency (6 = one micro-unit, 2 = cents).
    cost_decimals: int = Field(6, ge=0, le=6)
    #: The longest call this plugin allows, whatever the balance (seconds; Sinch's limit is 14400).
    max_duration: int = Field(3600, ge=1, le=MAX_DURATION_LIMIT)
    #: When the credit limits a call to less than this many seconds, the caller hears low_balance_prompt (0: never).
    low_balance_seconds: int = Field(300, ge=0, le=MAX_DURATION_LIMIT)
    #: ``{time}`` is replaced by the granted time in words ("3 minutes"), ``{seconds}`` by the seconds.
    low_balance_prompt: str = "You have {time} of credit left."
    #: Played before hanging up a call the account cannot pay for ("" for none).
    deny_prompt: str = "You do not have enough credit to make this call."
    #: Played before hanging up a call with no account (unknown_account = "deny"; "" for none).
    no_account_prompt: str = "This number has no prepaid account."
    #: Played before hanging up a call to a destination with no rate ("" for none).
    no_rate_prompt: str = "Calls to this destination are not possible."
    #: Locale of the prompts.
    locale: ShortName = "en-US"
    #: A reservation whose DICE never came is released this long after its maxDuration ends.
    grace_seconds: int = Field(600, ge=0, le=86400)
    #: How often each instance looks for such reservations.
    expiry_interval_seconds: float = Field(60.0, gt=0, le=3600)
    #: How often an unreachable database is tried again (meanwhile calls get the on_error policy).
    reconnect_seconds: float = Field(5.0, gt=0, le=300)

    @field_validator("sinch_increments")
    @classmethod
    def _increments(cls, value: str) -> str:
        try:
            return str(Increments.parse(value))
        except RatingError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("sinch_connect_fee")
    @classmethod
    def _fee(cls, value: Decimal) -> Decimal:
        try:
            return parse_amount(value, what="sinch_connect_fee")
        except MoneyError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("destination_types")
    @classmethod
    def _destination_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(known_words(value, CALLEE_TYPES))

    @field_validator("deny_prompt", "no_account_prompt", "no_rate_prompt")
    @classmethod
    def _sayable(cls, value: str) -> str:
        value = value.strip()                 # only spaces: no prompt, as empty
        check_speakable(value)
        return value

    @field_validator("low_balance_prompt")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            longest = value.format(time=prompts.spoken_time(MAX_DURATION_LIMIT), seconds=MAX_DURATION_LIMIT)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{time}} and {{seconds}} may be used in it ({type(exc).__name__}: {exc})") from None
        check_speakable(longest)
        return value

    @model_validator(mode="after")
    def _key_when_needed(self) -> CreditCheckConfig:
        if self.account_by in ("custom", "header") and not self.account_key.strip():
            raise ValueError(f'account_by = "{self.account_by}" needs account_key: the name of the key that '
                             f"holds the account")
        return self

    @property
    def sinch_rate_increments(self) -> Increments:
        return Increments.parse(self.sinch_increments)

    @property
    def unit(self) -> int:
        """Costs are rounded up to this many micro-units."""
        return cost_unit(self.cost_decimals)

